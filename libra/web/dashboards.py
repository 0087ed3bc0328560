"""Dashboards: scores over time, runs × metrics with drill-down, PIPA profiles, induction, people and cost."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from autolibra.charts import aspect_map_chart, frontier_chart, new_coverage_chart
from autolibra.frontier import frontier_frame
from libra.web import session
from libra.web.cache import cached_on_ratings, cached_past_notes
from libra.web.widgets import chart, md, open_run, p_text, show_text
from metrics.jobs import alerts, schedule
from metrics.jobs.alerts import NEW_FEEDBACK_COVERAGE
from metrics.reports import charts, queries as dashboard
from metrics import sets
from pipa import profile
from traces.display import visible_controls
from traces.store import Store


def _set_names(s: Store) -> dict[str, str]:
    """A set's name for its id: ids such as pipa-da39a3ee are hashes nobody can read."""
    listing = cached_past_notes(s, sets.list_sets)
    return {str(r.set_id): str(r.name) for r in listing.itertuples()}


def _alerts(s: Store) -> None:
    df = cached_past_notes(s, alerts.firing)
    names = _set_names(s)
    for r in df.itertuples(index=False):
        st.error(f"Alert **{md(r.rule)}**: {md(r.metric)} ({md(names.get(r.metric_set_id, r.metric_set_id))}) "
                 f"= {r.value:.3f} < {r.threshold:g}"
                 f"{' for ' + r.agent if r.agent else ''} over {r.runs} runs (since {r.raised_at:%Y-%m-%d %H:%M})",
                 icon=":material/notifications_active:")


def _pick_set(s: Store, key: str) -> tuple[str, int] | None:
    avail = cached_past_notes(s, dashboard.score_sets)
    avail = avail[~avail["metric_set_id"].str.startswith("pipa-")]
    if avail.empty:
        return None
    names = _set_names(s)
    labels = [f"{names.get(r.metric_set_id, r.metric_set_id)} · {r.metric_set_id} v{r.metric_set_version} · "
              f"{r.scores:,} verdicts" for r in avail.itertuples()]
    i = labels.index(st.selectbox("metric set", labels, index=len(labels) - 1, key=key, format_func=visible_controls))
    return avail.iloc[i]["metric_set_id"], int(avail.iloc[i]["metric_set_version"])


def _scores_tab(s: Store) -> None:
    picked = _pick_set(s, "dash-set")
    if picked is None:
        st.info("Nothing scored yet: approve a metric set and run `libra score`.")
        return
    set_id, version = picked
    bucket = st.segmented_control("bucket", ["hour", "day", "week", "month"], default="week", key="dash-bucket")
    df = cached_past_notes(s, dashboard.scores_over_time, set_id, bucket=bucket or "week")
    if df.empty:
        st.info("No ±1 verdicts in this set yet.")
        return
    # a facet per metric is unreadable past a handful: start with the most-judged ones
    by_n = df.groupby("metric")["n"].sum().sort_values(ascending=False).index.tolist()
    shown = st.multiselect("metrics", by_n, default=by_n[:6], key="dash-metrics")
    shown_df = df[df["metric"].isin(shown or by_n[:6])]
    flat = sorted(m for m, g in df.groupby("metric") if g["score"].nunique() <= 1)
    if flat:
        st.warning(f"{len(flat)} of {df['metric'].nunique()} metrics give every agent the same score in every "
                   "period, so they cannot tell agents apart: " + ", ".join(md(m) for m in flat)
                   + ". An offline judge that cannot read a behaviour does this; an LLM judge may.")
    summ = cached_past_notes(s, dashboard.agent_metric_summary, set_id, version)
    # the metrics picked above, so that both halves answer for the same ones (all twelve of the bench's
    # set made the summary 2,000 px tall; the tab's p95 was 384 ms with them, 296 without, one run each)
    picked = summ[summ["metric"].isin(shown_df["metric"])] if not summ.empty else summ
    chart(charts.scores_tab_chart, shown_df, picked if not picked.empty else summ)


def evidence_text(reason: str | None, steps: pd.DataFrame, reason_chars: int = 600, step_chars: int = 400) -> str:
    """A verdict's reason and its evidence steps as one block of literal text.

    One block per verdict rather than a heading and a block per step: 30 elements instead of 70 for
    the ten metrics of bench/app.py's store, and the browser's work per visit to the tab went
    306 → 285, 369 → 303 and 431 → 315 ms in three runs of the two versions side by side.
    """
    def cut(text: str | None, n: int) -> str:
        text = text or ""
        return text if len(text) <= n else text[:n] + " …"

    parts = [cut(reason, reason_chars)]
    parts += [f"── step {int(r.step)} · {r.kind if isinstance(r.kind, str) else 'not in the run'} ──\n"
              f"{cut(r.content if isinstance(r.content, str) else '', step_chars)}" for r in steps.itertuples(index=False)]
    return "\n\n".join(parts)


def _matrix_tab(s: Store) -> None:
    picked = _pick_set(s, "dash-set-matrix")
    if picked is None:
        st.info("Nothing scored yet.")
        return
    set_id, version = picked
    df = cached_past_notes(s, dashboard.run_metric_matrix, set_id, version, limit=st.slider("runs", 10, 200, 40, key="dash-n"))
    event = chart(charts.heatmap_chart, df, on_select="rerun", key="dash-heat")
    chosen = [p.get("run_id") for p in (event.selection.get("run") or [])] if event and event.selection else []
    runs = list(dict.fromkeys(df["run_id"]))
    run_id = chosen[0] if chosen else st.selectbox("run to inspect", runs, key="dash-run")
    if not run_id:
        return
    st.subheader(f"Evidence for {md(run_id)}")
    ev = cached_past_notes(s, dashboard.run_evidence, run_id, set_id, version)
    for (metric, focus), g in ev.groupby(["metric", "focus"], sort=False):
        first = g.iloc[0]
        verdict = {1: "+1", -1: "−1", 0: "n/a"}.get(int(first["value"]), "?")
        rate = "" if pd.isna(first["rate"]) else f" · {first['rate']:.0%} of units pass"
        about = f" · about {md(focus)}" if focus else ""
        with st.expander(f"{md(metric)}{about}: {verdict}{rate}", expanded=int(first["value"]) < 0):
            st.caption(f"judge: {md(first['backend'])}")
            show_text(evidence_text(first["reason"], g.dropna(subset=["step"])), 600 + len(g) * 460)
    if st.button("Open this run", key="dash-open"):
        open_run(run_id)
        st.switch_page(st.session_state["pages"]["run"])


def _pipa_tab(s: Store) -> None:
    prof = cached_past_notes(s, profile.agent_profile)
    if prof.empty:
        st.info("No PIPA scores yet: run `libra pipa score`.")
        return
    chart(profile.profile_chart, prof)
    st.caption("Criteria marked “needs a judge” have no verdict: set ANTHROPIC_API_KEY and run `libra pipa score`.")
    worst = profile.weakest_stage(prof)
    if not worst.empty:
        st.markdown("**Where each agent fails first**")
        st.dataframe(worst.rename(columns={"rate": "pass rate", "units": "units judged"}), hide_index=True,
                     column_config={"pass rate": st.column_config.NumberColumn(format="percent")})
    rel = cached_past_notes(s, profile.reward_relation)
    rel = rel[rel["runs"] > 0]
    st.markdown("**Criteria against the task's own reward** (point-biserial r, two-sided p)")
    if rel.empty:
        st.caption("No criterion has verdicts on runs with a reward yet.")
        return
    st.dataframe(
        rel.drop(columns=["metric_id"]).assign(p=rel["p"].map(p_text)), hide_index=True,
        column_config={"rate": st.column_config.NumberColumn("pass rate", format="percent"),
                       "rate_success": st.column_config.NumberColumn("on successes", format="percent"),
                       "rate_failure": st.column_config.NumberColumn("on failures", format="percent"),
                       "r_pb": st.column_config.NumberColumn("r", format="%.2f"),
                       "p": st.column_config.TextColumn("p")})


def _induction_tab(s: Store) -> None:
    listing = cached_past_notes(s, sets.list_sets)
    listing = listing[listing["backend"].fillna("").str.contains("/")]  # induced sets: grounder/namer
    if listing.empty:
        st.info("No induced metric set yet: run `libra induce`.")
        return
    labels = [f"{r.name} · {r.set_id} v{r.version}" for r in listing.itertuples()]
    i = labels.index(st.selectbox("induced set", labels, index=len(labels) - 1, key="dash-ind", format_func=visible_controls))
    ms = cached_past_notes(s, sets.load, listing.iloc[i]["set_id"], int(listing.iloc[i]["version"]))
    fr = frontier_frame(ms.provenance.get("frontier", []), ms.provenance.get("params"))
    if not fr.empty:
        chart(frontier_chart, fr, width="stretch")
    amap = pd.DataFrame(ms.provenance.get("aspect_map") or [])
    if not amap.empty:
        chart(aspect_map_chart, amap, width="stretch")
    st.subheader("Does the set keep up with what people write?")
    hist = cached_past_notes(s, dashboard.new_feedback_coverage, ms.set_id)
    if hist.empty:
        st.info("No measurement yet: a scheduled score job measures the coverage of new feedback, "
                "or run `libra metrics coverage`.")
    else:
        chart(new_coverage_chart, hist, width="stretch")
        st.caption(f"A schedule's `{NEW_FEEDBACK_COVERAGE}` alert rule fires below its threshold (shown above "
                   "when firing). An admin turns the uncovered remarks into a proposed next version on the "
                   "Metrics page.")


def _people_tab(s: Store) -> None:
    agree = cached_on_ratings(s, dashboard.annotator_agreement).dropna(subset=["alpha"])
    if agree.empty:
        st.info("No queue has runs rated by two or more people yet.")
    else:
        chart(charts.agreement_chart, agree, width="stretch")
    picked = _pick_set(s, "dash-set-people")
    if picked is not None:
        jh = cached_on_ratings(s, dashboard.judge_human_agreement, *picked)
        if not jh.empty:
            chart(charts.judge_human_chart, jh)
    bucket = cached_past_notes(s, dashboard.cost_bucket)
    cost = cached_past_notes(s, dashboard.judge_cost, bucket)
    if cost.empty:
        st.caption("No LLM calls recorded: everything so far ran on the offline backends, at no cost.")
    else:
        chart(charts.cost_chart, cost, bucket, width="stretch")
    hist = cached_past_notes(s, schedule.history, 50)
    if not hist.empty:
        st.markdown("**Scheduled job runs**")
        st.dataframe(hist.drop(columns=[c for c in ("detail", "owner") if c in hist]).fillna(""), hide_index=True)


def page() -> None:
    s = session.store()
    st.header("Dashboards")
    _alerts(s)
    # Only the open tab is computed (Streamlit draws every tab's content otherwise: the first chart
    # waited for all five), and the tab is in the address, so a link opens it.
    tabs = st.tabs(["Scores over time", "Runs × metrics", "PIPA profile", "Induction", "People & cost"],
                   key="tab", bind="query-params")
    for tab, fn in zip(tabs, (_scores_tab, _matrix_tab, _pipa_tab, _induction_tab, _people_tab), strict=True):
        if tab.open:
            with tab:
                fn(s)
