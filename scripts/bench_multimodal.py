"""The class posterior on the reference digit: per-class fits + marginal likelihoods vs the softmax model.

    python scripts/bench_multimodal.py [--decoder runs/bench/cvae/decoder.json] [--seeds 1,2] [--json out.json]

For each seed: the per-class model (2 chains, 500 + 500 iterations per fitted class,
weighed by importance-sampling marginal likelihoods), with the Laplace screen (30 nats)
and without it (every class fitted), and the softmax model (4 chains,
1000 + 1000) on validation image 0 with mask seed 2 and sigma 0.1. Reported: the class
posterior (or per-chain class weights), log evidences, Pareto k, imputation RMSE, wall time.
The larger checks of issue 6 (20 more digits, 100-digit accuracy, calibration) are not here yet.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from surrogate.export import load_decoder
from surrogate.fileio import write_json
from surrogate.inpaint import observation_from_mnist, random_mask, run_inpaint
from surrogate.per_class import run_per_class, summarize
from surrogate.stan_engine import SamplerSettings


def main(args):
    decoder, meta = load_decoder(args.decoder)
    classes = meta.get("classes") or [str(c) for c in range(decoder["C"])]
    obs = observation_from_mnist("mnist", "valid", 0, random_mask(784, 0.5, 2))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for screen in (30.0, None):
            t0 = time.perf_counter()
            pc = run_per_class(decoder, obs, 0.1, SamplerSettings(chains=2, warmup=500, draws=500, seed=seed), args.engine, screen=screen)
            s = summarize(pc, classes, obs.y, obs.missing)
            order = np.argsort(pc.log_evidence)[::-1]
            rows.append({"model": "per-class", "screen_nats": screen, "fitted": s["fitted_classes"], "seed": seed,
                         "wall_s": round(time.perf_counter() - t0, 1),
                         "predicted": s["predicted_class"], "p_predicted": s["predicted_prob"],
                         "log_evidence_top2": [(classes[i], round(float(pc.log_evidence[i]), 2)) for i in order[:2]],
                         "pareto_k_predicted": round(float(pc.pareto_k[order[0]]), 3), "rmse_missing": round(s["rmse_missing"], 4),
                         "laplace_top2": [(classes[i], round(pc.per_class[i]["laplace_log_evidence"], 2)) for i in order[:2]],
                         "max_rhat_fitted": [round(r["max_rhat"], 3) for r in pc.per_class if r["fitted"]]})  # fmt: skip
            print(rows[-1], flush=True)
        t0 = time.perf_counter()
        soft = run_inpaint(args.decoder, obs, 0.1, SamplerSettings(chains=4, warmup=1000, draws=1000, seed=seed), args.engine)
        a = soft.assessment
        rows.append({"model": "softmax", "seed": seed, "wall_s": round(time.perf_counter() - t0, 1),
                     "per_chain_class": [(r["class"], round(r["class_prob"], 3)) for r in a["per_chain"]],
                     "max_rhat": round(a["max_rhat"], 4), "chains_disagree": a["chains_disagree"],
                     "rmse_missing": round(a["rmse_missing_pooled"], 4)})  # fmt: skip
        print(rows[-1], flush=True)
    if args.json:
        write_json(args.json, {"decoder": str(args.decoder), "runs": rows})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", type=Path, default=Path("runs/bench/cvae/decoder.json"))
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--engine", default="pystan")
    parser.add_argument("--json", help="also write the results here")
    main(parser.parse_args())
