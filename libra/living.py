"""Living metrics, composed: coverage of new feedback, a proposed next version, its approval.

    cov = libra.new_feedback_coverage(store)            # the newest approved induced set
    cov.weekly                                          # week, remarks, covered, coverage, lo, hi
    p = libra.propose_update(store)                     # add / merge / retire, each with its remarks and effect
    libra.approve_update(store, p, by="admin")          # saved, approved; only changed metrics re-scored
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from autolibra.backends import InductionTools
from autolibra.evaluation import OfflineMatcher, Trait
from autolibra.induce import ground_cached
from autolibra.living import NewCoverage, Proposal, coverage_of_new, propose
from libra.approval import check_admin
from libra.inducing import tools
from libra.scoring import build_judge
from metrics import sets
from metrics.definitions import MetricSet
from metrics.embeddings import Embedder
from metrics.judges.trained import view_key
from metrics.reports import queries
from metrics.scoring import score_runs
from traces.annotation.feedback import load as load_feedback
from traces.export import load_runs
from traces.model import Feedback, Run
from traces.store import Store

Progress = Callable[[str, int, int], None]
DEFAULT_THRESHOLD = 0.5  # the offline judge's own bar for "this remark is about that metric"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _made_from(ms: MetricSet) -> set[str]:
    """The notes a set was induced from (its induction and held-out parts)."""
    return set(ms.provenance.get("feedback", [])) | set(ms.provenance.get("heldout_feedback", []))


def watched_set(store: Store, set_id: str | None = None, version: int | None = None) -> MetricSet:
    """The set to watch: the given one, else the newest approved set induced from feedback."""
    if set_id is not None:
        return sets.load(store, set_id, version)
    induced = [ms for ms in sets.approved(store) if sets.is_induced(ms)]
    if not induced:
        raise LookupError("no approved metric set induced from feedback; run `libra induce` and approve one")
    return max(induced, key=lambda ms: _approved_at(store, ms) or datetime.min)


def _approved_at(store: Store, ms: MetricSet) -> datetime | None:
    row = store.execute("SELECT approved_at FROM metric_sets WHERE set_id = ? AND version = ?", [ms.set_id, ms.version])
    return row[0][0] if row else None


def new_since(store: Store, ms: MetricSet) -> datetime | None:
    """Where "new" starts for a set: after the latest remark it was induced from (imported notes keep
    their own dates), else when it was approved."""
    used = _made_from(ms) | set(ms.provenance.get("new_feedback", []))
    dates = [f.created_at for f in load_feedback(store) if f.feedback_id in used and f.created_at]
    return max(dates) if dates else _approved_at(store, ms)


def _stored_traits(store: Store, ms: MetricSet, run_ids: Sequence[str]) -> list[Trait]:
    rows = store.execute(
        "SELECT run_id, focus, metric_id, value, reason FROM scores WHERE metric_set_id = ? AND metric_set_version = ? "
        "AND run_id IN (SELECT unnest(?::VARCHAR[])) "
        "QUALIFY row_number() OVER (PARTITION BY run_id, focus, metric_id ORDER BY created_at DESC) = 1",
        [ms.set_id, ms.version, list(run_ids)])
    return [Trait(view_key(r, f or None), m, int(v), x or "") for r, f, m, v, x in rows]


def _matcher(store: Store, ms: MetricSet, embedder: Embedder) -> OfflineMatcher:
    return OfflineMatcher(embedder, threshold=float(ms.provenance.get("matcher_threshold", DEFAULT_THRESHOLD)))


def _fresh(store: Store, ms: MetricSet, since: datetime | None) -> list[Feedback]:
    """Notes written after `since` that the set was not made from."""
    used = _made_from(ms)
    return [f for f in load_feedback(store) if f.feedback_id not in used
            and (since is None or (f.created_at is not None and f.created_at > since))]


def _measure(store: Store, ms: MetricSet, since: datetime | None, backend: str,
             progress: Progress | None) -> tuple[NewCoverage, list[Trait], dict[str, Run], InductionTools]:
    t = tools(store, backend)
    fresh = _fresh(store, ms, since)
    runs = load_runs(store, sorted({f.run_id for f in fresh if f.run_id}))
    aspects, _ = ground_cached(store, fresh, runs, t.grounder, progress)
    run_ids = sorted({a.run_id for a in aspects})
    unscored = set(run_ids) - {r for (r,) in store.execute(
        "SELECT DISTINCT run_id FROM scores WHERE metric_set_id = ? AND metric_set_version = ? "
        "AND run_id IN (SELECT unnest(?::VARCHAR[]))", [ms.set_id, ms.version, run_ids])}
    if unscored:  # the set's verdicts on every run people wrote about, as the scheduled job gives them
        judge = build_judge(store, ms, backend)
        if judge is not None:
            score_runs(store, ms, judge, run_ids=sorted(unscored))
    traits = _stored_traits(store, ms, run_ids)
    written = {f.feedback_id: f.created_at for f in fresh if f.feedback_id and f.created_at}
    matcher = _matcher(store, ms, t.embedder)
    return coverage_of_new(ms, aspects, traits, matcher, written, since), traits, runs, t


def new_feedback_coverage(store: Store, set_id: str | None = None, version: int | None = None, *,
                          since: datetime | None = None, backend: str = "auto",
                          progress: Progress | None = None) -> NewCoverage:
    """How much of the feedback written since the set's own (see `new_since`) the set covers, per week.

    Runs people wrote about that the set has not scored are scored first, so
    each remark meets the verdicts the scheduled job would give.
    """
    ms = watched_set(store, set_id, version)
    cov, _, _, _ = _measure(store, ms, since if since is not None else new_since(store, ms), backend, progress)
    return cov


def record_coverage(store: Store, cov: NewCoverage, job: str | None = None) -> None:
    """Keep one measurement (its weekly rows) for the dashboard line and the alert."""
    at = _now()
    with store.transaction() as con:
        for r in cov.weekly.itertuples(index=False):
            con.execute("INSERT INTO feedback_coverage VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [cov.set_id, cov.version, at, r.week.to_pydatetime(), int(r.remarks), int(r.covered), job])


def measure_watched(store: Store, *, backend: str = "auto", job: str | None = None) -> list[NewCoverage]:
    """What a scheduled score job does after scoring: measure and record the coverage of new feedback
    for every approved set induced from feedback that has new remarks."""
    out = []
    for ms in [ms for ms in sets.approved(store) if sets.is_induced(ms)]:
        since = new_since(store, ms)
        if not _fresh(store, ms, since):  # nothing new: no model to load, nothing to record
            continue
        cov, _, _, _ = _measure(store, ms, since, backend, None)
        if cov.evaluation.aspects:
            record_coverage(store, cov, job)
            out.append(cov)
    return out


coverage_history = queries.new_feedback_coverage  # the dashboard's line, for notebooks too


def propose_update(store: Store, set_id: str | None = None, version: int | None = None, *,
                   since: datetime | None = None, backend: str = "auto", min_cluster_size: int = 5,
                   progress: Progress | None = None) -> Proposal:
    """A next version of the set from the new remarks: metrics to add (clusters of the uncovered
    remarks, named offline or by the LLM), to merge, to retire; each with its remarks and effect."""
    ms = watched_set(store, set_id, version)
    since = since if since is not None else new_since(store, ms)
    cov, traits, runs, t = _measure(store, ms, since, backend, progress)
    # the uncovered remarks' clusters merged as the set's own were (its chosen merge threshold)
    merge_at = (ms.provenance.get("params") or {}).get("merge_at") or 0.65
    return propose(ms, cov, traits, runs, embedder=t.embedder, namer=t.namer, judge_factory=t.judge_factory,
                   matcher=_matcher(store, ms, t.embedder), min_cluster_size=min_cluster_size, merge_at=merge_at)


def approve_update(store: Store, proposal: Proposal, by: str, *, password: str | None = None,
                   accepted: Sequence[int] | None = None, edits: dict[str, dict[str, str]] | None = None,
                   backend: str = "auto") -> MetricSet:
    """Save the proposal (accepted changes, people's edits) as the set's next version, approved by `by`.

    `by` must be an admin: checked by `password` when given (the CLI), else by the
    account as it is now (the app's signed-in user); `ApprovalRefused` otherwise.
    Only changed metrics are judged again: the new and merged metrics on every run the
    base version scored; unchanged metrics carry their verdicts over.
    """
    check_admin(store, by, password)
    base = proposal.base
    ms = proposal.metric_set(accepted, edits)
    unchanged = {m.metric_id for m in ms.metrics} & {m.metric_id for m in base.metrics}
    unchanged = {mid for mid in unchanged if ms.get(mid) == base.get(mid)}
    saved = sets.save(store, replace(ms, provenance={
        **base.provenance, "method": "autolibra-update", "base_version": base.version,
        "changes": [c.title for i, c in enumerate(proposal.changes) if accepted is None or i in set(accepted)],
        "new_feedback": sorted(set(base.provenance.get("new_feedback", [])) | set(proposal.feedback_ids))}),
        note=f"update of v{base.version} from new feedback", approved_by=by)
    saved = sets.load(store, saved.set_id, saved.version)
    scored = [r for (r,) in store.execute("SELECT DISTINCT run_id FROM scores WHERE metric_set_id = ? AND "
                                          "metric_set_version = ? ORDER BY 1", [base.set_id, base.version])]
    changed = saved.with_metrics(m for m in saved.metrics if m.metric_id not in unchanged)
    backend_used = None
    if changed.metrics and scored:
        judge = build_judge(store, changed, backend)
        if judge is not None:
            score_runs(store, changed, judge, run_ids=scored)
            backend_used = judge.backend
    with store.transaction() as con:  # the unchanged metrics' verdicts, as they were
        con.execute(
            "INSERT INTO scores SELECT * REPLACE (CAST(? AS INTEGER) AS metric_set_version) FROM scores WHERE metric_set_id = ? AND "
            "metric_set_version = ? AND metric_id IN (SELECT unnest(?::VARCHAR[])) "
            "AND (?::VARCHAR IS NULL OR backend = ?)",
            [saved.version, base.set_id, base.version, sorted(unchanged), backend_used, backend_used])
    return saved
