"""What dropout does to an MNIST autoencoder, and the VAE diagnostics of `surrogate evaluate`.

    python scripts/bench_evaluate.py [--epochs 10] [--dropouts 0,0.2,0.5] [--out runs/bench_evaluate] [--json docs/bench_evaluate.json]

For an AE and a VAE (784 -> 400 -> 200 -> 15, ELU, sigmoid, BCE, the 50,000-image training
split, Adam 1e-3, batch 128, seed 1) and each dropout probability on the encoder's hidden
layers: `surrogate evaluate` on 2,000 test images (IWAE with k = 100): reconstruction MSE at
the encoder mean beside PCA with 15 components, active units, and for the VAE the ELBO, its
terms and IWAE_1/10/100.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from surrogate.fileio import write_json
from surrogate.nn.config import TrainConfig
from surrogate.nn.evaluate import evaluate_run
from surrogate.nn.train import train


def main(args):
    rows = []
    for model in ("ae", "vae"):
        for p in args.dropouts:
            run = Path(args.out) / f"{model}-dropout{p:g}"
            config = TrainConfig(dataset="mnist", model=model, hidden=(400, 200), latent=15, epochs=args.epochs, seed=1, dropout=p)
            t0 = time.perf_counter()
            train(config, run, resume=(run / "checkpoint.pt").exists(), log=lambda _: None, progress=False)
            train_s = time.perf_counter() - t0
            row = {"model": model, "dropout": p, "epochs": args.epochs, "train_s": round(train_s, 1)}
            for k in (1, 10, 100) if model == "vae" else (1,):
                ev = evaluate_run(run, "test", k=k, n=args.n, seed=k, out=run / "evaluate" if k == 100 or model == "ae" else None)
                if model == "vae":
                    row[f"iwae_{k}"] = round(ev[f"iwae_{k}"]["mean"], 2)
                    row[f"iwae_{k}_se"] = round(ev[f"iwae_{k}"]["se"], 2)
            row |= {"active_units": ev["active_units"], "recon_mse": round(ev["reconstruction_mse"]["mean"], 5),
                    "pca_mse": round(ev["pca_reconstruction_mse"]["mean"], 5)}  # fmt: skip
            if model == "vae":
                row |= {"elbo": round(ev["elbo"]["mean"], 2), "kl": round(ev["kl"]["mean"], 2)}
            print(row, flush=True)
            rows.append(row)
    write_json(args.json, {"settings": vars(args), "rows": rows})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dropouts", type=lambda s: [float(v) for v in s.split(",")], default=[0.0, 0.2, 0.5])
    parser.add_argument("--n", type=int, default=2000, help="test images evaluated")
    parser.add_argument("--out", default="runs/bench_evaluate")
    parser.add_argument("--json", default="docs/bench_evaluate.json")
    main(parser.parse_args())
