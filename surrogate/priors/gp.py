"""A Gaussian process at the sites, grid cells or area centroids: ``k(d / ell)`` with unit variance.

The lengthscale (in the domain's coordinate units) is fixed or Uniform(lo, hi), the PriorCVAE's
condition; by default 0.05-0.5 x the domain's extent. Exact program: ``stan/areas_gp.stan``.
"""

from __future__ import annotations

import numpy as np

from surrogate.decoder.schema import KERNEL_CODES
from surrogate.errors import check_choice
from surrogate.priors.base import Hyperparameter, Prior


class GP(Prior):
    """``GP(kernel="matern32", lengthscale=(lo, hi))``: a lengthscale range makes a PriorCVAE condition on it."""

    name = "gp"
    program = "areas_gp"
    hyper = Hyperparameter("lengthscale", "ell", lower=0.0, upper=np.inf)
    has_kernel = True

    def __init__(self, kernel: str = "matern32", lengthscale=None):
        self.kernel = check_choice("kernel", kernel, tuple(KERNEL_CODES))
        super().__init__(lengthscale)

    @classmethod
    def default_range(cls, bound) -> tuple[float, float]:
        return 0.05 * bound.domain.extent, 0.5 * bound.domain.extent

    @classmethod
    def validate(cls, bound) -> None:
        check_choice("kernel", bound.kernel, tuple(KERNEL_CODES))

    @classmethod
    def covariance(cls, bound, value: float | None) -> np.ndarray:
        from surrogate.data.gp import kernel_matrix

        x = bound.domain.coords
        return kernel_matrix(x, x, bound.kernel, value)

    @classmethod
    def exact_data(cls, bound) -> dict:
        lo, hi = bound.condition
        return {"dim": 2, "x": bound.domain.coords, "kernel": KERNEL_CODES[bound.kernel], "sigma_f": 1.0, "ell_lower": lo, "ell_upper": hi}
