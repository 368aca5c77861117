"""Spatial priors on a domain, drawn exactly: the training data of PriorVAE / PriorCVAE / aggVAE on a map.

Every prior is at unit scale; the programs in ``stan/areas_*.stan`` multiply the field by
its standard deviation ``sigma`` (a parameter), so a decoder trained here serves any scale.

- ``gp``: a GP at the sites or area centroids, ``k(d / ell)`` with unit variance; the
  lengthscale (map units) fixed or Uniform(lo, hi), the PriorCVAE's condition.
- ``icar``: the intrinsic CAR, scaled (Riebler et al. 2016) so that the geometric mean of its
  marginal variances is 1, with a sum-to-zero constraint per connected component.
- ``bym2``: ``sqrt(1 - rho) * theta + sqrt(rho) * phi`` with ``theta ~ N(0, I)`` and ``phi``
  the scaled ICAR; ``rho ~ Uniform(lo, hi)`` (the CVAE's condition when it is a range).
- ``car``: the proper CAR, precision ``D - alpha W``, ``alpha ~ Uniform(lo, hi)`` (PriorVAE's
  CAR experiments condition a CVAE on it).
- ``agg-gp``: aggVAE: a GP on a fine grid over the map, averaged within each polygon.

Islands (areas without neighbours) follow a rule, as Freni-Sterrantino et al. (2018) do for
BYM2: ``refuse`` (the default: an error naming them), ``independent`` (each island gets an
independent N(0, 1) effect; every other component its own constraint and scaling) or
``nearest`` (each island is joined to the area with the nearest centroid).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from surrogate.data.gp import JITTER, KERNELS, check_range, kernel_matrix
from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.spatial.domain import Domain

PRIORS = ("gp", "icar", "bym2", "car", "agg-gp")
ISLAND_RULES = ("refuse", "independent", "nearest")
CONDITION = {"gp": "lengthscale", "agg-gp": "lengthscale", "car": "alpha", "bym2": "rho", "icar": None}
DEFAULT_RANGE = {"car": (0.1, 0.99), "bym2": (0.0, 1.0)}


def check_unit_range(name: str, value, upper_open: bool = False) -> tuple[float, float]:
    """A fixed value or (lo, hi) inside [0, 1] (alpha: [0, 1))."""
    pair = (float(value), float(value)) if np.isscalar(value) else tuple(float(v) for v in value)
    pair = pair * 2 if len(pair) == 1 else pair
    if len(pair) != 2 or not all(np.isfinite(pair)):
        raise SurrogateError(f"{name} must be one number or two (lo,hi), found {value!r}")
    lo, hi = pair
    if lo < 0 or hi > 1 or (upper_open and hi >= 1):
        raise SurrogateError(f"{name} must lie in [0, {'1)' if upper_open else '1]'}, found {lo},{hi}")
    if lo > hi:
        raise SurrogateError(f"{name} prior bounds are inverted: lower {lo} > upper {hi}")
    return lo, hi


@dataclass(frozen=True)
class Graph:
    """The adjacency a prior uses, after its island rule."""

    edges: np.ndarray  # [E, 2] 0-based
    components: tuple[np.ndarray, ...]  # components of two or more areas
    islands: np.ndarray  # areas with no neighbours (independent N(0, 1) effects)
    scale: np.ndarray  # [N] the Riebler scaling factor of each area's component (1 for islands)
    added: tuple[tuple[str, str], ...] = ()  # links the nearest rule added (ids)


def icar_precision(n: int, edges: np.ndarray) -> np.ndarray:
    Q = np.zeros((n, n))
    Q[edges[:, 0], edges[:, 1]] = Q[edges[:, 1], edges[:, 0]] = -1.0
    Q[np.diag_indices(n)] = -Q.sum(1)
    return Q


def scaling_factor(Q: np.ndarray) -> float:
    """Geometric mean of the marginal variances of the ICAR with precision ``Q`` under sum-to-zero (Riebler et al. 2016)."""
    lam, V = np.linalg.eigh(Q)
    keep = lam > 1e-9 * lam.max()
    cov = (V[:, keep] / lam[keep]) @ V[:, keep].T  # the generalised inverse
    return float(np.exp(np.mean(np.log(np.diag(cov)))))


def prepare_graph(domain: Domain, islands: str = "refuse", prior: str = "icar") -> Graph:
    """Components, islands and scaling factors of ``domain`` under an island rule."""
    check_choice("islands", islands, ISLAND_RULES)
    if not domain.has_adjacency:
        raise SurrogateError(f"prior {prior} needs a neighbourhood structure: give --map (polygons) or --grid, not --points")
    edges, added = domain.edges, []
    lonely = np.flatnonzero(domain.degrees == 0)
    if lonely.size and islands == "refuse":
        names = ", ".join(domain.ids[i] for i in lonely[:10])
        raise SurrogateError(f"the map has {lonely.size} island(s) without neighbours ({names}); prior {prior} needs a rule: "
                             "--islands independent (an independent effect per island, Freni-Sterrantino et al. 2018) "
                             "or --islands nearest (join each to the nearest area)")  # fmt: skip
    if lonely.size and islands == "nearest":
        if domain.size < 2:
            raise SurrogateError("--islands nearest needs at least two areas")
        d = np.linalg.norm(domain.coords[lonely, None, :] - domain.coords[None, :, :], axis=-1)
        d[np.arange(lonely.size), lonely] = np.inf
        near = d.argmin(1)
        new = np.sort(np.column_stack([lonely, near]), axis=1)
        edges = np.unique(np.vstack([edges, new]), axis=0)
        added = [(domain.ids[a], domain.ids[b]) for a, b in zip(lonely, near)]
    n = domain.size
    deg = np.bincount(edges.ravel(), minlength=n)
    work = Domain(domain.kind, domain.ids, domain.coords, edges, contiguity=domain.contiguity)
    comps = tuple(c for c in work.components() if len(c) > 1)
    scale = np.ones(n)
    for c in comps:
        index = {v: i for i, v in enumerate(c)}
        inside = np.isin(edges[:, 0], c)
        local = np.vectorize(index.get)(edges[inside]) if inside.any() else np.zeros((0, 2), int)
        scale[c] = scaling_factor(icar_precision(len(c), local.reshape(-1, 2)))
    return Graph(edges, comps, np.flatnonzero(deg == 0), scale, tuple(added))


def icar_factor(domain: Domain, graph: Graph) -> np.ndarray:
    """``A`` with ``A @ eps`` (eps ~ N(0, I)) a draw of the scaled ICAR (cov ``A A^T``)."""
    n = domain.size
    A = np.zeros((n, n))
    Q = icar_precision(n, graph.edges)
    for c in graph.components:
        sub = Q[np.ix_(c, c)]
        lam, V = np.linalg.eigh(sub)
        keep = lam > 1e-9 * lam.max()
        A[np.ix_(c, c[: keep.sum()])] = V[:, keep] / np.sqrt(lam[keep]) / np.sqrt(graph.scale[c][0])
    A[graph.islands, graph.islands] = 1.0
    return A


def car_precision(domain: Domain, graph: Graph, alpha: float) -> np.ndarray:
    """``D - alpha W`` (islands: precision 1, independent)."""
    n = domain.size
    W = np.zeros((n, n))
    W[graph.edges[:, 0], graph.edges[:, 1]] = W[graph.edges[:, 1], graph.edges[:, 0]] = 1.0
    deg = W.sum(1)
    deg[graph.islands] = 1.0
    return np.diag(deg) - alpha * W


@dataclass(frozen=True, eq=False)
class SpatialPrior:
    """A unit-scale spatial prior on ``domain``; ``condition`` is its hyperparameter's (lo, hi)."""

    kind: str
    domain: Domain
    kernel: str = "matern32"  # gp, agg-gp
    condition: tuple[float, float] | None = None  # lengthscale (gp, agg-gp), rho (bym2), alpha (car); None for icar
    islands: str = "refuse"
    agg_grid: int = 30  # agg-gp: points per axis of the fine grid over the map's bounding box

    def __post_init__(self):
        check_choice("prior", self.kind, PRIORS)
        name = CONDITION[self.kind]
        if self.kind in ("gp", "agg-gp"):
            check_choice("kernel", self.kernel, KERNELS)
            ext = self.domain.extent
            value = self.condition if self.condition is not None else (0.05 * ext, 0.5 * ext)
            object.__setattr__(self, "condition", check_range("lengthscale", value))
        elif name is not None:
            value = self.condition if self.condition is not None else DEFAULT_RANGE[self.kind]
            object.__setattr__(self, "condition", check_unit_range(name, value, upper_open=self.kind == "car"))
        else:
            object.__setattr__(self, "condition", None)
        if self.kind == "agg-gp":
            if self.domain.kind != "areas":
                raise SurrogateError(f"prior agg-gp averages a GP within polygons and needs --map, found a {self.domain.kind} domain")
            check_positive_int("agg-grid", self.agg_grid)
        if self.kind in ("icar", "bym2", "car"):
            _ = self.graph  # checks the adjacency and the island rule now

    @property
    def condition_name(self) -> str | None:
        return CONDITION[self.kind]

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
        if self.kind == "gp":
            return kernel_matrix(self.domain.coords, self.domain.coords, self.kernel, v)
        if self.kind == "agg-gp":
            pts, A = self.aggregation
            return A @ kernel_matrix(pts, pts, self.kernel, v) @ A.T
        icar = self.icar @ self.icar.T
        if self.kind == "icar":
            return icar
        if self.kind == "bym2":
            return (1 - v) * np.eye(self.size) + v * icar
        return np.linalg.inv(car_precision(self.domain, self.graph, v))

    def mean_covariance(self) -> np.ndarray:
        """The covariance averaged over the hyperparameter's range (what a VAE marginalising it learns)."""
        if self.fixed:
            return self.covariance(None if self.condition is None else self.condition[0])
        lo, hi = self.condition
        return np.mean([self.covariance(v) for v in np.linspace(lo, hi, 5)], axis=0)

    def spectrum(self) -> dict:
        """How many dimensions a linear (Karhunen-Loeve) surrogate of the mean covariance needs, and what K keeps.

        ``kept`` maps K to the share of the total variance its top-K eigenvectors hold: the
        linear floor of a decoder with latent size K.
        """
        from surrogate.nn.linear_path import spectrum

        return spectrum(self.mean_covariance())

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

        if self.kind in ("icar", "bym2"):
            phi = randn(count, n) @ torch.from_numpy(self.icar).to(device).T
            if self.kind == "icar":
                return phi.float(), torch.zeros(count, device=device)
            lo, hi = self.condition
            rho = torch.full((count,), float(value), dtype=torch.float64, device=device) if value is not None else uniform(count, lo, hi)
            f = (1 - rho).sqrt()[:, None] * randn(count, n) + rho.sqrt()[:, None] * phi
            return f.float(), rho.float()
        # gp, agg-gp, car: one factorisation per hyperparameter value, shared by count / groups draws
        lo, hi = self.condition
        groups = groups or int(np.clip(4e9 / max(n, 1) ** 3, 2, 16))
        values = [float(value)] if value is not None else ([lo] if lo == hi else uniform(min(groups, count), lo, hi).cpu().tolist())
        sizes = [len(a) for a in np.array_split(np.arange(count), len(values))]
        fields, conds = [], []
        for v, m in zip(values, sizes):
            L = torch.from_numpy(self._factor(v)).to(device)
            fields.append(randn(m, L.shape[1]) @ L.T)
            conds.append(torch.full((m,), v, dtype=torch.float64, device=device))
        return torch.cat(fields).float(), torch.cat(conds).float()

    def to_dict(self) -> dict:
        return {"prior": self.kind, "kernel": self.kernel if self.kind in ("gp", "agg-gp") else None, "condition_name": self.condition_name,
                "condition": list(self.condition) if self.condition else None, "islands": self.islands,
                "agg_grid": self.agg_grid if self.kind == "agg-gp" else None,
                "scaling_factors": sorted({round(float(s), 6) for s in self.graph.scale}) if self.kind in ("icar", "bym2") else None,
                "domain": self.domain.to_dict()}  # fmt: skip


def _cached_factor(prior: SpatialPrior, value: float) -> np.ndarray:
    cache = prior.__dict__.setdefault("_factors", {})
    if value not in cache:
        if len(cache) > 32:
            cache.clear()
        if prior.kind == "agg-gp":
            pts, A = prior.aggregation
            K = kernel_matrix(pts, pts, prior.kernel, value)
            cache[value] = A @ np.linalg.cholesky(K + JITTER * np.eye(len(pts)))
        else:
            cov = prior.covariance(value)
            cache[value] = np.linalg.cholesky(cov + JITTER * np.eye(len(cov)))
    return cache[value]
