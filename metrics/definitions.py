"""Metric definitions and metric sets: what a judge is asked to assess."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

VALUES = (-1, 0, 1)  # did something wrong, not applicable, did it well
SUBJECTS = ("run", "agent")


@dataclass(frozen=True)
class Example:
    """A behaviour a metric rewards or penalises, linked to where people saw it."""

    text: str
    run_id: str | None = None
    steps: tuple[int, ...] = ()
    feedback_id: str | None = None


@dataclass(frozen=True)
class Metric:
    metric_id: str
    name: str
    explanation: str
    good: tuple[Example, ...] = ()
    bad: tuple[Example, ...] = ()
    # what a verdict is about: the run, or each step/call/reply/session (PIPA criteria)
    scope: str = "run"
    kind: str = "induced"
    metadata: dict = field(default_factory=dict)
    # who a verdict is about: the run as a whole, or each agent of a multi-agent run
    subject: str = "run"

    def __post_init__(self):
        if self.subject not in SUBJECTS:
            raise ValueError(f"metric {self.metric_id!r}: subject must be one of {', '.join(SUBJECTS)}")


@dataclass(frozen=True)
class MetricSet:
    set_id: str
    version: int
    name: str
    metrics: tuple[Metric, ...]
    status: str = "draft"  # draft | approved | retired
    provenance: dict = field(default_factory=dict)

    def get(self, metric_id: str) -> Metric:
        for m in self.metrics:
            if m.metric_id == metric_id:
                return m
        raise KeyError(metric_id)

    def with_metrics(self, metrics) -> MetricSet:
        return replace(self, metrics=tuple(metrics))

    def about(self, subject: str) -> MetricSet:
        """The set's metrics whose verdicts are about `subject` ('run' or 'agent')."""
        return self.with_metrics(m for m in self.metrics if m.subject == subject)


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return s[:48] or "metric"


def metric_id_for(name: str, salt: str = "") -> str:
    return f"{slug(name)}_{hashlib.sha1((name + salt).encode()).hexdigest()[:6]}"
