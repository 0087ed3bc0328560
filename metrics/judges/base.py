"""What every judge shares: the verdict, the judgement, what a judge sees, and the interface.

A verdict is +1 (did it well), -1 (did something wrong) or 0 (not
applicable), with the evidence steps and a short reason. Every verdict
records the backend and version that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from metrics.definitions import MetricSet
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
    budget_exhausted: bool = False  # the job's budget, not the run, is why there is no verdict
    focus: str | None = None  # the actor the verdicts are about (None: the whole run)


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


def step_text(s: Step) -> str:
    head = s.kind if isinstance(s.kind, str) else str(s.kind)
    if s.tool_name:
        head += f" {s.tool_name}"
    body = s.content or ""
    if s.tool_args is not None and not body:
        body = str(s.tool_args)
    return f"{head}: {body}"[:800]


def metric_score(values: Sequence[int]) -> float | None:
    """#(+1) / (#(+1) + #(-1)); N/A excluded; None when nothing applied."""
    pos = sum(1 for v in values if v > 0)
    neg = sum(1 for v in values if v < 0)
    return pos / (pos + neg) if pos + neg else None
