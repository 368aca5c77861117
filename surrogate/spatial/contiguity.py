"""Which polygons of a map are neighbours: queen and rook contiguity (libpysal: shared vertices), and fuzzy
contiguity (shapely: polygons that touch or overlap anywhere, or lie within ``snap`` map units).

Real shapefiles often have polygons that touch along an edge without sharing its vertices (one side
digitised with more points than the other, a T-junction). Vertex-based contiguity misses those pairs and
reports areas at distance 0 from their neighbours as islands; giving them independent effects would be the
wrong model. :func:`touching_islands` finds them, so that the map reading can say it is a topology problem
and name the areas they touch; ``contiguity="fuzzy"`` reads such a map correctly.
"""

from __future__ import annotations

import numpy as np

from surrogate.errors import SurrogateError

CONTIGUITY = ("queen", "rook", "fuzzy")
#: a distance this small against the map's extent is touching (floating-point noise of shared edges)
TOUCH_TOL = 1e-9


def check_snap(snap, contiguity: str) -> float | None:
    """``snap`` as a positive distance in map units (fuzzy contiguity only), or None."""
    if snap is None:
        return None
    if contiguity != "fuzzy":
        raise SurrogateError(f"snap applies to contiguity='fuzzy' only, found contiguity={contiguity!r} with snap={snap!r}")
    if isinstance(snap, bool) or not isinstance(snap, (int, float)) or not np.isfinite(snap) or snap <= 0:
        raise SurrogateError(f"snap must be a positive distance in map units, found {snap!r}")
    return float(snap)


def pairs_of(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Unique undirected pairs ``i < j`` (``[E, 2]``, sorted) of two index arrays, self-pairs dropped."""
    pairs = np.sort(np.column_stack([left, right]), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0).reshape(-1, 2).astype(int)


def fuzzy_pairs(geometry, snap: float | None = None) -> np.ndarray:
    """Pairs of polygons that intersect (touch or overlap anywhere: no shared vertex needed) or, with ``snap``, lie within it."""
    import shapely

    geoms = np.asarray(geometry.values)
    tree = shapely.STRtree(geoms)
    if snap is None:
        left, right = tree.query(geoms, predicate="intersects")
    else:
        left, right = tree.query(geoms, predicate="dwithin", distance=snap)
    return pairs_of(left, right)


def touching_islands(geometry, edges: np.ndarray, ids, extent: float) -> dict[str, tuple[str, ...]]:
    """Areas without neighbours that are at distance 0 (to ``TOUCH_TOL`` x extent) from other areas: id -> the ids they touch."""
    import shapely

    n = len(ids)
    degree = np.bincount(edges.ravel(), minlength=n) if len(edges) else np.zeros(n, int)
    lonely = np.flatnonzero(degree == 0)
    if lonely.size == 0 or n < 2:
        return {}
    geoms = np.asarray(geometry.values)
    tree = shapely.STRtree(geoms)
    found: dict[str, tuple[str, ...]] = {}
    for i in lonely:
        near = [int(j) for j in tree.query(geoms[i], predicate="dwithin", distance=TOUCH_TOL * extent) if j != i]
        if near:
            found[ids[i]] = tuple(ids[j] for j in sorted(near))
    return found


def topology_message(touching: dict[str, tuple[str, ...]], contiguity: str) -> str:
    """The error for areas that touch others but have no neighbours under vertex-based contiguity."""
    shown = "; ".join(f"{area} touches {', '.join(near[:4])}" for area, near in list(touching.items())[:5])
    more = f" (and {len(touching) - 5} more)" if len(touching) > 5 else ""
    return (f"{len(touching)} area(s) have no {contiguity} neighbours although they touch other areas (distance 0): {shown}{more}. "
            "Their polygons share an edge without sharing its vertices, a topology problem of the map, not islands; read the map with "
            "contiguity='fuzzy' (polygons that touch anywhere are neighbours; snap=DIST also joins gaps up to DIST map units)")  # fmt: skip
