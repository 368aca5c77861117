"""Areal and point-referenced models in Stan: a surrogate prior, or the exact baseline with the same prior.

Models and their programs (``stan/``): ``surrogate`` (``areas_surrogate.stan``: the decoder of a
run trained with ``--prior`` on this domain), ``bym2`` and ``icar`` (``areas_bym2.stan``, the
pairwise-difference form), ``car`` (``areas_car.stan``, the sparse proper CAR) and ``gp``
(``areas_gp.stan``, an exact GP at the sites or area centroids). All take the same covariates,
offset, likelihood and priors on the intercept, coefficients and the field's sd; given a
``decoder``, an exact model takes the decoder's prior settings (kind, range, island rule).

A fit folder holds what ``gp-fit`` writes (kind ``areas``), plus ``areas.csv`` (per area:
posterior mean, sd and 90% interval of the relative risk ``rr = exp(eta)`` and ``P(rr > 1)``)
and ``maps.png`` (choropleths of the mean, the sd and the exceedance probability).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surrogate.decoder.io import load_decoder
from surrogate.decoder.schema import KERNEL_CODES, LIKELIHOOD_CODES
from surrogate.errors import SurrogateError, check_choice
from surrogate.fileio import pyplot, save_figure, write_text
from surrogate.inference import SamplerSettings, get_engine, to_inference_data
from surrogate.inference.diagnostics import RHAT_LIMIT, convergence, import_arviz
from surrogate.inference.fitdir import FitResult, write_fit_dir
from surrogate.spatial.data import AreaData
from surrogate.spatial.domain import check_same_domain
from surrogate.spatial.priors import CONDITION, SpatialPrior
from surrogate.tasks.gp_check import check_warning

MODELS = ("surrogate", "bym2", "icar", "car", "gp")
PROGRAMS = {"surrogate": "areas_surrogate", "bym2": "areas_bym2", "icar": "areas_bym2", "car": "areas_car", "gp": "areas_gp"}
HYPER = {"lengthscale": "ell", "alpha": "alpha", "rho": "rho"}  # the posterior's name of each hyperparameter
INTERVAL = 0.9


# ----------------------------------------------------------------------------
# Stan data


def observation_data(data: AreaData, priors: dict) -> dict:
    like = data.likelihood
    empty = np.zeros(0, dtype=int)
    return {
        "N_obs": data.n_obs, "obs_idx": data.obs_idx + 1, "likelihood": LIKELIHOOD_CODES[like],
        "y": data.y if like == "gaussian" else np.zeros(0), "counts": data.counts if like != "gaussian" else empty,
        "trials": data.trials if like == "binomial" else empty, "log_offset": data.log_offset,
        "intercept_prior_mean": priors["intercept"][0], "intercept_prior_sd": priors["intercept"][1],
        "sigma_prior_scale": priors["noise_sd"], "P": len(data.covariates), "X": data.X,
        "beta_prior_sd": priors["beta_sd"], "field_sd_prior_scale": priors["field_sd"], "iid": int(priors["iid"]),
    }  # fmt: skip


def graph_data(prior: SpatialPrior) -> dict:
    g = prior.graph
    members = np.concatenate([c for c in g.components]) if g.components else np.zeros(0, int)
    return {"N_edges": len(g.edges), "node1": g.edges[:, 0] + 1, "node2": g.edges[:, 1] + 1, "N_islands": len(g.islands),
            "island_idx": g.islands + 1, "N_comp": len(g.components), "comp_size": [len(c) for c in g.components],
            "comp_members": members + 1, "scale": g.scale}  # fmt: skip


def car_data(prior: SpatialPrior) -> dict:
    W = np.zeros((prior.size, prior.size))
    e = prior.graph.edges
    W[e[:, 0], e[:, 1]] = W[e[:, 1], e[:, 0]] = 1.0
    degree = W.sum(1)
    degree[prior.graph.islands] = 1.0
    inv = 1 / np.sqrt(degree)
    return {"degree": degree, "eigen": np.linalg.eigvalsh(inv[:, None] * W * inv[None, :])}


def resolve_prior(model: str, data: AreaData, decoder_json=None, kernel: str | None = None, condition=None, islands: str | None = None) -> tuple:
    """(SpatialPrior, decoder data or None, decoder meta or None) for ``model`` on ``data.domain``."""
    check_choice("model", model, MODELS)
    decoder = meta = None
    spatial = {}
    if decoder_json is not None:
        decoder, meta = load_decoder(decoder_json)
        spatial = meta.get("spatial") or {}
        if not spatial:
            raise SurrogateError(f"{decoder_json} is not a spatial surrogate (its .meta.json has no spatial section; train with --prior)")
        check_same_domain(spatial["domain"], data.domain, f"decoder {decoder_json}")
        if model != "surrogate" and spatial["prior"] != model:
            raise SurrogateError(f"decoder {decoder_json} was trained on prior {spatial['prior']}; the exact model for it is --model "
                                 f"{spatial['prior']}, found --model {model}")  # fmt: skip
    elif model == "surrogate":
        raise SurrogateError("model surrogate needs --decoder (a decoder.json exported from a run trained with --prior)")
    kind = spatial.get("prior", model)
    trained = tuple(spatial.get("condition") or ())
    if condition is not None and trained:
        lo, hi = (condition[0], condition[-1])
        if not (trained[0] <= lo <= hi <= trained[1]):
            raise SurrogateError(f"{CONDITION[kind]} prior {lo},{hi} must lie inside the decoder's training range {trained[0]},{trained[1]}")
        if model == "surrogate" and decoder["C"] == 0 and (lo, hi) != trained:
            raise SurrogateError(f"this VAE was trained with {CONDITION[kind]} over {trained[0]},{trained[1]} marginalised; "
                                 "its prior cannot be narrowed (train a cvae to condition on it)")  # fmt: skip
    value = condition if condition is not None else (trained or None)
    prior = SpatialPrior(kind, data.domain, kernel or spatial.get("kernel") or "matern32", value, islands or spatial.get("islands") or "refuse",
                         spatial.get("agg_grid") or 30)  # fmt: skip
    if model == "surrogate" and decoder["D"] != data.domain.size:
        raise SurrogateError(f"decoder {decoder_json} decodes {decoder['D']} values; the domain has {data.domain.size}")
    if model == "surrogate" and decoder["C"] > 1:
        raise SurrogateError(f"{decoder_json} is conditioned on {decoder['C']} values; areas_surrogate.stan takes 0 or 1")
    if model == "surrogate" and decoder["C"] == 1 and prior.fixed:
        raise SurrogateError(f"a CVAE needs a {prior.condition_name} range lo,hi, found a fixed {prior.condition[0]}")
    return prior, decoder, meta


def stan_data(model: str, data: AreaData, prior: SpatialPrior, decoder: dict | None, priors: dict) -> dict:
    """The data of ``PROGRAMS[model]``."""
    if priors["iid"] and model == "bym2":
        raise SurrogateError("bym2 has an unstructured area effect of its own: --iid does not apply")
    obs = observation_data(data, priors)
    if model == "surrogate":
        lo, hi = prior.condition or (0.0, 0.0)
        return {**decoder, "cond_lower": lo, "cond_upper": hi, **obs}
    base = {"D": data.domain.size}
    if model in ("bym2", "icar"):
        lo, hi = prior.condition or (0.0, 1.0)
        if model == "bym2" and lo == hi:
            raise SurrogateError(f"bym2 infers rho: give a range lo,hi, found a fixed rho {lo}")
        return {**base, "icar": int(model == "icar"), "rho_lower": lo, "rho_upper": hi, **graph_data(prior), **obs}
    if model == "car":
        lo, hi = prior.condition
        if lo == hi:
            raise SurrogateError(f"car infers alpha: give a range lo,hi, found a fixed alpha {lo}")
        return {**base, "alpha_lower": lo, "alpha_upper": hi, **graph_data(prior), **car_data(prior), **obs}
    lo, hi = prior.condition
    return {**base, "dim": 2, "x": data.domain.coords, "kernel": KERNEL_CODES[prior.kernel], "sigma_f": 1.0, "ell_lower": lo, "ell_upper": hi, **obs}


DEFAULT_PRIORS = {"intercept": (0.0, 2.0), "beta_sd": 1.0, "field_sd": 1.0, "noise_sd": 1.0, "iid": False}


# ----------------------------------------------------------------------------
# fitting


def fit_areas(model: str, data: AreaData, settings: SamplerSettings | None = None, engine: str = "auto", out=None, decoder_json=None,
              kernel: str | None = None, condition=None, islands: str | None = None, priors: dict | None = None) -> FitResult:  # fmt: skip
    """Fit ``model`` to ``data``; ``condition`` is the hyperparameter's range (lengthscale, alpha or rho)."""
    settings = settings or SamplerSettings()
    priors = {**DEFAULT_PRIORS, **(priors or {})}
    prior, decoder, meta = resolve_prior(model, data, decoder_json, kernel, condition, islands)
    sdata = stan_data(model, data, prior, decoder, priors)
    engine = get_engine(engine) if isinstance(engine, str) else engine
    fit = engine.run(PROGRAMS[model], sdata, settings)
    draws = fit.draws
    hyper = HYPER.get(prior.condition_name or "", None)
    if "cond" in draws:  # the surrogate's condition, named as the exact model names it
        cond = draws.pop("cond")
        if cond.shape[-1] == 1 and hyper:
            draws[hyper] = cond[..., 0]
    for name in ("rho", "sigma_iid", "sigma", "ell_par"):
        if name in draws and draws[name].ndim == 3:
            if draws[name].shape[-1] == 1 and name != "ell_par":
                draws[name] = draws[name][..., 0]
            else:
                del draws[name]
    if "ell" in draws and prior.fixed:
        del draws["ell"]
    P = len(data.covariates)
    if P:  # coefficients on the covariates' own scale, and the intercept at their zero
        draws["beta_original"] = draws["beta"] / data.x_sd
        draws["intercept_original"] = draws["intercept"] - (draws["beta"] * (data.x_mean / data.x_sd)).sum(-1)
    ids = list(data.domain.ids)
    coords = {"area": ids, "obs": [ids[i] for i in data.obs_idx], "covariate": list(data.covariates), "latent": np.arange(sdata.get("K", 0))}
    dims = {name: ["area"] for name in ("f", "eta", "rr", "phi", "theta", "u_raw", "eta_f")}
    dims |= {"log_lik": ["obs"], "beta": ["covariate"], "beta_original": ["covariate"], "z": ["latent"], "y": ["obs"], "counts": ["obs"]}
    observed = {"y": data.y} if data.y is not None else {"counts": data.counts}
    attrs = {"program": f"{PROGRAMS[model]}.stan", "model": model, "prior": prior.kind, "likelihood": data.likelihood,
             "domain_hash": data.domain.content_hash()}  # fmt: skip
    idata = to_inference_data(fit, coords, dims, observed, None, attrs, log_likelihood=["log_lik"])
    scores = score(idata, data, fit, prior, model, priors)
    if meta is not None:
        scores["decoder"] = {"path": str(decoder_json), "weights_sha256": meta.get("weights_sha256"), "prior": meta["spatial"]["prior"],
                             "check_prior": meta.get("check_prior")}  # fmt: skip
    result = FitResult("areas", idata, scores, format_fit(scores))
    if out is not None:
        write_outputs(Path(out), result, data, fit.log)
    return result


def loo_summary(idata) -> dict:
    import warnings

    az = import_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(idata, pointwise=True)
    k = np.asarray(loo.pareto_k)
    return {"elpd_loo": float(loo.elpd_loo), "elpd_loo_se": float(loo.se), "p_loo": float(loo.p_loo),
            "pareto_k_over_0.7": int((k > 0.7).sum()), "pareto_k_0.5_to_0.7": int(((k > 0.5) & (k <= 0.7)).sum())}  # fmt: skip


def score(idata, data: AreaData, fit, prior: SpatialPrior, model: str, priors: dict) -> dict:
    """Convergence, speed, covariate effects, LOO."""
    post = idata.posterior
    names = [n for n in ("intercept", "beta", "sigma_field", "ell", "alpha", "rho", "sigma_iid", "sigma", "eta") if n in post]
    conv = convergence(idata, names)
    ess_eta = convergence(idata, ["eta"])["min_ess_bulk"]
    result = {"model": model, "program": f"{PROGRAMS[model]}.stan", "prior": prior.to_dict() | {"domain": None}, "priors": priors,
              "likelihood": data.likelihood, "areas": data.domain.size, "observed": data.n_obs, "domain_hash": data.domain.content_hash(),
              "chains": post.sizes["chain"], "draws": post.sizes["draw"], "max_rhat": conv["max_rhat"], "min_ess_bulk": conv["min_ess_bulk"],
              "min_ess_bulk_eta": ess_eta, "wall_s": fit.timing["wall_s"], "compile_s": fit.timing["compile_s"],
              "sampling_s": float(max(fit.timing["sampling_s"])) + float(max(fit.timing["warmup_s"])), **fit.sampler_problems()}  # fmt: skip
    result["ess_per_s"] = ess_eta / result["wall_s"]
    result["ess_per_sampling_s"] = ess_eta / result["sampling_s"]
    result["us_per_gradient"] = 1e6 * float(sum(fit.timing["sampling_s"])) / float(fit.stats["n_steps"].sum())
    lo_q, hi_q = (1 - INTERVAL) / 2, (1 + INTERVAL) / 2
    effects = []
    for j, name in enumerate(data.covariates):
        b = post["beta_original"].values[..., j].ravel()
        bs = post["beta"].values[..., j].ravel()
        effects.append({"covariate": name, "mean": float(b.mean()), "interval90": np.quantile(b, [lo_q, hi_q]).tolist(),
                        "rr_per_unit": float(np.exp(b).mean()), "mean_per_sd": float(bs.mean()),
                        "interval90_per_sd": np.quantile(bs, [lo_q, hi_q]).tolist(), "sd_of_covariate": float(data.x_sd[j])})  # fmt: skip
    result["covariate_effects"] = effects
    for name in ("ell", "alpha", "rho", "sigma_field"):
        if name in post:
            v = post[name].values.ravel()
            result[name] = {"mean": float(v.mean()), "interval90": np.quantile(v, [lo_q, hi_q]).tolist()}
    result |= loo_summary(idata)
    return result


def format_fit(r: dict) -> str:
    lines = [f"{r['program']} ({r['prior']['prior']} prior), {r['likelihood']} likelihood, {r['observed']} of {r['areas']} areas observed",
             f"max R-hat           {r['max_rhat']:.3f}",
             f"min ESS bulk (eta)  {r['min_ess_bulk_eta']:.0f}  ({r['ess_per_s']:.1f} per second of {r['wall_s']:.1f} s)",
             f"divergences         {r['divergences']}  (max tree depth hits {r['treedepth_hits']})",
             f"elpd_loo            {r['elpd_loo']:.1f} (se {r['elpd_loo_se']:.1f}, p_loo {r['p_loo']:.1f}; "
             f"Pareto k > 0.7: {r['pareto_k_over_0.7']}, 0.5-0.7: {r['pareto_k_0.5_to_0.7']})"]  # fmt: skip
    for e in r["covariate_effects"]:
        lo, hi = e["interval90"]
        lines.append(f"{e['covariate']:<19} {e['mean']:.3g} per unit (90% interval {lo:.3g} to {hi:.3g}); "
                     f"{e['mean_per_sd']:.3f} per sd of {e['sd_of_covariate']:.3g}")  # fmt: skip
    for name in ("ell", "alpha", "rho", "sigma_field"):
        if name in r:
            lo, hi = r[name]["interval90"]
            lines.append(f"{name:<19} {r[name]['mean']:.3f} (90% interval {lo:.3f}-{hi:.3f})")
    if r["divergences"]:
        lines.append(f"WARNING: {r['divergences']} divergent transitions: raise --adapt-delta")
    if r["chains"] > 1 and r["max_rhat"] > RHAT_LIMIT:
        lines.append(f"WARNING: max R-hat {r['max_rhat']:.3f} > {RHAT_LIMIT}: run more warmup and draws")
    gate = check_warning((r.get("decoder") or {}).get("check_prior"), r["model"])
    if gate:
        lines.append(gate)
    if r["pareto_k_over_0.7"]:
        lines.append(f"note: {r['pareto_k_over_0.7']} area(s) with Pareto k > 0.7: elpd_loo is unreliable there")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# outputs


def area_table(idata, data: AreaData):
    """Per area: observed outcome and offset, posterior mean/sd/90% interval of rr, P(rr > 1), eta mean and sd."""
    import pandas as pd

    rr = idata.posterior["rr"].values.reshape(-1, data.domain.size)
    eta = idata.posterior["eta"].values.reshape(-1, data.domain.size)
    lo, hi = np.quantile(rr, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    table = pd.DataFrame({"id": list(data.domain.ids), "observed": False, "rr_mean": rr.mean(0), "rr_sd": rr.std(0), "rr_q05": lo, "rr_q95": hi,
                          "p_rr_gt_1": (rr > 1).mean(0), "eta_mean": eta.mean(0), "eta_sd": eta.std(0)})  # fmt: skip
    table.loc[data.obs_idx, "observed"] = True
    outcome = data.counts if data.counts is not None else data.y
    table["outcome"] = np.nan
    table.loc[data.obs_idx, "outcome"] = outcome
    if data.expected is not None:
        table["expected"] = np.nan
        table.loc[data.obs_idx, "expected"] = data.expected
    return table


def write_outputs(out: Path, result: FitResult, data: AreaData, log: str = "") -> None:
    az = import_arviz()
    idata = result.idata
    names = [n for n in ("intercept", "beta", "beta_original", "intercept_original", "sigma_field", "ell", "alpha", "rho", "sigma_iid", "sigma")
             if n in idata.posterior]  # fmt: skip
    write_fit_dir(out, result, az.summary(idata, var_names=names), log)
    table = area_table(idata, data)
    write_text(out / "areas.csv", table.to_csv(index=False))
    model, kind = result.diagnostics["model"], result.diagnostics["prior"]["prior"]
    plot_maps(out / "maps.png", data, table, title=f"{model} model" if model == kind else f"{model} ({kind} prior)")


def plot_maps(path: Path, data: AreaData, table, title: str = "") -> None:
    """Choropleths (or coloured sites) of the posterior mean rr, its sd and P(rr > 1)."""
    plt = pyplot()
    label = "relative risk" if data.likelihood == "poisson" else ("odds" if data.likelihood == "binomial" else "exp(eta)")
    panels = [(f"posterior mean {label}", table["rr_mean"].values, "RdBu_r", True), (f"posterior sd of the {label}", table["rr_sd"].values, "viridis", False),
              (f"P({label} > 1)", table["p_rr_gt_1"].values, "PuOr_r", False)]  # fmt: skip
    geom = data.domain.geometry
    wide = np.ptp(data.domain.coords[:, 0]) > 2 * np.ptp(data.domain.coords[:, 1])
    fig, axes = plt.subplots(3 if wide else 1, 1 if wide else 3, figsize=(10, 9) if wide else (15, 4.5))
    for ax, (name, values, cmap, centred) in zip(np.ravel(axes), panels):
        kw = {"cmap": cmap}
        if centred:  # a log-symmetric scale around rr = 1
            from matplotlib.colors import LogNorm

            m = max(values.max(), 1 / values.min(), 1.05)
            kw["norm"] = LogNorm(1 / m, m)
        elif name.startswith("P("):
            kw |= {"vmin": 0, "vmax": 1}
        if geom is not None:
            import geopandas as gpd

            gdf = gpd.GeoDataFrame({"v": values}, geometry=geom)
            gdf.plot(column="v", ax=ax, edgecolor="0.4", linewidth=0.3, legend=True, legend_kwds={"shrink": 0.6}, **kw)
        else:
            sc = ax.scatter(*data.domain.coords.T, c=values, s=30, **kw)
            fig.colorbar(sc, ax=ax, shrink=0.6)
        ax.set_title(name)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)



def fit_table(data_path, model: str, map_path=None, points=None, grid: int | None = None, id_column: str | None = None,
              contiguity: str | None = None, columns: dict | None = None, decoder_json=None, **options) -> FitResult:  # fmt: skip
    """Read the domain and the data table, then :func:`fit_areas` (what ``surrogate fit`` runs)."""
    from surrogate.spatial.data import read_area_data
    from surrogate.spatial.domain import load_domain

    if contiguity is None and decoder_json is not None:
        contiguity = (load_decoder(decoder_json)[1].get("spatial") or {}).get("domain", {}).get("contiguity")
    domain = load_domain(None if map_path is None else str(map_path), None if points is None else str(points), grid,
                         id_column if map_path is not None or points is not None else None, contiguity or "queen")  # fmt: skip
    if id_column is None:
        raise SurrogateError("give --id-column: the column that names the areas in the data table (and in the map)")
    data = read_area_data(data_path, domain, id_column, **(columns or {}))
    return fit_areas(model, data, decoder_json=decoder_json, **options)
