"""DuckDB 1.5.5, on its own, can bring back half of a transaction that never committed.

The engine behaviour Libra's ingest intents guard against (traces/recovery.py).
A transaction appends at least a row group to one table (written to the
database file before the commit, and logged as pointers) and a few rows to
another (logged as data). A process killed while it writes the log leaves a
prefix of it; replaying such a prefix restores the big table's rows and not
the small one's. The kill is reproduced exactly, without timing: the child
commits and dies without a checkpoint, and each prefix of its log is what a
kill at that byte would have left. Upstream: duckdb/duckdb pull request
"Fix uncommitted data recovered accidentally" (open as of this writing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import duckdb
import pytest

N_STEPS = 130_000  # more than a row group (122,880 rows): the optimistic path
N_RUNS = N_STEPS // 10

CHILD = textwrap.dedent("""
    import duckdb, os, sys
    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE runs (run_id INTEGER PRIMARY KEY, n_steps INTEGER)")
    con.execute("CREATE TABLE steps (run_id INTEGER, idx INTEGER, content VARCHAR)")
    con.execute("CHECKPOINT")
    con.execute("BEGIN")
    con.execute("INSERT INTO steps SELECT i // 10, i % 10, 'step ' || i FROM range({n}) t(i)")
    con.execute("INSERT INTO runs SELECT i, 10 FROM range({r}) t(i)")
    con.execute("COMMIT")
    os.kill(os.getpid(), 9)  # no checkpoint: the commit lives in the log only
""")


def prefix_state(db: str, wal: bytes, cut: int, scratch: str) -> tuple[int, int]:
    shutil.copy(db, scratch)
    with open(scratch + ".wal", "wb") as f:
        f.write(wal[:cut])
    con = duckdb.connect(scratch)
    try:
        return con.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM steps)").fetchone()
    finally:
        con.close()
        for p in (scratch, scratch + ".wal"):
            if os.path.exists(p):
                os.remove(p)


def first_cut(db: str, wal: bytes, scratch: str, seen) -> int:
    """The shortest prefix of the log whose replay satisfies `seen(runs, steps)` (it only grows)."""
    lo, hi = 0, len(wal)
    while lo < hi:
        mid = (lo + hi) // 2
        if seen(*prefix_state(db, wal, mid, scratch)):
            hi = mid
        else:
            lo = mid + 1
    return lo


def test_a_torn_log_brings_back_the_big_tables_rows_without_the_small_ones(tmp_path):
    db = str(tmp_path / "plain.duckdb")
    subprocess.run([sys.executable, "-c", CHILD.format(n=N_STEPS, r=N_RUNS), db], check=False)
    with open(db + ".wal", "rb") as f:
        wal = f.read()
    scratch = str(tmp_path / "replay.duckdb")
    assert prefix_state(db, wal, len(wal), scratch) == (N_RUNS, N_STEPS), "the whole log is the whole commit"
    assert prefix_state(db, wal, 0, scratch) == (0, 0)
    steps_from = first_cut(db, wal, scratch, lambda r, s: s > 0)
    runs_from = first_cut(db, wal, scratch, lambda r, s: r > 0)
    if steps_from >= runs_from:
        pytest.fail("DuckDB no longer replays the steps of a commit before its runs: the engine may be "
                    "fixed; traces/recovery.py still guards, and this reproduction should be revisited")
    torn = prefix_state(db, wal, (steps_from + runs_from) // 2, scratch)
    # a prefix of an unfinished commit, replayed as if part of it had committed
    assert torn == (0, N_STEPS), torn
