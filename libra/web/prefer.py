"""Which is better? Two runs of one task side by side; a choice, the reason, the steps on either side."""

from __future__ import annotations

import streamlit as st

from libra import preferences
from libra.web import session
from libra.web.timeline import header, timeline
from libra.web.widgets import md, show_text, step_label
from traces.annotation import queues
from traces.queries import get_run
from traces.tree import span_tree

CHOICE_LABEL = {"a": "A is better", "b": "B is better", "tie": "about the same"}


def page() -> None:
    s = session.store()
    user = session.user()
    st.header("Which is better?")
    queue_id: str | None = st.session_state.get("pair_queue")
    item: str | None = st.session_state.get("pair_item")
    pair = queues.pair(s, queue_id, item) if queue_id and item else None
    if pair is None or queue_id is None:
        st.info("Take the next pair from a pairwise queue on the Queues page.")
        return
    run_a, run_b = pair
    cols = st.columns(2)
    steps_of = {}
    for col, side, run_id in zip(cols, ("A", "B"), pair, strict=True):
        with col:
            run, steps = get_run(s, run_id)
            if run is None:
                st.warning(f"{md(run_id)} is not in the store.")
                return
            st.subheader(f"Run {side}")
            tree = span_tree(steps, run.get("metadata"))
            header(run, steps, tree, per_row=3)
            if side == "A" and run["task"]:
                show_text(run["task"], 300)
            timeline(steps, tree, None, prefix=f"{side.lower()}-step", run_key=run_id)
            steps_of[side] = steps
    if not user.can("annotate"):
        return
    with st.form(f"pref-form-{item}", clear_on_submit=True):
        choice = st.radio("which did better?", list(CHOICE_LABEL), format_func=CHOICE_LABEL.get, horizontal=True,
                          index=None, key=f"pref-choice-{item}")
        reason = st.text_area("why? (kept as a note on the run it speaks for, and read by induction)",
                              key=f"pref-reason-{item}")
        c = st.columns(2)
        sa = c[0].multiselect("steps of A it is about", list(range(len(steps_of["A"]))),
                              format_func=lambda i: step_label(steps_of["A"].iloc[i]), key=f"pref-sa-{item}")
        sb = c[1].multiselect("steps of B it is about", list(range(len(steps_of["B"]))),
                              format_func=lambda i: step_label(steps_of["B"].iloc[i]), key=f"pref-sb-{item}")
        if st.form_submit_button("Save and take the next pair", type="primary"):
            if choice is None:
                st.error("Choose A, B or about the same.")
                return
            preferences.record(s, run_a, run_b, user.username, choice, reason, steps_a=sa, steps_b=sb,
                               queue_id=queue_id)
            nxt = queues.next_run(s, queue_id, user.username)
            st.session_state["pair_item"] = nxt
            if nxt is None:
                st.session_state.pop("pair_queue", None)
                st.success("Saved. Nothing left for you in this queue.")
            else:
                st.rerun()
