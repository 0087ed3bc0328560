"""What full-text search costs the ingest, and what search costs while the index waits (issue 21 §3).

Same generated runs (Libra generic JSONL), fresh stores, each command its own process, CPU seconds of
the process tree (user + system), in one run:

- `libra ingest --no-index`: loading only (the reference);
- `libra ingest` as users run it: past INDEX_AUTOMATICALLY_UP_TO runs it leaves the index for later;
- what the default did before: the ingest followed by the index rebuild (`libra index`);
- search latency (a two-word query through the runs table's query) with no run indexed, every run
  indexed, and a tenth of the runs written after the index was built (matched by their words).

    python bench/search_index.py                  # about 250k steps (~20k runs)
    python bench/search_index.py --steps 60000
Goal: the default ingest at most 1.10 times the CPU of --no-index; search never stale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import write_files  # noqa: E402

import orjson  # noqa: E402

from libra.demo import generate_runs  # noqa: E402
from traces.importers.generic import run_to_record  # noqa: E402
from traces.queries import RunFilter, list_runs, unindexed  # noqa: E402
from traces.store import Store  # noqa: E402

LIBRA = [sys.executable, "-m", "libra.cli.main"]


def cpu_of(cmd: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a child process and everything it started."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - t


def search_ms(db: Path, text: str, tries: int = 7) -> float:
    store = Store(db)
    with store.hold():
        times = []
        for _ in range(tries):
            t = time.perf_counter()
            list_runs(store, RunFilter(text=text, fts=True), 50, 0)
            times.append((time.perf_counter() - t) * 1000)
    store.close()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=250_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        generic, otlp, n = write_files(args.steps, d)
        otlp.unlink()
        rows = []
        for label, extra in (("libra ingest --no-index (loading only)", ["--no-index"]),
                             ("libra ingest (default)", [])):
            db = d / "s.duckdb"
            db.unlink(missing_ok=True)
            cpu, wall = cpu_of([*LIBRA, "ingest", "-q", *extra, "--db", str(db), str(generic)])
            rows.append((label, cpu, wall))
        runs = Store(db).scalar("SELECT count(*) FROM runs")
        missing = unindexed(Store(db))
        no_index_ms = search_ms(db, "refund supervisor")
        cpu_i, wall_i = cpu_of([*LIBRA, "index", "--db", str(db)])
        rows.append(("before: ingest + index rebuild", rows[1][1] + cpu_i, rows[1][2] + wall_i))
        indexed_ms = search_ms(db, "refund supervisor")
        # a tenth more runs, written after the index: the usual state between scheduled index jobs
        more = d / "more.jsonl"
        with open(more, "wb") as f:
            for run in generate_runs(max(runs // 10, 1), seed=456, with_feedback=False):
                f.write(orjson.dumps(run_to_record(run), default=str) + b"\n")
        cpu_of([*LIBRA, "ingest", "-q", "--db", str(db), str(more)])
        pending = unindexed(Store(db))
        mixed_ms = search_ms(db, "refund supervisor")
    state = "no index built" if missing is None else f"{missing:,} runs not indexed"
    print(f"{n:,} steps, {runs:,} runs; after the default ingest: {state}")
    base = rows[0][1]
    print(f"{'':<40}{'CPU s':>8}{'wall s':>8}{'÷ --no-index (CPU)':>20}")
    for label, cpu, wall in rows:
        print(f"{label:<40}{cpu:>8.1f}{wall:>8.1f}{cpu / base:>20.2f}")
    print(f"search, median of 7 (ms): no index {no_index_ms:.0f}, every run indexed {indexed_ms:.0f}, "
          f"{pending:,} runs written after the index {mixed_ms:.0f}")
    print("goal: default ingest ÷ --no-index ≤ 1.10; the runs written after the index were found by their words")


if __name__ == "__main__":
    main()
