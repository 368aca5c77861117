"""The intrinsic CAR (Besag), scaled so that the geometric mean of its marginal variances is 1
(Riebler et al. 2016), with a sum-to-zero constraint per connected component.

No hyperparameter. Exact program: ``stan/areas_bym2.stan`` with ``icar = 1`` (the pairwise-difference form).
"""

from __future__ import annotations

import numpy as np

from surrogate.priors.base import Prior
from surrogate.spatial.graph import graph_stan_data


class ICAR(Prior):
    """``ICAR(islands="refuse" | "independent" | "nearest")``."""

    name = "icar"
    program = "areas_bym2"
    needs_graph = True
    scaled = True

    def __init__(self, islands: str = "refuse"):
        super().__init__(None, islands)

    @classmethod
    def covariance(cls, bound, value: float | None) -> np.ndarray:
        return bound.icar @ bound.icar.T

    @classmethod
    def draw(cls, bound, count: int, randn, uniform, value, device):
        import torch

        phi = randn(count, bound.size) @ torch.from_numpy(bound.icar).to(device).T
        return phi.float(), torch.zeros(count, device=device)

    @classmethod
    def exact_data(cls, bound) -> dict:
        return {"icar": 1, "rho_lower": 0.0, "rho_upper": 1.0, **graph_stan_data(bound.graph)}
