"""The report of a piece-wise class model fit (partitioned / per-class): the class posterior and each piece's fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surrogate.fileio import pyplot, save_figure
from surrogate.inference.idata import arviz_plotting, import_arviz
from surrogate.reports.fit import BFMI_LIMIT
from surrogate.reports.render import Section


def pieces_sections(fit_dir: Path, idata, diag: dict) -> tuple[str, str, list[Section]]:
    """(title, intro, sections) of a partitioned / per-class fit: the class posterior, each fitted piece's diagnostics, figures."""
    from surrogate.tasks.pieces import PROBABILITY

    az = import_arviz()
    model = diag["class_model"]
    classes = [str(c) for c in idata.constant_data["class"].values]
    prob = PROBABILITY[model]
    head = [("class model", model), ("predicted class", f"{diag['predicted_class']} ({prob} = {diag['predicted_prob']:.3f})")]
    if "mean_class_weights" in diag:
        w = np.asarray(diag["mean_class_weights"])
        head.append(("largest mean class weight", f"{classes[int(w.argmax())]} ({w.max():.3f})"))
    if "rmse_missing" in diag:
        head.append(("imputation RMSE (missing)", f"{diag['rmse_missing']:.4f}"))
    head += [("max R-hat (pieces with p > 0.001)", f"{diag['max_rhat_weighted']:.3f}"),
             ("chains agree: max spread of per-chain class posteriors", f"{diag['chain_max_abs_diff']:.3f}"),
             ("divergences (all pieces)", str(diag["divergences"]))]  # fmt: skip
    piece_header = ["class", prob, "log evidence", "Laplace", "Pareto k", "max R-hat", "min ESS bulk", "min E-BFMI", "divergences",
                    "treedepth hits", "imputation from"]  # fmt: skip
    piece_rows = []
    for r in sorted(diag["per_class"], key=lambda r: -r["log_evidence"]):
        p = diag["class_posterior"][r["class"]]
        fitted = [r["pareto_k"], r["max_rhat"], r["min_ess_bulk"], r.get("min_bfmi", float("nan")), r["divergences"], r["treedepth_hits"], r.get("imputation", "")] if r["fitted"] else ["not fitted (Laplace screen)"] + [""] * 6
        piece_rows.append([classes[r["class"]], round(p, 4), round(r["log_evidence"], 2), round(r["laplace_log_evidence"], 2), *fitted])
    chain_header = ["chain", *(f"{prob.split(' =')[0]} {c}" for c in classes)]
    chain_rows = [[j + 1, *np.round(row, 4)] for j, row in enumerate(diag["chain_class_posterior"])]
    figures = {name: title for name, title in {"inpaint.png": "Inpainting (mixture over pieces)", "class_probs.png": prob}.items() if (fit_dir / name).is_file()}
    pyplot()
    for piece in idata.posterior["fitted_class"].values:
        z = idata.posterior["z"].sel(fitted_class=piece)
        if z.sizes["chain"] > 1:
            with arviz_plotting():
                axes = az.plot_rank(z.to_dataset(name=f"z (class {piece})"), kind="bars")
            name = f"rank_z_{piece}.png"
            save_figure(np.ravel(axes)[0].figure, fit_dir / name)
            figures[name] = f"Rank plots of z, piece {piece} (uniform bars when chains agree)"
    title = f"surrogate fit report: {fit_dir.name} ({model})"
    intro = {"partitioned": "The softmax class model, sampled one dominant-class region at a time; regions are weighed by their posterior mass.",
             "per-class": "One fit per one-hot class; classes are weighed by their marginal likelihoods."}[model]  # fmt: skip
    ok = "No warnings: R-hat, chain agreement, Pareto k, E-BFMI and divergences are within their limits."
    notes = list(diag.get("warnings", []))
    low = [classes[r["class"]] for r in diag["per_class"] if r["fitted"] and r.get("min_bfmi", 1.0) < BFMI_LIMIT]
    if low:
        notes.append(f"E-BFMI below {BFMI_LIMIT} in the fits of pieces {', '.join(low)}: the sampler explores the energy poorly there")
    sections = [
        Section("Result", tables=[(["", ""], [list(r) for r in head])]),
        Section("Warnings", warnings=notes, ok=ok),
        Section("Pieces", tables=[(piece_header, piece_rows)]),
        Section("Class posterior from each chain alone", tables=[(chain_header, chain_rows)]),
        Section("Figures", figures=[(fit_dir / name, caption) for name, caption in figures.items()]),
    ]
    return title, intro, sections
