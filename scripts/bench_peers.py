"""Peer benchmark on the reference inpainting task: the blog's sampler, NumPyro NUTS, Stan NUTS.

    pip install -e ".[bench]"            # jax + numpyro
    python scripts/bench_peers.py [--decoder runs/bench/cvae/decoder.json] [--json out.json]

Same task and decoder for all (validation image 0, mask seed 2, 50% missing, sigma 0.1;
theta ~ N(0, I) in R^(K+C), class weights softmax(theta[K:])):

1. the blog's approach: NumPyro's gradient-free SA sampler, the PyTorch decoder called
   through ``jax.pure_callback``; 1 chain, 1000 warmup + 20000 draws;
2. NumPyro NUTS with the decoder re-implemented in JAX from the exported weights
   (float64 and float32; 1 chain, and 4 chains both "sequential" and "vectorized");
3. surrogate's Stan NUTS (PyStan; 1 and 4 parallel chains); 1000 warmup + 1000 draws.

Wall times are split into JIT/compile and sampling: each NumPyro kernel runs twice on
one MCMC object and the second (compiled) pass is timed and kept, JIT = first pass -
second pass; Stan's sampling seconds are its own timer (slowest chain), compile is
PyStan's build (a cache load once compiled). ESS/s = min bulk ESS over theta /
sampling seconds; a gradient costs sampling seconds / leapfrog steps (1 chain, or
per chain for Stan's parallel chains).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")


def ess_summary(theta: np.ndarray, y_mis: np.ndarray) -> dict:
    """theta (chain, draw, P) and decoded missing pixels (chain, draw, M) -> ESS figures."""
    from surrogate.inference.diagnostics import import_arviz

    az = import_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ds = az.convert_to_dataset({"theta": theta, "y_mis": y_mis})
        bulk = az.ess(ds, method="bulk")
        tail = az.ess(ds, method="tail")
        out = {
            "min_ess_bulk_theta": float(bulk["theta"].min()),
            "median_ess_bulk_theta": float(bulk["theta"].median()),
            "min_ess_tail_theta": float(tail["theta"].min()),
            "min_ess_bulk_missing_pixels": float(np.nanmin(bulk["y_mis"].values)),
        }
        if theta.shape[0] > 1:
            out["max_rhat_theta"] = float(az.rhat(ds)["theta"].max())
    return out


def decode_numpy(data: dict, theta: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Decoded means at ``rows`` for a batch of theta [N, K+C] (float64, like Stan)."""
    import torch

    from surrogate.nn.export import torch_decoder

    K, C = data["K"], data["C"]
    x = torch.from_numpy(theta.reshape(-1, K + C))
    if C:
        x = torch.cat([x[:, :K], torch.softmax(x[:, K:], dim=1)], dim=1)
    with torch.no_grad():
        return torch_decoder(data)(x).numpy()[:, rows].reshape(*theta.shape[:-1], len(rows))


def jax_decoder(data: dict, rows: np.ndarray, dtype):
    import jax
    import jax.numpy as jnp

    acts = {1: jax.nn.elu, 2: jnp.tanh, 3: jax.nn.relu, 4: jax.nn.softplus}
    act, out_act = acts[data["hidden_activation"]], (jax.nn.sigmoid if data["output_activation"] == 1 else (lambda v: v))
    layers = [(jnp.asarray(data[f"W{i}"], dtype), jnp.asarray(data[f"b{i}"], dtype)) for i in range(1, data["L"] + 1)]
    W_obs, b_obs = jnp.asarray(data["W_out"][rows], dtype), jnp.asarray(data["b_out"][rows], dtype)
    K, C = data["K"], data["C"]

    def decode(theta):
        h = jnp.concatenate([theta[:K], jax.nn.softmax(theta[K:])]) if C else theta
        for W, b in layers:
            h = act(W @ h + b)
        return out_act(W_obs @ h + b_obs)  # the output layer at the observed rows only

    return decode


def numpyro_model(decode, y_obs, sigma, dim, dtype):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model():
        theta = numpyro.sample("theta", dist.Normal(jnp.zeros(dim, dtype), 1.0).to_event(1))
        numpyro.sample("y", dist.Normal(decode(theta), sigma).to_event(1), obs=y_obs)

    return model


def run_numpyro(kernel_fn, model, chains, warmup, draws, method, seed):
    """(samples (chain, draw, P), jit seconds, sampling seconds, warmup + sampling seconds).

    The kernel runs twice on one MCMC object: the first pass compiles (and samples),
    the second reuses the compiled functions with a new key and is the one timed and
    kept; JIT = first pass - second pass.
    """
    import jax
    from numpyro.infer import MCMC

    mcmc = MCMC(kernel_fn(model), num_warmup=warmup, num_samples=draws, num_chains=chains, chain_method=method, progress_bar=False)
    fields = ("num_steps",) if kernel_fn.__name__ == "NUTS" else ()
    times = []
    for key in (jax.random.PRNGKey(seed + 1000), jax.random.PRNGKey(seed)):
        t0 = time.perf_counter()
        mcmc.warmup(key)
        t1 = time.perf_counter()
        mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=fields)
        samples = mcmc.get_samples(group_by_chain=True)["theta"]
        samples.block_until_ready()
        times.append((t1 - t0, time.perf_counter() - t1))
    (w1, r1), (w2, r2) = times
    steps = int(mcmc.get_extra_fields()["num_steps"].sum()) if fields else 0
    return np.asarray(samples), max(w1 + r1 - w2 - r2, 0.0), r2, w2 + r2, steps


def main(args):
    import jax

    from surrogate.decoder.io import load_decoder
    from surrogate.inference import SamplerSettings
    from surrogate.tasks.inpaint import observation_from_mnist, random_mask, run_inpaint

    decoder_path = Path(args.decoder)
    data, _ = load_decoder(decoder_path)
    obs = observation_from_mnist("mnist", "valid", 0, random_mask(784, 0.5, 2))
    rows, mis = np.flatnonzero(~obs.missing), np.flatnonzero(obs.missing)
    dim, sigma = data["K"] + data["C"], 0.1
    truth = obs.y[mis]
    results = []

    def record(name, theta, jit_s, sampling_s, wall_s, chains, draws, extra=None):
        y_mis = decode_numpy(data, theta.astype(np.float64), mis)
        row = {"method": name, "chains": chains, "draws_per_chain": draws, "jit_or_compile_s": round(jit_s, 2),
               "wall_s": round(wall_s, 2), "sampling_s": round(sampling_s, 2), **ess_summary(theta, y_mis)}  # fmt: skip
        row["min_ess_bulk_per_sampling_s"] = row["min_ess_bulk_theta"] / sampling_s
        row["rmse_missing"] = float(np.sqrt(np.mean((y_mis.mean(axis=(0, 1)) - truth) ** 2)))
        logits = theta[..., data["K"] :]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        row["class_weights"] = np.round((probs / probs.sum(-1, keepdims=True)).mean(axis=(0, 1)), 3).tolist()
        row.update(extra or {})
        results.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    # --- 1. the blog's sampler: SA with the PyTorch decoder through a callback ---
    if not args.skip_sa:
        import jax.numpy as jnp
        import torch
        from numpyro.infer import SA

        from surrogate.nn.export import torch_decoder

        net = torch_decoder(data).float()
        K, C = data["K"], data["C"]

        def torch_decode(theta):
            x = torch.tensor(np.asarray(theta), dtype=torch.float32)
            x = torch.cat([x[:K], torch.softmax(x[K:], 0)]) if C else x
            with torch.no_grad():
                return net(x[None])[0, rows].numpy()

        def decode_cb(theta):
            return jax.pure_callback(torch_decode, jax.ShapeDtypeStruct((len(rows),), jnp.float32), theta)

        model = numpyro_model(decode_cb, jnp.asarray(obs.y[rows], jnp.float32), sigma, dim, jnp.float32)
        theta, jit_s, samp_s, wall_s, _ = run_numpyro(SA, model, 1, 1000, args.sa_draws, "sequential", args.seed)
        record("blog: NumPyro SA + PyTorch callback (float32)", theta, jit_s, samp_s, wall_s, 1, args.sa_draws)

    # --- 2. NumPyro NUTS with the decoder in JAX ---
    from numpyro.infer import NUTS

    for precision in ("float64", "float32"):
        jax.config.update("jax_enable_x64", precision == "float64")
        import jax.numpy as jnp

        dtype = jnp.float64 if precision == "float64" else jnp.float32
        model = numpyro_model(jax_decoder(data, rows, dtype), jnp.asarray(obs.y[rows], dtype), sigma, dim, dtype)
        for chains, method in ((1, "sequential"), (4, "sequential"), (4, "vectorized"), (4, "parallel")):
            theta, jit_s, samp_s, wall_s, steps = run_numpyro(NUTS, model, chains, args.warmup, args.draws, method, args.seed)
            grad_us = 1e6 * samp_s / steps if method == "sequential" else float("nan")  # chains share the time otherwise
            record(f"NumPyro NUTS {precision} ({method})", theta, jit_s, samp_s, wall_s, chains, args.draws, {"gradient_us": grad_us})
    jax.config.update("jax_enable_x64", False)

    # --- 3. surrogate: Stan's NUTS ---
    for chains in (1, 4):
        settings = SamplerSettings(chains=chains, warmup=args.warmup, draws=args.draws, seed=args.seed)
        result = run_inpaint(decoder_path, obs, sigma, settings, args.engine)
        t = result.diagnostics["timing"]
        theta = result.idata.posterior["theta"].values
        steps = result.idata.sample_stats["n_steps"].sum("draw").values
        grad_us = 1e6 * float(np.mean(np.array(t["sampling_s"]) / steps))
        record(f"surrogate Stan NUTS ({result.diagnostics['engine']}, parallel chains)", theta, t["compile_s"], max(t["sampling_s"]),
               t["wall_s"], chains, args.draws, {"gradient_us": grad_us})  # fmt: skip

    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
              "jax": jax.__version__, "numpyro": __import__("numpyro").__version__, "decoder": str(decoder_path), "runs": results}  # fmt: skip
    if args.json:
        from surrogate.fileio import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", default="runs/bench/cvae/decoder.json", help="exported reference CVAE (scripts/bench_inpaint.py trains it)")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--sa-draws", type=int, default=20000)
    parser.add_argument("--skip-sa", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", default="pystan")
    parser.add_argument("--json", help="also write the results here")
    main(parser.parse_args())
