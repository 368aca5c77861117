"""The proper CAR: precision ``D - alpha W`` (islands: precision 1), ``alpha ~ Uniform(lo, hi)`` in [0, 1)
(PriorVAE's CAR experiments condition a CVAE on it). Exact program: ``stan/areas_car.stan`` (sparse).
"""

from __future__ import annotations

import numpy as np

from surrogate.priors.base import Hyperparameter, Prior
from surrogate.spatial.graph import car_precision, graph_stan_data


class CAR(Prior):
    """``CAR(alpha=(0.1, 0.99), islands="refuse")``."""

    name = "car"
    program = "areas_car"
    hyper = Hyperparameter("alpha", "alpha", 0.0, 1.0, upper_open=True, default=(0.1, 0.99))
    needs_graph = True

    def __init__(self, alpha=(0.1, 0.99), islands: str = "refuse"):
        super().__init__(alpha, islands)

    @classmethod
    def covariance(cls, bound, value: float | None) -> np.ndarray:
        return np.linalg.inv(car_precision(bound.domain, bound.graph, value))

    @classmethod
    def exact_data(cls, bound) -> dict:
        lo, hi = cls.exact_range(bound)
        g = bound.graph
        W = np.zeros((bound.size, bound.size))
        W[g.edges[:, 0], g.edges[:, 1]] = W[g.edges[:, 1], g.edges[:, 0]] = 1.0
        degree = W.sum(1)
        degree[g.islands] = 1.0
        inv = 1 / np.sqrt(degree)
        eigen = np.linalg.eigvalsh(inv[:, None] * W * inv[None, :])
        return {"alpha_lower": lo, "alpha_upper": hi, **graph_stan_data(g), "degree": degree, "eigen": eigen}
