"""A shareable report of a fit folder: one self-contained HTML file and the same as Markdown.

Everything comes from the files a fit writes (``posterior.nc``, ``summary.csv``,
``diagnostics.json`` with the fit's kind, and figures); the report is a list of sections
rendered by :mod:`surrogate.reports.render`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from surrogate.fileio import pyplot, save_figure
from surrogate.inference.diagnostics import RHAT_LIMIT, import_arviz
from surrogate.inference.fitdir import fit_kind
from surrogate.inference.idata import arviz_plotting
from surrogate.reports.render import Section, write_report

BFMI_LIMIT = 0.3  # E-BFMI below this: the momentum resampling explores energy poorly
ESS_LIMIT = 400  # bulk/tail ESS below this: estimates too noisy (Vehtari et al. 2021)
DOMAIN_FIGURES = {"inpaint.png": "Inpainting", "class_probs.png": "Class weights (pooled and per chain)",
                  "field.png": "The field: posterior mean and 90% interval", "lengthscale.png": "Lengthscale posterior and prior",
                  "maps.png": "Maps: posterior mean relative risk, its sd and P(rr > 1)",
                  "maps_periods.png": "Maps per period: posterior mean relative risk (one scale) and P(rr > 1)",
                  "trends.png": "Trends: relative risk over the periods in the areas with the surest trends (90% bands)"}  # fmt: skip
SUMMARY_COLUMNS = ("mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")
OK = "No warnings: R-hat, ESS, divergences, tree depth and E-BFMI are all within their limits."


def build_report(fit_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into a fit folder, a training run or a batch folder; return their paths."""
    fit_dir = Path(fit_dir)
    if (fit_dir / "batch.json").is_file():  # a batch folder (surrogate batch)
        from surrogate.reports.batch import build_batch_report

        return build_batch_report(fit_dir)
    if (fit_dir / "config.json").is_file() and not (fit_dir / "posterior.nc").is_file():  # a training run
        from surrogate.reports.run import build_run_report

        return build_run_report(fit_dir)
    kind = fit_kind(fit_dir)
    az = import_arviz()
    idata = az.from_netcdf(fit_dir / "posterior.nc")
    diag = json.loads((fit_dir / "diagnostics.json").read_text())
    if kind == "pieces":
        from surrogate.reports.pieces import pieces_sections

        title, intro, sections = pieces_sections(fit_dir, idata, diag)
        return write_report(fit_dir, title, intro, sections)
    return write_report(fit_dir, f"surrogate fit report: {fit_dir.name}", "", fit_sections(fit_dir, idata, diag))


def fit_sections(fit_dir: Path, idata, diag: dict) -> list[Section]:
    """The sections of a fit with one set of chains (softmax inpainting, a GP model)."""
    import pandas as pd

    az = import_arviz()
    summary = pd.read_csv(fit_dir / "summary.csv", index_col=0) if (fit_dir / "summary.csv").is_file() else az.summary(idata)
    chains = sampler_table(idata, int(idata.attrs.get("sampler_max_treedepth", 10)))
    figures = {name: title for name, title in DOMAIN_FIGURES.items() if (fit_dir / name).is_file()}
    figures |= make_figures(fit_dir, idata)
    columns = [c for c in SUMMARY_COLUMNS if c in summary.columns]
    main_rows = [[name, *summary.loc[name, columns]] for name in summary.index if not name.startswith("y_mis")]
    mis_rows = [[name, *summary.loc[name, columns]] for name in summary.index if name.startswith("y_mis")]
    chain_header = ["chain", "divergences", "treedepth hits", "E-BFMI", "step size", "mean tree depth"]
    sections = [
        Section("Result", tables=[(["", ""], [list(r) for r in headline(diag, summary)])]),
        Section("Warnings", warnings=advice(diag, chains, summary), ok=OK),
        Section("What was run", tables=[(["setting", "value"], [list(r) for r in run_table(idata, diag)])]),
        Section("Sampler diagnostics per chain", tables=[(chain_header, [[r[h] for h in chain_header] for r in chains])]),
    ]
    check = (diag.get("decoder") or {}).get("check_prior")
    if check is not None:
        from surrogate.tasks.gp_check import check_rows

        sections.insert(2, Section("Prior check of the decoder", ["surrogate check-prior, recorded by export: decoded draws z ~ N(0, I) "
                                                                  "against exact draws of the prior the decoder stands for."],
                                   [(["", ""], check_rows(check))], warnings=[] if check["passed"] else
                                   ["the decoder failed its prior check: its intervals may be too narrow; retrain (see the README's remedies)"],
                                   ok="The decoder passed its prior check."))  # fmt: skip
    per_chain = diag.get("per_chain", [])
    if per_chain:
        has_class, has_rmse = "class" in per_chain[0], "rmse_missing" in per_chain[0]
        header = ["chain"] + (["class", "class weight"] if has_class else []) + ["mean log-lik"] + (["RMSE missing"] if has_rmse else [])
        rows = [[r["chain"]] + ([r["class"], round(r["class_prob"], 3)] if has_class else []) + [round(r["mean_log_lik"], 2)]
                + ([round(r["rmse_missing"], 4)] if has_rmse else []) for r in per_chain]  # fmt: skip
        sections.append(Section("Per-chain results", ["Chains that disagree sit in different modes; pooled numbers then mix modes."], [(header, rows)]))
    sections.append(Section("Figures", figures=[(fit_dir / name, caption) for name, caption in figures.items()]))
    sections.append(Section("Posterior summary", tables=[(["variable", *columns], main_rows)]))
    if mis_rows:
        sections.append(Section(f"Decoded missing values ({len(mis_rows)} rows)", tables=[(["variable", *columns], mis_rows)], collapsed=True))
    return sections


def sampler_table(idata, max_treedepth: int) -> list[dict]:
    """Per chain: divergences, tree-depth hits, E-BFMI, step size, mean tree depth."""
    az = import_arviz()
    stats = idata.sample_stats
    bfmi = az.bfmi(idata)
    rows = []
    for c in range(stats.sizes["chain"]):
        rows.append({
            "chain": c + 1,
            "divergences": int(stats["diverging"][c].sum()),
            "treedepth hits": int((stats["tree_depth"][c] >= max_treedepth).sum()),
            "E-BFMI": round(float(bfmi[c]), 3),
            "step size": round(float(stats["step_size"][c].mean()), 4),
            "mean tree depth": round(float(stats["tree_depth"][c].mean()), 2),
        })  # fmt: skip
    return rows


def advice(diag: dict, chains: list[dict], summary) -> list[str]:
    """Plain-words warnings, each with what to try."""
    notes = list(diag.get("warnings", []))
    low_bfmi = [r["chain"] for r in chains if r["E-BFMI"] < BFMI_LIMIT]
    if low_bfmi:
        notes.append(f"E-BFMI below {BFMI_LIMIT} in chains {low_bfmi}: the sampler explores the energy poorly; "
                     "run longer warmup or reparameterise")  # fmt: skip
    ess = summary[["ess_bulk", "ess_tail"]].min().min()
    if np.isfinite(ess) and ess < ESS_LIMIT:
        notes.append(f"lowest ESS {ess:.0f} < {ESS_LIMIT}: estimates are noisy; run more draws or more chains")
    rhat = summary["r_hat"].max()
    if not diag and np.isfinite(rhat) and rhat > RHAT_LIMIT:
        notes.append(f"max R-hat {rhat:.3f} > {RHAT_LIMIT}: chains disagree; run more warmup, or more chains")
    return notes


def run_table(idata, diag: dict) -> list[tuple[str, str]]:
    attrs = dict(idata.attrs)
    rows = [(k, str(attrs[k])) for k in ("program", "source", "decoder", "decoder_sha256", "sigma") if k in attrs]
    rows += [(k.removeprefix("sampler_").replace("_", " "), str(v)) for k, v in attrs.items() if k.startswith("sampler_")]
    rows += [(k, str(attrs[k])) for k in ("engine", "pystan", "httpstan", "cmdstanpy", "cmdstan", "stan") if k in attrs]
    timing = diag.get("timing") or {}
    if timing:
        rows.append(("compile / load", f"{timing['compile_s']:.1f} s"))
        rows.append(("warmup per chain", ", ".join(f"{t:.1f} s" for t in timing["warmup_s"])))
        rows.append(("sampling per chain", ", ".join(f"{t:.1f} s" for t in timing["sampling_s"])))
    return rows


def headline(diag: dict, summary) -> list[tuple[str, str]]:
    rows = []
    if diag.get("pooled_class_probs") is not None:
        pred = diag.get("predicted_class")
        rows.append(("predicted class", f"{pred} ({max(diag['pooled_class_probs']):.3f})" if pred is not None else "no consensus: chains disagree"))
    if "rmse_missing_pooled" in diag:
        rows.append(("imputation RMSE (missing)", f"{diag['rmse_missing_pooled']:.4f}"))
    if "coverage90" in diag:  # a gp-fit against a known field
        rows.append(("RMSE of eta vs the truth / 90% coverage", f"{diag['rmse']:.3f} / {100 * diag['coverage90']:.0f}% of cells"))
    if "ell_mean" in diag:
        rows.append(("lengthscale (90% interval)", f"{diag['ell_mean']:.3f} ({diag['ell_interval'][0]:.3f}-{diag['ell_interval'][1]:.3f})"))
    rhat = diag.get("max_rhat", summary["r_hat"].max())
    rows.append(("max R-hat", "n/a (one chain)" if rhat is None or not np.isfinite(rhat) else f"{rhat:.3f}"))
    bulk, tail = diag.get("min_ess_bulk", summary["ess_bulk"].min()), diag.get("min_ess_tail", summary["ess_tail"].min())
    rows.append(("min ESS bulk / tail", f"{bulk:.0f} / {tail:.0f}"))
    if "divergences" in diag:
        rows.append(("divergences / tree-depth hits", f"{diag['divergences']} / {diag['treedepth_hits']}"))
    return rows


@arviz_plotting()
def make_figures(fit_dir: Path, idata) -> dict[str, str]:
    """Rank, trace and energy plots for the latent parameters, saved beside the fit."""
    az = import_arviz()
    pyplot()
    names = [v for v in ("z", "theta") if v in idata.posterior][:1]
    figures = {}
    if idata.posterior.sizes["chain"] > 1 and names:
        axes = az.plot_rank(idata, var_names=names, kind="bars")
        save_figure(np.ravel(axes)[0].figure, fit_dir / "rank_latent.png")
        figures["rank_latent.png"] = "Rank plots of the latent parameters (uniform bars when chains agree)"
    if names:
        axes = az.plot_trace(idata, var_names=names, compact=True, combined=False)
        save_figure(np.ravel(axes)[0].figure, fit_dir / "trace_latent.png")
        figures["trace_latent.png"] = "Trace of the latent parameters"
    ax = az.plot_energy(idata)
    save_figure(np.ravel(ax)[0].figure, fit_dir / "energy.png")
    figures["energy.png"] = "Energy: marginal vs transition distributions (similar widths are good)"
    return figures


