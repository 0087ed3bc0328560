"""Metric review: definitions and examples linked to their feedback and steps; edit, merge, approve."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from autolibra.charts import frontier_chart
from autolibra.frontier import frontier_frame
from libra.approval import ApprovalRefused, approve_signed_in
from libra.web import session
from libra.web.update_view import update_section
from libra.web.widgets import chart, md, open_run
from metrics import sets
from metrics.reports.queries import agent_metric_summary, metric_verdicts
from traces.display import for_chart, visible_controls


def _open(run_id: str) -> None:
    open_run(run_id)


def default_set(listing: pd.DataFrame) -> int:
    """Which set the page opens on: the newest induced one (what someone just ran `libra induce` for),
    else the newest set of any kind. Rows as `sets.list_sets` gives them."""
    order = listing.assign(_i=range(len(listing))).sort_values(["created_at", "version"], kind="stable")
    induced = order[~order["set_id"].str.startswith("pipa-") & (order["backend"].fillna("") != "pipa")]
    return int((induced if len(induced) else order)["_i"].iloc[-1])


def _set_label(r: Any) -> str:
    return f"{r.name} · {r.set_id} v{r.version} · {r.status} · {r.metrics} metrics"


def _review_table(s: Any, ms: Any) -> pd.DataFrame:
    """One row per metric: what it is built from and how the judge has scored it so far."""
    counts = metric_verdicts(s, ms.set_id, ms.version).set_index("metric_id")
    by_agent = agent_metric_summary(s, ms.set_id, ms.version)
    # how far apart agents' scores are: a metric that gives everyone the same score ranks no one
    spread = by_agent.groupby("metric")["score"].agg(lambda v: float(v.max() - v.min())) if len(by_agent) else {}
    remarks = sum(int(m.metadata.get("aspects") or 0) for m in ms.metrics) or None
    rows = []
    for m in ms.metrics:
        c = counts.loc[m.metric_id] if m.metric_id in counts.index else None
        judged = 0 if c is None else int(c["did_well"] + c["did_wrong"])
        rows.append({"metric": m.name, "remarks": m.metadata.get("aspects"),
                     "praised": m.metadata.get("praised"), "criticised": m.metadata.get("criticised"),
                     "about": m.subject, "examples": len(m.good) + len(m.bad),
                     "share of remarks": None if not remarks or m.metadata.get("aspects") is None
                     else 100.0 * int(m.metadata["aspects"]) / remarks,
                     "runs scored": 0 if c is None else int(c["runs"]),
                     "agent spread": spread.get(m.name) if hasattr(spread, "get") else None,
                     "did well": None if c is None or not judged else 100.0 * float(c["did_well"]) / judged,
                     "note": "; ".join(n for n in (
                         "no verdicts yet" if c is None else "",
                         "one scenario" if m.metadata.get("scenario_specific") else "",
                         f"merged from {len(m.metadata['merged_from'])}" if m.metadata.get("merged_from") else "")
                         if n)})
    df = pd.DataFrame(rows)
    if (df["about"] == "run").all():  # the usual case says nothing; a set with agent metrics shows it
        df = df.drop(columns=["about"])
    return df.drop(columns=[c for c in df.columns if df[c].isna().all()])


def page() -> None:
    s = session.store()
    user = session.user()
    st.header("Metrics")
    listing = sets.list_sets(s)
    if listing.empty:
        st.info("No metric sets yet: run `libra induce`, or import one with `libra metrics import`.")
        return
    choices = [_set_label(r) for r in listing.itertuples()]
    pick = st.selectbox("metric set", choices, index=default_set(listing), key="ms-pick", format_func=visible_controls)
    row = listing.iloc[choices.index(pick)]
    ms = sets.load(s, row.set_id, int(row.version))
    st.caption(f"{md(ms.name)} · status {ms.status} · backend {md(row.backend if isinstance(row.backend, str) else '?')}")
    prov = ms.provenance
    if "heldout" in prov:
        c = st.columns(4)
        c[0].metric("held-out coverage", f"{prov['heldout']['coverage']:.2f}")
        c[1].metric("held-out redundancy", f"{prov['heldout']['redundancy']:.2f}")
        c[2].metric("induction coverage", f"{prov['train']['coverage']:.2f}")
        c[3].metric("induction redundancy", f"{prov['train']['redundancy']:.2f}")
        df = frontier_frame(prov.get("frontier", []), prov.get("params"))
        if not df.empty:
            with st.expander("coverage–redundancy frontier of the sets searched"):
                chart(frontier_chart, df, width="stretch")
    admin = user.can("admin")
    if admin and ms.status != "approved" and st.button("Approve this version", type="primary", key="ms-approve"):
        try:
            approve_signed_in(s, ms.set_id, ms.version, user.username)
        except ApprovalRefused as exc:
            st.error(str(exc))
        else:
            st.success("Approved: scheduled scoring will apply it.")
            st.rerun()
    if admin:
        update_section(s, ms, user)
    table = _review_table(s, ms)
    st.caption("Pick a metric to read its definition and the remarks behind it"
               + ("; rename, split, merge or retire it (each change is a new draft version)." if admin else "."))
    left, right = st.columns([3, 2])
    with left:
        event = st.dataframe(
            for_chart(table, [c for c in ("metric", "about", "note") if c in table]), hide_index=True, on_select="rerun",
            selection_mode="single-row", key=f"ms-table-{ms.set_id}-{ms.version}", width="stretch",
            height=min(38 + 35 * len(table), 640),
            column_config={
                "metric": st.column_config.TextColumn(width="medium"),
                "share of remarks": st.column_config.NumberColumn(
                    format="%.0f%%", help="share of the set's induction remarks this metric was built from"),
                "agent spread": st.column_config.NumberColumn(
                    format="%.2f", help="best agent's score minus the worst's; 0: it tells no agents apart"),
                "did well": st.column_config.ProgressColumn(
                    "did well", format="%.0f%%", min_value=0.0, max_value=100.0,
                    help="share of +1 among this version's +1 and −1 verdicts")})
    rows = event.selection.rows if event and event.selection else []
    m = ms.metrics[rows[0] if rows else 0]
    with right:
        _detail(s, ms, m, admin, user)


def _detail(s: Any, ms: Any, m: Any, admin: bool, user: Any) -> None:
    with st.container(border=True):
        st.subheader(md(m.name))
        st.caption(f"{md(m.metric_id)} · {md(m.metadata.get('aspects', '?'))} remarks · scope {md(m.scope)}")
        st.text(m.explanation)
        for title, side, exs in (("good behaviour", "good", m.good), ("bad behaviour", "bad", m.bad)):
            if exs:
                st.markdown(f"*{title}*")
            for j, e in enumerate(exs):
                c1, c2 = st.columns([4, 1])
                c1.text(f"“{e.text}”" + (f"  (steps {', '.join(map(str, e.steps))})" if e.steps else ""))
                if e.run_id and c2.button("open", key=f"ex-{m.metric_id}-{side}-{j}",
                                          on_click=_open, args=(e.run_id,)):
                    st.switch_page(st.session_state["pages"]["run"])
    if not admin:
        return
    t_rename, t_split, t_merge, t_retire = st.tabs(["rename / redefine", "split", "merge", "retire"])
    with t_rename:
        name = st.text_input("name", value=m.name, key=f"ed-name-{m.metric_id}")
        expl = st.text_area("definition", value=m.explanation, key=f"ed-expl-{m.metric_id}")
        if st.button("Save as a new version", key=f"ed-save-{m.metric_id}"):
            sets.edit_metric(s, ms, m.metric_id, name=name, explanation=expl, by=user.username)
            st.rerun()
    with t_split:
        options = [("good", i) for i in range(len(m.good))] + [("bad", i) for i in range(len(m.bad))]
        text = {("good", i): f"+ {e.text}" for i, e in enumerate(m.good)} | \
            {("bad", i): f"− {e.text}" for i, e in enumerate(m.bad)}
        moved = st.multiselect("examples that belong to a different behaviour", options,
                               format_func=lambda o: visible_controls(text[o][:120]), key=f"sp-{m.metric_id}")
        new_name = st.text_input("name of the new metric", key=f"sp-name-{m.metric_id}")
        if st.button("Split", key=f"sp-go-{m.metric_id}", disabled=not (moved and new_name)):
            sets.split_metric(s, ms, m.metric_id, moved, new_name, by=user.username)
            st.rerun()
    with t_merge:
        names = {x.metric_id: x.name for x in ms.metrics if x.metric_id != m.metric_id}
        others = st.multiselect("merge with", list(names), format_func=lambda i: visible_controls(names[i]),
                                key=f"mg-{m.metric_id}")
        merged_name = st.text_input("name of the merged metric", value=m.name, key=f"mg-name-{m.metric_id}")
        if st.button("Merge", key=f"mg-go-{m.metric_id}", disabled=not (others and merged_name)):
            sets.merge_metrics(s, ms, [m.metric_id, *others], merged_name, by=user.username)
            st.rerun()
    with t_retire:
        st.caption("The new version leaves this metric out; earlier versions and their verdicts keep it.")
        if st.button("Retire this metric", key=f"ed-del-{m.metric_id}"):
            sets.delete_metric(s, ms, m.metric_id, by=user.username)
            st.rerun()
