"""A killed ingest leaves no partial run; re-running ends where an uninterrupted run does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


def _written_enough(location: str, lake: bool) -> bool:
    """Several batches are committed: judged from the file's size, or by asking the lake."""
    if lake:
        return Store(location).scalar("SELECT count(*) FROM runs") >= 2000
    db, wal = Path(location), Path(location + ".wal")
    return db.exists() and db.stat().st_size + (wal.stat().st_size if wal.exists() else 0) > 4_000_000


def test_sigkill_mid_file(tmp_path, backend, new_location):
    src = tmp_path / "big.jsonl"
    total = 12_000
    write_jsonl(generate_runs(total, seed=4), src)
    db = new_location("killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "libra.cli.main", "ingest", "-q", "--batch-steps", "4000", "--db", db, str(src)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    deadline = time.monotonic() + 120
    # wait until several batches have been committed, then kill without warning
    while time.monotonic() < deadline and proc.poll() is None:
        if _written_enough(db, backend == "lake"):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "ingest finished before it could be killed; make the file bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

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
