"""The combined class posterior as a summary, text and files."""

from __future__ import annotations

import numpy as np

from surrogate.inference import SamplerSettings
from surrogate.inference.diagnostics import RHAT_LIMIT, rmse
from surrogate.inference.fitdir import FitResult, write_fit_dir
from surrogate.inference.idata import import_arviz
from surrogate.tasks.inpaint import Observation
from surrogate.tasks.pieces.density import CHAIN_SPREAD_LIMIT, PARETO_K_LIMIT
from surrogate.tasks.pieces.fitting import PerClassResult, run_per_class


def summarize(result: PerClassResult, classes: list[str], truth: np.ndarray | None, missing: np.ndarray) -> dict:
    """A JSON-able assessment in the shape the softmax model's summary uses."""
    best = int(np.argmax(result.class_probs))
    out = {
        "class_model": result.model,
        "class_posterior": result.class_probs.tolist(),
        "predicted_class": classes[best],
        "predicted_prob": float(result.class_probs[best]),
        "log_evidence": result.log_evidence.tolist(),
        "pareto_k": result.pareto_k.tolist(),
        "per_class": result.per_class,
        "fitted_classes": [classes[c] for c in result.fitted],
        "chain_class_posterior": result.chain_class_probs.tolist(),
        "chain_max_abs_diff": float(np.ptp(result.chain_class_probs, axis=0).max()),
        "max_rhat_weighted": float(np.nanmax([r["max_rhat"] for r in result.per_class if r["fitted"] and result.class_probs[r["class"]] > 1e-3] or [np.nan])),
        "divergences": int(sum(r["divergences"] for r in result.per_class if r["fitted"])),
    }
    if result.class_weights is not None:
        out["mean_class_weights"] = result.class_weights.tolist()
    if truth is not None:
        out["rmse_missing"] = rmse(result.y_mis_mean, truth[missing])
    notes = []
    bad_k = [classes[i] for i, k in enumerate(result.pareto_k) if np.isfinite(k) and k > PARETO_K_LIMIT and result.class_probs[i] > 1e-3]
    if bad_k:
        notes.append(f"Pareto k̂ > {PARETO_K_LIMIT} for classes {', '.join(bad_k)}: their marginal likelihoods are unreliable; run more draws")
    fits = [r for r in result.per_class if r["fitted"]]
    unsettled = [classes[r["class"]] for r in fits if r["max_rhat"] > RHAT_LIMIT and result.class_probs[r["class"]] > 1e-3]
    if unsettled:
        notes.append(f"the chains of classes {', '.join(unsettled)} (posterior weight > 0.001) have R-hat > {RHAT_LIMIT}: "
                     "the posterior within that piece is not converged (run more draws) or multimodal. Chains in "
                     "different modes are combined by importance sampling, by mass; modes no chain found are missing: "
                     "run more chains")  # fmt: skip
    if out["chain_max_abs_diff"] > CHAIN_SPREAD_LIMIT:
        notes.append(f"the class posteriors from each chain alone differ by up to {out['chain_max_abs_diff']:.3f} "
                     f"(limit {CHAIN_SPREAD_LIMIT}): chains found different modes; the reported posterior combines them")  # fmt: skip
    if out["divergences"]:
        notes.append(f"{out['divergences']} divergent transitions across the {result.model} fits: raise --adapt-delta")
    out["warnings"] = notes
    return out


PROBABILITY = {"per-class": "p(c | y)", "partitioned": "p(dominant class = c | y)"}
PIECES = {"per-class": "per-class fits + marginal likelihoods", "partitioned": "softmax model, one fit per dominant-class region"}


def format_per_class(summary: dict, classes: list[str]) -> str:
    model = summary["class_model"]
    p = PROBABILITY[model]
    lines = [f"predicted class     {summary['predicted_class']} ({p} = {summary['predicted_prob']:.3f}; {PIECES[model]})"]
    if "mean_class_weights" in summary:
        top = int(np.argmax(summary["mean_class_weights"]))
        lines.append(f"class weights       posterior mean of the softmax weights: largest {classes[top]} ({summary['mean_class_weights'][top]:.3f})")
    if "rmse_missing" in summary:
        lines.append(f"imputation RMSE     {summary['rmse_missing']:.4f} on missing pixels (mixture over pieces)")
    lines.append(f"{model + ' fits':20s}classes {', '.join(summary['fitted_classes'])} fitted (others screened out by Laplace evidence); "
                 f"max R-hat {summary['max_rhat_weighted']:.3f} (pieces with p > 0.001), divergences {summary['divergences']}")
    lines.append(f"chains agree        class posteriors from each chain alone differ by at most {summary['chain_max_abs_diff']:.3f}")
    order = np.argsort(summary["class_posterior"])[::-1][:3]
    lines.append("top classes:")
    for i in order:
        k = summary["pareto_k"][i]
        how = f"k̂ = {k:.2f}" if k is not None and np.isfinite(k) else "Laplace, not fitted"
        lines.append(f"  class {classes[i]}  {p} = {summary['class_posterior'][i]:.4f}  log evidence {summary['log_evidence'][i]:.2f}  {how}")
    lines += [f"WARNING: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


def write_per_class_outputs(out, result: PerClassResult, summary: FitResult, obs: Observation, meta: dict, classes: list[str]) -> None:
    """posterior.nc (each piece's draws along a ``fitted_class`` dim), diagnostics, summary and figures."""
    from pathlib import Path

    from surrogate.fileio import pyplot, save_figure
    from surrogate.tasks.inpaint import plot_imputations

    out = Path(out)
    write_fit_dir(out, summary, log=result.log)
    shape = tuple(meta.get("image_shape") or ())
    if len(shape) == 2:
        plot_imputations(out / "inpaint.png", obs, shape, [("mixture over classes", result.y_mis_mean, result.y_mis_sd)])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(classes, result.class_probs, color="black")
    ax.set_ylabel({"per-class": "p(class | observed pixels)", "partitioned": "p(dominant class | observed pixels)"}[result.model])
    ax.set_ylim(0, 1)
    fig.tight_layout()
    save_figure(fig, out / "class_probs.png")


def pieces_inference_data(result: PerClassResult, obs: Observation, classes: list[str]):
    """The fitted pieces' draws along a ``fitted_class`` dim, the class posterior and evidences as constant data."""
    az = import_arviz()
    K = result.draws["z"].shape[-1]
    return az.from_dict(
        posterior=result.draws,
        constant_data={"class_posterior": result.class_probs, "log_evidence": result.log_evidence,
                       "pareto_k": result.pareto_k, "missing": obs.missing},  # fmt: skip
        coords={"class": classes, "fitted_class": [classes[c] for c in result.fitted], "latent": np.arange(K),
                "missing_pixel": np.flatnonzero(obs.missing), "pixel": np.arange(obs.y.size)},  # fmt: skip
        dims={"z": ["fitted_class", "latent"], "y_mis": ["fitted_class", "missing_pixel"], "class_probs": ["fitted_class", "class"],
              "class_posterior": ["class"], "log_evidence": ["class"], "pareto_k": ["class"], "missing": ["pixel"]},  # fmt: skip
        attrs={"class_model": result.model, "source": obs.source},
    )


def inpaint_per_class(decoder: dict, meta: dict, obs: Observation, sigma: float, settings: SamplerSettings,
                      engine: str = "auto", screen: float | None = None, out=None, model: str = "per-class") -> FitResult:  # fmt: skip
    """Run :func:`run_per_class` with class model ``model``, summarise it and write the outputs to ``out`` when given."""
    classes = meta.get("classes") or [str(c) for c in range(decoder["C"])]
    result = run_per_class(decoder, obs, sigma, settings, engine, screen=screen, model=model)
    summary = summarize(result, classes, obs.y if obs.truth_known else None, obs.missing)
    fit = FitResult("pieces", pieces_inference_data(result, obs, classes), summary, format_per_class(summary, classes))
    if out is not None:
        write_per_class_outputs(out, result, fit, obs, meta, classes)
    return fit
