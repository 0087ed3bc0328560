"""The LLM judge: one call per run for all metrics, the rubric in the cached
prompt prefix, the run inside a delimited data block."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, Field, create_model, model_validator

from metrics.definitions import MetricSet
from metrics.judges.base import Judgement, RunView, Verdict
from metrics.llm.client import LLM, Request
from metrics.llm.prompts import DATA_NOTICE, data_block, render_rubric, render_steps

JUDGE_INSTRUCTIONS = """You evaluate one run of an AI agent against a set of metrics.

For every metric in the rubric give exactly one verdict:
+1 if the agent did what the metric rewards, -1 if it did what the metric penalises,
0 if the metric does not apply to this run (nothing in the run bears on it).
Cite the steps that show it by their "step" number, and give a one-sentence reason.
Judge only behaviour visible in the run. When a focus actor is named, judge only that actor.

{notice}

The rubric follows."""


def judge_schema(metric_set: MetricSet) -> type[BaseModel]:
    """The judge's output schema for a metric set; stable per set so the prompt prefix caches."""
    ids = tuple(m.metric_id for m in metric_set.metrics)
    MetricId = Literal[ids]  # noqa: N806 - a type
    verdict = create_model(
        "MetricVerdict",
        metric_id=(MetricId, Field(description="the metric's id from the rubric")),
        value=(Literal[-1, 0, 1], Field(description="+1 did well, -1 did wrong, 0 not applicable")),
        evidence_steps=(list[int], Field(default_factory=list, description="step numbers that show it")),
        reason=(str, Field(max_length=600, description="one sentence")),
    )

    class JudgeOutput(BaseModel):
        verdicts: list[verdict]  # type: ignore[valid-type]

        @model_validator(mode="after")
        def one_per_metric(self):
            seen = [v.metric_id for v in self.verdicts]
            missing = sorted(set(ids) - set(seen))
            dupes = sorted({i for i in seen if seen.count(i) > 1})
            if missing or dupes:
                raise ValueError(f"give exactly one verdict per metric; missing {missing}, repeated {dupes}")
            return self

    return JudgeOutput


def judge_request(view: RunView, metric_set: MetricSet, schema: type[BaseModel]) -> Request:
    parts = []
    if view.task:
        parts.append("Task given to the agent:\n" + data_block("task", view.task))
    if view.focus:
        parts.append(f"Focus actor: judge only what {view.focus!r} did.")
    parts.append("The run, one step per line as a JSON object:\n" + data_block("run", render_steps(view.steps)))
    parts.append("Call record_verdicts with one verdict per metric.")
    return Request(
        purpose="judge", tool_name="record_verdicts",
        tool_description="Record one verdict per metric for this run.",
        schema=schema, system=JUDGE_INSTRUCTIONS.format(notice=DATA_NOTICE),
        rubric=render_rubric(metric_set.metrics), user="\n\n".join(parts),
    )


class LLMJudge:
    backend = "llm"

    def __init__(self, llm: LLM, use_batch: bool = False, prompt_version: str = "judge-v1"):
        self.llm = llm
        self.use_batch = use_batch
        self.version = f"{llm.config.model}/{prompt_version}"

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        schema = judge_schema(metric_set)
        items = [(v.run_id, judge_request(v, metric_set, schema)) for v in runs]
        results = self.llm.batch(items, progress=progress) if self.use_batch else self.llm.map(items, progress)
        out = []
        for v in runs:
            r = results[v.run_id]
            if not r.ok:
                out.append(Judgement(v.run_id, error=r.error, cost=r.cost, budget_exhausted=r.budget_exhausted))
                continue
            n = len(v.steps)
            verdicts = tuple(
                Verdict(x.metric_id, int(x.value), tuple(i for i in x.evidence_steps if 0 <= i < n),
                        x.reason.strip())
                for x in r.value.verdicts)
            out.append(Judgement(v.run_id, verdicts, cost=r.cost))
        return out
