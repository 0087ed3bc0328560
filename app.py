"""Libra's Streamlit app: a read-only run browser over the store.

Start it with `libra app` or `make demo`. Every query goes through the
library (`traces.queries`); the app holds the store only while it reads.
Trace content is untrusted, so it is only ever shown as text.
"""

from __future__ import annotations

import json
import os

import streamlit as st

from traces.queries import RunFilter, count_runs, facets, get_run, list_runs
from traces.store import Store, default_db_path

PAGE = 50
KIND_LABEL = {"user_message": "USER", "agent_message": "AGENT", "thought": "THOUGHT",
              "tool_call": "TOOL CALL", "tool_result": "TOOL RESULT", "observation": "OBSERVATION",
              "system": "SYSTEM"}


def store() -> Store:
    return Store(os.environ.get("LIBRA_DB") or default_db_path())


def show_text(text: str, limit: int = 1500) -> None:
    """Untrusted text, shown verbatim; long content collapsed."""
    text = text or ""
    if len(text) <= limit:
        st.code(text, language=None, wrap_lines=True)
    else:
        st.code(text[:limit] + " …", language=None, wrap_lines=True)
        with st.expander(f"show all {len(text):,} characters"):
            st.code(text, language=None, wrap_lines=True)


def run_view(s: Store, run_id: str) -> None:
    run, steps, fb = get_run(s, run_id)
    if run is None:
        st.warning("run not found")
        return
    st.subheader(f"Run {run_id}")
    cols = st.columns(4)
    cols[0].metric("agent", run["agent"] or "?")
    cols[1].metric("outcome", run["outcome"] or "?")
    cols[2].metric("reward", "" if run["reward"] is None else f"{run['reward']:.2f}")
    cols[3].metric("steps", run["n_steps"])
    st.caption(f"format {run['format']} · source {run['source']}")
    if run["task"]:
        st.markdown("**Task**")
        show_text(run["task"], 600)
    if run["gold"]:
        with st.expander("gold labels"):
            st.json(json.loads(run["gold"]), expanded=False)
    st.markdown("**Timeline**")
    for s_ in steps.itertuples():
        label = KIND_LABEL.get(s_.kind, s_.kind)
        who = f" · {s_.actor}" if isinstance(s_.actor, str) else ""
        tool = f" · {s_.tool_name}" if isinstance(s_.tool_name, str) else ""
        head = f"{s_.idx}. {label}{who}{tool}"
        if s_.is_error:
            st.error(head + " · error", icon="⚠️")
        else:
            st.text(head)
        if isinstance(s_.tool_args, str) and s_.tool_args not in ("null", ""):
            st.code(s_.tool_args, language="json", wrap_lines=True)
        if s_.content:
            show_text(s_.content)
    st.markdown(f"**Feedback ({len(fb)})**")
    for f in fb.itertuples():
        steps_txt = f" on steps {[int(i) for i in f.steps]}" if f.steps is not None and len(f.steps) else ""
        rating = f" · rating {f.rating:g}" if f.rating == f.rating and f.rating is not None else ""
        st.text(f"{f.author}{steps_txt}{rating}")
        show_text(f.text, 800)


def main() -> None:
    st.set_page_config(page_title="Libra", layout="wide")
    s = store()
    st.title("Libra · runs")
    f = facets(s)
    with st.sidebar:
        st.caption(f"store: {s.path}")
        flt = RunFilter(
            formats=tuple(st.multiselect("format", f["format"])),
            agents=tuple(st.multiselect("agent", f["agent"])),
            outcomes=tuple(st.multiselect("outcome", f["outcome"])),
            text=st.text_input("search task or id") or None,
        )
    total = count_runs(s, flt)
    pages = max(1, (total + PAGE - 1) // PAGE)
    page = st.number_input(f"page (of {pages}, {total:,} runs)", 1, pages, 1)
    df = list_runs(s, flt, PAGE, (page - 1) * PAGE)
    event = st.dataframe(df, hide_index=True, on_select="rerun", selection_mode="single-row",
                         width="stretch", key="runs")
    rows = event.selection.rows if event and event.selection else []
    if rows:
        st.session_state["run_id"] = df.iloc[rows[0]]["run_id"]
    if st.session_state.get("run_id"):
        run_view(s, st.session_state["run_id"])


main()
