"""A shareable report of a training run: its settings, learning curves and evaluations.

Rendered by :mod:`surrogate.reports.render`. The evaluations are the ``evaluate.json`` files that
``surrogate evaluate RUN_DIR`` wrote into the run directory or its subfolders.
"""

from __future__ import annotations

import json
from pathlib import Path

from surrogate.reports.render import Section, write_report

RUN_FIGURES = {"learning_curves.png": "Learning curves", "samples.png": "Decoded prior draws", "latent.png": "Latent space",
               "check_prior.png": "Decoded vs exact prior draws"}  # fmt: skip
EVAL_FIGURES = {"kl_per_dim.png": "KL per latent dimension", "anomalies.png": "Worst-scoring examples", "latent.png": "Latent space"}


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


def build_run_report(run_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into a training run directory."""
    return write_report(run_dir, f"surrogate run report: {run_dir.name}", "", run_sections(run_dir))
