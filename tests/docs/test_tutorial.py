"""The tutorial notebook runs top to bottom on a fresh kernel (as CI runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[2] / "docs" / "tutorial.ipynb"


@pytest.mark.slow
def test_the_tutorial_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' for nbformat")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' for nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "pos_embed" in text and "1.0" in text  # the routes and the effects came out
    assert any("image/svg+xml" in o.get("data", {}) for o in outputs)  # the circuit was drawn
