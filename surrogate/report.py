"""A shareable report of a fit directory: one self-contained HTML file and the same as Markdown.

The HTML embeds its figures (no network needed to view it) and is well-formed
XHTML, so any XML parser can read it. Everything comes from the files a fit
writes (``posterior.nc``, ``summary.csv``, ``diagnostics.json`` and figures).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from pathlib import Path

import numpy as np

from surrogate.diagnostics import RHAT_LIMIT, import_arviz
from surrogate.inference.idata import arviz_plotting
from surrogate.errors import SurrogateError
from surrogate.fileio import pyplot, save_figure, write_text

BFMI_LIMIT = 0.3  # E-BFMI below this: the momentum resampling explores energy poorly
ESS_LIMIT = 400  # bulk/tail ESS below this: estimates too noisy (Vehtari et al. 2021)
DOMAIN_FIGURES = {"inpaint.png": "Inpainting", "class_probs.png": "Class weights (pooled and per chain)",
                  "field.png": "The field: posterior mean and 90% interval", "lengthscale.png": "Lengthscale posterior and prior"}  # fmt: skip
PIECE_MODELS = ("partitioned", "per-class")  # class models fitted piece by piece (surrogate/per_class.py)
SUMMARY_COLUMNS = ("mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")


def load_fit_dir(fit_dir: Path):
    """(InferenceData, summary DataFrame, diagnostics dict) of a fit directory."""
    import pandas as pd

    az = import_arviz()
    if not (fit_dir / "posterior.nc").is_file():
        raise SurrogateError(f"{fit_dir} is not a fit directory: it has no posterior.nc")
    idata = az.from_netcdf(fit_dir / "posterior.nc")
    if "sample_stats" not in idata.groups() and idata.attrs.get("class_model") not in PIECE_MODELS:
        kind = idata.attrs.get("class_model", "this fit")
        raise SurrogateError(f"{fit_dir}/posterior.nc has no sampler diagnostics ({kind}); its results are in "
                             "summary.txt and diagnostics.json")  # fmt: skip
    if "sample_stats" not in idata.groups():  # a partitioned / per-class fit: one set of chains per piece
        return idata, None, json.loads((fit_dir / "diagnostics.json").read_text())
    summary = pd.read_csv(fit_dir / "summary.csv", index_col=0) if (fit_dir / "summary.csv").is_file() else az.summary(idata)
    diag = json.loads((fit_dir / "diagnostics.json").read_text()) if (fit_dir / "diagnostics.json").is_file() else {}
    return idata, summary, diag


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


def fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{value:g}"
    return str(value)


# ----------------------------------------------------------------------------
# writers


def embedded_figures(fit_dir: Path, figures: dict[str, str]) -> list[str]:
    """One heading and inline PNG (base64, nothing fetched when viewed) per figure."""
    parts = []
    for name, caption in figures.items():
        data = base64.b64encode((fit_dir / name).read_bytes()).decode()
        parts.append(f'<h2>{html.escape(caption)}</h2><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"/>')
    return parts


def html_table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
.ok{background:#e8f5e9;border-left:4px solid #43a047;padding:.4em .8em}img{max-width:100%;border:1px solid #eee}"""


def build_report(fit_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``fit_dir``; return their paths."""
    fit_dir = Path(fit_dir)
    if (fit_dir / "config.json").is_file() and not (fit_dir / "posterior.nc").is_file():  # a training run
        from surrogate.run_report import build_run_report

        return build_run_report(fit_dir)
    idata, summary, diag = load_fit_dir(fit_dir)
    if summary is None:
        return build_pieces_report(fit_dir, idata, diag)
    max_depth = int(idata.attrs.get("sampler_max_treedepth", 10))
    chains = sampler_table(idata, max_depth)
    notes = advice(diag, chains, summary)
    figures = {name: title for name, title in DOMAIN_FIGURES.items() if (fit_dir / name).is_file()}
    figures |= make_figures(fit_dir, idata)
    per_chain = diag.get("per_chain", [])
    run_rows, head_rows = run_table(idata, diag), headline(diag, summary)
    columns = [c for c in SUMMARY_COLUMNS if c in summary.columns]
    main_rows = [[name, *summary.loc[name, columns]] for name in summary.index if not name.startswith("y_mis")]
    mis_rows = [[name, *summary.loc[name, columns]] for name in summary.index if name.startswith("y_mis")]
    chain_header = ["chain", "divergences", "treedepth hits", "E-BFMI", "step size", "mean tree depth"]
    chain_rows = [[r[h] for h in chain_header] for r in chains]
    mode_header, mode_rows = [], []
    if per_chain:
        mode_header = ["chain"] + (["class", "class weight"] if "class" in per_chain[0] else []) + ["mean log-lik"] + (["RMSE missing"] if "rmse_missing" in per_chain[0] else [])
        for r in per_chain:
            mode_rows.append([r["chain"]] + ([r["class"], round(r["class_prob"], 3)] if "class" in r else []) + [round(r["mean_log_lik"], 2)] + ([round(r["rmse_missing"], 4)] if "rmse_missing" in r else []))
    title = f"surrogate fit report: {fit_dir.name}"
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    # --- HTML: self-contained, well-formed XHTML ---
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<!DOCTYPE html>',
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>Written {created} from <code>{html.escape(str(fit_dir))}</code>.</p>",
        "<h2>Result</h2>", html_table(["", ""], [list(r) for r in head_rows]),
        "<h2>Warnings</h2>",
        "".join(f'<div class="warn">{html.escape(n)}</div>' for n in notes) or '<div class="ok">No warnings: R-hat, ESS, divergences, tree depth and E-BFMI are all within their limits.</div>',
        "<h2>What was run</h2>", html_table(["setting", "value"], [list(r) for r in run_rows]),
        "<h2>Sampler diagnostics per chain</h2>", html_table(chain_header, chain_rows),
    ]  # fmt: skip
    if mode_rows:
        parts += ["<h2>Per-chain results</h2><p>Chains that disagree sit in different modes; pooled numbers then mix modes.</p>", html_table(mode_header, mode_rows)]
    parts += embedded_figures(fit_dir, figures)
    parts += ["<h2>Posterior summary</h2>", html_table(["variable", *columns], main_rows)]
    if mis_rows:
        parts += [f"<details><summary>Decoded missing values ({len(mis_rows)} rows)</summary>", html_table(["variable", *columns], mis_rows), "</details>"]
    parts.append("</body></html>")
    html_path = fit_dir / "report.html"
    write_text(html_path, "\n".join(parts) + "\n")

    # --- Markdown: the same, with the figures linked ---
    md = [f"# {title}", "", f"Written {created} from `{fit_dir}`.", "", "## Result", "", md_table(["", ""], [list(r) for r in head_rows]), "", "## Warnings", ""]
    md += [f"- **{n}**" for n in notes] or ["No warnings: R-hat, ESS, divergences, tree depth and E-BFMI are all within their limits."]
    md += ["", "## What was run", "", md_table(["setting", "value"], [list(r) for r in run_rows]), "", "## Sampler diagnostics per chain", "", md_table(chain_header, chain_rows), ""]
    if mode_rows:
        md += ["## Per-chain results", "", md_table(mode_header, mode_rows), ""]
    md += [f"![{caption}]({name})\n" for name, caption in figures.items()]
    md += ["## Posterior summary", "", md_table(["variable", *columns], main_rows + mis_rows), ""]
    md_path = fit_dir / "report.md"
    write_text(md_path, "\n".join(md))
    return html_path, md_path


def build_pieces_report(fit_dir: Path, idata, diag: dict) -> tuple[Path, Path]:
    """The report of a partitioned / per-class fit: the class posterior, each fitted piece's diagnostics, figures."""
    from surrogate.per_class import PROBABILITY

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
    piece_header = ["class", prob, "log evidence", "Laplace", "Pareto k", "max R-hat", "min ESS bulk", "divergences",
                    "treedepth hits", "imputation from"]  # fmt: skip
    piece_rows = []
    for r in sorted(diag["per_class"], key=lambda r: -r["log_evidence"]):
        p = diag["class_posterior"][r["class"]]
        fitted = [r["pareto_k"], r["max_rhat"], r["min_ess_bulk"], r["divergences"], r["treedepth_hits"], r.get("imputation", "")] if r["fitted"] else ["not fitted (Laplace screen)"] + [""] * 5
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
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    notes = diag.get("warnings", [])
    intro = {"partitioned": "The softmax class model, sampled one dominant-class region at a time; regions are weighed by their posterior mass.",
             "per-class": "One fit per one-hot class; classes are weighed by their marginal likelihoods."}[model]  # fmt: skip
    ok = "No warnings: R-hat, chain agreement, Pareto k and divergences are within their limits."
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE html>",
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>Written {created} from <code>{html.escape(str(fit_dir))}</code>. {html.escape(intro)}</p>",
        "<h2>Result</h2>", html_table(["", ""], [list(r) for r in head]),
        "<h2>Warnings</h2>", "".join(f'<div class="warn">{html.escape(n)}</div>' for n in notes) or f'<div class="ok">{ok}</div>',
        "<h2>Pieces</h2>", html_table(piece_header, piece_rows),
        "<h2>Class posterior from each chain alone</h2>", html_table(chain_header, chain_rows),
    ]  # fmt: skip
    parts += embedded_figures(fit_dir, figures)
    parts.append("</body></html>")
    html_path = fit_dir / "report.html"
    write_text(html_path, "\n".join(parts) + "\n")
    md = [f"# {title}", "", f"Written {created} from `{fit_dir}`. {intro}", "", "## Result", "", md_table(["", ""], [list(r) for r in head]),
          "", "## Warnings", "", *([f"- **{n}**" for n in notes] or [ok]), "", "## Pieces", "", md_table(piece_header, piece_rows), "",
          "## Class posterior from each chain alone", "", md_table(chain_header, chain_rows), ""]  # fmt: skip
    md += [f"![{caption}]({name})\n" for name, caption in figures.items()]
    md_path = fit_dir / "report.md"
    write_text(md_path, "\n".join(md))
    return html_path, md_path
