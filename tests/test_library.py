"""The library facade: every caller gets the same behaviour from one implementation."""

from __future__ import annotations

import pytest

import libra
from libra.actions import make_actions
from metrics.agreement import RATING_LEVEL, krippendorff_alpha, queue_agreement
from metrics.definitions import Example, Metric, MetricSet
from metrics.judges.registry import DEFAULT_KIND, judge_for, register_judge, set_kind
from metrics.jobs.schedule import JobSpec, run_job
from metrics.reports.queries import annotator_agreement
from traces.annotation import feedback, queues
from traces.export import export_jsonl


def test_feedback_saved_in_the_app_and_not_yet_applied_reaches_induction_and_export(store, demo_into, tmp_path):
    """The app journals a save and applies it later; every reader sees it at once."""
    demo_into(store, 20)
    run_id = store.scalar("SELECT run_id FROM runs ORDER BY run_id LIMIT 1")
    before = len(feedback.load(store, [run_id]))
    fid = feedback.add(store, run_id, "ana", "It never confirmed the booking.", steps=[1], flush_now=False)
    assert fid not in {r[0] for r in store.execute("SELECT feedback_id FROM feedback")}  # still in the journal
    got = feedback.load(store, [run_id])
    assert len(got) == before + 1 and got[-1].pending and got[-1].steps == (1,)
    # the reader induction uses is this one
    import importlib

    assert importlib.import_module("autolibra.induce").load_feedback is feedback.load
    export_jsonl(store, tmp_path / "out.jsonl")
    assert "It never confirmed the booking." in (tmp_path / "out.jsonl").read_text()
    feedback.edit(store, fid, "ana", text="It never confirmed the booking, twice.")
    assert feedback.for_run(store, run_id)[-1].text == "It never confirmed the booking, twice."
    feedback.delete(store, fid, "ana")
    assert len(feedback.load(store, [run_id])) == before


def test_both_pages_measure_a_queues_agreement_the_same_way(store, demo_into):
    demo_into(store, 20)
    qid = queues.create(store, "review", "admin", k=2)
    runs = []
    for who, ratings in (("ana", [1, 2, 5, 4]), ("bo", [1, 3, 5, 5])):
        for rating in ratings:
            run_id = queues.next_run(store, qid, who)
            feedback.add(store, run_id, who, "rated", rating=rating)
            queues.finish(store, qid, run_id, who)
            runs.append(run_id)
    feedback.flush(store)
    a = queue_agreement(store, qid)
    assert a.level == RATING_LEVEL == "ordinal" and a.runs_with_overlap == 4
    assert a.alpha == pytest.approx(krippendorff_alpha([[1, 1], [2, 3], [5, 5], [4, 5]], "ordinal"))
    row = annotator_agreement(store).set_index("queue").loc["review"]
    assert row["alpha"] == pytest.approx(a.alpha) and row["level"] == "ordinal" and row["runs"] == 4


def test_judges_are_chosen_by_the_kind_of_metric_set(store):
    b = libra.choose_backend(store, "offline")
    pipa = MetricSet("p", 1, "PIPA", (Metric("pipa_tool_efficiency", "Tool efficiency", "…"),),
                     provenance={"kind": "pipa"})
    pro = MetricSet("r", 1, "Proactivity", (), provenance={"kind": "proactivity"})
    assert set_kind(pipa) == "pipa" and set_kind(MetricSet("x", 1, "x", ())) == DEFAULT_KIND
    assert judge_for(store, pipa, b).backend == "pipa-offline"
    assert judge_for(store, pro, b) is None
    seen = []
    register_judge("custom-kind", lambda s, ms, backend, batch: seen.append(ms.set_id) or "a judge")
    assert judge_for(store, MetricSet("c", 1, "c", (), provenance={"kind": "custom-kind"}), b) == "a judge"
    assert seen == ["c"]


def test_a_scheduled_ingest_leaves_the_store_as_the_command_does(store, tmp_path):
    """Search index and journal after an ingest, whichever door ran it."""
    from libra.demo import generate_runs
    from traces.export import write_jsonl
    from traces.queries import RunFilter, count_runs

    src = tmp_path / "runs.jsonl"
    write_jsonl(generate_runs(12, seed=5), src)
    r = run_job(store, JobSpec(name="nightly", cron="@daily", action="ingest", paths=[str(src)]), make_actions(), [])
    assert r["status"] == "ok" and r["runs_ingested"] == 12
    run_id = store.scalar("SELECT run_id FROM runs ORDER BY run_id LIMIT 1")
    text = store.scalar("SELECT content FROM steps WHERE run_id = ? AND kind = 'user_message' LIMIT 1", [run_id])
    word = max((w.strip(".,!?") for w in text.split()), key=len)  # not a stop word
    # the index was built, as `libra ingest` does (a lake takes none: search there reads steps)
    assert store.scalar("SELECT count(*) FROM run_text") == (0 if store.lake else 12)
    assert count_runs(store, RunFilter(text=word, fts=True)) >= 1
    feedback.add(store, run_id, "ana", "noted", flush_now=False)
    got = libra.ingest(store, [str(src)])
    assert got.summary.duplicates == 12 and not got.index_pending
    assert store.scalar("SELECT count(*) FROM feedback WHERE author = 'ana'") == 1  # the journal was applied


def test_a_notebook_scores_and_reports_through_the_facade(store, demo_into):
    demo_into(store, 40)
    ms = libra.sets.save(store, MetricSet("hand", 0, "Hand-written", (
        Metric("confirm", "Confirms before acting", "Asks the user before booking or refunding.",
               good=(Example("asked before booking"),), bad=(Example("booked without asking"),)),)))
    [(scored_set, summary)] = libra.score(store, set_id=ms.set_id, backend="offline")
    assert scored_set.set_id == "hand" and summary.status == "done"
    # On the small demo the offline judge gives this hand-written metric one verdict on every run it
    # learnt from: it says so and scores nothing, rather than store a verdict that reads nothing
    # (before issue 18 it "scored" all 40 runs with the same verdict).
    assert [name for name, _ in summary.needs_llm] == ["Confirms before acting"]
    assert "does not read this metric" in summary.needs_llm[0][1] and summary.runs_scored == 0
    assert store.scalar("SELECT count(*) FROM scores WHERE metric_set_id = 'hand'") == 0
    df = libra.reports.agent_summary(store, scored_set)
    assert set(df.columns) >= {"agent", "metric", "n", "score", "lo", "hi"} and df.empty
    assert libra.score(store, set_id=ms.set_id, backend="offline")[0][1].runs_scored == 0


class _Failing:
    """A judge whose failures say "budget" in their text; only one of them is the budget's."""

    backend, version = "stub", "1"

    def __init__(self, budget_stops_at: str | None = None):
        self.budget_stops_at = budget_stops_at

    def judge(self, runs, metric_set, progress=None):
        from metrics.judges.base import Judgement, Verdict

        out = []
        for v in runs:
            if v.run_id == self.budget_stops_at:
                out.append(Judgement(v.run_id, error="budget $1.00 reached", budget_exhausted=True))
            elif v.run_id.endswith(("1", "3")):
                out.append(Judgement(v.run_id, error="metric budget_adherence: the reply mentions a budget"))
            else:
                out.append(Judgement(v.run_id, (Verdict("budget_adherence", 1),)))
        return out


def test_a_job_stops_for_its_budget_only_when_the_budget_says_so(store, demo_into):
    from metrics.scoring import score_runs

    demo_into(store, 12)
    ms = libra.sets.save(store, MetricSet("b", 0, "Budget words", (
        Metric("budget_adherence", "Budget adherence", "Keeps to the budget the user gave."),)))
    res = score_runs(store, ms, _Failing(), chunk=4)
    assert res.status == "done" and res.runs_failed > 0 and res.runs_scored + res.runs_failed == 12
    ms2 = libra.sets.save(store, MetricSet("b2", 0, "Budget words", ms.metrics))
    first = sorted(r for r, in store.execute("SELECT run_id FROM runs"))[0]
    res = score_runs(store, ms2, _Failing(budget_stops_at=first), chunk=4)
    assert res.status == "stopped" and "budget" in (res.error or "") and res.runs_scored + res.runs_failed == 4


def test_a_note_edited_right_after_saving_is_found_whenever_the_journal_is_applied(store, demo_into, monkeypatch):
    """The flusher may apply the journal between the two reads an edit makes (28 of 600 edits failed)."""
    demo_into(store, 10)
    run_id = store.scalar("SELECT run_id FROM runs ORDER BY run_id LIMIT 1")
    real = store.execute

    def execute_then_flush(sql, params=None):
        rows = real(sql, params)
        if "FROM feedback" in sql and "feedback_history" not in sql:
            feedback.flush(store)  # the other thread's flush lands right after this read
        return rows

    monkeypatch.setattr(store, "execute", execute_then_flush)
    for i in range(5):
        fid = feedback.add(store, run_id, "ana", f"note {i}", flush_now=False)
        feedback.edit(store, fid, "ana", text=f"note {i}, edited")
        assert any(f.text == f"note {i}, edited" for f in feedback.for_run(store, run_id))
        fid2 = feedback.add(store, run_id, "ana", f"other {i}", flush_now=False)
        feedback.delete(store, fid2, "ana")
    monkeypatch.undo()
    feedback.flush(store)
    texts = [t for t, in store.execute("SELECT text FROM feedback WHERE author = 'ana' AND deleted_at IS NULL")]
    assert sorted(texts) == [f"note {i}, edited" for i in range(5)]


def test_a_note_without_a_run_is_refused_before_the_journal_and_holds_back_no_other(store, demo_into):
    """A note the store cannot take (no run id) used to sit first in the journal and fail every flush after it."""
    demo_into(store, 3)
    run_id = store.scalar("SELECT run_id FROM runs ORDER BY run_id LIMIT 1")
    for bad in (None, "", 7):
        with pytest.raises(feedback.FeedbackError, match="id of the run"):
            feedback.add(store, bad, "ana", "about nothing in particular")
    fid = feedback.add(store, run_id, "ana", "It confirmed the price first.")
    feedback.flush(store)
    assert store.scalar("SELECT count(*) FROM feedback WHERE feedback_id = ?", [fid]) == 1
    assert feedback.history(store, fid)["action"].tolist() == ["create"]
    assert feedback.histories(store, [fid, "no-such-note"]).keys() == {fid}
