"""Disease maps over time: area x period models in Stan, exact or with a surrogate spatial prior.

At area i and period t the linear predictor is

    eta_it = intercept + x_it beta + s_i + gamma_t + epsilon_t + delta_it

with s a spatial main effect, gamma + epsilon the temporal main effect (sd ``sigma_time``; a share ``mix_time`` of
its variance a RW1, scaled as BYM2 scales the ICAR, or a stationary AR1, the rest iid period effects; it sums to
zero over the periods: the intercept takes its mean). The periods' totals pin it down, so it is sampled centred,
and its sd has the boundary-avoiding gamma(2, 2 / field_sd) prior of Chung et al. (2013): with two or three
periods a half-normal sd left a funnel at zero (NC SIDS: 101 divergent transitions) and a non-centred one a
ridge (596). delta is an interaction (Knorr-Held 2000): ``I`` iid, ``II`` a sum-to-zero
RW1 per area, ``III`` a spatial field per period, ``IV`` a RW1 over periods of spatial increments,
centred per area (with ICAR fields, the structure matrix R_t (x) R_s and both sets of sum-to-zero
constraints). ``ar1`` replaces s by per-period fields f_t = rho f_(t-1) + sqrt(1 - rho^2) u_t.

The spatial fields u are exact BYM2 or ICAR fields (``spacetime_bym2.stan``, model ``bym2`` / ``icar``)
or a trained decoder's (``spacetime_surrogate.stan``, model ``surrogate``: the decoder trained once on
the map, one pass per field). A fit folder holds what ``surrogate fit`` writes for a map, with
``cells.csv`` (per area-period), ``trends.csv`` (per area), ``maps_periods.png`` and ``trends.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surrogate.errors import SurrogateError, check_choice
from surrogate.fileio import pyplot, save_figure, write_text
from surrogate.inference import SamplerSettings
from surrogate.inference.diagnostics import import_arviz
from surrogate.inference.fitdir import FitResult, write_fit_dir
from surrogate.spatial.spacetime import SpaceTimeData, period_label
from surrogate.tasks.areas_fit import (
    DEFAULT_PRIORS,
    choropleth,
    covariate_effects,
    effect_lines,
    exceedance_column,
    interval_summaries,
    loo_summary,
    original_scale,
    resolve_prior,
)
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

INTERACTIONS = {"none": 0, "I": 1, "II": 2, "III": 3, "IV": 4, "ar1": 5}
TEMPORAL = {"rw1": 1, "ar1": 2}
EXACT_PRIORS = ("bym2", "icar")  # the spatial fields spacetime_bym2.stan has
NEEDS_TWO_PERIODS = {"II": "a RW1 per area", "IV": "a RW1 over periods", "ar1": "AR1 fields"}
HYPER = ("sigma_field", "rho", "rho_int", "sigma_time", "mix_time", "rho_time", "sigma_int", "rho_fields")
DROPPED = ("effect", "phi", "theta", "z", "int_raw", "time_free")  # the latent effects: eta and rr hold what users read


def check_structure(interaction: str, temporal: str, T: int) -> None:
    check_choice("interaction", interaction, tuple(INTERACTIONS))
    check_choice("temporal", temporal, tuple(TEMPORAL))
    if T < 2 and interaction in NEEDS_TWO_PERIODS:
        raise SurrogateError(f"interaction={interaction!r} ({NEEDS_TWO_PERIODS[interaction]}) needs two or more periods; the data have one")
    if T < 2 and temporal == "ar1":
        raise SurrogateError("temporal='ar1' needs two or more periods; the data have one (use temporal='rw1')")


def stan_data(model: str, data: SpaceTimeData, prior, decoder: dict | None, priors: dict, interaction: str, temporal: str) -> dict:
    """The data of ``spacetime_surrogate.stan`` (model ``surrogate``) or ``spacetime_bym2.stan``."""
    cells = data.cells
    obs = observation_stan_data(cells.likelihood, cells.obs_idx, cells.log_offset, cells.y, cells.counts, cells.trials, priors["intercept"],
                                priors["noise_sd"])  # fmt: skip
    common = {"T": data.T, "interaction": INTERACTIONS[interaction], "temporal": TEMPORAL[temporal], "P": len(cells.covariates),
              "X": cells.X, "beta_prior_sd": priors["beta_sd"], "field_sd_prior_scale": priors["field_sd"], **obs}  # fmt: skip
    if model == "surrogate":
        lo, hi = prior.condition or (0.0, 0.0)
        return {**decoder, "cond_lower": lo, "cond_upper": hi, **common}
    return {"D": data.D, **prior.exact_data(), **common}


def program_of(model: str) -> str:
    return "spacetime_surrogate" if model == "surrogate" else "spacetime_bym2"


def fit_spacetime(model: str, data: SpaceTimeData, interaction: str = "none", temporal: str = "rw1", settings: SamplerSettings | None = None,
                  engine: str = "auto", out=None, decoder_json=None, condition=None, islands: str | None = None, priors: dict | None = None,
                  truth=None, trend_areas=None) -> FitResult:  # fmt: skip
    """Fit a space-time model (see the module docstring); ``truth``: a known ``eta`` of shape (areas, periods), scored by RMSE and
    90% coverage over every area-period; ``trend_areas``: the area ids of ``trends.png`` (default: the surest trends)."""
    settings = settings or SamplerSettings()
    priors = {**DEFAULT_PRIORS, **(priors or {})}
    if priors["iid"]:
        raise SurrogateError("iid=True does not apply to a space-time model: interaction='I' adds an unstructured area-period effect")
    check_structure(interaction, temporal, data.T)
    unknown = [a for a in map(str, trend_areas or ()) if a not in set(data.domain.ids)]
    if unknown:
        raise SurrogateError(f"trend areas must be ids of the map, found {', '.join(unknown[:5])}")
    prior, decoder, meta = resolve_prior(model, data, decoder_json, None, condition, islands)
    if model != "surrogate" and prior.kind not in EXACT_PRIORS:
        raise SurrogateError(f"the exact space-time program has {' or '.join(EXACT_PRIORS)} fields; found model={model!r}: "
                             "train a surrogate of that prior on the map (sg.train) and fit with it")  # fmt: skip
    sdata = stan_data(model, data, prior, decoder, priors, interaction, temporal)
    program = program_of(model)
    D, T = data.D, data.T

    def tidy(draws: dict) -> None:
        for name in ("cond", "cond_int"):  # the surrogate's conditions, named as the exact model names them
            if name in draws:
                c = draws.pop(name)
                if c.shape[-1] == 1 and prior.posterior_name:
                    draws[prior.posterior_name + name[4:]] = c[..., 0]
        for name in DROPPED:
            draws.pop(name, None)
        squeeze_draws(draws, ("rho", "rho_int", "rho_time", "rho_fields", "sigma_int", "sigma"))
        for name in ("eta", "rr"):  # cells (period - 1) * D + area -> (area, period)
            draws[name] = draws[name].reshape(*draws[name].shape[:2], T, D).swapaxes(-1, -2)
        if data.covariates:
            original_scale(draws, data.cells.x_mean, data.cells.x_sd)

    ids = list(data.domain.ids)
    periods = [period_label(p) for p in data.periods]
    coords = {"area": ids, "period": periods, "obs": data.cell_labels(data.cells.obs_idx), "covariate": list(data.covariates)}
    dims = {"eta": ["area", "period"], "rr": ["area", "period"], "time_effect": ["period"], "beta": ["covariate"],
            "beta_original": ["covariate"]}  # fmt: skip
    observed = {"y": data.cells.y} if data.cells.y is not None else {"counts": data.cells.counts}
    attrs = {"program": f"{program}.stan", "model": model, "prior": prior.kind, "likelihood": data.likelihood, "interaction": interaction,
             "temporal": temporal, "domain_hash": data.domain.content_hash()}  # fmt: skip
    fit, idata = sample(program, sdata, settings, engine, tidy, coords, dims, observed, attrs)
    scores = score(idata, data, fit, prior, model, priors, interaction, temporal, truth)
    if meta is not None:
        scores["decoder"] = decoder_record(decoder_json, meta) | {"prior": meta["spatial"]["prior"]}
    result = FitResult("spacetime", idata, scores, format_fit(scores), log=fit.log)
    if out is not None:
        write_outputs(Path(out), result, data, fit.log, trend_areas)
    return result


def score(idata, data: SpaceTimeData, fit, prior, model: str, priors: dict, interaction: str, temporal: str, truth=None) -> dict:
    """Convergence, speed, covariate effects, hyperparameters, LOO over the observed area-periods."""
    post = idata.posterior
    names = [n for n in ("intercept", "beta", *HYPER, "ell", "alpha", "sigma", "eta") if n in post]
    result = {"model": model, "program": f"{program_of(model)}.stan", "prior": prior.to_dict() | {"domain": None}, "priors": priors,
              "interaction": interaction, "temporal": temporal, "likelihood": data.likelihood, "areas": data.D, "periods": data.T,
              "period_values": [float(p) for p in data.periods], "forecast": data.forecast, "observed": data.n_obs,
              "domain_hash": data.domain.content_hash(), **sampling_scores(idata, fit, names)}  # fmt: skip
    if truth is not None:
        truth = np.asarray(truth, dtype=float)
        if truth.shape != (data.D, data.T):
            raise SurrogateError(f"truth must have shape (areas, periods) = ({data.D}, {data.T}), found {truth.shape}")
        result |= truth_scores(post["eta"].values.reshape(-1, data.D * data.T), truth.ravel())
    result["covariate_effects"] = covariate_effects(post, data.covariates, data.cells.x_sd)
    result |= interval_summaries(post, (*HYPER, "ell", "alpha", "ell_int", "alpha_int"))
    result |= loo_summary(idata)
    return result


def format_fit(r: dict) -> str:
    what = "no interaction" if r["interaction"] == "none" else ("AR1 spatial fields" if r["interaction"] == "ar1" else
                                                               f"type {r['interaction']} interaction")  # fmt: skip
    lines = [f"{r['program']} ({r['prior']['prior']} fields, {what}, {r['temporal'].upper()} in time), {r['likelihood']} likelihood, "
             f"{r['observed']} of {r['areas']} x {r['periods']} area-periods observed",
             f"max R-hat           {r['max_rhat']:.3f}",
             f"min ESS bulk (eta)  {r['min_ess_bulk_eta']:.0f}  ({r['ess_per_s']:.1f} per second of {r['wall_s']:.1f} s)",
             f"divergences         {r['divergences']}  (max tree depth hits {r['treedepth_hits']})",
             f"elpd_loo            {r['elpd_loo']:.1f} (se {r['elpd_loo_se']:.1f}, p_loo {r['p_loo']:.1f}; "
             f"Pareto k > 0.7: {r['pareto_k_over_0.7']}, 0.5-0.7: {r['pareto_k_0.5_to_0.7']})"]  # fmt: skip
    lines += effect_lines(r, (*HYPER, "ell", "alpha", "ell_int", "alpha_int"))
    if "rmse" in r:
        lines.append(f"vs the truth        RMSE {r['rmse']:.3f} of eta; 90% intervals cover {100 * r['coverage90']:.0f}% of area-periods")
    lines += warning_lines(r)
    if r["pareto_k_over_0.7"]:
        lines.append(f"note: {r['pareto_k_over_0.7']} area-period(s) with Pareto k > 0.7: elpd_loo is unreliable there")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# outputs


def cell_table(idata, data: SpaceTimeData, threshold: float = 1.0):
    """Per area-period: outcome, expected, posterior mean/sd/90% interval of rr, P(rr > threshold), eta mean and sd."""
    import pandas as pd

    D, T = data.D, data.T
    rr = idata.posterior["rr"].values.reshape(-1, D, T).swapaxes(1, 2).reshape(-1, D * T)  # cells, period by period
    eta = idata.posterior["eta"].values.reshape(-1, D, T).swapaxes(1, 2).reshape(-1, D * T)
    lo, hi = np.quantile(rr, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    cells = np.arange(D * T)
    area, period = data.area_period(cells)
    table = pd.DataFrame({"id": [data.domain.ids[a] for a in area], data.time_column: data.periods[period], "observed": False,
                          "forecast": period >= T - data.forecast, "rr_mean": rr.mean(0), "rr_sd": rr.std(0), "rr_q05": lo, "rr_q95": hi,
                          exceedance_column(threshold): (rr > threshold).mean(0), "eta_mean": eta.mean(0), "eta_sd": eta.std(0)})  # fmt: skip
    c = data.cells
    table.loc[c.obs_idx, "observed"] = True
    table["outcome"] = np.nan
    table.loc[c.obs_idx, "outcome"] = c.counts if c.counts is not None else c.y
    if c.expected is not None:
        table["expected"] = np.nan
        table.loc[c.obs_idx, "expected"] = c.expected
    return table


def trend_table(idata, data: SpaceTimeData):
    """Per area: the posterior of its linear trend in eta per period step (least squares over the periods), its 90% interval,
    P(trend > 0), and the relative risk of the last period to the first."""
    import pandas as pd

    eta = idata.posterior["eta"].values.reshape(-1, data.D, data.T)
    t = np.arange(data.T, dtype=float)
    weights = (t - t.mean()) / max(((t - t.mean()) ** 2).sum(), 1e-12)
    slope = eta @ weights  # [S, D]
    ratio = np.exp(eta[..., -1] - eta[..., 0])
    lo, hi = np.quantile(slope, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    return pd.DataFrame({"id": list(data.domain.ids), "trend_mean": slope.mean(0), "trend_q05": lo, "trend_q95": hi,
                         "p_trend_gt_0": (slope > 0).mean(0), "rr_last_over_first": ratio.mean(0)})  # fmt: skip


def write_outputs(out: Path, result: FitResult, data: SpaceTimeData, log: str = "", trend_areas=None) -> None:
    az = import_arviz()
    idata = result.idata
    names = [n for n in ("intercept", "beta", "beta_original", "intercept_original", *HYPER, "ell", "alpha", "sigma", "time_effect")
             if n in idata.posterior]  # fmt: skip
    write_fit_dir(out, result, az.summary(idata, var_names=names), log)
    table = cell_table(idata, data)
    write_text(out / "cells.csv", table.to_csv(index=False))
    write_text(out / "trends.csv", trend_table(idata, data).to_csv(index=False))
    plot_periods(out / "maps_periods.png", data, table, title=map_title(result.diagnostics))
    plot_trends(out / "trends.png", data, idata, trend_areas)


def map_title(d: dict) -> str:
    what = {"none": "main effects", "ar1": "AR1 fields"}.get(d["interaction"], f"type {d['interaction']} interaction")
    return f"{d['model']} model ({d['prior']['prior']} fields, {what})"


def plot_periods(path: Path | None, data: SpaceTimeData, table, title: str = "", threshold: float = 1.0):
    """Small multiples, one column per period: posterior mean rr on one shared scale (top), P(rr > threshold) (bottom)."""
    plt = pyplot()
    T = data.T
    fig, axes = plt.subplots(2, T, figsize=(3.6 * T + 1, 6.5), squeeze=False)
    rr = table["rr_mean"].to_numpy().reshape(T, data.D)
    p = table[exceedance_column(threshold)].to_numpy().reshape(T, data.D)
    m = max(float(rr.max()), 1 / float(rr.min()), 1.05)
    for t in range(T):
        label = period_label(data.periods[t]) + (" (forecast)" if t >= T - data.forecast else "")
        bar = choropleth(axes[0, t], data.domain, rr[t], "RdBu_r", centred=True, span=m)  # one log scale for every period
        bar_p = choropleth(axes[1, t], data.domain, p[t], "PuOr_r", probability=True)
        if t < T - 1:  # one colour bar per row, beside the last period
            bar.remove()
            bar_p.remove()
        axes[0, t].set_title(f"{data.time_column} {label}\nmean relative risk")
        axes[1, t].set_title(f"P(rr > {threshold:g})")
        for ax in axes[:, t]:
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_trends(path: Path | None, data: SpaceTimeData, idata, areas=None, max_areas: int = 6):
    """Posterior mean rr and its 90% band over the periods for ``areas`` (ids; default: the areas with the surest trends), with
    the observed ratio outcome / expected where known."""
    plt = pyplot()
    ids = list(data.domain.ids)
    if areas is None:
        trends = trend_table(idata, data)
        sure = np.abs(trends["p_trend_gt_0"].to_numpy() - 0.5)
        areas = [ids[i] for i in np.argsort(-sure, kind="stable")[:max_areas]]
    unknown = [a for a in map(str, areas) if a not in ids]
    if unknown:
        raise SurrogateError(f"trend areas must be ids of the map, found {', '.join(unknown[:5])}")
    rr = idata.posterior["rr"].values.reshape(-1, data.D, data.T)
    x = data.periods
    n = len(areas)
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.2 * ((n + cols - 1) // cols)), squeeze=False)
    c = data.cells
    smr = np.full(data.D * data.T, np.nan)
    if c.expected is not None:
        smr[c.obs_idx] = c.counts / c.expected
    for ax, a in zip(axes.ravel(), map(str, areas)):
        i = ids.index(a)
        lo, hi = np.quantile(rr[:, i], [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
        ax.fill_between(x, lo, hi, alpha=0.3, label="90% interval")
        ax.plot(x, rr[:, i].mean(0), marker="o", label="posterior mean")
        if c.expected is not None:
            ax.plot(x, smr.reshape(data.T, data.D)[:, i], "k^", label="observed / expected")
        if data.forecast:
            ax.axvspan(x[-data.forecast] - 0.5 * np.diff(x).min(), x[-1] + 0.5 * np.diff(x).min(), color="0.9", zorder=0)
        ax.axhline(1, color="0.5", lw=0.8)
        ax.set_xticks(x, [period_label(p) for p in x])
        ax.set_title(f"area {a}")
        ax.set_xlabel(data.time_column)
        ax.set_ylabel("relative risk")
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


# ----------------------------------------------------------------------------
# simulation


def simulate(domain, periods: int, rho_fields: float = 0.7, mix: float = 0.5, sigma_field: float = 0.5, trend: float = 0.1,
             intercept: float = 0.0, beta: float = 0.3, expected: float = 30.0, seed: int = 0, prior: str = "bym2"):  # fmt: skip
    """A long table with a known space-time field: AR1 fields over the periods (``rho_fields``) of unit ``prior`` fields
    (BYM2 with mixing ``mix``), a linear ``trend`` per period, one covariate ``x`` with coefficient ``beta`` and Poisson counts
    around ``expected``. Returns (table with columns id, period, y, E, x; the true eta, [areas, periods])."""
    import pandas as pd

    from surrogate.priors import prior_class

    if periods < 1:
        raise SurrogateError(f"periods must be >= 1, found {periods}")
    rng = np.random.default_rng(seed)
    spec = prior_class(prior)(mix if prior_class(prior).hyper is not None else None)
    cov = spec.on(domain).covariance(mix if prior_class(prior).hyper is not None else None)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(len(cov)))
    D = domain.size
    u = chol @ rng.standard_normal((D, periods))
    f = np.empty_like(u)
    f[:, 0] = u[:, 0]
    for t in range(1, periods):
        f[:, t] = rho_fields * f[:, t - 1] + np.sqrt(1 - rho_fields**2) * u[:, t]
    x = rng.standard_normal((D, periods))
    time = trend * (np.arange(periods) - (periods - 1) / 2)
    eta = intercept + beta * x + time[None, :] + sigma_field * f
    E = expected * rng.uniform(0.5, 1.5, (D, 1)) * np.ones((1, periods))
    y = rng.poisson(E * np.exp(eta))
    ids = np.repeat(np.asarray(domain.ids)[:, None], periods, 1)
    table = pd.DataFrame({"id": ids.T.ravel(), "period": np.repeat(np.arange(1, periods + 1), D), "y": y.T.ravel(), "E": E.T.ravel(),
                          "x": x.T.ravel()})  # fmt: skip
    return table, eta
