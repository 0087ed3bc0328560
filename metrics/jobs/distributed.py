"""Scoring a backlog on many workers, every partition committed exactly once.

`plan` splits the runs a metric set has not scored into partitions, recorded
in the store. A worker takes a partition (`run_partition`), judges its runs,
and commits the verdicts and the partition's "done" mark in one transaction
that first checks the mark. So a partition scored twice (a worker presumed
dead that was only slow, a task Ray retried after its worker died after
committing) is written once: on a local DuckDB file the second commit sees
the mark; on a DuckLake lake two commits that both flip the same partition
row conflict, DuckLake aborts one, and its retry sees the mark.

Workers are Ray tasks (`score_on_ray`; Ray re-runs the task of a worker that
died) or plain processes pulling partitions (`work`), on one machine or many
sharing a lake. Embedding a backlog (`metrics.jobs.embed_backlog`) uses the same
claims and commits on its own partition table.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


from metrics.scoring import insert_verdicts, unscored, verdict_rows
from traces.store import Store, retrying

LEASE = timedelta(minutes=10)  # a claimed partition untouched this long is taken over
_judges: dict[tuple, object] = {}  # per worker process: fitting a judge once serves every partition


@dataclass(frozen=True)
class Outcome:
    part: int
    scored: int  # runs whose verdicts this call committed (0: another worker had)
    failed: int
    skipped: bool


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def plan(store: Store, metric_set, backend: str, run_ids=None, size: int = 100) -> str:
    """Record the partitions of what `metric_set` has not scored with `backend`; returns the job id."""
    pending = unscored(store, metric_set, backend, run_ids)
    job_id = f"dist-{uuid.uuid4().hex[:12]}"
    rows = [[job_id, k, pending[i:i + size], metric_set.set_id, metric_set.version, backend, "pending"]
            for k, i in enumerate(range(0, len(pending), size))]
    if rows:
        with store.transaction() as con:
            con.executemany(
                "INSERT INTO score_partitions (job_id, part, run_ids, metric_set_id, metric_set_version, "
                "backend, status) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return job_id


def partitions(store: Store, job_id: str, table: str = "score_partitions") -> list[tuple[int, str]]:
    return store.execute(f"SELECT part, status FROM {table} WHERE job_id = ? ORDER BY part",  # noqa: S608
                         [job_id])


# (store, metric set) -> a judge: a module-level function or a functools.partial of
# one, so that it travels to Ray workers by reference. The CLI passes one that knows
# every kind of metric set.
JudgeFactory = Callable[[Store, object], object]


def _factory_key(f) -> tuple:
    if isinstance(f, functools.partial):
        return (*_factory_key(f.func), f.args, tuple(sorted(f.keywords.items())))
    return (f.__module__, f.__qualname__)


def _judge_for(store: Store, set_id: str, version: int, make_judge: JudgeFactory):
    key = (store.path, set_id, version, _factory_key(make_judge))
    if key not in _judges:
        from metrics import sets

        ms = sets.load(store, set_id, version)
        _judges[key] = (ms, make_judge(store, ms))
    return _judges[key]


def claim(store: Store, table: str, job_id: str, part: int, worker: str, lease: timedelta,
          columns: tuple[str, ...]) -> tuple | None:
    """Take a partition unless it is done or another worker's lease on it is fresh.

    Returns the partition's `columns`, or None when it is not ours to do. Table
    and column names are Libra's own, never input.
    """
    def go():
        with store.transaction() as con:
            row = con.execute(
                f"SELECT status, claimed_at, {', '.join(columns)} FROM {table} "  # noqa: S608
                "WHERE job_id = ? AND part = ?", [job_id, part]).fetchone()
            if row is None:
                raise KeyError(f"no partition {part} in job {job_id}")
            status, claimed_at = row[0], row[1]
            if status == "done" or (status == "claimed" and claimed_at and now() - claimed_at < lease):
                return None
            con.execute(f"UPDATE {table} SET status = 'claimed', worker = ?, claimed_at = ? "  # noqa: S608
                        "WHERE job_id = ? AND part = ?", [worker, now(), job_id, part])
            return row[2:]
    return retrying(go)


def commit_once(store: Store, table: str, job_id: str, part: int, worker: str,
                write: Callable[[object], object], done: Callable[[object], dict],
                serialise: str | None = None):
    """Write a partition's results and mark it done in one transaction, unless it is done already.

    `write(con)` stores the results and returns what `done(result)` turns into
    the partition's closing columns. Returns write's result, or None when
    another worker had committed the partition first.
    """
    def go():
        with store.transaction(serialise) as con:
            status = con.execute(f"SELECT status FROM {table} WHERE job_id = ? AND part = ?",  # noqa: S608
                                 [job_id, part]).fetchone()[0]
            if status == "done":
                return None
            result = write(con)
            cols = {"status": "done", "worker": worker, "done_at": now(), **done(result)}
            con.execute(f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in cols)} "  # noqa: S608
                        "WHERE job_id = ? AND part = ?", [*cols.values(), job_id, part])
            return result
    return retrying(go)


def run_partition(location: str, job_id: str, part: int, make_judge: JudgeFactory, *,
                  lease: timedelta = LEASE, hook: Callable[[str], None] | None = None) -> Outcome:
    """Score one partition and commit it exactly once.

    A partition under another worker's claim younger than `lease` is left alone;
    Ray passes a zero lease when it re-runs the task of a worker that died. The
    commit happens once whoever scores it.
    """
    store = Store(location)
    worker = worker_name()
    claimed = claim(store, "score_partitions", job_id, part, worker, lease,
                    ("run_ids", "metric_set_id", "metric_set_version", "backend"))
    if claimed is None:
        return Outcome(part, 0, 0, True)
    run_ids, set_id, version, backend = claimed
    ms, judge = _judge_for(store, set_id, version, make_judge)
    from metrics.judges.base import RunView
    from traces.export import load_runs

    runs = load_runs(store, list(run_ids))
    results = judge.judge([RunView.of(runs[r], r) for r in run_ids if r in runs], ms)
    ok = [j for j in results if j.error is None]
    bad = [j for j in results if j.error is not None]
    rows, units = verdict_rows(store, ms, judge, ok, job_id)
    if hook:
        hook("judged")  # tests stop a worker here, between judging and committing
    done = commit_once(
        store, "score_partitions", job_id, part, worker, lambda con: insert_verdicts(con, rows, units) or True,
        lambda _: {"n_scored": len(ok), "n_failed": len(bad), "error": (bad[0].error or "")[:2000] if bad else None})
    if done is None:
        return Outcome(part, 0, 0, True)
    return Outcome(part, len(ok), len(bad), False)


def work(location: str, job_id: str, make_judge: JudgeFactory, *, lease: timedelta = LEASE,
         hook: Callable[[str], None] | None = None) -> list[Outcome]:
    """Take and score this job's partitions until none is left to take (a worker process's loop).

    Partitions claimed by other live workers are left to them; with `lease=timedelta(0)`
    this also finishes those of workers that died.
    """
    store = Store(location)
    return [run_partition(location, job_id, p, make_judge, lease=lease, hook=hook)
            for p, s in partitions(store, job_id) if s != "done"]


def on_ray(fn: Callable, calls: list[tuple], *, address: str | None = None, num_cpus: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> list:
    """fn(*args, lease=0) for every args as Ray tasks on a cluster (`address`, or a local one when None).

    Ray re-runs the task of a worker that died; the zero lease lets it take the
    partition over. Returns the tasks' results as they finish.
    """
    import ray

    if not calls:
        return []
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=num_cpus if address is None else None,
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                           if k.startswith(("LIBRA_", "ANTHROPIC_", "AWS_"))}})
    try:
        task = ray.remote(max_retries=3, retry_exceptions=False)(fn)
        pending = [task.remote(*args, lease=timedelta(0)) for args in calls]
        out = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            out.extend(ray.get(done))
            if progress:
                progress(len(calls) - len(pending), len(calls))
        return out
    finally:
        if started_here:
            ray.shutdown()


@dataclass(frozen=True)
class DistributedSummary:
    job_id: str
    partitions: int
    runs_scored: int
    runs_failed: int
    seconds: float


def score_on_ray(store: Store, metric_set, backend: str, make_judge: JudgeFactory, *,
                 address: str | None = None, run_ids=None,
                 size: int = 100, num_cpus: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> DistributedSummary:
    """Score a backlog on a Ray cluster (`address`, or a local one when None)."""
    t0 = time.perf_counter()
    job_id = plan(store, metric_set, backend, run_ids, size)
    parts = [p for p, _ in partitions(store, job_id)]
    results = on_ray(run_partition, [(store.path, job_id, p, make_judge) for p in parts],
                     address=address, num_cpus=num_cpus, progress=progress)
    left = [p for p, s in partitions(store, job_id) if s != "done"]
    if left:
        raise RuntimeError(f"job {job_id}: partitions {left} were not committed")
    return DistributedSummary(job_id, len(parts), sum(r.scored for r in results),
                              sum(r.failed for r in results), time.perf_counter() - t0)
