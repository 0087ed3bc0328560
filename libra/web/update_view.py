"""The proposed next version of a metric set, from feedback written since: a diff an admin edits and approves."""

from __future__ import annotations

from typing import Any

import streamlit as st

from libra.approval import ApprovalRefused
from libra.web.widgets import md
from metrics import sets

ACTION_ICON = {"add": ":material/add_circle:", "merge": ":material/merge:", "retire": ":material/archive:"}


def update_section(s: Any, ms: Any, user: Any) -> None:
    """For an admin on an approved induced set: propose, review the diff, edit, approve."""
    if ms.status != "approved" or not sets.is_induced(ms):
        return
    # induction's models load on the first proposal, not with the app
    from libra.living import approve_update, propose_update

    key = f"proposal-{ms.set_id}-{ms.version}"
    with st.expander("Update from new feedback", expanded=key in st.session_state):
        st.caption("Remarks written since this set was made: what it no longer covers becomes metrics to add; "
                   "near-identical metrics are proposed for merging and metrics no new remark is about for "
                   "retiring. Nothing changes until you approve.")
        if st.button("Propose an update", key=f"{key}-go"):
            with st.spinner("Grounding new remarks, clustering what is uncovered, fitting judges…"):
                try:
                    st.session_state[key] = propose_update(s, ms.set_id, ms.version)
                except LookupError as exc:
                    st.info(str(exc))
        p = st.session_state.get(key)
        if p is None:
            return
        c = st.columns(4)
        c[0].metric("new remarks", p.before.aspects)
        c[1].metric("covered now", f"{p.before.coverage:.2f}")
        c[2].metric("covered with every change", f"{p.after.coverage:.2f}",
                    delta=f"{p.after.coverage - p.before.coverage:+.2f}")
        c[3].metric("redundancy with every change", f"{p.after.redundancy:.2f}",
                    delta=f"{p.after.redundancy - p.before.redundancy:+.2f}", delta_color="inverse")
        if not p.changes:
            st.success("The set covers the new feedback: no change proposed.")
            return
        accepted, edits = [], {}
        for i, ch in enumerate(p.changes):
            with st.container(border=True):
                if st.checkbox(f"{md(ch.title)}", value=ch.action == "add", key=f"{key}-{i}-take"):
                    accepted.append(i)
                st.caption(f"{ACTION_ICON.get(ch.action, '')} coverage of new feedback {ch.coverage_delta:+.3f}, "
                           f"redundancy {ch.redundancy_delta:+.3f}")
                if ch.metric is not None:
                    name = st.text_input("name", ch.metric.name, key=f"{key}-{i}-name")
                    explanation = st.text_area("definition", ch.metric.explanation, key=f"{key}-{i}-expl")
                    if (name, explanation) != (ch.metric.name, ch.metric.explanation):
                        edits[ch.metric.metric_id] = {"name": name, "explanation": explanation}
                for r in ch.remarks[:5]:
                    st.text(f"“{r}”")
        if st.button(f"Approve v{ms.version + 1} with {len(accepted)} changes", type="primary", key=f"{key}-approve",
                     disabled=not accepted):
            try:
                saved = approve_update(s, p, user.username, accepted=accepted, edits=edits)
            except ApprovalRefused as exc:
                st.error(str(exc))
            else:
                del st.session_state[key]
                st.success(f"v{saved.version} approved; only its new and merged metrics were scored again.")
