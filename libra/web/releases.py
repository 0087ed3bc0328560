"""Compare releases: is B better than A, on which metrics, and which runs show it."""

from __future__ import annotations

import streamlit as st

from libra.comparing import NoScores, compare, compare_report, releases, scored_sets
from libra.web import session
from libra.web.widgets import chart, md
from metrics.reports.release import diff_chart
from traces.display import visible_controls


def page() -> None:
    s = session.store()
    st.header("Compare releases")
    agents = releases(s)
    if len(agents) < 2:
        st.info("Two agents or releases with runs are needed; ingest runs of both.")
        return
    qa, qb = st.query_params.get("ra"), st.query_params.get("rb")
    cols = st.columns([2, 2, 1])
    a = cols[0].selectbox("release A (baseline)", agents, index=agents.index(qa) if qa in agents else 0,
                          key="rel-a", format_func=visible_controls)
    b = cols[1].selectbox("release B", agents, index=agents.index(qb) if qb in agents else min(1, len(agents) - 1),
                          key="rel-b", format_func=visible_controls)
    alpha = cols[2].selectbox("error rate (Holm)", [0.01, 0.05, 0.1], index=1, key="rel-alpha")
    if a == b:
        st.info("Choose two different releases.")
        return
    st.query_params["ra"], st.query_params["rb"] = a, b  # a link to this comparison
    options = scored_sets(s, a, b)
    if options.empty:
        st.info("No approved metric set has scored runs of both; approve one and run `libra score`.")
        return
    labels = [f"{r.name} · {r.set_id} v{r.version} · {r.runs_a} / {r.runs_b} runs" for r in options.itertuples()]
    i = labels.index(st.selectbox("metric set", labels, key="rel-set", format_func=visible_controls))
    try:
        c = compare(s, a, b, set_id=str(options.iloc[i]["set_id"]), version=int(options.iloc[i]["version"]),
                    alpha=float(alpha))
    except NoScores as exc:
        st.info(str(exc))
        return
    better, worse = c.improved, c.regressed
    m = st.columns(3)
    m[0].metric("better", len(better))
    m[1].metric("worse", len(worse))
    m[2].metric("no clear change", len(c.metrics) - len(better) - len(worse))
    table = c.table()
    chart(diff_chart, table, width="stretch")
    st.dataframe(table.drop(columns=["metric_id"]).assign(metric=table["metric"].map(visible_controls)),
                 hide_index=True, width="stretch",
                 column_config={c_: st.column_config.NumberColumn(format="%.3f")
                                for c_ in ("score_a", "score_b", "diff", "lo", "hi", "p", "p_adjusted")})
    shown = [x for x in c.metrics if x.examples]
    if shown:
        st.subheader("Runs that show each change")
        for x in shown:
            st.markdown(f"**{md(x.name)}**: {md(x.verdict)}")
            for e in x.examples:
                label = (f"A {md(e.run_a)} ({e.rate_a:.0%}) beside B {md(e.run_b)} ({e.rate_b:.0%})"
                         + (" · same task" if e.task else ""))
                runs_page = st.session_state.get("pages", {}).get("compare")
                if runs_page is None:  # the page alone (tests, embedding): the pair as text
                    st.markdown(label)
                else:
                    st.page_link(runs_page, label=label, query_params={"a": e.run_a, "b": e.run_b},
                                 icon=":material/compare:")
    if not c.pipa.empty:
        st.subheader("PIPA stages")
        st.dataframe(c.pipa, hide_index=True)
    if not c.proactive.empty:
        st.subheader("Proactivity")
        st.dataframe(c.proactive, hide_index=True)
    d = st.columns(2)
    d[0].download_button("Markdown report (for a pull request)", compare_report(c, "markdown"),
                         file_name="comparison.md", mime="text/markdown")
    d[1].download_button("HTML report", compare_report(c, "html"), file_name="comparison.html", mime="text/html")
