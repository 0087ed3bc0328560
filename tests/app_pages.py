"""What the tests of the app's pages share: a store to draw, and one page of the app on it."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from libra import accounts
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.store import Store

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
EVIL = '<script>alert("x")</script> **bold** [click](javascript:alert(1)) <img src=x onerror=alert(2)>'


def app_store(location: str, monkeypatch, demo_into) -> Store:
    """The demo store with a run of markup and script, four people in its four roles, the app pointed at it."""
    s = Store(location)
    demo_into(s, 60)
    w = BatchWriter(s, IngestSummary())
    w.add_run(Run(native_id="evil-1", format="libra", source="test", agent="evil-agent", task=EVIL,
                  steps=(Step(kind=StepKind.USER, content=EVIL),
                         Step(kind=StepKind.TOOL_RESULT, content="Error: " + EVIL, tool_name="t", is_error=True)),
                  globally_unique_id=True))
    w.flush()
    accounts.add_user(s, "ana", "correct horse", "annotator")
    accounts.add_user(s, "bo", "battery staple", "annotator")
    accounts.add_user(s, "root", "admin password", "admin")
    accounts.add_user(s, "vic", "viewer password", "viewer")
    monkeypatch.setenv("LIBRA_STORE", location)
    return s


def page_app(page: str, user: str, db: Store, run_id: str | None = None, queue_id: str | None = None) -> AppTest:
    script = f"""
import streamlit as st
from libra.web import {page} as page_module
st.session_state.setdefault("pages", {{}})
page_module.page()
"""
    at = AppTest.from_string(script, default_timeout=60)
    at.session_state["user"] = accounts.get_user(db, user)
    if run_id:
        at.session_state["run_id"] = run_id
        at.session_state["queue_id"] = queue_id
    return at
