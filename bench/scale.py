"""Scoring throughput on the path users run (`libra score --ray local --workers N`), file and lake.

Builds the demo corpus in each store, then scores the same metric set with
the offline judge: in one process through `score_runs` (the reference), and on a
local Ray cluster of 1 and of 2 workers through `libra.scoring.score_on_ray`, the
call `libra score --ray` makes (the judge built once by the driver and shipped).
Each job uses a fresh version of the metric set, so every one scores the whole
backlog. Prints runs/s end to end (cluster start, judge fit and shipping
included) and steady (first claim to last commit).

Then the shared catalog's own limit, which no number of cores lifts: N plain
worker processes (1 to 16) on the lake with a judge that reads nothing and
returns at once, so all they do is claim, commit verdicts and mark partitions
done. Prints partitions/s and runs/s as N grows, and the PostgreSQL
transactions each partition costs (`pg_stat_database.xact_commit`).

Needs PostgreSQL from Debian's packages for the lake (started in a temporary
folder and removed afterwards).

    python bench/scale.py              # 600 runs
    python bench/scale.py --runs 2000
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from libra.scoring import build_judge  # noqa: E402
from metrics import sets  # noqa: E402
from metrics.jobs.distributed import plan, work  # noqa: E402
from metrics.scoring import score_runs  # noqa: E402
from pg_server import PgServer  # noqa: E402
from test_judge import METRICS  # noqa: E402
from libra.demo import build_demo  # noqa: E402
from traces.store import Store  # noqa: E402

FACTORY = functools.partial(build_judge, backend="offline")


def _worker(location: str, job_id: str, threads: int) -> None:
    import torch

    # Workers share this machine's cores; on a cluster each node's worker has its own.
    torch.set_num_threads(threads)
    work(location, job_id, FACTORY)


def distributed(store: Store, n_workers: int, size: int) -> tuple[float, float, int]:
    ms = sets.save(store, replace(METRICS, set_id="bench-scale"))
    judge = FACTORY(store, ms)
    job_id = plan(store, ms, judge.backend, size=size)
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    procs = [ctx.Process(target=_worker, args=(store.path, job_id, threads)) for _ in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a worker exited with {p.exitcode}")
    wall = time.perf_counter() - t0
    n, first, last = store.execute(
        "SELECT sum(n_scored), min(claimed_at), max(done_at) FROM score_partitions WHERE job_id = ?", [job_id])[0]
    steady = (last - first).total_seconds()
    dup = store.scalar("SELECT count(*) FROM (SELECT run_id, metric_id FROM scores WHERE metric_set_id = ? "
                       "AND metric_set_version = ? GROUP BY ALL HAVING count(*) > 1)", [ms.set_id, ms.version])
    if dup:
        raise RuntimeError(f"{dup} verdicts written twice")
    return n / wall, n / max(steady, 1e-9), n


def on_ray(store: Store, n_workers: int, size: int) -> tuple[float, float, int]:
    """`libra score --ray local --workers N`: what users run."""
    from libra.scoring import score_on_ray

    ms = sets.save(store, replace(METRICS, set_id="bench-scale"))
    t0 = time.perf_counter()
    [(_, res)] = score_on_ray(store, ray="local", set_id=ms.set_id, version=ms.version, backend="offline",
                              partition_size=size, workers=n_workers)
    wall = time.perf_counter() - t0
    first, last = store.execute("SELECT min(claimed_at), max(done_at) FROM score_partitions WHERE job_id = ?",
                                [res.job_id])[0]
    steady = (last - first).total_seconds()
    return res.runs_scored / wall, res.runs_scored / max(steady, 1e-9), res.runs_scored


class NullJudge:
    """Reads nothing, answers at once: a worker with it only claims and commits."""

    backend = "null"
    version = "1"

    def judge(self, runs, metric_set, progress=None):
        from metrics.judges.base import Judgement, Verdict

        return [Judgement(v.run_id, tuple(Verdict(m.metric_id, 0, (), "null") for m in metric_set.metrics))
                for v in runs]


def null_factory(store: Store, metric_set) -> NullJudge:
    return NullJudge()


def _null_worker(location: str, job_id: str) -> None:
    work(location, job_id, null_factory)


def catalog_limit(pg: PgServer, location: str, n_workers: int, size: int) -> tuple[float, float, float]:
    """(partitions/s, runs/s, catalog transactions per partition) with N commit-only workers on a lake."""
    store = Store(location, lock_timeout=300)
    ms = sets.save(store, replace(METRICS, set_id="bench-catalog"))
    job_id = plan(store, ms, "null", size=size)
    parts = store.scalar("SELECT count(*) FROM score_partitions WHERE job_id = ?", [job_id])
    db = location.split("dbname=")[1].split()[0]
    before = pg.xact_commits(db)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_null_worker, args=(location, job_id)) for _ in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    first, last, n = store.execute("SELECT min(claimed_at), max(done_at), sum(n_scored) FROM score_partitions "
                                   "WHERE job_id = ?", [job_id])[0]
    steady = max((last - first).total_seconds(), 1e-9)
    per_part = (pg.xact_commits(db) - before) / parts
    return parts / steady, n / steady, per_part


def reference(store: Store) -> float:
    """score_runs in this process with a judge already fitted (embeddings cached): the plain path."""
    ms = sets.save(store, replace(METRICS, set_id="bench-scale"))
    judge = FACTORY(store, ms)
    t0 = time.perf_counter()
    res = score_runs(store, ms, judge)
    return res.runs_scored / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=600)
    ap.add_argument("--partition", type=int, default=50)
    ap.add_argument("--writers", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    args = ap.parse_args()
    pg = PgServer().start()
    rows, limits = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lake = pg.new_lake()
            for label, location in (("duckdb file", str(Path(tmp) / "bench.duckdb")), ("ducklake", lake)):
                store = Store(location, lock_timeout=300)
                t = time.perf_counter()
                build_demo(store, n=args.runs, seed=5)
                print(f"{label}: demo corpus of {args.runs} runs in {time.perf_counter() - t:.1f}s", file=sys.stderr)
                ref = reference(store)
                print(f"  one process (score_runs): {ref:.1f} runs/s", file=sys.stderr)
                for n in (1, 2):
                    e2e, steady, done = on_ray(store, n, args.partition)
                    print(f"  Ray, {n} worker(s): {e2e:.1f} runs/s end to end, {steady:.1f} steady", file=sys.stderr)
                    rows.append((label, n, done, e2e, steady, ref))
                store.close()
            for n in args.writers:
                parts_s, runs_s, tx = catalog_limit(pg, lake, n, 20)
                print(f"  catalog, {n} commit-only workers: {parts_s:.1f} partitions/s", file=sys.stderr)
                limits.append((n, parts_s, runs_s, tx))
    finally:
        pg.stop()
    head = f"{'backend':<13}{'Ray workers':>12}{'runs':>7}{'runs/s e2e':>12}{'runs/s steady':>15}{'1-process ref':>15}"
    print(head)
    print("-" * len(head))
    for label, n, done, e2e, steady, ref in rows:
        print(f"{label:<13}{n:>12}{done:>7}{e2e:>12.1f}{steady:>15.1f}{ref:>15.1f}")
    print("\ne2e includes starting the local Ray cluster, fitting the judge once and shipping it; steady is "
          "first claim to last commit. 1-process ref: score_runs in this process with the judge already fitted.")
    print(f"\n{'commit-only workers':>20}{'partitions/s':>14}{'runs/s (20 a partition)':>25}{'catalog tx / partition':>24}")
    for n, parts_s, runs_s, tx in limits:
        print(f"{n:>20}{parts_s:>14.1f}{runs_s:>25.1f}{tx:>24.1f}")
    print("The lake's catalog limit: workers whose judge costs nothing, so only claims and commits count. "
          "N workers of a real judge reach min(N x one worker's rate, this limit).")


if __name__ == "__main__":
    main()
