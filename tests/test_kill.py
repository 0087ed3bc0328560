"""A killed ingest leaves no partial run; re-running ends where an uninterrupted run does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from libra.demo import generate_runs
from traces.export import write_jsonl
from traces.ingest import ingest
from traces.store import Store

pytestmark = pytest.mark.contract  # kill safety, on both backends in every tier

INTEGRITY = (
    "SELECT (SELECT count(*) FROM runs r WHERE n_steps != "
    "        (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id)),"
    " (SELECT count(*) FROM steps s WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = s.run_id)),"
    " (SELECT count(*) FROM feedback f WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = f.run_id))"
)


def _kill_after_commits(proc: subprocess.Popen, commits: int, timeout: float = 180) -> None:
    """Kill without warning once the ingest has said `commits` batches are committed.

    The ingest's own log line is the signal: a file's size or a row count said
    nothing on a slow machine, where the first batch's data reached the file
    before its commit did, and the kill landed inside the first commit.
    """
    seen = threading.Event()

    def read() -> None:
        n = 0
        for line in proc.stderr:
            n += line.startswith(b"committed ")
            if n >= commits:
                seen.set()
        seen.set()

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(timeout), "the ingest said nothing"
    assert proc.poll() is None, "ingest finished before it could be killed; make the file bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("layout", ["one file", "a folder of one-run files"])
def test_sigkill_mid_file(tmp_path, backend, new_location, layout):
    """A kill loses at most the batch being written, whether the runs come in one file or one per file."""
    total = 12_000 if layout == "one file" else 1_500
    if layout == "one file":
        src = tmp_path / "big.jsonl"
        write_jsonl(generate_runs(total, seed=4), src)
    else:  # batches span files, so many small files commit as they go too
        src = tmp_path / "runs"
        src.mkdir()
        for i, run in enumerate(generate_runs(total, seed=4)):
            write_jsonl([run], src / f"r{i:05d}.jsonl")
    db = new_location("killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "libra.cli.main", "ingest", "--batch-steps", "4000",
         "--db", db, str(src)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    _kill_after_commits(proc, 2)

    s = Store(db)
    assert s.execute(INTEGRITY)[0] == (0, 0, 0)
    partial = s.counts()
    assert 0 < partial["runs"] < total, partial

    again = ingest(s, [src])
    assert again.duplicates == partial["runs"]
    clean = Store(new_location("clean"))
    ingest(clean, [src])
    assert s.counts() == clean.counts()
    assert s.execute(INTEGRITY)[0] == (0, 0, 0)
    assert s.execute("SELECT sum(n_steps), count(DISTINCT content_hash) FROM runs") == \
        clean.execute("SELECT sum(n_steps), count(DISTINCT content_hash) FROM runs")


# --- a kill inside the commit of one large batch ------------------------------------------

TORN_CHILD = """
import os, sys
from traces.ingest import ingest
from traces.store import Store
s = Store(sys.argv[1])
ingest(s, [sys.argv[2]], workers=1)  # the store before: committed, and checkpointed as the file is let go
with s.hold():
    with s.connection() as con:
        con.execute("SET checkpoint_threshold = '10GB'")  # keep the next commit in the log
    ingest(s, [sys.argv[3]], workers=1, batch_steps=1_000_000)  # one batch of every step
    os.kill(os.getpid(), 9)
"""

CONTENT = ("SELECT count(*), sum(n_steps), md5(string_agg(run_id || ':' || content_hash, ',' ORDER BY run_id)), "
           "(SELECT md5(string_agg(run_id || ':' || idx || ':' || coalesce(content, ''), ',' ORDER BY run_id, idx)) "
           "FROM steps) FROM runs")


def _plain_counts(db: str, wal: bytes, cut: int, scratch: Path) -> tuple[int, int]:
    """What DuckDB alone recovers from a log cut at `cut` (no Libra repair): (runs, steps)."""
    import duckdb
    import shutil

    shutil.copy(db, scratch)
    scratch.with_name(scratch.name + ".wal").write_bytes(wal[:cut])
    con = duckdb.connect(str(scratch), read_only=True)
    try:
        return con.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM steps)").fetchone()
    finally:
        con.close()


def _first(lo: int, hi: int, pred) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@pytest.mark.slow
def test_a_kill_inside_a_large_commit_is_repaired_and_ingesting_again_converges(tmp_path):
    """Every instant of a 100k-step commit, on a DuckDB file: the log cut where a kill leaves it.

    DuckDB alone brings back the batch's steps without its runs for some cuts
    (tests/test_duckdb_recovery.py); opening the store with Libra repairs that,
    and ingesting again ends exactly where one clean ingest does.
    """
    import shutil

    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_jsonl(generate_runs(300, seed=1), first)
    write_jsonl(generate_runs(11_000, seed=2), second)
    db = str(tmp_path / "torn.duckdb")
    subprocess.run([sys.executable, "-c", TORN_CHILD, db, str(first), str(second)], check=False,
                   env=dict(os.environ), cwd=Path(__file__).resolve().parents[1])
    wal = Path(db + ".wal").read_bytes()
    clean = Store(str(tmp_path / "clean.duckdb"))
    ingest(clean, [first], workers=1)
    before = clean.counts()
    ingest(clean, [second], workers=1)
    after = clean.counts()
    assert after["steps"] - before["steps"] >= 100_000, "the batch must take the optimistic path"

    probe = tmp_path / "probe.duckdb"
    steps_from = _first(0, len(wal), lambda c: _plain_counts(db, wal, c, probe)[1] > before["steps"])
    runs_from = _first(0, len(wal), lambda c: _plain_counts(db, wal, c, probe)[0] > before["runs"])
    assert _plain_counts(db, wal, len(wal), probe) == (after["runs"], after["steps"])
    assert steps_from < runs_from, "no torn window in this engine: nothing for Libra to repair here"
    assert _plain_counts(db, wal, steps_from, probe) == (before["runs"], after["steps"]), \
        "DuckDB alone: the batch's steps are back without its runs"

    cuts = sorted({0, steps_from, (steps_from + runs_from) // 2, runs_from - 1, runs_from, len(wal)})
    for cut in cuts:
        copy = tmp_path / f"cut{cut}.duckdb"
        shutil.copy(db, copy)
        copy.with_name(copy.name + ".wal").write_bytes(wal[:cut])
        s = Store(str(copy))  # opening repairs what the dead process's intent names
        assert s.execute(INTEGRITY)[0] == (0, 0, 0), cut
        runs = s.counts()["runs"]
        assert runs in (before["runs"], after["runs"]), (cut, runs)
        ingest(s, [first, second], workers=1)
        assert s.counts() == after, cut
        assert s.execute(CONTENT) == clean.execute(CONTENT), cut
        assert s.scalar("SELECT count(*) FROM ingest_intents") == 0
        s.close()


def _log_bytes(location: str, lake_data: Path | None) -> int:
    """What the commit in flight has written so far: the DuckDB log, or the lake's new data files."""
    try:
        if lake_data is not None:
            return sum(p.stat().st_size for p in lake_data.rglob("*.parquet"))
        return Path(location + ".wal").stat().st_size
    except FileNotFoundError:  # not there yet, or checkpointed away between listing and reading
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("at", [1, 300_000, 3_000_000])
def test_sigkill_inside_the_commit_of_a_100k_step_batch(tmp_path, backend, request, at):
    """A real kill -9 while one 139k-step batch commits, triggered by what the commit has written.

    On a DuckDB file the trigger is the log's size (the log is written at commit; the
    row groups before it); on a lake, the size of the data files the commit adds
    before the catalog records them.
    """
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_jsonl(generate_runs(300, seed=1), first)
    write_jsonl(generate_runs(11_000, seed=2), second)
    lake_data = tmp_path / "lake-data" if backend == "lake" else None
    loc = (request.getfixturevalue("pg").new_lake(data=str(lake_data)) if lake_data
           else str(tmp_path / "killed.duckdb"))
    s = Store(loc)
    ingest(s, [first], workers=1)
    before = s.counts()
    s.close()
    base = _log_bytes(loc, lake_data)
    proc = subprocess.Popen(
        [sys.executable, "-m", "libra.cli.main", "ingest", "-q", "--workers", "1", "--batch-steps", "1000000",
         "--db", loc, str(second)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if _log_bytes(loc, lake_data) - base >= at:
            break
    assert proc.poll() is None, "the ingest finished before the kill; lower the trigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    s = Store(loc)
    assert s.execute(INTEGRITY)[0] == (0, 0, 0)
    runs = s.counts()["runs"]
    assert before["runs"] <= runs, runs
    ingest(s, [first, second], workers=1)
    clean = Store(new_clean := str(tmp_path / "clean.duckdb"))
    ingest(clean, [first, second], workers=1)
    assert s.counts() == clean.counts(), new_clean
    assert s.execute(CONTENT) == clean.execute(CONTENT)
    assert s.scalar("SELECT count(*) FROM ingest_intents") == 0
