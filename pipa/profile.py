"""Diagnostic profiles: which stage of the interaction fails, per run and per agent.

Rates are micro-averages over units (every tool call, every reply, ...), as
PIPA averages its verdicts. Where a run has both an offline and an LLM
verdict for a criterion, the LLM one is used. Criteria nobody has judged are
listed as "needs a judge", never as zero.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from pipa.criteria import CRITERIA, STAGES
from traces.display import LABEL_PX, for_chart, tooltips
from traces.store import Store, only_in

ORDER = [m.metric_id for m in CRITERIA]
NAMES = {m.metric_id: m.name for m in CRITERIA}

_LATEST = """
WITH s AS (
    SELECT * FROM scores WHERE metric_id IN (SELECT unnest(?::VARCHAR[]))
    QUALIFY row_number() OVER (PARTITION BY run_id, metric_id
                               ORDER BY backend = 'pipa-llm' DESC, metric_set_version DESC, created_at DESC) = 1
), u AS (
    SELECT run_id, metric_set_id, metric_set_version, metric_id, backend,
           count(*) AS n, sum((value > 0)::INTEGER) AS p
    FROM score_units GROUP BY ALL
)
SELECT s.run_id, coalesce(r.agent, r.model, r.format) AS agent, r.reward, s.metric_id, s.value, s.backend,
       coalesce(u.p, (s.value > 0)::INTEGER) AS passed,
       coalesce(u.n, (s.value <> 0)::INTEGER) AS units,
       coalesce(s.rate, CASE WHEN s.value > 0 THEN 1.0 WHEN s.value < 0 THEN 0.0 END) AS rate
FROM s JOIN runs r USING (run_id)
LEFT JOIN u USING (run_id, metric_set_id, metric_set_version, metric_id, backend)
"""


def run_criteria(store: Store, run_ids: list[str] | None = None) -> pd.DataFrame:
    """One row per run and criterion: units passed, units, the run's rate, its reward."""
    sql, params = _LATEST, [ORDER]
    if run_ids is not None:
        sql += " WHERE s.run_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(run_ids))
    return store.df(sql, params)


def agent_profile(store: Store, agents: list[str] | None = None) -> pd.DataFrame:
    """Per agent and criterion: the micro-averaged pass rate over units, with "needs a judge" gaps."""
    sql = ("SELECT agent, metric_id, sum(passed) AS passed, sum(units) AS units, count(*) AS runs, "
           "list(DISTINCT backend) AS backends FROM (" + _LATEST + ") GROUP BY ALL")
    df = store.df(sql, [ORDER])
    if agents is not None:
        df = df[df["agent"].isin(agents)]
    return complete(df)


def run_profile(store: Store, run_id: str) -> pd.DataFrame:
    df = run_criteria(store, [run_id])
    df = df.assign(runs=1, backends=df["backend"].map(lambda b: [b]))
    return complete(df[["agent", "metric_id", "passed", "units", "runs", "backends"]])


def complete(df: pd.DataFrame) -> pd.DataFrame:
    """Add rows for criteria with no verdict, and the stage and display columns."""
    agents = sorted(df["agent"].unique()) if len(df) else []
    full = pd.DataFrame([(a, m) for a in agents for m in ORDER], columns=["agent", "metric_id"])
    out = full.merge(df, on=["agent", "metric_id"], how="left")
    out["units"] = out["units"].fillna(0).astype(int)
    out["passed"] = out["passed"].fillna(0).astype(int)
    out["runs"] = out["runs"].fillna(0).astype(int)
    out["rate"] = np.where(out["units"] > 0, out["passed"] / out["units"].clip(lower=1), np.nan)
    out["status"] = np.where(out["units"] > 0, "scored", "needs a judge")
    out["criterion"] = out["metric_id"].map(NAMES)
    out["stage"] = out["metric_id"].map(STAGES)
    return out


def weakest_stage(profile: pd.DataFrame) -> pd.DataFrame:
    """Per agent, the scored criterion with the lowest rate: where it fails first."""
    scored = profile.dropna(subset=["rate"])
    if scored.empty:
        return scored
    return scored.loc[scored.groupby("agent")["rate"].idxmin(), ["agent", "criterion", "stage", "rate", "units"]]


def reward_relation(store: Store, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Per criterion: its rate among successful and failed runs, and the point-biserial r with reward.

    Reward is binarised at 1 (the task's own success check); the point-biserial
    r is Pearson's r between that and each run's pass rate, computed in DuckDB,
    with its two-sided p from the t distribution. Task completion computed from
    the recorded reward correlates perfectly by construction and is listed for
    completeness.
    """
    from scipy.stats import t as t_dist

    sql = "SELECT * FROM (" + _LATEST + ") WHERE reward IS NOT NULL AND rate IS NOT NULL"
    clause, params = only_in("run_id", run_ids)
    sql, params = sql + clause, [ORDER, *params]
    df = store.df(
        "SELECT metric_id, count(*) AS runs, sum(passed) / nullif(sum(units), 0) AS rate, "
        "avg(rate) FILTER (WHERE reward >= 1) AS rate_success, avg(rate) FILTER (WHERE reward < 1) AS rate_failure, "
        "corr((reward >= 1)::DOUBLE, rate) AS r_pb FROM (" + sql + ") GROUP BY metric_id", params)
    df = pd.DataFrame({"metric_id": ORDER}).merge(df, on="metric_id", how="left")
    df["runs"] = df["runs"].fillna(0).astype(int)
    r, n = df["r_pb"].astype(float), df["runs"]
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = r * np.sqrt((n - 2) / (1 - r ** 2))
    df["p"] = np.where(n > 2, 2 * t_dist.sf(np.abs(tstat), np.maximum(n - 2, 1)), np.nan)
    df.insert(0, "criterion", df["metric_id"].map(NAMES))
    return df


def profile_chart(profile: pd.DataFrame) -> alt.Chart:
    """Pass rate per criterion, one row of bars per agent; unjudged criteria are labelled, not drawn as 0."""
    df = for_chart(profile, ("agent",)).assign(label=np.where(profile["status"] == "scored",
                                       profile["rate"].map(lambda r: f"{r:.0%}" if r == r else ""),
                                       "needs a judge"),
                        shown=profile["rate"].fillna(0.0))
    crit = [NAMES[m] for m in ORDER]
    base = alt.Chart(df).encode(
        y=alt.Y("criterion:N", sort=crit, title=None),
        tooltip=tooltips("agent", "criterion", "stage", alt.Tooltip("rate:Q", format=".1%"), "units", "runs", "status"),
    )
    bars = base.mark_bar().encode(
        x=alt.X("shown:Q", title="pass rate over units", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("stage:N", sort=[STAGES[m] for m in ORDER], title="POMDP stage"),
    )
    text = base.mark_text(align="left", dx=4).encode(x=alt.X("shown:Q"), text=alt.Text("label:N"))
    return (bars + text).properties(width=360, height=140).facet(row=alt.Row(
        "agent:N", title=None, header=alt.Header(labelLimit=LABEL_PX, labelAngle=0, labelAlign="left")))
