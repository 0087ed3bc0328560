"""The app keeps query answers only until the store changes, whoever changes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from libra import accounts
from libra.web.cache import cached
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.queries import RunFilter, count_runs, list_runs
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


def _store(path: Path, n: int) -> Store:
    s = Store(path)
    w = BatchWriter(s, IngestSummary())
    for i in range(n):
        w.add_run(Run(native_id=f"r{i}", format="libra", source="test", agent=f"agent-{i % 2}", task="t",
                      steps=(Step(kind=StepKind.USER, content=f"run {i}"),)))
    w.flush()
    return s


def _add_run_elsewhere(path: Path, native_id: str) -> None:
    subprocess.run([sys.executable, "-c", ADD_RUN, str(path), native_id], check=True, cwd=ROOT, timeout=120)


def test_an_answer_is_kept_until_another_process_commits_to_the_store(tmp_path):
    s = _store(tmp_path / "s.duckdb", 3)
    calls = []

    def counting(store: Store, flt: RunFilter) -> int:
        calls.append(flt)
        return count_runs(store, flt)

    assert cached(s, counting, RunFilter()) == 3
    assert cached(s, counting, RunFilter()) == 3
    assert len(calls) == 1  # the second answer came from memory
    assert cached(s, counting, RunFilter(agents=("agent-0",))) == 2  # other arguments, another answer
    assert len(calls) == 2
    _add_run_elsewhere(tmp_path / "s.duckdb", "late-1")
    assert cached(s, counting, RunFilter()) == 4  # the commit is seen at once
    assert len(calls) == 3
    with s.hold():  # and a commit of this process, inside a held store, as the app makes them
        accounts.add_user(s, "ana", "correct horse", "annotator")
        assert cached(s, counting, RunFilter()) == 4
    assert len(calls) == 4


def test_each_caller_gets_its_own_copy_of_a_kept_frame(tmp_path):
    s = _store(tmp_path / "s.duckdb", 2)
    first = cached(s, list_runs, RunFilter(extra={"unused": [1]}), 10, 0)  # a dict inside: keyed by its contents
    first["agent"] = "changed by a page"
    del first["task"]
    again = cached(s, list_runs, RunFilter(extra={"unused": [1]}), 10, 0)
    assert set(again["agent"]) == {"agent-0", "agent-1"} and "task" in again


def test_a_store_whose_changes_cannot_be_seen_is_asked_every_time():
    s = Store(":memory:")
    assert s.data_version() is None
    calls = []
    for _ in range(2):
        cached(s, lambda store: calls.append(1))
    assert len(calls) == 2


def test_the_runs_page_shows_a_run_another_process_added_on_its_next_rerun(tmp_path, page_test):
    path = tmp_path / "s.duckdb"
    s = _store(path, 3)
    accounts.add_user(s, "ana", "correct horse", "annotator")
    s.close()
    at = page_test("runs", Store(path), "ana").run()
    assert not at.exception
    assert any("3 runs match" in c.value for c in at.caption)
    at.run()  # a rerun with nothing changed: the same page
    assert any("3 runs match" in c.value for c in at.caption)
    _add_run_elsewhere(path, "late-1")
    at.run()
    assert any("4 runs match" in c.value for c in at.caption), [c.value for c in at.caption]
    assert "late-agent" in at.sidebar.multiselect(key="f-agent").options
