"""BYM2 (Riebler et al. 2016): ``sqrt(1 - rho) * theta + sqrt(rho) * phi``, ``theta ~ N(0, I)`` and ``phi`` the
scaled ICAR; ``rho ~ Uniform(lo, hi)`` (a CVAE's condition when it is a range).

Exact program: ``stan/areas_bym2.stan`` (the pairwise-difference ICAR, one constraint per component).
"""

from __future__ import annotations

import numpy as np

from surrogate.priors.base import Hyperparameter, Prior
from surrogate.spatial.graph import graph_stan_data


class BYM2(Prior):
    """``BYM2(rho=(0, 1), islands="refuse")``."""

    name = "bym2"
    program = "areas_bym2"
    hyper = Hyperparameter("rho", "rho", 0.0, 1.0, default=(0.0, 1.0))
    needs_graph = True
    scaled = True

    def __init__(self, rho=(0.0, 1.0), islands: str = "refuse"):
        super().__init__(rho, islands)

    @classmethod
    def covariance(cls, bound, value: float | None) -> np.ndarray:
        return (1 - value) * np.eye(bound.size) + value * (bound.icar @ bound.icar.T)

    @classmethod
    def draw(cls, bound, count: int, randn, uniform, value, device):
        import torch

        phi = randn(count, bound.size) @ torch.from_numpy(bound.icar).to(device).T
        lo, hi = bound.condition
        rho = torch.full((count,), float(value), dtype=torch.float64, device=device) if value is not None else uniform(count, lo, hi)
        f = (1 - rho).sqrt()[:, None] * randn(count, bound.size) + rho.sqrt()[:, None] * phi
        return f.float(), rho.float()

    @classmethod
    def exact_data(cls, bound) -> dict:
        lo, hi = cls.exact_range(bound)
        return {"icar": 0, "rho_lower": lo, "rho_upper": hi, **graph_stan_data(bound.graph)}
