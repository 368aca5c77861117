"""Divergent transitions of the GP-CVAE surrogate against the exact GP, seed by seed.

The data set of ``bench_scale.py --part gp`` at 100 sites (Poisson counts at 50 of them, a Matern-3/2
GP with its lengthscale inferred over 5-30% of the extent). For each of ``--seeds`` sampler seeds,
4 chains x (500 + 500): the surrogate (``--latent auto``, its path alone) at adapt_delta 0.8 and 0.9,
and the exact GP at 0.8. Records divergences per chain, the step sizes, ESS/s and the upper tail of
the lengthscale; writes docs/bench_divergences.json.

    python scripts/bench_divergences.py --seeds 1,2,3,4,5,6,7
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import bench_scale  # noqa: E402  (its data set)

OUT = ROOT.parent / "docs" / "bench_divergences.json"


def one_fit(prior, data, seed: int, adapt_delta: float) -> dict:
    import surrogate as sg

    domain, table, truth = data
    t0 = time.perf_counter()
    fit = sg.fit("cases ~ offset(log(expected))", table, domain, prior=prior, truth=truth, chains=4, warmup=500, draws=500, seed=seed,
                 adapt_delta=adapt_delta)  # fmt: skip
    stats, post = fit.idata.sample_stats, fit.idata.posterior
    ell = post["ell"].values
    d = fit.diagnostics
    return {"seed": seed, "adapt_delta": adapt_delta, "divergences": int(stats["diverging"].values.sum()),
            "divergences_per_chain": stats["diverging"].values.sum(1).tolist(), "step_size": stats["step_size"].values[:, 0].round(4).tolist(),
            "ell_q99": float(np.quantile(ell, 0.99)), "ell_max": float(ell.max()), "ess_per_s": d["ess_per_s"], "gradients": d["gradients"],
            "max_rhat": d["max_rhat"], "rmse": d["rmse"], "coverage90": d["coverage90"], "wall_s": time.perf_counter() - t0}  # fmt: skip


def summary(rows: list[dict]) -> dict:
    div = np.array([r["divergences"] for r in rows])
    return {"fits": len(rows), "divergences_total": int(div.sum()), "divergences_median": float(np.median(div)),
            "fits_with_a_chain_over_10": int(sum(max(r["divergences_per_chain"]) > 10 for r in rows)),
            "ess_per_s_median": float(np.median([r["ess_per_s"] for r in rows])),
            "gradients_median": float(np.median([r["gradients"] for r in rows]))}  # fmt: skip


def main() -> None:
    import surrogate as sg

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5,6,7")
    parser.add_argument("--sites", type=int, default=100)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    domain, table, truth, lengthscale = bench_scale.gp_data(args.sites)
    data = (domain, table, truth)
    surrogate = sg.train(sg.GP("matern32", lengthscale), domain, log=lambda _: None)
    runs = {"surrogate@0.8": (surrogate, 0.8), "surrogate@0.9": (surrogate, 0.9), "exact@0.8": (sg.GP("matern32", lengthscale), 0.8)}
    record = {"sites": args.sites, "observed": int(table["cases"].notna().sum()), "lengthscale_prior": list(lengthscale),
              "latent": surrogate.latent, "sampler": "4 chains x (500 + 500)", "runs": {}}  # fmt: skip
    for name, (prior, delta) in runs.items():
        rows = []
        for seed in seeds:
            rows.append(one_fit(prior, data, seed, delta))
            print(name, {k: rows[-1][k] for k in ("seed", "divergences_per_chain", "ess_per_s")}, flush=True)
        record["runs"][name] = {"fits": rows, "summary": summary(rows)}
        print(name, record["runs"][name]["summary"], flush=True)
    record["machine"] = {"cpus": __import__("os").cpu_count(), "python": __import__("platform").python_version()}
    OUT.write_text(json.dumps(record, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
