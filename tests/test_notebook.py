"""The example notebook runs offline, top to bottom."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient


NB = Path(__file__).resolve().parents[1] / "examples" / "induce_offline.ipynb"


@pytest.mark.slow
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


def test_example_notebook_uses_the_library_facade_only():
    """A researcher's notebook goes through `libra.*`: no SQL, no reaching into the packages below it."""
    nb = nbformat.read(NB, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    imports = [ln.strip() for ln in code.splitlines() if ln.strip().startswith(("import ", "from "))]
    assert all(ln in ("import os, tempfile", "import libra", "import pandas as pd") or ln.startswith("from libra import")
               for ln in imports), imports
    for word in ("SELECT", ".df(", ".execute(", "autolibra", "metrics.", "traces."):
        assert word not in code
