"""Runs browser: filters, full-text search, paging."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from libra.web import session
from libra.web.widgets import open_run
from traces.display import for_chart, visible_controls
from metrics.reports.queries import scored_metrics
from traces.queries import RunFilter, count_runs, facets, list_runs

PAGE = 50


def page() -> None:
    s = session.store()
    st.header("Runs")
    f = facets(s)
    with st.sidebar:
        st.subheader("Filter")
        # option labels are data: drawn as written, bidirectional controls made visible
        formats = st.multiselect("source format", f["format"], key="f-format", format_func=visible_controls)
        agents = st.multiselect("agent", f["agent"], key="f-agent", format_func=visible_controls)
        outcomes = st.multiselect("outcome", f["outcome"], key="f-outcome", format_func=visible_controls)
        annotated = st.selectbox("annotated", ["any", "with feedback", "without feedback"], key="f-annotated")
        dates = st.date_input("started between", value=[], key="f-dates")
        metrics = scored_metrics(s)
        metric, values = None, tuple[int, ...]()
        if metrics:
            pick = st.selectbox("metric verdict", ["any"] + [f"{m[3]} ({m[0]} v{m[1]})" for m in metrics],
                                key="f-metric", format_func=visible_controls)
            if pick != "any":
                m = metrics[[f"{x[3]} ({x[0]} v{x[1]})" for x in metrics].index(pick)]
                metric = (m[0], m[1], m[2])
                labels = st.multiselect("verdict", ["+1 did well", "-1 did wrong", "0 not applicable"],
                                        default=["-1 did wrong"], key="f-values")
                values = tuple(int(x.split()[0]) for x in labels)
    text = st.text_input("Search step content", key="f-text", placeholder="words from the run, e.g. refund supervisor")
    since = until = None
    if isinstance(dates, tuple) and len(dates) == 2:
        since, until = str(dates[0]), str(dates[1] + dt.timedelta(days=1))
    flt = RunFilter(formats=tuple(formats), agents=tuple(agents), outcomes=tuple(outcomes), text=text or None,
                    annotated={"any": None, "with feedback": True, "without feedback": False}[annotated],
                    since=since, until=until, metric=metric, metric_values=values, fts=True)
    total = count_runs(s, flt)
    pages = max(1, (total + PAGE - 1) // PAGE)
    c1, c2 = st.columns([1, 3])
    pg = c1.number_input(f"page of {pages}", min_value=1, max_value=pages, value=1, key="f-page")
    c2.caption(f"{total:,} runs match")
    df = list_runs(s, flt, PAGE, (pg - 1) * PAGE)
    shown = for_chart(df, ("agent", "task", "model", "format", "outcome", "source"))
    event = st.dataframe(shown, hide_index=True, on_select="rerun", selection_mode="single-row", key="runs-table",
                         width="stretch", column_config={"task": st.column_config.TextColumn(width="large")})
    rows = event.selection.rows if event and event.selection else []
    if rows:
        open_run(str(df.iloc[rows[0]]["run_id"]))
        st.switch_page(st.session_state["pages"]["run"])
