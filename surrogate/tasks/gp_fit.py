"""Spatial GP models in Stan: simulate data from a known GP, fit it with a surrogate, exact or HSGP prior.

The three programs (``stan/gp_surrogate.stan``, ``gp_exact.stan``,
``gp_hsgp.stan``) share the observation part of their data block, read from
one JSON format (written by :func:`simulate`, ``surrogate gp-simulate``):

``dim``, ``grid`` (points per axis), ``likelihood`` (gaussian | poisson |
binomial), ``obs_idx`` (1-based observed cells), ``y`` (gaussian values) or
``counts`` (+ ``trials`` for binomial), ``log_offset`` (added to the linear
predictor; log exposure for Poisson), and optionally ``truth`` (the simulated
field ``eta = intercept + f`` and its settings, for scoring).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from surrogate.data.gp import KERNELS, GPPrior, check_range, grid_points
from surrogate.decoder.io import load_decoder
from surrogate.decoder.schema import GP_LATENT, KERNEL_CODES, LIKELIHOOD_CODES
from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.fileio import pyplot, read_json_object, save_figure
from surrogate.inference import SamplerSettings
from surrogate.inference.diagnostics import import_arviz
from surrogate.inference.fitdir import FitResult, write_fit_dir
from surrogate.tasks import fitting

DATA_FORMAT = "surrogate-gp-data/1"
MODELS = ("surrogate", "exact", "hsgp")
#: HSGP basis size and boundary factor rules (Riutort-Mayol et al. 2023, Table 1):
#: m >= m_factor * c / (ell / S), c >= max(1.2, c_factor * ell / S), S the half-range.


# ----------------------------------------------------------------------------
# data


def simulate(dim: int = 1, grid: int = 100, kernel: str = "matern52", lengthscale: float = 0.2, variance: float = 1.0,
             observed: float = 0.15, likelihood: str = "poisson", intercept: float = 1.0, trials: int = 10,
             noise_sd: float = 0.3, seed: int = 1) -> dict:  # fmt: skip
    """A data set from a known GP: ``f`` drawn exactly, observed at a random ``observed`` share of cells."""
    check_choice("likelihood", likelihood, LIKELIHOOD_CODES)
    if not 0 < observed <= 1:
        raise SurrogateError(f"observed must be a share of cells in (0, 1], found {observed}")
    check_positive_int("trials", trials)
    if not noise_sd > 0:
        raise SurrogateError(f"noise-sd must be positive, found {noise_sd}")
    prior = GPPrior(dim, grid, kernel, (lengthscale, lengthscale), (variance, variance))
    f = prior.sample(1, torch.Generator().manual_seed(seed))[0][0].double().numpy()
    rng = np.random.default_rng(seed)
    n_obs = max(1, round(observed * prior.size))
    obs_idx = np.sort(rng.choice(prior.size, n_obs, replace=False))
    eta = intercept + f
    data = {"format": DATA_FORMAT, "dim": dim, "grid": grid, "likelihood": likelihood, "obs_idx": (obs_idx + 1).tolist(),
            "log_offset": [0.0] * n_obs, **simulate_observations(likelihood, eta[obs_idx], rng, noise_sd, trials)}  # fmt: skip
    data["truth"] = {"kernel": kernel, "lengthscale": lengthscale, "variance": variance, "intercept": intercept,
                     "noise_sd": noise_sd if likelihood == "gaussian" else None, "seed": seed, "f": f.tolist(), "eta": eta.tolist()}  # fmt: skip
    return data


def simulate_observations(likelihood: str, eta: np.ndarray, rng: np.random.Generator, noise_sd: float, trials: int) -> dict:
    """The observation keys of a data set (``y``, or ``counts`` and ``trials``) at linear predictor ``eta``."""
    n = len(eta)
    if likelihood == "gaussian":
        return {"y": (eta + noise_sd * rng.standard_normal(n)).tolist()}
    if likelihood == "poisson":
        return {"counts": rng.poisson(np.exp(eta)).tolist()}
    return {"trials": [trials] * n, "counts": rng.binomial(trials, 1 / (1 + np.exp(-eta))).tolist()}


def validate_data(data: dict, source: str = "data") -> dict:
    """Check a GP data set; errors name the key and what was found."""
    for key in ("dim", "grid", "likelihood", "obs_idx"):
        if key not in data:
            raise SurrogateError(f"{source} lacks {key!r} (is it a `surrogate gp-simulate` file?)")
    if data["dim"] not in (1, 2):
        raise SurrogateError(f"{source}: dim must be 1 or 2, found {data['dim']!r}")
    check_positive_int(f"{source}: grid", data["grid"])
    check_choice("likelihood", data["likelihood"], LIKELIHOOD_CODES)
    D = data["grid"] ** data["dim"]
    idx = np.asarray(data["obs_idx"])
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise SurrogateError(f"{source}: obs_idx must be a non-empty list of integers, found {data['obs_idx']!r:.80}")
    if idx.min() < 1 or idx.max() > D:
        raise SurrogateError(f"{source}: obs_idx must lie in 1..{D} (1-based cells of a {data['grid']}^{data['dim']} grid), found {idx.min()}..{idx.max()}")
    if len(np.unique(idx)) != len(idx):
        raise SurrogateError(f"{source}: obs_idx repeats cells (e.g. {idx[np.argmax(np.bincount(idx))]})")
    n = len(idx)
    like = data["likelihood"]
    out = {"dim": data["dim"], "grid": data["grid"], "D": D, "likelihood": like, "obs_idx": idx.astype(int)}
    out["log_offset"] = np.asarray(data.get("log_offset", [0.0] * n), dtype=float)
    if out["log_offset"].shape != (n,) or not np.isfinite(out["log_offset"]).all():
        raise SurrogateError(f"{source}: log_offset must hold {n} finite numbers, found shape {out['log_offset'].shape}")
    if like == "gaussian":
        y = np.asarray(data.get("y", []), dtype=float)
        if y.shape != (n,) or not np.isfinite(y).all():
            raise SurrogateError(f"{source}: y must hold {n} finite numbers (one per observed cell), found shape {y.shape}")
        out["y"] = y
    else:
        counts = np.asarray(data.get("counts", []))
        if counts.shape != (n,) or not np.issubdtype(counts.dtype, np.integer):
            raise SurrogateError(f"{source}: counts must hold {n} integers (one per observed cell), found {data.get('counts')!r:.80}")
        if counts.min() < 0:
            raise SurrogateError(f"{source}: {like} counts must be non-negative, found {counts.min()} at cell {idx[np.argmin(counts)]}")
        out["counts"] = counts.astype(int)
        if like == "binomial":
            trials = np.asarray(data.get("trials", []))
            if trials.shape != (n,) or not np.issubdtype(trials.dtype, np.integer):
                raise SurrogateError(f"{source}: trials must hold {n} integers for the binomial likelihood, found {data.get('trials')!r:.80}")
            bad = np.flatnonzero(trials < counts)
            if bad.size:
                raise SurrogateError(f"{source}: binomial trials must be >= counts; found trials {trials[bad[0]]} < counts {counts[bad[0]]} at cell {idx[bad[0]]}")
            out["trials"] = trials.astype(int)
    truth = data.get("truth") or {}
    if "eta" in truth:
        out["eta_true"] = np.asarray(truth["eta"], dtype=float)
        if out["eta_true"].shape != (D,):
            raise SurrogateError(f"{source}: truth.eta must hold {D} values, found shape {out['eta_true'].shape}")
    out["truth"] = {k: v for k, v in truth.items() if k not in ("f", "eta")}
    return out


def read_data(path: str | Path) -> dict:
    return validate_data(read_json_object(path, "data file"), str(path))


# ----------------------------------------------------------------------------
# Stan data


def observation_data(data: dict, intercept_prior=(0.0, 2.0), sigma_prior_scale: float = 1.0) -> dict:
    return fitting.observation_stan_data(data["likelihood"], data["obs_idx"] - 1, data["log_offset"], data.get("y"), data.get("counts"),
                                 data.get("trials"), intercept_prior, sigma_prior_scale)  # fmt: skip


def hsgp_size(kernel: str, ell_lower: float, ell_upper: float) -> tuple[int, float]:
    """Default (M per dimension, boundary factor c) for lengthscales down to ``ell_lower`` on [0, 1]."""
    from surrogate.priors.hsgp import basis_size

    return basis_size(kernel, ell_lower, ell_upper, 0.5)


def stan_data(model: str, data: dict, decoder_json=None, kernel: str | None = None, lengthscale=None, variance: float | None = None,
              hsgp_m: int | None = None, hsgp_c: float | None = None, intercept_prior=(0.0, 2.0)) -> tuple[dict, dict]:  # fmt: skip
    """(Stan data for ``gp_<model>.stan``, the prior settings used) for a validated data set."""
    check_choice("model", model, MODELS)
    gp = {}
    if decoder_json is not None:
        decoder, meta = load_decoder(decoder_json)
        gp = meta.get("gp") or {}
        if not gp:
            raise SurrogateError(f"{decoder_json} is not a GP surrogate (its .meta.json has no gp section; train on gp1d or gp2d)")
        if (gp["dim"], gp["grid"]) != (data["dim"], data["grid"]):
            raise SurrogateError(f"grid size does not match the decoder: the data are on a {data['grid']}^{data['dim']} grid "
                                 f"({data['D']} cells), the decoder {decoder_json} on a {gp['grid']}^{gp['dim']} grid ({decoder['D']} cells)")  # fmt: skip
    elif model == "surrogate":
        raise SurrogateError("model surrogate needs decoder=FILE (a decoder.json exported from a gp1d/gp2d run)")
    kernel = kernel or gp.get("kernel") or data["truth"].get("kernel") or "matern52"
    check_choice("kernel", kernel, KERNELS)
    trained = tuple(gp.get("lengthscale", ()))
    lo, hi = check_range("lengthscale", lengthscale if lengthscale is not None else (trained or (0.05, 0.5)))
    if variance is None:
        var = gp.get("variance", [1.0, 1.0])
        if var[0] != var[1]:
            raise SurrogateError(f"the decoder was trained over variances {var}; give the exact/HSGP models a fixed --variance")
        variance = var[0]
    if not variance > 0:
        raise SurrogateError(f"variance must be positive, found {variance}")
    prior = {"kernel": kernel, "lengthscale_prior": [lo, hi], "variance": variance}
    obs = observation_data(data, intercept_prior)
    if model == "surrogate":
        if decoder["C"] == 0 and (lo, hi) != (trained[0], trained[0]):
            raise SurrogateError(f"this PriorVAE was trained at lengthscale {trained[0]} only; found lengthscale prior {lo},{hi}")
        if decoder["C"] == 1 and not (trained[0] <= lo < hi <= trained[1]):
            raise SurrogateError(f"lengthscale prior {lo},{hi} must lie inside the decoder's training range {trained[0]},{trained[1]} and not be fixed")
        if decoder["C"] > 1:
            raise SurrogateError(f"{decoder_json} is conditioned on {decoder['C']} values; gp_surrogate.stan takes 0 or 1 (the lengthscale)")
        prior["kernel"], prior["variance"] = gp["kernel"], gp["variance"]
        return {**decoder, "ell_lower": lo, "ell_upper": hi, **obs}, prior
    x = grid_points(data["dim"], data["grid"])
    base = {"D": data["D"], "dim": data["dim"], "x": x, "kernel": KERNEL_CODES[kernel], "sigma_f": math.sqrt(variance), "ell_lower": lo, "ell_upper": hi}
    if model == "hsgp":
        m, c = hsgp_size(kernel, lo, hi)
        m, c = hsgp_m or m, hsgp_c or c
        check_positive_int("hsgp-m", m)
        if not c >= 1:
            raise SurrogateError(f"hsgp-c (boundary factor) must be >= 1, found {c}")
        base |= {"M": m, "c_boundary": c}
        prior |= {"hsgp_m": m, "hsgp_c": c, "basis_functions": m ** data["dim"]}
    return {**base, **obs}, prior


# ----------------------------------------------------------------------------
# fitting


def fit_gp(model: str, data: dict, settings: SamplerSettings | None = None, engine: str = "auto", out=None, **options) -> FitResult:
    """Fit ``gp_<model>.stan`` to a validated data set; score against the truth when it is known.

    ``options`` go to :func:`stan_data` (decoder_json, kernel, lengthscale, variance, hsgp_m, hsgp_c).
    """
    sdata, prior = stan_data(model, data, **options)
    D = data["D"]
    latent = GP_LATENT[model]

    def tidy(draws: dict) -> None:
        draws["eta"] = draws["intercept"][..., None] + draws["f"]
        fitting.squeeze_draws(draws, ("ell", "sigma"))
        draws.pop("ell_par", None)
        if prior["lengthscale_prior"][0] == prior["lengthscale_prior"][1]:  # a fixed lengthscale is a constant, not a posterior
            draws.pop("ell", None)

    observed = {"y": data["y"]} if "y" in data else {"counts": data["counts"]}
    fit, idata = fitting.sample(f"gp_{model}", sdata, settings, engine, tidy, {"cell": np.arange(D), "obs": data["obs_idx"] - 1},
                        {"f": ["cell"], latent: [f"{latent}_dim"], "eta": ["cell"]}, observed,
                        {"program": f"gp_{model}.stan", "model": model, "likelihood": data["likelihood"]})  # fmt: skip
    scores = score(idata, data, fit, prior, model)
    if model == "surrogate":
        _, meta = load_decoder(options["decoder_json"])
        scores["decoder"] = fitting.decoder_record(options["decoder_json"], meta)
    result = FitResult("gp", idata, scores, format_fit(scores))
    if out is not None:
        write_fit_outputs(Path(out), result, data, fit.log)
    return result


def score(idata, data: dict, fit, prior: dict, model: str) -> dict:
    """Convergence, speed and (with a known truth) RMSE and interval coverage of eta = intercept + f."""
    az = import_arviz()
    post = idata.posterior
    ess_f = az.ess(idata, var_names=["f"], method="bulk")["f"].values
    ess_eta = az.ess(idata, var_names=["eta"], method="bulk")["eta"].values
    names = [n for n in ("f", "intercept", "ell", "sigma") if n in post]
    rhat = float(np.nanmax(az.rhat(idata, var_names=names).to_array().values)) if post.sizes["chain"] > 1 else float("nan")
    timing = fitting.speed(fit)
    result = {"model": model, **prior, "likelihood": data["likelihood"], "cells": data["D"], "observed": len(data["obs_idx"]),
              "chains": post.sizes["chain"], "draws": post.sizes["draw"], "max_rhat": rhat,
              "min_ess_bulk_f": float(np.nanmin(ess_f)), "min_ess_bulk_eta": float(np.nanmin(ess_eta)),
              "wall_s": timing["wall_s"], "compile_s": timing["compile_s"], "warmup_plus_sampling_s": timing["sampling_s"],
              **fit.sampler_problems()}  # fmt: skip
    result["ess_per_s"] = result["min_ess_bulk_f"] / result["wall_s"]
    result["us_per_gradient"] = timing["us_per_gradient"]  # sampling phase
    if "ell" in post:
        result["ell_mean"] = float(post["ell"].mean())
        result["ell_interval"] = np.quantile(post["ell"].values, [0.05, 0.95]).tolist()
    if "eta_true" in data:
        result |= fitting.truth_scores(post["eta"].values.reshape(-1, data["D"]), data["eta_true"])
        result["true_lengthscale"] = data["truth"].get("lengthscale")
    return result


def format_fit(result: dict) -> str:
    lines = [f"gp_{result['model']}.stan, {result['likelihood']} likelihood, {result['observed']} of {result['cells']} cells observed",
             f"max R-hat           {result['max_rhat']:.3f}",
             f"min ESS bulk (f)    {result['min_ess_bulk_f']:.0f}  ({result['ess_per_s']:.1f} per second of {result['wall_s']:.1f} s)",
             f"divergences         {result['divergences']}  (max tree depth hits {result['treedepth_hits']})"]  # fmt: skip
    if "ell_mean" in result:
        lo, hi = result["ell_interval"]
        lines.append(f"lengthscale         {result['ell_mean']:.3f} (90% interval {lo:.3f}-{hi:.3f})")
    if "rmse" in result:
        lines.append(f"vs the truth        RMSE {result['rmse']:.3f} of eta = intercept + f; 90% intervals cover {100 * result['coverage90']:.0f}% of cells")
    return "\n".join(lines + fitting.warning_lines(result))


def write_fit_outputs(out: Path, result: FitResult, data: dict, log: str = "") -> None:
    az = import_arviz()
    idata = result.idata
    names = [n for n in ("intercept", "ell", "sigma", "f") if n in idata.posterior]
    write_fit_dir(out, result, az.summary(idata, var_names=names), log)
    plot_field(out / "field.png", idata, data)
    if "ell" in idata.posterior:
        plot_lengthscale(out / "lengthscale.png", idata, result.diagnostics)


def plot_field(path: Path, idata, data: dict) -> None:
    """1-D: posterior mean of eta with a 90% band, the truth and the observed cells; 2-D: maps."""
    plt = pyplot()
    eta = idata.posterior["eta"].values.reshape(-1, data["D"])
    mean, sd = eta.mean(0), eta.std(0)
    lo, hi = np.quantile(eta, [0.05, 0.95], axis=0)
    truth = data.get("eta_true")
    obs = data["obs_idx"] - 1
    if data["dim"] == 1:
        x = grid_points(1, data["grid"])[:, 0]
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.fill_between(x, lo, hi, alpha=0.3, label="90% interval")
        ax.plot(x, mean, label="posterior mean")
        if truth is not None:
            ax.plot(x, truth, "k--", lw=1, label="truth")
        ax.plot(x[obs], np.full(len(obs), ax.get_ylim()[0]), "|", color="crimson", ms=10, label="observed cells")
        ax.set_xlabel("x")
        ax.set_ylabel("eta = intercept + f")
        ax.legend(fontsize=8, ncol=4)
    else:
        n = data["grid"]
        mask = np.full(data["D"], np.nan)
        mask[obs] = 1
        panels = [("posterior mean", mean), ("posterior sd", sd), ("observed cells", mask)] + ([("truth", truth)] if truth is not None else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4))
        vmin, vmax = np.nanmin([mean.min(), *(truth if truth is not None else [])]), np.nanmax([mean.max(), *(truth if truth is not None else [])])
        for ax, (title, values) in zip(axes, panels):
            kw = {"vmin": vmin, "vmax": vmax} if title in ("posterior mean", "truth") else {}
            im = ax.imshow(values.reshape(n, n), origin="lower", **kw)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_lengthscale(path: Path, idata, result: dict) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(idata.posterior["ell"].values.ravel(), bins=40, density=True, alpha=0.7, label="posterior")
    lo, hi = result["lengthscale_prior"]
    ax.hlines(1 / (hi - lo), lo, hi, colors="gray", label="prior")
    if result.get("true_lengthscale"):
        ax.axvline(result["true_lengthscale"], color="k", ls="--", label="truth")
    ax.set_xlabel("lengthscale")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)

