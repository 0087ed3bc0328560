"""Mutated, truncated and garbage input for every importer.

Each importer gets valid seed records built here (no shared data needed),
which hypothesis mutates: keys deleted, values replaced by arbitrary JSON,
garbage lines inserted, bytes truncated or flipped. Whatever comes in, the
importer must not crash, every record must end up stored or quarantined,
and every stored run must be whole.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import zipfile

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libra.demo import generate_runs
from traces.export import run_to_otlp
from traces.importers.base import Source
from traces.importers.generic import run_to_record
from traces.ingest import BatchWriter, ingest_source
from traces.model import IngestSummary
from traces.store import Store

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _demo(n=3):
    return list(generate_runs(n, seed=11))


def seeds() -> dict[str, tuple[str, list]]:
    """format -> (layout, records); layout is jsonl, array or doc."""
    runs = _demo()
    chat = [{"task_id": i, "trial": 0, "reward": float(i % 2), "info": {"task": {"instruction": "book"}},
             "traj": [{"role": "system", "content": "policy"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": f"c{i}", "type": "function",
                           "function": {"name": "get_user", "arguments": '{"id": 1}'}}]},
                      {"role": "tool", "tool_call_id": f"c{i}", "name": "get_user", "content": "Error: no"},
                      {"role": "assistant", "content": "Thought: ok\nAction: search[x]"}]}
            for i in range(3)]
    adp = [{"id": str(i), "content": [
        {"class_": "text_observation", "content": "do it", "source": "user"},
        {"class_": "api_action", "function": "search", "kwargs": {"q": "x"}, "description": "think"},
        {"class_": "text_observation", "content": "result", "source": "environment"},
        {"class_": "code_action", "language": "bash", "content": "ls", "description": ""},
        {"class_": "message_action", "content": "done", "description": None}],
        "details": {"resolved": "True"}} for i in range(3)]
    spans_doc = {"spans": [
        {"name": "call_llm m", "context": {"trace_id": 7, "span_id": 2}, "parent": {"trace_id": 7, "span_id": 1},
         "start_time": 1758026593210770000, "end_time": 1758026593449611000, "status": {"status_code": "ok"},
         "attributes": {"gen_ai.operation.name": "call_llm", "gen_ai.request.model": "m",
                        "gen_ai.input.messages": '[{"role": "user", "content": "what time"}]',
                        "gen_ai.output": '[{"tool.name": "clock", "tool.args": "{}"}]',
                        "gen_ai.usage.input_tokens": 5}},
        {"name": "execute_tool clock", "context": {"trace_id": 7, "span_id": 3},
         "parent": {"trace_id": 7, "span_id": 1}, "start_time": 1758026593450406000,
         "end_time": 1758026593452926000, "status": {"status_code": "error"},
         "attributes": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "clock",
                        "gen_ai.output": "boom"}},
        {"name": "invoke_agent [a]", "context": {"trace_id": 7, "span_id": 1}, "parent": None,
         "start_time": 1758026593210000000, "end_time": 1758026593460000000,
         "attributes": {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"}}],
        "final_output": "noon"}
    otlp = [run_to_otlp(r, f"{i:032x}") for i, r in enumerate(runs, 1)]
    inspect_doc = {"version": 2, "status": "success", "eval": {"run_id": "R", "task": "t", "model": "m"},
                   "samples": [{"id": i, "epoch": 1, "input": "q", "target": "a",
                                "messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a", "tool_calls": [
                                                 {"id": "x", "function": "f", "arguments": {"a": 1}}]},
                                             {"role": "tool", "content": "r", "function": "f"}],
                                "scores": {"match": {"value": "C"}}} for i in range(3)]}
    swe = {"environment": "e", "info": {"exit_status": "submitted", "model_stats": {"tokens_sent": 5}},
           "history": [{"role": "system", "content": "s"}, {"role": "user", "content": "fix"}],
           "trajectory": [{"action": "ls\n", "observation": "a b", "thought": "look", "response": "look",
                           "state": '{"open_file": "n/a"}'} for _ in range(3)]}
    oh = [{"instance_id": f"i{i}", "instruction": "fix", "metadata": {"agent_class": "CodeActAgent"},
           "test_result": {"git_patch": "diff"}, "error": None,
           "history": [{"id": 1, "source": "user", "action": "message", "args": {"content": "fix"}},
                       {"id": 2, "source": "agent", "action": "run", "args": {"command": "ls", "thought": "t"},
                        "llm_metrics": {"accumulated_token_usage": {"prompt_tokens": 5, "completion_tokens": 2}}},
                       {"id": 3, "source": "agent", "observation": "run", "cause": 2, "content": "x",
                        "extras": {"metadata": {"exit_code": 1}}},
                       {"id": 4, "source": "agent", "action": "finish", "args": {"final_thought": "done"}}]}
          for i in range(3)]
    ww = {"question": "q", "ground_truth": "a", "question_ID": "qid", "mistake_agent": "WebSurfer",
          "mistake_step": "2", "mistake_reason": "clicked the wrong link",
          "history": [{"role": "human", "content": "q"}, {"role": "Orchestrator (thought)", "content": "plan"},
                      {"role": "WebSurfer", "content": "clicked"}, {"role": "Orchestrator (-> WebSurfer)",
                                                                     "content": "go back"}]}
    pb = [{"obs": [{"time": "Day 1, 11:00 PM", "event": f"user opens file {i}"}],
           "pred_task": None if i == 0 else "help", "valid": bool(i % 2), "help_needed": True,
           "annotation": [True, False, True], "category": "Correct-Detection (CD)"} for i in range(3)]
    return {
        "libra": ("jsonl", [orjson.loads(orjson.dumps(run_to_record(r), default=str)) for r in runs]),
        "chat": ("array", chat), "adp": ("array", adp), "otel-spans": ("doc", [spans_doc]),
        "otlp-json": ("jsonl", orjson.loads(orjson.dumps(otlp))), "inspect": ("doc", [inspect_doc]),
        "swe-agent": ("doc", [swe]), "openhands": ("jsonl", oh), "who-and-when": ("doc", [ww]),
        "proactivebench": ("jsonl", pb),
    }


SEEDS = seeds()


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value, delete=False):
    for p in path[:-1]:
        obj = obj[p]
    if delete and isinstance(obj, dict):
        obj.pop(path[-1], None)
    elif delete and isinstance(obj, list):
        obj.pop(path[-1])
    else:
        obj[path[-1]] = value


@st.composite
def mutated(draw, fmt: str) -> bytes:
    layout, records = SEEDS[fmt]
    recs = copy.deepcopy(records)
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(recs) - 1))
        paths = [p for p in _paths(recs[i]) if p]
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["delete", "replace"]))
        _set(recs[i], path, draw(json_values), delete=op == "delete")
    if layout == "jsonl":
        lines = [orjson.dumps(r) for r in recs]
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), draw(st.binary(max_size=40)).replace(b"\n", b" "))
        data = b"\n".join(lines) + b"\n"
    elif layout == "array":
        data = orjson.dumps(recs, option=orjson.OPT_INDENT_2)
    else:
        data = orjson.dumps(recs[0], option=orjson.OPT_INDENT_2)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 4)) == 0 and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return data


_TALLY = (
    "SELECT (SELECT count(*) FROM runs), (SELECT coalesce(sum(records), 0) FROM quarantine),"
    " (SELECT count(*) FROM runs r WHERE n_steps != (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id)),"
    " (SELECT count(*) FROM steps s WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = s.run_id))")


def check_ingest(store: Store, fmt: str, data: bytes, name: str = "input.json") -> IngestSummary:
    """Ingest one input into a store that may hold earlier examples' runs; check what it added."""
    from traces import importers

    runs0, quar0, _, _ = store.execute(_TALLY)[0]
    summary = IngestSummary()
    w = BatchWriter(store, summary, batch_steps=7)
    ingest_source(store, Source(name=name, data=data), w, summary, importer=importers.get(fmt))
    w.flush()
    db_runs, db_quar, bad_runs, orphan = store.execute(_TALLY)[0]
    assert db_runs - runs0 == summary.runs_added
    assert db_quar - quar0 == summary.quarantined
    assert bad_runs == 0 and orphan == 0, "a stored run is missing steps"
    from traces.importers.records import RecordImporter, sample

    # where a line is a record (not a span of a trace, nor a document holding many samples)
    if sample(Source(name=name, data=data)).layout == "jsonl" and isinstance(importers.get(fmt), RecordImporter):
        # counted apart from the readers: every non-blank line is a record, stored or quarantined
        lines = sum(1 for line in data.split(b"\n") if line.strip())
        assert summary.records == lines, f"{summary.records} records read from {lines} lines"
    return summary


# LIBRA_FUZZ_EXAMPLES=500 for a deeper search than CI's.
FUZZ = settings(max_examples=int(os.environ.get("LIBRA_FUZZ_EXAMPLES", "30")), deadline=None,
                suppress_health_check=list(HealthCheck))


def _one_run_per_record(fmt, data, summary):
    """Formats where one record is one run: records = added + updated + duplicates + quarantined."""
    assert summary.records == summary.runs_added + summary.runs_updated + summary.duplicates + summary.quarantined


@FUZZ
@given(st.data())
def test_generic_jsonl(mem_store, data):
    s = check_ingest(mem_store, "libra", data.draw(mutated("libra")), "x.jsonl")
    _one_run_per_record("libra", None, s)


@FUZZ
@given(st.data())
def test_chat(mem_store, data):
    s = check_ingest(mem_store, "chat", data.draw(mutated("chat")))
    _one_run_per_record("chat", None, s)


@FUZZ
@given(st.data())
def test_adp(mem_store, data):
    s = check_ingest(mem_store, "adp", data.draw(mutated("adp")))
    _one_run_per_record("adp", None, s)


@FUZZ
@given(st.data())
def test_openhands(mem_store, data):
    s = check_ingest(mem_store, "openhands", data.draw(mutated("openhands")), "output.jsonl")
    _one_run_per_record("openhands", None, s)


@FUZZ
@given(st.data())
def test_proactivebench(mem_store, data):
    s = check_ingest(mem_store, "proactivebench", data.draw(mutated("proactivebench")), "train.jsonl")
    _one_run_per_record("proactivebench", None, s)


@FUZZ
@given(st.data())
def test_who_and_when(mem_store, data):
    s = check_ingest(mem_store, "who-and-when", data.draw(mutated("who-and-when")))
    _one_run_per_record("who-and-when", None, s)


@FUZZ
@given(st.data())
def test_swe_agent(mem_store, data):
    s = check_ingest(mem_store, "swe-agent", data.draw(mutated("swe-agent")), "x.traj")
    _one_run_per_record("swe-agent", None, s)


@FUZZ
@given(st.data())
def test_otel_spans(mem_store, data):
    check_ingest(mem_store, "otel-spans", data.draw(mutated("otel-spans")))


@FUZZ
@given(st.data())
def test_otlp_json(mem_store, data):
    check_ingest(mem_store, "otlp-json", data.draw(mutated("otlp-json")), "traces.jsonl")


@FUZZ
@given(st.data())
def test_inspect_json(mem_store, data):
    check_ingest(mem_store, "inspect", data.draw(mutated("inspect")), "log.json")


@FUZZ
@given(st.data())
def test_inspect_eval_archive(mem_store, data):
    _, recs = SEEDS["inspect"]
    doc = recs[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("header.json", orjson.dumps({k: v for k, v in doc.items() if k != "samples"}))
        for i, smp in enumerate(doc["samples"]):
            raw = orjson.dumps(smp)
            if data.draw(st.booleans()):
                raw = raw[: data.draw(st.integers(0, len(raw)))]
            z.writestr(f"samples/{i}_epoch_1.json", raw)
    blob = buf.getvalue()
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    check_ingest(mem_store, "inspect", blob, "log.eval")


@FUZZ
@given(st.data())
def test_sotopia_csv(mem_store, data):
    cols = ["ID", "model", "pk", "data", "prolific_id"] + [
        f"{d}{suffix}_{k}" for k in (1, 2) for d in ("believability", "goal") for suffix in ("", "_reasoning")]
    rows = []
    for i in range(4):
        ep = {"scenario": "s", "names": ["A", "B"], "social_goal": {"A": "x", "B": "y"},
              "parsed_conversation": [{"speaker": "A", "dialogue": '"hi"'}, {"speaker": "B", "dialogue": "B [action] waves"}]}
        row = {"ID": str(i), "model": "m", "pk": f"ep{i // 2}", "data": orjson.dumps(ep).decode(),
               "prolific_id": f"r{i}", "believability_1": "7", "believability_reasoning_1": "natural",
               "goal_1": "5", "goal_reasoning_1": "got it", "believability_2": "6",
               "believability_reasoning_2": "ok", "goal_2": "2", "goal_reasoning_2": "no"}
        for _ in range(data.draw(st.integers(0, 2))):
            key = data.draw(st.sampled_from(cols))
            row[key] = data.draw(st.text(max_size=30))
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    blob = buf.getvalue().encode()
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    check_ingest(mem_store, "sotopia", blob, "x.csv")


@FUZZ
@given(st.binary(max_size=300))
def test_pure_garbage_never_crashes_any_importer(mem_store, blob):
    for fmt in SEEDS:
        check_ingest(mem_store, fmt, blob)


def test_seeds_are_valid(mem_store):
    for fmt, (layout, recs) in SEEDS.items():
        if layout == "jsonl":
            data = b"\n".join(orjson.dumps(r) for r in recs)
        elif layout == "array":
            data = orjson.dumps(recs)
        else:
            data = orjson.dumps(recs[0])
        s = check_ingest(mem_store, fmt, data)
        assert s.quarantined == 0 and s.runs_added >= 1, fmt


_FACT_KEYS = ["session.id", "gen_ai.conversation.id", "conversation.id", "user.id", "enduser.id", "service.version",
              "gen_ai.agent.version", "gen_ai.agent.id", "http.method", "gen_ai.system"]
_fact_dicts = st.dictionaries(st.sampled_from(_FACT_KEYS), st.one_of(st.none(), st.just(""), st.text(max_size=3),
                                                                     st.integers(0, 3)), max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_fact_dicts, _fact_dicts), max_size=5), _fact_dicts)
def test_run_facts_read_as_if_each_spans_resource_and_attributes_were_one_dict(spans, root_resource):
    """The run's session, user and release come from the first span naming them, its attributes over its
    resource, then from the root's resource: what merging the two dicts of each span gave."""
    from traces.importers._genai import first_attr
    from traces.importers._span import Span
    from traces.importers._spans import RUN_FACTS, _run_facts

    made = [Span("t" * 32, f"{i:016x}", None, "s", None, None, attributes=a, resource=r)
            for i, (a, r) in enumerate(spans)]
    expected = {}
    for key, names in RUN_FACTS.items():
        found = next((v for v in (first_attr({**sp.resource, **sp.attributes}, *names) for sp in made) if v is not None),
                     first_attr(root_resource, *names))
        if found is not None:
            expected[key] = str(found)
    assert _run_facts(made, root_resource) == expected
