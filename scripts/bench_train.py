"""Seconds per epoch of the reference CVAE: surrogate's `train` vs a minimal PyTorch loop.

    python scripts/bench_train.py [--epochs 3] [--device auto] [--json out.json]

Both train 784(+10) -> 400 -> 200 -> 100 -> 15 (ELU, sigmoid), BCE(sum) + KL, Adam
1e-3, batch 128 on the 50,000-image training split, in the same process. The
surrogate figure is its whole epoch (training, validation pass, checkpoint and
metrics written); the minimal loop only trains. Both run in alternating rounds;
the very first epoch of each is reported separately (warm-up) and the median of
all the others is compared.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from surrogate.data import load_split
from surrogate.fileio import write_json
from surrogate.nn.config import TrainConfig
from surrogate.nn.train import select_device, train


def minimal_loop(x: torch.Tensor, c: torch.Tensor, epochs: int, device) -> list[float]:
    """The plain loop a user would write by hand for the same model."""
    torch.manual_seed(1)
    act = nn.ELU
    encoder = nn.Sequential(nn.Linear(794, 400), act(), nn.Linear(400, 200), act(), nn.Linear(200, 100), act()).to(device)
    heads = nn.Linear(100, 30).to(device)
    decoder = nn.Sequential(nn.Linear(25, 100), act(), nn.Linear(100, 200), act(), nn.Linear(200, 400), act(),
                            nn.Linear(400, 784), nn.Sigmoid()).to(device)  # fmt: skip
    params = [*encoder.parameters(), *heads.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            xb, cb = x[idx], c[idx]
            mu, logvar = heads(encoder(torch.cat([xb, cb], 1))).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            x_hat = decoder(torch.cat([z, cb], 1))
            loss = F.binary_cross_entropy(x_hat, xb, reduction="sum") - 0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main(args):
    device = select_device(args.device)
    x_np, y_np = load_split("mnist", "train")
    x = torch.from_numpy(x_np).to(device)
    c = F.one_hot(torch.from_numpy(y_np), 10).float().to(device)
    plain, ours = [], []
    for _ in range(args.rounds):  # alternate, so drifts of the machine hit both alike
        plain += minimal_loop(x, c, args.epochs, device)
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(dataset="mnist", model="cvae", epochs=args.epochs, device=args.device)
            result = train(config, f"{tmp}/run", log=lambda _: None, progress=False)
        ours += [row["seconds"] for row in result.metrics]
    summary = {
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "epochs": args.epochs,
        "rounds": args.rounds,
        "minimal_first_s": plain[0],
        "minimal_median_s": statistics.median(plain[1:]),
        "minimal_all_s": [round(t, 3) for t in plain],
        "surrogate_all_s": ours,
        "surrogate_first_s": ours[0],
        "surrogate_median_s": statistics.median(ours[1:]),
    }
    summary["ratio"] = summary["surrogate_median_s"] / summary["minimal_median_s"]
    print(json.dumps(summary, indent=2))
    if args.json:
        write_json(args.json, summary)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each per round (the first counts as warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the results here")
    main(parser.parse_args())
