"""Issue 28, dl4bi's DeepRV on the 2-D GP task: what one training step and one NUTS gradient cost on this machine.

DeepRV (dl4bi 0.1.3, ``dl4bi.vae.gMLPDeepRV`` with its defaults: two gMLP blocks whose spatial gating unit mixes all N
locations, an N x N weight per block) is trained by ``dl4bi.vae.train_utils.deep_rv_train_step`` (MSE between a GP draw
and the decoded draw of the same z) on draws of the prior of ``bench_gp.py``'s ``2d-50x50-short`` data set (Matern 5/2,
lengthscale ~ U(0.05, 0.3), variance 1, on the 50 x 50 grid). This script builds it through dl4bi's own API, compiles
and times training steps (batch 32, Adam 1e-3) and the gradient of a Poisson log density through the decoder (what
NumPyro's NUTS evaluates per leapfrog step), and records both, with the grid size, in docs/bench_peers_spatial.json
under ``deeprv_cost``. Run with ``--steps N`` to also train N steps and report the training loss.

    .venv-bench/bin/python scripts/bench_peers_deeprv.py [--grid 50] [--steps 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "bench_peers_spatial.json"
PRIOR, BATCH = (0.05, 0.3), 32


def matern52(x: np.ndarray, ell: float) -> np.ndarray:
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)) / ell
    return (1 + np.sqrt(5) * d + 5 * d**2 / 3) * np.exp(-np.sqrt(5) * d)


def main(args) -> None:
    import importlib.metadata as md

    import jax
    import jax.numpy as jnp
    import optax

    from dl4bi.core.train import TrainState
    from dl4bi.vae import gMLPDeepRV
    from dl4bi.vae.train_utils import deep_rv_train_step

    g = args.grid
    axis = np.linspace(0, 1, g)
    s = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    n = len(s)
    rng = np.random.default_rng(1)
    ells = rng.uniform(*PRIOR, 4)
    factors = [np.linalg.cholesky(matern52(s, e) + 1e-6 * np.eye(n)) for e in ells]

    def batch(i: int) -> dict:
        k = i % len(ells)
        z = rng.normal(size=(BATCH, n))
        f = z @ factors[k].T
        return {"z": jnp.asarray(z), "conditionals": jnp.array([ells[k]]), "s": jnp.asarray(s), "f": jnp.asarray(f[..., None])}

    model = gMLPDeepRV()
    key = jax.random.PRNGKey(0)
    b0 = batch(0)
    t0 = time.perf_counter()
    params = model.init({"params": key, "extra": key}, b0["z"], b0["conditionals"], b0["s"])["params"]
    state = TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-3))
    n_params = int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, loss = deep_rv_train_step(key, state, b0)
    loss.block_until_ready()
    compile_s = time.perf_counter() - t0
    times, losses = [], []
    for i in range(1, 1 + max(args.timed, args.steps)):
        b = batch(i)
        t0 = time.perf_counter()
        state, loss = deep_rv_train_step(jax.random.fold_in(key, i), state, b)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    counts = jnp.asarray(rng.poisson(1.0, n).astype(float))

    def log_density(z):
        f = model.apply({"params": state.params}, z[None, :], jnp.array([0.1]), jnp.asarray(s), method="decode").reshape(-1)
        return jnp.sum(counts * f - jnp.exp(f)) - 0.5 * jnp.sum(z**2)

    grad = jax.jit(jax.grad(log_density))
    z = jnp.asarray(rng.normal(size=n))
    grad(z).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(20):
        grad(z).block_until_ready()
    us_per_gradient = 1e6 * (time.perf_counter() - t0) / 20
    record = {
        "grid": f"{g}x{g}", "locations": n, "parameters": n_params, "batch": BATCH, "init_s": init_s, "compile_s": compile_s,
        "s_per_training_step": float(np.median(times)), "steps_run": len(times), "loss_first_last": [losses[0], losses[-1]] if losses else None,
        "us_per_nuts_gradient": us_per_gradient,
        "versions": {p: md.version(p) for p in ("dl4bi", "jax", "flax", "optax", "numpyro")},
        "machine": {"cpus": __import__("os").cpu_count()},
    }  # fmt: skip
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results.setdefault("deeprv_cost", {})[f"{g}x{g}"] = record
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=50)
    parser.add_argument("--timed", type=int, default=5, help="training steps timed")
    parser.add_argument("--steps", type=int, default=0, help="training steps run (at least --timed)")
    main(parser.parse_args())
