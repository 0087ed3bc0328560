"""Every page of the app, driven with streamlit.testing."""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from libra.web.widgets import md
from traces.annotation import feedback, queues
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from app_pages import APP, EVIL, app_store, page_app  # noqa: I001 - the suite's own helpers


@pytest.fixture
def db(location, monkeypatch, demo_into):
    return app_store(location, monkeypatch, demo_into)


def test_runs_browser_filters_search_and_pages(db):
    at = page_app("runs", "ana", db).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 50 and "61 runs match" in at.caption[0].value
    at.number_input(key="f-page").set_value(2).run()
    assert len(at.dataframe[0].value) == 11
    at.number_input(key="f-page").set_value(1).run()
    at.multiselect(key="f-agent").select("support-desk@v3").run()
    assert set(at.dataframe[0].value["agent"]) == {"support-desk@v3"}
    at.text_input(key="f-text").input("supervisor").run()
    df = at.dataframe[0].value
    assert len(df) > 0 and set(df["agent"]) == {"support-desk@v3"}
    at.selectbox(key="f-annotated").select("without feedback").run()
    assert (at.dataframe[0].value["feedback"] == 0).all()


def test_run_view_saves_feedback_anchored_to_steps_edits_and_deletes(db):
    run_id = db.scalar("SELECT run_id FROM runs WHERE agent = 'travel-concierge@v1' LIMIT 1")
    at = page_app("run_view", "ana", db, run_id).run()
    assert not at.exception
    at.multiselect(key=f"draft-{run_id}-steps").select(2).select(3)
    at.text_area(key=f"draft-{run_id}").input("Looped on the failing search call.")
    at.radio(key=f"draft-{run_id}-rating").set_value(2)
    at.button(key=f"draft-{run_id}-save").click().run()
    assert any("Saved" in s.value for s in at.success)
    assert at.text_area(key=f"draft-{run_id}").value == ""  # cleared only after a successful save
    feedback.flush(db)
    row = db.execute("SELECT author, steps, rating, text, feedback_id FROM feedback WHERE origin = 'app'")[0]
    assert row[:4] == ("ana", [2, 3], 2.0, "Looped on the failing search call.")
    fid = row[4]
    # who wrote it, where it is anchored, and when (UTC)
    assert any(re.fullmatch(r"ana on steps 2, 3 · rating 2 · \d{4}-\d\d-\d\d \d\d:\d\d UTC", t.value)
               for t in at.text)
    assert not [t for t in at.text_area if t.key == f"edit-{fid}"]  # drawn only when opened
    at.button(key=f"edit-{fid}-open").click().run()
    at.text_area(key=f"edit-{fid}").input("Looped three times on the failing search call.")
    at.button(key=f"edit-{fid}-save").click().run()
    feedback.flush(db)
    assert db.scalar("SELECT text FROM feedback WHERE feedback_id = ?", [fid]).startswith("Looped three times")
    assert [a for a, in db.execute("SELECT action FROM feedback_history WHERE feedback_id = ? ORDER BY revision",
                                   [fid])] == ["create", "edit"]
    at.button(key=f"edit-{fid}-del").click().run()
    assert not [t for t in at.text_area if t.key == f"edit-{fid}"]  # a delete closes the form
    feedback.flush(db)
    assert db.scalar("SELECT deleted_at IS NOT NULL FROM feedback WHERE feedback_id = ?", [fid])
    assert db.scalar("SELECT count(*) FROM feedback_history WHERE feedback_id = ?", [fid]) == 3


def test_empty_note_is_refused_and_the_draft_survives_reruns(db):
    run_id = db.scalar("SELECT run_id FROM runs LIMIT 1")
    at = page_app("run_view", "ana", db, run_id).run()
    at.button(key=f"draft-{run_id}-save").click().run()
    assert any("write something" in e.value for e in at.error)
    at.text_area(key=f"draft-{run_id}").input("half-written")
    at.run()
    at.run()
    assert at.text_area(key=f"draft-{run_id}").value == "half-written"


def test_trace_content_is_shown_as_text(db):
    at = page_app("run_view", "ana", db, "libra:evil-1").run()
    assert not at.exception
    codes = [c.value for c in at.code]
    assert EVIL in codes and ("Error: " + EVIL) in codes
    assert all(EVIL not in m.value for m in at.markdown)
    heads = [b.label for b in at.button if (b.key or "").startswith("anchor-")]
    assert heads and all(EVIL not in h for h in heads)
    # a failed step's head, the button that anchors a note to it, says so in red
    assert any(h.startswith(":red[") and "· error]" in h for h in heads), heads


def test_queues_next_run_progress_and_agreement(db):
    at = page_app("queues_page", "root", db).run()
    assert not at.exception
    at.text_input(key="q-name").input("travel review")
    at.multiselect(key="q-agents").select("travel-concierge@v1")
    at.number_input(key="q-k").set_value(2)
    at.button[0].click().run()
    assert any("created" in s.value for s in at.success)
    qid = db.scalar("SELECT queue_id FROM queues")
    n = db.scalar("SELECT count(*) FROM queue_items WHERE queue_id = ?", [qid])
    first = queues.next_run(db, qid, "ana")
    assert queues.next_run(db, qid, "ana") == first  # an open assignment is resumed
    assert queues.next_run(db, qid, "bo") == first  # k = 2: both get it
    queues.finish(db, qid, first, "ana")
    feedback.add(db, first, "ana", "fine", rating=4)
    feedback.add(db, first, "bo", "fine too", rating=4)
    queues.finish(db, qid, first, "bo")
    at = page_app("queues_page", "ana", db).run()
    texts = [p.text for p in at.get("progress")] if hasattr(at, "get") else []
    assert any(f"2 of {2 * n}" in t for t in texts)
    at = page_app("queues_page", "root", db).run()
    assert any("Krippendorff" in c.value for c in at.caption)


def test_metrics_page_review_edit_and_approve(db):
    from metrics import sets
    from metrics.definitions import Example, Metric, MetricSet

    run_id = db.scalar("SELECT run_id FROM runs LIMIT 1")
    ms = sets.save(db, MetricSet("review", 0, "to review", (
        Metric("m1", "Tool error recovery", "Recovers from errors.", good=(Example("fixed it", run_id, (2,), "f"),)),
        Metric("m2", "Confirmation", "Asks first.", bad=(Example("did not ask", run_id, (5,)),)))))
    at = page_app("metrics_page", "root", db).run()
    assert not at.exception
    assert any("Tool error recovery" in h.value for h in at.subheader)
    at.text_input(key="ed-name-m1").input("Recovering from tool errors")
    at.button(key="ed-save-m1").click().run()
    assert sets.load(db, "review").get("m1").name == "Recovering from tool errors"
    assert sets.load(db, "review").version == ms.version + 1
    at = page_app("metrics_page", "root", db).run()
    at.button(key="ms-approve").click().run()
    assert [m.version for m in sets.approved(db)] == [ms.version + 1]
    at = page_app("metrics_page", "ana", db).run()
    assert not [b for b in at.button if b.key in ("ms-approve", "ed-save-m1")]


def test_dashboards_show_alerts_scores_drill_down_and_pipa(db):
    from metrics.jobs import alerts
    from metrics import sets
    from metrics.definitions import Example, Metric, MetricSet
    from metrics.embeddings import default_embedder
    from metrics.judges.similarity import SimilarityJudge
    from metrics.scoring import score_runs
    from pipa.judge import PipaJudge
    from pipa.scoring import score_pipa

    ms = sets.save(db, MetricSet("dash", 0, "dash", (
        Metric("loop", "Tool error recovery", "Recovers from failing tool calls.",
               good=(Example("fixed the arguments after the error and the retry worked"),),
               bad=(Example("Error: invalid date format, expected YYYY-MM-DD"),)),
        Metric("confirm", "Confirmation", "Asks before booking.",
               good=(Example("Shall I book it?"),), bad=(Example("booked without asking"),)))))
    assert score_runs(db, ms, SimilarityJudge(default_embedder(db))).runs_scored == 61
    score_pipa(db, PipaJudge())
    alerts.check(db, [alerts.AlertRule(name="recovery", metric="loop", below=0.99, window_hours=None, min_runs=1)])
    at = page_app("dashboards", "ana", db).run()
    assert not at.exception, at.exception
    assert any("recovery" in e.value for e in at.error)
    assert len(at.tabs) == 5
    # over time and by agent, one chart of two halves: the open tab only is computed
    assert len(at.get("vega_lite_chart")) == 1
    assert len(json.loads(at.get("vega_lite_chart")[0].proto.spec)["vconcat"]) == 2
    # both halves answer for the metrics picked
    at.multiselect(key="dash-metrics").set_value(["Confirmation"]).run()
    chart = at.get("vega_lite_chart")[0].proto
    halves = json.loads(chart.spec)["vconcat"]
    assert len(halves) == 2
    data = {d.name: d.data.data for d in chart.datasets}
    for half in halves:
        rows = data[half["data"]["name"]]
        assert b"Confirmation" in rows and b"Tool error recovery" not in rows
    at.session_state["tab"] = "PIPA profile"
    at.run()
    assert not at.exception and len(at.get("vega_lite_chart")) >= 1  # the PIPA profile
    assert any("needs a judge" in c.value for c in at.caption)
    at.session_state["tab"] = "Runs × metrics"
    at.run()
    assert not at.exception and len(at.get("vega_lite_chart")) >= 1  # the heatmap
    run_id = at.selectbox(key="dash-run").value
    from libra.web.widgets import md

    assert any(md(run_id) in h.value for h in at.subheader)  # the id as literal text
    assert at.expander  # one per metric with the judge's reason and evidence steps
    # each verdict's reason and steps in one block of literal text
    with_steps = {r for (r,) in db.execute("SELECT run_id FROM scores WHERE metric_set_id = 'dash' AND len(evidence) > 0")}
    at.selectbox(key="dash-run").set_value(next(r for r in at.selectbox(key="dash-run").options if r in with_steps)).run()
    assert any("── step " in c.value for c in at.code), [c.value[:80] for c in at.code]
    at = page_app("run_view", "ana", db, run_id=run_id).run()
    assert not at.exception
    assert any(e.label.startswith("Scores (") for e in at.expander)


def test_anchors_past_a_shortened_runs_end_are_flagged_and_survive_an_edit(db):
    def run(n: int) -> Run:
        return Run(native_id="shrinks-1", format="libra", source="test", agent="a", task="t",
                   steps=tuple(Step(kind=StepKind.AGENT, content=f"step {i}") for i in range(n)),
                   globally_unique_id=True)

    w = BatchWriter(db, IngestSummary())
    w.add_run(run(5))
    w.flush()
    run_id = db.scalar("SELECT run_id FROM runs WHERE native_id = 'shrinks-1'")
    feedback.add(db, run_id, "ana", "the last step gave up", steps=[1, 4])
    feedback.flush(db)
    w.add_run(run(3))  # the same run again, shorter: it replaces the stored version
    w.flush()
    assert db.scalar("SELECT n_steps FROM runs WHERE run_id = ?", [run_id]) == 3
    at = page_app("run_view", "ana", db, run_id).run()
    assert not at.exception
    assert any("step 4, which this run no longer has" in w.value for w in at.warning)
    [fid] = [f for f, in db.execute("SELECT feedback_id FROM feedback WHERE run_id = ? AND origin = 'app'", [run_id])]
    at.button(key=f"edit-{fid}-open").click().run()
    assert at.multiselect(key=f"edit-{fid}-steps").value == [1], "the form offers the steps the run has"
    at.text_area(key=f"edit-{fid}").input("the last step gave up, twice")
    at.button(key=f"edit-{fid}-save").click().run()
    assert not at.exception and any("Updated" in s.value for s in at.success), [e.value for e in at.error]
    feedback.flush(db)
    assert db.execute("SELECT text, steps FROM feedback WHERE feedback_id = ?", [fid]) == \
        [("the last step gave up, twice", [1, 4])], "the anchor past the end is kept"


def test_the_run_view_suggests_the_steps_a_draft_is_about(db):
    run_id = db.scalar("SELECT run_id FROM runs WHERE native_id = 'evil-1'")
    at = page_app("run_view", "ana", db, run_id).run()
    at.text_area(key=f"draft-{run_id}").input("The tool call failed with an error.")
    at.button(key=f"draft-{run_id}-suggest").click().run()
    assert not at.exception
    chosen = at.multiselect(key=f"draft-{run_id}-steps").value
    assert 1 in chosen, chosen  # the failing tool result
    assert any("Suggested steps" in s.value for s in at.success)


def test_libra_ground_ranks_the_steps_of_a_run(db):
    import libra
    from typer.testing import CliRunner

    from libra.cli.main import app

    run_id = db.scalar("SELECT run_id FROM runs WHERE native_id = 'evil-1'")
    ranked = libra.ground(db, run_id, "the tool call failed with an error", k=2)
    assert ranked[0].idx == 1 and abs(sum(r.probability for r in libra.ground(db, run_id, "x", k=5)) - 1) < 1e-6
    assert libra.ground(db, run_id, "step 0 was wrong", k=1)[0].explicit
    r = CliRunner().invoke(app, ["ground", run_id, "the tool call failed", "--db", db.path, "--k", "2"])
    assert r.exit_code == 0 and "steps of" in r.output, r.output
    bad = CliRunner().invoke(app, ["ground", "no-such-run", "x", "--db", db.path])
    assert bad.exit_code != 0 and "no run" in bad.output


def test_the_run_view_shows_each_agents_verdicts_side_by_side(db):
    """Issue 18: a dialogue's verdicts per agent, one column per agent, names shown as text."""
    from metrics.definitions import Metric, MetricSet
    from metrics.judges.base import Judgement, Verdict
    from metrics.scoring import score_runs

    w = BatchWriter(db, IngestSummary())
    w.add_run(Run(native_id="dialogue-1", format="libra", source="test", agent="m",
                  steps=(Step(kind=StepKind.AGENT, content="Can I have it?", actor="**Ann**"),
                         Step(kind=StepKind.AGENT, content="No.", actor="Bo")),
                  metadata={"agents": ["**Ann**", "Bo"]}, globally_unique_id=True))
    w.flush()
    run_id = db.scalar("SELECT run_id FROM runs WHERE native_id = 'dialogue-1'")

    class ByName:
        backend, version = "stub", "1"

        def judge(self, runs, metric_set, progress=None):
            return [Judgement(v.run_id, tuple(Verdict(m.metric_id, -1 if v.focus == "Bo" else 1)
                                              for m in metric_set.metrics)) for v in runs]

    ms = MetricSet("per-agent", 1, "p", (Metric("share", "Shares when asked", "x", subject="agent"),))
    score_runs(db, ms, ByName(), run_ids=[run_id])
    at = page_app("run_view", "ana", db, run_id).run()
    assert not at.exception
    assert any("per agent: \\*\\*Ann\\*\\*, Bo" in e.label for e in at.expander)  # a name is text, not markup
    pivot = at.dataframe[0].value
    assert list(pivot.columns)[-2:] == ["**Ann**", "Bo"] and list(pivot.iloc[0])[-2:] == ["+1", "−1"]


def test_the_run_view_says_which_session_user_and_release_a_trace_came_from(db):
    """Issue 19 §3: the ids the producer sent are shown with the run, as text."""
    w = BatchWriter(db, IngestSummary())
    w.add_run(Run(native_id="t-1", format="otlp-json", source="otlp-http", agent="bot",
                  steps=(Step(kind=StepKind.AGENT, content="hi"),),
                  metadata={"session_id": "sess_*9*", "user_id": "u-1", "release": "2.3.1"}, globally_unique_id=True))
    w.flush()
    at = page_app("run_view", "ana", db, "otlp-json:t-1").run()
    assert not at.exception
    assert any(c.value == "session sess\\_\\*9\\* · user u\\-1 · release 2\\.3\\.1" for c in at.caption), \
        [c.value for c in at.caption]


def test_the_queue_moves_to_the_next_run_and_a_late_skip_never_undoes_done(db):
    """Issue 20: "Done, next run" used to stay on the finished run (the old link in the address bar won), and a
    Skip after it overwrote "done"."""
    qid = queues.create(db, "flow", "root", k=1, sample=3, seed=1)
    first = queues.next_run(db, qid, "ana")
    at = page_app("run_view", "ana", db, first, qid).run()
    assert not at.exception and any(first in h.value.replace("\\", "") for h in at.header)
    at.button(key="queue-next").click().run()
    second = at.session_state["run_id"]
    linked = at.query_params["run_id"]
    assert second and second != first and (linked == second or linked == [second])
    assert any(second in h.value.replace("\\", "") for h in at.header)  # the page shows the next run
    queues.finish(db, qid, first, "ana", "skipped")  # a late Skip for the finished run
    assert db.scalar("SELECT status FROM queue_assignments WHERE queue_id = ? AND run_id = ?", [qid, first]) == "done"
    assert queues.progress(db, qid, "ana")["mine_done"] == 1


def test_a_queue_shows_who_said_what_and_nothing_left_once_every_run_has_its_people(db):
    runs = [r for r, in db.execute("SELECT run_id FROM runs WHERE agent = 'travel-concierge@v1' ORDER BY run_id LIMIT 3")]
    qid = queues.create(db, "pair", "root", k=2, run_ids=[runs[2], runs[0], "not-a-run", runs[1]])
    assert [r for r, in db.execute("SELECT run_id FROM queue_items WHERE queue_id = ? ORDER BY position",
                                   [qid])] == [runs[2], runs[0], runs[1]]  # the order given, unknown ids left out
    for run_id in runs:
        queues.record(db, qid, run_id, "ana")
        queues.record(db, qid, run_id, "bo")
    feedback.add(db, runs[0], "ana", "Booked without asking.", rating=2)
    feedback.add(db, runs[0], "bo", "Asked first, then booked.", rating=4)
    # every run has its two people: a third annotator has nothing left, and the page says so
    assert queues.progress(db, qid, "vic2")["mine_available"] == 0 and queues.next_run(db, qid, "vic2") is None
    said = queues.who_said_what(db, qid)
    mine = said[said["run_id"] == runs[0]].set_index("username")
    assert mine.loc["ana", "said"] == "Booked without asking." and mine.loc["bo", "rating"] == 4
    at = page_app("queues_page", "root", db).run()
    assert not at.exception
    assert any(e.label.startswith("who said what (3 runs done, 3 by two or more people)") for e in at.expander)
    table = at.dataframe[0].value
    assert {"ana", "bo"} <= set(table.columns)
    assert "rating 2 · 1 note: Booked without asking." in set(table["ana"])
    at = page_app("queues_page", "vic", db).run()  # a viewer has no "left for you"
    assert not any("left for you" in p.text for p in at.get("progress"))


def test_two_runs_of_the_same_task_side_by_side(db):
    task_runs = db.execute("SELECT task, list(run_id ORDER BY run_id) FROM runs GROUP BY task "
                           "HAVING count(*) > 1 ORDER BY task LIMIT 1")
    (task, ids), = task_runs
    at = page_app("compare", "ana", db, ids[0]).run()
    assert not at.exception
    assert at.selectbox(key="cmp-b").value in ids[1:]
    heads = [h.value for h in at.subheader]
    assert md(ids[0]) in heads and md(at.selectbox(key="cmp-b").value) in heads


def test_a_long_runs_timeline_is_cut_into_pages_with_their_spans():
    """Pages of the timeline hold at most PAGE_STEPS steps; a span opens the page of the steps under it."""
    import pandas as pd

    from libra.web.timeline import page_of_step, step_pages

    kinds, idxs = [], []
    for block in range(5):  # five agents of eleven steps each, each opened by its span
        kinds.append("span")
        idxs.append(None)
        for i in range(11):
            kinds.append("tool_call")
            idxs.append(block * 11 + i)
    tree = pd.DataFrame({"kind": kinds, "idx": idxs})
    pages = step_pages(tree, size=22)
    assert [sum(k != "span" for k in kinds[a:b]) for a, b in pages] == [22, 22, 11]
    assert pages[0][0] == 0 and pages[-1][1] == len(kinds)
    assert all(b == c for (_, b), (c, _) in zip(pages, pages[1:], strict=False))  # every row on exactly one page
    # step 22 opens the third agent: its span (row 24) opens the page with it
    assert kinds[pages[1][0]] == "span" and tree["idx"].iloc[pages[1][0] + 1] == 22
    assert [page_of_step(tree, pages, i) for i in (0, 21, 22, 43, 44, 54)] == [0, 0, 1, 1, 2, 2]
    # cut mid-agent, a page starts at a step (its span is shown as continued above it)
    cut = step_pages(tree, size=20)
    assert [sum(k != "span" for k in kinds[a:b]) for a, b in cut] == [20, 20, 15]
    assert tree["idx"].iloc[cut[1][0]] == 20
    assert page_of_step(tree, pages, 99) is None
    assert step_pages(tree, size=100) == [(0, len(kinds))]


def test_a_much_discussed_run_shows_its_newest_notes_and_all_on_request(db):
    from libra.web.run_view import NOTES_SHOWN

    run_id = db.scalar("SELECT run_id FROM runs ORDER BY run_id LIMIT 1")
    before = len(feedback.for_run(db, run_id))
    for i in range(NOTES_SHOWN + 5):
        feedback.add(db, run_id, "ana", f"note number {i:03d}", flush_now=False)
    total = before + NOTES_SHOWN + 5
    at = page_app("run_view", "ana", db, run_id).run()
    assert not at.exception
    shown = [c.value for c in at.code if c.value.startswith("note number")]
    assert shown == [f"note number {i:03d}" for i in range(5, NOTES_SHOWN + 5)]  # the newest, oldest first
    assert any(f"the newest {NOTES_SHOWN} of {total} notes" in c.value for c in at.caption)
    at.toggle(key=f"all-notes-{run_id}").set_value(True).run()
    assert len([c for c in at.code if c.value.startswith("note number")]) == NOTES_SHOWN + 5


def _nodes(node) -> int:
    kids = getattr(node, "children", None)
    return 1 + sum(_nodes(c) for c in kids.values()) if isinstance(kids, dict) else 1


def test_a_timeline_step_is_drawn_with_few_elements(db):
    """Each element of a page costs the server a message and the browser a layout. A step is its block,
    its head (the button that anchors the note) and its text: 3.5 a step here, with the tool calls'
    arguments. A head drawn as a label and a button in a row took 5.5 (and before that eight or nine)."""
    w = BatchWriter(db, IngestSummary())
    for n in (5, 25):  # the same run but for its length: what the 20 more steps add is theirs alone
        w.add_run(Run(native_id=f"plain-{n}", format="libra", source="test", agent="a", task="t",
                      steps=tuple(Step(kind=StepKind.TOOL_CALL if i % 2 else StepKind.AGENT, content=f"step {i}",
                                       tool_name="search" if i % 2 else None, tool_args={"q": i} if i % 2 else None)
                                  for i in range(n)), globally_unique_id=True))
    w.flush()
    drawn = {}
    for n in (5, 25):
        at = page_app("run_view", "ana", db, db.scalar("SELECT run_id FROM runs WHERE native_id = ?", [f"plain-{n}"]))
        at.run()
        assert not at.exception
        assert len([b for b in at.button if (b.key or "").startswith("anchor-")]) == n
        drawn[n] = _nodes(at._tree)
    per_step = (drawn[25] - drawn[5]) / 20
    assert per_step <= 4, per_step


def test_a_step_head_is_bold_whatever_space_its_names_end_in(db):
    """A space before the closing ** of the head's bold showed the stars instead."""
    w = BatchWriter(db, IngestSummary())
    w.add_run(Run(native_id="spaced", format="libra", source="test", agent="a", task="t",
                  steps=(Step(kind=StepKind.TOOL_CALL, actor=" bob ", tool_name="search  ", content="x"),),
                  globally_unique_id=True))
    w.flush()
    at = page_app("run_view", "ana", db, db.scalar("SELECT run_id FROM runs WHERE native_id = 'spaced'")).run()
    assert not at.exception
    assert at.button(key="anchor-0").label == "**0\\. TOOL CALL · bob · search**"


def test_the_app_needs_no_streamlit_api_deprecated_for_removal(db, monkeypatch):
    """Streamlit deprecated `components.v1.html` for removal after 2026-06-01; the sign-in cookie and the
    run page's keyboard shortcuts used it, and would have failed with the release that drops it."""
    import streamlit.components.v1 as components

    def removed(*args, **kwargs):
        raise AttributeError("streamlit.components.v1.html was removed")

    monkeypatch.setattr(components, "html", removed)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="signin-user").input("ana")
    at.text_input(key="signin-pass").input("correct horse")
    at.button[0].click().run()  # signing in writes the session cookie from a script frame
    assert not at.exception
    assert at.session_state["user"].username == "ana"
    # the sidebar holds both script frames: the keyboard shortcuts' (on every page, so the browser
    # keeps one frame across pages) and, after the sign-in, the cookie's
    scripts = [f.proto.srcdoc for f in at.sidebar.get("iframe")]
    assert len(scripts) == 2 and all("<script>" in f for f in scripts)
    assert "__libraKeys" in scripts[0] and "d.cookie" in scripts[1]
