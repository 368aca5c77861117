"""Stan NUTS on the reference inpainting task: wall time, ESS, ESS/s, cost per gradient.

    python scripts/bench_inpaint.py [--decoder runs/bench/cvae/decoder.json] [--chains 1,4]
                                    [--fresh-compile] [--json out.json]

The task (the blog's): validation image 0 (a 3), each pixel missing with probability
0.5 (mask seed 2: numpy.random.default_rng(2).random(784) < 0.5), sigma 0.1, the
reference CVAE (784 -> 400 -> 200 -> 100 -> 15, +10 one-hot, 30 epochs). Without
--decoder the CVAE is trained into runs/bench/cvae (about 2 minutes) or reused.

Times: compile (or cache load) is measured around the build; warmup and sampling
seconds are Stan's own per-chain timers; a gradient costs the chain's sampling
seconds divided by its leapfrog steps in the sampling phase. ESS/s divides the
minimum bulk ESS over theta by the sampling wall time (the slowest chain, as
chains run in parallel). PyStan's Python `grad_log_prob` re-sends the data on each
call (~0.4 s) and is never timed here.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import warnings
from pathlib import Path

import numpy as np

from surrogate.fileio import write_json
from surrogate.inference import SamplerSettings
from surrogate.inference.diagnostics import import_arviz
from surrogate.inference.programs import inline_includes, program_file
from surrogate.nn.config import TrainConfig
from surrogate.nn.export import export_decoder
from surrogate.tasks.inpaint import PROGRAM, observation_from_mnist, random_mask, run_inpaint


def reference_decoder(run: Path) -> Path:
    from surrogate.nn.train import train

    if not (run / "checkpoint.pt").exists() or not (run / "decoder.json").exists():
        config = TrainConfig(dataset="mnist", model="cvae", hidden=(400, 200, 100), latent=15, epochs=30, seed=1)
        train(config, run, resume=(run / "checkpoint.pt").exists())
        export_decoder(run)
    return run / "decoder.json"


def forget_compiled_model() -> None:
    """Remove PyStan's cached build of the program, so the next run compiles it."""
    import httpstan.cache
    import httpstan.models

    name = httpstan.models.calculate_model_name(inline_includes(program_file(PROGRAM)))
    shutil.rmtree(httpstan.cache.model_directory(name), ignore_errors=True)


def measure(decoder: Path, chains: int, args) -> dict:
    az = import_arviz()
    obs = observation_from_mnist("mnist", "valid", 0, random_mask(784, 0.5, 2))
    settings = SamplerSettings(chains=chains, warmup=args.warmup, draws=args.draws, seed=args.seed, dense_metric=args.dense_metric)
    result = run_inpaint(decoder, obs, 0.1, settings, args.engine)
    idata, a = result.idata, result.diagnostics
    t = a["timing"]
    steps = idata.sample_stats["n_steps"].sum("draw").values  # leapfrog steps per chain (sampling phase)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bulk_theta = az.ess(idata, var_names=["theta"], method="bulk")["theta"].values
        tail_theta = az.ess(idata, var_names=["theta"], method="tail")["theta"].values
        bulk_mis = az.ess(idata, var_names=["y_mis"], method="bulk")["y_mis"].values
    sampling_wall = max(t["sampling_s"])
    return {
        "chains": chains,
        "warmup": args.warmup,
        "dense_metric": args.dense_metric,
        "engine": a["engine"],
        "compile_s": round(t["compile_s"], 2),
        "warmup_s_per_chain": t["warmup_s"],
        "sampling_s_per_chain": t["sampling_s"],
        "wall_s": round(t["wall_s"], 2),
        "leapfrog_steps_per_chain": steps.tolist(),
        "gradient_us": round(1e6 * float(np.mean(np.array(t["sampling_s"]) / steps)), 1),
        "min_ess_bulk_theta": round(float(bulk_theta.min()), 1),
        "median_ess_bulk_theta": round(float(np.median(bulk_theta)), 1),
        "min_ess_tail_theta": round(float(tail_theta.min()), 1),
        "min_ess_bulk_missing_pixels": round(float(np.nanmin(bulk_mis)), 1),
        "min_ess_bulk_per_sampling_s": round(float(bulk_theta.min()) / sampling_wall, 1),
        "max_rhat": round(a["max_rhat"], 4),
        "divergences": a["divergences"],
        "treedepth_hits": a["treedepth_hits"],
        "chains_disagree": a["chains_disagree"],
        "per_chain_class": [(row["class"], round(row["class_prob"], 3)) for row in a["per_chain"]],
        "rmse_missing": round(a["rmse_missing_pooled"], 4),
    }


def main(args):
    decoder = Path(args.decoder) if args.decoder else reference_decoder(Path("runs/bench/cvae"))
    if args.fresh_compile:
        forget_compiled_model()
    rows = [measure(decoder, int(c), args) for c in args.chains.split(",")]
    import httpstan
    import torch

    report = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "python": platform.python_version(),
              "httpstan": httpstan.__version__, "torch": torch.__version__, "decoder": str(decoder), "runs": rows}  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", help="exported decoder JSON (default: train or reuse runs/bench/cvae)")
    parser.add_argument("--chains", default="1,4", help="comma-separated chain counts to run")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dense-metric", action="store_true", help="adapt a dense mass matrix")
    parser.add_argument("--engine", default="pystan")
    parser.add_argument("--fresh-compile", action="store_true", help="delete the cached build first (times a compile)")
    parser.add_argument("--json", help="also write the results here")
    main(parser.parse_args())
