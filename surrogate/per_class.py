"""The class posterior from per-class conditional fits combined by their marginal likelihoods.

The softmax class model (``inpaint.stan``) feeds relaxed class weights to the decoder,
and its posterior has well-separated modes. Here the class is what the CVAE was
trained on, a one-hot vector, and it is handled exactly:

* Fixing class c turns the CVAE decoder into an unconditional one: the first layer
  ``W1 [z; e_c] + b1 = W1[:, :K] z + (b1 + W1[:, K + c])``. Each class is sampled with
  the same ``inpaint.stan`` (C = 0), so NUTS only explores z given c.
* ``p(y | c) = ∫ N(y_obs | dec_c(z), σ) N(z | 0, I) dz`` is estimated by importance
  sampling from a multivariate t fitted to that fit's draws; the Pareto k̂ of the
  weights (PSIS, Vehtari et al. 2024) says whether the estimate can be trusted.
* ``p(c | y) ∝ p(y | c) p(c)`` with a uniform prior; imputations are the mixture of the
  per-class posteriors with these weights.

The fits are independent (embarrassingly parallel) and cost C times one fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from surrogate.diagnostics import RHAT_LIMIT, import_arviz, rmse
from surrogate.errors import SurrogateError
from surrogate.export import torch_decoder
from surrogate.inpaint import Observation, stan_data
from surrogate.stan_engine import SamplerSettings, get_engine

PARETO_K_LIMIT = 0.7  # above this the importance-sampling estimate is unreliable


def fix_class(decoder: dict, c: int) -> dict:
    """The CVAE decoder with its class input fixed to one-hot ``c``: an unconditional decoder."""
    K, C = decoder["K"], decoder["C"]
    if not 0 <= c < C:
        raise SurrogateError(f"class must be in 0..{C - 1}, found {c}")
    fixed = dict(decoder)
    fixed["C"] = 0
    fixed["W1"] = np.ascontiguousarray(decoder["W1"][:, :K])
    fixed["b1"] = decoder["b1"] + decoder["W1"][:, K + c]
    return fixed


def log_joint(decoder: dict, obs: Observation, sigma: float, z: np.ndarray) -> np.ndarray:
    """log N(y_obs | dec(z), σ) + log N(z | 0, I) for each row of ``z`` (float64)."""
    import torch

    observed = ~obs.missing
    with torch.no_grad():
        mean = torch_decoder(decoder)(torch.from_numpy(z)).numpy()[:, observed]
    resid = (obs.y[observed] - mean) / sigma
    log_lik = -0.5 * (resid**2).sum(1) - observed.sum() * (np.log(sigma) + 0.5 * np.log(2 * np.pi))
    return log_lik - 0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * np.log(2 * np.pi)


def log_evidence(decoder: dict, obs: Observation, sigma: float, z_draws: np.ndarray, n: int = 4000, seed: int = 0, df: float = 5.0):
    """(log p(y), Pareto k̂) by importance sampling from a multivariate t fitted to ``z_draws``."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_t

    az = import_arviz()
    mean = z_draws.mean(axis=0)
    cov = np.cov(z_draws, rowvar=False) + 1e-9 * np.eye(z_draws.shape[1])
    proposal = multivariate_t(loc=mean, shape=cov, df=df, seed=seed)
    z = proposal.rvs(size=n).reshape(n, -1)
    log_w = log_joint(decoder, obs, sigma, z) - proposal.logpdf(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k_hat = az.psislw(log_w.copy())
    return float(logsumexp(log_w) - np.log(n)), float(k_hat)


def laplace_evidence(decoder: dict, obs: Observation, sigma: float, starts: int = 4, seed: int = 0) -> tuple[float, np.ndarray]:
    """(Laplace approximation of log p(y), the MAP z) from the best of ``starts`` L-BFGS runs.

    Used only to screen classes: a class whose Laplace evidence is far below the best
    one's gets no full fit (see :func:`run_per_class`).
    """
    import torch

    observed = torch.from_numpy(~obs.missing)
    y = torch.from_numpy(obs.y)[observed]
    net = torch_decoder(decoder)
    K = decoder["K"]

    def neg_log_joint(z):
        mean = net(z[None])[0][observed]
        return 0.5 * (((y - mean) / sigma) ** 2).sum() + 0.5 * (z**2).sum()

    gen = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(starts):
        z = torch.randn(K, dtype=torch.float64, generator=gen).requires_grad_(True)
        opt = torch.optim.LBFGS([z], max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

        def closure():
            opt.zero_grad()
            loss = neg_log_joint(z)
            loss.backward()
            return loss

        opt.step(closure)
        value = float(neg_log_joint(z))
        if best is None or value < best[0]:
            best = (value, z.detach().clone())
    value, z_map = best
    hessian = torch.autograd.functional.hessian(neg_log_joint, z_map).numpy()
    sign, logdet = np.linalg.slogdet(hessian)
    if sign <= 0:
        logdet = np.inf  # not a maximum: give the class no weight in the screen
    n_obs = int((~obs.missing).sum())
    const = -n_obs * (np.log(sigma) + 0.5 * np.log(2 * np.pi)) - 0.5 * K * np.log(2 * np.pi)
    return float(-value + const + 0.5 * K * np.log(2 * np.pi) - 0.5 * logdet), z_map.numpy()


@dataclass
class PerClassResult:
    class_probs: np.ndarray  # p(c | y)
    log_evidence: np.ndarray  # log p(y | c)
    pareto_k: np.ndarray
    y_mis_mean: np.ndarray  # mixture posterior mean of the missing values
    y_mis_sd: np.ndarray
    per_class: list[dict]  # each class's own fit diagnostics (or its Laplace screen)
    draws: dict  # name -> (chain, draw, fitted class, ...) arrays
    fitted: list[int]  # classes that got a NUTS fit


def run_per_class(decoder: dict, obs: Observation, sigma: float, settings: SamplerSettings | None = None,
                  engine: str = "auto", n_importance: int = 4000, screen: float | None = 30.0) -> PerClassResult:  # fmt: skip
    """Fit the plausible classes given the image, then weigh the fits by their marginal likelihoods.

    ``screen``: classes whose Laplace log evidence is more than this many nats below the
    best class's get no NUTS fit; their Laplace value stands in (a relative weight below
    exp(-screen)). ``None`` fits every class.
    """
    az = import_arviz()
    if decoder["C"] == 0:
        raise SurrogateError("class model per-class needs a conditional decoder (C > 0); this one has C = 0")
    if not sigma or sigma <= 0:
        raise SurrogateError(f"class model per-class needs a fixed positive sigma, found {sigma}")
    settings = settings or SamplerSettings(chains=2, warmup=500, draws=500)
    runner = get_engine(engine)
    laplace = np.array([laplace_evidence(fix_class(decoder, c), obs, sigma, seed=settings.seed)[0] for c in range(decoder["C"])])
    fitted = [c for c in range(decoder["C"]) if screen is None or laplace[c] >= laplace.max() - screen]
    log_z, k_hat, rows, zs, mis = [], [], [], [], []
    for c in range(decoder["C"]):
        if c not in fitted:
            log_z.append(float(laplace[c]))
            k_hat.append(float("nan"))
            rows.append({"class": c, "log_evidence": float(laplace[c]), "laplace_log_evidence": float(laplace[c]), "fitted": False})
            continue
        fixed = fix_class(decoder, c)
        fit = runner.run("inpaint", stan_data(fixed, obs, sigma), settings)
        z, y_mis = fit.draws["theta"], fit.draws["y_mis"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ds = az.convert_to_dataset({"z": z, "y_mis": y_mis})
            rhat = float(np.nanmax(az.rhat(ds).to_array().values)) if z.shape[0] > 1 else float("nan")
            ess = float(np.nanmin(az.ess(ds).to_array().values))
        lz, k = log_evidence(fixed, obs, sigma, z.reshape(-1, z.shape[-1]), n_importance, seed=settings.seed + c)
        log_z.append(lz)
        k_hat.append(k)
        rows.append({"class": c, "log_evidence": lz, "laplace_log_evidence": float(laplace[c]), "fitted": True, "pareto_k": k,
                     "max_rhat": rhat, "min_ess_bulk": ess, **fit.sampler_problems(), "sampling_s": float(max(fit.timing["sampling_s"]))})  # fmt: skip
        zs.append(z)
        mis.append(y_mis)
    log_z = np.array(log_z)
    probs = np.exp(log_z - log_z.max())
    probs /= probs.sum()
    # the mixture over the fitted classes (screened-out classes weigh < exp(-screen))
    w = probs[fitted] / probs[fitted].sum()
    means = np.stack([m.mean(axis=(0, 1)) for m in mis])  # [fitted, M]
    second = np.stack([(m**2).mean(axis=(0, 1)) for m in mis])
    mix_mean = w @ means
    mix_sd = np.sqrt(np.maximum(w @ second - mix_mean**2, 0.0))
    draws = {"z": np.stack(zs, axis=2), "y_mis": np.stack(mis, axis=2)}
    return PerClassResult(probs, log_z, np.array(k_hat), mix_mean, mix_sd, rows, draws, fitted)


def summarize(result: PerClassResult, classes: list[str], truth: np.ndarray | None, missing: np.ndarray) -> dict:
    """A JSON-able assessment in the shape the softmax model's summary uses."""
    best = int(np.argmax(result.class_probs))
    out = {
        "class_model": "per-class",
        "class_posterior": result.class_probs.tolist(),
        "predicted_class": classes[best],
        "predicted_prob": float(result.class_probs[best]),
        "log_evidence": result.log_evidence.tolist(),
        "pareto_k": result.pareto_k.tolist(),
        "per_class": result.per_class,
        "fitted_classes": [classes[c] for c in result.fitted],
        "max_rhat_weighted": float(np.nanmax([r["max_rhat"] for r in result.per_class if r["fitted"] and result.class_probs[r["class"]] > 1e-3] or [np.nan])),
        "divergences": int(sum(r["divergences"] for r in result.per_class if r["fitted"])),
    }
    if truth is not None:
        out["rmse_missing"] = rmse(result.y_mis_mean, truth[missing])
    notes = []
    bad_k = [classes[i] for i, k in enumerate(result.pareto_k) if np.isfinite(k) and k > PARETO_K_LIMIT and result.class_probs[i] > 1e-3]
    if bad_k:
        notes.append(f"Pareto k̂ > {PARETO_K_LIMIT} for classes {', '.join(bad_k)}: their marginal likelihoods are unreliable; run more draws")
    fits = [r for r in result.per_class if r["fitted"]]
    unsettled = [classes[r["class"]] for r in fits if r["max_rhat"] > RHAT_LIMIT and result.class_probs[r["class"]] > 1e-3]
    if unsettled:
        notes.append(f"the fits of classes {', '.join(unsettled)} (posterior weight > 0.001) have R-hat > {RHAT_LIMIT}: "
                     "z given the class is not converged; run more warmup and draws")  # fmt: skip
    if out["divergences"]:
        notes.append(f"{out['divergences']} divergent transitions across the per-class fits: raise --adapt-delta")
    out["warnings"] = notes
    return out


def format_per_class(summary: dict, classes: list[str]) -> str:
    lines = [f"predicted class     {summary['predicted_class']} (p(c | y) = {summary['predicted_prob']:.3f}, per-class fits + marginal likelihoods)"]
    if "rmse_missing" in summary:
        lines.append(f"imputation RMSE     {summary['rmse_missing']:.4f} on missing pixels (mixture over classes)")
    lines.append(f"per-class fits      classes {', '.join(summary['fitted_classes'])} fitted (others screened out by Laplace evidence); "
                 f"max R-hat {summary['max_rhat_weighted']:.3f} (classes with p > 0.001), divergences {summary['divergences']}")
    order = np.argsort(summary["class_posterior"])[::-1][:3]
    lines.append("top classes:")
    for i in order:
        k = summary["pareto_k"][i]
        how = f"k̂ = {k:.2f}" if k is not None and np.isfinite(k) else "Laplace, not fitted"
        lines.append(f"  class {classes[i]}  p = {summary['class_posterior'][i]:.4f}  log p(y | c) = {summary['log_evidence'][i]:.2f}  {how}")
    lines += [f"WARNING: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


def write_per_class_outputs(out, result: PerClassResult, summary: dict, obs: Observation, meta: dict, classes: list[str]) -> None:
    """posterior.nc (per-class draws with a class dim), diagnostics, summary and figures."""
    from pathlib import Path

    from surrogate.fileio import atomic_path, pyplot, save_figure, write_json, write_text
    from surrogate.inpaint import plot_imputations

    az = import_arviz()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    K = result.draws["z"].shape[-1]
    idata = az.from_dict(
        posterior=result.draws,
        constant_data={"class_posterior": result.class_probs, "log_evidence": result.log_evidence,
                       "pareto_k": result.pareto_k, "missing": obs.missing},  # fmt: skip
        coords={"class": classes, "fitted_class": [classes[c] for c in result.fitted], "latent": np.arange(K),
                "missing_pixel": np.flatnonzero(obs.missing), "pixel": np.arange(obs.y.size)},  # fmt: skip
        dims={"z": ["fitted_class", "latent"], "y_mis": ["fitted_class", "missing_pixel"], "class_posterior": ["class"],
              "log_evidence": ["class"], "pareto_k": ["class"], "missing": ["pixel"]},  # fmt: skip
        attrs={"class_model": "per-class", "source": obs.source},
    )
    with atomic_path(out / "posterior.nc") as tmp:
        idata.to_netcdf(str(tmp))
    write_json(out / "diagnostics.json", summary)
    write_text(out / "summary.txt", format_per_class(summary, classes) + "\n")
    shape = tuple(meta.get("image_shape") or ())
    if len(shape) == 2:
        plot_imputations(out / "inpaint.png", obs, shape, [("mixture over classes", result.y_mis_mean, result.y_mis_sd)])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(classes, result.class_probs, color="black")
    ax.set_ylabel("p(class | observed pixels)")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    save_figure(fig, out / "class_probs.png")


def inpaint_per_class(decoder: dict, meta: dict, obs: Observation, sigma: float, settings: SamplerSettings,
                      engine: str = "auto", screen: float | None = 30.0, out=None) -> dict:  # fmt: skip
    """Run :func:`run_per_class`, summarise it and write the outputs to ``out`` when given."""
    classes = meta.get("classes") or [str(c) for c in range(decoder["C"])]
    result = run_per_class(decoder, obs, sigma, settings, engine, screen=screen)
    summary = summarize(result, classes, obs.y if obs.truth_known else None, obs.missing)
    if out is not None:
        write_per_class_outputs(out, result, summary, obs, meta, classes)
    summary["text"] = format_per_class(summary, classes)
    return summary
