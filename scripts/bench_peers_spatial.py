"""Side by side with what users would pick instead: NC SIDS (100 counties) BYM2 with a covariate, fitted by this
project's exact BYM2 (Stan), its BYM2 surrogate (Stan), PyMC (BYM2 from pm.ICAR with the Riebler scaling) and
NumPyro (BYM2 written by hand: it has none), on the same data, priors, chains, warmup and draws.

    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 && .venv-bench/bin/pip install -r requirements-bench.txt
    .venv-bench/bin/python scripts/bench_peers_spatial.py            # -> docs/bench_peers_spatial.json

The peers install into their own environment (requirements-bench.txt); `make test` never installs them. Every
tool's eta = intercept + X beta + field is compared with the exact Stan BYM2 county by county.

The model (all tools): SID74 ~ Poisson(E exp(eta)), E = BIR74 x the state's rate; eta = intercept + beta x
(standardised NWPROP74) + sigma (sqrt(1 - rho) theta + sqrt(rho / s) phi); intercept ~ N(0, 2), beta ~ N(0, 1),
sigma ~ HalfNormal(1), rho ~ U(0, 1), theta ~ N(0, I), phi the ICAR on rook contiguity (pairwise differences,
soft sum-to-zero sd 0.001 N), s its Riebler scaling factor (geometric mean of the marginal variances).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def nc_problem() -> dict:
    """The NC data, the domain (rook, as the demo), the graph and the scaling factor: what every tool gets."""
    import geopandas as gpd
    from libpysal import examples

    import surrogate as sg

    nc = gpd.read_file(examples.get_path("sids2.shp"))
    nc["NWPROP74"] = nc["NWBIR74"] / nc["BIR74"]
    nc["expected"] = nc["BIR74"] * nc["SID74"].sum() / nc["BIR74"].sum()
    domain = sg.Domain.from_map(nc, id="FIPS", contiguity="rook")
    graph = sg.BYM2().on(domain).graph
    x = nc["NWPROP74"].to_numpy()
    return {"table": nc, "domain": domain, "y": nc["SID74"].to_numpy().astype(int), "E": nc["expected"].to_numpy(),
            "x": (x - x.mean()) / x.std(), "edges": graph.edges, "scale": float(graph.scale[0]), "n": domain.size}  # fmt: skip


def summarise(name: str, eta: np.ndarray, beta: np.ndarray, seconds: dict, divergences: int, version: str, notes: str = "") -> dict:
    """Convergence and speed figures from draws ``eta [chain, draw, N]`` and ``beta [chain, draw]``, the same way for every tool."""
    import arviz as az

    ess = az.ess(az.convert_to_dataset({"eta": eta}), method="bulk")["eta"].values
    rhat = az.rhat(az.convert_to_dataset({"eta": eta, "beta": beta}))
    flat = eta.reshape(-1, eta.shape[-1])
    b = beta.ravel()
    run_s = seconds["warmup_and_sampling_s"]
    return {"tool": name, "version": version, "seconds": seconds, "min_ess_bulk_eta": float(ess.min()), "ess_per_s": float(ess.min() / run_s),
            "ess_per_s_with_compile": float(ess.min() / (run_s + seconds.get("compile_s", 0.0) + seconds.get("train_s", 0.0))),
            "max_rhat": float(max(rhat["eta"].values.max(), float(rhat["beta"]))), "divergences": int(divergences),
            "eta_mean": flat.mean(0).tolist(), "eta_sd": flat.std(0).tolist(), "beta_mean": float(b.mean()),
            "beta_interval90": np.quantile(b, [0.05, 0.95]).tolist(), "notes": notes}  # fmt: skip


def run_surrogate_stan(p: dict, args, exact: bool) -> dict:
    import surrogate as sg

    t0 = time.perf_counter()
    prior = sg.BYM2(rho=(0, 1))
    seconds = {}
    if not exact:
        s = sg.train(prior, p["domain"], model="cvae", latent="auto", epochs=0, log=lambda _: None)
        check = s.check(draws=2000)
        seconds["train_s"] = time.perf_counter() - t0
        prior = s
    fit = sg.fit("SID74 ~ NWPROP74 + offset(log(expected))", p["table"], p["domain"], prior=prior, engine="pystan", chains=args.chains,
                 warmup=args.warmup, draws=args.draws, seed=args.seed)  # fmt: skip
    d = fit.diagnostics
    # the wall time of the sampling call (4 chains on 2 cores, data transfer included; compile or cache load apart)
    seconds |= {"compile_s": d["compile_s"], "warmup_and_sampling_s": d["wall_s"], "slowest_chain_s": d["sampling_s"]}
    post = fit.idata.posterior
    notes = "exact BYM2, stan/areas_bym2.stan" if exact else (f"BYM2 CVAE over rho, the conditioned linear path (K = {s.latent}, 0 epochs); "
                                                                f"prior check passed: {check.passed}")  # fmt: skip
    out = summarise("surrogate exact BYM2 (Stan)" if exact else "surrogate BYM2 surrogate (Stan)", post["eta"].values, post["beta"].values[..., 0],
                    seconds, d["divergences"], f"surrogate {sg.__version__}, pystan {metadata.version('pystan')}", notes)  # fmt: skip
    out["us_per_gradient"] = d["us_per_gradient"]
    if not exact:
        keys = ("value", "cov_error", "cov_error_linear", "cov_error_floor", "variance_ratio_min", "mmd_p_value", "passed")
        out["check_prior"] = {"passed": check.passed, "draws": check.draws, "rows": [{k: row[k] for k in keys} for row in check.checks]}
    return out


def run_pymc(p: dict, args) -> dict:
    import pymc as pm

    n, (n1, n2) = p["n"], p["edges"].T
    W = np.zeros((n, n))
    W[n1, n2] = W[n2, n1] = 1
    t0 = time.perf_counter()
    with pm.Model():
        intercept = pm.Normal("intercept", 0, 2)
        beta = pm.Normal("beta", 0, 1)
        sigma = pm.HalfNormal("sigma", 1)
        rho = pm.Uniform("rho", 0, 1)
        theta = pm.Normal("theta", 0, 1, shape=n)
        phi = pm.ICAR("phi", W=W)  # soft sum-to-zero, sd 0.001 N (PyMC's default zero_sum_stdev)
        field = sigma * (pm.math.sqrt(1 - rho) * theta + pm.math.sqrt(rho / p["scale"]) * phi)
        eta = pm.Deterministic("eta", intercept + beta * p["x"] + field)
        pm.Poisson("y", mu=p["E"] * pm.math.exp(eta), observed=p["y"])
        t1 = time.perf_counter()
        idata = pm.sample(draws=args.draws, tune=args.warmup, chains=args.chains, cores=min(args.chains, 2), random_seed=args.seed,
                          progressbar=False, compute_convergence_checks=False)  # fmt: skip
    t2 = time.perf_counter()
    st = idata.sample_stats
    run_s = float(st.attrs.get("sampling_time", t2 - t1))
    seconds = {"compile_s": t2 - t1 - run_s, "warmup_and_sampling_s": run_s, "wall_s": t2 - t0}
    return summarise("PyMC (pm.ICAR BYM2)", idata.posterior["eta"].values, idata.posterior["beta"].values, seconds, int(st["diverging"].sum()),
                     f"pymc {pm.__version__}, pytensor {metadata.version('pytensor')}", "default NUTS (pm.sample), cores 2")  # fmt: skip


def run_numpyro(p: dict, args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    n1, n2 = jnp.asarray(p["edges"][:, 0]), jnp.asarray(p["edges"][:, 1])
    x, E, y, n, s = jnp.asarray(p["x"]), jnp.asarray(p["E"]), jnp.asarray(p["y"]), p["n"], p["scale"]

    def model():
        intercept = numpyro.sample("intercept", dist.Normal(0, 2))
        beta = numpyro.sample("beta", dist.Normal(0, 1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1))
        rho = numpyro.sample("rho", dist.Uniform(0, 1))
        theta = numpyro.sample("theta", dist.Normal(0, 1).expand([n]).to_event(1))
        phi = numpyro.sample("phi", dist.ImproperUniform(dist.constraints.real_vector, (), (n,)))
        numpyro.factor("icar", -0.5 * jnp.sum((phi[n1] - phi[n2]) ** 2) + dist.Normal(0, 0.001 * n).log_prob(phi.sum()))
        eta = numpyro.deterministic("eta", intercept + beta * x + sigma * (jnp.sqrt(1 - rho) * theta + jnp.sqrt(rho / s) * phi))
        numpyro.sample("y", dist.Poisson(E * jnp.exp(eta)), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=args.warmup, num_samples=args.draws, num_chains=args.chains, chain_method="sequential", progress_bar=False)
    t0 = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(args.seed), collect_warmup=False)  # JIT plus warmup (NumPyro cannot time them apart)
    t1 = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key)
    t2 = time.perf_counter()
    draws = mcmc.get_samples(group_by_chain=True)
    div = int(np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"]).sum())
    seconds = {"jit_and_warmup_s": t1 - t0, "sampling_s": t2 - t1, "warmup_and_sampling_s": t2 - t0, "wall_s": t2 - t0}
    return summarise("NumPyro (hand-written BYM2)", np.asarray(draws["eta"]), np.asarray(draws["beta"]), seconds, div,
                     f"numpyro {numpyro.__version__}, jax {jax.__version__}", "NUTS defaults, chains sequential; JIT counted in warmup")  # fmt: skip


def agreement(result: dict, reference: dict) -> dict:
    a, b = np.asarray(result["eta_mean"]), np.asarray(reference["eta_mean"])
    sd_ratio = np.asarray(result["eta_sd"]) / np.asarray(reference["eta_sd"])
    lo, hi = result["beta_interval90"]
    rlo, rhi = reference["beta_interval90"]
    return {"median_abs_diff_eta": float(np.median(np.abs(a - b))), "max_abs_diff_eta": float(np.abs(a - b).max()),
            "sd_ratio_median": float(np.median(sd_ratio)), "sd_ratio_min": float(sd_ratio.min()),
            "beta_intervals_overlap": bool(lo <= rhi and rlo <= hi)}  # fmt: skip


def main(args) -> dict:
    p = nc_problem()
    previous = json.loads(Path(args.out).read_text()).get("results", {}) if args.keep and Path(args.out).is_file() else {}
    runs = {"exact_stan": lambda: run_surrogate_stan(p, args, exact=True), "surrogate_stan": lambda: run_surrogate_stan(p, args, exact=False),
            "pymc": lambda: run_pymc(p, args), "numpyro": lambda: run_numpyro(p, args)}  # fmt: skip
    results = {k: v for k, v in previous.items() if k not in args.tools}  # --keep: other tools' results stay as measured
    for key in args.tools:
        print(f"running {key} ...", flush=True)
        try:
            results[key] = runs[key]()
        except Exception as exc:  # a peer that fails is recorded with its error and version, not dropped
            results[key] = {"tool": key, "failed": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            print(results[key]["failed"], flush=True)
    ref = results.get("exact_stan")
    for key, r in results.items():
        if ref and "failed" not in r and "failed" not in ref and key != "exact_stan":
            r["agreement_with_exact_stan"] = agreement(r, ref)
    out = {"task": "nc-sids-bym2", "machine": {"cores": 2, "python": platform.python_version(), "platform": platform.platform()},
           "settings": {"chains": args.chains, "warmup": args.warmup, "draws": args.draws, "seed": args.seed}, "results": results}  # fmt: skip
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for key, r in results.items():
        if "failed" in r:
            print(f"{key:<16} FAILED {r['failed'][:200]}")
            continue
        a = r.get("agreement_with_exact_stan", {})
        print(f"{key:<16} ESS/s {r['ess_per_s']:8.1f}  min ESS {r['min_ess_bulk_eta']:7.0f}  run {r['seconds']['warmup_and_sampling_s']:6.1f} s  "
              f"R-hat {r['max_rhat']:.3f}  div {r['divergences']:3d}  |d eta| {a.get('median_abs_diff_eta', 0):.3f}/{a.get('max_abs_diff_eta', 0):.3f}  "
              f"sd ratio {a.get('sd_ratio_median', 1):.2f}")  # fmt: skip
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tools", nargs="+", default=["exact_stan", "surrogate_stan", "pymc", "numpyro"])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the other tools' results already in --out")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_peers_spatial.json"))
    main(ap.parse_args())
