"""Installable as users expect (issue 19 §7): the core needs none of the extras.

A host that only ingests, receives OTLP and checks the store installs the core
dependencies; these commands must run with torch, transformers, scikit-learn,
scipy, streamlit, altair and ray impossible to import.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("sklearn", "torch", "transformers", "sentence_transformers", "hdbscan", "scipy", "streamlit",
               "altair", "ray")

BLOCKER = f"""
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {EXTRAS_ONLY!r}:
            raise ImportError(f"{{name}} is an extra, not the core")
sys.meta_path.insert(0, Blocked())
from libra.cli.main import main
sys.argv = ["libra", *sys.argv[1:]]
main()
"""


def test_the_distribution_and_its_extras():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] != "libra"  # taken on PyPI by another project
    core = " ".join(project["dependencies"]).lower()
    for heavy in ("torch", "streamlit", "ray", "scikit-learn", "sentence-transformers", "transformers", "altair"):
        assert heavy not in core, heavy
    extras = project["optional-dependencies"]
    assert {"ml", "app", "scale", "all"} <= set(extras)
    assert "py-modules" not in meta.get("tool", {}).get("setuptools", {})  # no top-level `app` module


@pytest.mark.parametrize("args", [
    ["ingest", "{data}", "--db", "{db}", "-q"], ["stats", "--db", "{db}"], ["check", "--db", "{db}"],
    ["export", "{out}", "--db", "{db}"], ["quarantine", "--db", "{db}"], ["serve", "--help"], ["--help"],
], ids=lambda a: a[0])
def test_core_commands_run_without_the_extras(tmp_path, args):
    data = tmp_path / "spans.jsonl"
    data.write_text('{"trace_id": "' + "a" * 32 + '", "span_id": "' + "b" * 16 + '", "name": "chat m", '
                    '"start_time": "2026-01-01T00:00:00Z", "attributes": {"gen_ai.operation.name": "chat"}}\n')
    db = tmp_path / "core.duckdb"
    if args[0] != "ingest":
        subprocess.run([sys.executable, "-c", BLOCKER, "ingest", str(data), "--db", str(db), "-q"], check=True,
                       capture_output=True)
    argv = [a.format(data=data, db=db, out=tmp_path / "out") for a in args]
    r = subprocess.run([sys.executable, "-c", BLOCKER, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
