"""Score stored runs on the PIPA criteria, one metric set per domain policy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from metrics import sets
from metrics.definitions import MetricSet
from metrics.scoring import ScoreSummary, score_runs
from pipa.criteria import pipa_metric_set, policy_from_run
from pipa.judge import PipaJudge
from traces.export import iter_runs_with_ids
from traces.store import Store, only_in


def ensure_set(store: Store, policy: str | None, criteria: Sequence[str] | None = None) -> MetricSet:
    """The stored PIPA metric set for this policy, saved (approved) the first time it is needed."""
    ms = pipa_metric_set(policy, criteria)
    try:
        stored = sets.load(store, ms.set_id)
        if [m.metric_id for m in stored.metrics] == [m.metric_id for m in ms.metrics]:
            return stored
    except KeyError:
        pass
    # computed and judged criteria Libra itself defines: approved by Libra as they are saved
    saved = sets.save(store, ms, backend="pipa", created_by="libra", note="PIPA atomic criteria",
                      approved_by="libra")
    return sets.load(store, saved.set_id, saved.version)


def policies(store: Store, *, run_ids: Sequence[str] | None = None, fmt: str | None = None,
             agent: str | None = None, unscored_by: str | None = None) -> dict[str | None, list[str]]:
    """Runs grouped by the policy in their system prompt (None: no policy found).

    With `unscored_by` (a backend), only runs that backend has not given PIPA
    verdicts yet are read, so a scheduled pass costs what is new.
    """
    if unscored_by is not None:
        todo = [r for r, in store.execute(
            "SELECT run_id FROM runs r WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.run_id = r.run_id "
            "AND s.metric_set_id LIKE 'pipa-%' AND s.backend = ?) ORDER BY run_id", [unscored_by])]
        run_ids = todo if run_ids is None else sorted(set(run_ids) & set(todo))
    groups: dict[str | None, list[str]] = defaultdict(list)
    if run_ids is not None and not run_ids:
        return {}
    for rid, run in iter_runs_with_ids(store, run_ids=run_ids, fmt=fmt, agent=agent):
        groups[policy_from_run(run)].append(rid)
    return dict(groups)


def score_pipa(store: Store, judge: PipaJudge, *, run_ids: Sequence[str] | None = None,
               fmt: str | None = None, agent: str | None = None, policy: str | None = None,
               criteria: Sequence[str] | None = None, max_cost: float | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[tuple[MetricSet, ScoreSummary]]:
    """Score runs on the PIPA criteria; a given `policy` overrides the one found in each run."""
    groups = policies(store, run_ids=run_ids, fmt=fmt, agent=agent, unscored_by=judge.backend)
    if policy is not None:
        groups = {policy: [r for ids in groups.values() for r in ids]}
    out = []
    for pol, ids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        ms = ensure_set(store, pol, criteria)
        out.append((ms, score_runs(store, ms, judge, run_ids=ids, max_cost=max_cost, progress=progress)))
    return out + ([] if policy is not None else _up_to_date(store, judge, run_ids, {ms.set_id for ms, _ in out}))


def _up_to_date(store: Store, judge: PipaJudge, run_ids: Sequence[str] | None,
                scored: set[str]) -> list[tuple[MetricSet, ScoreSummary]]:
    """The PIPA sets that had nothing new, with the runs they already scored: said, not left out."""
    out = []
    for ms in sets.approved(store):
        if ms.provenance.get("kind") != "pipa" or ms.set_id in scored:
            continue
        clause, params = only_in("run_id", run_ids)
        n = store.scalar("SELECT count(DISTINCT run_id) FROM scores WHERE metric_set_id = ? AND "  # noqa: S608
                         f"metric_set_version = ? AND backend = ?{clause}",
                         [ms.set_id, ms.version, judge.backend, *params])
        if n:
            out.append((ms, ScoreSummary("", "done", 0, 0, 0, 0.0, runs_up_to_date=int(n))))
    return out
