"""Runs browser: filters, full-text search, sorting and paging done by the database."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from libra.web import session
from libra.web.cache import cached, cached_past_notes
from libra.web.widgets import VERDICT_TEXT, open_run
from traces.display import for_chart, visible_controls
from metrics.reports.queries import scored_metrics
from metrics.llm.prices import price_table
from traces.queries import (RUN_SORTS, RunFilter, count_runs, facets, list_runs, notes_on, picks_by_notes,
                            unindexed)

PAGE = 50
COLUMNS = ("started_at", "agent", "version", "model", "outcome", "verdict", "reward", "steps", "duration_s", "tokens",
           "cost_usd", "errors", "feedback", "annotators", "passed", "failed", "task", "format")
COLUMN_CONFIG = {
    "started_at": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
    "duration_s": st.column_config.NumberColumn("duration", format="%.1f s"),
    "tokens": st.column_config.NumberColumn("tokens", format="localized"),
    "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f",
                                              help="tokens priced by genai-prices; blank for a model it lacks"),
    "reward": st.column_config.NumberColumn("reward", format="%.2f"),
    "errors": st.column_config.NumberColumn("errors", help="steps marked as errors"),
    "feedback": st.column_config.NumberColumn("notes", help="people's notes on the run"),
    "annotators": st.column_config.NumberColumn("people", help="how many people wrote them"),
    "passed": st.column_config.NumberColumn("+1", help="verdicts: did well"),
    "failed": st.column_config.NumberColumn("−1", help="verdicts: did something wrong"),
    "task": st.column_config.TextColumn("task", width="medium"),
}


def page() -> None:
    s = session.store()
    st.header("Runs")
    f = cached_past_notes(s, facets)
    with st.sidebar:
        st.subheader("Filter")
        # option labels are data: drawn as written, bidirectional controls made visible
        formats = st.multiselect("source format", f["format"], key="f-format", format_func=visible_controls)
        agents = st.multiselect("agent", f["agent"], key="f-agent", format_func=visible_controls)
        outcomes = st.multiselect("outcome", f["outcome"], key="f-outcome", format_func=visible_controls)
        models = st.multiselect("model", f["model"], key="f-model", format_func=visible_controls)
        annotated = st.selectbox("annotated", ["any", "with feedback", "without feedback"], key="f-annotated")
        dates = st.date_input("started between", value=[], key="f-dates")
        metrics = cached_past_notes(s, scored_metrics)
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
    flt = RunFilter(formats=tuple(formats), agents=tuple(agents), outcomes=tuple(outcomes), models=tuple(models),
                    text=text or None,
                    annotated={"any": None, "with feedback": True, "without feedback": False}[annotated],
                    since=since, until=until, metric=metric, metric_values=values, fts=True)
    total = cached(s, count_runs, flt) if picks_by_notes(flt) else cached_past_notes(s, count_runs, flt)
    pages = max(1, (total + PAGE - 1) // PAGE)
    c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
    sort = c1.selectbox("sort by", list(RUN_SORTS), key="f-sort")
    descending = c2.toggle("largest / newest first", value=True, key="f-desc")
    pg = c3.number_input(f"page of {pages}", min_value=1, max_value=pages, value=1, key="f-page")
    c4.caption(f"{total:,} runs match · sorted over all of them, {PAGE} a page · times in UTC")
    lagging = cached_past_notes(s, unindexed) if text else None
    if lagging:
        st.caption(f"{lagging:,} runs added since the search index was built are matched by any of your words; "
                   "`libra index` ranks them with the rest.")
    page_of = dict(sort=sort, descending=descending, prices=price_table(f["model"]), verdict_of=metric)
    if picks_by_notes(flt, sort):
        df = cached(s, list_runs, flt, PAGE, (pg - 1) * PAGE, **page_of)
    else:  # the page is kept across saves; only its two columns of notes are asked again
        df = cached_past_notes(s, list_runs, flt, PAGE, (pg - 1) * PAGE, **page_of, notes=False)
        df = df.merge(cached(s, notes_on, list(df["run_id"])), on="run_id", how="left")
    if "verdict" in df:  # the chosen metric's verdict, in words
        df["verdict"] = df["verdict"].map(VERDICT_TEXT)
    text_cols = ("agent", "version", "task", "model", "format", "outcome", "verdict")
    shown = for_chart(df, text_cols).drop(columns=["run_id"])
    # a column this store never fills (no versions, no prices) is left out, and an empty text cell
    # is blank, not the word None
    shown = shown.drop(columns=[c for c in shown.columns if shown[c].isna().all()])
    shown[[c for c in text_cols if c in shown]] = shown[[c for c in text_cols if c in shown]].fillna("")
    event = st.dataframe(
        shown, hide_index=True, height=min(38 + 35 * len(shown), 720), on_select="rerun", selection_mode="single-row",
        key="runs-table", width="stretch", column_order=COLUMNS, column_config=COLUMN_CONFIG)
    rows = event.selection.rows if event and event.selection else []
    if rows:
        open_run(str(df.iloc[rows[0]]["run_id"]))
        st.switch_page(st.session_state["pages"]["run"])
