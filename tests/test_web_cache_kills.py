"""Kept answers stay right when another process commits behind a save, or is killed after its commit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from libra.web.cache import cached_past_notes
from stores_elsewhere import ROOT, add_run_elsewhere, counting, small_store
from traces.annotation import feedback
from traces.store import Store


def _noted_store(tmp_path: Path, note: str) -> tuple[Path, Store, str, list, Callable[[Store], int]]:
    """A store of two runs with one note applied, and a count of its runs kept past notes (asked once)."""
    path = tmp_path / "s.duckdb"
    s = small_store(path, 2)
    run_id = s.scalar("SELECT run_id FROM runs LIMIT 1")
    calls: list = []
    count = counting(calls)
    feedback.add(s, run_id, "ana", note)
    assert cached_past_notes(s, count) == 2 and len(calls) == 1
    return path, s, run_id, calls, count


def test_a_save_racing_another_process_never_hides_its_commit(tmp_path):
    """Another process commits between this process's last look at the file and its save: the
    save's commit starts from a file it did not expect, so the answers move."""
    path, s, run_id, calls, count = _noted_store(tmp_path, "first")
    add_run_elsewhere(path, "late-1")
    feedback.add(s, run_id, "ana", "second", flush_now=False)
    assert feedback.flush(s) == 1  # the save's own commit, on top of the other process's
    assert cached_past_notes(s, count) == 3 and len(calls) == 2


def test_reading_the_journal_from_a_new_thread_leaves_its_version_alone(tmp_path):
    """Streamlit runs each rerun in a thread of its own, and each thread opens its own connection to
    the journal. SQLite run as root gives the log to the file's owner as it opens it, which moved the
    change time the version was made of: every kept answer that reads notes was thrown away."""
    import threading

    s = small_store(tmp_path / "s.duckdb", 1)
    j = feedback.journal(s)
    j.append("create", {"feedback_id": "f1"})
    before = j.version()
    for _ in range(3):
        t = threading.Thread(target=j.pending)
        t.start()
        t.join()
    assert j.version() == before
    j.append("create", {"feedback_id": "f2"})  # while a write still moves it
    assert j.version() != before


KILLED_AFTER_COMMIT = """
import os, sys
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.store import Store
s = Store(sys.argv[1])
with s.hold():
    w = BatchWriter(s, IngestSummary())
    w.add_run(Run(native_id="killed-1", format="libra", source="killed", agent="a", task="t",
                  steps=(Step(kind=StepKind.USER, content="<script>alert(1)</script>"),)))
    w.flush()
    os.kill(os.getpid(), 9)  # committed to the log, never folded into the file
"""


def test_a_process_killed_after_its_commit_is_seen_before_and_after_this_apps_next_save(tmp_path):
    path, s, run_id, calls, count = _noted_store(tmp_path, "before the kill")
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_COMMIT, str(path)], cwd=ROOT, timeout=120)
    assert proc.returncode == -9 and Path(str(path) + ".wal").exists()
    assert cached_past_notes(s, count) == 3 and len(calls) == 2  # its log alone moved the version
    # the save opens the file, which replays the log the kill left: the answer is right either way
    feedback.add(s, run_id, "ana", "after the kill", flush_now=False)
    assert feedback.flush(s) == 1
    assert cached_past_notes(s, count) == 3
    asked = len(calls)
    feedback.add(s, run_id, "ana", "and one more", flush_now=False)
    assert feedback.flush(s) == 1
    assert cached_past_notes(s, count) == 3 and len(calls) == asked  # and kept across saves from then on
