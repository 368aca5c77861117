"""The decoder's prior fidelity while it trains: the check decides which epoch's decoder is kept.

A decoder with a linear path (prior draws of a GP or a spatial prior) starts at its linear floor: the
rank-K Karhunen-Loeve projection of the prior, or a CVAE's conditioned path. Training the MLP on the
VAE loss can move decoded draws away from the prior (measured: a 30-epoch BYM2-VAE on a 300-area map
ended at covariance error 0.315 against its start's 0.000-0.19). So after every epoch the training
loop scores the decoder as ``check-prior`` does, ``||Cov(decoded) - C||_F / ||C||_F`` of decoded
draws, on the same latent draws each time (common random numbers: what changes from epoch to epoch
is the decoder, not the sample), and keeps the best epoch, the start (epoch 0) included. Training
stops when the score has not improved for ``patience`` epochs. The exported decoder is the kept one,
so it is never worse than the linear start it began from, by this score.

A CVAE is scored at 10%, 50% and 90% of its condition's range (the largest error counts); a VAE
against the covariance it learns: the prior's, or the mixture over the range it marginalises.
"""

from __future__ import annotations

import numpy as np
import torch

#: decoded draws per score: the sampling error of 1,000 draws is common to every epoch's score
MONITOR_DRAWS = 1000
#: a later epoch must beat the kept one by this share to replace it (scores within it are a tie: keep the earlier)
MIN_GAIN = 0.01
#: points of a marginalised range whose covariances are averaged into the mixture a VAE learns (GP data sets)
MIXTURE_POINTS = 9


def monitored(config, model) -> bool:
    """Whether training scores this model's fidelity: a VAE or CVAE (decoded z ~ N(0, I) are its prior draws; an
    autoencoder's are not) of prior draws with a known covariance and a linear path."""
    return config.model in ("vae", "cvae") and config.is_simulated and (model.linear is not None or model.cond_linear is not None)


class FidelityMonitor:
    """``monitor(model)``: the largest relative covariance error of decoded draws over the values checked."""

    def __init__(self, config, model, seed: int = 0, draws: int = MONITOR_DRAWS):
        covariance, lo, hi = config.prior_covariance()
        if model.cond_dim:
            self.values = [float(v) for v in lo + (hi - lo) * np.array([0.1, 0.5, 0.9])]
            targets = [covariance(v) for v in self.values]
        else:
            self.values = [None]
            targets = [self.mixture(config, covariance, lo, hi)]
        self.targets = [torch.as_tensor(np.asarray(C), dtype=torch.float64) for C in targets]
        self.norms = [float(torch.linalg.norm(C)) for C in self.targets]
        self.z = torch.randn(draws, model.latent_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    @staticmethod
    def mixture(config, covariance, lo, hi) -> np.ndarray:
        """The covariance a VAE learns: the prior's at a fixed value, else the mixture over the range it marginalises."""
        if config.is_spatial:
            return config.spatial_prior().mean_covariance()
        if lo == hi:
            return covariance(lo)
        return sum(np.asarray(covariance(float(v))) for v in np.linspace(lo, hi, MIXTURE_POINTS)) / MIXTURE_POINTS

    @torch.no_grad()
    def __call__(self, model) -> float:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        errors = []
        for v, C, norm in zip(self.values, self.targets, self.norms):
            z = self.z.to(device=device, dtype=torch.float32)
            c = None if v is None else torch.full((len(z), 1), v, device=device)
            decoded = model.decode(z, c).double().cpu()
            assert decoded.shape == (len(z), C.shape[0]), f"decoded draws have shape {tuple(decoded.shape)}, expected {(len(z), C.shape[0])}"
            errors.append(float(torch.linalg.norm(decoded.T @ decoded / len(z) - C)) / norm)
        model.train(was_training)
        return max(errors)


def better(score: float, kept: float) -> bool:
    """Whether ``score`` beats the kept decoder's by more than :data:`MIN_GAIN`."""
    return score < (1 - MIN_GAIN) * kept
