"""The example notebook runs offline, top to bottom."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
NB = Path(__file__).resolve().parents[1] / "examples" / "induce_offline.ipynb"


def test_example_notebook_executes(tmp_path, artifacts):
    nb = nbformat.read(NB, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(NB.parent.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    def is_chart(o):
        data = o.get("data", {})
        return any(k.startswith("application/vnd.vegalite") for k in data) or "vegaEmbed" in data.get("text/html", "")

    charts = [o for c in nb.cells for o in c.get("outputs", []) if is_chart(o)]
    assert len(charts) >= 3
    nbformat.write(nb, artifacts / "induce_offline.executed.ipynb")
