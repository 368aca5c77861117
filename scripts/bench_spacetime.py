"""Disease maps over time, measured: the exact and surrogate versions of every space-time model on two real data
sets, a forecast of the last period, recovery of a known field and the cost per gradient against the number of periods.

    .venv/bin/python scripts/bench_spacetime.py --part real       # NC SIDS and St. Louis: 6 models x exact / surrogate
    .venv/bin/python scripts/bench_spacetime.py --part forecast   # the last period held out, scored by log score
    .venv/bin/python scripts/bench_spacetime.py --part recovery   # replicates of a known AR1 field on the NC map
    .venv/bin/python scripts/bench_spacetime.py --part cost       # microseconds per gradient at T = 1, 3, 10, 25
    .venv/bin/python scripts/bench_spacetime.py --part divergences   # the surrogate's divergences on NC: where, and at adapt_delta 0.95
    .venv/bin/python scripts/bench_spacetime.py --part rhat      # the exact St. Louis type III fit at 6,000 draws per chain

Each part adds its section to docs/bench_spacetime.json (the others are kept). Data: libpysal's bundled maps
(``sg.datasets``): NC SIDS (100 counties, rook contiguity as in the demo, 1974-78 and 1979-84, covariate: share of
non-white births) and St. Louis homicides (78 counties, queen, 1979-84, 1984-88, 1988-93, covariate: resource
deprivation RDAC); expected counts at the overall rate. The surrogate: ``sg.train(sg.BYM2(), domain)`` with its
defaults, trained once per map and reused for every model and period. Sampler: 4 chains, 1000 warmup, 1000 draws,
seed 1, adapt_delta 0.8 in both versions; a fit whose max R-hat exceeds 1.01 is run again with 3000 draws per chain
(both versions alike; the first run's figures are kept beside it).

Agreement (stated before measuring): posterior mean eta per area-period within 0.10 (max |delta|), median posterior
sd ratio within 0.9-1.1, and the covariate's 90% intervals overlapping.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "bench_spacetime.json"
WORK = ROOT / "bench_out" / "spacetime"
INTERACTIONS = ("none", "I", "II", "III", "IV", "ar1")
SAMPLER = {"chains": 4, "warmup": 1000, "draws": 1000, "seed": 1}
TOL = {"max_abs_delta_eta": 0.10, "sd_ratio": (0.9, 1.1)}
RHAT, LONG_DRAWS = 1.01, 3000  # a fit above this R-hat is run again with 4 x (1000 + 3000), exact and surrogate alike
DATASETS = {"nc": ("nc_sids", "SID ~ NWPROP + offset(log(E))", "rook", "NWPROP"), "stl": ("stl_homicides", "HC ~ RDAC + offset(log(E))",
                                                                                          "queen", "RDAC")}  # fmt: skip


def problem(name: str):
    import surrogate as sg

    fn, formula, contiguity, covariate = DATASETS[name]
    gdf, table = getattr(sg.datasets, fn)()
    return sg.Domain.from_map(gdf, id="FIPS", contiguity=contiguity), table, formula, covariate


def surrogate_of(name: str, domain, record: dict | None = None):
    """The map's BYM2 surrogate (trained with the defaults once; reused)."""
    import surrogate as sg

    run = WORK / f"{name}_bym2"
    if (run / "decoder.json").is_file():
        return sg.load(run)
    t0 = time.time()
    s = sg.train(sg.BYM2(), domain, out=run, force=True, log=lambda _: None)
    train_s = time.time() - t0
    t0 = time.time()
    check = s.check()
    if record is not None:
        record.update({"train_s": train_s, "check_s": time.time() - t0, "latent": s.latent, "check": check.to_dict()})
    s.export()
    return s


def fit_record(fit, covariate: str | None = None) -> dict:
    d = fit.diagnostics
    keys = ("wall_s", "sampling_s", "us_per_gradient", "ess_per_s", "min_ess_bulk_eta", "max_rhat", "divergences", "treedepth_hits",
            "elpd_loo", "elpd_loo_se", "p_loo", "pareto_k_over_0.7", "rmse", "coverage90")  # fmt: skip
    out = {k: d[k] for k in keys if k in d}
    for name in ("rho", "rho_int", "rho_fields", "rho_time", "sigma_field", "sigma_int", "sigma_time", "mix_time"):
        if name in d:
            out[name] = d[name]
    if covariate:
        e = next(e for e in d["covariate_effects"] if e["covariate"] == covariate)
        out["beta"] = {"mean": e["mean"], "interval90": e["interval90"]}
    return out


def agreement(exact, surrogate, covariate: str | None = None) -> dict:
    pe, ps = exact.idata.posterior["eta"], surrogate.idata.posterior["eta"]
    me, ms = pe.mean(("chain", "draw")).values, ps.mean(("chain", "draw")).values
    ratio = ps.std(("chain", "draw")).values / pe.std(("chain", "draw")).values
    delta = np.abs(me - ms)
    out = {"max_abs_delta_eta": float(delta.max()), "median_abs_delta_eta": float(np.median(delta)), "sd_ratio_median": float(np.median(ratio)),
           "sd_ratio_min": float(ratio.min()), "sd_ratio_max": float(ratio.max())}  # fmt: skip
    if covariate:
        (a, b), (c, d) = (next(e["interval90"] for e in f.diagnostics["covariate_effects"] if e["covariate"] == covariate)
                          for f in (exact, surrogate))  # fmt: skip
        out["beta_intervals_overlap"] = bool(a <= d and c <= b)
    lo, hi = TOL["sd_ratio"]
    out["agree"] = bool(out["max_abs_delta_eta"] <= TOL["max_abs_delta_eta"] and lo <= out["sd_ratio_median"] <= hi
                        and out.get("beta_intervals_overlap", True))  # fmt: skip
    return out


def part_real(args) -> dict:
    import surrogate as sg

    result = {}
    for name in args.datasets:
        domain, table, formula, covariate = problem(name)
        record: dict = {}
        s = surrogate_of(name, domain, record)
        rows = []
        for interaction in args.interactions:
            fits = {}
            first = {}
            for model, prior in (("exact", "bym2"), ("surrogate", s)):
                fits[model] = sg.fit(formula, table, domain, prior=prior, time="period", interaction=interaction, **SAMPLER)
                print(name, interaction, model, fits[model].result.text.splitlines()[1:4], flush=True)
                if fits[model].diagnostics["max_rhat"] > RHAT:  # the same rule for both versions: more draws
                    first[model] = fit_record(fits[model], covariate)
                    fits[model] = sg.fit(formula, table, domain, prior=prior, time="period", interaction=interaction,
                                         **{**SAMPLER, "draws": LONG_DRAWS})  # fmt: skip
                    print(name, interaction, model, f"rerun with {LONG_DRAWS} draws:", fits[model].result.text.splitlines()[1:4], flush=True)
            rows.append({"interaction": interaction, "exact": fit_record(fits["exact"], covariate),
                         "surrogate": fit_record(fits["surrogate"], covariate), "agreement": agreement(fits["exact"], fits["surrogate"], covariate),
                         "ess_per_s_ratio": fits["surrogate"].diagnostics["ess_per_s"] / fits["exact"].diagnostics["ess_per_s"],
                         "first_runs_over_rhat_limit": first})  # fmt: skip
        result[name] = {"areas": domain.size, "periods": int(table["period"].nunique()), "formula": formula, "surrogate": record, "models": rows}
    return result


def log_score(fit, table, outcome: str, period: int, chain: int | None = None) -> float:
    """Sum over the held-out area-periods of log mean_s Poisson(y | E exp(eta_s)): the log predictive density (of one chain's
    draws if ``chain`` is given: their spread is the Monte Carlo error)."""
    from scipy.special import gammaln, logsumexp

    data = fit.data
    t = list(data.periods).index(period)
    eta = fit.idata.posterior["eta"].values
    eta = (eta if chain is None else eta[chain : chain + 1]).reshape(-1, data.D, data.T)[:, :, t]
    rows = table[table["period"] == period].set_index("FIPS").loc[list(data.domain.ids)]
    y, E = rows[outcome].to_numpy(), rows["E"].to_numpy()
    mu = E[None, :] * np.exp(eta)
    logp = y[None, :] * np.log(mu) - mu - gammaln(y + 1)[None, :]
    return float((logsumexp(logp, axis=0) - np.log(len(eta))).sum())


def forecast_record(fit, table, outcome: str, period: int) -> dict:
    chains = [log_score(fit, table, outcome, period, c) for c in range(fit.idata.posterior.sizes["chain"])]
    return {"log_score": log_score(fit, table, outcome, period), "log_score_per_chain": chains,
            "log_score_mc_se": float(np.std(chains, ddof=1) / np.sqrt(len(chains))), **fit_record(fit)}  # fmt: skip


def part_forecast(args) -> dict:
    import surrogate as sg

    result = {}
    for name in args.datasets:
        domain, table, formula, covariate = problem(name)
        s = surrogate_of(name, domain)
        outcome = formula.split("~")[0].strip()
        last = int(table["period"].max())
        held = table.copy()
        held.loc[held["period"] == last, outcome] = np.nan
        rows = []
        for interaction in args.forecast_interactions:
            row, fits = {"interaction": interaction}, {}
            for model, prior in (("exact", "bym2"), ("surrogate", s)):
                fits[model] = sg.fit(formula, held, domain, prior=prior, time="period", interaction=interaction, **SAMPLER)
                row[model] = forecast_record(fits[model], table, outcome, last)
                print(name, "forecast", interaction, model, row[model]["log_score"], row[model]["log_score_mc_se"], flush=True)
            t = last - 1  # the held-out period's eta: exact vs surrogate
            pe, ps = (fits[m].idata.posterior["eta"].isel(period=t) for m in ("exact", "surrogate"))
            delta = np.abs(pe.mean(("chain", "draw")).values - ps.mean(("chain", "draw")).values)
            ratio = ps.std(("chain", "draw")).values / pe.std(("chain", "draw")).values
            row["held_out_agreement"] = {"max_abs_delta_eta": float(delta.max()), "median_abs_delta_eta": float(np.median(delta)),
                                         "sd_ratio_median": float(np.median(ratio))}  # fmt: skip
            rows.append(row)
        result[name] = {"held_out_period": last, "models": rows}
    return result


def part_recovery(args) -> dict:
    """Replicates of a known field (AR1 fields, rho 0.7, of BYM2 fields with mixing 0.5) on the NC map over 5 periods."""
    import surrogate as sg
    from surrogate.tasks.spacetime_fit import simulate

    domain, _, _, _ = problem("nc")
    s = surrogate_of("nc", domain)
    rows = []
    for r in range(args.replicates):
        table, eta = simulate(domain, 5, rho_fields=0.7, mix=0.5, sigma_field=0.5, seed=100 + r)
        table = table.rename(columns={"id": "FIPS"})
        fit = sg.fit("y ~ x + offset(log(E))", table, domain, prior=s, time="period", interaction="ar1", truth=eta, chains=2, warmup=500,
                     draws=500, seed=r + 1)  # fmt: skip
        d = fit.diagnostics
        lo, hi = d["rho_fields"]["interval90"]
        beta = d["covariate_effects"][0]
        rows.append({"replicate": r, "rmse": d["rmse"], "coverage90": d["coverage90"], "rho_fields_mean": d["rho_fields"]["mean"],
                     "rho_fields_covered": bool(lo <= 0.7 <= hi), "beta_covered": bool(beta["interval90"][0] <= 0.3 <= beta["interval90"][1]),
                     "max_rhat": d["max_rhat"], "divergences": d["divergences"], "wall_s": d["wall_s"]})  # fmt: skip
        print("replicate", r, rows[-1], flush=True)
    cov = np.array([r["coverage90"] for r in rows])
    return {"map": "nc (100 counties)", "periods": 5, "truth": {"rho_fields": 0.7, "mix": 0.5, "sigma_field": 0.5, "beta": 0.3, "trend": 0.1},
            "model": "surrogate, interaction ar1, 2 chains x (500 + 500)", "replicates": rows,
            "summary": {"field_coverage90_mean": float(cov.mean()), "rho_fields_coverage90": float(np.mean([r["rho_fields_covered"] for r in rows])),
                        "beta_coverage90": float(np.mean([r["beta_covered"] for r in rows])),
                        "rho_fields_mean_of_means": float(np.mean([r["rho_fields_mean"] for r in rows])),
                        "rmse_mean": float(np.mean([r["rmse"] for r in rows])), "divergences": int(sum(r["divergences"] for r in rows)),
                        "max_rhat": float(max(r["max_rhat"] for r in rows))}}  # fmt: skip


def part_cost(args) -> dict:
    """Microseconds per gradient against T on the NC map (simulated counts; 1 chain, 300 + 300)."""
    import surrogate as sg
    from surrogate.tasks.spacetime_fit import simulate

    domain, _, _, _ = problem("nc")
    s = surrogate_of("nc", domain)
    rows = []
    for T in args.periods:
        table, _ = simulate(domain, T, seed=7)
        table = table.rename(columns={"id": "FIPS"})
        for model, prior, interaction in (("surrogate", s, "III"), ("surrogate", s, "ar1"), ("exact", "bym2", "III"), ("exact", "bym2", "IV")):
            if T < 2 and interaction in ("ar1", "IV"):
                continue
            fit = sg.fit("y ~ x + offset(log(E))", table, domain, prior=prior, time="period", interaction=interaction, chains=1, warmup=300,
                         draws=300, seed=1)  # fmt: skip
            d = fit.diagnostics
            rows.append({"T": T, "model": model, "interaction": interaction, "us_per_gradient": d["us_per_gradient"], "ess_per_s": d["ess_per_s"],
                         "divergences": d["divergences"], "fields": T + 1 if interaction == "III" else (T if interaction == "ar1" else 1 + T - 1)})  # fmt: skip
            print(rows[-1], flush=True)
    slopes = {}
    for model, interaction in {(r["model"], r["interaction"]) for r in rows}:
        pts = [(r["T"], r["us_per_gradient"]) for r in rows if r["model"] == model and r["interaction"] == interaction]
        if len(pts) >= 2:
            t, us = np.array(pts).T
            slope, intercept = np.polyfit(t, us, 1)
            loglog = np.polyfit(np.log(t), np.log(us), 1)[0]
            slopes[f"{model} {interaction}"] = {"us_per_period": float(slope), "us_at_zero": float(intercept), "loglog_slope": float(loglog),
                                                "linear_fit_r2": float(np.corrcoef(t, us)[0, 1] ** 2)}  # fmt: skip
    return {"map": "nc (100 counties)", "rows": rows, "fits": slopes}


def part_divergences(args) -> dict:
    """Where the surrogate's divergent transitions on NC SIDS fall, and whether adapt_delta 0.95 removes them."""
    import surrogate as sg

    domain, table, formula, _ = problem("nc")
    s = surrogate_of("nc", domain)
    rows = []
    for interaction in args.interactions:
        for delta in (0.8, 0.95):
            fit = sg.fit(formula, table, domain, prior=s, time="period", interaction=interaction, **{**SAMPLER, "adapt_delta": delta})
            post, div = fit.idata.posterior, fit.idata.sample_stats["diverging"].values
            where = {}
            for name in ("sigma_time", "mix_time", "rho", "sigma_field", "sigma_int", "rho_int", "rho_fields"):
                if name in post and div.any():  # each divergent draw's quantile in the parameter's posterior
                    v = post[name].values
                    where[name] = np.round(np.searchsorted(np.sort(v.ravel()), v[div]) / v.size, 3).tolist()
            step = fit.idata.sample_stats["step_size"].values[:, -1]
            rows.append({"interaction": interaction, "adapt_delta": delta, "divergences": int(div.sum()), "per_chain": div.sum(1).tolist(),
                         "divergent_quantiles": where, "step_size": step.tolist(), "ess_per_s": fit.diagnostics["ess_per_s"],
                         "max_rhat": fit.diagnostics["max_rhat"]})  # fmt: skip
            print(rows[-1], flush=True)
    return {"map": "nc", "rows": rows}


def part_rhat(args) -> dict:
    """The exact St. Louis type III fit, whose rho ended at R-hat 1.0103 with 3,000 draws per chain: per-parameter R-hat at 6,000."""
    import arviz as az

    import surrogate as sg

    domain, table, formula, _ = problem("stl")
    fit = sg.fit(formula, table, domain, prior="bym2", time="period", interaction="III", **{**SAMPLER, "draws": 6000})
    names = [n for n in ("intercept", "beta", "sigma_field", "rho", "rho_int", "sigma_time", "mix_time", "sigma_int") if n in fit.idata.posterior]
    rhat = az.rhat(fit.idata, var_names=names)
    out = {"data": "stl", "interaction": "III", "model": "exact", "draws": 6000, "rhat": {n: float(np.max(rhat[n].values)) for n in names},
           **fit_record(fit)}  # fmt: skip
    print(out, flush=True)
    return out


def main(args) -> dict:
    import httpstan
    import torch

    from surrogate.fileio import write_json

    parts = {"real": part_real, "forecast": part_forecast, "recovery": part_recovery, "cost": part_cost, "divergences": part_divergences, "rhat": part_rhat}
    part = parts[args.part](args)
    doc = json.loads(OUT.read_text()) if OUT.is_file() else {}
    doc[args.part] = part
    doc["environment"] = {"python": platform.python_version(), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
                          "torch": torch.__version__, "httpstan": httpstan.__version__, "sampler": SAMPLER, "tolerances": TOL}  # fmt: skip
    write_json(OUT, doc)
    return part


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", required=True, choices=["real", "forecast", "recovery", "cost", "divergences", "rhat"])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--interactions", nargs="+", default=list(INTERACTIONS), choices=list(INTERACTIONS))
    ap.add_argument("--forecast-interactions", nargs="+", default=["none", "IV", "ar1"], choices=list(INTERACTIONS))
    ap.add_argument("--replicates", type=int, default=40)
    ap.add_argument("--periods", type=int, nargs="+", default=[1, 3, 10, 25])
    t0 = time.time()
    main(ap.parse_args())
    print(f"done in {time.time() - t0:.0f} s")
