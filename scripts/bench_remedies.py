"""Issue 17, measured: which remedy makes a PriorCVAE's decoded draws match its GP prior.

    python scripts/bench_remedies.py [--settings 1d-100,2d-20x20] [--json docs/bench_remedies.json]

For each grid (Matérn 5/2, lengthscale ~ Uniform(0.2, 0.6), bench_gp.py's hidden widths) and each
variant, train a PriorCVAE on fresh prior draws (5,000 a epoch, seed 1) and run check-prior at the
lengthscales 0.24, 0.40, 0.56 (2,000 decoded draws against 2,000 exact ones). Variants:

  baseline      no linear path, bench_gp's old latent size (16 in 1-D, 20 in 2-D), 150 epochs
  auto-latent   no linear path, the latent size from the spectrum (--latent auto), 150 epochs
  long          no linear path, auto latent, 600 epochs (longer training, fresh draws every epoch)
  path-0        the conditioned linear path B L(ell) z alone (auto latent, 0 epochs): the default decoder
                (`train` then trains the encoder only, --no-residual being the default here)
  path-noise1   the path + the MLP residual trained 150 epochs (--residual), Gaussian loss sd 1.0 (the GP default)
  path-noise0.1 the same with loss sd 0.1

Recorded per variant: training seconds, and per lengthscale the covariance error, the rank-K linear
floor, the sampling floor, the marginal variance ratio (min / median) and the MMD p-value.
Finished variants are kept in --work and reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from surrogate.fileio import write_json
from surrogate.nn.config import TrainConfig
from surrogate.nn.linear_path import auto_latent
from surrogate.nn.train import train
from surrogate.tasks.gp_check import check_prior

#: name -> (dim, points per axis, hidden widths, old latent size)
SETTINGS = {"1d-100": (1, 100, (256, 128), 16), "1d-400": (1, 400, (256, 128), 20), "2d-20x20": (2, 20, (256, 128), 20)}
PRIOR = (0.2, 0.6)
#: variant -> (linear path, latent: "old" or "auto", epochs, Gaussian loss sd)
VARIANTS = {"baseline": (False, "old", 150, 1.0), "auto-latent": (False, "auto", 150, 1.0), "long": (False, "auto", 600, 1.0),
            "path-0": (True, "auto", 0, 1.0), "path-noise1": (True, "auto", 150, 1.0), "path-noise0.1": (True, "auto", 150, 0.1)}  # fmt: skip


def run_variant(name: str, variant: str, work: Path) -> dict:
    dim, n, hidden, old_latent = SETTINGS[name]
    path, latent, epochs, noise = VARIANTS[variant]
    run = work / name / variant
    info = run / "bench_remedies.json"
    if info.is_file():
        return json.loads(info.read_text())
    config = TrainConfig(dataset=f"gp{dim}d", grid=n, model="cvae", kernel="matern52", lengthscale=PRIOR, hidden=hidden, latent=1,
                         epochs=epochs, lr=1e-3, batch_size=64, epoch_size=5000, seed=1, linear_path=path, noise_scale=noise,
                         residual=path or None)  # fmt: skip
    spec = auto_latent(*config.prior_covariance())
    config.latent = spec["latent"] if latent == "auto" else old_latent
    t0 = time.perf_counter()
    train(config, run, force=True, log=lambda _: None, progress=False)
    seconds = time.perf_counter() - t0
    check = check_prior(run, draws=2000, lengthscales=(0.24, 0.40, 0.56), out=run)
    keys = ("lengthscale", "cov_error", "cov_error_linear", "cov_error_floor", "variance_ratio_min", "variance_ratio_median", "mmd_p_value")
    result = {"setting": name, "variant": variant, "linear_path": path, "latent": config.latent, "auto_latent": spec, "epochs": epochs,
              "noise_scale": noise, "train_s": seconds, "checks": [{k: r[k] for k in keys} for r in check["checks"]]}  # fmt: skip
    write_json(info, result)
    return result


def main(args):
    work = Path(args.work)
    results = []
    for name in args.settings.split(","):
        for variant in args.variants.split(","):
            r = run_variant(name, variant, work)
            results.append(r)
            errors = "  ".join(f"{c['cov_error']:.3f}" for c in r["checks"])
            ratio = "  ".join(f"{c['variance_ratio_min']:.2f}/{c['variance_ratio_median']:.2f}" for c in r["checks"])
            floor = "  ".join(f"{c['cov_error_floor']:.3f}" for c in r["checks"])
            print(f"{name:9s} {variant:14s} K={r['latent']:3d} {r['train_s']:6.0f} s  cov error {errors}  (sampling floor {floor})  "
                  f"var ratio min/median {ratio}", flush=True)  # fmt: skip
    if args.json:  # merged with the file's earlier results (other settings or variants)
        previous = json.loads(Path(args.json).read_text())["results"] if Path(args.json).is_file() else []
        keep = {(r["setting"], r["variant"]) for r in results}
        results = [r for r in previous if (r["setting"], r["variant"]) not in keep] + results
        write_json(args.json, {"prior": PRIOR, "lengthscales": [0.24, 0.40, 0.56], "variants": {k: dict(zip(("linear_path", "latent", "epochs", "noise_scale"), v))
                                                                                                  for k, v in VARIANTS.items()}, "results": results})  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="1d-100,2d-20x20")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--work", default="runs/bench/remedies", help="trained variants (reused when there)")
    parser.add_argument("--json", help="also write the results here")
    main(parser.parse_args())
