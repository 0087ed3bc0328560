"""Dashboard charts: functions from a DataFrame (see `metrics.reports.queries`) to an Altair chart."""

from __future__ import annotations

import altair as alt
import pandas as pd

from traces.display import LABEL_PX, for_chart, tooltips

# names in these columns come from traces, metric sets and queues
_NAMES = ("agent", "metric", "run_id", "queue", "judge", "model", "version")

EM = "\u2003"  # indentation that survives the renderer, which trims plain spaces
VERDICT_COLOURS = alt.Scale(domain=[-1, 0, 1], range=["#d6604d", "#e0e0e0", "#4393c3"])
# Streamlit's theme pairs each colour with a pale one, so every other agent was a pale line (a light
# yellow one all but invisible on white); ten colours of one strength instead, the same in every chart.
AGENT_COLOURS = alt.Scale(scheme="tableau10")


def flag_flat(df: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """Metrics whose `value` is the same everywhere get "(no spread)" after their name.

    A line or a point that cannot move tells agents apart no better than no chart; the label says
    so where the eye lands instead of leaving a flat line to be read as a result.
    """
    flat = df.groupby("metric")[value].agg(lambda v: v.dropna().nunique() <= 1)
    names = {m: f"{m} (no spread: the same score everywhere)" for m in flat[flat].index}
    return df.assign(metric=df["metric"].map(lambda m: names.get(m, m))) if names else df


POINTS_UP_TO = 150  # scores in an over-time chart drawn as points too
# Lines of an over-time chart whose 95% intervals are drawn as bands. Past three, the bands overlap
# into one grey smear behind the lines (eight agents on bench/app.py's store), and they were a
# fifth of the browser's work on the chart (~30 ms of it); the hover and the per-agent summary
# beside it still give every interval.
BANDS_UP_TO = 3


def _at_each_time(df: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One row per metric and time bucket, a column per line (agent, or agent · version) holding its
    score as text: what the over-time chart's hover shows. Returns the rows and (column, title) pairs."""
    if df.empty:
        return pd.DataFrame({"metric": [], "t": []}), []
    many_versions = df["version"].nunique() > 1
    label = df["agent"].fillna("(no agent)").astype(str) + (" · v" + df["version"].astype(str) if many_versions else "")
    lines = sorted(label.unique())
    # columns named by position: a name from the data would be read by Vega-Lite as a field path
    column = {name: f"line_{i}" for i, name in enumerate(lines)}
    text = df["score"].map("{:.2f}".format) + " (" + df["lo"].map("{:.2f}".format) + "–" + \
        df["hi"].map("{:.2f}".format) + ", n=" + df["n"].astype(int).astype(str) + ")"
    wide = (df.assign(line=label.map(column), text=text)
            .pivot_table(index=["metric", "t"], columns="line", values="text", aggfunc="first")
            .reset_index())
    wide.columns.name = None
    cols = [column[name] for name in lines]
    wide[cols] = wide[cols].fillna("no verdicts")
    return wide, [(column[name], name) for name in lines]


def scores_over_time_chart(df: pd.DataFrame) -> alt.Chart:
    """Score over time per agent (colour) and set version (dash), with the 95% interval as a band
    when there are at most BANDS_UP_TO lines.

    Columns: t, agent, version, metric, score, lo, hi, n. Hovering a time shows every line's score
    there, side by side, from one invisible rule per metric and time; a point per score carried one
    score each before, 528 SVG marks on bench/app.py's store (six metrics, eight agents, eleven
    weeks) where the rules are 66 (a chart of up to POINTS_UP_TO scores keeps its points). The
    browser's work on the dashboards' first visit went 384 → 346 and 288 → 278 ms (medians, the two
    versions side by side); on the tab alone it moved within noise.
    """
    df = for_chart(flag_flat(df), _NAMES)
    wide, lines = _at_each_time(df)
    # a line of one score draws nothing, and a few scores read better as points: those get theirs
    point = (df.groupby(["metric", "agent", "version"], dropna=False)["t"].transform("size") == 1) | \
        (len(df) <= POINTS_UP_TO)
    data = pd.concat([df.assign(layer="line", point=point), wide.assign(layer="hover")], ignore_index=True)
    x = alt.X("t:T", title=None)
    base = alt.Chart().transform_filter(alt.datum.layer == "line").encode(
        x=x,
        # the legend's symbols are the band's, which are nearly transparent: drawn opaque
        color=alt.Color("agent:N", title="agent", scale=AGENT_COLOURS,
                        legend=alt.Legend(labelLimit=LABEL_PX, symbolOpacity=1)),
        strokeDash=alt.StrokeDash("version:O", title="set version"),
    )
    y = alt.Y("score:Q", title="score", scale=alt.Scale(domain=[0, 1]))
    band = base.mark_area(opacity=0.15).encode(y=alt.Y("lo:Q", title="score", scale=alt.Scale(domain=[0, 1])),
                                               y2=alt.Y2("hi:Q"))
    line = base.mark_line().encode(y=y)
    points = base.transform_filter(alt.datum.point).mark_point(filled=True, opacity=1).encode(y=y)
    hover = alt.Chart().transform_filter(alt.datum.layer == "hover").mark_rule(
        strokeWidth=14, opacity=0).encode(
        x=x, tooltip=[alt.Tooltip("metric:N"), alt.Tooltip("t:T", title="from"),
                      *(alt.Tooltip(f"{col}:N", title=title) for col, title in lines)])
    layers = [band, line, points, hover] if len(lines) <= BANDS_UP_TO else [line, points, hover]
    return alt.layer(*layers, data=data).properties(width=260, height=160).facet(
        facet=alt.Facet("metric:N", title=None, header=alt.Header(labelLimit=300)), columns=3)


def scores_tab_chart(over_time: pd.DataFrame, summary: pd.DataFrame) -> alt.TopLevelMixin:
    """The scores over time (`scores_over_time_chart`) above each agent's score per metric
    (`agent_summary_chart`), drawn as one chart, their agents in the same colours and one legend.

    One chart and not two because each chart on a page is a Vega view of its own, and the summary's
    view was ~55 ms of the browser's work on the dashboards' scores tab (bench/app.py, the tab without
    it, side by side: 263 → 209 ms median). Drawn in the same view as the lines, the tab went 289 →
    267 ms and the dashboards' first chart 291 → 265 (medians, the two versions side by side).
    """
    top = scores_over_time_chart(over_time)
    # The halves' plots are aligned on their left edges: the summary's metric names on its left
    # pushed the lines right by their width, past the page's edge with three columns of them.
    return top if summary.empty else alt.vconcat(top, agent_summary_chart(summary, labels="right"))


def heatmap_chart(df: pd.DataFrame) -> alt.Chart:
    """Runs (rows; one per agent where verdicts are per agent) × metrics, coloured by verdict.

    A click selects the run for drill-down. Columns: run_id, metric, value, rate,
    and optionally subject (the run, or "run · agent").
    """
    pick = alt.selection_point(fields=["run_id"], name="run")
    row = "subject" if "subject" in df.columns else "run_id"
    return alt.Chart(for_chart(df, (*_NAMES, "subject"))).mark_rect(stroke="white").encode(
        # every row and column labelled: steep labels and rows tall enough that none hides another
        x=alt.X("metric:N", title=None, axis=alt.Axis(labelAngle=-60, labelLimit=160, labelOverlap=False)),
        y=alt.Y(f"{row}:N", title=None, sort=None, axis=alt.Axis(labelLimit=220, labelOverlap=False)),
        color=alt.Color("value:O", scale=VERDICT_COLOURS, title="verdict", legend=alt.Legend(
            labelExpr="datum.value == 1 ? '+1 did well' : datum.value == -1 ? '−1 did wrong' : 'n/a'")),
        opacity=alt.OpacityValue(0.35, condition={"param": pick.name, "value": 1.0}),
        tooltip=tooltips("run_id", "metric", "value", alt.Tooltip("rate:Q", format=".0%"), "backend"),
    ).add_params(pick).properties(width=alt.Step(46), height=alt.Step(18), title="Runs × metrics")


def agent_summary_chart(df: pd.DataFrame, labels: str = "left") -> alt.Chart:
    """Per metric and agent: score with its 95% interval (columns agent, metric, score, lo, hi, n);
    the metrics' names on the `labels` side."""
    base = alt.Chart(for_chart(flag_flat(df), _NAMES)).encode(
        y=alt.Y("metric:N", title=None, axis=alt.Axis(labelLimit=LABEL_PX + 120, orient=labels)),
                                                   yOffset=alt.YOffset("agent:N"),
                                color=alt.Color("agent:N", scale=AGENT_COLOURS,
                                                legend=alt.Legend(labelLimit=LABEL_PX, symbolOpacity=1)))
    rule = base.mark_rule().encode(x=alt.X("lo:Q", title="score", scale=alt.Scale(domain=[0, 1])), x2=alt.X2("hi:Q"))
    point = base.mark_point(filled=True, size=60).encode(
        x=alt.X("score:Q"), tooltip=tooltips("metric", "agent", alt.Tooltip("score:Q", format=".2f"),
                                             alt.Tooltip("lo:Q", format=".2f"), alt.Tooltip("hi:Q", format=".2f"), "n"))
    return (rule + point).properties(width=420, title="Score by agent (95% interval)")


def cost_chart(df: pd.DataFrame, bucket: str | None = None) -> alt.Chart:
    """LLM spend over time, stacked by purpose (columns t, purpose, cost_usd, calls), per `bucket`."""
    return alt.Chart(for_chart(df, _NAMES)).mark_bar().encode(
        x=alt.X("t:T", title=None),
        y=alt.Y("sum(cost_usd):Q", title="USD"),
        color=alt.Color("purpose:N"),
        tooltip=tooltips("t:T", "purpose", "model", alt.Tooltip("cost_usd:Q", format="$.4f"), "calls",
                         "input_tokens", "cache_read_tokens"),
    ).properties(width=520, height=200, title=f"Judge cost per {bucket}" if bucket else "Judge cost")


def judge_human_chart(df: pd.DataFrame) -> alt.Chart:
    """Per metric: people's mean rating on the runs the judge passed and on those it failed.

    A judge that agrees with people puts the blue dot right of the red one. Columns metric, runs,
    spearman, rating_when_pass, rating_when_fail.
    """
    long = df.melt(id_vars=["metric", "runs", "spearman"], value_vars=["rating_when_pass", "rating_when_fail"],
                   var_name="judge", value_name="rating").dropna(subset=["rating"])
    long["judge"] = long["judge"].map({"rating_when_pass": "judge said did well (+1)",
                                       "rating_when_fail": "judge said did wrong (−1)"})
    long["label"] = [f"{m}  (ρ {r:+.2f}, {n} runs)" if pd.notna(r) else f"{m}  ({n} runs)"
                     for m, r, n in zip(long["metric"], long["spearman"], long["runs"], strict=True)]
    base = alt.Chart(for_chart(long, (*_NAMES, "label"))).encode(
        y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=LABEL_PX + 140)))
    line = base.mark_rule(color="#bbbbbb").encode(x=alt.X("min(rating):Q", scale=alt.Scale(domain=[1, 5])),
                                                  x2=alt.X2("max(rating):Q"))
    dots = base.mark_circle(size=90, opacity=1).encode(
        x=alt.X("rating:Q", title="people's mean rating (1–5)", scale=alt.Scale(domain=[1, 5])),
        color=alt.Color("judge:N", title=None, scale=alt.Scale(range=["#4393c3", "#d6604d"]),
                        legend=alt.Legend(orient="top", labelLimit=300)),
        tooltip=tooltips("metric", "judge", alt.Tooltip("rating:Q", format=".2f"), "runs",
                         alt.Tooltip("spearman:Q", title="Spearman ρ", format=".2f")))
    return (line + dots).properties(width=360, height=alt.Step(22),
                                    title=alt.Title("Judge vs people", anchor="start"))


def agreement_chart(df: pd.DataFrame) -> alt.Chart:
    """Krippendorff's alpha per queue, with the 0.667 line below which agreement is tentative."""
    bars = alt.Chart(for_chart(df, _NAMES)).mark_bar().encode(
        x=alt.X("alpha:Q", title="Krippendorff's alpha", scale=alt.Scale(domain=[-0.2, 1])),
        y=alt.Y("queue:N", title=None), tooltip=tooltips("queue", "runs", alt.Tooltip("alpha:Q", format=".2f")))
    line = alt.Chart(pd.DataFrame({"x": [0.667]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.X("x:Q"))
    return (bars + line).properties(width=420, title="Annotator agreement")


def waterfall_chart(df: pd.DataFrame) -> alt.Chart:
    """A run's spans and steps on one time axis, nested as the trace nests them (`traces.tree.span_tree`).

    Rows in reading order, indented by depth; failed nodes red. Nodes with no times are left out
    (a chart of a run without timings would be empty bars).
    """
    timed = df.dropna(subset=["start_s"]).copy()
    timed["end_s"] = timed["start_s"] + timed["duration_s"].fillna(0)
    # a zero-length bar is invisible: each gets at least a sliver of the run's length
    sliver = max(float(timed["end_s"].max()) if len(timed) else 0.0, 1e-3) / 400
    timed["end_s"] = timed["end_s"].where(timed["end_s"] >= timed["start_s"] + sliver, timed["start_s"] + sliver)
    timed["row"] = [f"{EM * int(d)}{'▸ ' if k == 'span' else ''}{lbl}"
                    + (f" #{int(i)}" if pd.notna(i) else "")
                    for d, k, lbl, i in zip(timed["depth"], timed["kind"], timed["label"], timed["idx"], strict=True)]
    timed["status"] = timed["error"].map({True: "error", False: "ok"})
    return alt.Chart(for_chart(timed, (*_NAMES, "row", "label"))).mark_bar(height=10).encode(
        x=alt.X("start_s:Q", title="seconds from the run's start"), x2=alt.X2("end_s:Q"),
        y=alt.Y("row:N", sort=None, title=None,
                axis=alt.Axis(labelLimit=LABEL_PX, labelAlign="left", labelPadding=LABEL_PX, labelOverlap=False)),
        color=alt.Color("status:N", scale=alt.Scale(domain=["ok", "error"], range=["#4393c3", "#d6604d"]),
                        title=None),
        tooltip=tooltips("label", "kind", alt.Tooltip("start_s:Q", title="start (s)", format=".2f"),
                         alt.Tooltip("duration_s:Q", title="took (s)", format=".3f"), "tokens", "model", "status"),
    ).properties(width=520, height=alt.Step(16), title="Trace timeline")
