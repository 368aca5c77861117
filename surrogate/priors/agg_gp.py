"""aggVAE's prior: a GP on a fine grid over the map's bounding box, averaged within each polygon.

The lengthscale is fixed or Uniform(lo, hi) as for :class:`~surrogate.priors.gp.GP`. The toolkit has
no exact Stan program for it (the fine grid's GP is the cost a surrogate avoids): fit its surrogate.
"""

from __future__ import annotations

import numpy as np

from surrogate.decoder.schema import KERNEL_CODES
from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.priors.gp import GP


class AggGP(GP):
    """``AggGP(kernel="matern32", lengthscale=(lo, hi), grid=30)``: ``grid`` points per axis of the fine grid."""

    name = "agg-gp"
    program = None
    agg_grid = 30

    def __init__(self, kernel: str = "matern32", lengthscale=None, grid: int = 30):
        super().__init__(kernel, lengthscale)
        self.agg_grid = check_positive_int("agg-grid", grid)

    @classmethod
    def validate(cls, bound) -> None:
        check_choice("kernel", bound.kernel, tuple(KERNEL_CODES))
        if bound.domain.kind != "areas":
            raise SurrogateError(f"prior agg-gp averages a GP within polygons and needs map=FILE (polygons), found a {bound.domain.kind} domain")
        check_positive_int("agg-grid", bound.agg_grid)

    @classmethod
    def covariance(cls, bound, value: float | None) -> np.ndarray:
        from surrogate.data.gp import kernel_matrix

        pts, A = bound.aggregation
        return A @ kernel_matrix(pts, pts, bound.kernel, value) @ A.T

    @classmethod
    def factor(cls, bound, value: float) -> np.ndarray:
        from surrogate.data.gp import JITTER, kernel_matrix

        pts, A = bound.aggregation
        K = kernel_matrix(pts, pts, bound.kernel, value)
        return A @ np.linalg.cholesky(K + JITTER * np.eye(len(pts)))

    @classmethod
    def exact_data(cls, bound) -> dict:
        return super(GP, cls).exact_data(bound)
