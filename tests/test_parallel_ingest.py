"""Parsing one input in several processes gives exactly what one process gives."""

from __future__ import annotations

import json

import orjson
import pytest

from traces.ingest import parallel
from libra.demo import generate_runs
from traces.export import run_to_otlp
from traces.importers.base import Source, in_shard
from traces.importers.generic import GenericImporter, run_to_record
from traces.ingest import ingest
from traces.model import IngestSummary
from traces.store import Store
from traces.ingest.writer import BatchWriter

TABLES = {
    "runs": "SELECT * EXCLUDE (ingested_at) FROM runs ORDER BY run_id",
    "steps": "SELECT * FROM steps ORDER BY run_id, idx",
    "feedback": "SELECT * EXCLUDE (created_at) FROM feedback ORDER BY feedback_id",
    "quarantine": "SELECT source, format, line, byte_offset, field, reason, raw FROM quarantine ORDER BY line, reason",
}


@pytest.fixture(autouse=True)
def shard_small_files(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)


def contents(store: Store) -> dict[str, list]:
    return {t: store.execute(q) for t, q in TABLES.items()}


def both_ways(new_location, path, **kw):
    out = []
    for workers in (1, 3):
        s = Store(new_location(f"w{workers}"))
        summary = ingest(s, [path], workers=workers, batch_steps=200, **kw)
        out.append((summary.as_dict(), contents(s)))
        s.close()
    return out


def test_generic_jsonl_sharded_matches_one_process(tmp_path, new_location):
    recs = [run_to_record(r) for r in generate_runs(60, seed=8)]
    edited = json.loads(json.dumps(recs[5], default=str))
    edited["steps"][0]["content"] = "a later version of run 5"
    bad = json.loads(json.dumps(recs[7], default=str))
    bad["steps"][1]["kind"] = "telepathy"
    lines = [orjson.dumps(r, default=str) for r in recs]
    lines[7] = orjson.dumps(bad)
    # a broken line, an unkeyable record, a repeat and a later version of an earlier run
    lines += [b'{"run_id": "x", "steps": [', b'{"no_id": 1, "steps": []}', lines[3], orjson.dumps(edited)]
    p = tmp_path / "runs.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    (one, one_rows), (three, three_rows) = both_ways(new_location, p)
    assert one == three
    assert one_rows == three_rows
    assert one["quarantined"] == 3 and one["runs_added"] == 59
    assert [r[2] for r in one_rows["quarantine"]] == [8, 61, 62]
    assert any(r[6] == "a later version of run 5" for r in one_rows["steps"])  # the last version won


def test_otlp_traces_spread_over_lines_stay_whole(tmp_path, new_location):
    lines = []
    for i, run in enumerate(generate_runs(40, seed=4, with_feedback=False)):
        req = run_to_otlp(run, f"{i + 1:032x}")
        spans = req["resourceSpans"][0]["scopeSpans"][0]["spans"]
        # each span of a trace on its own line, interleaved with other traces' spans
        for sp in spans:
            one = json.loads(json.dumps(req))
            one["resourceSpans"][0]["scopeSpans"][0]["spans"] = [sp]
            lines.append((len(lines) % 7, orjson.dumps(one)))
    lines.sort(key=lambda x: x[0])
    body = [line for _, line in lines] + [b'{"resourceSpans": 3}', b"not json"]
    p = tmp_path / "otlp.jsonl"
    p.write_bytes(b"\n".join(body) + b"\n")
    (one, one_rows), (three, three_rows) = both_ways(new_location, p, fmt="otlp-json")
    assert one == three and one_rows == three_rows
    assert one["runs_added"] == 40 and one["quarantined"] == 2


def test_otlp_lines_of_one_trace_go_whole_to_one_shard(tmp_path, new_location):
    """A line whose spans all name one trace is skipped unparsed by the other shards; its bad
    records must then be reported by the shard it went to, exactly once."""
    lines = []
    for i, run in enumerate(generate_runs(30, seed=6, with_feedback=False)):
        req = run_to_otlp(run, f"{i + 1:032x}")
        spans = req["resourceSpans"][0]["scopeSpans"][0]["spans"]
        if i % 5 == 1:
            spans.append({"spanId": "00000000000000ff", "name": "orphan"})  # no traceId: unkeyable
        if i % 5 == 2:
            spans.append({"traceId": f"{i + 1:032x}", "name": "no span id"})  # bad, yet keyed
        lines.append(orjson.dumps(req))
    # A line holding trace t3 and one span of trace t2 written with an escaped key: the bytes
    # alone would say the line is all t3's. t2 and t3 fall in different shards of three.
    t2, t3 = next((a, b) for a, b in ((f"{k:032x}", f"{k + 1:032x}") for k in range(100, 200))
                  if in_shard(a, (0, 3)) and in_shard(b, (1, 3)))
    r2, r3 = generate_runs(2, seed=9, with_feedback=False)
    req2, req3 = run_to_otlp(r2, t2), run_to_otlp(r3, t3)
    spans2 = req2["resourceSpans"][0]["scopeSpans"][0]["spans"]
    moved = spans2.pop()
    req3["resourceSpans"][0]["scopeSpans"][0]["spans"].append(moved)
    mixed = orjson.dumps(req3).replace(b'"traceId":"' + t2.encode(), b'"\\u0074raceId":"' + t2.encode())
    lines += [orjson.dumps(req2), mixed,
              b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"1" * 32 + b'"',
              b'{"resourceSpans": 3}']
    p = tmp_path / "otlp.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    (one, one_rows), (three, three_rows) = both_ways(new_location, p, fmt="otlp-json")
    assert one == three and one_rows == three_rows
    assert one["runs_added"] == 32, "t2 stayed one run"
    assert one["quarantined"] == 6 + 6 + 2  # orphans, spans without ids, a cut line, a bad request


def test_a_failing_parser_process_is_reported(tmp_path, store):
    p = tmp_path / "runs.jsonl"
    p.write_bytes(b"\n".join(orjson.dumps(run_to_record(r), default=str) for r in generate_runs(5, seed=1)))
    s = store
    summary = IngestSummary()
    writer = BatchWriter(s, summary)

    class Unregistered(GenericImporter):
        name = "not-registered-anywhere"  # the parsing processes cannot find it

    with pytest.raises(RuntimeError, match=r"parsing process \d failed: KeyError"):
        parallel.ingest_sharded(Source(name=str(p), path=p), Unregistered(), writer, summary, 2)
    writer.close()
    assert s.counts()["runs"] == 0


def test_a_parsing_process_loads_neither_duckdb_nor_the_store():
    # Two or more of these run beside the writer during a big ingest: DuckDB would cost
    # each ~60 MB of resident memory and ~0.1 CPU-s for nothing (issue 21, §2).
    import subprocess
    import sys

    code = ("import sys, traces.ingest.shard_worker, traces.importers.otlp\n"
            "print(sorted(m for m in ('duckdb', 'pandas', 'traces.store') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # and the package's names still resolve, loaded on first use
    from traces import ingest as package

    assert package.BatchWriter is BatchWriter and callable(package.ingest_runs)
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_parsing_processes_run_on_the_lean_allocators_unless_the_user_chose_others(tmp_path, store, monkeypatch):
    # Arrow's default pool and glibc's per-thread arenas held ~10 % of an ingest's peak (issue 21, §2).
    import subprocess

    p = tmp_path / "runs.jsonl"
    p.write_bytes(b"\n".join(orjson.dumps(run_to_record(r), default=str) for r in generate_runs(6, seed=2)))
    started = []
    real = subprocess.Popen

    def popen(*args, **kw):
        started.append(kw.get("env"))
        return real(*args, **kw)

    monkeypatch.setattr(parallel.subprocess, "Popen", popen)
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    summary = IngestSummary()
    writer = BatchWriter(store, summary)
    parallel.ingest_sharded(Source(name=str(p), path=p), GenericImporter(), writer, summary, 2)
    writer.close()
    assert store.counts()["runs"] == 6
    assert len(started) == 2
    assert all(env["ARROW_DEFAULT_MEMORY_POOL"] == "system" and env["MALLOC_ARENA_MAX"] == "4" for env in started)
    assert all(env["PATH"] == __import__("os").environ["PATH"] for env in started)


@pytest.mark.parametrize(("chosen", "pool"), [(None, "system"), ("jemalloc", "jemalloc")])
def test_an_ingest_process_takes_the_system_pool_unless_the_user_chose_one(chosen, pool, monkeypatch):
    import subprocess
    import sys

    from traces.ingest import heap

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    if chosen:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", chosen)
    writer = ("from traces.ingest import heap\nimport pyarrow as pa\nheap.lean()\n"
              "print(pa.default_memory_pool().backend_name)")
    parser = "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    for code, env in ((writer, None), (parser, heap.child_env())):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.strip() == pool


def test_parsing_processes_send_small_batches_whatever_the_writers_size(tmp_path, store, monkeypatch):
    # What a parsing process holds is one batch: at the writer's size the two held ~100 MB more
    # than at 4k steps, for the same CPU (issue 21, §2). The writer still gathers them into its own.
    runs = list(generate_runs(40, seed=3))
    p = tmp_path / "runs.jsonl"
    p.write_bytes(b"\n".join(orjson.dumps(run_to_record(r), default=str) for r in runs))
    monkeypatch.setattr(parallel, "SHARD_BATCH_STEPS", 30)
    received = []
    summary = IngestSummary()
    writer = BatchWriter(store, summary)  # its own batches: 130k steps
    real = writer.add_batch
    monkeypatch.setattr(writer, "add_batch", lambda batch, rej: received.append(batch.steps.num_rows) or real(batch, rej))
    parallel.ingest_sharded(Source(name=str(p), path=p), GenericImporter(), writer, summary, 2)
    writer.close()
    longest = max(len(r.steps) for r in runs)
    assert sum(received) == sum(len(r.steps) for r in runs) == store.counts()["steps"]
    assert len(received) > 4 and max(received) < 30 + longest


def test_a_batch_commits_on_the_writers_threads_and_gives_the_default_back(tmp_path, monkeypatch):
    # A commit that folds the log into the file compresses with a buffer per DuckDB thread, and it
    # was the writer's peak: the thread count is set for the commit too, not reset before it (§2).
    from traces.ingest import writer as writer_mod

    s = Store(str(tmp_path / "s.duckdb"))
    seen = []
    real = writer_mod.write_batch

    def spy(con, *a):
        seen.append(con.execute("SELECT current_setting('threads')").fetchone()[0])
        real(con, *a)

    monkeypatch.setattr(writer_mod, "write_batch", spy)
    with s.hold():
        default = s.scalar("SELECT current_setting('threads')")
        w = BatchWriter(s, IngestSummary())
        w.threads = 1
        for run in generate_runs(3, seed=5):
            w.add_run(run)
        w.flush()
        assert seen == [1] and s.counts()["runs"] == 3
        assert s.scalar("SELECT current_setting('threads')") == default
        with pytest.raises(RuntimeError), s.transaction(threads=1) as con:
            assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
            raise RuntimeError("the block fails")
        assert s.scalar("SELECT current_setting('threads')") == default
