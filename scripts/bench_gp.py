"""Issue 4, measured: a PriorCVAE surrogate against the exact GP and HSGP in Stan, on data from a known GP.

    python scripts/bench_gp.py [--settings 1d-100,1d-400,2d-20x20,2d-50x50] [--json docs/bench_gp.json]

For each setting: train a PriorCVAE on Matérn 5/2 draws with lengthscale ~ Uniform(0.2, 0.6)
(timed; reused from --work when already there), check its prior (relative covariance error at
3 lengthscales), simulate Poisson counts from a known GP (lengthscale 0.3, variance 1,
intercept 1, 15% of cells observed, seed 1), and fit the three models, all inferring the
lengthscale with the same Uniform(0.2, 0.6) prior: the surrogate and HSGP (Riutort-Mayol et
al.'s default basis size) with 2 parallel chains of 500 + 500 iterations; the exact GP with 2
chains of 500 + 500 at 100 cells and 100 + 100 at 400 cells (each gradient factorises a
400 x 400 kernel matrix); above --exact-max-cells it is not run. Reported: wall time, min bulk
ESS over f, ESS per second, microseconds per gradient, RMSE of the posterior mean of
eta = intercept + f against the truth, 90% interval coverage, the lengthscale posterior.
Every finished fit is appended to --work/results.jsonl, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from surrogate.fileio import write_json
from surrogate.inference import SamplerSettings
from surrogate.nn.config import TrainConfig
from surrogate.nn.export import export_decoder
from surrogate.nn.train import train
from surrogate.tasks.gp_check import check_prior
from surrogate.tasks.gp_fit import fit_gp, simulate, validate_data

#: name -> (dim, points per axis, hidden widths, latent size)
SETTINGS = {"1d-100": (1, 100, (256, 128), 16), "1d-400": (1, 400, (256, 128), 20),
            "2d-20x20": (2, 20, (256, 128), 20), "2d-50x50": (2, 50, (512, 256), 40)}  # fmt: skip
PRIOR = (0.2, 0.6)
TRUE_ELL = 0.3


def surrogate_run(name: str, work: Path, epochs: int) -> tuple[Path, dict]:
    dim, n, hidden, latent = SETTINGS[name]
    run = work / name / "cvae"
    info_path = run / "bench_train.json"
    if not info_path.exists():
        config = TrainConfig(dataset=f"gp{dim}d", grid=n, model="cvae", kernel="matern52", lengthscale=PRIOR, hidden=hidden,
                             latent=latent, epochs=epochs, lr=1e-3, batch_size=64, epoch_size=5000, seed=1)  # fmt: skip
        t0 = time.perf_counter()
        train(config, run, force=True, log=print, progress=False)
        train_s = time.perf_counter() - t0
        export_decoder(run)
        check = check_prior(run, draws=1000, out=run)
        write_json(info_path, {"train_s": train_s, "epochs": epochs, "cov_rel_error": [c["cov_error"] for c in check["checks"]],
                               "exact_cov_rel_error": [c["cov_error_floor"] for c in check["checks"]],
                               "lengthscales": [c["lengthscale"] for c in check["checks"]]})  # fmt: skip
    return run, json.loads(info_path.read_text())


def main(args):
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "results.jsonl"
    done = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            r = json.loads(line)
            done[(r["setting"], r["model"])] = r
    rows, training = [], {}
    for name in args.settings.split(","):
        dim, n, _, _ = SETTINGS[name]
        run, training[name] = surrogate_run(name, work, args.epochs)
        data = validate_data(simulate(dim, n, "matern52", TRUE_ELL, 1.0, 0.15, "poisson", 1.0, seed=1))
        for model in ("surrogate", "hsgp", "exact"):
            if (name, model) not in done:
                if model == "exact" and data["D"] > args.exact_max_cells:
                    r = {"setting": name, "model": model, "run": False, "why": f"{data['D']} cells: each gradient factorises a {data['D']} x {data['D']} matrix"}
                else:
                    warm = 100 if (model == "exact" and data["D"] > 100) else 500
                    settings = SamplerSettings(chains=2, warmup=warm, draws=warm, seed=1)
                    r = fit_gp(model, data, settings, args.engine, None, decoder_json=run / "decoder.json", lengthscale=PRIOR)
                    r = {"setting": name, "run": True, **r.diagnostics}
                done[(name, model)] = r
                with results_path.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            r = done[(name, model)]
            rows.append(r)
            if r["run"]:
                print(f"{name:9s} {model:9s} {r['wall_s']:8.1f} s  ESS {r['min_ess_bulk_f']:6.0f}  {r['ess_per_s']:8.2f} ESS/s  "
                      f"{r['us_per_gradient']:9.1f} us/grad  RMSE {r['rmse']:.3f}  cover {r['coverage90']:.2f}  "
                      f"ell {r.get('ell_mean', float('nan')):.3f}  R-hat {r['max_rhat']:.3f}  div {r['divergences']}", flush=True)  # fmt: skip
            else:
                print(f"{name:9s} {model:9s} not run: {r['why']}", flush=True)
    summary = {}
    for name in args.settings.split(","):
        by = {r["model"]: r for r in rows if r["setting"] == name and r["run"]}
        s = {"train_s": training[name]["train_s"], "cov_rel_error": training[name]["cov_rel_error"]}
        if "exact" in by:
            s["surrogate_vs_exact_ess_per_s"] = by["surrogate"]["ess_per_s"] / by["exact"]["ess_per_s"]
            s["rmse_ratio_surrogate_to_exact"] = by["surrogate"]["rmse"] / by["exact"]["rmse"]
            s["rmse_ratio_hsgp_to_exact"] = by["hsgp"]["rmse"] / by["exact"]["rmse"]
        s["surrogate_vs_hsgp_ess_per_s"] = by["surrogate"]["ess_per_s"] / by["hsgp"]["ess_per_s"]
        s["rmse_ratio_surrogate_to_hsgp"] = by["surrogate"]["rmse"] / by["hsgp"]["rmse"]
        summary[name] = s
    print(json.dumps(summary, indent=1))
    if args.json:
        write_json(args.json, {"prior": PRIOR, "true_lengthscale": TRUE_ELL, "summary": summary, "fits": rows, "training": training})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--epochs", type=int, default=150, help="PriorCVAE training epochs (5,000 fresh draws each)")
    parser.add_argument("--exact-max-cells", type=int, default=400)
    parser.add_argument("--engine", default="pystan")
    parser.add_argument("--work", default="runs/bench/gp", help="trained surrogates and finished fits (resumes)")
    parser.add_argument("--json", help="also write the results here")
    main(parser.parse_args())
