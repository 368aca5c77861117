"""Issue 17, measured: how sparse the conditioned linear path's factor can be, and why not diagonal.

    python scripts/bench_sparse_path.py [--json docs/bench_sparse_path.json]

For the 50 x 50 Matérn 5/2 prior with the lengthscale in [0.05, 0.3] (bench_gp's 2d-50x50-short, K = 903
from `--latent auto`) and the 20 x 20 one in [0.2, 0.6] (K = 70): the shared basis B and the Cholesky
factors L_g of B' Sigma(ell_g) B at the 32 knots; then, per threshold of the ladder in
surrogate.nn.linear_path.THRESHOLDS, the entries kept (the largest |L_g| over the knots above threshold x
the largest entry, plus the diagonal) and the largest relative Frobenius error ||F F' - S|| / ||S|| over the
knots; and a purely diagonal path B diag(sqrt(diag S)) z: its covariance error against the kernel and
its least variance ratio per cell at 6 lengthscales.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from surrogate.data.gp import GPPrior
from surrogate.fileio import write_json
from surrogate.nn.linear_path import SPARSE_TOL, THRESHOLDS, auto_latent, shared_basis

SETTINGS = {"2d-50x50-short": (GPPrior(2, 50, "matern52", (0.05, 0.3)), (0.05, 0.07, 0.1, 0.15, 0.2, 0.3)),
            "2d-20x20": (GPPrior(2, 20, "matern52", (0.2, 0.6)), (0.2, 0.3, 0.4, 0.5, 0.6))}  # fmt: skip


def measure(prior: GPPrior, lengthscales) -> dict:
    t0 = time.perf_counter()
    K = auto_latent(prior.covariance, *prior.lengthscale)["latent"]
    lam, V, values = shared_basis(prior.covariance, *prior.lengthscale)
    covs = [prior.covariance(float(v)) for v in values]
    B = V[:, :K]
    S = [B.T @ C @ B for C in covs]
    L = np.stack([np.linalg.cholesky(0.5 * (s + s.T) + 1e-9 * lam[0] * np.eye(K)) for s in S])
    size, norms = np.abs(L).max(0), [np.linalg.norm(s) for s in S]
    ladder = []
    for threshold in THRESHOLDS:
        mask = (size > threshold * size.max()) | np.eye(K, dtype=bool)
        error = max(float(np.linalg.norm((F * mask) @ (F * mask).T - s) / n) for F, s, n in zip(L, S, norms))
        ladder.append({"threshold": threshold, "nnz": int(mask.sum()), "max_rel_error": error})
        print(f"  threshold {threshold:8.0e}  entries {int(mask.sum()):7d}  max error {error:.4f}", flush=True)
    diagonal = []
    for ell in lengthscales:
        C = prior.covariance(ell)
        d = np.einsum("ij,ij->j", B, C @ B)  # diag(B' C B)
        approx = (B * d) @ B.T
        diagonal.append({"lengthscale": ell, "cov_error": float(np.linalg.norm(approx - C) / np.linalg.norm(C)),
                         "variance_ratio_min": float((np.diag(approx) / np.diag(C)).min())})  # fmt: skip
        print(f"  diagonal path at ell {ell}: cov error {diagonal[-1]['cov_error']:.4f}, variance ratio min {diagonal[-1]['variance_ratio_min']:.3f}", flush=True)
    chosen = next((r for r in ladder if r["max_rel_error"] <= SPARSE_TOL), None)
    return {"latent": K, "lower_triangle": K * (K + 1) // 2, "ladder": ladder, "chosen": chosen, "diagonal": diagonal, "seconds": time.perf_counter() - t0}


def main(args):
    results = {}
    for name, (prior, lengthscales) in SETTINGS.items():
        print(name, flush=True)
        results[name] = measure(prior, lengthscales)
    if args.json:
        write_json(args.json, {"sparse_tol": SPARSE_TOL, "settings": results})
    print(json.dumps({k: v["chosen"] | {"latent": v["latent"]} for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here (docs/bench_sparse_path.json)")
    main(parser.parse_args())
