"""The dashboards' queries. Aggregation happens in DuckDB; pandas only receives the result.

Every function takes the store and filters and returns a small DataFrame
that a chart function in `metrics.reports.charts` draws. `bench/dashboard.py`
times each of them on a large generated store.
"""

from __future__ import annotations

import pandas as pd

from metrics.agreement import queue_agreement
from traces.store import Store

Z95 = 1.959964
def wilson_sql(pos: str = "pos", neg: str = "neg") -> str:
    """Wilson's 95% interval for `pos` successes in `pos` + `neg` trials, as SQL over those two columns
    (names of Libra's own, never input)."""
    n = f"({pos} + {neg})"
    centre = f"({pos} + {Z95}^2 / 2) / ({n} + {Z95}^2)"
    half = f"{Z95} * sqrt({pos} * {neg} / nullif({n}, 0) + {Z95}^2 / 4) / ({n} + {Z95}^2)"
    return f"{centre} - {half} AS lo, {centre} + {half} AS hi"


WILSON = wilson_sql()


def score_sets(store: Store) -> pd.DataFrame:
    """Metric sets that have scores, with their versions and counts (for pickers)."""
    return store.df("SELECT metric_set_id, metric_set_version, count(*) AS scores FROM scores "
                    "GROUP BY ALL ORDER BY metric_set_id, metric_set_version")


def scores_over_time(store: Store, set_id: str, *, metric_id: str | None = None, agent: str | None = None,
                     bucket: str = "day") -> pd.DataFrame:
    """Per time bucket (of the run's start), agent, set version and metric: the score and its 95% interval.

    Score = #(+1) / (#(+1) + #(-1)); the interval is Wilson's, which stays
    inside [0, 1] and is honest for the small counts of a new agent.
    """
    if bucket not in ("hour", "day", "week", "month"):
        raise ValueError("bucket must be hour, day, week or month")
    return store.df(
        f"""
        WITH c AS (
            SELECT date_trunc('{bucket}', coalesce(s.run_at, s.created_at)) AS t,
                   s.agent, s.metric_set_version AS version, s.metric_id,
                   count(*) FILTER (WHERE s.value > 0) AS pos, count(*) FILTER (WHERE s.value < 0) AS neg
            FROM scores s
            WHERE s.metric_set_id = ? AND (?::VARCHAR IS NULL OR s.metric_id = ?)
              AND (?::VARCHAR IS NULL OR s.agent = ?)
            GROUP BY ALL
        )
        SELECT c.*, coalesce(d.name, c.metric_id) AS metric, pos + neg AS n,
               pos / nullif(pos + neg, 0) AS score, {WILSON}
        FROM c LEFT JOIN metric_defs d ON d.set_id = ? AND d.version = c.version AND d.metric_id = c.metric_id
        WHERE pos + neg > 0
        ORDER BY t, agent, version, metric
        """, [set_id, metric_id, metric_id, agent, agent, set_id])


def run_metric_matrix(store: Store, set_id: str, version: int, *, agent: str | None = None,
                      limit: int = 60) -> pd.DataFrame:
    """The latest `limit` scored runs × the set's metrics: value, unit pass rate, backend."""
    return store.df(
        """
        WITH runs_ AS (
            SELECT s.run_id, max(coalesce(s.run_at, s.created_at)) AS t
            FROM scores s
            WHERE s.metric_set_id = ? AND s.metric_set_version = ? AND (?::VARCHAR IS NULL OR s.agent = ?)
            GROUP BY s.run_id ORDER BY t DESC, s.run_id LIMIT ?
        )
        SELECT s.run_id, s.focus, s.run_id || CASE WHEN s.focus <> '' THEN ' · ' || s.focus ELSE '' END AS subject,
               runs_.t, coalesce(d.name, s.metric_id) AS metric, s.metric_id, s.value, s.rate,
               s.backend
        FROM scores s JOIN runs_ USING (run_id)
        LEFT JOIN metric_defs d ON d.set_id = s.metric_set_id AND d.version = s.metric_set_version
                                AND d.metric_id = s.metric_id
        WHERE s.metric_set_id = ? AND s.metric_set_version = ?
        ORDER BY runs_.t DESC, s.run_id, s.focus, metric
        """, [set_id, version, agent, agent, limit, set_id, version])


def run_evidence(store: Store, run_id: str, set_id: str, version: int) -> pd.DataFrame:
    """One run's verdicts with the judge's reasons and the text of each evidence step."""
    return store.df(
        """
        WITH s AS (
            SELECT *, unnest(CASE WHEN len(evidence) > 0 THEN evidence ELSE [NULL] END) AS step FROM scores
            WHERE run_id = ? AND metric_set_id = ? AND metric_set_version = ?
        )
        SELECT coalesce(d.name, s.metric_id) AS metric, s.focus, s.value, s.rate, s.reason, s.backend, s.step,
               st.kind, left(st.content, 400) AS content
        FROM s
        LEFT JOIN metric_defs d ON d.set_id = s.metric_set_id AND d.version = s.metric_set_version
                                AND d.metric_id = s.metric_id
        LEFT JOIN steps st ON st.run_id = s.run_id AND st.idx = s.step
        ORDER BY metric, s.focus, s.step
        """, [run_id, set_id, version])


def judge_human_agreement(store: Store, set_id: str, version: int) -> pd.DataFrame:
    """Per metric: how the judge's verdicts on a run go with people's ratings of that run.

    People rate runs 1-5 when they leave feedback; for runs with both, this
    gives the mean rating where the judge said +1 and where it said -1, and
    their Spearman correlation (computed in DuckDB over ranks). A verdict on one
    agent goes with the ratings of notes about that agent; a verdict on the run
    with every rating of the run.
    """
    return store.df(
        """
        WITH f AS (
            SELECT run_id, coalesce(json_extract_string(metadata, '$.agent'), '') AS focus, rating FROM feedback
            WHERE rating IS NOT NULL AND deleted_at IS NULL
        ), h AS (
            SELECT run_id, focus, avg(rating) AS rating FROM f WHERE focus <> '' GROUP BY ALL
            UNION ALL
            SELECT run_id, '' AS focus, avg(rating) AS rating FROM f GROUP BY run_id
        ), j AS (
            SELECT s.metric_id, s.value, h.rating FROM scores s JOIN h USING (run_id, focus)
            WHERE s.metric_set_id = ? AND s.metric_set_version = ? AND s.value <> 0
        ), r AS (
            SELECT metric_id, value, rating,
                   -- tied values share the mean of their ranks (scipy's "average"), as Spearman needs
                   rank() OVER (PARTITION BY metric_id ORDER BY value)
                    + (count(*) OVER (PARTITION BY metric_id, value) - 1) / 2.0 AS rv,
                   rank() OVER (PARTITION BY metric_id ORDER BY rating)
                    + (count(*) OVER (PARTITION BY metric_id, rating) - 1) / 2.0 AS rr
            FROM j
        )
        SELECT r.metric_id, coalesce(any_value(d.name), r.metric_id) AS metric, count(*) AS runs,
               avg(rating) FILTER (WHERE value > 0) AS rating_when_pass,
               avg(rating) FILTER (WHERE value < 0) AS rating_when_fail,
               corr(rv, rr) AS spearman
        FROM r LEFT JOIN metric_defs d ON d.set_id = ? AND d.version = ? AND d.metric_id = r.metric_id
        GROUP BY r.metric_id ORDER BY metric
        """, [set_id, version, set_id, version])


def annotator_agreement(store: Store) -> pd.DataFrame:
    """Each queue's agreement (`metrics.agreement.queue_agreement`), one row per queue."""
    rows = [(name, queue_agreement(store, qid)) for qid, name in
            store.execute("SELECT queue_id, name FROM queues ORDER BY name, queue_id")]
    return pd.DataFrame([{"queue": name, "runs": a.runs_with_overlap, "alpha": a.alpha, "level": a.level}
                         for name, a in rows], columns=["queue", "runs", "alpha", "level"])


MAX_PERIODS = 60  # bars a cost chart draws per purpose before its bucket grows


def cost_bucket(store: Store) -> str:
    """The finest of day, week and month that spans all recorded LLM calls in at most MAX_PERIODS
    periods: months of daily bars were hundreds of bars, too thin to read and slow to draw."""
    days = store.execute("SELECT date_diff('day', min(created_at), max(created_at)) FROM llm_calls")[0][0] or 0
    return "day" if days < MAX_PERIODS else "week" if days < 7 * MAX_PERIODS else "month"


def judge_cost(store: Store, bucket: str = "day") -> pd.DataFrame:
    """LLM spend per time bucket, purpose and model, with tokens and cache reads; bucket "auto" is
    `cost_bucket`'s."""
    if bucket == "auto":
        bucket = cost_bucket(store)
    if bucket not in ("hour", "day", "week", "month"):
        raise ValueError("bucket must be hour, day, week, month or auto")
    return store.df(
        f"SELECT date_trunc('{bucket}', created_at) AS t, purpose, model, count(*) AS calls, "
        "sum(cost_usd) AS cost_usd, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cache_read_input_tokens) AS cache_read_tokens "
        "FROM llm_calls GROUP BY ALL ORDER BY t, purpose")


def agent_metric_summary(store: Store, set_id: str, version: int) -> pd.DataFrame:
    """Per agent and metric over all scored runs: the score with its Wilson interval."""
    return store.df(
        f"""
        WITH c AS (
            SELECT s.agent, s.metric_id,
                   count(*) FILTER (WHERE s.value > 0) AS pos, count(*) FILTER (WHERE s.value < 0) AS neg
            FROM scores s
            WHERE s.metric_set_id = ? AND s.metric_set_version = ? GROUP BY ALL
        )
        SELECT c.agent, coalesce(d.name, c.metric_id) AS metric, pos + neg AS n, pos / nullif(pos + neg, 0) AS score,
               {WILSON}
        FROM c LEFT JOIN metric_defs d ON d.set_id = ? AND d.version = ? AND d.metric_id = c.metric_id
        WHERE pos + neg > 0 ORDER BY metric, agent
        """, [set_id, version, set_id, version])


def run_scores(store: Store, run_id: str) -> pd.DataFrame:
    """Every verdict on one run, with its metric's name."""
    return store.df(
        "SELECT s.metric_set_id AS set, s.metric_set_version AS v, coalesce(d.name, s.metric_id) AS metric, "
        "coalesce(nullif(s.focus, ''), 'the run') AS about, s.value AS verdict, s.rate, s.evidence, s.backend, "
        "s.reason FROM scores s "
        "LEFT JOIN metric_defs d ON d.set_id = s.metric_set_id AND d.version = s.metric_set_version "
        "AND d.metric_id = s.metric_id WHERE s.run_id = ? ORDER BY set, v, metric, s.focus", [run_id])


def scored_metrics(store: Store) -> list[tuple[str, int, str, str]]:
    """(set, version, metric id, name) of every metric that has scores."""
    return [(a, int(b), c, d) for a, b, c, d in store.execute(
        # the few distinct metrics first, then their names: joined first, every verdict was
        "SELECT s.metric_set_id, s.metric_set_version, s.metric_id, coalesce(d.name, s.metric_id) "
        "FROM (SELECT DISTINCT metric_set_id, metric_set_version, metric_id FROM scores) s "
        "LEFT JOIN metric_defs d ON d.set_id = s.metric_set_id AND d.version = s.metric_set_version "
        "AND d.metric_id = s.metric_id ORDER BY 1, 2, 4")]


COST_GROUPS = {"job": "coalesce(job_id, '-')", "purpose": "purpose", "model": "model",
               "day": "CAST(created_at AS DATE)"}


def llm_costs(store: Store, by: str = "job") -> pd.DataFrame:
    """Language-model calls grouped by job, purpose, model or day: calls, cache hits, failures, tokens, dollars."""
    if by not in COST_GROUPS:
        raise ValueError(f"group by one of {', '.join(COST_GROUPS)}")
    # the grouping expression is one of COST_GROUPS' own, never input
    return store.df(
        f"SELECT {COST_GROUPS[by]} AS {by}, count(*) AS calls, "  # noqa: S608
        "count(*) FILTER (WHERE status = 'cached') AS cache_hits, "
        "count(*) FILTER (WHERE status IN ('error', 'invalid')) AS failed, "
        "sum(input_tokens) AS input, sum(cache_read_input_tokens) AS cache_read, "
        "sum(output_tokens) AS output, round(sum(cost_usd), 4) AS cost_usd "
        "FROM llm_calls GROUP BY ALL ORDER BY 1")


def metric_verdicts(store: Store, set_id: str, version: int) -> pd.DataFrame:
    """Per metric of one set version: runs judged and how many +1, −1 and not-applicable verdicts."""
    return store.df(
        "SELECT metric_id, count(DISTINCT run_id) AS runs, count(*) FILTER (WHERE value = 1) AS did_well, "
        "count(*) FILTER (WHERE value = -1) AS did_wrong, count(*) FILTER (WHERE value = 0) AS not_applicable "
        "FROM scores WHERE metric_set_id = ? AND metric_set_version = ? GROUP BY metric_id",
        [set_id, version])


def new_feedback_coverage(store: Store, set_id: str | None = None) -> pd.DataFrame:
    """The newest scheduled measurement of each set version (autolibra.living): per week the remarks
    were written, remarks, covered, coverage and its Wilson interval."""
    return store.df(
        f"""
        WITH c AS (
            SELECT set_id, version, week, remarks, covered, remarks - covered AS uncovered, measured_at
            FROM feedback_coverage WHERE (?::VARCHAR IS NULL OR set_id = ?)
            QUALIFY measured_at = max(measured_at) OVER (PARTITION BY set_id, version)
        )
        SELECT set_id, version, week, remarks, covered, measured_at, covered / remarks AS coverage,
               {wilson_sql("covered", "uncovered")}
        FROM c WHERE remarks > 0 ORDER BY set_id, version, week
        """, [set_id, set_id])
