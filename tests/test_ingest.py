"""Ingestion behaviour: errors that say where, re-ingestion, updates, exports, the CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import orjson
import pytest
import pyarrow.parquet as pq
from typer.testing import CliRunner

from libra.cli.main import app
from libra.demo import generate_runs
from traces.export import export_jsonl, export_parquet, iter_runs, run_to_otlp, write_jsonl
from traces.importers.generic import run_to_record
from traces.ingest import ingest

runner = CliRunner()


def demo_file(tmp_path, n=20, seed=3, name="runs.jsonl"):
    p = tmp_path / name
    write_jsonl(generate_runs(n, seed), p)
    return p


def test_generic_roundtrip_keeps_every_field(tmp_path, mem_store):
    runs = list(generate_runs(12, seed=5))
    p = tmp_path / "r.jsonl"
    write_jsonl(runs, p)
    s = ingest(mem_store, [p])
    assert (s.runs_added, s.quarantined) == (12, 0)
    assert s.steps == sum(len(r.steps) for r in runs)
    assert s.feedback == sum(len(r.feedback) for r in runs)
    back = {r.native_id: r for r in iter_runs(mem_store)}
    for r in runs:
        b = back[r.native_id]
        assert [(x.kind, x.content, x.tool_name, x.tool_args, x.is_error, x.input_tokens, x.started_at)
                for x in b.steps] == \
               [(x.kind, x.content, x.tool_name, x.tool_args, x.is_error, x.input_tokens, x.started_at)
                for x in r.steps]
        assert sorted((f.author, f.text, f.steps, f.rating) for f in b.feedback) == \
               sorted((f.author, f.text, f.steps, f.rating) for f in r.feedback)
        assert (b.agent, b.outcome, b.reward, b.metadata) == (r.agent, r.outcome, r.reward, r.metadata)


def test_bad_records_are_quarantined_with_file_line_and_field(tmp_path, mem_store):
    good = [run_to_record(r) for r in generate_runs(3, seed=1)]
    bad_kind = json.loads(json.dumps(good[1], default=str))
    bad_kind["steps"][2]["kind"] = "telepathy"
    bad_tokens = json.loads(json.dumps(good[2], default=str))
    bad_tokens["steps"][1]["input_tokens"] = "lots"
    lines = [orjson.dumps(good[0], default=str), b'{"run_id": "x", "steps": [', orjson.dumps(bad_kind),
             orjson.dumps(bad_tokens), b"", b'{"no_id": true, "steps": []}']
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    s = ingest(mem_store, [p], fmt="libra")
    assert s.runs_added == 1 and s.quarantined == 4
    rows = mem_store.execute("SELECT source, line, field, reason, raw FROM quarantine ORDER BY line")
    assert [r[1] for r in rows] == [2, 3, 4, 6]
    assert all(r[0] == str(p) for r in rows)
    assert rows[0][3].startswith("invalid JSON")
    assert rows[1][2] == "steps[2].kind" and "telepathy" in rows[1][3]
    assert rows[2][2] == "steps[1].input_tokens"
    assert rows[3][2] == "run_id"
    assert rows[1][4] == orjson.dumps(bad_kind).decode()  # raw record kept verbatim


def test_reingest_adds_nothing_and_changed_runs_replace_old_ones(tmp_path, mem_store):
    p = demo_file(tmp_path, 10)
    first = ingest(mem_store, [p])
    again = ingest(mem_store, [p])
    assert (again.runs_added, again.duplicates) == (0, 10)
    recs = [json.loads(line) for line in p.read_text().splitlines()]
    recs[0]["steps"][0]["content"] = "edited upstream"
    recs[0]["steps"].append({"kind": "agent_message", "content": "one more"})
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    mem_store.execute("INSERT INTO feedback (feedback_id, run_id, author, text, origin, created_at) "
                      "VALUES ('app-1', ?, 'ana', 'written in the app', 'app', now())", [f"libra:{recs[0]['run_id']}"])
    upd = ingest(mem_store, [p])
    assert (upd.runs_added, upd.runs_updated, upd.duplicates) == (0, 1, 9)
    rid = f"libra:{recs[0]['run_id']}"
    assert mem_store.scalar("SELECT content FROM steps WHERE run_id = ? AND idx = 0", [rid]) == "edited upstream"
    assert mem_store.scalar("SELECT n_steps FROM runs WHERE run_id = ?", [rid]) == len(recs[0]["steps"])
    assert mem_store.scalar("SELECT count(*) FROM steps WHERE run_id = ?", [rid]) == len(recs[0]["steps"])
    assert mem_store.scalar("SELECT count(*) FROM feedback WHERE feedback_id = 'app-1'") == 1
    assert mem_store.counts()["runs"] == first.runs_added


def test_gzip_glob_and_folders(tmp_path, mem_store):
    p = demo_file(tmp_path, 6)
    gz = tmp_path / "sub" / "more.jsonl.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(demo_file(tmp_path, 4, seed=99, name="other.jsonl").read_bytes()))
    s = ingest(mem_store, [str(tmp_path / "*.jsonl"), tmp_path / "sub"])
    assert s.runs_added == 10 and s.files == 3
    assert ingest(mem_store, [p]).duplicates == 6


def test_cli_ingest_summary_and_exit_status(tmp_path, location):
    db = location
    p = demo_file(tmp_path, 5)
    r = runner.invoke(app, ["ingest", "--db", db, "-q", str(p)])
    assert r.exit_code == 0, r.output
    assert "runs added" in r.output and "5" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(p.read_text().splitlines()[0] + "\n{broken\n")
    r = runner.invoke(app, ["ingest", "--db", db, "-q", str(bad)])
    assert r.exit_code == 1
    assert "quarantined" in r.output and "invalid JSON" in r.output
    r = runner.invoke(app, ["quarantine", "--db", db])
    assert "bad.jsonl" in r.output and r.exit_code == 0
    r = runner.invoke(app, ["ingest", "--db", db, str(tmp_path / "missing.json")])
    assert r.exit_code == 2
    r = runner.invoke(app, ["ingest", "--db", db, "--format", "nope", str(p)])
    assert r.exit_code != 0 and "unknown format" in r.output


def test_cli_reads_stdin_and_env_db(tmp_path, backend, location):
    db = location
    p = demo_file(tmp_path, 3)
    env = {k: v for k, v in _env().items() if k not in ("LIBRA_STORE", "LIBRA_DB")}
    # LIBRA_STORE names any store; LIBRA_DB, the older name, a file
    env["LIBRA_STORE" if backend == "lake" else "LIBRA_DB"] = db
    proc = subprocess.run([sys.executable, "-m", "libra.cli.main", "ingest", "-q", "-"],
                          input=p.read_bytes(), capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    r = runner.invoke(app, ["stats", "--db", db])
    assert "runs: 3" in r.output


def _env():
    import os
    return dict(os.environ)


def test_every_command_has_help():
    for cmd in (["--help"], ["ingest", "--help"], ["export", "--help"], ["stats", "--help"],
                ["quarantine", "--help"], ["formats", "--help"], ["costs", "--help"], ["app", "--help"], ["demo", "build", "--help"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 0 and "Usage" in r.output, cmd
        if cmd != ["--help"] and cmd != ["formats", "--help"]:
            assert "--db" in r.output, cmd


def test_export_parquet_and_jsonl_roundtrip(tmp_path, mem_store, store):
    ingest(mem_store, [demo_file(tmp_path, 15)])
    counts = export_parquet(mem_store, tmp_path / "pq")
    assert counts["runs"] == 15
    assert pq.read_table(tmp_path / "pq" / "steps.parquet").num_rows == mem_store.counts()["steps"]
    assert pq.read_table(tmp_path / "pq" / "feedback.parquet").num_rows == mem_store.counts()["feedback"]
    n = export_jsonl(mem_store, tmp_path / "out.jsonl")
    assert n == 15
    s = ingest(store, [tmp_path / "out.jsonl"])
    assert s.runs_added == 15 and s.quarantined == 0
    assert store.counts()["steps"] == mem_store.counts()["steps"]
    assert store.counts()["feedback"] == mem_store.counts()["feedback"]


def test_otlp_export_reimports_to_the_same_conversation(tmp_path, mem_store):
    runs = list(generate_runs(8, seed=21))
    p = tmp_path / "otlp.jsonl"
    with open(p, "wb") as f:
        for i, r in enumerate(runs, 1):
            req = run_to_otlp(r, f"{i:032x}")
            # the Collector writes a trace's spans across several lines: split them
            spans = req["resourceSpans"][0]["scopeSpans"][0]["spans"]
            for chunk in (spans[: len(spans) // 2], spans[len(spans) // 2:]):
                line = {"resourceSpans": [{**req["resourceSpans"][0],
                                           "scopeSpans": [{"scope": {"name": "x"}, "spans": chunk}]}]}
                f.write(orjson.dumps(line) + b"\n")
    s = ingest(mem_store, [p])
    assert s.runs_added == 8 and s.quarantined == 0
    assert s.formats == {"otlp-json": 1}
    keep = ("user_message", "agent_message", "tool_call", "tool_result", "thought")
    back = {r.native_id: r for r in iter_runs(mem_store)}
    for i, r in enumerate(runs, 1):
        b = back[f"{i:032x}"]
        want = [(x.kind, x.content if x.kind != "tool_call" else x.tool_name) for x in r.steps if x.kind in keep]
        got = [(x.kind, x.content if x.kind != "tool_call" else x.tool_name) for x in b.steps if x.kind in keep]
        assert got == want
        assert [x.is_error for x in b.steps if x.kind == "tool_result"] == \
               [x.is_error for x in r.steps if x.kind == "tool_result"]
        assert b.agent == r.agent


def test_openinference_spans_are_understood(tmp_path, mem_store):
    def kv(k, v):
        return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}

    tid = "ab" * 16
    spans = [
        {"traceId": tid, "spanId": "01" * 8, "name": "agent", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000005000000000",
         "attributes": [kv("openinference.span.kind", "AGENT"), kv("input.value", "Weather in Oslo?"),
                        kv("output.value", "It is 3°C in Oslo.")]},
        {"traceId": tid, "spanId": "02" * 8, "parentSpanId": "01" * 8, "name": "ChatCompletion",
         "startTimeUnixNano": "1700000001000000000", "endTimeUnixNano": "1700000002000000000",
         "attributes": [kv("openinference.span.kind", "LLM"), kv("llm.model_name", "gpt-4o"),
                        kv("llm.input_messages.0.message.role", "user"),
                        kv("llm.input_messages.0.message.content", "Weather in Oslo?"),
                        kv("llm.output_messages.0.message.role", "assistant"),
                        kv("llm.output_messages.0.message.tool_calls.0.tool_call.function.name", "weather"),
                        kv("llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
                           '{"city": "Oslo"}'),
                        kv("llm.token_count.prompt", 42), kv("llm.token_count.completion", 7)]},
        {"traceId": tid, "spanId": "03" * 8, "parentSpanId": "01" * 8, "name": "weather",
         "startTimeUnixNano": "1700000003000000000", "endTimeUnixNano": "1700000004000000000",
         "status": {"code": 2, "message": "timeout"},
         "attributes": [kv("openinference.span.kind", "TOOL"), kv("tool.name", "weather"),
                        kv("input.value", '{"city": "Oslo"}')]},
    ]
    p = tmp_path / "oi.json"
    p.write_bytes(orjson.dumps({"resourceSpans": [{"resource": {"attributes": [kv("service.name", "wx-bot")]},
                                                   "scopeSpans": [{"spans": spans}]}]}))
    s = ingest(mem_store, [p])
    assert s.runs_added == 1
    run = next(iter_runs(mem_store))
    kinds = [(x.kind, x.tool_name) for x in run.steps]
    assert kinds == [("user_message", None), ("tool_call", "weather"), ("tool_result", "weather"),
                     ("agent_message", None)]
    assert run.steps[1].tool_args == {"city": "Oslo"} and run.steps[1].input_tokens == 42
    assert run.steps[2].is_error and run.steps[2].content == "timeout"
    assert run.model == "gpt-4o" and run.agent == "wx-bot"


def test_integers_past_64_bits_are_stored_not_fatal(tmp_path, mem_store):
    """An OTLP token count of 2**70 used to take the whole ingest down in the writer."""
    from traces.ingest import ingest_runs
    from traces.model import Run, Step

    span = {"traceId": "0" * 31 + "9", "spanId": "0" * 15 + "1", "name": "chat m",
            "startTimeUnixNano": "1792234200000000000", "endTimeUnixNano": "1792234201000000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(2**70)}},
                           {"key": "gen_ai.output.messages",
                            "value": {"stringValue": '[{"role": "assistant", "content": "hi"}]'}}]}
    p = tmp_path / "big.jsonl"
    p.write_bytes(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + b"\n")
    s = ingest(mem_store, [p])
    assert (s.runs_added, s.quarantined) == (1, 0)
    assert mem_store.execute("SELECT content, input_tokens FROM steps") == [("hi", None)]
    # runs built in code may carry such integers anywhere
    run = Run(native_id="big", format="libra", source="code", globally_unique_id=True,
              steps=(Step("tool_call", tool_name="t", tool_args={"n": 2**80}, output_tokens=2**64),),
              metadata={"id": -(2**90)})
    assert ingest_runs(mem_store, [run]).runs_added == 1
    assert ingest_runs(mem_store, [run]).duplicates == 1
    args, out, meta = mem_store.execute(
        "SELECT s.tool_args, s.output_tokens, r.metadata FROM steps s JOIN runs r USING (run_id) "
        "WHERE r.native_id = 'big'")[0]
    assert (json.loads(args), out, json.loads(meta)) == ({"n": str(2**80)}, None, {"id": str(-(2**90))})


def test_search_finds_step_text_before_and_after_the_index_is_built(tmp_path, store, backend):
    """Ingest writes no search text; substring search reads steps, the index build gathers run_text."""
    from dataclasses import replace


    from traces import search
    from traces.model import Step, StepKind
    from traces.queries import RunFilter, list_runs

    base = list(generate_runs(6, seed=8))
    needle = "zanzibar-quokka"  # in one step's content only, not in any task
    marked = replace(base[0], native_id="marked", steps=base[0].steps + (Step(StepKind.AGENT, f"off to {needle} now"),))
    tool = replace(base[1], native_id="tool", steps=base[1].steps + (Step(StepKind.TOOL_CALL, "", tool_name=needle),))
    write_jsonl([marked, tool, *base[2:]], tmp_path / "r.jsonl")
    assert ingest(store, [tmp_path / "r.jsonl"]).quarantined == 0
    assert store.scalar("SELECT count(*) FROM run_text") == 0

    def found(fts: bool) -> set[str]:
        return set(list_runs(store, RunFilter(text=needle, fts=fts))["run_id"])

    ids = {r: store.scalar("SELECT run_id FROM runs WHERE native_id = ?", [r]) for r in ("marked", "tool")}
    assert found(False) == set(ids.values())
    assert found(True) == set(ids.values())  # no index yet: falls back to substrings
    with store.transaction() as con:
        built = search.rebuild_search_index(con)
    assert built == (backend == "duckdb")
    if built:
        assert store.scalar("SELECT count(*) FROM run_text") == 6
        assert found(True) == set(ids.values())  # BM25 over the gathered text


def test_integer_trace_ids_past_64_bits_stay_exact_and_print_as_32_hex_digits(tmp_path, mem_store):
    """Two traces whose 128-bit integer ids share their first 20 digits stay two runs, with the ids
    a tracing backend prints; floats would have rounded both to 1.0092742960927626e+38."""
    a, b = 100927429609276260000000000000000000001, 100927429609276260000000000000000000002
    spans = [{"name": "chat gpt", "context": {"trace_id": t, "span_id": 7 + i},
              "start_time": "2026-01-05T10:00:00Z", "end_time": "2026-01-05T10:00:01Z",
              "attributes": {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}}
             for i, t in enumerate((a, b))]
    p = tmp_path / "spans.jsonl"
    p.write_text("".join(json.dumps(s) + "\n" for s in spans))  # the standard library writes big ints exactly
    s = ingest(mem_store, [p], fmt="otel-spans")
    assert (s.runs_added, s.quarantined) == (2, 0), s.reasons
    ids = sorted(r for r, in mem_store.execute("SELECT native_id FROM runs"))
    assert ids == [format(a, "032x"), format(b, "032x")]
    assert all(len(i) == 32 for i in ids)


def test_who_and_when_keeps_who_spoke_when_the_log_names_them(mem_store, tmp_path):
    """Algorithm-Generated Who&When logs put the speaker in `name`: a terminal is a tool, an expert an agent."""
    import json

    rec = {"question": "How many?", "mistake_agent": "Verification_Expert", "mistake_step": "2",
           "mistake_reason": "It trusted the script's wrong count.",
           "history": [{"role": "assistant", "name": "human", "content": "How many?"},
                       {"role": "user", "name": "Computer_terminal", "content": "exitcode: 1\nTraceback: x"},
                       {"role": "assistant", "name": "Verification_Expert", "content": "The count is 4."},
                       {"content": "The answer is 4.", "role": "user"}]}
    src = tmp_path / "algo.json"
    src.write_text(json.dumps(rec))
    ingest(mem_store, [src])
    rows = mem_store.execute("SELECT idx, kind, actor, tool_name, is_error FROM steps ORDER BY idx")
    assert rows == [(0, "user_message", "human", None, False), (1, "tool_result", "Computer_terminal", "terminal", True),
                    (2, "agent_message", "Verification_Expert", None, False), (3, "user_message", "human", None, False)]
    # the gold step is the named expert's own turn, not "a user message by human"
    assert mem_store.scalar("SELECT json_extract_string(gold, '$.mistake_agent') FROM runs") == "Verification_Expert"


def test_search_is_never_stale_while_the_index_waits_and_a_replaced_run_is_searched_by_its_new_text(
        store, tmp_path, backend, monkeypatch):
    """Big stores are indexed off the ingest's path (`libra index`, a scheduled `index` job); until then
    runs the index lacks are matched by their words, so a search right after an ingest finds them."""
    from dataclasses import replace

    from libra.ingesting import ingest as ingest_composed
    from libra.ingesting import rebuild_index
    from traces.model import Step, StepKind
    from traces.queries import RunFilter, list_runs, unindexed

    if backend != "duckdb":
        pytest.skip("a lake has no full-text index; search there is by substring only")
    base = list(generate_runs(4, seed=3))
    first = replace(base[0], native_id="first", steps=base[0].steps + (Step(StepKind.AGENT, "met the walrus"),))
    write_jsonl([first, *base[1:3]], tmp_path / "a.jsonl")
    ingest_composed(store, [tmp_path / "a.jsonl"])
    assert rebuild_index(store) and unindexed(store) == 0
    late = replace(base[3], native_id="late", steps=base[3].steps + (Step(StepKind.AGENT, "a quokka waved"),))
    changed = replace(first, steps=first.steps[:-1] + (Step(StepKind.AGENT, "met the narwhal instead"),))
    write_jsonl([late, changed], tmp_path / "b.jsonl")
    monkeypatch.setattr("libra.ingesting.INDEX_AUTOMATICALLY_UP_TO", 3)  # a store past it: no rebuild on ingest
    done = ingest_composed(store, [tmp_path / "b.jsonl"])
    assert not done.indexed and done.index_pending and unindexed(store) == 2  # the new run and the replaced one

    def found(text: str) -> set[str]:
        ids = list(list_runs(store, RunFilter(text=text, fts=True))["run_id"])
        return {n for n, in store.execute("SELECT native_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                                          [ids])}

    assert found("quokka") == {"late"}        # not in the index yet, found by its words
    assert found("narwhal") == {"first"}      # replaced: searched by its new text
    assert found("walrus") == set()           # and no longer by the old one
    rebuild_index(store)
    assert unindexed(store) == 0 and found("quokka") == {"late"} and found("narwhal") == {"first"}


def test_only_integers_past_64_bits_take_the_slow_json_parser(monkeypatch):
    """Digits inside strings (a hex trace id that happens to be all digits, nanosecond times) are read by
    orjson; an integer value of 20 or more digits (or a negative one of 19), anywhere a value starts,
    still by the exact parser."""
    from traces.importers import base

    slow = []
    real = base._stdlib_json
    monkeypatch.setattr(base, "_stdlib_json", lambda raw: slow.append(raw) or real(raw))
    line = b'{"traceId":"00000000000000000000000000000001","startTimeUnixNano":"1792234200000000000123"}'
    assert base.decode_json(line)["traceId"] == "00000000000000000000000000000001"
    assert slow == []
    big = 100927429609276260000000000000000000001
    assert base.decode_json(f'{{"id": {big}}}'.encode()) == {"id": big}
    assert base.decode_json(f"[1, {big}]".encode()) == [1, big]
    assert base.decode_json(f"[\n  -{big}\n]".encode()) == [-big]
    assert base.decode_json(str(big).encode()) == big
    assert len(slow) == 4
    # one below the smallest 64-bit integer has 19 digits: orjson made it a float (found by the
    # property test below); a time in nanoseconds, 19 digits, is still orjson's
    low = -(2**63) - 1
    assert base.decode_json(f'{{"v": {low}}}'.encode()) == {"v": low}
    assert base.decode_json(f"[0,{low}]".encode()) == [0, low]
    assert base.decode_json(f" {low}".encode()) == low
    assert len(slow) == 7
    assert base.decode_json(b'{"t": 1792234200000000000, "s": "x-1792234200000000000"}')["t"] == 1792234200000000000
    assert len(slow) == 7


def test_json_with_any_integers_and_strings_reads_as_the_exact_parser_reads_it():
    """Whatever the pre-check decides, the value is the one the standard library reads: big integers exact,
    digit-heavy strings untouched, in any nesting."""
    import json as stdlib_json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from traces.importers.base import decode_json

    leaves = st.integers(min_value=-(10**40), max_value=10**40) | st.text("0123456789:,[ -ab", max_size=45)
    values = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.text("0123456789:k", max_size=25), kids, max_size=4), max_leaves=12)

    @settings(max_examples=300, deadline=None)
    @given(values, st.sampled_from([None, 2]))
    def check(value, indent):
        text = stdlib_json.dumps(value, indent=indent)
        assert decode_json(text.encode()) == stdlib_json.loads(text)

    check()


def test_batches_from_parsers_are_gathered_up_to_a_byte_bound_not_only_a_step_count(tmp_path, monkeypatch):
    """Big steps make a batch of few steps big in memory: the gathering writes at a byte bound as well."""
    from traces.ingest import writer as w
    from traces.model import IngestSummary, Run, Step, StepKind
    from traces.store import Store

    store = Store(tmp_path / "g.duckdb")
    written: list[int] = []
    real = w.BatchWriter._write
    monkeypatch.setattr(w.BatchWriter, "_write",
                        lambda self, runs, rejected: (written.append(runs.steps.num_rows), real(self, runs, rejected)))

    def batch(i: int) -> w.Batch:
        return w.prepare([Run(native_id=f"big-{i}", format="libra", source="t", agent="a", task="t",
                              steps=tuple(Step(kind=StepKind.AGENT, content=f"{i}.{k} " + "x" * 20_000)
                                          for k in range(10)), globally_unique_id=True)])

    size = batch(0).steps.nbytes
    monkeypatch.setattr(w, "GATHER_BYTES", 3 * size)
    bw = w.BatchWriter(store, IngestSummary(), batch_steps=1_000_000)
    for i in range(7):
        bw.add_batch(batch(i), [])
    bw.close()
    assert written == [30, 30, 10]  # three batches' worth, long before a million steps
    assert store.scalar("SELECT count(*) FROM steps") == 70
