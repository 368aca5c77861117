"""What every model fit shares, grids, sites and maps alike: the observation part of the Stan data, the
tidying of draws, speed and convergence figures, the scoring against a known truth and the warnings.

``gp_fit`` (``surrogate gp-fit``: a GP on a grid, surrogate / exact / HSGP) and ``areas_fit``
(``surrogate fit`` and ``sg.fit``: areas, sites and grids with covariates) are two thin tasks over it.
"""

from __future__ import annotations

import numpy as np

from surrogate.decoder.schema import LIKELIHOOD_CODES
from surrogate.inference.diagnostics import RHAT_LIMIT
from surrogate.tasks.gp_check import check_warning

INTERVAL = 0.9  # central posterior interval scored for coverage


def sample(program: str, sdata: dict, settings, engine, tidy, coords: dict, dims: dict, observed: dict, attrs: dict):
    """(the engine's fit, InferenceData): run ``program`` on ``sdata``, tidy its draws in place (``tidy(draws)``: names,
    derived quantities), and name their dims; the pointwise ``log_lik`` goes to its own group (for LOO)."""
    from surrogate.inference import SamplerSettings, get_engine, to_inference_data

    engine = get_engine(engine) if isinstance(engine, str) else engine
    conditioned = int(sdata.get("C", 0)) == 1  # a CVAE surrogate: adapt_delta 0.9 unless set (SamplerSettings.resolved)
    fit = engine.run(program, sdata, (settings or SamplerSettings()).resolved(conditioned))
    tidy(fit.draws)
    dims = {"log_lik": ["obs"], "y": ["obs"], "counts": ["obs"], **dims}
    return fit, to_inference_data(fit, coords, dims, observed, None, attrs, log_likelihood=["log_lik"])


def observation_stan_data(likelihood: str, obs_idx: np.ndarray, log_offset: np.ndarray, y=None, counts=None, trials=None,
                          intercept_prior=(0.0, 2.0), sigma_prior_scale: float = 1.0) -> dict:  # fmt: skip
    """``stan/include/observations_data.stan``: the observed locations (0-based here, 1-based in Stan), the outcome and the offset."""
    empty = np.zeros(0, dtype=int)
    return {
        "N_obs": len(obs_idx), "obs_idx": np.asarray(obs_idx) + 1, "likelihood": LIKELIHOOD_CODES[likelihood],
        "y": y if likelihood == "gaussian" else np.zeros(0), "counts": counts if likelihood != "gaussian" else empty,
        "trials": trials if likelihood == "binomial" else empty, "log_offset": log_offset,
        "intercept_prior_mean": float(intercept_prior[0]), "intercept_prior_sd": float(intercept_prior[1]),
        "sigma_prior_scale": float(sigma_prior_scale),
    }  # fmt: skip


def squeeze_draws(draws: dict, names) -> None:
    """Parameters declared as arrays of size 0 or 1 (``array[C] real ell``): size 1 becomes a scalar, size 0 goes."""
    for name in names:
        if name in draws and draws[name].ndim == 3:
            if draws[name].shape[-1] == 1:
                draws[name] = draws[name][..., 0]
            else:
                del draws[name]


def speed(fit) -> dict:
    """Wall and sampling seconds of a run, and microseconds per gradient in its sampling phase."""
    return {"wall_s": fit.timing["wall_s"], "compile_s": fit.timing["compile_s"],
            "sampling_s": float(max(fit.timing["sampling_s"])) + float(max(fit.timing["warmup_s"])),
            "us_per_gradient": 1e6 * float(sum(fit.timing["sampling_s"])) / float(fit.stats["n_steps"].sum())}  # fmt: skip


def sampling_scores(idata, fit, names) -> dict:
    """Max R-hat and min bulk ESS over ``names``, min bulk ESS of ``eta``, speed, sampler problems and ESS of eta per second."""
    from surrogate.inference.diagnostics import convergence

    conv = convergence(idata, names)
    ess_eta = convergence(idata, ["eta"])["min_ess_bulk"]
    result = {"chains": idata.posterior.sizes["chain"], "draws": idata.posterior.sizes["draw"], "max_rhat": conv["max_rhat"],
              "min_ess_bulk": conv["min_ess_bulk"], "min_ess_bulk_eta": ess_eta, **speed(fit), **fit.sampler_problems()}  # fmt: skip
    result["ess_per_s"] = ess_eta / result["wall_s"]
    result["ess_per_sampling_s"] = ess_eta / result["sampling_s"]
    result["gradients"] = int(fit.stats["n_steps"].sum())  # in the sampling phase, all chains
    result["gradients_per_ess"] = result["gradients"] / ess_eta if ess_eta else float("nan")
    result["adapt_delta"] = fit.settings.adapt_delta  # as resolved (SamplerSettings.resolved)
    return result


def truth_scores(eta: np.ndarray, truth: np.ndarray) -> dict:
    """RMSE of the posterior mean and the coverage of the central 90% intervals, for draws ``eta [S, D]`` of a known ``truth [D]``."""
    truth = np.asarray(truth, dtype=float)
    if truth.shape != eta.shape[1:]:
        raise ValueError(f"truth has shape {truth.shape}, the field {eta.shape[1:]}")
    lo, hi = np.quantile(eta, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    return {"rmse": float(np.sqrt(np.mean((eta.mean(0) - truth) ** 2))), "coverage90": float(np.mean((truth >= lo) & (truth <= hi)))}


def decoder_record(decoder_json, meta: dict) -> dict:
    """What a fit records of the decoder it sampled with (its file, weights and recorded prior check)."""
    return {"path": str(decoder_json), "weights_sha256": meta.get("weights_sha256"), "check_prior": meta.get("check_prior")}


def warning_lines(result: dict) -> list[str]:
    """The closing lines of a fit's summary: divergences, R-hat, a decoder that failed or lacks its prior check."""
    lines = []
    if result["divergences"]:
        used = f" above {result['adapt_delta']:g}" if result.get("adapt_delta") else ""
        lines.append(f"WARNING: {result['divergences']} divergent transitions: raise --adapt-delta{used}")
    if result["chains"] > 1 and result["max_rhat"] > RHAT_LIMIT:
        lines.append(f"WARNING: max R-hat {result['max_rhat']:.3f} > {RHAT_LIMIT}: run more warmup and draws")
    gate = check_warning((result.get("decoder") or {}).get("check_prior"), result["model"])
    if gate:
        lines.append(gate)
    return lines
