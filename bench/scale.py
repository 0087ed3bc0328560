"""Scoring throughput with 1 and 2 worker processes, on a local DuckDB file and on DuckLake.

Builds the demo corpus in each store, then scores the same metric set with
the offline judge three ways: in one process through `score_runs` (the
reference), and as a partitioned job (`metrics.jobs.distributed`) taken by 1 and
by 2 worker processes. Each job uses a fresh version of the metric set, so
every one scores the whole backlog. Prints runs/s end to end (worker start-up,
loading the embedding model and fitting the judge included) and steady-state
runs/s (first claim to last commit), side by side per backend.

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
    args = ap.parse_args()
    pg = PgServer().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, location in (("duckdb file", str(Path(tmp) / "bench.duckdb")), ("ducklake", pg.new_lake())):
                store = Store(location, lock_timeout=300)
                t = time.perf_counter()
                build_demo(store, n=args.runs, seed=5)
                print(f"{label}: demo corpus of {args.runs} runs in {time.perf_counter() - t:.1f}s", file=sys.stderr)
                ref = reference(store)
                print(f"  one process (score_runs): {ref:.1f} runs/s", file=sys.stderr)
                for n in (1, 2):
                    e2e, steady, done = distributed(store, n, args.partition)
                    print(f"  {n} worker(s): {e2e:.1f} runs/s end to end, {steady:.1f} steady", file=sys.stderr)
                    rows.append((label, n, done, e2e, steady, ref))
                store.close()
    finally:
        pg.stop()
    head = f"{'backend':<13}{'workers':>8}{'runs':>7}{'runs/s e2e':>12}{'runs/s steady':>15}{'1-process ref':>15}"
    print(head)
    print("-" * len(head))
    for label, n, done, e2e, steady, ref in rows:
        print(f"{label:<13}{n:>8}{done:>7}{e2e:>12.1f}{steady:>15.1f}{ref:>15.1f}")
    print("\ne2e includes starting the workers, loading the embedding model and fitting the judge; "
          "steady is first claim to last commit. 1-process ref: score_runs in this process with the judge "
          "already fitted. Each worker gets cores/workers torch threads.")


if __name__ == "__main__":
    main()
