"""Metric review: definitions and examples linked to their feedback and steps; edit, merge, approve."""

from __future__ import annotations

import streamlit as st

from autolibra.charts import frontier_chart
from autolibra.frontier import frontier_frame
from libra.approval import ApprovalRefused, approve_signed_in
from libra.web import session
from libra.web.widgets import md, open_run
from metrics import sets


def _open(run_id: str) -> None:
    open_run(run_id)


def page() -> None:
    s = session.store()
    user = session.user()
    st.header("Metrics")
    listing = sets.list_sets(s)
    if listing.empty:
        st.info("No metric sets yet: run `libra induce`, or import one with `libra metrics import`.")
        return
    choices = [f"{r.set_id} v{r.version} · {r.status} · {r.metrics} metrics" for r in listing.itertuples()]
    pick = st.selectbox("metric set", choices, index=len(choices) - 1, key="ms-pick")
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
            st.altair_chart(frontier_chart(df), width="stretch")
    admin = user.can("admin")
    if admin and ms.status != "approved" and st.button("Approve this version", type="primary", key="ms-approve"):
        try:
            approve_signed_in(s, ms.set_id, ms.version, user.username)
        except ApprovalRefused as exc:
            st.error(str(exc))
        else:
            st.success("Approved: scheduled scoring will apply it.")
            st.rerun()
    if admin and len(ms.metrics) > 1:
        with st.expander("merge metrics"):
            names = {m.metric_id: m.name for m in ms.metrics}
            pickm = st.multiselect("metrics to merge", list(names), format_func=lambda i: names[i], key="ms-merge")
            new_name = st.text_input("name of the merged metric", key="ms-merge-name")
            if st.button("Merge", key="ms-merge-go") and len(pickm) >= 2 and new_name:
                sets.merge_metrics(s, ms, pickm, new_name, by=user.username)
                st.rerun()
    for m in ms.metrics:
        with st.container(border=True):
            st.subheader(md(m.name))
            st.caption(f"{md(m.metric_id)} · {md(m.metadata.get('aspects', '?'))} remarks · scope {md(m.scope)}")
            st.text(m.explanation)
            for title, exs in (("good behaviour", m.good), ("bad behaviour", m.bad)):
                if exs:
                    st.markdown(f"*{title}*")
                for j, e in enumerate(exs):
                    c1, c2 = st.columns([5, 1])
                    c1.text(f"“{e.text}”" + (f"  (steps {list(e.steps)})" if e.steps else ""))
                    if e.run_id and c2.button("open run", key=f"ex-{m.metric_id}-{title}-{j}",
                                              on_click=_open, args=(e.run_id,)):
                        st.switch_page(st.session_state["pages"]["run"])
            if admin:
                with st.expander("edit"):
                    name = st.text_input("name", value=m.name, key=f"ed-name-{m.metric_id}")
                    expl = st.text_area("explanation", value=m.explanation, key=f"ed-expl-{m.metric_id}")
                    c1, c2 = st.columns(2)
                    if c1.button("Save as a new version", key=f"ed-save-{m.metric_id}"):
                        sets.edit_metric(s, ms, m.metric_id, name=name, explanation=expl, by=user.username)
                        st.rerun()
                    if c2.button("Delete metric", key=f"ed-del-{m.metric_id}"):
                        sets.delete_metric(s, ms, m.metric_id, by=user.username)
                        st.rerun()
