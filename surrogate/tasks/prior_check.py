"""Prior fidelity of a spatial surrogate, beside its linear floor and the sampling floor.

For each checked hyperparameter value (a CVAE: several across its range; a VAE: the prior it
learnt, i.e. the covariance averaged over the range it marginalised) three things are compared
with the prior's covariance ``C``:

* ``cov_error``: ``||Cov(decoded) - C||_F / ||C||_F`` of ``n`` decoded draws ``z ~ N(0, I)``;
* ``cov_error_linear``: the same for the best rank-K linear surrogate, the truncated
  Karhunen-Loeve expansion with K the decoder's latent size (closed form:
  ``sqrt(sum_{i>K} lambda_i^2 / sum_i lambda_i^2)``); a decoder worse than it says so;
* ``cov_error_floor``: the same for ``n`` exact draws (the sampling error at this ``n``);

and the marginal variance ratio per location (decoded / prior; min and median) and an MMD
two-sample test of decoded against exact draws (``mmd_p_value``). The check passes when
``cov_error <= max_cov_error`` (or no worse than exact draws') at every value; its JSON is what ``export`` records and what
``fit --model surrogate`` warns about.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from surrogate.errors import SurrogateError
from surrogate.fileio import pyplot, save_figure
from surrogate.tasks.gp_check import check_arguments, compare_draws, write_check


def check_spatial(model, config, draws: int = 2000, values=None, max_cov_error: float = 0.2, seed: int = 0, out=None, run_dir=None) -> dict:
    """The check of a run trained with ``--prior`` (see the module docstring)."""
    check_arguments(draws, max_cov_error)
    prior = config.spatial_prior()
    K = model.latent_dim
    lo, hi = prior.condition or (None, None)
    if values is None:
        values = (None,) if not model.cond_dim else tuple(float(v) for v in np.round(lo + (hi - lo) * np.array([0.1, 0.5, 0.9]), 4))
    for v in values:
        if v is not None and not model.cond_dim:
            raise SurrogateError(f"this VAE marginalises {prior.condition_name}; check it without values (found {v})")
        if v is not None and not lo <= v <= hi:
            raise SurrogateError(f"{prior.condition_name} {v} is outside the training range [{lo}, {hi}]")

    def exact(count: int, seed: int, v: float | None) -> np.ndarray:
        mixture = v is None and prior.condition is not None and not prior.fixed  # exact draws from the mixture the VAE learnt
        return prior.sample(count, torch.Generator().manual_seed(seed), value=None if mixture else v)[0].double().numpy()

    covariance = lambda v: prior.mean_covariance() if v is None else prior.covariance(v)  # noqa: E731
    rows, panels = compare_draws(model, values, covariance, exact, draws, seed, max_cov_error)
    result = {"run_dir": str(run_dir), "prior": prior.kind, "condition_name": prior.condition_name, "locations": prior.size, "latent": K,
              "draws": draws, "max_cov_error": max_cov_error, "passed": all(r["passed"] for r in rows), "checks": rows,
              "linear_floor_share": prior.kept_share(K), "k99": prior.spectrum()["k99"]}  # fmt: skip
    return write_check(out, result, lambda path: plot_spatial_check(path, panels, prior))


def format_spatial_check(result: dict) -> str:
    name = result["condition_name"] or "-"
    lines = [f"prior {result['prior']} on {result['locations']} locations, latent {result['latent']} "
             f"(keeps {100 * result['linear_floor_share']:.0f}% of the variance linearly; {result['k99']} keep 99%): {result['draws']} draws",
             f"{name:>11}  {'cov error':>9}  {'linear':>7}  {'floor':>6}  {'var ratio min/median':>20}  {'MMD p':>6}  ok"]  # fmt: skip
    for r in result["checks"]:
        value = "mixture" if r["value"] is None else f"{r['value']:.4g}"
        lines.append(f"{value:>11}  {r['cov_error']:9.3f}  {r['cov_error_linear']:7.3f}  {r['cov_error_floor']:6.3f}  "
                     f"{r['variance_ratio_min']:9.2f} / {r['variance_ratio_median']:.2f}  {r['mmd_p_value']:6.3f}  "
                     f"{'yes' if r['passed'] else 'NO'}{'  (worse than the linear floor)' if r['worse_than_linear'] else ''}")  # fmt: skip
    lines.append("cov error: ||Cov(decoded) - C||_F / ||C||_F; linear: the rank-K Karhunen-Loeve surrogate's; floor: exact draws' (sampling error)")
    return "\n".join(lines)


def plot_spatial_check(path: Path, panels, prior) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 3, figsize=(11, 3.3 * len(panels)), squeeze=False)
    for row, (v, C, dec, _) in zip(axes, panels):
        vmax = np.abs(C).max()
        row[0].imshow(C, vmin=-vmax, vmax=vmax, cmap="RdBu_r")
        row[0].set_title(f"{prior.kind} covariance" + ("" if v is None else f", {prior.condition_name} {v:g}"))
        row[1].imshow(dec.T @ dec / len(dec), vmin=-vmax, vmax=vmax, cmap="RdBu_r")
        row[1].set_title("covariance of decoded draws")
        row[2].scatter(np.diag(C), (dec**2).mean(0), s=8)
        row[2].plot([0, np.diag(C).max()], [0, np.diag(C).max()], "k--", lw=1)
        row[2].set_xlabel("prior variance")
        row[2].set_ylabel("decoded variance")
    fig.tight_layout()
    save_figure(fig, path)
