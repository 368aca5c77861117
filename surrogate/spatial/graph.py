"""The adjacency a CAR-type prior uses: island rules, connected components, Riebler scaling factors.

Islands (areas without neighbours) follow a rule, as Freni-Sterrantino et al. (2018) do for
BYM2: ``refuse`` (the default: an error naming them), ``independent`` (each island gets an
independent N(0, 1) effect; every other component its own constraint and scaling) or
``nearest`` (each island is joined to the area with the nearest centroid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surrogate.errors import SurrogateError, check_choice
from surrogate.spatial.domain import Domain

ISLAND_RULES = ("refuse", "independent", "nearest")


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
        raise SurrogateError(f"prior {prior} needs a neighbourhood structure: give map=FILE (polygons) or grid=N, not points=FILE")
    if domain.touching:  # no neighbours, yet at distance 0 from others: not islands (no island rule applies)
        from surrogate.spatial.contiguity import topology_message

        raise SurrogateError(topology_message(domain.touching, domain.contiguity))
    edges, added = domain.edges, []
    lonely = np.flatnonzero(domain.degrees == 0)
    if lonely.size and islands == "refuse":
        names = ", ".join(domain.ids[i] for i in lonely[:10])
        raise SurrogateError(f"the map has {lonely.size} island(s) without neighbours ({names}); prior {prior} needs a rule: "
                             "islands='independent' (an independent effect per island, Freni-Sterrantino et al. 2018) "
                             "or islands='nearest' (join each to the nearest area)")  # fmt: skip
    if lonely.size and islands == "nearest":
        if domain.size < 2:
            raise SurrogateError("islands='nearest' needs at least two areas")
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


def graph_stan_data(graph: Graph) -> dict:
    """The graph part of the exact programs' data (``stan/include/graph_data.stan``), 1-based."""
    members = np.concatenate(list(graph.components)) if graph.components else np.zeros(0, int)
    return {"N_edges": len(graph.edges), "node1": graph.edges[:, 0] + 1, "node2": graph.edges[:, 1] + 1, "N_islands": len(graph.islands),
            "island_idx": graph.islands + 1, "N_comp": len(graph.components), "comp_size": [len(c) for c in graph.components],
            "comp_members": members + 1, "scale": graph.scale}  # fmt: skip
