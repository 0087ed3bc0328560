"""`libra export --as otlp` round-trips (issue 19 §5): ids, times, labels, feedback and verdicts."""

from __future__ import annotations

import json
from datetime import datetime

import orjson
from typer.testing import CliRunner

from libra.cli.main import app
from metrics import sets
from metrics.definitions import Metric, MetricSet
from metrics.judges.base import Judgement, Verdict
from metrics.scoring import write_verdicts
from traces.export import load_runs
from traces.ingest import ingest, ingest_runs
from traces.model import Feedback, Run, Step, StepKind
from traces.store import Store

T0 = datetime(2026, 11, 30, 9, 0, 0)


class Fixed:
    backend, version = "test", "1"


def _runs(store):
    return load_runs(store, [r for r, in store.execute("SELECT run_id FROM runs ORDER BY run_id")])


def test_a_run_comes_back_with_its_id_labels_and_notes(tmp_path):
    src = Store(str(tmp_path / "a.duckdb"))
    run = Run(native_id="", format="chat", source="t", task="Book a table", reward=0.0, outcome="failure",
              gold={"reward": 0.0, "resolved": False, "target": "table for 2"},
              steps=(Step(StepKind.USER, "Book a table for two"), Step(StepKind.AGENT, "Which day?"),
                     Step(StepKind.USER, "Friday"),
                     Step(StepKind.TOOL_CALL, "", tool_name="book", tool_args={"n": 4}),
                     Step(StepKind.TOOL_RESULT, "booked for 4", tool_name="book"),
                     Step(StepKind.AGENT, "Done.")),
              feedback=(Feedback("ann", "It booked four seats, not two.", steps=(3,), rating=1.0),),
              metadata={"session_id": "s-1", "user_id": "u-9"})
    ingest_runs(src, [run])
    (rid,), = src.execute("SELECT run_id FROM runs")
    ms = sets.save(src, MetricSet("m", 0, "m", (Metric("seats", "Right seats", "Books what was asked"),)))
    write_verdicts(src, ms, Fixed(), [Judgement(rid, (Verdict("seats", -1, (3,), "four, not two"),))], None)
    out = tmp_path / "otlp.jsonl"
    r = CliRunner().invoke(app, ["export", str(out), "--as", "otlp", "--db", src.path])
    assert r.exit_code == 0, r.output
    root = json.loads(out.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    events = {e["name"] for e in root["events"]}
    assert events == {"libra.feedback", "libra.score"}
    back = Store(str(tmp_path / "b.duckdb"))
    s = ingest(back, [out])
    assert s.quarantined == 0
    (got_id, got), = _runs(back).items()
    assert got_id == rid  # notes and verdicts keyed by the run id still match
    assert (got.reward, got.outcome, got.gold, got.task) == (0.0, "failure", run.gold, "Book a table")
    assert [(x.kind, x.content, x.tool_name) for x in got.steps] == \
        [(x.kind, x.content, x.tool_name) for x in run.steps]
    note, = got.feedback
    assert (note.author, note.text, note.steps, note.rating) == ("ann", "It booked four seats, not two.", (3,), 1.0)
    assert (got.metadata["session_id"], got.metadata["user_id"]) == ("s-1", "u-9")


def test_a_trace_comes_back_with_its_span_ids_parents_and_times(tmp_path):
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    spans = [
        {"traceId": tid, "spanId": "00f067aa0ba902b7", "name": "invoke_agent planner", "startTimeUnixNano":
            "1764493200000000000", "endTimeUnixNano": "1764493205000000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                        {"key": "gen_ai.agent.name", "value": {"stringValue": "planner"}}]},
        {"traceId": tid, "spanId": "1111111111111111", "parentSpanId": "00f067aa0ba902b7", "name": "chat m",
         "startTimeUnixNano": "1764493201000000000", "endTimeUnixNano": "1764493202500000000", "attributes": [
             {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
             {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps(
                 [{"role": "user", "parts": [{"type": "text", "content": "plan a trip"}]}])}},
             {"key": "gen_ai.output.messages", "value": {"stringValue": json.dumps(
                 [{"role": "assistant", "parts": [{"type": "text", "content": "Day 1: Lima"}]}])}}]},
        {"traceId": tid, "spanId": "2222222222222222", "parentSpanId": "00f067aa0ba902b7",
         "name": "execute_tool maps", "startTimeUnixNano": "1764493203000000000",
         "endTimeUnixNano": "1764493204000000000", "attributes": [
             {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
             {"key": "gen_ai.tool.name", "value": {"stringValue": "maps"}},
             {"key": "gen_ai.tool.call.result", "value": {"stringValue": "3 routes"}}]}]
    first = tmp_path / "in.jsonl"
    first.write_bytes(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + b"\n")
    a = Store(str(tmp_path / "a.duckdb"))
    ingest(a, [first])
    out = tmp_path / "out.jsonl"
    assert CliRunner().invoke(app, ["export", str(out), "--as", "otlp", "--db", a.path]).exit_code == 0
    exported = {sp["spanId"]: sp for sp in
                json.loads(out.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"]}
    assert {sp["traceId"] for sp in exported.values()} == {tid}
    assert set(exported) >= {"00f067aa0ba902b7", "1111111111111111", "2222222222222222"}
    assert exported["1111111111111111"]["parentSpanId"] == "00f067aa0ba902b7"
    assert (exported["1111111111111111"]["startTimeUnixNano"], exported["1111111111111111"]["endTimeUnixNano"]) \
        == ("1764493201000000000", "1764493202500000000")  # not 500 ns
    b = Store(str(tmp_path / "b.duckdb"))
    ingest(b, [out])
    (ida, ra), = _runs(a).items()
    (idb, rb), = _runs(b).items()
    assert ida == idb == f"otlp-json:{tid}"
    assert [(x.kind, x.content, x.span_id, x.started_at) for x in ra.steps] == \
        [(x.kind, x.content, x.span_id, x.started_at) for x in rb.steps]


def test_scores_and_notes_in_langfuse_and_phoenix_shapes_on_the_exported_trace(tmp_path):
    src = Store(str(tmp_path / "a.duckdb"))
    run = Run(native_id="r1", format="chat", source="t", globally_unique_id=True,
              steps=(Step(StepKind.USER, "hi"), Step(StepKind.AGENT, "hello")),
              feedback=(Feedback("ann", "Friendly.", rating=5.0), Feedback("bo", "<b>ok</b>")))
    ingest_runs(src, [run])
    ms = sets.save(src, MetricSet("m", 0, "m", (Metric("greets", "Greets", "Says hello"),)))
    write_verdicts(src, ms, Fixed(), [Judgement("chat:r1", (Verdict("greets", 1, (), "said hello"),))], None)
    runner = CliRunner()
    for shape in ("otlp", "langfuse", "phoenix"):
        r = runner.invoke(app, ["export", str(tmp_path / shape), "--as", shape, "--db", src.path, "--json"])
        assert r.exit_code == 0, r.output
    root = json.loads((tmp_path / "otlp").read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    lf = [json.loads(x) for x in (tmp_path / "langfuse").read_text().splitlines()]
    assert {x["traceId"] for x in lf} == {root["traceId"]}
    score = next(x for x in lf if x["name"] == "m.greets")
    assert (score["value"], score["dataType"], score["comment"]) == (1.0, "NUMERIC", "said hello")
    notes = {x["comment"]: x["value"] for x in lf if x["name"] == "feedback"}
    assert notes == {"Friendly.": 5.0, "<b>ok</b>": "note"}  # text kept as written
    ph = json.loads((tmp_path / "phoenix").read_text())["data"]
    assert {a["span_id"] for a in ph} == {root["spanId"]}
    kinds = sorted((a["name"], a["annotator_kind"]) for a in ph)
    assert kinds == [("feedback", "HUMAN"), ("feedback", "HUMAN"), ("m.greets", "CODE")]
    # ids are stable: the same export twice gives the same ids (sending it again updates, not duplicates)
    runner.invoke(app, ["export", str(tmp_path / "again"), "--as", "langfuse", "--db", src.path])
    assert [json.loads(x)["id"] for x in (tmp_path / "again").read_text().splitlines()] == [x["id"] for x in lf]


def test_parquet_times_are_utc_instants_and_json_columns_are_json(tmp_path):
    import duckdb

    src = Store(str(tmp_path / "a.duckdb"))
    ingest_runs(src, [Run(native_id="r1", format="chat", source="t", globally_unique_id=True, started_at=T0,
                          metadata={"k": [1, 2]}, steps=(Step(StepKind.AGENT, "x", started_at=T0),))])
    r = CliRunner().invoke(app, ["export", str(tmp_path / "pq"), "--db", src.path])
    assert r.exit_code == 0, r.output
    got = duckdb.sql(f"SELECT typeof(started_at), typeof(metadata), json_extract(metadata, '$.k[0]')::INT, "
                     f"epoch(started_at) FROM '{tmp_path / 'pq' / 'runs.parquet'}'").fetchone()
    assert got[:3] == ("TIMESTAMP WITH TIME ZONE", "JSON", 1)
    assert got[3] == T0.replace(tzinfo=__import__("datetime").UTC).timestamp()
