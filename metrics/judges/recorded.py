"""Verdicts given elsewhere (a labelling tool, an earlier system, a generator's ground truth) entered
through the same scoring path as any judge, so reports, comparisons and exports treat them alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from metrics.definitions import MetricSet
from metrics.judges.base import Judgement, RunView, Verdict


class RecordedJudge:
    """Reads each verdict from `table[run_id][metric_id]` (+1, -1; a missing one is 0, not applicable)."""

    version = "1"

    def __init__(self, table: Mapping[str, Mapping[str, int]], backend: str = "recorded"):
        self.table, self.backend = table, backend

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet, **_: object) -> list[Judgement]:
        return [Judgement(v.run_id, tuple(Verdict(m.metric_id, int(self.table.get(v.run_id, {}).get(m.metric_id, 0)))
                                           for m in metric_set.metrics)) for v in runs]
