"""The main job: train the blog's CVAE on MNIST, export its decoder, inpaint a digit with Stan, report,
then inpaint it again with the recommended partitioned class model.

    python scripts/demo.py [--out runs/demo] [--epochs 10] [--chains 4]

Re-running continues the saved training (nothing is retrained) and re-samples.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from surrogate.inference import SamplerSettings
from surrogate.nn.config import TrainConfig
from surrogate.nn.export import export_decoder
from surrogate.nn.sample import sample
from surrogate.reports.fit import build_report
from surrogate.tasks.inpaint import observation_from_mnist, random_mask, run_inpaint


def main(args):
    out = Path(args.out)
    t0 = time.perf_counter()

    # --- 1. train the reference CVAE: 784(+10) -> 400 -> 200 -> 100 -> 15, ELU, sigmoid ---
    from surrogate.nn.train import train

    run = out / "cvae"
    config = TrainConfig(dataset="mnist", model="cvae", hidden=(400, 200, 100), latent=15, epochs=args.epochs, seed=1)
    train(config, run, resume=(run / "checkpoint.pt").exists())
    sample(run, run / "samples.png", n=8)

    # --- 2. export the decoder as Stan data ---
    decoder_json, _ = export_decoder(run)
    print(f"exported {decoder_json}")

    # --- 3. inpaint the reference digit (valid[0], a 3) with half its pixels missing ---
    mask = random_mask(784, 0.5, seed=2)
    obs = observation_from_mnist("mnist", "valid", 0, mask)
    settings = SamplerSettings(chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed)
    print(f"inpainting {obs.source}: {int(mask.sum())} of 784 pixels missing, {args.chains} chains of Stan's NUTS")
    result = run_inpaint(decoder_json, obs, 0.1, settings, args.engine, out / "inpaint")
    timing = result.diagnostics["timing"]
    print(result.text)
    print(f"Stan: compile/load {timing['compile_s']:.1f}s, warmup+sampling {timing['wall_s']:.1f}s ({result.diagnostics['engine']})")
    # --- 4. a shareable report of the fit ---
    html_path, _ = build_report(out / "inpaint")
    print(f"figures: {run / 'samples.png'}, {run / 'learning_curves.png'}, {out / 'inpaint' / 'inpaint.png'}, {out / 'inpaint' / 'class_probs.png'}")
    print(f"report: {html_path} (self-contained) and {html_path.with_suffix('.md')}")
    # --- 5. the same digit with the recommended class model: the softmax model region by region ---
    from surrogate.decoder.io import load_decoder
    from surrogate.tasks.pieces import inpaint_per_class

    decoder, meta = load_decoder(decoder_json)
    print("the same digit, --class-model partitioned (one fit per plausible dominant-class region, weighed by mass):")
    pieces = replace(settings, draws=args.piece_draws)
    summary = inpaint_per_class(decoder, meta, obs, 0.1, pieces, args.engine, out=out / "partitioned", model="partitioned")
    print(summary.text)
    print(f"demo finished in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="output folder")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (the blog used 30)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--piece-draws", type=int, default=2000, help="draws per chain of each partitioned region's fit")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", default="auto", help="auto, cmdstan or pystan")
    main(parser.parse_args())
