"""Scoring runs on the PIPA criteria.

`PipaJudge` follows the `Judge` interface, so `metrics.scoring.score_runs`
stores its verdicts like any other. Computed criteria (tool efficiency, task
completion from a recorded outcome) never go to a model. Judged criteria go
to the LLM judge, all in one call per run with the policy in the cached
rubric; with no LLM they get no verdict at all and the profile reports them
as "needs a judge" rather than inventing one.

A scoped criterion's run verdict is +1 when every unit passes and -1 when
any fails; `rate` keeps the share that passed, and each unit is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from metrics.definitions import MetricSet
from metrics.judges.base import Judgement, RunView, Verdict
from metrics.judges.llm import LLMJudge
from metrics.llm.client import LLM
from pipa import checks
from pipa.criteria import (
    OBSERVATION_ALIGNMENT, POLICY_ADHERENCE, STATE_CONSISTENCY, TASK_COMPLETION, TOOL_EFFICIENCY,
)
from traces.model import StepKind

SCOPE_KINDS = {
    "step": {StepKind.THOUGHT, StepKind.TOOL_CALL},
    "reply": {StepKind.AGENT},
}


def from_units(metric_id: str, units: list[checks.Unit], what: str) -> Verdict:
    passed = sum(1 for _, v, _ in units if v > 0)
    failed = [u for u, v, _ in units if v < 0]
    rate = passed / len(units)
    reason = (f"{passed}/{len(units)} {what} pass" if failed else f"all {len(units)} {what} pass")
    if failed:
        first = next(r for u, v, r in units if v < 0)
        reason += f"; first failure at step {failed[0]}: {first}"
    return Verdict(metric_id, 1 if not failed else -1, tuple(failed[:20]), reason[:600], rate=rate,
                   units=tuple(units))


def offline_verdicts(view: RunView, wanted: set[str], identifier_check: bool = True) -> dict[str, Verdict]:
    out = {}
    if TOOL_EFFICIENCY in wanted:
        units = checks.tool_efficiency(view)
        out[TOOL_EFFICIENCY] = (from_units(TOOL_EFFICIENCY, units, "tool calls") if units else
                                Verdict(TOOL_EFFICIENCY, 0, (), "no tool call with a recorded result"))
    if TASK_COMPLETION in wanted:
        units = checks.task_completion(view)
        if units:
            out[TASK_COMPLETION] = from_units(TASK_COMPLETION, units, "recorded outcome")
    if identifier_check and OBSERVATION_ALIGNMENT in wanted:
        units = checks.unsupported_identifiers(view)
        if units:
            out[OBSERVATION_ALIGNMENT] = from_units(OBSERVATION_ALIGNMENT, units, "replies stating identifiers")
    return out


def judged_units(view: RunView, scope: str, v: Verdict) -> Verdict:
    """Spread an LLM verdict over the criterion's units: the cited steps fail, the rest pass."""
    kinds = SCOPE_KINDS.get(scope)
    if kinds is None:
        return v
    idx = [i for i, s in enumerate(view.steps) if s.kind in kinds]
    if not idx or v.value == 0:
        return v
    bad = set(v.evidence) & set(idx) if v.value < 0 else set()
    if v.value < 0 and not bad:  # the judge failed it without citing a unit: the run fails as a whole
        return Verdict(v.metric_id, v.value, v.evidence, v.reason, rate=0.0)
    units = tuple((i, -1 if i in bad else 1, v.reason if i in bad else "") for i in idx)
    return Verdict(v.metric_id, v.value, v.evidence, v.reason, rate=1 - len(bad) / len(idx), units=units)


class PipaJudge:
    """PIPA criteria: computed where the trace allows, judged by an LLM where it does not."""

    def __init__(self, llm: LLM | None = None, identifier_check: bool = True):
        self.llm_judge = LLMJudge(llm) if llm is not None else None
        llm_judge = self.llm_judge
        self.identifier_check = identifier_check
        self.backend = "pipa-llm" if llm_judge else "pipa-offline"
        self.version = f"1/{llm_judge.version}" if llm_judge else "1"

    @property
    def llm(self) -> LLM | None:
        """The language model behind the judged criteria, for the scoring job to bill and budget."""
        return self.llm_judge.llm if self.llm_judge is not None else None

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        ids = {m.metric_id for m in metric_set.metrics}
        scopes = {m.metric_id: m.scope for m in metric_set.metrics}
        computed = [offline_verdicts(v, ids, self.identifier_check and self.llm_judge is None) for v in runs]
        llm_results: dict[str, Judgement] = {}
        if self.llm_judge is not None:
            # task completion goes to the model only for runs that record no outcome
            judged = [m for m in metric_set.metrics if m.metric_id not in (TOOL_EFFICIENCY, TASK_COMPLETION)]
            groups = [(list(runs), judged)]
            if TASK_COMPLETION in ids:
                groups = [([v for v, c in zip(runs, computed, strict=True) if TASK_COMPLETION in c], judged),
                          ([v for v, c in zip(runs, computed, strict=True) if TASK_COMPLETION not in c],
                           judged + [metric_set.get(TASK_COMPLETION)])]
            for views, metrics in groups:
                if views and metrics:
                    for j in self.llm_judge.judge(views, metric_set.with_metrics(metrics), progress):
                        llm_results[j.run_id] = j
        out = []
        for v, comp in zip(runs, computed, strict=True):
            j = llm_results.get(v.run_id)
            if j is not None and j.error:
                out.append(Judgement(v.run_id, error=j.error, cost=j.cost, budget_exhausted=j.budget_exhausted))
                continue
            verdicts = dict(comp)
            for x in j.verdicts if j else ():
                verdicts[x.metric_id] = judged_units(v, scopes[x.metric_id], x)
            order = [m.metric_id for m in metric_set.metrics if m.metric_id in verdicts]
            out.append(Judgement(v.run_id, tuple(verdicts[m] for m in order), cost=j.cost if j else 0.0))
        return out


NEEDS_A_JUDGE = {STATE_CONSISTENCY, POLICY_ADHERENCE}
