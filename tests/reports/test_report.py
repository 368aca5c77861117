import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from surrogate.cli import main
from surrogate.errors import SurrogateError
from surrogate.reports.fit import build_report
from surrogate.reports.render import fmt

pytestmark = pytest.mark.stan
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(inpainted, small_cvae, tmp_path_factory):
    fit_dir = tmp_path_factory.mktemp("fit") / "inpaint"
    shutil.copytree(small_cvae / "inpaint0", fit_dir)
    result = CliRunner().invoke(main, ["report", str(fit_dir)])
    assert result.exit_code == 0, result.output
    return fit_dir


def test_html_is_well_formed_and_self_contained(report):
    text = (report / "report.html").read_text()
    root = ET.fromstring(text.split("\n", 1)[1].replace("<!DOCTYPE html>", ""))  # XHTML parses as XML
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    images = root.findall(".//h:img", ns)
    assert len(images) >= 5 and all(img.get("src").startswith("data:image/png;base64,") for img in images)
    assert "http://" not in text.replace("http://www.w3.org/1999/xhtml", "") and "https://" not in text
    headings = [h.text for h in root.findall(".//h:h2", ns)]
    for section in ("Result", "Warnings", "What was run", "Sampler diagnostics per chain", "Posterior summary"):
        assert section in headings


def test_html_contains_the_summary_values(report):
    text = (report / "report.html").read_text()
    summary = pd.read_csv(report / "summary.csv", index_col=0)
    assert len(summary) > 300
    for name in ("theta[z1]", "class_probs[3]", "log_lik", summary.index[-1]):
        for column in ("mean", "sd", "hdi_3%", "ess_bulk", "r_hat"):
            assert f"<td>{fmt(summary.loc[name, column])}</td>" in text, (name, column)
        assert f"<td>{name}</td>" in text


def test_markdown_and_figures(report):
    md = (report / "report.md").read_text()
    assert "## Sampler diagnostics per chain" in md and "| chain | divergences | treedepth hits | E-BFMI" in md
    for name in ("rank_latent.png", "trace_latent.png", "energy.png"):
        assert f"]({name})" in md and (report / name).stat().st_size > 1000
    assert "| predicted class |" in md


def test_report_needs_a_fit_directory(tmp_path):
    with pytest.raises(SurrogateError, match="is not a fit folder: it needs posterior.nc and diagnostics.json"):
        build_report(tmp_path)


def test_report_renders_in_chromium(report):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); the screenshot check needs it")
    from PIL import Image

    out = report / "shot.png"
    subprocess.run([str(ROOT / "scripts" / "screenshot_report.sh"), str(report / "report.html"), str(out), "1000,1600"], check=True, timeout=120)
    pixels = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1000)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # text and figures, not a blank page


def test_report_reads_the_fit_kind_from_the_folder(report, tmp_path):
    import json

    from surrogate.inference import import_arviz

    assert json.loads((report / "diagnostics.json").read_text())["kind"] == "inpaint"
    assert import_arviz().from_netcdf(report / "posterior.nc").attrs["fit_kind"] == "inpaint"
    import_arviz().from_dict(posterior={"z": np.zeros((1, 5, 2))}).to_netcdf(str(tmp_path / "posterior.nc"))
    (tmp_path / "diagnostics.json").write_text('{"max_rhat": 1.0}')
    with pytest.raises(SurrogateError, match=r"records fit kind None, expected one of inpaint, pieces, gp"):
        build_report(tmp_path)
