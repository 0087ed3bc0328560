"""What the app's tables and charts are built from: the runs table, metric review edits, and charts
that stay readable (issue 20 §3-4). The browser checks of the same pages are in test_browser.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from metrics import sets
from metrics.definitions import Example, Metric, MetricSet
from metrics.llm.prices import per_million, price_table
from metrics.reports import charts
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.queries import RUN_SORTS, RunFilter, list_runs

T0 = datetime(2026, 11, 2, 9, 0, 0)


def _run(n: int, *, model: str, tokens: int, seconds: float, agent: str = "a", version: str | None = None) -> Run:
    steps = (Step(kind=StepKind.USER, content=f"task {n}", started_at=T0 + timedelta(hours=n),
                  ended_at=T0 + timedelta(hours=n, seconds=0.1)),
             Step(kind=StepKind.AGENT, content="done", started_at=T0 + timedelta(hours=n, seconds=0.1),
                  ended_at=T0 + timedelta(hours=n, seconds=seconds), input_tokens=tokens, output_tokens=tokens // 10))
    return Run(native_id=f"r{n}", format="libra", source="t", agent=agent, model=model, task=f"task {n}",
               steps=steps, metadata={"agent_version": version} if version else None, globally_unique_id=True)


@pytest.fixture
def runs_store(store):
    w = BatchWriter(store, IngestSummary())
    for n in range(7):
        w.add_run(_run(n, model="gpt-4o" if n % 2 else "an-unknown-model", tokens=1000 * (n + 1),
                       seconds=1.0 + n, version="2.1" if n == 3 else None))
    w.flush()
    return store


def test_the_runs_table_is_sorted_and_paged_over_every_run_with_tokens_cost_and_duration(runs_store):
    prices = price_table(["gpt-4o", "an-unknown-model"])
    assert [m for m, _, _ in prices] == ["gpt-4o"]  # an unknown model is not priced by a guess
    pin, pout = per_million("gpt-4o")
    # sorted in the database: the page of two that holds the most tokens holds the two biggest runs
    top = list_runs(runs_store, RunFilter(), 2, 0, sort="tokens", prices=prices)
    assert list(top["tokens"]) == [7000 + 700, 6000 + 600]
    nxt = list_runs(runs_store, RunFilter(), 2, 2, sort="tokens", prices=prices)
    assert list(nxt["tokens"]) == [5000 + 500, 4000 + 400]
    every = list_runs(runs_store, RunFilter(), 50, 0, sort="duration", descending=False, prices=prices)
    assert list(every["duration_s"].round(3)) == [1.0 + n for n in range(7)]
    row = every.iloc[1]  # run 1: gpt-4o, 2000 tokens in, 200 out
    assert row["model"] == "gpt-4o" and row["cost_usd"] == pytest.approx((2000 * pin + 200 * pout) / 1e6)
    assert pd.isna(every.iloc[0]["cost_usd"])  # run 0's model has no price: blank, not $0
    assert every["version"].tolist().count("2.1") == 1
    assert set(every["feedback"]) == {0} and set(every["annotators"]) == {0} and set(every["errors"]) == {0}
    assert every["started_at"].is_monotonic_increasing
    only = list_runs(runs_store, RunFilter(models=("gpt-4o",)), 50, 0, sort="cost", prices=prices)
    assert len(only) == 3 and only["cost_usd"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="sort by one of"):
        list_runs(runs_store, RunFilter(), sort="1; DROP TABLE runs")
    assert "started" in RUN_SORTS


def test_a_metric_is_split_by_the_examples_an_admin_moves_and_the_rest_stay(store):
    m = Metric("tone", "Tone", "How it speaks", good=(Example("polite"), Example("warm")),
               bad=(Example("curt"), Example("refunded without asking")))
    saved = sets.save(store, MetricSet("s", 0, "S", (m, Metric("other", "Other", "x"))))
    ms = sets.load(store, saved.set_id, saved.version)
    out = sets.split_metric(store, ms, "tone", [("bad", 1)], "Asks before refunding", by="root")
    new = sets.load(store, out.set_id, out.version)
    assert [x.metric_id for x in new.metrics] == ["tone", "tone-2", "other"] and new.status == "draft"
    assert [e.text for e in new.get("tone").bad] == ["curt"] and len(new.get("tone").good) == 2
    moved = new.get("tone-2")
    assert moved.name == "Asks before refunding" and [e.text for e in moved.bad] == ["refunded without asking"]
    assert moved.good == () and moved.metadata["split_from"] == "tone"
    with pytest.raises(ValueError, match="choose examples"):
        sets.split_metric(store, new, "tone", [("bad", 9)], "x")


def test_the_metrics_page_opens_on_the_newest_induced_set_not_the_last_listed():
    from libra.web.metrics_page import default_set

    listing = pd.DataFrame({
        "set_id": ["induced", "induced", "pipa-da39a3ee", "zz-hand"],
        "version": [1, 2, 1, 1], "backend": ["offline/x", "offline/x", "pipa", None],
        "created_at": pd.to_datetime(["2026-11-01", "2026-11-03", "2026-11-04", "2026-11-02"])})
    assert default_set(listing) == 1  # induced v2: newer than the hand-written set, unlike the PIPA set
    assert default_set(listing.iloc[[2, 3]].reset_index(drop=True)) == 1  # no induced set: the newest other


def test_charts_flag_metrics_with_no_spread_and_label_every_heatmap_row_and_column():
    sot = pd.DataFrame({"t": pd.to_datetime(["2026-11-01", "2026-11-08"] * 2), "agent": ["a", "b"] * 2,
                        "version": [1] * 4, "metric": ["flat", "flat", "moves", "moves"],
                        "score": [1.0, 1.0, 0.2, 0.7], "lo": [0.8, 0.8, 0.0, 0.4], "hi": [1.0, 1.0, 0.5, 0.9],
                        "n": [5] * 4})
    flagged = set(charts.flag_flat(sot)["metric"])
    assert flagged == {"flat (no spread: the same score everywhere)", "moves"}
    spec = charts.heatmap_chart(pd.DataFrame({"run_id": ["r1", "r2"], "metric": ["m1", "m2"], "value": [1, -1],
                                              "rate": [None, None], "backend": ["b", "b"]})).to_dict()
    enc = spec["encoding"]
    assert enc["x"]["axis"]["labelOverlap"] is False and enc["y"]["axis"]["labelOverlap"] is False
    assert "did wrong" in enc["color"]["legend"]["labelExpr"]


def test_the_judge_vs_people_chart_draws_on_the_rating_scale_with_its_correlation_in_the_label():
    jh = pd.DataFrame({"metric": ["Tone", "Refunds"], "runs": [40, 12], "spearman": [0.61, None],
                       "rating_when_pass": [4.2, 3.0], "rating_when_fail": [2.1, None]})
    spec = charts.judge_human_chart(jh).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert "bar" not in marks  # bars from zero were drawn over their own labels
    assert all(layer["encoding"]["x"].get("scale", {}).get("domain") == [1, 5] for layer in spec["layer"])
    labels = {v["label"] for v in next(iter(spec["datasets"].values()))}
    assert labels == {"Tone  (ρ +0.61, 40 runs)", "Refunds  (12 runs)"}


def test_p_values_read_as_people_write_them():
    from libra.web.widgets import p_text

    assert [p_text(x) for x in (5.7e-20, 0.0123, 0.5, float("nan"), None)] == ["< 0.001", "0.012", "0.500", "", ""]


def test_the_frontier_is_drawn_around_its_points():
    from autolibra.charts import frontier_chart

    df = pd.DataFrame({"coverage": [0.78, 0.81], "redundancy": [0.86, 0.93], "split": ["train", "held-out"],
                       "metrics": [16, 18], "chosen": [True, False]})
    enc = frontier_chart(df).to_dict()["layer"][0]["encoding"]
    assert enc["x"]["scale"]["domain"] == [0.81, 0.98] and enc["y"]["scale"]["domain"] == [0.73, 0.86]


def test_the_runs_table_carries_a_chosen_metrics_verdict(runs_store):
    from metrics.embeddings import default_embedder
    from metrics.judges.similarity import SimilarityJudge
    from metrics.scoring import score_runs

    saved = sets.save(runs_store, MetricSet("v", 0, "V", (Metric("done", "Done", "Says it is done.",
                                                                 good=(Example("done"),), bad=(Example("failed"),)),)))
    ms = sets.load(runs_store, saved.set_id, saved.version)
    assert score_runs(runs_store, ms, SimilarityJudge(default_embedder(runs_store))).runs_scored == 7
    df = list_runs(runs_store, RunFilter(), 50, 0, verdict_of=(ms.set_id, ms.version, "done"))
    stored = dict(runs_store.execute("SELECT run_id, value FROM scores WHERE metric_id = 'done'"))
    assert dict(zip(df["run_id"], df["verdict"], strict=True)) == stored
    assert "verdict" not in list_runs(runs_store, RunFilter(), 50, 0).columns


@pytest.mark.parametrize("sort", list(RUN_SORTS))
def test_pages_of_the_runs_table_add_up_to_the_whole_sorted_table(runs_store, sort):
    """Whether a page is cut before the sums (runs' own columns) or after (tokens, cost), pages of
    three read in turn are the whole table in order, each run once."""
    for descending in (True, False):
        whole = list(list_runs(runs_store, RunFilter(), 50, 0, sort=sort, descending=descending)["run_id"])
        pages = [r for off in range(0, 9, 3) for r in
                 list_runs(runs_store, RunFilter(), 3, off, sort=sort, descending=descending)["run_id"]]
        assert pages == whole and len(set(whole)) == 7


def test_a_span_outline_someone_wrote_with_a_loop_and_markup_still_reads_as_a_bounded_tree():
    """A row another writer put into a shared store: spans that are each other's parents, names with
    markup, a broken entry, or metadata that is not JSON at all. The tree ends, and nothing is lost."""
    from traces.tree import span_tree

    steps = pd.DataFrame({"idx": [0, 1], "kind": ["agent_message", "tool_call"], "actor": [None, None],
                          "tool_name": [None, "<img src=x onerror=alert(1)>"], "span_id": ["s1", "s2"],
                          "parent_id": ["w1", "s1"], "started_at": [T0, T0 + timedelta(seconds=1)],
                          "ended_at": [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)],
                          "input_tokens": [10, None], "output_tokens": [2, None], "is_error": [False, True],
                          "metadata": ['{"llm_call": {"response_model": "m-1"}}', "not json"]})
    loop = {"span_outline": [["w1", "w2", "**agent** [x](javascript:alert(1))", None, None, False],
                             ["w2", "w1", "other", None, None, False], ["broken"], "junk"]}
    tree = span_tree(steps, loop)
    assert sorted(tree["idx"].dropna().astype(int)) == [0, 1]  # every step, once
    assert set(tree.loc[tree["kind"] == "span", "label"]) <= {"**agent** [x](javascript:alert(1))", "other"}
    assert tree["depth"].max() <= 4 and tree.loc[tree["idx"] == 0, "model"].item() == "m-1"
    assert list(span_tree(steps, "{not json")["kind"]) == ["agent_message", "tool_call"]  # no outline: flat


@pytest.mark.parametrize("sort", [s for s in RUN_SORTS if s != "feedback"])
def test_a_page_without_its_notes_and_the_notes_on_its_runs_make_the_whole_page(runs_store, sort):
    from traces.annotation import feedback
    from traces.queries import notes_on

    ids = [r for r, in runs_store.execute("SELECT run_id FROM runs ORDER BY run_id")]
    for author, run_id in (("ana", ids[0]), ("bo", ids[0]), ("ana", ids[0]), ("bo", ids[3])):
        feedback.add(runs_store, run_id, author, f"{author} on {run_id}", flush_now=False)
    feedback.delete(runs_store, feedback.add(runs_store, ids[5], "ana", "gone", flush_now=False), "ana")
    feedback.flush(runs_store)
    whole = list_runs(runs_store, RunFilter(), 4, 2, sort=sort)
    bare = list_runs(runs_store, RunFilter(), 4, 2, sort=sort, notes=False)
    assert "feedback" not in bare and "annotators" not in bare
    joined = bare.merge(notes_on(runs_store, list(bare["run_id"])), on="run_id", how="left")
    pd.testing.assert_frame_equal(joined[whole.columns], whole)
    hostile = "'); DROP TABLE feedback; --"
    counted = notes_on(runs_store, [ids[0], ids[3], ids[5], "no-such-run", hostile]).set_index("run_id")
    assert counted.loc[hostile].tolist() == [0, 0] and runs_store.scalar("SELECT count(*) FROM feedback") == 5
    assert counted.loc[ids[0]].tolist() == [3, 2] and counted.loc[ids[3]].tolist() == [1, 1]
    assert counted.loc[ids[5]].tolist() == [0, 0] and counted.loc["no-such-run"].tolist() == [0, 0]  # deleted, unknown


def test_a_page_sorted_or_filtered_by_notes_cannot_leave_them_out(runs_store):
    with pytest.raises(ValueError, match="notes=True"):
        list_runs(runs_store, RunFilter(), sort="feedback", notes=False)
    with pytest.raises(ValueError, match="notes=True"):
        list_runs(runs_store, RunFilter(annotated=False), notes=False)
