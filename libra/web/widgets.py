"""Small display helpers. Trace content is untrusted: it is only ever shown as text."""

from __future__ import annotations

from typing import Any

import streamlit as st

from traces.display import markdown_literal, visible_controls

KIND_LABEL = {"user_message": "USER", "agent_message": "AGENT", "thought": "THOUGHT",
              "tool_call": "TOOL CALL", "tool_result": "TOOL RESULT", "observation": "OBSERVATION",
              "system": "SYSTEM"}
# a verdict as the app words it everywhere: the runs table, the run view, the evidence
VERDICT_TEXT = {1: "+1 did well", -1: "−1 did wrong", 0: "n/a (not raised)"}
md = markdown_literal  # every page's short name for it


def show_text(text: str | None, limit: int = 1500, key: str | None = None) -> None:
    """Verbatim text in a code block (no HTML, no markdown); long text collapsed."""
    text = visible_controls(text)
    if len(text) <= limit:
        st.code(text, language=None, wrap_lines=True)
        return
    st.code(text[:limit] + " …", language=None, wrap_lines=True)
    with st.expander(f"show all {len(text):,} characters"):
        st.code(text, language=None, wrap_lines=True)


def page_script(html: str) -> None:
    """Our own script (never data) run on the app's page, from a frame of its origin that takes no space.

    `st.iframe`, not `components.v1.html`: Streamlit deprecated that for removal after 2026-06-01, and
    sign-in cookies and the keyboard shortcuts would stop working with the release that drops it.
    One pixel high: sized to its content (the default), a frame holding only a script was drawn
    150 pixels high (Streamlit 1.67 falls back to the browser's default for an empty body), a blank
    band above the run's title. Streamlit refuses a height of 0.
    """
    st.iframe(html, height=1)


def step_label(step: Any) -> str:  # a row of the steps frame
    kind = KIND_LABEL.get(step.kind, str(step.kind).upper())
    parts = [f"{int(step.idx)}. {kind}"]
    for name in (step.actor, step.tool_name):  # spaces around a name would only pad the label
        if isinstance(name, str) and name.strip():
            parts.append(name.strip())
    return " · ".join(parts)


def open_run(run_id: str, queue_id: str | None = None) -> None:
    st.session_state["run_id"] = run_id
    st.session_state["queue_id"] = queue_id


def p_text(p: Any) -> str:
    """A p-value as people write one: three decimals, "< 0.001" below that, blank when there is none."""
    if p is None or (isinstance(p, float) and p != p):
        return ""
    return "< 0.001" if float(p) < 0.001 else f"{float(p):.3f}"
