"""Reports on a store, as DataFrames, and the charts that draw them.

    import libra
    store = libra.open_store("libra.duckdb")
    libra.reports.agent_summary(store, metric_set)        # score per agent and metric, Wilson interval
    libra.reports.charts.agent_summary_chart(df)          # an Altair chart of it
"""

from __future__ import annotations

import pandas as pd

from autolibra.charts import aspect_map_chart, frontier_chart, new_coverage_chart
from metrics.definitions import MetricSet
from metrics.reports import charts
from metrics.reports import queries as q
from metrics.reports.release import diff_chart as release_chart
from traces.store import Store

__all__ = ["agent_summary", "annotator_agreement", "aspect_map_chart", "charts", "frontier_chart", "judge_cost", "judge_vs_people", "llm_costs",
           "new_coverage_chart", "release_chart", "run_metric_matrix", "run_scores", "score_sets", "scores_over_time"]


def agent_summary(store: Store, metric_set: MetricSet) -> pd.DataFrame:
    """Per agent and metric over every scored run: the score (share of +1 among ±1) and its 95% interval."""
    return q.agent_metric_summary(store, metric_set.set_id, metric_set.version)


def scores_over_time(store: Store, metric_set: MetricSet, *, metric_id: str | None = None,
                     agent: str | None = None, bucket: str = "day") -> pd.DataFrame:
    return q.scores_over_time(store, metric_set.set_id, metric_id=metric_id, agent=agent, bucket=bucket)


def run_metric_matrix(store: Store, metric_set: MetricSet, *, agent: str | None = None,
                      limit: int = 60) -> pd.DataFrame:
    return q.run_metric_matrix(store, metric_set.set_id, metric_set.version, agent=agent, limit=limit)


def judge_vs_people(store: Store, metric_set: MetricSet) -> pd.DataFrame:
    """Each metric's verdicts against people's ratings of the same runs."""
    return q.judge_human_agreement(store, metric_set.set_id, metric_set.version)


def run_scores(store: Store, run_id: str) -> pd.DataFrame:
    return q.run_scores(store, run_id)


def score_sets(store: Store) -> pd.DataFrame:
    return q.score_sets(store)


def annotator_agreement(store: Store) -> pd.DataFrame:
    return q.annotator_agreement(store)


def judge_cost(store: Store, bucket: str = "day") -> pd.DataFrame:
    return q.judge_cost(store, bucket)


def llm_costs(store: Store, by: str = "job") -> pd.DataFrame:
    return q.llm_costs(store, by)
