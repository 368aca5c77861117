"""Gaussian-process prior draws on a fixed grid: the training data of PriorVAE / PriorCVAE.

A 1-D grid has ``n`` points evenly spaced on [0, 1]; a 2-D grid has ``n x n``
cells on [0, 1]^2, flattened row-major (cell ``i * n + j`` sits at
``(x_i, x_j)``). Kernels: RBF and Matérn 1/2, 3/2, 5/2, with Euclidean distance.

Draws are ``f = sqrt(variance) * chol(K_ell) @ eps``. The lengthscale is fixed
(equal bounds) or drawn from Uniform(lo, hi); with a range, each call draws
``groups`` fresh lengthscales, factorises each kernel matrix once and shares it
among ``count / groups`` fields (so the data set is endless and the Cholesky
cost stays ``groups`` factorisations per call). The variance is fixed or drawn
from Uniform(lo, hi) per field.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from surrogate.errors import SurrogateError, check_choice, check_positive_int

KERNELS = ("rbf", "matern12", "matern32", "matern52")  # their Stan codes: surrogate.decoder.schema.KERNEL_CODES
#: Kernel codes used by the Stan programs (stan/gp_*.stan).
GP_DATASETS = {"gp1d": 1, "gp2d": 2}
DEFAULT_GRID = {1: 100, 2: 20}
JITTER = 1e-6  # added to the diagonal (times the variance) before factorising


def grid_points(dim: int, n: int) -> np.ndarray:
    """Coordinates ``[n**dim, dim]`` of the grid (row-major for 2-D)."""
    axis = np.linspace(0.0, 1.0, n)
    if dim == 1:
        return axis[:, None]
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return np.column_stack([xx.ravel(), yy.ravel()])


def kernel_matrix(x1: np.ndarray, x2: np.ndarray, kernel: str, lengthscale: float, variance: float = 1.0) -> np.ndarray:
    """The covariance ``k(x1_i, x2_j)`` (float64)."""
    check_choice("kernel", kernel, KERNELS)
    d = np.sqrt(np.maximum(((x1[:, None, :] - x2[None, :, :]) ** 2).sum(-1), 0.0)) / lengthscale
    if kernel == "rbf":
        k = np.exp(-0.5 * d**2)
    elif kernel == "matern12":
        k = np.exp(-d)
    elif kernel == "matern32":
        k = (1 + np.sqrt(3) * d) * np.exp(-np.sqrt(3) * d)
    else:
        k = (1 + np.sqrt(5) * d + 5.0 / 3.0 * d**2) * np.exp(-np.sqrt(5) * d)
    return variance * k


def check_range(name: str, value) -> tuple[float, float]:
    """A fixed value or (lo, hi) with 0 < lo <= hi, as a pair."""
    pair = (float(value), float(value)) if np.isscalar(value) else tuple(float(v) for v in value)
    if len(pair) == 1:
        pair = (pair[0], pair[0])
    if len(pair) != 2 or not all(np.isfinite(pair)):
        raise SurrogateError(f"{name} must be one positive number or two (lo,hi), found {value!r}")
    lo, hi = pair
    if lo <= 0:
        raise SurrogateError(f"{name} must be positive, found {lo}")
    if lo > hi:
        raise SurrogateError(f"{name} prior bounds are inverted: lower {lo} > upper {hi}")
    return lo, hi


def factor_groups(size: int) -> int:
    """How many hyperparameter values one call of a prior's ``sample`` draws (each costs one O(size^3)
    factorisation, shared by count / groups draws): 16, fewer for large sizes, at least 2."""
    return int(np.clip(4e9 / max(size, 1) ** 3, 2, 16))


def draws_per_value(count: int, values: list) -> list[int]:
    """How many of ``count`` draws each hyperparameter value gets (as even as can be)."""
    return [len(a) for a in np.array_split(np.arange(count), len(values))]


@lru_cache(maxsize=8)
def _cholesky(dim: int, n: int, kernel: str, lengthscale: float) -> np.ndarray:
    x = grid_points(dim, n)
    k = kernel_matrix(x, x, kernel, lengthscale) + JITTER * np.eye(len(x))
    return np.linalg.cholesky(k)


@dataclass(frozen=True)
class GPPrior:
    """A GP prior on a grid; ``lengthscale`` and ``variance`` are (lo, hi) (equal: fixed)."""

    dim: int  # 1 or 2
    n: int  # points per axis
    kernel: str = "matern52"
    lengthscale: tuple[float, float] = (0.2, 0.2)
    variance: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        if self.dim not in (1, 2):
            raise SurrogateError(f"GP dimension must be 1 or 2, found {self.dim}")
        check_positive_int("grid", self.n)
        if self.n < 2:
            raise SurrogateError(f"grid must have at least 2 points per axis, found {self.n}")
        check_choice("kernel", self.kernel, KERNELS)
        object.__setattr__(self, "lengthscale", check_range("lengthscale", self.lengthscale))
        object.__setattr__(self, "variance", check_range("variance", self.variance))

    @property
    def size(self) -> int:
        return self.n**self.dim

    @property
    def points(self) -> np.ndarray:
        return grid_points(self.dim, self.n)

    @property
    def fixed_lengthscale(self) -> bool:
        return self.lengthscale[0] == self.lengthscale[1]

    def covariance(self, lengthscale: float | None = None, variance: float | None = None) -> np.ndarray:
        x = self.points
        return kernel_matrix(x, x, self.kernel, lengthscale or self.lengthscale[0], variance or self.variance[0])

    def sample(self, count: int, generator: torch.Generator, groups: int | None = None, lengthscale: float | None = None,
               device="cpu") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """``(fields float32 [count, size], lengthscales float32 [count])`` drawn with ``generator``.

        ``groups``: lengthscales drawn per call (default: 16, fewer for large grids, where
        each factorisation costs O(size^3)). ``lengthscale`` pins the lengthscale (e.g. to
        check a PriorCVAE at one value).
        """
        check_positive_int("count", count)
        groups = groups or factor_groups(self.size)

        def uniform(m: int, lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(m, generator=generator, device=generator.device, dtype=torch.float64)

        if lengthscale is not None:
            ells = [float(lengthscale)]
        elif self.fixed_lengthscale:
            ells = [self.lengthscale[0]]
        else:
            ells = uniform(min(groups, count), *self.lengthscale).cpu().tolist()
        fields, ell_out = [], []
        for ell, m in zip(ells, draws_per_value(count, ells)):
            chol = torch.from_numpy(_cholesky(self.dim, self.n, self.kernel, round(ell, 12))).to(device)
            eps = torch.randn(self.size, m, generator=generator, device=generator.device, dtype=torch.float64).to(device)
            fields.append((chol @ eps).T)
            ell_out.append(torch.full((m,), ell, dtype=torch.float64, device=device))
        f = torch.cat(fields)
        var = uniform(count, *self.variance).to(device) if self.variance[0] != self.variance[1] else torch.full((count,), self.variance[0], dtype=torch.float64, device=device)
        f = f * var.sqrt()[:, None]
        return f.float(), torch.cat(ell_out).float()


def gp_dataset_dim(dataset: str) -> int | None:
    """1 or 2 for the GP datasets, None for the others."""
    return GP_DATASETS.get(dataset)
