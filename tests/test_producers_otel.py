"""Traces from the instrumentation libraries people run, made at test time (issue 19 §2-3).

Each producer runs for real against a local fake model server (tests/fake_openai.py) or its
own test model: OpenTelemetry's openai-v2 instrumentation of the openai client (content as
log events, or none), pydantic-ai with its FunctionModel, and the OpenAI Agents SDK traced
by OpenInference. Spans and logs go through the SDK's own OTLP encoders into the receiver's
spool and drainer, the path `libra serve` takes.
"""

from __future__ import annotations

import pytest
from google.protobuf.json_format import MessageToDict

from traces.export import load_runs
from traces.receiver.drain import drain_once
from traces.receiver.spool import Spool

pytest.importorskip("opentelemetry.sdk")


class Capture:
    """A tracer and logger provider that keep what they export in memory."""

    def __init__(self):
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.spans, self.logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
        res = Resource.create({"service.name": "weather-bot", "service.version": "0.9.0"})
        self.tracer_provider = TracerProvider(resource=res)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logger_provider = LoggerProvider(resource=res)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def into(self, store, tmp_path) -> dict:
        from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        spool = Spool(tmp_path / "spool")
        spool.put("traces", MessageToDict(encode_spans(self.spans.get_finished_spans())))
        logs = self.logs.get_finished_logs()
        if logs:
            spool.put("logs", MessageToDict(encode_logs(logs)))
        got = drain_once(store, spool)
        assert got.quarantined == 0 and got.stored == got.records
        return load_runs(store, [r for r, in store.execute("SELECT run_id FROM runs")])


TOOLS = [{"type": "function", "function": {"name": "weather", "description": "The weather in a city.",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}]


def _openai_conversation(cap: Capture, base_url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
    tracer = cap.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("invoke_agent weather-bot", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather-bot", "session.id": "s-7"}):
        msgs = [{"role": "user", "content": "Weather in Lima?"}]
        first = client.chat.completions.create(model="gpt-test", messages=msgs, tools=TOOLS)
        call = first.choices[0].message.tool_calls[0]
        msgs += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"}]
        client.chat.completions.create(model="gpt-test", messages=msgs, tools=TOOLS)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "FAIL please"}])


@pytest.mark.parametrize("content", [True, False], ids=["content-as-log-events", "no-content"])
def test_openai_v2_instrumentation_keeps_calls_failures_and_content_sent_as_logs(
        mem_store, tmp_path, monkeypatch, content):
    pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    from fake_openai import FakeOpenAI
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", str(content).lower())
    cap = Capture()
    OpenAIInstrumentor().instrument(tracer_provider=cap.tracer_provider, logger_provider=cap.logger_provider)
    try:
        with FakeOpenAI() as fake:
            _openai_conversation(cap, fake.base_url)
    finally:
        OpenAIInstrumentor().uninstrument()
    run, = cap.into(mem_store, tmp_path).values()
    assert run.agent == "weather-bot" and run.model == "gpt-test"
    assert (run.metadata["session_id"], run.metadata["release"]) == ("s-7", "0.9.0")
    calls = [s for s in run.steps if "llm_call" in (s.metadata or {})]
    # three calls, each a step with its own facts, the failed one too
    assert [c.metadata["llm_call"].get("finish_reasons") for c in calls] == [["tool_calls"], ["stop"], None]
    assert all(c.metadata["llm_call"]["response_id"].startswith("chatcmpl-") for c in calls[:2])
    assert calls[0].input_tokens and calls[0].output_tokens == 5
    failed = calls[2]
    assert failed.is_error and failed.content == "InternalServerError: Error code: 500 - upstream overloaded"
    texts = [(s.kind, s.content) for s in run.steps if s.content]
    if content:  # the log events' content, joined to their spans
        assert ("user_message", "Weather in Lima?") in texts and ("agent_message", "It is sunny in Lima.") in texts
        assert any(s.kind == "tool_call" and s.tool_name == "weather" for s in run.steps)
    else:
        assert not any(k == "user_message" for k, _ in texts)


def test_pydantic_ai_function_model_thinking_tools_and_agent_name(mem_store, tmp_path):
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ThinkingPart, ToolCallPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.models.instrumented import InstrumentationSettings

    def model(messages, info):
        if len(messages) == 1:
            return ModelResponse(parts=[ThinkingPart(content="I should look it up."),
                                        ToolCallPart(tool_name="weather", args={"city": "Lima"})])
        return ModelResponse(parts=[TextPart(content="It is sunny in Lima.")])

    cap = Capture()
    agent = Agent(FunctionModel(model), name="forecaster")
    agent.instrument = InstrumentationSettings(tracer_provider=cap.tracer_provider, include_content=True)

    @agent.tool_plain
    def weather(city: str) -> str:
        return f"sunny in {city}"

    assert agent.run_sync("Weather in Lima?").output == "It is sunny in Lima."
    run, = cap.into(mem_store, tmp_path).values()
    assert run.agent == "forecaster"
    kinds = [(s.kind, s.tool_name) for s in run.steps]
    assert ("thought", None) in kinds and ("tool_call", "weather") in kinds and ("tool_result", "weather") in kinds
    assert next(s for s in run.steps if s.kind == "thought").content == "I should look it up."
    assert run.steps[-1].kind == "agent_message" and run.steps[-1].content == "It is sunny in Lima."


def test_openai_agents_sdk_through_openinference_keeps_the_agents_name(mem_store, tmp_path):
    pytest.importorskip("agents")
    pytest.importorskip("openinference.instrumentation.openai_agents")
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from fake_openai import FakeOpenAI
    from openai import AsyncOpenAI
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    cap = Capture()
    OpenAIAgentsInstrumentor().instrument(tracer_provider=cap.tracer_provider)
    try:
        with FakeOpenAI() as fake:
            set_tracing_disabled(False)
            model = OpenAIChatCompletionsModel(model="gpt-test", openai_client=AsyncOpenAI(
                base_url=fake.base_url, api_key="test", max_retries=0))
            agent = Agent(name="Weather Agent", instructions="Answer about weather.", model=model, tools=[weather])
            result = Runner.run_sync(agent, "Weather in Lima?")
        assert result.final_output == "It is sunny in Lima."
    finally:
        OpenAIAgentsInstrumentor().uninstrument()
    run, = cap.into(mem_store, tmp_path).values()
    assert run.agent == "Weather Agent"  # not "workflow"
    assert any(s.kind == "tool_call" and s.tool_name == "weather" for s in run.steps)
    assert any(s.kind == "agent_message" and "sunny in Lima" in s.content for s in run.steps)
