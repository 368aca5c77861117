"""A Hilbert-space approximate GP (HSGP; Riutort-Mayol et al. 2023) at the sites or area centroids.

The prior it approximates is :class:`~surrogate.priors.gp.GP`'s (``k(d / ell)``, unit variance; its
covariance gives the exact draws a check compares with). Exact program: ``stan/areas_hsgp.stan``, whose
gradient costs O(N_obs M^2) instead of the exact GP's O(N^3): the scalable baseline a surrogate must beat.
``m`` (basis functions per dimension) and ``c`` (boundary factor) default to the rules of Riutort-Mayol et
al. (Table 1 and eq. 14) for the shortest lengthscale of the range, in the sites' own half-range; ``HSGP(m=, c=)``
sets them (a smaller basis is cheaper and less exact: docs/bench_scale.json measures both).
"""

from __future__ import annotations

import math

import numpy as np

from surrogate.decoder.schema import KERNEL_CODES
from surrogate.errors import SurrogateError, check_positive_int
from surrogate.priors.gp import GP

#: (m factor, c factor) per kernel: m = m_factor * c / (ell / S), c = max(1.2, c_factor * ell_upper / S), S the half-range
RULES = {"rbf": (1.75, 3.2), "matern52": (2.65, 4.1), "matern32": (3.42, 4.5), "matern12": (3.42, 4.5)}
#: basis functions beyond which the default basis is refused (M^2 at 2-D: its matrix is N x M^2)
MAX_BASIS = 10_000


def basis_size(kernel: str, lo: float, hi: float, half_range: float) -> tuple[int, float]:
    """Default (m per dimension, boundary factor c) for lengthscales [lo, hi] on sites of this half-range."""
    m_factor, c_factor = RULES[kernel]
    c = max(1.2, c_factor * hi / half_range)
    return math.ceil(m_factor * c / (lo / half_range)), round(c, 3)


def half_range(coords: np.ndarray) -> float:
    """The largest half-range of the coordinates' bounding box (the S of the rules)."""
    return float((coords.max(0) - coords.min(0)).max() / 2) or 1.0


class HSGP(GP):
    """``HSGP(kernel="matern32", lengthscale=(lo, hi))``: the approximate GP, for fitting (``sg.fit(..., prior=sg.HSGP())``);
    its lengthscale, default range and covariance (the prior it approximates) are the GP's."""

    name = "hsgp"
    program = "areas_hsgp"
    dense = False  # its program never forms an N x N matrix

    def __init__(self, kernel: str = "matern32", lengthscale=None, m: int | None = None, c: float | None = None):
        if m is not None:
            check_positive_int("m", m)
        if c is not None and not (isinstance(c, (int, float)) and c >= 1):
            raise SurrogateError(f"c (the HSGP's boundary factor) must be a number >= 1, found {c!r}")
        self.m, self.c = m, c
        super().__init__(kernel, lengthscale)

    def options(self) -> tuple:
        return tuple((k, v) for k, v in (("m", self.m), ("c", self.c)) if v is not None)

    @classmethod
    def basis(cls, bound) -> tuple[int, float]:
        """(m, c) of this prior on its domain; a basis over :data:`MAX_BASIS` functions is refused, naming its size."""
        lo, hi = bound.condition
        m, c = basis_size(bound.kernel, lo, hi, half_range(bound.domain.coords))
        given = dict(bound.options)
        m, c = given.get("m", m), given.get("c", c)
        if m * m > MAX_BASIS:
            raise SurrogateError(f"an HSGP for lengthscales down to {lo:g} on these sites needs m = {m} basis functions per dimension "
                                 f"({m * m:,} in 2-D, over the {MAX_BASIS:,} allowed); raise the lengthscale's lower bound, give a smaller m, or "
                                 "use the surrogate")  # fmt: skip
        return m, c

    @classmethod
    def exact_data(cls, bound) -> dict:
        lo, hi = bound.condition
        m, c = cls.basis(bound)
        return {"M": m, "c_boundary": c, "dim": 2, "x": bound.domain.coords, "kernel": KERNEL_CODES[bound.kernel], "sigma_f": 1.0,
                "ell_lower": lo, "ell_upper": hi}  # fmt: skip
