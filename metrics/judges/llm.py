"""Judges: given runs and metrics, a verdict per run and metric.

A verdict is +1 (did it well), -1 (did something wrong) or 0 (not
applicable), with the evidence steps and a short reason. Two backends sit
behind one small interface:

- `LLMJudge`: one call per run for all metrics, the rubric in the cached
  prompt prefix, the run inside a delimited data block.
- `SimilarityJudge` (offline, no key needed): embeds the run's steps and the
  metric's good and bad behaviour examples; a metric applies when some step
  is close to its examples, and the verdict follows whether the closest
  evidence resembles the good or the bad examples.

Every verdict records the backend and version that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field, create_model, model_validator

from metrics.definitions import Metric, MetricSet, rubric_text
from metrics.llm.client import LLM, Request
from metrics.llm.prompts import DATA_NOTICE, data_block, render_steps
from traces.model import Run, Step


@dataclass(frozen=True)
class Verdict:
    metric_id: str
    value: int
    evidence: tuple[int, ...] = ()
    reason: str = ""
    confidence: float | None = None
    # scoped criteria (PIPA): share of units passing, and (unit, value, reason) per unit
    rate: float | None = None
    units: tuple[tuple[int, int, str], ...] = ()


@dataclass(frozen=True)
class Judgement:
    run_id: str
    verdicts: tuple[Verdict, ...] = ()
    error: str | None = None
    cost: float = 0.0


@dataclass(frozen=True)
class RunView:
    """What a judge sees: a run, and optionally the one actor the metrics are about."""

    run_id: str
    steps: tuple[Step, ...]
    task: str | None = None
    focus: str | None = None  # e.g. one agent of a two-agent dialogue
    # the task's own check, for criteria computed from it (never shown to an LLM judge)
    reward: float | None = None
    outcome: str | None = None

    @classmethod
    def of(cls, run: Run, run_id: str | None = None, focus: str | None = None) -> RunView:
        return cls(run_id or run.run_id(), run.steps, run.task, focus, run.reward, run.outcome)


class Judge(Protocol):
    backend: str
    version: str

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        """One judgement per run, in order; failures are judgements with an error."""


# -- LLM ----------------------------------------------------------------------------

JUDGE_INSTRUCTIONS = """You evaluate one run of an AI agent against a set of metrics.

For every metric in the rubric give exactly one verdict:
+1 if the agent did what the metric rewards, -1 if it did what the metric penalises,
0 if the metric does not apply to this run (nothing in the run bears on it).
Cite the steps that show it by their [number], and give a one-sentence reason.
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
    parts.append("The run, one numbered step per line:\n" + data_block("run", render_steps(view.steps)))
    parts.append("Call record_verdicts with one verdict per metric.")
    return Request(
        purpose="judge", tool_name="record_verdicts",
        tool_description="Record one verdict per metric for this run.",
        schema=schema, system=JUDGE_INSTRUCTIONS.format(notice=DATA_NOTICE),
        rubric=rubric_text(metric_set.metrics), user="\n\n".join(parts),
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
                out.append(Judgement(v.run_id, error=r.error, cost=r.cost))
                continue
            n = len(v.steps)
            verdicts = tuple(
                Verdict(x.metric_id, int(x.value), tuple(i for i in x.evidence_steps if 0 <= i < n),
                        x.reason.strip())
                for x in r.value.verdicts)
            out.append(Judgement(v.run_id, verdicts, cost=r.cost))
        return out


# -- offline ------------------------------------------------------------------------

def step_text(s: Step) -> str:
    head = s.kind if isinstance(s.kind, str) else str(s.kind)
    if s.tool_name:
        head += f" {s.tool_name}"
    body = s.content or ""
    if s.tool_args is not None and not body:
        body = str(s.tool_args)
    return f"{head}: {body}"[:800]


class SimilarityJudge:
    """Offline judge: nearest good/bad behaviour examples among the run's steps.

    For each metric, s_good and s_bad are the highest cosine similarities
    between any (focus) step and the metric's good and bad examples. The
    metric applies when max(s_good, s_bad) >= `applies_at`; the verdict is the
    sign of s_good - s_bad when that gap is at least `margin`, otherwise 0.
    Instructions planted in a trace carry no weight here: only resemblance
    to people's examples counts.
    """

    backend = "offline-similarity"
    version = "1"

    def __init__(self, embedder, applies_at: float = 0.45, margin: float = 0.03):
        self.embedder = embedder
        self.applies_at = applies_at
        self.margin = margin

    def _anchors(self, m: Metric) -> tuple[list[str], list[str]]:
        good = [e.text for e in m.good] or []
        bad = [e.text for e in m.bad] or []
        return good, bad

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        anchors = [self._anchors(m) for m in metric_set.metrics]
        texts = [t for g, b in anchors for t in g + b]
        A = self.embedder.embed(texts) if texts else np.zeros((0, 1), np.float32)  # noqa: N806
        idxs = [[j for j, s in enumerate(v.steps) if v.focus is None or s.actor == v.focus] for v in runs]
        texts = [step_text(v.steps[j]) for v, idx in zip(runs, idxs, strict=True) for j in idx]
        E = self.embedder.embed(texts) if texts else np.zeros((0, 1), np.float32)  # noqa: N806 - one call for all
        out, start = [], 0
        for i, (view, idx) in enumerate(zip(runs, idxs, strict=True)):
            if not idx:
                out.append(Judgement(view.run_id, tuple(Verdict(m.metric_id, 0, (), "no steps to judge")
                                                        for m in metric_set.metrics)))
                continue
            S = E[start:start + len(idx)]  # noqa: N806
            start += len(idx)
            sims = S @ A.T if len(A) else np.zeros((len(idx), 0))
            verdicts, k = [], 0
            for m, (good, bad) in zip(metric_set.metrics, anchors, strict=True):
                g = sims[:, k:k + len(good)]
                b = sims[:, k + len(good):k + len(good) + len(bad)]
                k += len(good) + len(bad)
                sg = float(g.max()) if g.size else -1.0
                sb = float(b.max()) if b.size else -1.0
                if max(sg, sb) < self.applies_at:
                    verdicts.append(Verdict(m.metric_id, 0, (), f"no step resembles {m.name!r} examples",
                                            confidence=round(max(sg, sb), 3)))
                    continue
                if abs(sg - sb) < self.margin:
                    verdicts.append(Verdict(m.metric_id, 0, (), "evidence resembles good and bad examples alike",
                                            confidence=round(abs(sg - sb), 3)))
                    continue
                better = g if sg > sb else b
                step = idx[int(better.max(axis=1).argmax())]
                value = 1 if sg > sb else -1
                ex = (good if value > 0 else bad)[int(better.max(axis=0).argmax())]
                verdicts.append(Verdict(
                    m.metric_id, value, (step,),
                    f"step {step} resembles the {'good' if value > 0 else 'bad'} example "
                    f"\u201c{ex[:120]}\u201d ({max(sg, sb):.2f} vs {min(sg, sb):.2f})",
                    confidence=round(abs(sg - sb), 3)))
            out.append(Judgement(view.run_id, tuple(verdicts)))
            if progress:
                progress(i + 1, len(runs))
        return out


def metric_score(values: Sequence[int]) -> float | None:
    """#(+1) / (#(+1) + #(-1)); N/A excluded; None when nothing applied."""
    pos = sum(1 for v in values if v > 0)
    neg = sum(1 for v in values if v < 0)
    return pos / (pos + neg) if pos + neg else None
