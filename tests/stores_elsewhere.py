"""Small stores and another process writing to them: what the tests of the app's kept answers share."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.store import Store

ROOT = Path(__file__).resolve().parents[1]

ADD_RUN = """
import sys
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.store import Store
s = Store(sys.argv[1])
w = BatchWriter(s, IngestSummary())
w.add_run(Run(native_id=sys.argv[2], format="libra", source="other-process", agent="late-agent", task="late",
              steps=(Step(kind=StepKind.USER, content="hello"),)))
w.flush()
s.close()
"""


def small_store(path: Path, n: int) -> Store:
    """A store of `n` one-step runs, their agents alternating between two."""
    s = Store(path)
    w = BatchWriter(s, IngestSummary())
    for i in range(n):
        w.add_run(Run(native_id=f"r{i}", format="libra", source="test", agent=f"agent-{i % 2}", task="t",
                      steps=(Step(kind=StepKind.USER, content=f"run {i}"),)))
    w.flush()
    return s


def add_run_elsewhere(path: Path, native_id: str) -> None:
    """One run committed by a process of its own, as another ingest would."""
    subprocess.run([sys.executable, "-c", ADD_RUN, str(path), native_id], check=True, cwd=ROOT, timeout=120)


def counting(calls: list):
    """A query that counts runs and records each time it is really asked."""
    def count(store: Store) -> int:
        calls.append(1)
        return int(store.scalar("SELECT count(*) FROM runs"))
    return count


def settled(at) -> None:
    """Let the app's journal flusher make its first pass and redraw once: the flusher's first connection
    to the journal creates its `-wal` file, which moves the journal's version once, at a moment of its own
    (the test failed in CI when that fell between the redraws it compares)."""
    time.sleep(2)  # the flusher's first pass is when it starts; it then reads every 1.5 s and writes nothing
    at.run()
