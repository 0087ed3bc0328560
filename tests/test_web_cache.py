"""The app keeps query answers only until the store changes, whoever changes it.

What happens to them when another process crashes or races a save is `test_web_cache_kills.py`.
"""

from __future__ import annotations

import threading

from libra import accounts
from libra.web.cache import cached, cached_on_ratings, cached_past_notes
from stores_elsewhere import ROOT, add_run_elsewhere, counting, settled, small_store
from traces.queries import RunFilter, count_runs, list_runs
from traces.store import Store


def test_an_answer_is_kept_until_another_process_commits_to_the_store(tmp_path):
    s = small_store(tmp_path / "s.duckdb", 3)
    calls = []

    def counting(store: Store, flt: RunFilter) -> int:
        calls.append(flt)
        return count_runs(store, flt)

    assert cached(s, counting, RunFilter()) == 3
    assert cached(s, counting, RunFilter()) == 3
    assert len(calls) == 1  # the second answer came from memory
    assert cached(s, counting, RunFilter(agents=("agent-0",))) == 2  # other arguments, another answer
    assert len(calls) == 2
    add_run_elsewhere(tmp_path / "s.duckdb", "late-1")
    assert cached(s, counting, RunFilter()) == 4  # the commit is seen at once
    assert len(calls) == 3
    with s.hold():  # and a commit of this process, inside a held store, as the app makes them
        accounts.add_user(s, "ana", "correct horse", "annotator")
        assert cached(s, counting, RunFilter()) == 4
    assert len(calls) == 4


def test_each_caller_gets_its_own_copy_of_a_kept_frame(tmp_path):
    s = small_store(tmp_path / "s.duckdb", 2)
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
    s = small_store(path, 3)
    accounts.add_user(s, "ana", "correct horse", "annotator")
    s.close()
    at = page_test("runs", Store(path), "ana").run()
    assert not at.exception
    assert any("3 runs match" in c.value for c in at.caption)
    at.run()  # a rerun with nothing changed: the same page
    assert any("3 runs match" in c.value for c in at.caption)
    add_run_elsewhere(path, "late-1")
    at.run()
    assert any("4 runs match" in c.value for c in at.caption), [c.value for c in at.caption]
    assert "late-agent" in at.sidebar.multiselect(key="f-agent").options


def test_a_lazy_hold_opens_the_file_at_its_first_statement_once_and_only_then(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    s = small_store(path, 2)
    opened = []
    real_open = Store._open
    monkeypatch.setattr(Store, "_open", lambda self: opened.append(self.path) or real_open(self))
    with s.hold(lazy=True):
        add_run_elsewhere(path, "while-held-unused")  # nothing read yet: the file is not this process's
        assert opened == []
        page = Store(path)  # a page's own handle on the file, in the same thread: read through the hold
        with page.hold(lazy=True):  # and a fragment's inner hold
            assert page.scalar("SELECT count(*) FROM runs") == 3
        assert s.scalar("SELECT count(*) FROM runs") == 3
        assert len(opened) == 1  # one open for every statement of the block
    add_run_elsewhere(path, "after-the-hold")  # released when the block ended
    assert s.scalar("SELECT count(*) FROM runs") == 4


def test_an_app_rerun_with_nothing_changed_does_not_open_the_store(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "s.duckdb"
    s = small_store(path, 3)
    accounts.add_user(s, "ana", "correct horse", "annotator")
    monkeypatch.setenv("LIBRA_STORE", str(path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_input(key="signin-user").input("ana")
    at.text_input(key="signin-pass").input("correct horse")
    at.button[0].click().run()
    at.run()  # the sign-in's own writes (its session) are in the store: answers from here on are kept
    settled(at)
    opened = []
    real_open = Store._open
    monkeypatch.setattr(Store, "_open", lambda self: opened.append(self.path) or real_open(self))
    at.run()
    assert not at.exception and len(at.dataframe[0].value) == 3  # the runs page, drawn from memory
    assert opened == []
    add_run_elsewhere(path, "late-1")
    accounts.set_disabled(Store(path), "ana", True)  # the sign-in check is kept only until the store changes
    at.run()
    assert any("disabled" in e.value for e in at.error)
    assert opened


RUN_PAGE = """
import streamlit as st
from libra.web import run_view, session
st.session_state.setdefault("pages", {})
with session.store().hold(lazy=True):  # as the app's main holds it
    run_view.page()
"""


def test_a_run_page_redrawn_unchanged_reads_nothing_and_a_saved_note_shows_at_once(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "s.duckdb"
    s = small_store(path, 2)
    accounts.add_user(s, "ana", "correct horse", "annotator")
    run_id = s.scalar("SELECT run_id FROM runs LIMIT 1")
    monkeypatch.setenv("LIBRA_STORE", str(path))
    at = AppTest.from_string(RUN_PAGE, default_timeout=60)
    at.session_state["user"] = accounts.get_user(s, "ana")
    at.session_state["run_id"] = run_id
    at.run()
    settled(at)
    opened = []
    real_open = Store._open
    monkeypatch.setattr(Store, "_open", lambda self: opened.append((self.path, threading.current_thread().name))
                        or real_open(self))
    at.run()
    assert not at.exception and opened == []  # its run, scores and notes all from memory
    at.text_area(key=f"draft-{run_id}").input("Answered before reading the file.")
    at.button(key=f"draft-{run_id}-save").click().run()
    # the note is in the journal (or already in the store): either way the notes' answer was recomputed
    assert any(t.value.startswith("ana on the whole run") for t in at.text)
    assert any(c.value == "Answered before reading the file." for c in at.code)
    # the notes' rerun applied it to the store
    assert s.scalar("SELECT text FROM feedback") == "Answered before reading the file."
    # opening the file once, for that and the notes' read: not to check the account (its answer is
    # kept, as the sign-in check's), nor to apply the note in the save's callback and again to read
    at.run()
    opened.clear()
    at.text_area(key=f"draft-{run_id}").input("A second note.")
    at.button(key=f"draft-{run_id}-save").click().run()
    assert any(c.value == "A second note." for c in at.code)
    assert len([p for p, thread in opened if not thread.startswith("libra-flush")]) == 1, opened


def test_an_answer_that_reads_no_notes_outlives_this_apps_saves_and_nothing_else(tmp_path):
    from traces.annotation import feedback

    path = tmp_path / "s.duckdb"
    s = small_store(path, 3)
    run_id = s.scalar("SELECT run_id FROM runs LIMIT 1")
    blind, seeing = [], []
    count_blind, count_seeing = counting(blind), counting(seeing)

    def both() -> tuple[int, int]:
        return cached_past_notes(s, count_blind), cached(s, count_seeing)

    assert both() == (3, 3)
    feedback.add(s, run_id, "ana", "a note, applied to the store at once")
    assert feedback.flush(s) == 0 and s.scalar("SELECT count(*) FROM feedback") == 1  # committed and let go
    assert both() == (3, 3)
    assert (len(blind), len(seeing)) == (1, 2)  # only the answer that may read notes was asked again
    with s.hold(lazy=True):  # as the app holds it for a rerun: saves while the file is held
        assert both() == (3, 3)
        feedback.add(s, run_id, "ana", "another note", flush_now=False)
        assert feedback.flush(s) == 1
        assert both() == (3, 3)
    assert both() == (3, 3)  # the file let go (its log folded into it) is still the file expected
    assert (len(blind), len(seeing)) == (1, 3)
    # every other commit moves it: another process's, this process's own of other data,
    # and a write that was never accounted for
    add_run_elsewhere(path, "late-1")
    assert both() == (4, 4) and (len(blind), len(seeing)) == (2, 4)
    accounts.add_user(s, "ana", "correct horse", "annotator")
    assert both() == (4, 4) and (len(blind), len(seeing)) == (3, 5)
    with s.connection() as con:
        con.execute("DELETE FROM steps WHERE run_id IN (SELECT run_id FROM runs WHERE native_id = 'late-1')")
        con.execute("DELETE FROM runs WHERE native_id = 'late-1'")
    assert both() == (3, 3) and (len(blind), len(seeing)) == (4, 6)
    # a save after something unaccounted keeps the answers taken since it
    feedback.add(s, run_id, "ana", "a third note", flush_now=False)
    assert feedback.flush(s) == 1
    assert both() == (3, 3) and (len(blind), len(seeing)) == (4, 7)


def test_an_answer_on_ratings_outlives_saves_that_rate_nothing_and_no_other_change(tmp_path):
    from traces.annotation import feedback

    path = tmp_path / "s.duckdb"
    s = small_store(path, 3)
    run_id, other_run = [r[0] for r in s.execute("SELECT run_id FROM runs ORDER BY run_id LIMIT 2")]
    calls: list = []

    def mean_rating(store: Store) -> tuple:
        calls.append(1)
        return tuple(store.execute("SELECT run_id, author, avg(rating) FROM feedback WHERE rating IS NOT NULL "
                                   "AND deleted_at IS NULL GROUP BY ALL ORDER BY ALL"))

    def saved(fn, *args, **kwargs):
        out = fn(s, *args, **kwargs)
        feedback.flush(s)
        return out

    assert cached_on_ratings(s, mean_rating) == () and len(calls) == 1
    saved(feedback.add, run_id, "ana", "no rating here", flush_now=False)
    assert cached_on_ratings(s, mean_rating) == () and len(calls) == 1  # nothing rated: kept
    fid = saved(feedback.add, run_id, "ana", "rated", rating=4, flush_now=False)
    assert cached_on_ratings(s, mean_rating) == ((run_id, "ana", 4.0),) and len(calls) == 2
    saved(feedback.edit, fid, "ana", text="reworded, same rating")
    assert cached_on_ratings(s, mean_rating) == ((run_id, "ana", 4.0),) and len(calls) == 2
    saved(feedback.edit, fid, "ana", rating=2)
    assert cached_on_ratings(s, mean_rating) == ((run_id, "ana", 2.0),) and len(calls) == 3
    # the same rating by someone else on another run sums to nothing new in a count or a mean
    saved(feedback.add, other_run, "bo", "rated too", rating=2, flush_now=False)
    assert cached_on_ratings(s, mean_rating) == ((run_id, "ana", 2.0), (other_run, "bo", 2.0)) and len(calls) == 4
    saved(feedback.delete, fid, "ana")
    assert cached_on_ratings(s, mean_rating) == ((other_run, "bo", 2.0),) and len(calls) == 5
    # a rating saved but not yet applied is not in the store, which is all such answers read;
    # applied, it is seen
    feedback.add(s, run_id, "ana", "rated, waiting", rating=5, flush_now=False)
    assert cached_on_ratings(s, mean_rating) == ((other_run, "bo", 2.0),) and len(calls) == 5
    assert feedback.flush(s) == 1
    assert cached_on_ratings(s, mean_rating) == ((run_id, "ana", 5.0), (other_run, "bo", 2.0))
    assert len(calls) == 6
    with s.connection() as con:  # a rating someone else's tool changed in place, by hand
        con.execute("UPDATE feedback SET rating = 1 WHERE author = 'bo'")
    assert cached_on_ratings(s, mean_rating)[1] == (other_run, "bo", 1.0) and len(calls) == 7
    add_run_elsewhere(path, "late-1")  # any other commit
    cached_on_ratings(s, mean_rating)
    assert len(calls) == 8


def test_a_rerun_with_no_rating_changed_asks_the_store_nothing(tmp_path, monkeypatch):
    """The ratings' own version is kept by the store's and the journal's: asking it opened the file."""
    from traces.annotation import feedback

    path = tmp_path / "s.duckdb"
    s = small_store(path, 2)
    calls: list = []
    count = counting(calls)
    assert cached_on_ratings(s, count) == 2
    s.close()
    opened: list = []
    real_open = Store._open
    monkeypatch.setattr(Store, "_open", lambda self: opened.append(self.path) or real_open(self))
    with s.hold(lazy=True):
        assert cached_on_ratings(s, count) == 2
    assert opened == [] and len(calls) == 1
    run_id = s.scalar("SELECT run_id FROM runs LIMIT 1")
    feedback.add(s, run_id, "ana", "no rating", flush_now=False)
    assert feedback.flush(s) == 1
    opened.clear()
    with s.hold(lazy=True):
        assert cached_on_ratings(s, count) == 2
    assert len(opened) == 1 and len(calls) == 1  # one look at the ratings, no answer recomputed


def _call_sites(keeper: str = "cached_past_notes") -> set[str]:
    """The functions the app's pages pass to `keeper`, by their names in the source."""
    import ast

    names = set()
    for f in (ROOT / "libra" / "web").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == keeper:
                names.add(ast.unparse(node.args[1]).rsplit(".", 1)[-1])
    return names


def test_what_the_pages_keep_past_saves_reads_no_notes(tmp_path, monkeypatch, demo_into, page_test):
    """Every call the runs page, a run and each dashboard tab make through `cached_past_notes`,
    made again on the same store with its feedback tables gone: one that read notes fails there.
    And those made through `cached_on_ratings`, with only the columns `feedback.ratings_version` reads."""
    from libra.web import dashboards, run_view, runs, session
    from metrics import sets
    from metrics.definitions import Example, Metric, MetricSet
    from metrics.embeddings import default_embedder
    from metrics.judges.similarity import SimilarityJudge
    from metrics.jobs import alerts
    from metrics.scoring import score_runs
    from pipa.judge import PipaJudge
    from pipa.scoring import score_pipa
    from traces.annotation import feedback

    path = tmp_path / "s.duckdb"
    s = Store(path)
    demo_into(s, 30)
    ms = sets.save(s, MetricSet("dash", 0, "dash", (
        Metric("confirm", "Confirmation", "Asks before booking.",
               good=(Example("Shall I book it?"),), bad=(Example("booked without asking"),)),)),
        backend="offline/offline")  # as induction names its grounder and namer: the Induction tab lists it
    score_runs(s, ms, SimilarityJudge(default_embedder(s)))
    score_pipa(s, PipaJudge())
    alerts.check(s, [alerts.AlertRule(name="low", metric="confirm", below=0.99, window_hours=None, min_runs=1)])
    accounts.add_user(s, "ana", "correct horse", "annotator")
    run_id = s.scalar("SELECT run_id FROM feedback LIMIT 1")
    s.close()
    made: list = []
    rated: list = []

    def recording(into: list):
        def record(store, fn, *args, **kwargs):
            into.append((fn, args, kwargs))
            return fn(store, *args, **kwargs)
        return record

    for module in (dashboards, run_view, runs, session):
        monkeypatch.setattr(module, "cached_past_notes", recording(made))
    monkeypatch.setattr(dashboards, "cached_on_ratings", recording(rated))
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LIBRA_STORE", str(path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()  # signing in: accounts, sessions
    app.text_input(key="signin-user").input("ana")
    app.text_input(key="signin-pass").input("correct horse")
    app.button[0].click().run()
    app.run()
    assert not app.exception and app.dataframe  # signed in, on the runs page
    app.text_input(key="f-text").input("booking").run()  # a search: how far the index lags
    assert not app.exception
    app.sidebar.selectbox(key="f-annotated").select("with feedback").run()  # a filter that reads notes
    assert not app.exception
    at = page_test("run_view", Store(path), "ana", run_id=run_id).run()
    assert not at.exception
    at = page_test("dashboards", Store(path), "ana").run()
    for tab in ("Scores over time", "Runs × metrics", "PIPA profile", "Induction", "People & cost"):
        at.session_state["tab"] = tab
        at.run()
        assert not at.exception, (tab, at.exception)
    assert {getattr(fn, "__name__", "") for fn, _, _ in made} >= _call_sites()
    assert {getattr(fn, "__name__", "") for fn, _, _ in rated} >= _call_sites("cached_on_ratings") != set()
    before = [fn(Store(path), *args, **kwargs) for fn, args, kwargs in rated]
    assert any(not df.empty for df in before)  # the demo's queues and scores give them something to read
    s = Store(path)
    with s.transaction() as con:
        for table in ("feedback", "feedback_history"):  # what a save writes (`feedback.flush`)
            for index, in con.execute("SELECT index_name FROM duckdb_indexes() WHERE table_name = ?",
                                      [table]).fetchall():
                con.execute(f'DROP INDEX "{index}"')  # an index keeps its table from being renamed
            con.execute(f"ALTER TABLE {table} RENAME TO gone_{table}")
    for fn, args, kwargs in made:
        fn(s, *args, **kwargs)
    with s.transaction() as con:
        con.execute("CREATE TABLE feedback AS SELECT feedback_id, run_id, author, rating, metadata, deleted_at "
                    "FROM gone_feedback")
    feedback.ratings_version(s)
    for (fn, args, kwargs), was in zip(rated, before, strict=True):
        assert fn(s, *args, **kwargs).equals(was)


