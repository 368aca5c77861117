"""Simulation-based calibration of a GP surrogate model (Talts et al. 2018; Modrák et al. 2023).

Does the surrogate model give calibrated posteriors for data from the prior the user meant?
Each replicate draws the truth from the *exact* prior of ``gp_surrogate.stan`` (the lengthscale
from its uniform prior, the field from the exact GP at that lengthscale, not from the decoder;
the intercept and the Gaussian noise sd from their priors), simulates data at a random share
of the cells, and fits the surrogate model with ``gp-fit``. The fits are one batch on Dask
(:mod:`surrogate.batch`). If the decoder is the GP it stands for, the rank of each true value
among ``L`` thinned posterior draws is uniform on ``0..L``; an under-dispersed decoder piles the
field's ranks at both ends.

Written to ``out``: ``data/rep-NNNN.json`` (the replicates, with their truth), ``fits/`` (the
batch: a fit folder per replicate, batch.json), ``sbc.json`` (ranks per quantity, a chi-square
uniformity p-value per quantity under ``rank_uniformity_p``, ``coverage90`` per quantity, whether
each rank ECDF stays inside its simultaneous 95% band) and ``sbc.png`` (ECDF-difference plots
with those bands, Säilynoja et al. 2022).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.fileio import pyplot, save_figure, write_json
from surrogate.tasks.gp_fit import DATA_FORMAT, simulate_observations

INTERCEPT_PRIOR = (0.0, 2.0)  # gp-fit's intercept prior: normal(mean, sd)
SIGMA_PRIOR_SCALE = 1.0  # gp-fit's Gaussian noise sd prior: half-normal(scale)
RANK_DRAWS = 99  # thinned posterior draws a rank is taken among: ranks 0..99, 100 values
BAND_LEVEL = 0.95  # simultaneous ECDF band
CELLS = (0.25, 0.5, 0.75)  # field values checked: the cells at these shares of the grid's cells


def draw_replicate(prior, r: int, seed: int, likelihood: str, observed: float) -> dict:
    """Replicate ``r``: its truth from the exact prior and data simulated from it (gp-simulate's format)."""
    rng = np.random.default_rng([seed, r])
    lo, hi = prior.lengthscale
    ell = float(lo if lo == hi else rng.uniform(lo, hi))
    intercept = float(rng.normal(*INTERCEPT_PRIOR))
    sigma = float(abs(rng.normal(0.0, SIGMA_PRIOR_SCALE))) if likelihood == "gaussian" else None
    variance = float(prior.variance[0])
    f = prior.sample(1, torch.Generator().manual_seed(seed * 1_000_003 + r), lengthscale=ell)[0][0].double().numpy()
    n_obs = max(1, round(observed * prior.size))
    obs_idx = np.sort(rng.choice(prior.size, n_obs, replace=False))
    data = {"format": DATA_FORMAT, "dim": prior.dim, "grid": prior.n, "likelihood": likelihood, "obs_idx": (obs_idx + 1).tolist(),
            "log_offset": [0.0] * n_obs, **simulate_observations(likelihood, intercept + f[obs_idx], rng, sigma or 1.0, 10)}  # fmt: skip
    data["truth"] = {"kernel": prior.kernel, "lengthscale": ell, "variance": variance, "intercept": intercept, "noise_sd": sigma,
                     "replicate": r, "seed": seed, "f": f.tolist(), "eta": (intercept + f).tolist()}  # fmt: skip
    return data


def check_sbc_inputs(run_dir: Path, replicates, likelihood: str, observed: float, chains, draws) -> tuple[object, Path]:
    from surrogate.nn.config import TrainConfig

    check_positive_int("replicates", replicates)
    check_choice("likelihood", likelihood, ("gaussian", "poisson"))
    if not 0 < observed <= 1:
        raise SurrogateError(f"observed must be a share of cells in (0, 1], found {observed}")
    check_positive_int("chains", chains)
    if chains * draws < RANK_DRAWS:
        raise SurrogateError(f"chains x draws must be at least {RANK_DRAWS} (ranks are taken among {RANK_DRAWS} thinned draws), found {chains} x {draws}")
    decoder = run_dir / "decoder.json"
    if not (run_dir / "config.json").is_file():
        raise SurrogateError(f"{run_dir} is not a training run (no config.json): give the folder of a gp1d/gp2d run")
    if not decoder.is_file():
        raise SurrogateError(f"{run_dir} has no decoder.json: run `surrogate export {run_dir}` first")
    config = TrainConfig.load(run_dir / "config.json")
    if not config.is_gp:
        raise SurrogateError(f"sbc needs a GP surrogate trained on gp1d or gp2d draws; {run_dir} was trained on {config.dataset}")
    return config.gp_prior(), decoder


def run_sbc(run_dir, replicates: int, out, likelihood: str = "gaussian", observed: float = 0.3, chains: int = 2, warmup: int = 500,
            draws: int = 500, seed: int = 1, scheduler: str | None = None, workers: int | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Simulate ``replicates`` data sets from the exact prior, fit the surrogate to each on Dask, write sbc.json and sbc.png."""
    from surrogate.batch import run_batch

    run_dir, out = Path(run_dir).resolve(), Path(out).resolve()
    prior, decoder = check_sbc_inputs(run_dir, replicates, likelihood, observed, chains, draws)
    names = [f"rep-{r:04d}" for r in range(1, replicates + 1)]
    for r, name in enumerate(names, 1):
        path = out / "data" / f"{name}.json"
        if not path.is_file():
            write_json(path, draw_replicate(prior, r, seed, likelihood, observed), indent=None)
    spec = {"command": "gp-fit", "options": {"model": "surrogate", "decoder": str(decoder), "chains": chains, "warmup": warmup, "draws": draws},
            "tasks": [{"name": n, "args": [str(out / "data" / f"{n}.json")], "options": {"seed": seed * 100_000 + r}} for r, n in enumerate(names, 1)]}  # fmt: skip
    write_json(out / "spec.json", spec)
    batch = run_batch(out / "spec.json", out / "fits", scheduler=scheduler, workers=workers, progress=progress)
    done = [t["name"] for t in batch["tasks"] if t["status"] == "done"]
    if not done:
        raise SurrogateError(f"no replicate was fitted: see {out / 'fits' / 'batch.csv'}")
    cells = sorted({min(prior.size - 1, int(s * prior.size)) for s in CELLS})
    ranks, covered, divergences = {}, {}, 0
    for name in done:
        truth = json.loads((out / "data" / f"{name}.json").read_text())["truth"]
        post, diag = fit_draws(out / "fits" / name)
        divergences += diag.get("divergences", 0)
        values = {"intercept": truth["intercept"], **{f"f[{c}]": truth["f"][c] for c in cells}}
        if "ell" in post:
            values["ell"] = truth["lengthscale"]
        if "sigma" in post and truth["noise_sd"] is not None:
            values["sigma"] = truth["noise_sd"]
        for q, true in values.items():
            d = post["f"][..., int(q[2:-1])] if q.startswith("f[") else post[q]
            ranks.setdefault(q, []).append(rank_of(true, d))
            lo, hi = np.quantile(d, [0.05, 0.95])
            covered.setdefault(q, []).append(bool(lo <= true <= hi))
    result = {"run_dir": str(run_dir), "replicates": replicates, "fitted": len(done), "failed": replicates - len(done), "likelihood": likelihood,
              "observed": observed, "chains": chains, "warmup": warmup, "draws": draws, "seed": seed, "rank_draws": RANK_DRAWS, "cells": cells,
              "divergences": int(divergences), "quantities": list(ranks), "ranks": ranks,
              "rank_uniformity_p": {q: uniformity_p(r, RANK_DRAWS) for q, r in ranks.items()},
              "coverage90": {q: float(np.mean(c)) for q, c in covered.items()}, "batch": str(out / "fits")}  # fmt: skip
    bands = ecdf_bands(len(done), RANK_DRAWS)
    result["ecdf_in_band"] = {q: bool(in_band(r, RANK_DRAWS, bands)) for q, r in ranks.items()}
    result["min_p"] = float(min(result["rank_uniformity_p"].values()))
    write_json(out / "sbc.json", result)
    plot_sbc(out / "sbc.png", ranks, RANK_DRAWS, bands)
    return result


def fit_draws(folder: Path) -> tuple[dict, dict]:
    """Posterior draws ``[chain, draw, ...]`` of one replicate's fit and its diagnostics."""
    import xarray as xr

    with xr.open_dataset(folder / "posterior.nc", group="posterior", engine="h5netcdf") as ds:
        post = {v: ds[v].values for v in ("f", "intercept", "ell", "sigma") if v in ds}
    return post, json.loads((folder / "diagnostics.json").read_text())


def rank_of(true: float, draws: np.ndarray, n: int = RANK_DRAWS) -> int:
    """Rank of ``true`` among ``n`` draws thinned evenly from ``draws [chain, draw]`` (every chain alike): 0..n."""
    flat = np.asarray(draws).T.reshape(-1)  # draw-major, so that even thinning takes from every chain
    thinned = flat[np.linspace(0, flat.size - 1, n).round().astype(int)]
    return int((thinned < true).sum())


def uniformity_p(ranks, n: int) -> float:
    """Chi-square test that ``ranks`` are uniform on ``0..n`` (bins of nearly equal width, about 10 ranks expected per bin)."""
    from scipy.stats import chi2

    ranks = np.asarray(ranks)
    bins = int(max(2, min(20, len(ranks) // 10, n + 1)))
    groups = np.array_split(np.arange(n + 1), bins)
    expected = np.array([len(g) / (n + 1) * len(ranks) for g in groups])
    observed = np.array([np.isin(ranks, g).sum() for g in groups])
    stat = float(((observed - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, bins - 1))


def ecdf_bands(N: int, n: int, simulations: int = 2000, level: float = BAND_LEVEL, seed: int = 0) -> dict:
    """Simultaneous ``level`` bands for the ECDF of ``N`` ranks uniform on ``0..n`` (Säilynoja et al. 2022, by simulation).

    The pointwise binomial level is lowered to the ``1 - level`` quantile of the smallest pointwise
    tail probability of simulated uniform rank sets, so that the whole ECDF stays inside with ``level``.
    """
    from scipy.stats import binom

    z = np.arange(1, n + 1) / (n + 1)  # P(rank < k) for k = 1..n
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, n + 1, size=(simulations, N))
    counts = (sims[:, :, None] < np.arange(1, n + 1)[None, None, :]).sum(1)
    tail = np.minimum(binom.cdf(counts, N, z), binom.sf(counts - 1, N, z))
    gamma = float(np.quantile(2 * tail.min(axis=1), 1 - level))
    lower = binom.ppf(gamma / 2, N, z) / N
    upper = binom.ppf(1 - gamma / 2, N, z) / N
    return {"z": z, "lower": lower, "upper": upper, "gamma": gamma}


def ecdf(ranks, n: int) -> np.ndarray:
    ranks = np.asarray(ranks)
    return (ranks[:, None] < np.arange(1, n + 1)[None, :]).mean(0)


def in_band(ranks, n: int, bands: dict) -> bool:
    e = ecdf(ranks, n)
    return bool(np.all((e >= bands["lower"] - 1e-12) & (e <= bands["upper"] + 1e-12)))


def plot_sbc(path: Path, ranks: dict, n: int, bands: dict) -> None:
    plt = pyplot()
    cols = min(3, len(ranks))
    rows = math.ceil(len(ranks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    z = bands["z"]
    for ax, (q, r) in zip(axes.flat, ranks.items()):
        ax.fill_between(z, bands["lower"] - z, bands["upper"] - z, step="post", color="0.85", label=f"{BAND_LEVEL:.0%} simultaneous band")
        ax.step(z, ecdf(r, n) - z, where="post", color="C0" if in_band(r, n, bands) else "C3")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{q} ({len(r)} replicates)")
        ax.set_xlabel("fractional rank")
        ax.set_ylabel("ECDF - uniform")
    for ax in list(axes.flat)[len(ranks) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)


def format_sbc(result: dict) -> str:
    lines = [f"SBC of {result['run_dir']}: {result['fitted']} of {result['replicates']} replicates fitted "
             f"({result['likelihood']} likelihood, {result['observed']:.0%} of cells observed; ranks among {result['rank_draws']} draws); "
             f"{result['divergences']} divergent transitions in all",
             f"{'quantity':>10}  {'rank uniformity p':>17}  {'90% coverage':>12}  ECDF in band"]  # fmt: skip
    for q in result["quantities"]:
        lines.append(f"{q:>10}  {result['rank_uniformity_p'][q]:17.3f}  {result['coverage90'][q]:12.2f}  {'yes' if result['ecdf_in_band'][q] else 'NO'}")
    bad = [q for q in result["quantities"] if result["rank_uniformity_p"][q] < 0.01]
    if bad:
        lines.append(f"WARNING: the ranks of {', '.join(bad)} are not uniform (p < 0.01): the surrogate's posterior is miscalibrated "
                     "for data from the exact prior; run check-prior and see sbc.png (a U shape: too narrow; a hump: too wide)")  # fmt: skip
    if result["failed"]:
        lines.append(f"WARNING: {result['failed']} replicates failed to fit and are left out (SBC is biased when failures depend on the data)")
    return "\n".join(lines)
