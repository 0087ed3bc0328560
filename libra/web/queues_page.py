"""Annotation queues: the next run for me, progress, and (for admins) creation and agreement."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from libra.web import session
from libra.accounts import User
from libra import preferences
from libra.web.widgets import md, open_run
from metrics.agreement import queue_agreement
from traces.annotation import queues
from traces.display import for_chart
from traces.queries import RunFilter, facets
from traces.store import Store


def _create(s: Store, user: User) -> None:
    with st.expander("New queue", expanded=False):
        f = facets(s)
        with st.form("new-queue"):
            name = st.text_input("name", key="q-name")
            agents = st.multiselect("agents", f["agent"], key="q-agents")
            formats = st.multiselect("source formats", f["format"], key="q-formats")
            outcomes = st.multiselect("outcomes", f["outcome"], key="q-outcomes")
            sample = st.number_input("random sample of runs (0 = all that match)", 0, 100_000, 0, key="q-sample")
            k = st.number_input("annotators per run", 1, 10, 2, key="q-k")
            ok = st.form_submit_button("Create queue")
        if ok:
            try:
                qid = queues.create(s, name or "queue", user.username, int(k),
                                    RunFilter(formats=tuple(formats), agents=tuple(agents), outcomes=tuple(outcomes)),
                                    sample=int(sample) or None)
                st.success(f"Queue {qid} created.")
            except ValueError as exc:
                st.error(str(exc))


def page() -> None:
    s = session.store()
    user = session.user()
    st.header("Queues")
    if user.can("admin"):
        _create(s, user)
    qs = queues.list_queues(s)
    if qs.empty:
        st.info("No queues yet." + (" Create one above." if user.can("admin") else " An admin creates them."))
        return
    for q in qs.itertuples():
        with st.container(border=True):
            prog = queues.progress(s, q.queue_id, user.username)
            st.subheader(md(q.name))
            what = "pairs of runs side by side" if getattr(q, "kind", "runs") == "pairs" else "runs"
            st.caption(f"{q.runs} {what} × {q.k} annotators · created by {md(q.created_by)}")
            st.progress(min(1.0, prog["done"] / max(prog["slots"], 1)),
                        text=f"overall {prog['done']} of {prog['slots']}")
            if user.can("annotate"):  # a viewer has nothing "left for them" to do
                mine_total = prog["mine_done"] + prog["mine_available"]
                st.progress(min(1.0, prog["mine_done"] / max(mine_total, 1)),
                            text=f"you: {prog['mine_done']} done, {prog['mine_available']} left for you")
            if user.can("annotate") and st.button("Next run for me", key=f"next-{q.queue_id}", type="primary"):
                nxt = queues.next_run(s, q.queue_id, user.username)
                if nxt is None:
                    st.success("Nothing left for you in this queue.")
                elif getattr(q, "kind", "runs") == "pairs":  # two runs side by side, not one
                    st.session_state["pair_queue"], st.session_state["pair_item"] = q.queue_id, nxt
                    st.switch_page(st.session_state["pages"]["prefer"])
                else:
                    open_run(nxt, q.queue_id)
                    st.switch_page(st.session_state["pages"]["run"])
            if user.can("admin") and getattr(q, "kind", "runs") == "pairs":
                pa = preferences.agreement(s, queue_id=q.queue_id)
                st.caption(f"agreement on pairs two or more people chose between: {pa.comparisons} person-pairs "
                           f"agree {p_share(pa.rate)} (Krippendorff's alpha, nominal: {p_share(pa.alpha)}) "
                           f"over {pa.pairs} pairs")
            elif user.can("admin"):
                a = queue_agreement(s, q.queue_id)
                alpha = "n/a" if a.alpha is None else f"{a.alpha:.3f}"
                st.caption(f"inter-annotator agreement (Krippendorff's alpha, {a.level}, on ratings): {alpha} "
                           f"over {a.runs_with_overlap} runs rated by two or more people")
            _who_said_what(s, q.queue_id, q.k)


def p_share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _who_said_what(s: Store, queue_id: str, k: int) -> None:
    """Each person's word on the same runs, side by side: where people differ is where to look."""
    said = queues.who_said_what(s, queue_id)
    said = said[said["status"] == "done"]
    if said.empty:
        return
    with st.expander(f"who said what ({said['run_id'].nunique()} runs done"
                     + (f", {int((said.groupby('run_id').size() > 1).sum())} by two or more people)" if k > 1 else ")")):
        def cell(r: pd.Series) -> str:
            rating = "" if pd.isna(r["rating"]) else f"rating {r['rating']:g} · "
            return f"{rating}{r['notes']} note{'s' if r['notes'] != 1 else ''}: {r['said'][:160]}" if r["notes"] \
                else "done, no note"
        table = said.assign(cell=said.apply(cell, axis=1)).pivot_table(
            index="run_id", columns="username", values="cell", aggfunc="first", sort=False).reset_index()
        st.dataframe(for_chart(table.fillna(""), table.columns), hide_index=True, width="stretch")
