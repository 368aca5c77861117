"""docs/examples/nc_sids.ipynb runs top to bottom on a real Jupyter kernel of this environment (nbclient), with the embedded engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "examples" / "nc_sids.ipynb"


@pytest.mark.stan
def test_the_nc_notebook_runs_on_a_real_kernel(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    spec = tmp_path / "kernels" / "surrogate-test"  # a kernel of this very Python (the project's venv)
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(__import__("json").dumps(
        {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "surrogate test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))  # where Jupyter looks for kernels/surrogate-test
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the tests' Agg: the kernel picks its own inline backend
    client = NotebookClient(nb, timeout=900, kernel_name="surrogate-test", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))
               for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}  # fmt: skip
    text = "\n".join(outputs.values())
    assert "areas domain of 100 locations, 231 rook neighbour pairs" in text
    assert "Surrogate(vae of bym2" in text and "ok" in text and "areas_surrogate.stan (bym2 prior)" in text
    assert "'Map'" in text and (tmp_path / "nc-sids-fit" / "report.html").is_file()
    assert any(o.get("data", {}).get("image/png") for cell in nb.cells for o in cell.get("outputs", []) if cell.cell_type == "code")
    assert not any(o.get("output_type") == "error" for cell in nb.cells for o in cell.get("outputs", []))
    widgets = [o for cell in nb.cells for o in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the chain bars render as notebook widgets (tqdm.auto)"
