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
from surrogate.errors import SurrogateError, check_choice
from surrogate.fileio import pyplot, save_figure, write_text
from surrogate.inference import SamplerSettings
from surrogate.inference.diagnostics import import_arviz
from surrogate.inference.fitdir import FitResult, write_fit_dir
from surrogate.priors import exact_models, prior_class
from surrogate.spatial.data import AreaData
from surrogate.spatial.domain import check_same_domain
from surrogate.spatial.priors import SpatialPrior
from surrogate.tasks.fitting import (
    INTERVAL,
    decoder_record,
    observation_stan_data,
    sample,
    sampling_scores,
    squeeze_draws,
    truth_scores,
    warning_lines,
)

MODELS = ("surrogate", *exact_models())  # surrogate, or the exact model of a registered prior
SURROGATE_PROGRAM = "areas_surrogate"


# ----------------------------------------------------------------------------
# Stan data


def observation_data(data: AreaData, priors: dict) -> dict:
    """The observations (as every program reads them) and the covariates, field scale and unstructured effect."""
    return {**observation_stan_data(data.likelihood, data.obs_idx, data.log_offset, data.y, data.counts, data.trials, priors["intercept"],
                                    priors["noise_sd"]),
            "P": len(data.covariates), "X": data.X, "beta_prior_sd": priors["beta_sd"], "field_sd_prior_scale": priors["field_sd"],
            "iid": int(priors["iid"])}  # fmt: skip


def resolve_prior(model: str, data: AreaData, decoder_json=None, kernel: str | None = None, condition=None, islands: str | None = None,
                  options: tuple = ()) -> tuple:  # fmt: skip
    """(SpatialPrior, decoder data or None, decoder meta or None) for ``model`` on ``data.domain``."""
    check_choice("model", model, MODELS)
    decoder = meta = None
    spatial = {}
    if decoder_json is not None:
        decoder, meta = load_decoder(decoder_json)
        spatial = meta.get("spatial") or {}
        if not spatial:
            raise SurrogateError(f"{decoder_json} is not a spatial surrogate (its .meta.json has no spatial section; train with prior=NAME)")
        check_same_domain(spatial["domain"], data.domain, f"decoder {decoder_json}")
        if model != "surrogate" and spatial["prior"] != model:
            raise SurrogateError(f"decoder {decoder_json} was trained on prior {spatial['prior']}; the exact model for it is model="
                                 f"{spatial['prior']}, found model={model}")  # fmt: skip
    elif model == "surrogate":
        raise SurrogateError("model surrogate needs decoder=FILE (a decoder.json exported from a run trained with prior=NAME)")
    kind = spatial.get("prior", model)
    trained = tuple(spatial.get("condition") or ())
    if condition is not None and trained:
        name = prior_class(kind).hyper.name
        lo, hi = (condition[0], condition[-1])
        if not (trained[0] <= lo <= hi <= trained[1]):
            raise SurrogateError(f"{name} prior {lo},{hi} must lie inside the decoder's training range {trained[0]},{trained[1]}")
        if model == "surrogate" and decoder["C"] == 0 and (lo, hi) != trained:
            raise SurrogateError(f"this VAE was trained with {name} over {trained[0]},{trained[1]} marginalised; "
                                 "its prior cannot be narrowed (train a cvae to condition on it)")  # fmt: skip
    value = condition if condition is not None else (trained or None)
    prior = SpatialPrior(kind, data.domain, kernel or spatial.get("kernel") or "matern32", value, islands or spatial.get("islands") or "refuse",
                         spatial.get("agg_grid") or 30, tuple(options))  # fmt: skip
    if model == "surrogate" and decoder["D"] != data.domain.size:
        raise SurrogateError(f"decoder {decoder_json} decodes {decoder['D']} values; the domain has {data.domain.size}")
    if model == "surrogate" and decoder["C"] > 1:
        raise SurrogateError(f"{decoder_json} is conditioned on {decoder['C']} values; areas_surrogate.stan takes 0 or 1")
    if model == "surrogate" and decoder["C"] == 1 and prior.fixed:
        raise SurrogateError(f"a CVAE needs a {prior.condition_name} range lo,hi, found a fixed {prior.condition[0]}")
    return prior, decoder, meta


def stan_data(model: str, data: AreaData, prior: SpatialPrior, decoder: dict | None, priors: dict) -> dict:
    """The data of ``program_of(model, prior)``."""
    if priors["iid"] and model == "bym2":
        raise SurrogateError("bym2 has an unstructured area effect of its own: iid=True does not apply")
    obs = observation_data(data, priors)
    if model == "surrogate":
        lo, hi = prior.condition or (0.0, 0.0)
        return {**decoder, "cond_lower": lo, "cond_upper": hi, **obs}
    return {"D": data.domain.size, **prior.exact_data(), **obs}


def program_of(model: str, prior: SpatialPrior) -> str:
    """The Stan program that fits ``model`` (``surrogate``, or the exact model of ``prior``)."""
    return SURROGATE_PROGRAM if model == "surrogate" else prior.program


#: areas up to which a fit keeps the field's and the latent vectors' draws by default (``keep_field``)
KEEP_FIELD_MAX = 1000
#: the draws ``keep_field=False`` leaves out: the field and the latent vectors (eta, rr and log_lik are kept)
FIELD_DRAWS = ("f", "z", "phi", "theta", "eta_f", "beta_f", "u_raw")

DEFAULT_PRIORS = {"intercept": (0.0, 2.0), "beta_sd": 1.0, "field_sd": 1.0, "noise_sd": 1.0, "iid": False}


# ----------------------------------------------------------------------------
# fitting


def fit_areas(model: str, data: AreaData, settings: SamplerSettings | None = None, engine: str = "auto", out=None, decoder_json=None,
              kernel: str | None = None, condition=None, islands: str | None = None, priors: dict | None = None, truth=None,
              keep_field: bool | None = None, options: tuple = ()) -> FitResult:  # fmt: skip
    """Fit ``model`` to ``data``; ``condition`` is the hyperparameter's range (lengthscale, alpha or rho); ``truth``: a known
    linear predictor ``eta`` at every area (simulated data), scored by RMSE and 90% coverage.

    ``keep_field``: keep the draws of the field ``f`` and of the model's latent vectors (``z``, ``phi``, ``theta``,
    ``eta_f``, ``beta_f``, ``u_raw``) beside ``eta``, ``rr`` and ``log_lik``; None keeps them up to
    :data:`KEEP_FIELD_MAX` areas (4,000 draws of one 5,000-vector are 160 MB)."""
    settings = settings or SamplerSettings()
    priors = {**DEFAULT_PRIORS, **(priors or {})}
    prior, decoder, meta = resolve_prior(model, data, decoder_json, kernel, condition, islands, options)
    sdata = stan_data(model, data, prior, decoder, priors)
    program = program_of(model, prior)

    keep = data.domain.size <= KEEP_FIELD_MAX if keep_field is None else bool(keep_field)

    def tidy(draws: dict) -> None:
        if not keep:
            for name in FIELD_DRAWS:
                draws.pop(name, None)
        if "cond" in draws:  # the surrogate's condition, named as the exact model names it
            cond = draws.pop("cond")
            if cond.shape[-1] == 1 and prior.posterior_name:
                draws[prior.posterior_name] = cond[..., 0]
        draws.pop("ell_par", None)
        squeeze_draws(draws, ("rho", "sigma_iid", "sigma"))
        if "ell" in draws and prior.fixed:
            del draws["ell"]
        if data.covariates:
            original_scale(draws, data.x_mean, data.x_sd)

    ids = list(data.domain.ids)
    coords = {"area": ids, "obs": [ids[i] for i in data.obs_idx], "covariate": list(data.covariates), "latent": np.arange(sdata.get("K", 0))}
    dims = {name: ["area"] for name in ("f", "eta", "rr", "phi", "theta", "u_raw", "eta_f")}
    dims |= {"beta": ["covariate"], "beta_original": ["covariate"], "z": ["latent"], "beta_f": ["basis"]}
    observed = {"y": data.y} if data.y is not None else {"counts": data.counts}
    attrs = {"program": f"{program}.stan", "model": model, "prior": prior.kind, "likelihood": data.likelihood,
             "domain_hash": data.domain.content_hash()}  # fmt: skip
    fit, idata = sample(program, sdata, settings, engine, tidy, coords, dims, observed, attrs)
    scores = score(idata, data, fit, prior, model, priors, truth)
    if meta is not None:
        scores["decoder"] = decoder_record(decoder_json, meta) | {"prior": meta["spatial"]["prior"]}
    result = FitResult("areas", idata, scores, format_fit(scores), log=fit.log)
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


def score(idata, data: AreaData, fit, prior: SpatialPrior, model: str, priors: dict, truth=None) -> dict:
    """Convergence, speed, covariate effects, LOO."""
    post = idata.posterior
    names = [n for n in ("intercept", "beta", "sigma_field", "ell", "alpha", "rho", "sigma_iid", "sigma", "eta") if n in post]
    result = {"model": model, "program": f"{program_of(model, prior)}.stan", "prior": prior.to_dict() | {"domain": None}, "priors": priors,
              "likelihood": data.likelihood, "areas": data.domain.size, "observed": data.n_obs, "domain_hash": data.domain.content_hash(),
              **sampling_scores(idata, fit, names)}  # fmt: skip
    if model == "surrogate":  # is the exact sparse model predicted faster? (surrogate.tasks.cost)
        from surrogate.tasks.cost import exact_alternative

        result["exact_alternative"] = exact_alternative(prior.kind, data.domain.size, len(data.domain.edges), result["us_per_gradient"],
                                                        result["gradients_per_ess"])  # fmt: skip
    if prior.kind == "hsgp":  # the basis its defaults chose
        m, c = prior.spec.basis(prior)
        result["hsgp_basis"] = {"m": m, "c": c, "functions": m * m}
    if truth is not None:  # a simulated truth: the same scoring as gp-fit's
        result |= truth_scores(post["eta"].values.reshape(-1, data.domain.size), truth)
    result["covariate_effects"] = covariate_effects(post, data.covariates, data.x_sd)
    result |= interval_summaries(post, ("ell", "alpha", "rho", "sigma_field"))
    result |= loo_summary(idata)
    return result


def covariate_effects(post, covariates, x_sd) -> list[dict]:
    """Each covariate's coefficient: per unit (mean, 90% interval, rr per unit) and per sd of the covariate."""
    lo_q, hi_q = (1 - INTERVAL) / 2, (1 + INTERVAL) / 2
    effects = []
    for j, name in enumerate(covariates):
        b = post["beta_original"].values[..., j].ravel()
        bs = post["beta"].values[..., j].ravel()
        effects.append({"covariate": name, "mean": float(b.mean()), "interval90": np.quantile(b, [lo_q, hi_q]).tolist(),
                        "rr_per_unit": float(np.exp(b).mean()), "mean_per_sd": float(bs.mean()),
                        "interval90_per_sd": np.quantile(bs, [lo_q, hi_q]).tolist(), "sd_of_covariate": float(x_sd[j])})  # fmt: skip
    return effects


def interval_summaries(post, names) -> dict:
    """Posterior mean and 90% interval of each scalar in ``names`` that the posterior has."""
    lo_q, hi_q = (1 - INTERVAL) / 2, (1 + INTERVAL) / 2
    out = {}
    for name in names:
        if name in post:
            v = post[name].values.ravel()
            out[name] = {"mean": float(v.mean()), "interval90": np.quantile(v, [lo_q, hi_q]).tolist()}
    return out


def original_scale(draws: dict, x_mean, x_sd) -> None:
    """Coefficients on the covariates' own scale, and the intercept at their zero (from the standardised ones)."""
    draws["beta_original"] = draws["beta"] / x_sd
    draws["intercept_original"] = draws["intercept"] - (draws["beta"] * (x_mean / x_sd)).sum(-1)


def format_fit(r: dict) -> str:
    lines = [f"{r['program']} ({r['prior']['prior']} prior), {r['likelihood']} likelihood, {r['observed']} of {r['areas']} areas observed",
             f"max R-hat           {r['max_rhat']:.3f}",
             f"min ESS bulk (eta)  {r['min_ess_bulk_eta']:.0f}  ({r['ess_per_s']:.1f} per second of {r['wall_s']:.1f} s)",
             f"divergences         {r['divergences']}  (max tree depth hits {r['treedepth_hits']})",
             f"elpd_loo            {r['elpd_loo']:.1f} (se {r['elpd_loo_se']:.1f}, p_loo {r['p_loo']:.1f}; "
             f"Pareto k > 0.7: {r['pareto_k_over_0.7']}, 0.5-0.7: {r['pareto_k_0.5_to_0.7']})"]  # fmt: skip
    lines += effect_lines(r, ("ell", "alpha", "rho", "sigma_field"))
    if "rmse" in r:
        lines.append(f"vs the truth        RMSE {r['rmse']:.3f} of eta; 90% intervals cover {100 * r['coverage90']:.0f}% of areas")
    lines += warning_lines(r)
    from surrogate.tasks.cost import note

    lines += [line for line in [note(r.get("exact_alternative"))] if line]
    if r["pareto_k_over_0.7"]:
        lines.append(f"note: {r['pareto_k_over_0.7']} area(s) with Pareto k > 0.7: elpd_loo is unreliable there")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# outputs


def effect_lines(r: dict, names) -> list[str]:
    """Printed lines of the covariate effects and of the hyperparameters in ``names``."""
    lines = []
    for e in r["covariate_effects"]:
        lo, hi = e["interval90"]
        lines.append(f"{e['covariate']:<19} {e['mean']:.3g} per unit (90% interval {lo:.3g} to {hi:.3g}); "
                     f"{e['mean_per_sd']:.3f} per sd of {e['sd_of_covariate']:.3g}")  # fmt: skip
    for name in names:
        if name in r:
            lo, hi = r[name]["interval90"]
            lines.append(f"{name:<19} {r[name]['mean']:.3f} (90% interval {lo:.3f} to {hi:.3f})")
    return lines


def exceedance_column(threshold: float = 1.0) -> str:
    return f"p_rr_gt_{threshold:g}"


def area_table(idata, data: AreaData, threshold: float = 1.0):
    """Per area: observed outcome and offset, posterior mean/sd/90% interval of rr, P(rr > threshold), eta mean and sd."""
    import pandas as pd

    rr = idata.posterior["rr"].values.reshape(-1, data.domain.size)
    eta = idata.posterior["eta"].values.reshape(-1, data.domain.size)
    lo, hi = np.quantile(rr, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    table = pd.DataFrame({"id": list(data.domain.ids), "observed": False, "rr_mean": rr.mean(0), "rr_sd": rr.std(0), "rr_q05": lo, "rr_q95": hi,
                          exceedance_column(threshold): (rr > threshold).mean(0), "eta_mean": eta.mean(0), "eta_sd": eta.std(0)})  # fmt: skip
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
    plot_maps(out / "maps.png", data, table, title=map_title(result.diagnostics))


def map_title(diagnostics: dict) -> str:
    model, kind = diagnostics["model"], diagnostics["prior"]["prior"]
    return f"{model} model" if model == kind else f"{model} ({kind} prior)"


def plot_maps(path: Path | None, data: AreaData, table, title: str = "", threshold: float = 1.0, axes=None):
    """Choropleths (or coloured sites) of the posterior mean rr, its sd and P(rr > threshold); the figure."""
    plt = pyplot()
    label = "relative risk" if data.likelihood == "poisson" else ("odds" if data.likelihood == "binomial" else "exp(eta)")
    panels = [(f"posterior mean {label}", table["rr_mean"].values, "RdBu_r", True), (f"posterior sd of the {label}", table["rr_sd"].values, "viridis", False),
              (f"P({label} > {threshold:g})", table[exceedance_column(threshold)].values, "PuOr_r", False)]  # fmt: skip
    wide = np.ptp(data.domain.coords[:, 0]) > 2 * np.ptp(data.domain.coords[:, 1])
    if axes is None:
        fig, axes = plt.subplots(3 if wide else 1, 1 if wide else 3, figsize=(10, 9) if wide else (15, 4.5))
    fig = np.ravel(axes)[0].figure
    for ax, (name, values, cmap, centred) in zip(np.ravel(axes), panels):
        choropleth(ax, data.domain, values, cmap, centred, probability=name.startswith("P("))
        ax.set_title(name)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


#: colour-bar ticks of a ratio scale, roundest first: read as 0.8, 1, 1.25, never as 8x10^-1
RATIO_TICKS = ([1.0, 2.0, 0.5, 10.0, 0.1, 5.0, 0.2, 100.0, 0.01, 20.0, 0.05, 50.0, 0.02, 1000.0, 0.001]
               + [1.5, 0.67, 1.25, 0.8, 3.0, 0.33, 4.0, 0.25, 1.33, 0.75])  # fmt: skip


def ratio_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Ticks of :data:`RATIO_TICKS` inside [lo, hi], roundest first, each at least 1/count of the log range from the others."""
    gap = 0.999 * np.log10(hi / lo) / count
    chosen: list[float] = []
    for t in RATIO_TICKS:
        if lo <= t <= hi and all(abs(np.log10(t / c)) >= gap for c in chosen):
            chosen.append(t)
    return sorted(chosen) if len(chosen) >= 3 else sorted(set(chosen) | {float(f"{lo:.3g}"), float(f"{hi:.3g}")})


def choropleth(ax, domain, values: np.ndarray, cmap: str, centred: bool = False, probability: bool = False, span: float | None = None):
    """Colour ``domain``'s polygons (or sites) by ``values`` on ``ax``, with a colour bar whose ticks read as plain numbers;
    ``span``: a centred scale's limits 1/span to span (shared by several maps), else the values' own."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import FuncFormatter, NullLocator

    if centred:  # a log-symmetric scale around 1
        m = span or max(float(values.max()), 1 / float(values.min()), 1.05)
        norm = LogNorm(1 / m, m)
    else:
        norm = Normalize(0, 1) if probability else Normalize(float(values.min()), float(values.max()))
    if domain.geometry is not None:
        import geopandas as gpd

        gpd.GeoDataFrame({"v": values}, geometry=domain.geometry).plot(column="v", ax=ax, edgecolor="0.4", linewidth=0.3, cmap=cmap, norm=norm)
    else:
        ax.scatter(*domain.coords.T, c=values, s=30, cmap=cmap, norm=norm)
    bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6)
    if centred:
        bar.set_ticks(ratio_ticks(norm.vmin, norm.vmax))
        bar.ax.yaxis.set_minor_locator(NullLocator())
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    return bar


def fit_table(data_path, model: str, map_path=None, points=None, grid: int | None = None, id_column: str | None = None,
              contiguity: str | None = None, columns: dict | None = None, decoder_json=None, snap: float | None = None, time: str | None = None,
              interaction: str = "none", temporal: str = "rw1", forecast: int = 0, **options) -> FitResult:  # fmt: skip
    """Read the domain and the data table, then :func:`fit_areas`, or with ``time`` (the period column)
    :func:`~surrogate.tasks.spacetime_fit.fit_spacetime` (what ``surrogate fit`` runs)."""
    from surrogate.spatial.data import read_area_data, read_table
    from surrogate.spatial.domain import load_domain

    if contiguity is None and decoder_json is not None:  # read the map as the decoder's was read
        recorded = (load_decoder(decoder_json)[1].get("spatial") or {}).get("domain", {})
        contiguity, snap = recorded.get("contiguity"), snap if snap is not None else recorded.get("snap")
    domain = load_domain(None if map_path is None else str(map_path), None if points is None else str(points), grid,
                         id_column if map_path is not None or points is not None else None, contiguity or "queen", snap)  # fmt: skip
    if id_column is None:
        raise SurrogateError("give id=COLUMN: the column that names the areas in the data table (and in the map)")
    if time is not None:
        from surrogate.spatial.spacetime import spacetime_data
        from surrogate.tasks.spacetime_fit import fit_spacetime

        if options.pop("keep_field", None) is not None:
            raise SurrogateError("--keep-field applies to areal fits; a space-time fit keeps all of its draws")
        st = spacetime_data(read_table(data_path), domain, id_column, time, forecast=forecast, source=str(data_path), **(columns or {}))
        options.pop("kernel", None)
        return fit_spacetime(model, st, interaction, temporal, decoder_json=decoder_json, **options)
    if interaction != "none" or temporal != "rw1" or forecast or options.pop("trend_areas", None):
        raise SurrogateError("--interaction, --temporal, --forecast and --trend-areas belong to a space-time model: give --time-column")
    data = read_area_data(data_path, domain, id_column, **(columns or {}))
    return fit_areas(model, data, decoder_json=decoder_json, **options)
