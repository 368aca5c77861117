"""Prior fidelity of areal surrogates: latent size and the linear Karhunen-Loeve path, on North Carolina's counties.

For each setting a BYM2 VAE is trained on the 100 counties (rook contiguity) and checked with
``check-prior`` (decoded draws against exact draws of the rho-mixture it learnt): covariance error
beside the rank-K linear floor, and the marginal variance ratio per county (min / median).

    python scripts/bench_map_priors.py            # docs/bench_map_priors.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(args) -> dict:
    sys.path.insert(0, str(ROOT))
    from libpysal import examples

    from surrogate.fileio import write_json
    from surrogate.nn.checkpoint import load_model
    from surrogate.nn.config import TrainConfig
    from surrogate.nn.train import train
    from surrogate.tasks.prior_check import check_spatial

    shp = examples.get_path("sids2.shp")
    rows = []
    for latent, linear in [(40, False), (40, True), (0, False), (0, True)]:
        config = TrainConfig(prior=args.prior, map=shp, id_column="FIPS", contiguity="rook", model="vae", latent=1, hidden=(256, 128),
                             epochs=args.epochs, epoch_size=args.epoch_size, seed=1, linear_path=linear)  # fmt: skip
        config.latent = latent or config.spatial_prior().auto_latent()
        out = Path(args.work) / f"{args.prior}-k{config.latent}-{'linear' if linear else 'mlp'}"
        t0 = time.perf_counter()
        train(config, out, force=True, log=lambda _: None, progress=False)
        seconds = time.perf_counter() - t0
        model, config, _ = load_model(out)
        check = check_spatial(model, config, draws=4000, max_cov_error=0.2, seed=0)
        row = {"latent": config.latent, "linear_path": linear, "train_s": seconds, "linear_floor_share": check["linear_floor_share"],
               **{k: check["checks"][0][k] for k in ("cov_error", "cov_error_linear", "cov_error_floor", "variance_ratio_min",
                                                     "variance_ratio_median", "mmd_p_value")}}  # fmt: skip
        rows.append(row)
        print(f"latent {row['latent']:3d} linear path {str(linear):5s}: cov error {row['cov_error']:.3f} (linear floor {row['cov_error_linear']:.3f}, "
              f"sampling floor {row['cov_error_floor']:.3f}), variance ratio min {row['variance_ratio_min']:.2f} median "
              f"{row['variance_ratio_median']:.2f}, MMD p {row['mmd_p_value']:.3f}, {seconds:.0f} s")  # fmt: skip
    result = {"prior": args.prior, "map": "sids2 (100 counties, rook)", "epochs": args.epochs, "epoch_size": args.epoch_size, "rows": rows}
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prior", default="bym2", help="bym2, icar or car")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--epoch-size", type=int, default=10_000)
    p.add_argument("--work", default=str(ROOT / "runs" / "bench-map-priors"))
    p.add_argument("--out", default=str(ROOT / "docs" / "bench_map_priors.json"))
    main(p.parse_args())
