"""Scoring: apply a judge to stored runs and keep the verdicts.

Runs already scored by the same metric set version and backend are skipped,
so scoring is incremental and idempotent. The work is a job: a stopped or
crashed job resumes where it stopped, a failed run is recorded and the rest
go on, and a budget stops it cleanly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from metrics.definitions import MetricSet
from metrics.jobs.ledger import Job
from metrics.judges.base import Judge, Judgement, RunView
from metrics.llm.budget import Budget
from metrics.llm.client import LLM
from traces.export import load_runs
from traces.model import Run, agents_of
from traces.store import Store, merge


@dataclass(frozen=True)
class ScoreSummary:
    job_id: str
    status: str
    runs_scored: int
    runs_failed: int
    runs_skipped: int
    cost_usd: float
    error: str | None = None
    # metrics the judge left unscored, with why: the offline judge cannot read them from the run
    needs_llm: tuple[tuple[str, str], ...] = ()
    runs_up_to_date: int = 0  # selected runs that already had every verdict before this job


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def select_runs(store: Store, *, agent: str | None = None, fmt: str | None = None, since=None,
                sample: float | None = None, salt: str = "") -> list[str] | None:
    """Runs matching the filters; None when no filter applies (every run).

    Sampling is by a hash of the run id, so the same share of runs is chosen
    on every scheduled pass: new runs are sampled at the same rate and runs
    already left out stay out, which keeps scoring incremental.
    """
    if sample is not None and not 0 < sample <= 1:
        raise ValueError("sample must be a share of runs in (0, 1]")
    if agent is None and fmt is None and since is None and (sample is None or sample == 1):
        return None
    ids = [r for r, in store.execute(
        "SELECT run_id FROM runs WHERE (?::VARCHAR IS NULL OR agent = ?) AND (?::VARCHAR IS NULL OR format = ?) "
        "AND (?::TIMESTAMP IS NULL OR coalesce(started_at, ingested_at) >= ?) ORDER BY run_id",
        [agent, agent, fmt, fmt, since, since])]
    if sample is not None and sample < 1:
        limit = int(sample * 2**32)
        ids = [r for r in ids if int(hashlib.sha1((salt + r).encode()).hexdigest()[:8], 16) < limit]
    return ids


def unscored(store: Store, metric_set: MetricSet, backend: str, run_ids: Sequence[str] | None = None,
             focus: str | None = None) -> list[str]:
    """Runs with no verdict yet from this metric set version and backend.

    A run's verdicts on all its subjects are written in one transaction, so a run
    with any verdict of the set has them all. About one `focus`, a run is unscored
    until every metric has a verdict on that actor (a metric about agents may
    have judged it already).
    """
    params: list = [metric_set.set_id, metric_set.version, backend]
    where = ""
    if run_ids is not None:
        where = " AND r.run_id IN (SELECT unnest(?::VARCHAR[]))"
    if focus is None:
        test = "NOT EXISTS (SELECT 1 FROM scores s WHERE s.run_id = r.run_id AND s.metric_set_id = ? " \
               "AND s.metric_set_version = ? AND s.backend = ?)"
    else:
        test = "(SELECT count(DISTINCT s.metric_id) FROM scores s WHERE s.run_id = r.run_id AND s.metric_set_id = ? " \
               "AND s.metric_set_version = ? AND s.backend = ? AND s.focus = ?) < ?"
        params += [focus, len(metric_set.metrics)]
    if run_ids is not None:
        params.append(list(run_ids))
    return [r for r, in store.execute(f"SELECT r.run_id FROM runs r WHERE {test}{where} ORDER BY r.run_id", params)]


SCORE_KEY = ["run_id", "metric_set_id", "metric_set_version", "metric_id", "backend", "focus"]
SCORE_COLS = [*SCORE_KEY, "value", "evidence", "reason", "confidence", "backend_version", "job_id", "created_at",
              "rate", "agent", "run_at"]
UNIT_COLS = [*SCORE_KEY, "unit", "value", "reason"]


def subject_views(runs: dict[str, Run], ids: Sequence[str], metric_set: MetricSet, *, focus: str | None = None,
                  per_agent: bool = False) -> list[tuple[MetricSet, list[RunView]]]:
    """What a judge is given: each part of the set with the views its verdicts are about.

    A metric about the run sees each run whole; a metric about agents (or every
    metric, with `per_agent`) sees each agent of a multi-agent run on its own, and
    a run with one agent whole. An explicit `focus` puts every metric on that actor.
    """
    present = [r for r in ids if r in runs]
    if focus is not None:
        return [(metric_set, [RunView.of(runs[r], r, focus) for r in present])]
    whole = metric_set.with_metrics(()) if per_agent else metric_set.about("run")
    each = metric_set if per_agent else metric_set.about("agent")
    out = []
    if whole.metrics:
        out.append((whole, [RunView.of(runs[r], r) for r in present]))
    if each.metrics:
        views = []
        for r in present:
            agents = agents_of(runs[r])
            views += [RunView.of(runs[r], r, a) for a in agents] if len(agents) > 1 else [RunView.of(runs[r], r)]
        out.append((each, views))
    return out


def judge_runs(judge: Judge, metric_set: MetricSet, runs: dict[str, Run], ids: Sequence[str], *,
               focus: str | None = None, per_agent: bool = False) -> tuple[list[Judgement], dict[str, Judgement]]:
    """Judge runs on every subject: (judgements of the runs that passed, run id -> a failed judgement)."""
    results: list[Judgement] = []
    for ms, views in subject_views(runs, ids, metric_set, focus=focus, per_agent=per_agent):
        judged = judge.judge(views, ms) if views else []
        results += [replace(j, focus=v.focus) for v, j in zip(views, judged, strict=True)]
    failed = {}
    for j in results:
        if j.error is not None:
            failed.setdefault(j.run_id, j)
    return [j for j in results if j.run_id not in failed], failed


def verdict_rows(store: Store, metric_set: MetricSet, judge: Judge, judgements,
                 job_id: str | None) -> tuple[list[list], list[list]]:
    """Rows for `scores` and `score_units` from a judge's results."""
    rows, units = [], []
    now = _now()
    judgements = list(judgements)
    ids = sorted({j.run_id for j in judgements})
    where = {r: (a, t) for r, a, t in store.execute(
        "SELECT run_id, coalesce(agent, model, format), coalesce(started_at, ingested_at) FROM runs "
        "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids])} if ids else {}
    for j in judgements:
        key = [j.run_id, metric_set.set_id, metric_set.version]
        for v in j.verdicts:
            rows.append([*key, v.metric_id, judge.backend, j.focus or "", v.value, list(v.evidence),
                         v.reason[:1000], v.confidence, judge.version, job_id, now, v.rate,
                         *where.get(j.run_id, (None, None))])
            units += [[*key, v.metric_id, judge.backend, j.focus or "", u, val, why[:500]]
                      for u, val, why in v.units]
    return rows, units


def insert_verdicts(con, rows: list[list], units: list[list]) -> None:
    """Write verdict rows in the caller's transaction (a later verdict replaces an earlier one)."""
    merge(con, "scores", rows, keys=SCORE_KEY, update=SCORE_COLS[len(SCORE_KEY):], columns=SCORE_COLS)
    merge(con, "score_units", units, keys=[*SCORE_KEY, "unit"], update=UNIT_COLS[len(SCORE_KEY) + 1:],
          columns=UNIT_COLS)


def write_verdicts(store: Store, metric_set: MetricSet, judge: Judge, judgements, job_id: str | None) -> int:
    rows, units = verdict_rows(store, metric_set, judge, judgements, job_id)
    if rows:
        store.write(lambda con: insert_verdicts(con, rows, units))
    return len(rows)


def score_runs(store: Store, metric_set: MetricSet, judge: Judge, *, run_ids: Sequence[str] | None = None,
               max_cost: float | None = None, chunk: int = 32, focus: str | None = None, per_agent: bool = False,
               progress: Callable[[int, int], None] | None = None) -> ScoreSummary:
    """Score the runs not yet scored: each metric on the subject it is about (`subject_views`)."""
    unread = getattr(judge, "needs_llm_", {})
    # metrics the judge declines never get a verdict, so they cannot keep a run "unscored"
    readable = metric_set.with_metrics(m for m in metric_set.metrics if m.metric_id not in unread)
    pending = unscored(store, readable, judge.backend, run_ids, focus) if readable.metrics else []
    params = {"set": metric_set.set_id, "version": metric_set.version, "backend": judge.backend,
              "runs": sorted(run_ids) if run_ids is not None else "unscored", "focus": focus,
              **({"per_agent": True} if per_agent else {})}
    job = Job.open(store, "score", params, max_cost=max_cost)
    # Every call a judge makes is billed to this job and kept within its budget: the LLM judge's,
    # and those of judges built on one (PIPA's judged criteria), which expose it as `llm`.
    llm = getattr(judge, "llm", None)
    if isinstance(llm, LLM):
        llm.job_id = job.job_id
        llm.store = llm.store or store
        llm.budget = Budget(max_cost, spent=job.spent())
    todo = job.pending(pending)
    skipped = len(pending) - len(todo)
    done = failed = 0
    status, error = "done", None
    for i in range(0, len(todo), chunk):
        # another process on the same job (a second scheduler, another host) does its own chunks
        ids = job.claim(todo[i:i + chunk])
        skipped += min(chunk, len(todo) - i) - len(ids)
        if not ids:
            continue
        ok, bad = judge_runs(judge, metric_set, load_runs(store, ids), ids, focus=focus, per_agent=per_agent)
        write_verdicts(store, metric_set, judge, ok, job.job_id)
        passed = sorted({j.run_id for j in ok})
        job.mark(passed, "done")
        for run_id, j in bad.items():
            job.mark(run_id, "failed", j.error)
        done += len(passed)
        failed += len(bad)
        if progress:
            progress(done + failed, len(todo))
        if any(j.budget_exhausted for j in bad.values()):
            status, error = "stopped", "budget exhausted; run again with a larger --max-cost to resume"
            break
    summary = job.finish(status, error, total=len(pending))
    selected = len(run_ids) if run_ids is not None else int(store.scalar("SELECT count(*) FROM runs"))
    return ScoreSummary(job.job_id, status, done, failed, skipped, summary["cost_usd"], error,
                        tuple((m.name, unread[m.metric_id]) for m in metric_set.metrics if m.metric_id in unread),
                        selected - len(pending) if readable.metrics else 0)
