"""The Streamlit app, driven with streamlit.testing."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from traces.demo import build_demo
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.store import Store

APP = str(Path(__file__).resolve().parents[1] / "app.py")
EVIL = '<script>alert("x")</script> **bold** [click](javascript:alert(1)) <img src=x onerror=alert(2)>'


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    db = tmp_path / "app.duckdb"
    s = Store(db)
    build_demo(s, n=60)
    summary = IngestSummary()
    w = BatchWriter(s, summary)
    w.add_run(Run(native_id="evil-1", format="libra", source="test", agent="evil-agent", task=EVIL,
                  steps=(Step(kind=StepKind.USER, content=EVIL),
                         Step(kind=StepKind.TOOL_RESULT, content="Error: " + EVIL, tool_name="t", is_error=True)),
                  globally_unique_id=True))
    w.flush()
    monkeypatch.setenv("LIBRA_DB", str(db))
    return db


def test_browser_lists_runs_with_paging(app_db):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    df = at.dataframe[0].value
    assert len(df) == 50 and {"run_id", "agent", "outcome", "feedback"} <= set(df.columns)
    assert "61 runs" in at.number_input[0].label
    at.number_input[0].set_value(2).run()
    assert len(at.dataframe[0].value) == 11


def test_filters_narrow_the_list(app_db):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.sidebar.multiselect[1].select("travel-concierge@v2").run()
    df = at.dataframe[0].value
    assert len(df) > 0 and set(df["agent"]) == {"travel-concierge@v2"}


def test_run_view_shows_trace_content_as_text(app_db):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_id"] = "libra:evil-1"
    at.run()
    assert not at.exception
    codes = [c.value for c in at.code]
    assert EVIL in codes and ("Error: " + EVIL) in codes
    # nothing from the trace reached markdown, where it could render as HTML or links
    assert all(EVIL not in m.value for m in at.markdown)
    assert any("error" in e.value for e in at.error)


def test_run_view_shows_feedback_anchored_to_steps(app_db):
    s = Store(app_db)
    run_id, steps = s.execute("SELECT run_id, steps FROM feedback WHERE len(steps) > 0 LIMIT 1")[0]
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_id"] = run_id
    at.run()
    assert any(f"on steps {list(steps)}" in t.value for t in at.text)
