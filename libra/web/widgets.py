"""Small display helpers. Trace content is untrusted: it is only ever shown as text."""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st
from streamlit import dataframe_util

from libra.web.cache import MISSING, Kept
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


@st.cache_resource
def _specs() -> Kept:
    return Kept(MAX_SPECS)


MAX_SPECS = 64  # charts' specs kept across the app's sessions; a dashboard tab draws one to three
_ALTAIR_GLOBALS = threading.Lock()  # Altair's theme and data transformer are process-wide


def _fingerprint(df: pd.DataFrame) -> tuple[Any, ...] | None:
    try:
        rows = pd.util.hash_pandas_object(df, index=False).to_numpy()
    except TypeError:  # lists or arrays in a column (a PIPA profile's backends): hashed as their text
        as_text = {c: df[c].map(lambda v: repr(v.tolist() if hasattr(v, "tolist") else v))
                   for c in df.columns if df[c].dtype == object}
        try:
            rows = pd.util.hash_pandas_object(df.assign(**as_text), index=False).to_numpy()
        except TypeError:
            return None
    # in order: a chart may draw its rows as they come (sort=None)
    return (tuple(df.columns), tuple(map(str, df.dtypes)), hashlib.blake2b(rows.tobytes(), digest_size=16).digest())


def vega_lite(chart: Any) -> dict[str, Any]:
    """A chart's Vega-Lite spec as `st.altair_chart` would make it (Streamlit's theme applies in the
    browser, so Altair's own is off), less Altair's check of the spec against its schema, which the
    chart tests make (`tests/test_charts.py`)."""
    import altair as alt

    with _ALTAIR_GLOBALS, alt.theme.enable("none"), alt.data_transformers.enable("default", max_rows=None):
        spec: dict[str, Any] = chart.to_dict(validate=False)
    return spec


def chart(build: Callable[..., Any], df: pd.DataFrame, *args: Any, **st_kwargs: Any) -> Any:
    """Draw `build(df, *args)`, an Altair chart, from its spec kept for the same data and arguments.

    A page's charts are rebuilt on every rerun of it (any click), from answers kept in memory: on
    bench/app.py's store, building and converting the two charts of the scores tab took ~150 ms of
    the server's time per visit (py-spy of the app), all of it for the same spec as the last visit's.
    """
    given = (df, *args)  # a frame among the arguments (a chart of two) is keyed by its contents too
    found = [_fingerprint(a) if isinstance(a, pd.DataFrame) else a for a in given]
    unkeyable = any(f is None and isinstance(a, pd.DataFrame) for f, a in zip(found, given, strict=True))
    key: tuple[Any, ...] | None = None if unkeyable else (build.__module__, build.__qualname__, *found)
    try:
        hash(key)
    except TypeError:  # an argument that cannot be a key: built every time
        key = None
    specs = _specs()
    spec = specs.get(key) if key is not None else MISSING
    if spec is MISSING:
        spec = vega_lite(build(df, *args))
        # kept as Arrow, as Streamlit's own conversion hands them over: each draw then copies bytes
        # instead of turning records into a frame and the frame into Arrow again
        spec["datasets"] = {name: dataframe_util.convert_anything_to_arrow_bytes(rows)
                            for name, rows in spec.get("datasets", {}).items()}
        if key is not None:
            specs.put(key, spec)
    # Streamlit takes the data out of the spec it is given
    return st.vega_lite_chart(copy.deepcopy(spec), **st_kwargs)
