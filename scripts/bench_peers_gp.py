"""Issue 28's 2-D GP task, the HSGP peers: PyMC's and NumPyro's HSGP on bench_gp.py's `2d-50x50-short` data set (seed 1:
Poisson counts at 15% of a 50 x 50 grid from a Matern 5/2 GP with lengthscale 0.1), under the same prior as this project's
fits there (lengthscale ~ U(0.05, 0.3), variance 1, intercept ~ N(0, 2)), the same basis as Stan's HSGP (66 functions per
axis, boundary factor 2.46: the domain [0, 1]^2 centred, half-width 1.23) and the same sampler budget (2 chains x (500 + 500)).

    .venv-bench/bin/python scripts/bench_peers_gp.py      # -> docs/bench_peers_spatial.json, key "gp_50x50_short"

Scored as bench_gp.py scores its fits: min bulk ESS over f at all 2,500 cells, ESS/s, RMSE of the posterior mean of eta =
intercept + f against the truth and the 90% intervals' coverage. This project's surrogate and Stan HSGP fits of the same data
set are read from docs/bench_gp.json (not re-run). Each peer's likelihood uses the basis at the observed cells only (as Stan's
model block does); f at every cell is computed from the draws afterwards (as Stan's generated quantities do).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

M, C_BOUNDARY, PRIOR, SEED = 66, 2.46, (0.05, 0.3), 1


def problem(n: int, true_ell: float) -> dict:
    from surrogate.data.gp import grid_points
    from surrogate.tasks.gp_fit import simulate, validate_data

    data = validate_data(simulate(2, n, "matern52", true_ell, 1.0, 0.15, "poisson", 1.0, seed=SEED))
    x = grid_points(2, n) - 0.5  # centred, as Stan's HSGP centres [0, 1]
    return {"x": x, "obs": data["obs_idx"] - 1, "counts": data["counts"], "truth": data["eta_true"], "L": 0.5 * C_BOUNDARY}


def basis(x: np.ndarray, L: float) -> tuple[np.ndarray, np.ndarray]:
    """(eigenfunctions [N, M^2], square roots of the eigenvalues [M^2, 2]) on [-L, L]^2, Stan's gp_hsgp.stan order."""
    j = np.arange(1, M + 1)
    sqrt_lam = j * np.pi / (2 * L)
    phi1 = np.sin(sqrt_lam[None, :] * (x[:, [0]] + L)) / np.sqrt(L)
    phi2 = np.sin(sqrt_lam[None, :] * (x[:, [1]] + L)) / np.sqrt(L)
    phi = (phi1[:, :, None] * phi2[:, None, :]).reshape(len(x), M * M)
    w = np.stack(np.meshgrid(sqrt_lam, sqrt_lam, indexing="ij"), -1).reshape(M * M, 2)
    return phi, w


def sqrt_spd_matern52(w: np.ndarray, ell, xp):
    """Square root of the Matern 5/2 spectral density in 2-D (unit variance) at frequencies ``w`` [M^2, 2]."""
    nu, d = 2.5, 2
    from math import gamma, pi

    const = 2**d * pi ** (d / 2) * gamma(nu + d / 2) * (2 * nu) ** nu / gamma(nu)
    s2 = (w**2).sum(-1)
    spd = const * ell ** (2 * nu) * (2 * nu + ell**2 * s2) ** (-(nu + d / 2)) / ell ** (2 * nu - d)
    return xp.sqrt(spd)


def score(name: str, f_all: np.ndarray, intercept: np.ndarray, ell: np.ndarray, truth: np.ndarray, seconds: dict, divergences: int,
          version: str, notes: str) -> dict:  # fmt: skip
    import arviz as az

    from surrogate.tasks.fitting import truth_scores

    ess = az.ess(az.convert_to_dataset({"f": f_all}), method="bulk")["f"].values
    rhat = float(np.nanmax(az.rhat(az.convert_to_dataset({"f": f_all, "ell": ell, "intercept": intercept})).to_array().values))
    eta = (intercept[..., None] + f_all).reshape(-1, f_all.shape[-1])
    run = seconds["warmup_and_sampling_s"]
    return {"tool": name, "version": version, "seconds": seconds, "min_ess_bulk_f": float(ess.min()), "ess_per_s": float(ess.min() / run),
            "max_rhat": rhat, "divergences": int(divergences), "ell_mean": float(ell.mean()), **truth_scores(eta, truth), "notes": notes}  # fmt: skip


def run_pymc(p: dict, args) -> dict:
    import pymc as pm
    import pytensor.tensor as pt

    phi, w = basis(p["x"], p["L"])
    phi_obs = phi[p["obs"]]
    t0 = time.perf_counter()
    with pm.Model():
        ell = pm.Uniform("ell", *PRIOR)
        intercept = pm.Normal("intercept", 0, 2)
        beta = pm.Normal("beta", 0, 1, shape=M * M)
        f_obs = pt.dot(phi_obs, sqrt_spd_matern52(w, ell, pt) * beta)
        pm.Poisson("y", mu=pt.exp(intercept + f_obs), observed=p["counts"])
        t1 = time.perf_counter()
        idata = pm.sample(draws=args.draws, tune=args.warmup, chains=2, cores=2, random_seed=SEED, progressbar=False,
                          compute_convergence_checks=False)  # fmt: skip
    t2 = time.perf_counter()
    run_s = float(idata.sample_stats.attrs.get("sampling_time", t2 - t1))
    post = idata.posterior
    f_all = np.einsum("nk,cdk->cdn", phi, sqrt_spd_matern52(w, post["ell"].values[..., None], np) * post["beta"].values)
    seconds = {"compile_s": t2 - t1 - run_s, "warmup_and_sampling_s": run_s, "wall_s": t2 - t0}
    return score("PyMC HSGP", f_all, post["intercept"].values, post["ell"].values, p["truth"], seconds, int(idata.sample_stats["diverging"].sum()),
                 f"pymc {pm.__version__}", "the HSGP basis written out (as pm.gp.HSGP builds it), likelihood at the observed cells; pm.sample defaults")  # fmt: skip


def run_numpyro(p: dict, args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.hsgp.laplacian import eigenfunctions
    from numpyro.contrib.hsgp.spectral_densities import diag_spectral_density_matern
    from numpyro.infer import MCMC, NUTS

    x_obs = jnp.asarray(p["x"][p["obs"]])
    phi_obs = eigenfunctions(x_obs, ell=p["L"], m=M)  # numpyro's own basis (its order of the M^2 functions)
    counts = jnp.asarray(p["counts"])

    def model():
        ell = numpyro.sample("ell", dist.Uniform(*PRIOR))
        intercept = numpyro.sample("intercept", dist.Normal(0, 2))
        beta = numpyro.sample("beta", dist.Normal(0, 1).expand([M * M]).to_event(1))
        spd = jnp.sqrt(diag_spectral_density_matern(nu=2.5, alpha=1.0, length=ell, ell=p["L"], m=M, dim=2))
        numpyro.sample("y", dist.Poisson(jnp.exp(intercept + phi_obs @ (spd * beta))), obs=counts)

    mcmc = MCMC(NUTS(model), num_warmup=args.warmup, num_samples=args.draws, num_chains=2, chain_method="sequential", progress_bar=False)
    t0 = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(SEED), collect_warmup=False)
    t1 = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key)
    t2 = time.perf_counter()
    s = mcmc.get_samples(group_by_chain=True)
    phi_all = np.asarray(eigenfunctions(jnp.asarray(p["x"]), ell=p["L"], m=M))
    spd = np.stack([np.asarray(jax.vmap(lambda e: jnp.sqrt(diag_spectral_density_matern(2.5, 1.0, e, p["L"], M, 2)))(jnp.asarray(c)))
                    for c in np.asarray(s["ell"])])  # fmt: skip
    f_all = np.einsum("nk,cdk->cdn", phi_all, spd * np.asarray(s["beta"]))
    div = int(np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"]).sum())
    seconds = {"jit_and_warmup_s": t1 - t0, "sampling_s": t2 - t1, "warmup_and_sampling_s": t2 - t0, "wall_s": t2 - t0}
    return score("NumPyro HSGP", f_all, np.asarray(s["intercept"]), np.asarray(s["ell"]), p["truth"], seconds, div,
                 f"numpyro {numpyro.__version__}, jax {jax.__version__}", "numpyro.contrib.hsgp's basis and Matern spectral density; NUTS defaults, chains sequential")  # fmt: skip


def recorded(setting: str) -> dict:
    """This project's fits of the same data set (seed 1), from docs/bench_gp.json."""
    fits = json.loads((ROOT / "docs" / "bench_gp.json").read_text())["fits"]
    keep = ("wall_s", "min_ess_bulk_f", "ess_per_s", "us_per_gradient", "rmse", "coverage90", "ell_mean", "divergences", "max_rhat")
    return {f"{f['model']}_stan": {k: f.get(k) for k in keep} | {"tool": f"surrogate {f['model']} (Stan), recorded in docs/bench_gp.json"}
            for f in fits if f["setting"] == setting and f["seed"] == SEED and f.get("run", True)}  # fmt: skip


def main(args) -> None:
    p = problem(args.grid, args.true_ell)
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    task = {"data": f"bench_gp.py 2d-50x50-short, seed {SEED}" if args.grid == 50 else f"{args.grid}x{args.grid}, lengthscale {args.true_ell}",
            "settings": {"chains": 2, "warmup": args.warmup, "draws": args.draws, "M_per_axis": M, "c_boundary": C_BOUNDARY, "prior": PRIOR},
            "results": recorded("2d-50x50-short") if args.grid == 50 else {}}  # fmt: skip
    for key, run in (("pymc", run_pymc), ("numpyro", run_numpyro)):
        if key not in args.tools:
            continue
        print(f"running {key} ...", flush=True)
        try:
            task["results"][key] = run(p, args)
        except Exception as exc:
            task["results"][key] = {"tool": key, "failed": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        r = task["results"][key]
        print({k: r[k] for k in ("ess_per_s", "min_ess_bulk_f", "rmse", "coverage90", "divergences", "max_rhat") if k in r} or r["failed"], flush=True)
    if args.grid == 50:
        doc["gp_50x50_short"] = task
        out.write_text(json.dumps(doc, indent=1) + "\n")
    else:
        print(json.dumps(task, indent=1)[:3000])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tools", nargs="+", default=["pymc", "numpyro"])
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--true-ell", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_peers_spatial.json"))
    main(ap.parse_args())
