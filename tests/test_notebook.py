"""The quickstart notebook executes top to bottom on CPU with small settings."""
import os
from pathlib import Path

import nbformat
import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SCL_NB_GENERATIONS", "30")
    monkeypatch.setenv("SCL_NB_SEEDS", "16")
    nb = nbformat.read(NB, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB.parent)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2          # the phase diagram and the curves, inline
