"""Is this decoder a good prior? The VAE diagnostics the theory asks for, on a data split.

For a trained run and a split (images, or fresh prior draws for the GP datasets):

- the ELBO per example and its two terms, E_q[log p(x | z)] (one reparameterised draw per
  example, as in training) and KL(q(z | x) || N(0, I)) (closed form);
- KL per latent dimension and the active units, Cov_x(E_q[z]) > 0.01 (Burda et al. 2016),
  so that posterior collapse is visible;
- the importance-weighted bound log p(x) >= IWAE_k = E log mean_k p(x, z_k) / q(z_k | x)
  (k = 1 is an unbiased estimate of the ELBO; the bound tightens as k grows);
- PCA with as many components as the latent size (the linear autoencoder, fitted on the
  training split) beside the autoencoder's reconstruction at the encoder mean;
- per-example scores (-ELBO, -IWAE_k: anomaly scores); the worst examples as a figure.

An ``ae`` has no q(z | x): it gets the reconstruction, PCA and active units only.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from surrogate.errors import SurrogateError, check_positive_int
from surrogate.fileio import pyplot, save_figure, write_json, write_text
from surrogate.nn.checkpoint import load_model
from surrogate.nn.losses import elbo, kl_per_dim, reconstruction

ACTIVE_UNIT_THRESHOLD = 0.01  # Cov_x(E_q[z_j]) above this: unit j is active (Burda et al. 2016)
IMAGE_SPLITS = ("train", "valid", "test")
GP_SPLITS = {"train": 10, "valid": 11, "test": 12}  # prior draws with a fixed seed per split
LOG_2PI = math.log(2 * math.pi)


def check_run_dir(run_dir: Path) -> None:
    """A training run with its encoder, not a decoder-only export."""
    if not run_dir.is_dir():
        raise SurrogateError(f"run directory {run_dir} does not exist")
    if not (run_dir / "checkpoint.pt").is_file():
        exports = sorted(p.name for p in run_dir.glob("*.json") if p.name != "config.json")
        what = f"holds only a decoder export ({', '.join(exports)})" if exports else "holds no checkpoint.pt"
        raise SurrogateError(f"{run_dir} {what}: evaluating needs the encoder, i.e. the training run directory with checkpoint.pt")


def split_data(config, split: str, n: int, data_dir=None) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray | None]:
    """(x [N, D], condition or None, labels or None) of up to ``n`` examples of ``split``."""
    check_positive_int("n", n)
    if config.is_simulated:
        if split not in GP_SPLITS:
            raise SurrogateError(f"unknown split {split!r} for GP prior draws; valid names: {', '.join(GP_SPLITS)}")
        gen = torch.Generator().manual_seed(GP_SPLITS[split] * 1_000_003 + config.seed)
        f, ell = config.simulator().sample(n, gen)
        return f.float(), (ell[:, None].float() if config.model == "cvae" else None), None
    if split not in IMAGE_SPLITS:
        raise SurrogateError(f"unknown split {split!r}; valid names: {', '.join(IMAGE_SPLITS)}")
    from surrogate.data import load_split

    x, y = load_split(config.dataset, split, config.digits, data_dir, n)
    c = F.one_hot(torch.from_numpy(y).long(), config.data_info.n_classes).float() if config.model == "cvae" else None
    return torch.from_numpy(x).float(), c, y


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / torch.exp(logvar)).sum(-1)


@torch.no_grad()
def scores(model, config, x: torch.Tensor, c, k: int, seed: int = 0, batch: int = 500) -> dict[str, np.ndarray]:
    """Per-example ELBO, its terms, IWAE_k, KL per dimension and the encoder means."""
    check_positive_int("k", k)
    gen = torch.Generator().manual_seed(seed)
    loss, noise = config.resolved_loss, config.resolved_noise_scale
    out = {name: [] for name in ("elbo", "recon", "kl", "iwae", "kl_dim", "mu", "sq_error")}
    for i in range(0, len(x), batch):
        xb, cb = x[i : i + batch], None if c is None else c[i : i + batch]
        mu, logvar = model.encode(xb, cb)
        out["mu"].append(mu)
        out["sq_error"].append(((model.decode(mu, cb) - xb) ** 2).sum(1))
        if logvar is None:
            continue
        std = torch.exp(0.5 * logvar)
        # ELBO: one reparameterised draw for the expected log-likelihood, the KL in closed form
        z = mu + std * torch.randn(mu.shape, generator=gen)
        recon = -reconstruction(model.decode(z, cb), xb, loss, noise)
        kl_dim = kl_per_dim(mu, logvar)
        out["recon"].append(recon)
        out["kl"].append(kl_dim.sum(1))
        out["elbo"].append(elbo(recon, mu, logvar))
        out["kl_dim"].append(kl_dim)
        # IWAE_k: log mean_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x)
        zk = mu + std * torch.randn((k, *mu.shape), generator=gen)  # [k, B, K]
        flat = zk.reshape(-1, mu.shape[1])
        cond = None if cb is None else cb.repeat(k, 1)
        log_px = -reconstruction(model.decode(flat, cond), xb.repeat(k, 1), loss, noise).reshape(k, -1)
        log_w = log_px + log_normal(zk, torch.zeros_like(zk), torch.zeros_like(zk)) - log_normal(zk, mu, logvar)
        out["iwae"].append(torch.logsumexp(log_w, 0) - math.log(k))
    return {name: torch.cat(v).double().numpy() for name, v in out.items() if v}


def pca_reconstruction(train: np.ndarray, x: np.ndarray, components: int) -> np.ndarray:
    """Per-example squared error of the rank-``components`` PCA (fitted on ``train``) reconstruction of ``x``."""
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:components]
    recon = (x - mean) @ basis.T @ basis + mean
    return ((recon - x) ** 2).sum(1)


def mean_and_se(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "se": float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")}


def evaluate_run(run_dir, split: str = "test", k: int = 100, n: int = 1000, out=None, data_dir=None, seed: int = 0) -> dict:
    """Evaluate a run on ``n`` examples of ``split`` (see the module docstring); write the outputs to ``out``."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    check_positive_int("k", k)
    model, config, state = load_model(run_dir)
    x, c, labels = split_data(config, split, n, data_dir)
    per = scores(model, config, x, c, k, seed)
    K = config.latent
    mu = per["mu"]
    unit_var = mu.var(0, ddof=1) if len(mu) > 1 else np.zeros(K)
    active = unit_var > ACTIVE_UNIT_THRESHOLD
    train_x, _, _ = split_data(config, "train", max(n, 2000), data_dir)
    pca_sq = pca_reconstruction(train_x.double().numpy(), x.double().numpy(), K)
    D = x.shape[1]
    result = {
        "run_dir": str(run_dir), "epoch": state["epoch"], "model": config.model, "dataset": config.dataset, "split": split,
        "examples": len(x), "latent": K, "k": k, "seed": seed,
        "active_units": int(active.sum()), "active_unit_threshold": ACTIVE_UNIT_THRESHOLD, "unit_variance": unit_var.tolist(),
        "reconstruction_mse": mean_and_se(per["sq_error"] / D), "pca_reconstruction_mse": mean_and_se(pca_sq / D),
    }  # fmt: skip
    result["pca_components"] = K
    if "elbo" in per:
        result |= {"elbo": mean_and_se(per["elbo"]), "expected_log_likelihood": mean_and_se(per["recon"]), "kl": mean_and_se(per["kl"]),
                   f"iwae_{k}": mean_and_se(per["iwae"]), "kl_per_dim": per["kl_dim"].mean(0).tolist(),
                   "likelihood": config.resolved_loss}  # fmt: skip
    if out is not None:
        write_outputs(Path(out), result, per, x.double().numpy(), labels, config, model, c)
    return result


def format_evaluation(result: dict) -> str:
    lines = [f"{result['model']} on {result['examples']} {result['dataset']} {result['split']} examples (epoch {result['epoch']}, latent {result['latent']})"]
    if "elbo" in result:
        k = result["k"]
        lines += [f"ELBO                {result['elbo']['mean']:.2f} ± {result['elbo']['se']:.2f} nats per example"
                  f" = E_q log p(x|z) {result['expected_log_likelihood']['mean']:.2f} - KL {result['kl']['mean']:.2f}",
                  f"IWAE_{k:<14d}{result[f'iwae_{k}']['mean']:.2f} ± {result[f'iwae_{k}']['se']:.2f} (a tighter bound on log p(x))"]  # fmt: skip
    lines.append(f"active units        {result['active_units']} of {result['latent']} (Cov_x E_q[z_j] > {result['active_unit_threshold']})")
    lines.append(f"reconstruction MSE  {result['reconstruction_mse']['mean']:.5f} per value at the encoder mean; "
                 f"PCA with {result['pca_components']} components {result['pca_reconstruction_mse']['mean']:.5f}")  # fmt: skip
    collapsed = result["latent"] - result["active_units"]
    if "elbo" in result and collapsed:
        lines.append(f"NOTE: {collapsed} latent dimensions are inactive (posterior collapse): the decoder ignores them; "
                     "try --free-bits, --kl-warmup or a smaller --beta")  # fmt: skip
    if result["reconstruction_mse"]["mean"] > result["pca_reconstruction_mse"]["mean"]:
        lines.append("NOTE: the autoencoder reconstructs worse than PCA with the same number of components: train longer")
    return "\n".join(lines)


def write_outputs(out: Path, result: dict, per: dict, x: np.ndarray, labels, config, model, c) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "evaluate.json", result)
    write_text(out / "evaluate.txt", format_evaluation(result) + "\n")
    buf = io.StringIO()
    columns = [n for n in ("elbo", "iwae", "kl") if n in per]
    writer = csv.writer(buf)
    writer.writerow(["index", "label", "sq_error", *columns])
    for i in range(len(x)):
        writer.writerow([i, "" if labels is None else int(labels[i]), f"{per['sq_error'][i]:.6g}", *(f"{per[n][i]:.6g}" for n in columns)])
    write_text(out / "scores.csv", buf.getvalue())
    plt = pyplot()
    if "kl_dim" in per:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar(np.arange(1, config.latent + 1), result["kl_per_dim"], color=["C0" if v > ACTIVE_UNIT_THRESHOLD else "C3" for v in result["unit_variance"]])
        ax.set_xlabel("latent dimension (red: inactive)")
        ax.set_ylabel("mean KL (nats)")
        fig.tight_layout()
        save_figure(fig, out / "kl_per_dim.png")
    plot_anomalies(out / "anomalies.png", per, x, labels, config, model, c)


@torch.no_grad()
def plot_anomalies(path: Path, per: dict, x: np.ndarray, labels, config, model, c, count: int = 8) -> None:
    """The ``count`` examples with the lowest ELBO (the highest error for an AE), with their reconstructions."""
    plt = pyplot()
    score = -per["elbo"] if "elbo" in per else per["sq_error"]
    worst = np.argsort(score)[::-1][:count]
    xt = torch.from_numpy(x[worst]).float()
    cw = None if c is None else c[worst]
    recon = model.decode(model.encode(xt, cw)[0], cw).double().numpy()
    shape = config.data_info.image_shape
    fig, axes = plt.subplots(2, len(worst), figsize=(1.6 * len(worst), 3.6), squeeze=False)
    for j, i in enumerate(worst):
        name = "-ELBO" if "elbo" in per else "error"
        title = f"{name} {score[i]:.0f}" + ("" if labels is None else f"\nlabel {labels[i]}")
        for row, values in enumerate((x[i], recon[j])):
            ax = axes[row, j]
            if shape and len(shape) == 2:
                ax.imshow(values.reshape(shape), cmap="gray", vmin=0 if config.data_info.bounded else None, vmax=1 if config.data_info.bounded else None)
            else:
                ax.plot(values, lw=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=7)
        axes[0, 0].set_ylabel("input", fontsize=8)
        axes[1, 0].set_ylabel("reconstruction", fontsize=8)
    fig.suptitle("worst-scoring examples (anomaly candidates)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------
# the latent space


@torch.no_grad()
def plot_latent(run_dir, out, split: str = "test", n: int = 2000, data_dir=None) -> Path:
    """Encoder means of a split in 2-D (the code itself for K <= 2, else its two principal directions),
    coloured by class where there are classes, with the prior's 1σ and 2σ circles."""
    run_dir, out = Path(run_dir), Path(out)
    check_run_dir(run_dir)
    model, config, _ = load_model(run_dir)
    x, c, labels = split_data(config, split, n, data_dir)
    mu = model.encode(x, c)[0].double().numpy()
    K = mu.shape[1]
    if K == 1:
        xy, axes_label = np.column_stack([mu[:, 0], np.zeros(len(mu))]), ("z1", "")
    elif K == 2:
        xy, axes_label = mu, ("z1", "z2")
    else:
        # orthonormal principal directions of the means, applied without centring so that the
        # prior N(0, I) projects to N(0, I_2) and its circles stay circles of radius 1 and 2
        _, _, vt = np.linalg.svd(mu - mu.mean(0), full_matrices=False)
        xy, axes_label = mu @ vt[:2].T, ("principal direction 1 of E_q[z]", "principal direction 2")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if labels is not None:
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7, vmin=-0.5, vmax=9.5)
        fig.colorbar(sc, ax=ax, ticks=range(10), label="class")
    elif c is not None:  # a PriorCVAE: colour by the lengthscale
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=c[:, 0].numpy(), s=4, alpha=0.7)
        fig.colorbar(sc, ax=ax, label="lengthscale")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.7)
    t = np.linspace(0, 2 * np.pi, 200)
    for r in (1, 2):
        ax.plot(r * np.cos(t), r * np.sin(t), "k--" if r == 1 else "k:", lw=1, label=f"prior {r}σ")
    ax.set_xlabel(axes_label[0])
    ax.set_ylabel(axes_label[1])
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"encoder means, {len(x)} {config.dataset} {split} examples (K = {K})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    return out
