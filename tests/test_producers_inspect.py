"""Inspect AI logs made at test time by Inspect itself, with its mock model (issue 19 §2).

Current Inspect writes `.eval` archives whose members are zstd-compressed; both
that and `.json` logs must land whole: messages, the tool call and its result,
each generated message's time and tokens, the score as reward.
"""

from __future__ import annotations

import pytest

from traces.export import load_runs
from traces.ingest import ingest

inspect_ai = pytest.importorskip("inspect_ai")


def _run_inspect(log_dir, log_format: str):
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import tool

    @tool
    def lookup():
        async def execute(city: str) -> str:
            """Look up the weather.

            Args:
                city: The city.
            """
            return f"sunny in {city}"
        return execute

    def usage(o, n):
        # counted here, so the mock model needs no tokenizer download
        o.usage = ModelUsage(input_tokens=n, output_tokens=3, total_tokens=n + 3)
        return o

    outputs = [usage(ModelOutput.for_tool_call("mockllm/model", "lookup", {"city": "Lima"}), 20),
               usage(ModelOutput.from_content("mockllm/model", "It is sunny in Lima."), 31)]
    model = get_model("mockllm/model", custom_outputs=outputs)
    task = Task(dataset=[Sample(input="Weather in Lima?", target="sunny")],
                solver=[use_tools(lookup()), generate()], scorer=includes())
    log, = inspect_eval(task, model=model, log_dir=str(log_dir), log_format=log_format, display="none")
    assert log.status == "success", log.error
    return log.location


@pytest.mark.parametrize("log_format", ["eval", "json"])
def test_inspect_logs_land_with_tool_calls_times_and_tokens(mem_store, tmp_path, log_format):
    path = _run_inspect(tmp_path / "logs", log_format)
    summary = ingest(mem_store, [path])
    assert (summary.records, summary.quarantined) == (1, 0)
    run, = load_runs(mem_store, [r for r, in mem_store.execute("SELECT run_id FROM runs")]).values()
    kinds = [s.kind for s in run.steps]
    # the mock model says "tool call for tool lookup" beside its call
    assert kinds == ["user_message", "agent_message", "tool_call", "tool_result", "agent_message"], kinds
    said, call, result, answer = run.steps[1:]
    assert call.tool_name == "lookup" and call.tool_args == {"city": "Lima"}
    assert result.content == "sunny in Lima" and result.started_at is not None
    # a model call's tokens and time go on the first step of the message it generated
    assert (said.input_tokens, said.output_tokens) == (20, 3) and said.started_at is not None
    assert (answer.input_tokens, answer.output_tokens) == (31, 3) and answer.started_at >= said.started_at
    assert answer.metadata["llm_call"]["finish_reasons"] == ["stop"]
    assert run.reward == 1.0 and run.outcome == "success"
