"""A spatial prior bound to a domain, drawn exactly: the training data of PriorVAE / PriorCVAE / aggVAE on a map.

Every prior is at unit scale; the programs in ``stan/areas_*.stan`` multiply the field by
its standard deviation ``sigma`` (a parameter), so a decoder trained here serves any scale.
The kinds (``gp``, ``icar``, ``bym2``, ``car``, ``agg-gp``) are the classes of
:mod:`surrogate.priors`, one module each, found by name in its registry; this module holds
what they share: the bound prior, its cached factorisations, its spectrum and its draws.
The island rules and scaling factors live in :mod:`surrogate.spatial.graph`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from surrogate.data.gp import draws_per_value, factor_groups
from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.priors import REGISTRY, prior_class
from surrogate.spatial.domain import Domain
from surrogate.spatial.graph import (  # noqa: F401  (re-exported)
    ISLAND_RULES,
    Graph,
    car_precision,
    icar_factor,
    icar_precision,
    prepare_graph,
    scaling_factor,
)

PRIORS = tuple(REGISTRY)
#: dense N x N float64 matrices a prior holds at once at its peak (covariance, factor, eigendecomposition and its workspace)
DENSE_COPIES = 6


def available_memory() -> int:
    """Bytes of memory available now (psutil, a dependency of dask.distributed)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_dense_memory(n: int, what: str) -> None:
    """Refuse a prior whose dense N x N steps would not fit in the memory available, naming the estimate."""
    one = n * n * 8
    need, have = DENSE_COPIES * one, available_memory()
    if need > have:
        raise SurrogateError(f"{what} on {n:,} locations needs dense {n:,} x {n:,} steps: about {need / 1e9:.1f} GB ({DENSE_COPIES} matrices "
                             f"of {one / 1e9:.2f} GB), and {have / 1e9:.1f} GB of memory is available; use fewer locations (aggregate "
                             "areas, or sites on a coarser set) or a machine with more memory")  # fmt: skip


@dataclass(frozen=True, eq=False)
class SpatialPrior:
    """A unit-scale spatial prior on ``domain``; ``condition`` is its hyperparameter's (lo, hi)."""

    kind: str
    domain: Domain
    kernel: str = "matern32"  # gp, agg-gp
    condition: tuple[float, float] | None = None  # lengthscale (gp, agg-gp), rho (bym2), alpha (car); None for icar
    islands: str = "refuse"
    agg_grid: int = 30  # agg-gp: points per axis of the fine grid over the map's bounding box
    options: tuple = ()  # a prior's own settings as (name, value) pairs (hsgp: its basis m and c)

    def __post_init__(self):
        spec = prior_class(self.kind)
        if spec.dense:
            check_dense_memory(self.domain.size, f"prior {self.kind}")
        object.__setattr__(self, "spec", spec)
        check_choice("islands", self.islands, ISLAND_RULES)
        if spec.hyper is None:
            object.__setattr__(self, "condition", None)
        else:
            value = self.condition if self.condition is not None else spec.default_range(self)
            object.__setattr__(self, "condition", spec.hyper.check(value))
        spec.validate(self)
        if spec.needs_graph:
            _ = self.graph  # checks the adjacency and the island rule now

    @property
    def condition_name(self) -> str | None:
        return self.spec.hyper.name if self.spec.hyper else None

    @property
    def posterior_name(self) -> str | None:
        """The hyperparameter's name in the posterior (``ell`` for a lengthscale)."""
        return self.spec.hyper.posterior if self.spec.hyper else None

    @property
    def program(self) -> str | None:
        """The exact Stan program of this prior (``stan/<program>.stan``)."""
        return self.spec.program

    def exact_data(self) -> dict:
        """The prior part of the exact program's data."""
        return self.spec.exact_data(self)

    @property
    def fixed(self) -> bool:
        return self.condition is None or self.condition[0] == self.condition[1]

    @property
    def size(self) -> int:
        return self.domain.size

    @cached_property
    def graph(self) -> Graph:
        return prepare_graph(self.domain, self.islands, self.kind)

    @cached_property
    def icar(self) -> np.ndarray:
        return icar_factor(self.domain, self.graph)

    @cached_property
    def aggregation(self) -> tuple[np.ndarray, np.ndarray]:
        """(fine-grid points [G, 2], averaging matrix [N, G]) for agg-gp."""
        import shapely

        geom = self.domain.geometry
        lo, hi = np.asarray(geom.total_bounds[:2]), np.asarray(geom.total_bounds[2:])
        axes = [np.linspace(lo[k], hi[k], self.agg_grid) for k in range(2)]
        pts = np.column_stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")])
        rows, cols = [], []
        for i, poly in enumerate(geom.values):
            inside = np.flatnonzero(shapely.contains_xy(poly, pts[:, 0], pts[:, 1]))
            if inside.size == 0:  # a small polygon: its own centroid stands for it
                pts = np.vstack([pts, self.domain.coords[i]])
                inside = np.array([len(pts) - 1])
            rows += [i] * inside.size
            cols += inside.tolist()
        used = np.unique(cols)
        remap = {c: j for j, c in enumerate(used)}
        A = np.zeros((self.size, len(used)))
        for r, c in zip(rows, cols):
            A[r, remap[c]] = 1.0
        return pts[used], A / A.sum(1, keepdims=True)

    def covariance(self, value: float | None = None) -> np.ndarray:
        """The prior covariance ``[N, N]`` at hyperparameter ``value`` (default: the lower bound)."""
        v = self.condition[0] if value is None and self.condition else value
        return self.spec.covariance(self, v)

    def mean_covariance(self) -> np.ndarray:
        """The covariance averaged over the hyperparameter's range (what a VAE marginalising it learns)."""
        if self.fixed:
            return self.covariance(None if self.condition is None else self.condition[0])
        lo, hi = self.condition
        return np.mean([self.covariance(v) for v in np.linspace(lo, hi, 5)], axis=0)

    def spectrum(self) -> dict:
        """How many dimensions a linear (Karhunen-Loeve) surrogate of the mean covariance needs, and what K keeps.

        ``kept`` maps K to the share of the total variance its top-K eigenvectors hold: the
        linear floor of a decoder with latent size K. Computed once per bound prior (an N x N
        eigendecomposition: 30 s at 5,000 locations).
        """
        from surrogate.nn.linear_path import spectrum

        if "_spectrum" not in self.__dict__:
            self.__dict__["_spectrum"] = spectrum(self.mean_covariance())
        return self.__dict__["_spectrum"]

    def kept_share(self, k: int) -> float:
        share = self.spectrum()["share"]
        return float(share[min(k, len(share)) - 1])

    def auto_latent(self) -> int:
        """The latent size whose linear floor keeps 99% of the variance and 95% at every location."""
        spec = self.spectrum()
        return max(spec["k99"], spec["k_local95"])

    def _factor(self, value: float) -> np.ndarray:
        return _cached_factor(self, round(float(value), 12))

    def sample(self, count: int, generator: torch.Generator, groups: int | None = None, value: float | None = None,
               device="cpu") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """``(fields float32 [count, N], condition float32 [count])``; ``value`` pins the hyperparameter."""
        check_positive_int("count", count)
        n = self.size

        def randn(*shape):
            return torch.randn(*shape, generator=generator, device=generator.device, dtype=torch.float64).to(device)

        def uniform(m, lo, hi):
            return lo + (hi - lo) * torch.rand(m, generator=generator, device=generator.device, dtype=torch.float64).to(device)

        own = self.spec.draw(self, count, randn, uniform, value, device)
        if own is not None:  # a prior with a draw of its own (icar, bym2: from the ICAR factor)
            return own
        # gp, agg-gp, car: one factorisation per hyperparameter value, shared by count / groups draws
        lo, hi = self.condition
        groups = groups or factor_groups(n)
        values = [float(value)] if value is not None else ([lo] if lo == hi else uniform(min(groups, count), lo, hi).cpu().tolist())
        fields, conds = [], []
        for v, m in zip(values, draws_per_value(count, values)):
            L = torch.from_numpy(self._factor(v)).to(device)
            fields.append(randn(m, L.shape[1]) @ L.T)
            conds.append(torch.full((m,), v, dtype=torch.float64, device=device))
        return torch.cat(fields).float(), torch.cat(conds).float()

    def to_dict(self) -> dict:
        spec = self.spec
        return {"prior": self.kind, "kernel": self.kernel if spec.has_kernel else None, "condition_name": self.condition_name,
                "condition": list(self.condition) if self.condition else None, "islands": self.islands,
                "agg_grid": self.agg_grid if spec.agg_grid is not None else None, **({"options": dict(self.options)} if self.options else {}),
                "scaling_factors": sorted({round(float(s), 6) for s in self.graph.scale}) if spec.scaled else None,
                "domain": self.domain.to_dict()}  # fmt: skip


def _cached_factor(prior: SpatialPrior, value: float) -> np.ndarray:
    cache = prior.__dict__.setdefault("_factors", {})
    if value not in cache:
        if len(cache) > 32:
            cache.clear()
        cache[value] = prior.spec.factor(prior, value)
    return cache[value]
