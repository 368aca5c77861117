"""Issue 17, measured: simulation-based calibration of a 1-D PriorCVAE, as a batch on Dask.

    python scripts/bench_sbc.py [--replicates 200] [--decoder path|path+residual|mlp] [--json docs/bench_sbc.json]

The surrogate: a 1d-100 PriorCVAE (Matérn 5/2 on 100 points of [0, 1], lengthscale ~ Uniform(0.2, 0.6),
hidden 256,128, latent 16, 150 epochs of 5,000 fresh draws), trained into --work (reused when there),
checked (check-prior) and exported. --decoder: `path` (the default decoder: the conditioned linear path
B L(ell) z, the MLP residual untrained), `path+residual` (the path and the MLP trained on the VAE loss,
--residual), `mlp` (no linear path: bench_gp's decoder before issue 17). `surrogate sbc` then
draws --replicates truths from the exact prior (lengthscale, field, intercept, noise sd), simulates
Gaussian data at 30% of the points and fits the surrogate model to each (2 chains, 500 + 500) on a
LocalCluster of --workers. Recorded: the rank-uniformity p-value, 90% coverage and whether each
rank ECDF stays inside its simultaneous 95% band, for the lengthscale, the intercept, the noise sd
and the field at 3 points; the batch's wall time; the prior check beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from surrogate.fileio import write_json
from surrogate.nn.config import TrainConfig
from surrogate.nn.export import export_decoder
from surrogate.nn.train import train
from surrogate.tasks.gp_check import check_prior
from surrogate.tasks.sbc import format_sbc, run_sbc


#: --decoder -> (work folder name, linear path, residual)
DECODERS = {"path": ("cvae-path", True, None), "path+residual": ("cvae-linear", True, True), "mlp": ("cvae", False, None)}


def trained_cvae(run: Path, epochs: int, linear_path: bool, residual: bool | None) -> tuple[Path, dict]:
    info = run / "bench_sbc_train.json"
    if not info.is_file():
        config = TrainConfig(dataset="gp1d", grid=100, model="cvae", kernel="matern52", lengthscale=(0.2, 0.6), hidden=(256, 128), latent=16,
                             epochs=epochs, lr=1e-3, batch_size=64, epoch_size=5000, seed=1, linear_path=linear_path, residual=residual)  # fmt: skip
        t0 = time.perf_counter()
        train(config, run, force=True, log=print, progress=False)
        seconds = time.perf_counter() - t0
        check = check_prior(run, draws=2000, out=run)
        export_decoder(run)
        write_json(info, {"train_s": seconds, "epochs": epochs, "linear_path": linear_path, "residual": config.resolved_residual,
                          "check_prior": check["checks"], "passed": check["passed"]})  # fmt: skip
    return run, json.loads(info.read_text())


def main(args):
    name, linear_path, residual = DECODERS[args.decoder]
    run, training = trained_cvae(Path(args.work) / name, args.epochs, linear_path, residual)
    t0 = time.perf_counter()
    result = run_sbc(run, args.replicates, Path(args.work) / f"sbc-{name}", chains=2, warmup=500, draws=500, seed=args.seed, workers=args.workers)
    wall = time.perf_counter() - t0
    print(format_sbc(result))
    summary = {"decoder": name, "replicates": result["replicates"], "fitted": result["fitted"], "wall_s_this_run": wall,
               "batch_wall_s": json.loads((Path(result["batch"]) / "batch.json").read_text())["wall_s"],
               "rank_uniformity_p": result["rank_uniformity_p"], "coverage90": result["coverage90"], "ecdf_in_band": result["ecdf_in_band"],
               "min_p": result["min_p"], "divergences": result["divergences"], "training": training}  # fmt: skip
    print(json.dumps({k: v for k, v in summary.items() if k != "training"}, indent=1))
    if args.json:
        previous = json.loads(Path(args.json).read_text()) if Path(args.json).is_file() else {}
        write_json(args.json, previous | {name: summary})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--decoder", choices=list(DECODERS), default="path", help="which decoder (see above)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="runs/bench/sbc", help="the trained surrogate and the SBC folders (both resume)")
    parser.add_argument("--json", help="also write the results here (docs/bench_sbc.json), one entry per decoder")
    main(parser.parse_args())
