"""Fidelity of OpenTelemetry traces made by the real SDK (issue 19 §2-3).

Spans are created with the OpenTelemetry SDK's TracerProvider, encoded by the
SDK's own OTLP encoder (what OTLPSpanExporter sends), written as OTLP JSON and
ingested: every span becomes something, and the run keeps who, which session
and which release.
"""

from __future__ import annotations

import json

import pytest

from traces.ingest import ingest
from traces.export import load_runs

pytest.importorskip("opentelemetry.sdk")


def _provider(resource: dict):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    return provider, mem


def _ingest(store, tmp_path, spans, name="otel.jsonl"):
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    path = tmp_path / name
    path.write_text(json.dumps(MessageToDict(encode_spans(spans))) + "\n")
    summary = ingest(store, [path])
    assert summary.quarantined == 0
    return load_runs(store, [r for r, in store.execute("SELECT run_id FROM runs")])


def test_every_span_becomes_something_and_the_run_keeps_session_user_and_release(store, tmp_path):
    from opentelemetry.trace import Status, StatusCode

    provider, mem = _provider({"service.name": "support-bot", "service.version": "2.3.1"})
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("invoke_agent triage", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage",
            "gen_ai.conversation.id": "conv-77", "session.id": "sess-9", "user.id": "u-123"}) as root:
        # a call whose content the instrumentation does not put on spans (openai-v2's default)
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ["tool_calls"], "gen_ai.usage.input_tokens": 40,
                "gen_ai.usage.output_tokens": 7}):
            pass
        with tracer.start_as_current_span("SELECT orders", attributes={
                "db.system.name": "postgresql", "db.query.text": "SELECT * FROM orders WHERE id = $1"}):
            pass
        with tracer.start_as_current_span("GET", attributes={
                "http.request.method": "GET", "url.full": "https://api.example/refunds", "http.response.status_code": 503}):
            pass
        with tracer.start_as_current_span("normalise_address"):
            pass
        # a failed LLM call: HTTP 500 from the provider, recorded as the SDK records exceptions
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "error.type": "InternalServerError"}) as failed:
            failed.record_exception(RuntimeError("Error code: 500 - upstream overloaded"))
            failed.set_status(Status(StatusCode.ERROR, "Error code: 500"))
    runs = _ingest(store, tmp_path, mem.get_finished_spans())
    run = runs[f"otlp-json:{format(root.get_span_context().trace_id, '032x')}"]
    meta = run.metadata
    assert (meta["session_id"], meta["conversation_id"], meta["user_id"], meta["release"]) == \
        ("sess-9", "conv-77", "u-123", "2.3.1")
    assert run.agent == "triage" and run.metadata["spans"] == 6
    kinds = [(s.kind, s.tool_name) for s in run.steps]
    calls = [s for s in run.steps if (s.metadata or {}).get("llm_call") is not None]
    assert len(calls) == 2  # the content-free call and the failed one
    quiet, broke = calls
    assert quiet.input_tokens == 40 and quiet.metadata["llm_call"]["response_id"] == "chatcmpl-1"
    assert quiet.metadata["llm_call"]["finish_reasons"] == ["tool_calls"] and not quiet.is_error
    assert broke.is_error and "upstream overloaded" in broke.content
    assert ("tool_call", "db.postgresql") in kinds and ("tool_call", "http") in kinds
    db = next(s for s in run.steps if s.tool_name == "db.postgresql")
    assert db.tool_args["statement"].startswith("SELECT") and not db.is_error
    http = next(s for s in run.steps if s.tool_name == "http")
    assert http.is_error and http.tool_args["status_code"] == 503
    assert any(s.kind == "observation" and s.metadata == {"span": "normalise_address"} for s in run.steps)
    assert "upstream overloaded" in " ".join(meta["errors"])


def test_openinference_agents_keep_their_names_and_thinking_parts_are_thoughts(store, tmp_path):
    provider, mem = _provider({"service.name": "agents-app"})
    tracer = provider.get_tracer("openinference.instrumentation.openai_agents")
    # the OpenAI Agents SDK through OpenInference: a workflow root, then the agent by its own name
    with tracer.start_as_current_span("Agent workflow", attributes={"openinference.span.kind": "AGENT"}) as root, \
            tracer.start_as_current_span("Refund Agent", attributes={"openinference.span.kind": "AGENT"}), \
            tracer.start_as_current_span("response", attributes={
                "openinference.span.kind": "LLM", "llm.model_name": "gpt-4.1",
                "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "Refund order 7",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Refund issued.", "session.id": "chat-42", "user.id": "alice"}):
        pass
    # pydantic-ai's instrumentation: "thinking" parts
    with tracer.start_as_current_span("chat claude", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-5-5",
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                {"type": "thinking", "content": "Add the two numbers."}, {"type": "text", "content": "4"}]}])}) as pa:
        pass
    runs = _ingest(store, tmp_path, mem.get_finished_spans())
    agents = runs[f"otlp-json:{format(root.get_span_context().trace_id, '032x')}"]
    assert agents.agent == "Refund Agent"  # not "workflow"
    assert (agents.metadata["session_id"], agents.metadata["user_id"]) == ("chat-42", "alice")
    thinking = runs[f"otlp-json:{format(pa.get_span_context().trace_id, '032x')}"]
    assert [(s.kind, s.content) for s in thinking.steps] == [
        ("user_message", "2+2?"), ("thought", "Add the two numbers."), ("agent_message", "4")]


def test_a_multi_agent_trace_reads_as_a_tree_with_each_calls_latency_tokens_and_model(store, tmp_path):
    """Agents handing work to agents: the wrapper spans become no step but are kept as the outline,
    so the run view's tree nests each call under the agent that made it, with its own timing."""
    from opentelemetry.trace import Status, StatusCode

    from traces.queries import get_run
    from traces.tree import span_tree

    provider, mem = _provider({"service.name": "crew"})
    tracer = provider.get_tracer("app")
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 30,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text",
                                                                                    "content": "ok"}]}])}
    with tracer.start_as_current_span("invoke_agent planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}):
        with tracer.start_as_current_span("chat gpt-4o", attributes=chat):
            pass
        with tracer.start_as_current_span("invoke_agent researcher", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}):
            with tracer.start_as_current_span("execute_tool search", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}) as tool:
                tool.set_status(Status(StatusCode.ERROR, "timeout"))
            with tracer.start_as_current_span("chat gpt-4o", attributes=chat):
                pass
    runs = _ingest(store, tmp_path, mem.get_finished_spans())
    (run_id,) = runs
    run, steps = get_run(store, run_id)
    tree = span_tree(steps, run["metadata"])
    outline = tree[tree["kind"] == "span"]
    assert list(outline["label"]) == ["invoke_agent planner", "invoke_agent researcher"]
    assert list(outline["depth"]) == [0, 1]
    calls = tree[tree["model"].notna()]
    assert list(calls["depth"]) == [1, 2]  # the planner's call, then the researcher's under it
    assert set(calls["model"]) == {"gpt-4o-2024-08-06"} and set(calls["tokens"]) == {35}
    assert (calls["duration_s"] >= 0).all() and calls["start_s"].is_monotonic_increasing
    failed = tree[tree["label"] == "search"]
    assert failed["error"].any() and (failed["depth"] == 2).all()  # call and result, the result failed
    # every row is a step of the run or a span that holds some: nothing invented, nothing lost
    assert sorted(tree["idx"].dropna().astype(int)) == sorted(steps["idx"].astype(int))


def test_a_span_folds_away_what_it_holds_in_the_run_view(store, location, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from libra import accounts

    provider, mem = _provider({"service.name": "crew"})
    tracer = provider.get_tracer("app")
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text",
                                                                                    "content": "found it"}]}])}
    with tracer.start_as_current_span("invoke_agent planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}), \
            tracer.start_as_current_span("invoke_agent researcher", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}), \
            tracer.start_as_current_span("chat gpt-4o", attributes=chat):
        pass
    (run_id,) = _ingest(store, tmp_path, mem.get_finished_spans())
    accounts.add_user(store, "ana", "pw-for-ana", "annotator")
    monkeypatch.setenv("LIBRA_STORE", location)
    at = AppTest.from_string("import streamlit as st\nfrom libra.web import run_view\n"
                             "st.session_state.setdefault('pages', {})\nrun_view.page()\n", default_timeout=60)
    at.session_state["user"] = accounts.get_user(store, "ana")
    at.session_state["run_id"] = run_id
    at.run()
    assert not at.exception
    steps_shown = lambda: [b.key for b in at.button if (b.key or "").startswith("anchor-")]  # noqa: E731
    before = steps_shown()
    assert before
    fold = next(b for b in at.button if (b.key or "").startswith("fold-step-span:") and b.label == "fold")
    fold.click().run()
    assert len(steps_shown()) < len(before)  # what the span holds is hidden
    assert any("nodes folded" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "unfold").click().run()
    assert steps_shown() == before
