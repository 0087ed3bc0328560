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
sharing a lake. A claim names its worker's process (traces/owner.py): the
claim of a worker that died on this machine is taken over at once, one on
another machine once its lease has passed with no sign of life. Planning a
backlog that an unfinished job already covers joins that job, so two drivers
started on the same backlog share it instead of both scoring all of it. Embedding a backlog (`metrics.jobs.embed_backlog`) uses the same
claims and commits on its own partition table.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


from metrics.scoring import insert_verdicts, judge_runs, unscored, verdict_rows
from traces import owner
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
    return owner.current()


PARTITION_STEPS = 5000  # steps a partition holds at most (a longer run is a partition of its own)


def cut(run_ids: list[str], steps: dict[str, int], size: int, max_steps: int) -> list[list[str]]:
    """Runs in order, cut into partitions of at most `size` runs and `max_steps` steps.

    Judging costs about as much as the steps read, so partitions cut by run count
    alone can differ a hundredfold (168 long runs took 80 s while the other worker,
    its 100 short runs done in 3 s, idled); cut by steps as well, they take alike.
    """
    out: list[list[str]] = []
    part: list[str] = []
    held = 0
    for r in run_ids:
        n = max(1, int(steps.get(r) or 0))
        if part and (len(part) >= size or held + n > max_steps):
            out.append(part)
            part, held = [], 0
        part.append(r)
        held += n
    if part:
        out.append(part)
    return out


def plan(store: Store, metric_set, backend: str, run_ids=None, size: int = 100,
         max_steps: int = PARTITION_STEPS) -> str:
    """Record the partitions of what `metric_set` has not scored with `backend`; returns the job id.

    Partitions hold at most `size` runs and `max_steps` steps. An unfinished job of the
    same set, version and backend is joined: the runs none of its open partitions holds
    are added to it as new partitions.
    """
    pending = unscored(store, metric_set, backend, run_ids)
    steps = dict(store.execute("SELECT run_id, n_steps FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                               [pending])) if pending else {}
    key = [metric_set.set_id, metric_set.version, backend]

    def go() -> str:
        with store.transaction(serialise="jobs") as con:
            open_job = con.execute(
                "SELECT job_id FROM score_partitions WHERE metric_set_id = ? AND metric_set_version = ? "
                "AND backend = ? GROUP BY job_id HAVING count(*) FILTER (WHERE status != 'done') > 0 "
                "ORDER BY min(claimed_at) NULLS LAST, job_id LIMIT 1", key).fetchone()
            if open_job:
                job_id = open_job[0]
                first, taken = con.execute(
                    "SELECT coalesce(max(part), -1) + 1, flatten(list(run_ids) FILTER (WHERE status != 'done')) "
                    "FROM score_partitions WHERE job_id = ?", [job_id]).fetchone()
                held = set(taken or ())
                todo = [r for r in pending if r not in held]
            else:
                job_id, first, todo = f"dist-{uuid.uuid4().hex[:12]}", 0, pending
            rows = [[job_id, first + k, part, *key, "pending"]
                    for k, part in enumerate(cut(todo, steps, size, max_steps))]
            if rows:
                con.executemany(
                    "INSERT INTO score_partitions (job_id, part, run_ids, metric_set_id, metric_set_version, "
                    "backend, status) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            return job_id
    return retrying(go)


def partitions(store: Store, job_id: str, table: str = "score_partitions") -> list[tuple[int, str]]:
    return store.execute(f"SELECT part, status FROM {table} WHERE job_id = ? ORDER BY part",  # noqa: S608
                         [job_id])


# (store, metric set) -> a judge: a module-level function or a functools.partial of
# one, so that it travels to Ray workers by reference. The CLI passes one that knows
# every kind of metric set.
JudgeFactory = Callable[[Store, object], object]


class Built:
    """A judge built once, by the driver, for every worker: a JudgeFactory that returns it.

    `on_ray` puts it in Ray's object store once and each task reads it from there, so
    no worker fits the judge again (fitting the offline judge on an empty embedding
    cache took two minutes, per worker). What travels is the fitted judge: its
    classifiers, and the store as a location (opened on the worker).
    """

    def __init__(self, judge: object):
        self.judge = judge
        self.token = uuid.uuid4().hex  # the same in every copy: one per-process cache entry

    def __call__(self, store: Store, metric_set: object) -> object:
        return self.judge


def _factory_key(f) -> tuple:
    if isinstance(f, Built):
        return ("built", f.token)
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
                f"SELECT status, claimed_at, worker, {', '.join(columns)} FROM {table} "  # noqa: S608
                "WHERE job_id = ? AND part = ?", [job_id, part]).fetchone()
            if row is None:
                raise KeyError(f"no partition {part} in job {job_id}")
            status, claimed_at, claimer = row[:3]
            if status == "done" or (status == "claimed" and not owner.gone(claimer, claimed_at, lease, now())):
                return None
            con.execute(f"UPDATE {table} SET status = 'claimed', worker = ?, claimed_at = ? "  # noqa: S608
                        "WHERE job_id = ? AND part = ?", [worker, now(), job_id, part])
            return row[3:]
    return retrying(go)


def release(store: Store, table: str, job_id: str, part: int, worker: str) -> None:
    """Give a claimed partition back (this worker failed on it and lives on)."""
    store.write(lambda con: con.execute(
        f"UPDATE {table} SET status = 'pending', worker = NULL, claimed_at = NULL "  # noqa: S608
        "WHERE job_id = ? AND part = ? AND status = 'claimed' AND worker = ?", [job_id, part, worker]))


def open_partitions(store: Store, job_id: str, table: str = "score_partitions",
                    lease: timedelta = LEASE) -> tuple[list[int], list[int]]:
    """(partitions anyone may take now, partitions a live worker holds) of a job."""
    free, held = [], []
    for part, status, claimer, at in store.execute(
            f"SELECT part, status, worker, claimed_at FROM {table} WHERE job_id = ? "  # noqa: S608
            "AND status != 'done' ORDER BY part", [job_id]):
        (held if status == "claimed" and not owner.gone(claimer, at, lease, now()) else free).append(part)
    return free, held


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


def touch(store: Store, table: str, job_id: str, part: int, worker: str) -> None:
    """A sign of life on a claim, so a worker on another machine does not take it over."""
    store.write(lambda con: con.execute(
        f"UPDATE {table} SET claimed_at = ? WHERE job_id = ? AND part = ? AND worker = ?",  # noqa: S608
        [now(), job_id, part, worker]))


HEARTBEAT_RUNS = 10  # runs judged between two signs of life on a claim


def run_partition(location: str, job_id: str, part: int, make_judge: JudgeFactory, *,
                  lease: timedelta = LEASE, hook: Callable[[str], None] | None = None) -> Outcome:
    """Score one partition and commit it exactly once.

    A partition under a live worker's claim is left alone (on another machine:
    one touched within `lease`). The commit happens once whoever scores it; a
    worker that fails and lives on gives its claim back.
    """
    store = Store(location)
    worker = worker_name()
    claimed = claim(store, "score_partitions", job_id, part, worker, lease,
                    ("run_ids", "metric_set_id", "metric_set_version", "backend"))
    if claimed is None:
        return Outcome(part, 0, 0, True)
    try:
        return _score_claimed(store, job_id, part, worker, claimed, make_judge, hook)
    except Exception:
        release(store, "score_partitions", job_id, part, worker)
        raise


def _score_claimed(store: Store, job_id: str, part: int, worker: str, claimed: tuple,
                   make_judge: JudgeFactory, hook: Callable[[str], None] | None) -> Outcome:
    run_ids, set_id, version, backend = claimed
    ms, judge = _judge_for(store, set_id, version, make_judge)
    from traces.export import load_runs

    runs = load_runs(store, list(run_ids))
    ok, failed = [], {}
    for i in range(0, len(run_ids), HEARTBEAT_RUNS):
        if i:
            touch(store, "score_partitions", job_id, part, worker)
        passed, bad_runs = judge_runs(judge, ms, runs, list(run_ids[i:i + HEARTBEAT_RUNS]))
        ok += passed
        failed.update(bad_runs)
    bad = list(failed.values())
    scored = len({j.run_id for j in ok})
    rows, units = verdict_rows(store, ms, judge, ok, job_id)
    if hook:
        hook("judged")  # tests stop a worker here, between judging and committing
    done = commit_once(
        store, "score_partitions", job_id, part, worker, lambda con: insert_verdicts(con, rows, units) or True,
        lambda _: {"n_scored": scored, "n_failed": len(bad), "error": (bad[0].error or "")[:2000] if bad else None})
    if done is None:
        return Outcome(part, 0, 0, True)
    return Outcome(part, scored, len(bad), False)


def work(location: str, job_id: str, make_judge: JudgeFactory, *, lease: timedelta = LEASE,
         hook: Callable[[str], None] | None = None) -> list[Outcome]:
    """Take and score this job's partitions until none is left to take (a worker process's loop).

    Partitions claimed by other live workers are left to them; those of workers
    that died are taken over.
    """
    store = Store(location)
    return [run_partition(location, job_id, p, make_judge, lease=lease, hook=hook)
            for p, s in partitions(store, job_id) if s != "done"]


def on_ray(fn: Callable, calls: list[tuple], *, address: str | None = None, num_cpus: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> list:
    """fn(*args) for every args as Ray tasks on a cluster (`address`, or a local one when None).

    Ray re-runs the task of a worker that died, and the dead worker's claim is
    taken over (at once on its machine, after the lease elsewhere). Returns
    the tasks' results as they finish.
    """
    import ray

    if not calls:
        return []
    started_here = not ray.is_initialized()
    reaper = None
    if started_here:
        if address is None:  # a cluster of our own: its helpers must not outlive this process
            from metrics.jobs import reaper as reaping

            reaper = reaping.start()
        ray.init(address=address, num_cpus=num_cpus if address is None else None,
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                           if k.startswith(("LIBRA_", "ANTHROPIC_", "AWS_"))}})
    try:
        task = ray.remote(max_retries=3, retry_exceptions=False)(fn)
        shipped: dict[int, object] = {}  # each Built judge put once; Ray hands tasks the value

        def ship(a: object) -> object:
            if isinstance(a, Built):
                if id(a) not in shipped:
                    shipped[id(a)] = ray.put(a)
                return shipped[id(a)]
            return a
        pending = [task.remote(*(ship(a) for a in args)) for args in calls]
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
        if reaper is not None:
            reaper.terminate()
            reaper.wait()


@dataclass(frozen=True)
class DistributedSummary:
    job_id: str
    partitions: int
    runs_scored: int
    runs_failed: int
    seconds: float


def score_on_ray(store: Store, metric_set, backend: str, make_judge: JudgeFactory, *,
                 address: str | None = None, run_ids=None,
                 size: int = 100, max_steps: int = PARTITION_STEPS, num_cpus: int | None = None,
                 wait: float = 6 * 3600.0,
                 progress: Callable[[int, int], None] | None = None) -> DistributedSummary:
    """Score a backlog on a Ray cluster (`address`, or a local one when None).

    A driver that joins a job another driver is running takes the partitions
    no live worker holds and waits for the others to be committed.
    """
    t0 = time.perf_counter()
    job_id = plan(store, metric_set, backend, run_ids, size, max_steps)
    parts = [p for p, _ in partitions(store, job_id)]
    results: list[Outcome] = []
    deadline = time.monotonic() + wait
    while True:
        free, held = open_partitions(store, job_id)
        if free:
            results += on_ray(run_partition, [(store.path, job_id, p, make_judge) for p in free],
                              address=address, num_cpus=num_cpus, progress=progress)
        elif not held:
            break
        elif time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id}: partitions {held} are still held by other workers")
        else:
            time.sleep(1.0)
    return DistributedSummary(job_id, len(parts), sum(r.scored for r in results),
                              sum(r.failed for r in results), time.perf_counter() - t0)
