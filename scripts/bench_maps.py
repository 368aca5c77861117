"""Maps benchmark: surrogate priors against the exact Stan baselines with the same priors, on real and simulated maps.

Maps: ``nc`` (North Carolina SIDS 1974-78, libpysal's bundled ``sids2``: Poisson counts SID74,
expected counts from the births BIR74 at the state-wide rate, covariate the non-white birth
proportion NWBIR74 / BIR74) and ``sim`` (80 Voronoi areas with counts simulated from a known BYM2
field and a covariate, so coverage of the truth is scored too).

Per map: train the surrogates (a BYM2 VAE, a CAR CVAE over alpha, a GP CVAE over the lengthscale
at the centroids), check their priors, fit each with ``areas_surrogate.stan`` and its exact
counterpart (BYM2, CAR, GP; ICAR too), 4 chains. Recorded per fit: wall and sampling time
(training apart), ESS/s (min bulk ESS over the areas' linear predictors per second of wall time),
R-hat, divergences, elpd_loo and Pareto k counts, the covariate effect; per pair the agreement
of posterior means and 90% intervals (surrogate.tasks.map_compare); on NC the log score of the
1979-84 counts SID79 given BIR79 at the 1974-78 rate; on the simulated map RMSE and 90%
coverage of the true log relative risk.

    python scripts/bench_maps.py                      # both maps: docs/bench_maps.json
    python scripts/bench_maps.py --maps nc --quick    # fewer epochs and draws (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {"bym2": "bym2", "car": "car", "gp": "gp"}  # surrogate prior -> its exact model


def nc_table(work: Path):
    """The NC data table as a CSV, with the non-white birth proportions computed."""
    import geopandas as gpd
    from libpysal import examples

    shp = Path(examples.get_path("sids2.shp"))
    t = gpd.read_file(shp).drop(columns="geometry")
    for period in ("74", "79"):
        t[f"NWPROP{period}"] = t[f"NWBIR{period}"] / t[f"BIR{period}"]
    csv = work / "nc_sids.csv"
    t.to_csv(csv, index=False)
    # rook contiguity reproduces the map's own GAL file (Cressie's neighbours) pair for pair
    return shp, csv, "FIPS", {"counts": "SID74", "population": "BIR74", "covariates": ("NWPROP74",)}, "rook"


def sim_table(work: Path, seed: int = 11):
    from surrogate.spatial.domain import read_map
    from surrogate.spatial.priors import SpatialPrior
    from surrogate.spatial.simulate import simulate_counts, write_voronoi_map

    path = write_voronoi_map(work / "voronoi80.geojson", 80, seed)
    domain = read_map(path, "id")
    table = simulate_counts(domain, SpatialPrior("bym2", domain), 0.7, 0.5, 0.0, 0.25, 15.0, seed)
    import pandas as pd

    csv = work / "voronoi80.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    return path, csv, "id", {"counts": "cases", "exposure": "expected", "covariates": ("x",)}, "queen"


def train_surrogate(prior: str, map_path: Path, id_column: str, contiguity: str, work: Path, args) -> tuple[Path, dict]:
    from surrogate.nn.config import TrainConfig
    from surrogate.nn.export import export_decoder
    from surrogate.nn.train import train
    from surrogate.tasks.gp_check import check_prior

    out = work / f"run-{prior}"
    common = {"map": str(map_path), "id_column": id_column, "contiguity": contiguity, "epochs": args.epochs, "epoch_size": args.epoch_size, "seed": 1, "hidden": tuple(args.hidden), "lr": args.lr}
    if prior == "bym2":
        config = TrainConfig(prior="bym2", model="vae", latent=1, **common)
    elif prior == "car":
        config = TrainConfig(prior="car", model="cvae", alpha=(0.1, 0.99), latent=1, **common)
    else:  # lengthscale: the default range, 0.05-0.5 x the map's extent
        config = TrainConfig(prior="gp", model="cvae", kernel="matern32", latent=1, **common)
    config.latent = config.spatial_prior().auto_latent()  # --latent auto
    t0 = time.perf_counter()
    if not (out / "decoder.json").is_file() or args.retrain:
        train(config, out, force=True, log=lambda m: print(f"  [{prior}] {m}") if "WARNING" in m or "keeps" in m else None, progress=False)
        check = check_prior(out, draws=2000, max_cov_error=args.max_cov_error, out=out)
        export_decoder(out)
    else:
        check = json.loads((out / "check_prior.json").read_text())
    seconds = time.perf_counter() - t0
    import csv as csv_module

    epochs_s = 0.0  # a decoder that is its path alone trains no epoch and writes no metrics.csv
    if (out / "metrics.csv").is_file():
        with open(out / "metrics.csv") as fh:  # the training loop's own time, epoch by epoch (also when the run is reused)
            epochs_s = sum(float(row["seconds"]) for row in csv_module.DictReader(fh))
    return out / "decoder.json", {"train_s": epochs_s, "train_check_export_s": seconds, "latent": config.latent, "check_prior": {k: check[k] for k in ("passed", "linear_floor_share", "k99")} |
                                  {"checks": check["checks"]}}  # fmt: skip


def fit_one(model: str, data, settings, engine, out: Path, decoder=None, reuse: bool = False):
    """Fit ``model`` into ``out``; with ``reuse``, read a finished fit folder instead of fitting again."""
    from surrogate.inference.fitdir import FitResult
    from surrogate.inference.idata import import_arviz
    from surrogate.tasks.areas_fit import fit_areas

    if reuse and (out / "diagnostics.json").is_file() and (out / "posterior.nc").is_file():
        diag = json.loads((out / "diagnostics.json").read_text())
        return FitResult("areas", import_arviz().from_netcdf(out / "posterior.nc"), diag, (out / "summary.txt").read_text(), out)
    return fit_areas(model, data, settings, engine, out, decoder_json=decoder)


def headline(r) -> dict:
    d = r.diagnostics
    keep = ("wall_s", "sampling_s", "ess_per_s", "ess_per_sampling_s", "min_ess_bulk_eta", "max_rhat", "divergences", "treedepth_hits",
            "elpd_loo", "elpd_loo_se", "p_loo", "pareto_k_over_0.7", "pareto_k_0.5_to_0.7", "us_per_gradient", "covariate_effects")  # fmt: skip
    out = {k: d[k] for k in keep}
    for name in ("ell", "alpha", "rho", "sigma_field"):
        if name in d:
            out[name] = d[name]
    return out


def study(name: str, args, engine) -> dict:
    from surrogate.inference import SamplerSettings
    from surrogate.spatial.data import read_area_data, read_table
    from surrogate.spatial.domain import read_map
    from surrogate.tasks.map_compare import agreement, predictive_log_score

    work = Path(args.work) / name
    work.mkdir(parents=True, exist_ok=True)
    map_path, csv, id_column, columns, contiguity = (nc_table if name == "nc" else sim_table)(work)
    domain = read_map(map_path, id_column, contiguity)
    data = read_area_data(csv, domain, id_column, **columns)
    print(f"{name}: {domain.describe()}; {data.n_obs} observed, covariates {data.covariates}")
    settings = SamplerSettings(chains=4, warmup=args.warmup, draws=args.draws, seed=1)
    gp_settings = SamplerSettings(chains=4, warmup=args.warmup, draws=args.draws, seed=1, adapt_delta=0.95)
    result = {"map": name, "areas": domain.size, "edges": len(domain.edges), "fits": {}, "agreement": {}, "training": {}}
    fits = {}
    for model in ("bym2", "icar", "car", "gp"):
        t0 = time.perf_counter()
        fits[model] = fit_one(model, data, gp_settings if model == "gp" else settings, engine, work / f"fit-{model}", reuse=args.reuse)
        result["fits"][model] = headline(fits[model]) | {"total_s": time.perf_counter() - t0}
        print(f"  exact {model:5s} {fits[model].diagnostics['ess_per_s']:8.1f} ESS/s  wall {fits[model].diagnostics['wall_s']:6.1f} s  "
              f"R-hat {fits[model].diagnostics['max_rhat']:.3f}  div {fits[model].diagnostics['divergences']}")  # fmt: skip
    for prior in args.surrogates:
        decoder, training = train_surrogate(prior, map_path, id_column, contiguity, work, args)
        result["training"][prior] = training
        key = f"surrogate-{prior}"
        # each surrogate samples as its exact model does (the GP's funnel in the lengthscale and sd: adapt_delta 0.95)
        fits[key] = fit_one("surrogate", data, gp_settings if prior == "gp" else settings, engine, work / f"fit-{key}", decoder, reuse=args.reuse)
        result["fits"][key] = headline(fits[key])
        result["agreement"][key] = agreement(fits[key].idata, fits[PAIRS[prior]].idata)
        a = result["agreement"][key]
        print(f"  {key:14s} {fits[key].diagnostics['ess_per_s']:8.1f} ESS/s  wall {fits[key].diagnostics['wall_s']:6.1f} s  "
              f"train {training['train_s']:.0f} s  |d eta| median {a['median_abs_diff_eta']:.3f} max {a['max_abs_diff_eta']:.3f}  "
              f"overlap>=0.8 {100 * a['share_overlap_ge_0.8']:.0f}%")  # fmt: skip
    if name == "nc":  # the next period: SID79 given BIR79, at the 1974-78 state-wide rate
        t = read_table(csv).astype({"FIPS": str}).set_index("FIPS").loc[list(domain.ids)]
        rate = data.counts.sum() / t["BIR74"].sum()
        e79 = t["BIR79"].to_numpy(float) * rate
        for key, r in fits.items():
            s = predictive_log_score(r.idata, t["SID79"].to_numpy(float), e79)
            result["fits"][key]["log_score_1979"] = {"mean": float(s.mean()), "sum": float(s.sum())}
    else:
        truth = read_table(csv)["eta_true"].to_numpy(float)
        for key, r in fits.items():
            eta = r.idata.posterior["eta"].values.reshape(-1, domain.size)
            lo, hi = np.quantile(eta, [0.05, 0.95], axis=0)
            result["fits"][key]["rmse_eta"] = float(np.sqrt(np.mean((eta.mean(0) - truth) ** 2)))
            result["fits"][key]["coverage90"] = float(np.mean((truth >= lo) & (truth <= hi)))
    if args.figures:
        figures = Path(args.figures)
        figures.mkdir(parents=True, exist_ok=True)
        for key in fits:
            shutil.copy(work / f"fit-{key}" / "maps.png", figures / f"{name}-{key}.png")
    return result


def main(args) -> dict:
    sys.path.insert(0, str(ROOT))
    from surrogate.inference import console, get_engine

    console.set_verbose(False)
    engine = get_engine(args.engine)
    t0 = time.perf_counter()
    results = {"settings": {k: v for k, v in vars(args).items()}, "maps": {}}
    for name in args.maps:
        results["maps"][name] = study(name, args, engine)
    results["total_s"] = time.perf_counter() - t0
    if args.out:
        from surrogate.fileio import write_json

        write_json(args.out, results)
        print(f"wrote {args.out} ({results['total_s']:.0f} s)")
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maps", type=lambda s: s.split(","), default=["nc", "sim"], help="nc, sim or both (comma-separated)")
    p.add_argument("--surrogates", type=lambda s: s.split(","), default=["bym2", "car", "gp"], help="surrogate priors to train and fit")
    p.add_argument("--work", default=str(ROOT / "runs" / "bench-maps"), help="folder for runs and fits")
    p.add_argument("--out", default=str(ROOT / "docs" / "bench_maps.json"), help="results JSON ('' for none)")
    p.add_argument("--figures", default="", help="copy each fit's maps.png here (the case study's figures)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs per surrogate")
    p.add_argument("--epoch-size", type=int, default=10_000, help="fresh prior draws per epoch")
    p.add_argument("--hidden", type=lambda s: [int(v) for v in s.split(",")], default=[256, 128], help="encoder widths")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--max-cov-error", type=float, default=0.2, help="check-prior threshold")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--engine", default="auto")
    p.add_argument("--retrain", action="store_true", help="train again even where a decoder exists")
    p.add_argument("--reuse", action="store_true", help="read finished fit folders in --work instead of fitting again")
    p.add_argument("--quick", action="store_true", help="a smoke run: 20 epochs of 5,000 draws, 300 + 300 iterations")
    return p


def resolve(args):
    if args.quick:
        args.epochs, args.epoch_size, args.warmup, args.draws = 20, 5000, 300, 300
    return args


if __name__ == "__main__":
    main(resolve(parser().parse_args()))
