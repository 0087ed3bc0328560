"""Two runs side by side: the same task done twice (two agents, two releases, a retry), step by step."""

from __future__ import annotations

import streamlit as st

from libra.web import session
from libra.web.timeline import header, timeline
from libra.web.widgets import md, show_text
from traces.display import visible_controls
from traces.queries import get_run, same_task_runs
from traces.tree import span_tree


def page() -> None:
    s = session.store()
    st.header("Compare two runs")
    left_id = st.query_params.get("a") or st.session_state.get("run_id")
    if not left_id:
        st.info("Open a run and choose “compare with another run”, or give two run ids below.")
    a = st.text_input("run A", value=left_id or "", key="cmp-a")
    others = same_task_runs(s, a) if a else []
    b_default = st.query_params.get("b") or (others[0] if others else "")
    if others:
        st.caption(f"{len(others)} other runs of the same task; the first is shown as run B")
    b = st.selectbox("run B", others, index=others.index(b_default) if b_default in others else 0, key="cmp-b",
                     format_func=visible_controls) if others else st.text_input("run B", value=b_default, key="cmp-b-text")
    if not (a and b):
        return
    st.query_params["a"], st.query_params["b"] = a, b  # a link to this comparison
    cols = st.columns(2)
    for col, run_id in zip(cols, (a, b), strict=True):
        with col:
            run, steps = get_run(s, run_id)
            if run is None:
                st.warning(f"{md(run_id)} is not in the store.")
                continue
            st.subheader(md(run_id))
            tree = span_tree(steps, run.get("metadata"))
            header(run, steps, tree, per_row=4)
            if run["task"]:
                show_text(run["task"], 300)
            timeline(steps, tree, None, prefix="a-step" if run_id == a else "b-step", run_key=run_id)
