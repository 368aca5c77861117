"""Losses: reconstruction terms, the Gaussian KL, and the regularisers.

Every term is summed over the dimensions of one example and averaged over the
batch, so the reported loss is a negative ELBO per example.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RECON_LOSSES = ("bce", "gaussian")


def reconstruction(x_hat: torch.Tensor, x: torch.Tensor, kind: str, noise_scale: float = 0.1) -> torch.Tensor:
    """Per-example negative log-likelihood of ``x`` given the decoded mean ``x_hat``.

    ``bce``: Bernoulli (binary cross-entropy, for values in [0, 1]);
    ``gaussian``: Normal(x_hat, noise_scale), with its normalising constant.
    """
    if kind == "bce":
        return F.binary_cross_entropy(x_hat, x, reduction="none").sum(dim=1)
    if kind == "gaussian":
        d = x.shape[1]
        sq = ((x - x_hat) ** 2).sum(dim=1)
        return 0.5 * sq / noise_scale**2 + d * (math.log(noise_scale) + 0.5 * math.log(2 * math.pi))
    raise ValueError(f"unknown reconstruction loss {kind!r}; valid names: {', '.join(RECON_LOSSES)}")


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) for each example and latent dimension."""
    return 0.5 * (torch.exp(logvar) + mu**2 - 1.0 - logvar)


def elbo(log_likelihood: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-example ELBO: the expected log-likelihood (e.g. ``-reconstruction(...)`` at a draw z ~ q) minus KL(q || N(0, I))."""
    return log_likelihood - kl_per_dim(mu, logvar).sum(dim=-1)


def kl_term(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-example KL summed over dimensions, the KL that enters the loss).

    With ``free_bits > 0`` each latent dimension's batch-mean KL below
    ``free_bits`` nats is not penalised (Kingma et al. 2016): the returned
    training term is ``sum_j max(free_bits, mean_batch KL_j)``.
    """
    per_dim = kl_per_dim(mu, logvar)
    kl = per_dim.sum(dim=1)
    if free_bits <= 0:
        return kl, kl.mean()
    return kl, torch.clamp(per_dim.mean(dim=0), min=free_bits).sum()


def kl_weight(step: int, steps_per_epoch: int, beta: float, warmup_epochs: float) -> float:
    """β times a linear ramp from 0 to 1 over ``warmup_epochs`` epochs of steps."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, step / (warmup_epochs * steps_per_epoch))
