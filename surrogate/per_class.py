"""The class posterior from per-class conditional fits combined by their marginal likelihoods.

The softmax class model (``inpaint.stan``) feeds relaxed class weights to the decoder,
and its posterior has well-separated modes. Here the class is what the CVAE was
trained on, a one-hot vector, and it is handled exactly:

* Fixing class c turns the CVAE decoder into an unconditional one: the first layer
  ``W1 [z; e_c] + b1 = W1[:, :K] z + (b1 + W1[:, K + c])``. Each class is sampled with
  the same ``inpaint.stan`` (C = 0), so NUTS only explores z given c.
* ``p(y | c) = ∫ N(y_obs | dec_c(z), σ) N(z | 0, I) dz`` is estimated by importance
  sampling from a mixture of multivariate t's, one fitted to each chain's draws; the
  Pareto k̂ of the weights (PSIS, Vehtari et al. 2024) says whether the estimate can be
  trusted. z given c can be multimodal itself, so the chains start at distinct
  optimisation optima and the mixture proposal weighs the modes they found by mass.
* ``p(c | y) ∝ p(y | c) p(c)`` with a uniform prior; imputations are the mixture over
  classes of the self-normalised importance-sampling means given each class.

The fits are independent (embarrassingly parallel) and cost C times one fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from surrogate.diagnostics import RHAT_LIMIT, import_arviz, rmse
from surrogate.errors import SurrogateError
from surrogate.export import torch_decoder
from surrogate.inpaint import Observation, stan_data
from surrogate.stan_engine import SamplerSettings, get_engine

PARETO_K_LIMIT = 0.7  # above this the importance-sampling estimate is unreliable
CHAIN_SPREAD_LIMIT = 0.05  # max |p_chain_i(c | y) - p_chain_j(c | y)| for chains to count as agreeing


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


def log_evidence(decoder: dict, obs: Observation, sigma: float, z_draws, n: int = 4000, seed: int = 0, df: float = 5.0,
                 return_draws: bool = False):  # fmt: skip
    """(log p(y), Pareto k̂) by importance sampling from multivariate t proposals fitted to ``z_draws``.

    ``z_draws`` is one array of draws ``[S, K]`` or a list of them (one per chain). With a
    list the proposal is the equal mixture of one t per chain (multiple importance
    sampling), so modes found by any chain are covered and weighed by their posterior
    mass, not by how many chains found them. ``return_draws`` also returns the proposal
    draws and their log weights (for self-normalised posterior expectations).
    """
    from scipy.special import logsumexp
    from scipy.stats import multivariate_t

    az = import_arviz()
    groups = [z_draws] if isinstance(z_draws, np.ndarray) else list(z_draws)
    rng = np.random.default_rng(seed)
    proposals = []
    for g in groups:
        cov = np.cov(g, rowvar=False) + 1e-9 * np.eye(g.shape[1])
        proposals.append(multivariate_t(loc=g.mean(axis=0), shape=cov, df=df))
    counts = np.diff(np.linspace(0, n, len(groups) + 1).round().astype(int))  # stratified: n / J draws from each
    z = np.concatenate([q.rvs(size=m, random_state=rng).reshape(m, -1) for q, m in zip(proposals, counts) if m])
    log_q = logsumexp(np.stack([q.logpdf(z).reshape(len(z)) for q in proposals]), axis=0) - np.log(len(proposals))
    log_w = log_joint(decoder, obs, sigma, z) - log_q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k_hat = az.psislw(log_w.copy())
    estimate = (float(logsumexp(log_w) - np.log(len(z))), float(k_hat))
    return (*estimate, z, log_w) if return_draws else estimate


def multistart_optima(decoder: dict, obs: Observation, sigma: float, starts: int = 16, seed: int = 0, steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """(objective values [C, starts], optima [C, starts, K]) of -log p(y_obs, z | c), best first per class.

    All classes and starts are optimised in one batch by Adam (per-coordinate steps, so
    the stacked problems stay independent); many starts cost little more than one, and
    a single start misses a class's best mode often enough to screen the true class out.
    The optima are approximate: :func:`laplace_evidence` polishes the one it is given.
    """
    import torch

    K, C = decoder["K"], decoder["C"]
    net = torch_decoder(decoder)
    observed = torch.from_numpy(~obs.missing)
    y = torch.from_numpy(obs.y)[observed]
    onehot = torch.eye(C, dtype=torch.float64).repeat_interleave(starts, 0)
    z = torch.randn(C * starts, K, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)

    def objective(z):
        mean = net(torch.cat([z, onehot], 1))[:, observed]
        return 0.5 * (((y - mean) / sigma) ** 2).sum(1) + 0.5 * (z**2).sum(1)

    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        objective(z).sum().backward()
        opt.step()
    with torch.no_grad():
        values = objective(z).numpy().reshape(C, starts)
    optima = z.detach().numpy().reshape(C, starts, K)
    order = np.argsort(values, axis=1)
    return np.take_along_axis(values, order, 1), np.take_along_axis(optima, order[..., None], 1)


def laplace_evidence(decoder: dict, obs: Observation, sigma: float, starts: int = 4, seed: int = 0,
                     inits: np.ndarray | None = None) -> tuple[float, np.ndarray, list[np.ndarray]]:  # fmt: skip
    """(Laplace approximation of log p(y), the MAP z, every start's optimum, best first) from L-BFGS runs.

    The runs start at ``inits`` (rows) when given, else at ``starts`` standard-normal draws.
    Used to screen classes (a class whose Laplace evidence is far below the best one's
    gets no full fit; see :func:`run_per_class`).
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
    if inits is None:
        inits = torch.randn(starts, K, dtype=torch.float64, generator=gen).numpy()
    best, optima = None, []
    for init in inits:
        z = torch.tensor(init, dtype=torch.float64).requires_grad_(True)
        opt = torch.optim.LBFGS([z], max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

        def closure():
            opt.zero_grad()
            loss = neg_log_joint(z)
            loss.backward()
            return loss

        opt.step(closure)
        value = float(neg_log_joint(z).detach())
        optima.append((value, z.detach().numpy().copy()))
        if best is None or value < best[0]:
            best = (value, z.detach().clone())
    value, z_map = best
    hessian = torch.autograd.functional.hessian(neg_log_joint, z_map).numpy()
    sign, logdet = np.linalg.slogdet(hessian)
    if sign <= 0:
        logdet = np.inf  # not a maximum: give the class no weight in the screen
    n_obs = int((~obs.missing).sum())
    const = -n_obs * (np.log(sigma) + 0.5 * np.log(2 * np.pi)) - 0.5 * K * np.log(2 * np.pi)
    optima = [z for _, z in sorted(optima, key=lambda pair: pair[0])]
    return float(-value + const + 0.5 * K * np.log(2 * np.pi) - 0.5 * logdet), z_map.numpy(), optima


@dataclass
class PerClassResult:
    class_probs: np.ndarray  # p(c | y)
    chain_class_probs: np.ndarray  # [chain, class]: p(c | y) from each chain's draws alone (do the chains agree?)
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

    z given a class can itself be multimodal (stroke styles). The chains of a fitted class
    therefore start at the distinct optima of the Laplace step's L-BFGS runs (best first;
    unless ``settings.init`` is a list), and p(y | c) and the imputations given c come from
    importance sampling with a mixture of one t proposal per chain: a mode found by any
    chain counts with its posterior mass, whatever the number of chains that found it.
    """
    az = import_arviz()
    if decoder["C"] == 0:
        raise SurrogateError("class model per-class needs a conditional decoder (C > 0); this one has C = 0")
    if not sigma or sigma <= 0:
        raise SurrogateError(f"class model per-class needs a fixed positive sigma, found {sigma}")
    settings = settings or SamplerSettings(chains=2, warmup=500, draws=500)
    runner = get_engine(engine)
    # --- screen: many batched starts per class, the best polished, Laplace evidence there ---
    _, starts = multistart_optima(decoder, obs, sigma, starts=max(16, settings.chains), seed=settings.seed)
    laplace = np.array([laplace_evidence(fix_class(decoder, c), obs, sigma, inits=starts[c, :1])[0] for c in range(decoder["C"])])
    fitted = [c for c in range(decoder["C"]) if screen is None or laplace[c] >= laplace.max() - screen]
    log_z, k_hat, rows, zs, mis, chain_log_z, means, second = [], [], [], [], [], [], [], []
    for c in range(decoder["C"]):
        if c not in fitted:
            log_z.append(float(laplace[c]))
            chain_log_z.append(np.full(settings.chains, float(laplace[c])))
            k_hat.append(float("nan"))
            rows.append({"class": c, "log_evidence": float(laplace[c]), "laplace_log_evidence": float(laplace[c]), "fitted": False})
            continue
        fixed = fix_class(decoder, c)
        run_settings = settings
        if not isinstance(settings.init, list):  # start each chain at one of the best optima, best first
            run_settings = replace(settings, init=[{"theta": starts[c, j].tolist()} for j in range(settings.chains)])
        fit = runner.run("inpaint", stan_data(fixed, obs, sigma), run_settings)
        z, y_mis = fit.draws["theta"], fit.draws["y_mis"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ds = az.convert_to_dataset({"z": z, "y_mis": y_mis})
            rhat = float(np.nanmax(az.rhat(ds).to_array().values)) if z.shape[0] > 1 else float("nan")
            ess = float(np.nanmin(az.ess(ds).to_array().values))
        lz, k, z_is, log_w = log_evidence(fixed, obs, sigma, list(z), n_importance, seed=settings.seed + c, return_draws=True)
        # E[y_mis | y, c] and E[y_mis^2 | y, c], self-normalised over the importance draws
        w_is = np.exp(log_w - log_w.max())
        w_is /= w_is.sum()
        decoded = _decode_missing(fixed, obs, z_is)
        means.append(w_is @ decoded)
        second.append(w_is @ decoded**2)
        log_z.append(lz)
        k_hat.append(k)
        chain_log_z.append([log_evidence(fixed, obs, sigma, z[j], n_importance, seed=settings.seed + c)[0] for j in range(z.shape[0])])
        rows.append({"class": c, "log_evidence": lz, "laplace_log_evidence": float(laplace[c]), "fitted": True, "pareto_k": k,
                     "max_rhat": rhat, "min_ess_bulk": ess, **fit.sampler_problems(), "sampling_s": float(max(fit.timing["sampling_s"]))})  # fmt: skip
        zs.append(z)
        mis.append(y_mis)
    log_z = np.array(log_z)
    probs = _normalize(log_z)
    chain_probs = _normalize(np.array(chain_log_z).T)
    # the mixture over the fitted classes (screened-out classes weigh < exp(-screen))
    w = probs[fitted] / probs[fitted].sum()
    means, second = np.stack(means), np.stack(second)  # [fitted, M]
    mix_mean = w @ means
    mix_sd = np.sqrt(np.maximum(w @ second - mix_mean**2, 0.0))
    draws = {"z": np.stack(zs, axis=2), "y_mis": np.stack(mis, axis=2)}
    return PerClassResult(probs, chain_probs, log_z, np.array(k_hat), mix_mean, mix_sd, rows, draws, fitted)


def _decode_missing(decoder: dict, obs: Observation, z: np.ndarray) -> np.ndarray:
    """The decoded mean at the missing pixels for each row of ``z`` (float64)."""
    import torch

    with torch.no_grad():
        return torch_decoder(decoder)(torch.from_numpy(z)).numpy()[:, obs.missing]


def _normalize(log_z: np.ndarray) -> np.ndarray:
    """Posterior class probabilities from log evidences (last axis), uniform class prior."""
    p = np.exp(log_z - log_z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


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
        "chain_class_posterior": result.chain_class_probs.tolist(),
        "chain_max_abs_diff": float(np.ptp(result.chain_class_probs, axis=0).max()),
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
        notes.append(f"the chains of classes {', '.join(unsettled)} (posterior weight > 0.001) have R-hat > {RHAT_LIMIT}: "
                     "z given the class is multimodal or not converged. p(y | c) and the imputations combine the chains' "
                     "modes by importance sampling; modes no chain found are missing: run more chains")  # fmt: skip
    if out["chain_max_abs_diff"] > CHAIN_SPREAD_LIMIT:
        notes.append(f"the class posteriors from each chain alone differ by up to {out['chain_max_abs_diff']:.3f} "
                     f"(limit {CHAIN_SPREAD_LIMIT}): chains found different modes; the reported posterior combines them")  # fmt: skip
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
    lines.append(f"chains agree        class posteriors from each chain alone differ by at most {summary['chain_max_abs_diff']:.3f}")
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
