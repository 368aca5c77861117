"""A shareable report of a training run: its settings, learning curves and evaluations.

A report is data: a list of sections, each a heading with paragraphs, tables and
figures; one renderer writes it as self-contained XHTML (figures embedded) and one as
Markdown (figures linked). The evaluations are the ``evaluate.json`` files that
``surrogate evaluate RUN_DIR`` wrote into the run directory or its subfolders.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from surrogate.fileio import write_text
from surrogate.report import CSS, html_table, md_table

RUN_FIGURES = {"learning_curves.png": "Learning curves", "samples.png": "Decoded prior draws", "latent.png": "Latent space",
               "check_prior.png": "Decoded vs exact prior draws"}  # fmt: skip
EVAL_FIGURES = {"kl_per_dim.png": "KL per latent dimension", "anomalies.png": "Worst-scoring examples", "latent.png": "Latent space"}


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list]]] = field(default_factory=list)
    figures: list[tuple[Path, str]] = field(default_factory=list)  # (file, caption)


def evaluations(run_dir: Path) -> list[tuple[Path, dict]]:
    found = [run_dir / "evaluate.json", *sorted(run_dir.glob("*/evaluate.json"))]
    return [(p.parent, json.loads(p.read_text())) for p in found if p.is_file()]


def run_sections(run_dir: Path) -> list[Section]:
    config = json.loads((run_dir / "config.json").read_text())
    sections = [Section("Settings", tables=[(["setting", "value"], [[k, json.dumps(v)] for k, v in config.items()])])]
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        rows = [line.split(",") for line in metrics.read_text().splitlines()]
        header, last = rows[0], rows[-1]
        sections.append(Section("Training", [f"{len(rows) - 1} epochs; the last:"], [(header, [last])]))
    figures = [(run_dir / name, caption) for name, caption in RUN_FIGURES.items() if (run_dir / name).is_file()]
    if figures:
        sections.append(Section("Figures of the run", figures=figures))
    for folder, ev in evaluations(run_dir):
        k = ev["k"]
        rows = [["examples", ev["examples"]], ["active units", f"{ev['active_units']} of {ev['latent']} (Cov_x E_q[z_j] > {ev['active_unit_threshold']})"],
                ["reconstruction MSE at the encoder mean", f"{ev['reconstruction_mse']['mean']:.5g}"],
                [f"PCA reconstruction MSE ({ev['pca_components']} components)", f"{ev['pca_reconstruction_mse']['mean']:.5g}"]]  # fmt: skip
        if "elbo" in ev:
            rows[1:1] = [[name, f"{ev[key]['mean']:.3f} ± {ev[key]['se']:.3f}"] for name, key in
                         (("ELBO (nats per example)", "elbo"), ("E_q log p(x | z)", "expected_log_likelihood"), ("KL(q || prior)", "kl"), (f"IWAE_{k}", f"iwae_{k}"))]  # fmt: skip
        tables = [(["measure", "value"], rows)]
        if "kl_per_dim" in ev:
            tables.append((["dimension", "mean KL", "Cov_x E_q[z]"], [[j + 1, f"{kl:.4f}", f"{v:.4f}"] for j, (kl, v) in enumerate(zip(ev["kl_per_dim"], ev["unit_variance"]))]))
        figs = [(folder / name, caption) for name, caption in EVAL_FIGURES.items() if (folder / name).is_file() and folder != run_dir]
        sections.append(Section(f"Evaluation on the {ev['split']} split ({folder.name})", [f"{ev['model']} at epoch {ev['epoch']}, k = {k} importance samples."], tables, figs))
    return sections


def render_html(title: str, intro: str, sections: list[Section]) -> str:
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE html>",
             '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"]  # fmt: skip
    for s in sections:
        parts.append(f"<h2>{html.escape(s.heading)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        parts += [html_table(header, rows) for header, rows in s.tables]
        for path, caption in s.figures:
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<h3>{html.escape(caption)}</h3><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"/>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(title: str, intro: str, sections: list[Section], base: Path) -> str:
    md = [f"# {title}", "", intro, ""]
    for s in sections:
        md += [f"## {s.heading}", ""]
        md += [p + "\n" for p in s.paragraphs]
        md += [md_table(header, rows) + "\n" for header, rows in s.tables]
        md += [f"![{caption}]({path.relative_to(base)})\n" for path, caption in s.figures]
    return "\n".join(md)


def build_run_report(run_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into a training run directory."""
    title = f"surrogate run report: {run_dir.name}"
    intro = f"Written {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} from {run_dir}."
    sections = run_sections(run_dir)
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    write_text(html_path, render_html(title, intro, sections))
    write_text(md_path, render_markdown(title, intro, sections, run_dir))
    return html_path, md_path
