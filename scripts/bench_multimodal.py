"""Issue 6, measured: the per-class class model against the blog's softmax model.

    python scripts/bench_multimodal.py [--decoder runs/bench/cvae/decoder.json] [--json docs/bench_multimodal.json]

The digits (fixed): the reference task (MNIST validation image 0, mask seed 2) and
MNIST test images 0..19 (mask seed 100 + i), for the agreement checks; test images
0..99 for class accuracy and calibration. 50% of pixels missing, sigma 0.1 throughout.

Part A (21 digits): per-class (4 chains, 500 warmup + 1000 draws per fitted class, Laplace screen 30
nats) with seeds 1, 2, 3; softmax (4 chains, 1000 + 1000) with seed 1. Checked per digit:
  * the 4 chains agree: R-hat <= 1.01 on z and the decoded missing pixels of every class
    with p(c | y) > 0.001, and the class posteriors estimated from each chain alone differ
    by at most 0.05 (the per-class class posterior is a ratio of marginal likelihoods, not
    a per-draw quantity, so it has no R-hat of its own);
  * the class posterior is stable across the 3 seeds (max abs difference <= 0.05);
  * the imputation RMSE is no worse than the best single softmax chain's (its best mode).
Part B (test 0..99): class accuracy (argmax p(c | y) = label) and reliability bins of the
top-class probability, for per-class (seed 1; 4 chains for 0..19 from part A, 2 chains
300 + 300 beyond) and softmax (pooled class weights; 4 chains 1000 + 1000 for 0..19, 2
chains 300 + 300 beyond).

Every finished fit is appended to ``--work`` (JSON lines) so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from surrogate.diagnostics import RHAT_LIMIT, reliability
from surrogate.export import load_decoder
from surrogate.fileio import write_json
from surrogate.inpaint import observation_from_mnist, random_mask, run_inpaint
from surrogate.per_class import CHAIN_SPREAD_LIMIT, run_per_class, summarize
from surrogate.stan_engine import SamplerSettings

AGREEMENT = [("valid", 0, 2)] + [("test", i, 100 + i) for i in range(20)]  # (split, index, mask seed)
ACCURACY = [("test", i, 100 + i) for i in range(100)]
SEEDS = (1, 2, 3)


def per_class_record(decoder, classes, digit, seed, chains, warmup, draws, engine):
    obs = observation_from_mnist("mnist", digit[0], digit[1], random_mask(784, 0.5, digit[2]))
    t0 = time.perf_counter()
    pc = run_per_class(decoder, obs, 0.1, SamplerSettings(chains=chains, warmup=warmup, draws=draws, seed=seed), engine)
    wall = time.perf_counter() - t0
    s = summarize(pc, classes, obs.y, obs.missing)
    weighted = [r for r in s["per_class"] if r["fitted"] and s["class_posterior"][r["class"]] > 1e-3]
    return {"model": "per-class", "digit": list(digit), "label": obs.label, "seed": seed, "chains": chains,
            "class_posterior": s["class_posterior"], "chain_max_abs_diff": s["chain_max_abs_diff"],
            "max_rhat": s["max_rhat_weighted"], "min_ess_bulk": min(r["min_ess_bulk"] for r in weighted),
            "fitted": s["fitted_classes"], "pareto_k_top": max(r["pareto_k"] for r in weighted),
            "rmse_missing": s["rmse_missing"], "divergences": s["divergences"], "wall_s": wall}  # fmt: skip


def softmax_record(decoder_json, digit, seed, chains, warmup, draws, engine):
    obs = observation_from_mnist("mnist", digit[0], digit[1], random_mask(784, 0.5, digit[2]))
    t0 = time.perf_counter()
    res = run_inpaint(decoder_json, obs, 0.1, SamplerSettings(chains=chains, warmup=warmup, draws=draws, seed=seed), engine)
    wall = time.perf_counter() - t0
    a = res.assessment
    return {"model": "softmax", "digit": list(digit), "label": obs.label, "seed": seed, "chains": chains,
            "class_posterior": a["pooled_class_probs"], "max_rhat": a["max_rhat"], "min_ess_bulk": a["min_ess_bulk"],
            "rhat_by_var": a["rhat_by_var"], "chains_disagree": a["chains_disagree"],
            "per_chain_class": [r["class"] for r in a["per_chain"]],
            "per_chain_rmse": [r["rmse_missing"] for r in a["per_chain"]], "rmse_missing": a["rmse_missing_pooled"],
            "divergences": a["divergences"], "wall_s": wall}  # fmt: skip


def calibration(records):
    return reliability([r["class_posterior"] for r in records], [r["label"] for r in records])


def agreement_checks(digit, pcs, soft):
    """The three 'must hold' checks of issue 6 for one digit."""
    post = np.array([r["class_posterior"] for r in pcs])
    best_mode = min(soft["per_chain_rmse"])
    worst = max(r["rmse_missing"] for r in pcs)
    return {"digit": digit, "label": pcs[0]["label"], "predicted": int(np.argmax(post[0])), "p_predicted": float(post[0].max()),
            "chains_agree": all(r["max_rhat"] <= RHAT_LIMIT and r["chain_max_abs_diff"] <= CHAIN_SPREAD_LIMIT for r in pcs),
            "max_rhat": max(r["max_rhat"] for r in pcs), "max_chain_spread": max(r["chain_max_abs_diff"] for r in pcs),
            "seed_max_abs_diff": float(np.ptp(post, axis=0).max()), "seeds_stable": bool(np.ptp(post, axis=0).max() <= 0.05),
            "rmse_per_class": [r["rmse_missing"] for r in pcs], "rmse_softmax_best_mode": best_mode,
            "rmse_softmax_pooled": soft["rmse_missing"], "softmax_chains_disagree": soft["chains_disagree"],
            "softmax_max_rhat": soft["max_rhat"], "rmse_no_worse": bool(worst <= best_mode), "rmse_ratio_to_best_mode": worst / best_mode,
            "wall_s_per_class": float(np.mean([r["wall_s"] for r in pcs])), "wall_s_softmax": soft["wall_s"],
            "ess_per_s_per_class": float(np.mean([r["min_ess_bulk"] / r["wall_s"] for r in pcs])),
            "ess_per_s_softmax": soft["min_ess_bulk"] / soft["wall_s"]}  # fmt: skip


def main(args):
    decoder, meta = load_decoder(args.decoder)
    classes = meta.get("classes") or [str(c) for c in range(decoder["C"])]
    work = Path(args.work)
    work.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if work.exists():
        for line in work.read_text().splitlines():
            r = json.loads(line)
            done[(r["model"], tuple(r["digit"]), r["seed"], r["chains"])] = r

    def get(model, digit, seed, chains):
        key = (model, tuple(digit), seed, chains)
        if key not in done:
            if model == "per-class":
                r = per_class_record(decoder, classes, digit, seed, chains, *((500, 1000) if chains == 4 else (300, 300)), args.engine)
            else:
                n = 1000 if chains == 4 else 300
                r = softmax_record(args.decoder, digit, seed, chains, n, n, args.engine)
            done[key] = r
            with work.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"{model:9s} {digit} seed {seed} chains {chains}: p = {max(r['class_posterior']):.3f} "
                  f"class {int(np.argmax(r['class_posterior']))} (label {r['label']}) R-hat {r['max_rhat']:.3f} "
                  f"RMSE {r['rmse_missing']:.4f} {r['wall_s']:.1f} s", flush=True)  # fmt: skip
        return done[key]

    # --- part A: agreement, seed stability, RMSE vs the softmax model's best mode ---
    checks = []
    for digit in AGREEMENT[: args.n_agreement]:
        pcs = [get("per-class", digit, s, 4) for s in SEEDS]
        checks.append(agreement_checks(list(digit), pcs, get("softmax", digit, 1, 4)))
    # --- part B: accuracy and calibration ---
    acc = {"per-class": [], "softmax": []}
    for i, digit in enumerate(ACCURACY[: args.n_accuracy]):
        if i < args.accuracy_start:
            continue
        chains = 4 if i < 20 else 2
        acc["per-class"].append(get("per-class", digit, 1, chains))
        acc["softmax"].append(get("softmax", digit, 1, chains))
    result = {
        "decoder": str(args.decoder),
        "agreement": {"digits": len(checks), "all_chains_agree": all(c["chains_agree"] for c in checks),
                      "all_seeds_stable": all(c["seeds_stable"] for c in checks), "rmse_no_worse_count": sum(c["rmse_no_worse"] for c in checks),
                      "rmse_ratio_to_best_mode": {"median": float(np.median([c["rmse_ratio_to_best_mode"] for c in checks])), "max": float(max(c["rmse_ratio_to_best_mode"] for c in checks))},
                      "softmax_disagreements": sum(c["softmax_chains_disagree"] for c in checks),
                      "median_wall_s": {"per-class": float(np.median([c["wall_s_per_class"] for c in checks])), "softmax": float(np.median([c["wall_s_softmax"] for c in checks]))},
                      "median_ess_per_s": {"per-class": float(np.median([c["ess_per_s_per_class"] for c in checks])), "softmax": float(np.median([c["ess_per_s_softmax"] for c in checks]))},
                      "per_digit": checks},
        "calibration": {m: calibration(r) for m, r in acc.items() if r},
        "accuracy_wall_s": {m: float(sum(r["wall_s"] for r in recs)) for m, recs in acc.items()},
    }  # fmt: skip
    print(json.dumps({k: v for k, v in result["agreement"].items() if k != "per_digit"}, indent=1))
    print(json.dumps(result["calibration"], indent=1))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", type=Path, default=Path("runs/bench/cvae/decoder.json"))
    parser.add_argument("--engine", default="pystan")
    parser.add_argument("--work", default="runs/bench/multimodal.jsonl", help="finished fits, one JSON per line (resumes)")
    parser.add_argument("--n-agreement", type=int, default=len(AGREEMENT), help="how many of the 21 agreement digits")
    parser.add_argument("--n-accuracy", type=int, default=len(ACCURACY), help="how many of the 100 accuracy digits")
    parser.add_argument("--accuracy-start", type=int, default=0, help="skip the first N accuracy digits (to split the work between processes)")
    parser.add_argument("--json", help="also write the results here")
    main(parser.parse_args())
