"""Charts: functions from a DataFrame to an Altair chart."""

from __future__ import annotations

import altair as alt
import pandas as pd

from traces.display import tooltips


def _around(values: pd.Series, pad: float = 0.05) -> list[float]:
    """An axis over where the points are, within 0–1: candidates bunch in a corner of the full range."""
    lo, hi = float(values.min()), float(values.max())
    return [max(0.0, round(lo - pad, 2)), min(1.0, round(hi + pad, 2))]


def frontier_chart(df: pd.DataFrame) -> alt.Chart:
    """Coverage against redundancy for every candidate metric set, induction and held-out parts.

    Expects columns coverage, redundancy, split, metrics, chosen (see Induction.frontier()).
    """
    base = alt.Chart(df).encode(
        x=alt.X("redundancy:Q", title="redundancy (lower is better)",
                scale=alt.Scale(domain=_around(df["redundancy"]))),
        y=alt.Y("coverage:Q", title="coverage (higher is better)", scale=alt.Scale(domain=_around(df["coverage"]))),
        color=alt.Color("split:N", title="feedback"),
    )
    points = base.mark_circle(opacity=0.75).encode(
        size=alt.Size("metrics:Q", title="metrics"),
        tooltip=tooltips(*(c for c in ("split", "metrics", "coverage", "redundancy", "min_cluster_size", "merge_at",
                                       "absorb_at", "split_mixed") if c in df.columns)))
    chosen = base.transform_filter(alt.datum.chosen).mark_point(shape="diamond", size=260, filled=False,
                                                                 strokeWidth=2)
    return (points + chosen).properties(title="Coverage–redundancy frontier", width=420, height=320)


def aspect_map_chart(df: pd.DataFrame) -> alt.Chart:
    """Feedback aspects in 2-D, coloured by the metric they belong to (columns x, y, metric, sign, aspect)."""
    # twenty colours tell twenty metrics apart; past that the smallest share one, named as such
    sizes = df["metric"].value_counts()
    if len(sizes) > 20:
        keep = set(sizes.index[:19])
        df = df.assign(metric=df["metric"].where(df["metric"].isin(keep), "(other metrics)"))
    return alt.Chart(df).mark_point(filled=True, opacity=0.7).encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None),
        color=alt.Color("metric:N", title="metric", scale=alt.Scale(scheme="tableau20"),
                        legend=alt.Legend(columns=1, symbolLimit=40, labelLimit=220)),
        shape=alt.Shape("sign:N", title="sign"),
        tooltip=tooltips("metric", "sign", "aspect"),
    ).properties(title="Feedback aspects by metric", width=480, height=360)


def new_coverage_chart(df: pd.DataFrame, threshold: float | None = None) -> alt.LayerChart:
    """Coverage of new feedback per week with its 95% interval, one line per set version; the alert's
    threshold dashed. Expects columns week, coverage, lo, hi, remarks, version (see coverage_history)."""
    df = df.assign(version=df["version"].map(lambda v: f"v{v}"))
    base = alt.Chart(df).encode(x=alt.X("week:T", title="week the remarks were written"),
                                color=alt.Color("version:N", title="set version"))
    band = base.mark_area(opacity=0.2).encode(y=alt.Y("lo:Q", title="coverage of new feedback",
                                                      scale=alt.Scale(domain=[0, 1])), y2=alt.Y2("hi:Q"))
    line = base.mark_line(point=True).encode(
        y=alt.Y("coverage:Q"), tooltip=tooltips(alt.Tooltip("week:T"), "version", "remarks", "covered",
                                                alt.Tooltip("coverage:Q", format=".2f"), alt.Tooltip("lo:Q", format=".2f"),
                                                alt.Tooltip("hi:Q", format=".2f")))
    layers = [band, line]
    if threshold is not None:
        layers.append(alt.Chart(pd.DataFrame({"y": [threshold]})).mark_rule(strokeDash=[4, 3], color="#d62828")
                      .encode(y=alt.Y("y:Q")))
    return alt.LayerChart(layer=layers).properties(height=220, title="Coverage of feedback written since the set")
