"""Decode draws from the prior z ~ N(0, I) into an image grid (or a scatter plot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from surrogate.errors import SurrogateError
from surrogate.fileio import pyplot, save_figure
from surrogate.nn.checkpoint import load_model


@torch.no_grad()
def decode_prior(
    model,
    n: int = 9,
    label: int | None = None,
    scales: tuple[float, ...] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Decoded samples ``[rows, cols, D]`` with row and column labels.

    Without ``scales``: for a CVAE one row per class (only ``label`` if given),
    ``n`` columns of z ~ N(0, I); otherwise one row of ``n``. With ``scales``:
    ``n`` rows, each a random unit direction u decoded at z = s u for each
    scale s (one column per scale), to show the decoder far out in latent space.
    """
    if n < 1:
        raise SurrogateError(f"n must be a positive integer, found {n}")
    if label is not None and model.cond_dim == 0:
        raise SurrogateError(f"--label needs a cvae run; this run holds a {model.kind}")
    if label is not None and not 0 <= label < model.cond_dim:
        raise SurrogateError(f"label must be in 0..{model.cond_dim - 1}, found {label}")
    gen = torch.Generator().manual_seed(seed)
    k = model.latent_dim
    if scales:
        u = torch.randn(n, k, generator=gen)
        u = u / u.norm(dim=1, keepdim=True)
        z = torch.stack([s * u for s in scales], dim=1)  # [n, len(scales), k]
        classes = [label] * n if label is not None else [i % max(model.cond_dim, 1) for i in range(n)]
        rows = [f"class {c}" if model.cond_dim else f"direction {i + 1}" for i, c in enumerate(classes)]
        cols = [f"|z| = {s:g}" for s in scales]
    else:
        classes = [label] if label is not None else list(range(model.cond_dim)) or [0]
        z = torch.randn(len(classes), n, k, generator=gen)
        rows = [f"class {c}" if model.cond_dim else "" for c in classes]
        cols = [""] * n
    r, c = z.shape[:2]
    cond = None
    if model.cond_dim:
        cond = torch.nn.functional.one_hot(torch.tensor(classes).repeat_interleave(c), model.cond_dim).float()
    x = model.decode(z.reshape(r * c, k), cond).reshape(r, c, -1)
    return x.numpy(), rows, cols


def save_sample_grid(samples: np.ndarray, rows: list[str], cols: list[str], image_shape, path: str | Path) -> None:
    plt = pyplot()

    r, c, _ = samples.shape
    if image_shape is None:  # real-valued 2-D data: a scatter plot per row
        fig, ax = plt.subplots(figsize=(5, 5))
        for i in range(r):
            ax.scatter(samples[i, :, 0], samples[i, :, 1], s=12, label=rows[i] or None)
        if any(rows):
            ax.legend()
        save_figure(fig, path)
        return
    fig, axes = plt.subplots(r, c, figsize=(1.1 * c, 1.1 * r), squeeze=False)
    for i in range(r):
        for j in range(c):
            ax = axes[i, j]
            ax.imshow(samples[i, j].reshape(image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0 and rows[i]:
                ax.set_ylabel(rows[i], fontsize=7)
            if i == 0 and cols[j]:
                ax.set_title(cols[j], fontsize=7)
    save_figure(fig, path)


def sample(run_dir, out, n=9, label=None, scales=None, seed=0) -> Path:
    """Decode prior draws from ``run_dir`` into the PNG ``out``."""
    model, config, _ = load_model(run_dir)
    if config.is_simulated:
        raise SurrogateError(f"{run_dir} holds a prior surrogate ({config.dataset}); plot its draws with `surrogate check-prior {run_dir}`")
    samples, rows, cols = decode_prior(model, n, label, scales, seed)
    save_sample_grid(samples, rows, cols, config.data_info.image_shape, out)
    return Path(out)
