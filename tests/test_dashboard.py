"""Dashboard queries (DuckDB) against hand-computed figures, and the charts' specs."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
import pytest

from metrics.reports import charts, queries as dashboard
from metrics import sets
from metrics.definitions import Metric, MetricSet
from metrics.judges.base import Judgement, Verdict
from metrics.scoring import write_verdicts
from traces.ingest import ingest_runs
from traces.model import Feedback, Run, Step, StepKind

T0 = datetime(2026, 11, 20, 9)


class Fixed:
    backend, version = "test", "1"


@pytest.fixture
def scored(mem_store):
    runs = []
    for i in range(20):
        runs.append(Run(native_id=f"r{i}", format="libra", source="t", agent="a" if i < 10 else "b",
                        started_at=T0 + timedelta(days=i % 2), globally_unique_id=True,
                        steps=(Step(StepKind.USER, "hi"), Step(StepKind.AGENT, f"answer {i}")),
                        feedback=(Feedback(author="p", text="ok", rating=5.0 if i % 3 else 1.0),)))
    ingest_runs(mem_store, runs)
    ms = sets.save(mem_store, MetricSet("d", 0, "d", (Metric("m", "Helpfulness", "helps"),
                                                      Metric("n", "Brevity", "short"))))
    js = [Judgement(f"libra:r{i}", (Verdict("m", 1 if i % 3 else -1, (1,), f"reason {i}"),
                                    Verdict("n", 1 if i % 2 else 0, (), "")))
          for i in range(20)]
    write_verdicts(mem_store, ms, Fixed(), js, None)
    return mem_store, ms


def wilson(pos, n, z=1.959964):
    c = (pos + z * z / 2) / (n + z * z)
    h = z * math.sqrt(pos * (n - pos) / n + z * z / 4) / (n + z * z)
    return c - h, c + h


def test_scores_over_time_with_wilson_intervals(scored):
    store, ms = scored
    df = dashboard.scores_over_time(store, "d", metric_id="m")
    # agent a, day 0: runs 0, 2, 4, 6, 8 -> m is -1 for 0 and 6
    row = df[(df.agent == "a") & (df.t == T0.replace(hour=0))].iloc[0]
    assert (row.pos, row.neg, row.metric) == (3, 2, "Helpfulness")
    assert (row.lo, row.hi) == pytest.approx(wilson(3, 5))
    assert set(df.agent) == {"a", "b"} and len(df) == 4
    n = dashboard.scores_over_time(store, "d", metric_id="n")
    assert (n["neg"] == 0).all()  # N/A verdicts are not failures
    with pytest.raises(ValueError):
        dashboard.scores_over_time(store, "d", bucket="minute")


def test_matrix_evidence_and_judge_human(scored):
    store, ms = scored
    m = dashboard.run_metric_matrix(store, "d", ms.version, limit=5)
    assert m["run_id"].nunique() == 5 and set(m["metric"]) == {"Helpfulness", "Brevity"}
    ev = dashboard.run_evidence(store, "libra:r3", "d", ms.version)
    h = ev[ev.metric == "Helpfulness"].iloc[0]
    assert (h.step, h.content, h.reason) == (1, "answer 3", "reason 3")
    assert ev[ev.metric == "Brevity"]["step"].isna().all()
    jh = dashboard.judge_human_agreement(store, "d", ms.version).set_index("metric_id")
    # ratings were 1 exactly where the judge said -1
    assert jh.loc["m", "rating_when_pass"] == 5.0 and jh.loc["m", "rating_when_fail"] == 1.0
    assert jh.loc["m", "spearman"] == pytest.approx(1.0)
    summary = dashboard.agent_metric_summary(store, "d", ms.version)
    assert set(summary.agent) == {"a", "b"} and summary["lo"].le(summary["score"]).all()


def test_judge_cost_buckets(mem_store):
    rows = [[f"c{i}", None, None, "judge" if i % 2 else "ground", "m", "h", "ok", None, 100, 10, 0, 50, 0.01,
             5.0, 1, False, T0 + timedelta(hours=i)] for i in range(6)]
    with mem_store.transaction() as con:
        con.executemany("INSERT INTO llm_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    df = dashboard.judge_cost(mem_store, "day")
    assert df.groupby("purpose")["calls"].sum().to_dict() == {"ground": 3, "judge": 3}
    assert df["cost_usd"].sum() == pytest.approx(0.06)
    assert dashboard.cost_bucket(mem_store) == "day"


@pytest.mark.parametrize(("days", "bucket"), [(0, "day"), (59, "day"), (100, "week"), (419, "week"), (800, "month")])
def test_the_cost_charts_bucket_keeps_it_to_sixty_bars_a_purpose(mem_store, days, bucket):
    # one call a day over the span, none on most days would draw the same
    rows = [[f"c{i}", None, None, "judge", "m", "h", "ok", None, 100, 10, 0, 50, 0.01, 5.0, 1, False,
             T0 + timedelta(days=i)] for i in range(days + 1)]
    with mem_store.transaction() as con:
        con.executemany("INSERT INTO llm_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    assert dashboard.cost_bucket(mem_store) == bucket
    df = dashboard.judge_cost(mem_store, "auto")
    assert df["t"].nunique() <= dashboard.MAX_PERIODS + 1 and df["calls"].sum() == days + 1
    assert charts.cost_chart(df, bucket).to_dict()["title"] == f"Judge cost per {bucket}"


def test_chart_specs():
    t = pd.to_datetime(["2026-11-20", "2026-11-21"])
    over = pd.DataFrame({"t": t, "agent": "a", "version": 1, "metric": "M", "score": [0.5, 0.7],
                         "lo": [0.3, 0.5], "hi": [0.7, 0.9], "n": [10, 12]})
    spec = charts.scores_over_time_chart(over).to_dict()
    assert spec["facet"]["field"] == "metric" and spec["columns"] == 3
    layers = spec["spec"]["layer"]
    assert layers[0]["mark"]["type"] == "area" and layers[0]["encoding"]["y2"]["field"] == "hi"
    assert layers[1]["encoding"]["strokeDash"]["field"] == "version"
    heat = charts.heatmap_chart(pd.DataFrame({"run_id": ["r1"], "metric": ["M"], "value": [-1], "rate": [0.5],
                                              "backend": ["x"]})).to_dict()
    assert heat["mark"]["type"] == "rect" and heat["params"][0]["name"] == "run"
    assert heat["encoding"]["color"]["scale"]["domain"] == [-1, 0, 1]
    cost = charts.cost_chart(pd.DataFrame({"t": t, "purpose": ["judge", "ground"], "model": "m", "calls": [1, 2],
                                           "cost_usd": [0.1, 0.2], "input_tokens": 1, "cache_read_tokens": 0}))
    assert cost.to_dict()["encoding"]["y"]["aggregate"] == "sum"
    jh = charts.judge_human_chart(pd.DataFrame({"metric": ["M"], "runs": [4], "spearman": [0.5],
                                                "rating_when_pass": [4.0], "rating_when_fail": [2.0]})).to_dict()
    data = next(iter(jh["datasets"].values()))
    assert {d["judge"] for d in data} == {"judge said did well (+1)", "judge said did wrong (−1)"}
    ag = charts.agreement_chart(pd.DataFrame({"queue": ["q"], "runs": [3], "alpha": [0.4]})).to_dict()
    assert ag["layer"][1]["mark"]["type"] == "rule"


def test_judge_human_spearman_ranks_ties_as_scipy_does(mem_store):
    """Verdicts are ±1 and ratings 1-5: nearly everything ties, so min-ranks would bias the correlation."""
    from scipy.stats import spearmanr

    ratings = [5, 4, 4, 2, 5, 1, 3, 4, 2, 2, 5, 3]
    values = [1, 1, -1, -1, 1, -1, 1, 1, 1, -1, -1, 1]
    ingest_runs(mem_store, [Run(native_id=f"t{i}", format="libra", source="t", globally_unique_id=True,
                                steps=(Step(StepKind.AGENT, "x"),), feedback=(Feedback(author="p", text="ok",
                                                                                       rating=float(r)),))
                            for i, r in enumerate(ratings)])
    ms = sets.save(mem_store, MetricSet("t", 0, "t", (Metric("m", "Helpfulness", "helps"),)))
    write_verdicts(mem_store, ms, Fixed(), [Judgement(f"libra:t{i}", (Verdict("m", v, (), ""),))
                                            for i, v in enumerate(values)], None)
    got = dashboard.judge_human_agreement(mem_store, "t", ms.version).set_index("metric_id").loc["m", "spearman"]
    assert got == pytest.approx(spearmanr(values, ratings).statistic, abs=1e-9)


def test_a_verdicts_evidence_is_one_literal_block_with_its_steps_cut_to_length():
    from libra.web.dashboards import evidence_text

    steps = pd.DataFrame({"step": [3.0, 7.0], "kind": ["tool_result", None],
                          "content": ["<b>x</b> **y**", "z" * 500]})
    text = evidence_text("r" * 700, steps)
    reason, first, second = text.split("\n\n")
    assert reason == "r" * 600 + " …"
    assert first == "── step 3 · tool_result ──\n<b>x</b> **y**"  # verbatim: shown in a code block
    assert second == "── step 7 · not in the run ──\n" + "z" * 400 + " …"
    assert evidence_text(None, steps.iloc[:0]) == ""
