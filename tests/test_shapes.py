"""Inputs people have that matched none of the importers (issue 19 §4)."""

from __future__ import annotations

import json

import pytest

from traces.export import load_runs
from traces.ingest import ingest


def _runs(store):
    return load_runs(store, [r for r, in store.execute("SELECT run_id FROM runs ORDER BY run_id")])


def test_console_span_exporter_output_from_the_sdk_is_read(mem_store, tmp_path):
    """The SDK's ConsoleSpanExporter writes pretty-printed spans one after another, not JSON lines."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    path = tmp_path / "console.txt"
    with open(path, "w") as out:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("invoke_agent helper", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}), \
                tracer.start_as_current_span("chat m", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                    "gen_ai.input.messages": json.dumps([{"role": "user", "content": "hello"}]),
                    "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": "hi there"}])}):
            pass
        provider.shutdown()
    s = ingest(mem_store, [path])
    assert (s.records, s.quarantined) == (2, 0)
    run, = _runs(mem_store).values()
    assert run.format == "otel-spans" and run.agent == "helper"
    assert [(x.kind, x.content) for x in run.steps] == [("user_message", "hello"), ("agent_message", "hi there")]


def test_a_cut_console_dump_keeps_the_spans_before_the_cut(mem_store, tmp_path):
    span = {"name": "chat m", "context": {"trace_id": "0x" + "1" * 32, "span_id": "0x" + "2" * 16},
            "parent_id": None, "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
            "attributes": {"gen_ai.operation.name": "chat"}}
    other = {**span, "context": {"trace_id": "0x" + "3" * 32, "span_id": "0x" + "4" * 16}}
    path = tmp_path / "cut.txt"
    path.write_text(json.dumps(span, indent=4) + "\n" + json.dumps(other, indent=4) + "\n" + json.dumps(span, indent=4)[:40])
    s = ingest(mem_store, [path])
    tally, = s.per_file
    assert tally.records == tally.stored + tally.quarantined and s.quarantined == 1 and len(_runs(mem_store)) == 2
    line, = mem_store.execute("SELECT line FROM quarantine")[0]
    assert line == 2 * (json.dumps(span, indent=4).count("\n") + 1) + 1  # where the cut document starts


def test_flat_span_per_line_jsonl(mem_store, tmp_path):
    rows = [{"trace_id": "ab" * 16, "span_id": "01" * 8, "parent_span_id": None, "name": "invoke_agent planner",
             "start_time": "2026-02-01T10:00:00Z", "end_time": "2026-02-01T10:00:05Z",
             "attributes": {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                            "session.id": "s-1"}, "status_code": "OK"},
            {"trace_id": "ab" * 16, "span_id": "02" * 8, "parent_span_id": "01" * 8, "name": "execute_tool fetch",
             "start_time": "2026-02-01T10:00:01Z", "end_time": "2026-02-01T10:00:02Z",
             "attributes": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch"},
             "status_code": "ERROR", "status_message": "timeout after 30 s"}]
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = ingest(mem_store, [path])
    assert (s.records, s.quarantined) == (2, 0)
    run, = _runs(mem_store).values()
    assert run.agent == "planner" and run.metadata["session_id"] == "s-1"
    result = next(x for x in run.steps if x.kind == "tool_result")
    assert result.is_error and result.content == "timeout after 30 s" and result.tool_name == "fetch"


def test_tool_calls_in_every_common_shape_and_ids_and_rewards_kept(mem_store, tmp_path):
    recs = [
        {"id": "r1", "task_id": "T-9", "reward_info": {"reward": 0.5}, "messages": [
            {"role": "user", "content": "book it"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "book", "arguments": {"n": 2}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "booked"}, {"role": "assistant", "content": "done"}]},
        {"id": "r2", "messages": [
            {"role": "user", "content": "find x"},
            {"role": "assistant", "content": [{"type": "text", "text": "searching"},
                                              {"type": "tool_use", "id": "tu1", "name": "search", "input": {"q": "x"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "found x"}]},
            {"role": "assistant", "content": "here it is"}]},
        {"id": "r3", "messages": [
            {"role": "user", "content": "add"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "f1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1}"}}]},
            {"role": "tool", "tool_call_id": "f1", "content": "1"}]},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = ingest(mem_store, [path])
    assert (s.records, s.quarantined) == (3, 0)
    runs = {r.native_id: r for r in _runs(mem_store).values()}
    calls = {k: [(x.tool_name, x.tool_args) for x in r.steps if x.kind == "tool_call"] for k, r in runs.items()}
    assert calls == {"r1": [("book", {"n": 2})], "r2": [("search", {"q": "x"})], "r3": [("add", {"a": 1})]}
    results = {k: [(x.tool_name, x.content) for x in r.steps if x.kind == "tool_result"] for k, r in runs.items()}
    assert results == {"r1": [("book", "booked")], "r2": [("search", "found x")], "r3": [("add", "1")]}
    assert runs["r1"].reward == 0.5 and runs["r1"].metadata["task_id"] == "T-9"
