"""Domains: where a spatial field lives. A regular grid, a table of sites, or the polygons of a map.

A :class:`Domain` holds, for its ``N`` locations in a fixed order: the ids (strings),
coordinates ``[N, 2]`` (grid points, sites, or polygon centroids, in the map's units),
polygon areas (maps only) and the undirected adjacency as an edge list (0-based pairs
``i < j``; grids and maps only). Maps are read with geopandas and their contiguity comes
from libpysal (queen by default: polygons sharing a point; rook: sharing an edge).

Distances (GP lengthscales) are in the map's coordinate units: degrees for a longitude/latitude
map (reproject it, e.g. with geopandas' ``to_crs``, for kilometres). A domain's content hash covers its kind, ids, coordinates and edges, so an exported
decoder records the domain it was trained on and a fit on another domain is refused,
naming what differs (:func:`check_same_domain`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.fileio import atomic_path, write_text
from surrogate.spatial.contiguity import CONTIGUITY, check_snap, fuzzy_pairs, touching_islands

DOMAIN_KINDS = ("grid", "points", "areas")
GRID_CONTIGUITY = ("queen", "rook")
MAP_SUFFIXES = (".shp", ".geojson", ".json", ".gpkg")
DOMAIN_FORMAT = "surrogate-domain/1"


@dataclass(frozen=True, eq=False)
class Domain:
    kind: str  # grid | points | areas
    ids: tuple[str, ...]  # one per location, in the field's order
    coords: np.ndarray  # [N, 2] float64: grid points, sites or polygon centroids
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=int))  # [E, 2] 0-based pairs i < j
    areas: np.ndarray | None = None  # [N] polygon areas (maps), in squared map units
    source: str = ""  # the file it was read from (provenance only: not hashed)
    contiguity: str | None = None  # queen | rook (maps and grids)
    geometry: object = None  # the GeoSeries of a map (for choropleths), aligned with ids
    id_column: str | None = None  # the column that named the ids (maps and sites; not hashed)
    snap: float | None = None  # fuzzy contiguity: polygons within this distance (map units) are neighbours
    touching: dict = field(default_factory=dict)  # areas without neighbours at distance 0 from others: id -> ids they touch

    # --- constructors (the public API: ``sg.Domain.from_map(...)``) ---
    @classmethod
    def from_map(cls, source, id: str | None = None, contiguity: str = "queen", snap: float | None = None) -> "Domain":
        """Areas of a shapefile, GeoJSON or GeoPackage path, or of a GeoDataFrame; ``id`` names the id column.

        ``contiguity``: queen (polygons sharing a vertex), rook (sharing an edge's vertices) or fuzzy (touching or
        overlapping anywhere, no shared vertex needed; with ``snap``, also lying within that many map units)."""
        if isinstance(source, (str, Path)):
            return read_map(source, id, contiguity, snap)
        return map_domain(source, id, contiguity, "", snap)

    @classmethod
    def from_points(cls, source, id: str = "id", x: str = "x", y: str = "y") -> "Domain":
        """Sites of a CSV path or a DataFrame with an id column and coordinate columns ``x``, ``y``."""
        if isinstance(source, (str, Path)):
            return read_points(source, id, x, y)
        return points_domain(source, id, x, y, "")

    @classmethod
    def grid(cls, n: int, contiguity: str = "rook") -> "Domain":
        """An ``n x n`` grid on the unit square (row-major), a domain like any other."""
        return grid_domain(n, contiguity)

    def to_geodataframe(self, **columns):
        """A GeoDataFrame of the locations (polygons of a map, points otherwise) with ``id`` and ``columns``."""
        import geopandas as gpd

        geometry = self.geometry if self.geometry is not None else gpd.points_from_xy(self.coords[:, 0], self.coords[:, 1])
        return gpd.GeoDataFrame({self.id_column or "id": list(self.ids), **columns}, geometry=geometry, crs=getattr(self.geometry, "crs", None))

    def write(self, folder: str | Path) -> dict:
        """Write what re-reads this domain into ``folder`` (a map: domain.gpkg; sites: domain.csv); the reader's arguments."""
        folder = Path(folder)
        if self.kind == "grid":
            return {"grid": int(round(np.sqrt(self.size)))}
        column = self.id_column or "id"
        if self.kind == "points":
            import pandas as pd

            path = folder / "domain.csv"
            write_text(path, pd.DataFrame({column: list(self.ids), "x": self.coords[:, 0], "y": self.coords[:, 1]}).to_csv(index=False))
            return {"points": str(path), "id_column": column}
        path = folder / "domain.gpkg"
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a map without a CRS; a temporary name without the .gpkg suffix
            self.to_geodataframe().to_file(tmp, driver="GPKG", layer="domain")
        return {"map": str(path), "id_column": column, "contiguity": self.contiguity, "snap": self.snap}

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def has_adjacency(self) -> bool:
        return self.kind != "points"

    @property
    def degrees(self) -> np.ndarray:
        return np.bincount(self.edges.ravel(), minlength=self.size)

    @property
    def extent(self) -> float:
        """The diagonal of the coordinates' bounding box (sets default lengthscales)."""
        span = self.coords.max(0) - self.coords.min(0)
        return float(np.hypot(*span)) or 1.0

    def adjacency(self) -> np.ndarray:
        """The dense symmetric 0/1 adjacency matrix ``[N, N]``."""
        W = np.zeros((self.size, self.size))
        W[self.edges[:, 0], self.edges[:, 1]] = W[self.edges[:, 1], self.edges[:, 0]] = 1.0
        return W

    def components(self) -> list[np.ndarray]:
        """Connected components (index arrays), largest first; singletons are islands."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = self.size
        g = coo_matrix((np.ones(len(self.edges)), (self.edges[:, 0], self.edges[:, 1])), shape=(n, n))
        count, labels = connected_components(g, directed=False)
        comps = [np.flatnonzero(labels == c) for c in range(count)]
        return sorted(comps, key=lambda c: (-len(c), c[0]))

    def islands(self) -> list[str]:
        return [self.ids[i] for i in np.flatnonzero(self.degrees == 0)]

    def content_hash(self) -> str:
        if "_hash" not in self.__dict__:  # computed once: a frozen domain does not change
            self.__dict__["_hash"] = self._content_hash()
        return self.__dict__["_hash"]

    def _content_hash(self) -> str:
        payload = {"kind": self.kind, "ids": list(self.ids), "coords": np.round(self.coords, 9).tolist(),
                   "edges": self.edges.tolist(), "contiguity": self.contiguity}  # fmt: skip
        return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()[:16]

    def describe(self) -> str:
        text = f"{self.kind} domain of {self.size} locations"
        if self.has_adjacency:
            comps = self.components()
            text += f", {len(self.edges)} {self.contiguity} neighbour pairs, {len(comps)} connected component(s)"
            lonely = [i for i in self.islands() if i not in self.touching]
            if lonely:
                text += f" incl. {len(lonely)} island(s): {', '.join(lonely[:5])}"
            if self.touching:
                text += (f"; {len(self.touching)} area(s) without {self.contiguity} neighbours touch others (a topology problem: "
                         f"use contiguity fuzzy): {', '.join(list(self.touching)[:5])}")  # fmt: skip
        return text

    def to_dict(self) -> dict:
        """What an exported decoder records of its domain (enough to name differences)."""
        return {"format": DOMAIN_FORMAT, "kind": self.kind, "size": self.size, "hash": self.content_hash(),
                "contiguity": self.contiguity, "snap": self.snap, "ids": list(self.ids), "source": self.source, "edges": len(self.edges)}  # fmt: skip


def edges_from_neighbors(neighbors: dict, order: list) -> np.ndarray:
    index = {key: i for i, key in enumerate(order)}
    pairs = {tuple(sorted((index[a], index[b]))) for a, nbrs in neighbors.items() for b in nbrs if a != b}
    return np.array(sorted(pairs), dtype=int).reshape(-1, 2)


def grid_domain(n: int, contiguity: str = "rook") -> Domain:
    """An ``n x n`` grid on the unit square (row-major, as ``surrogate.data.gp.grid_points``)."""
    from libpysal.weights import lat2W

    check_positive_int("grid", n)
    check_choice("contiguity", contiguity, GRID_CONTIGUITY)
    from surrogate.data.gp import grid_points

    w = lat2W(n, n, rook=contiguity == "rook")
    ids = tuple(str(i) for i in range(n * n))
    return Domain("grid", ids, grid_points(2, n), edges_from_neighbors(w.neighbors, list(range(n * n))), contiguity=contiguity,
                  source=f"grid {n}x{n}")  # fmt: skip


def _check_ids(values, column: str, source: str) -> tuple[str, ...]:
    ids = [str(v) for v in values]
    if any(v in ("", "nan", "None") for v in ids):
        raise SurrogateError(f"{source}: id column {column!r} has empty values (rows {[i for i, v in enumerate(ids) if v in ('', 'nan', 'None')][:5]})")
    seen, dup = set(), []
    for v in ids:
        if v in seen:
            dup.append(v)
        seen.add(v)
    if dup:
        raise SurrogateError(f"{source}: id column {column!r} has duplicate ids: {', '.join(sorted(set(dup))[:5])}")
    return tuple(ids)


def _check_column(columns, column: str | None, source: str) -> str:
    if column is None:
        raise SurrogateError(f"{source}: give id=COLUMN, one of its columns: {', '.join(map(str, columns))}")
    if column not in columns:
        raise SurrogateError(f"{source} has no id column {column!r}; its columns: {', '.join(map(str, columns))}")
    return column


def read_map(path: str | Path, id_column: str | None, contiguity: str = "queen", snap: float | None = None) -> Domain:
    """The areal domain of a shapefile, GeoJSON or GeoPackage with an id column."""
    import geopandas as gpd

    check_choice("contiguity", contiguity, CONTIGUITY)
    check_snap(snap, contiguity)
    path = Path(path)
    if not path.is_file():
        raise SurrogateError(f"map {path} does not exist (expected a {', '.join(MAP_SUFFIXES)} file)")
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises its own DataSourceError, fiona others
        raise SurrogateError(f"cannot read map {path}: {exc}") from None
    return map_domain(gdf, id_column, contiguity, str(path), snap)


def map_domain(gdf, id_column: str | None, contiguity: str = "queen", source: str = "", snap: float | None = None) -> Domain:
    """The areal domain of a GeoDataFrame (``source``: the file it came from, for messages and provenance)."""
    from libpysal.weights import Queen, Rook

    check_choice("contiguity", contiguity, CONTIGUITY)
    snap = check_snap(snap, contiguity)
    where = f"map {source}" if source else "the GeoDataFrame"
    if not hasattr(gdf, "geometry"):
        raise SurrogateError(f"a map must be a GeoDataFrame or a file path, found {type(gdf).__name__}")
    if len(gdf) == 0:
        raise SurrogateError(f"{where} has no features")
    column = _check_column([c for c in gdf.columns if c != gdf.geometry.name], id_column, where)
    ids = _check_ids(gdf[column].tolist(), column, where)
    geom = gdf.geometry
    bad = [ids[i] for i in np.flatnonzero(geom.isna().values | ~geom.geom_type.isin(["Polygon", "MultiPolygon"]).values)]
    if bad:
        raise SurrogateError(f"{where}: areas need polygon geometries; these have none or another type: {', '.join(bad[:5])}")
    gdf = gdf.reset_index(drop=True)
    if contiguity == "fuzzy":
        edges = fuzzy_pairs(geom.reset_index(drop=True), snap)
    else:
        weights = (Queen if contiguity == "queen" else Rook).from_dataframe(gdf, use_index=False, silence_warnings=True)
        edges = edges_from_neighbors(weights.neighbors, list(range(len(gdf))))
    with warnings.catch_warnings():  # a geographic CRS: centroids and areas in degrees, as documented
        warnings.simplefilter("ignore", UserWarning)
        centroids, areas = geom.centroid, geom.area.values.astype(float)
    coords = np.column_stack([centroids.x.values, centroids.y.values]).astype(float)
    span = coords.max(0) - coords.min(0)
    touching = {} if contiguity == "fuzzy" else touching_islands(geom.reset_index(drop=True), edges, ids, float(np.hypot(*span)) or 1.0)
    return Domain("areas", ids, coords, edges, areas, source, contiguity, geom.reset_index(drop=True), column, snap, touching)


def read_points(path: str | Path, id_column: str | None = "id", x: str = "x", y: str = "y") -> Domain:
    """The point domain of a CSV of sites with columns id, x, y."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SurrogateError(f"points file {path} does not exist (expected a CSV with columns id, x, y)")
    try:
        table = pd.read_csv(path, dtype={id_column: str} if id_column else None)
    except Exception as exc:
        raise SurrogateError(f"cannot read points file {path}: {exc}") from None
    return points_domain(table, id_column or "id", x, y, str(path))


def points_domain(table, id_column: str = "id", x: str = "x", y: str = "y", source: str = "") -> Domain:
    """The point domain of a DataFrame of sites."""
    where = f"points file {source}" if source else "the sites table"
    if not hasattr(table, "columns"):
        raise SurrogateError(f"sites must be a DataFrame or a CSV path, found {type(table).__name__}")
    column = _check_column(list(table.columns), id_column, where)
    for c in (x, y):
        if c not in table.columns:
            raise SurrogateError(f"{where} has no coordinate column {c!r}; its columns: {', '.join(map(str, table.columns))}")
    coords = table[[x, y]].to_numpy(dtype=float)
    if not np.isfinite(coords).all():
        raise SurrogateError(f"{where}: coordinates must be finite numbers; row {int(np.flatnonzero(~np.isfinite(coords).all(1))[0])} is not")
    ids = _check_ids(table[column].tolist(), column, where)
    return Domain("points", ids, coords, source=source, id_column=column)


@lru_cache(maxsize=8)
def load_domain(map_path: str | None = None, points: str | None = None, grid: int | None = None, id_column: str | None = None,
                contiguity: str = "queen", snap: float | None = None) -> Domain:  # fmt: skip
    """The domain named by exactly one of ``map_path``, ``points`` or ``grid`` (cached)."""
    given = [name for name, v in (("map", map_path), ("points", points), ("grid", grid)) if v is not None]
    if len(given) != 1:
        raise SurrogateError(f"give exactly one domain: map=FILE, points=FILE or grid=N; found {', '.join(given) or 'none'}")
    if map_path is not None:
        return read_map(map_path, id_column, contiguity, snap)
    if points is not None:
        return read_points(points, id_column or "id")
    return grid_domain(grid, "rook" if contiguity == "rook" else "queen")


def check_same_domain(recorded: dict, domain: Domain, what: str) -> None:
    """Refuse ``domain`` unless its hash equals the one ``what`` (a decoder) recorded, naming what differs."""
    if recorded.get("hash") == domain.content_hash():
        return
    ids, mine = list(recorded.get("ids", [])), list(domain.ids)
    if recorded.get("kind") != domain.kind:
        detail = f"{what} was trained on a {recorded.get('kind')} domain, the data are on a {domain.kind} domain"
    elif len(ids) != len(mine):
        detail = f"{what} was trained on {len(ids)} locations, the map has {len(mine)}"
    elif set(ids) != set(mine):
        missing, extra = sorted(set(ids) - set(mine)), sorted(set(mine) - set(ids))
        detail = f"ids differ: {what} has {', '.join(missing[:5])} that the map lacks; the map has {', '.join(extra[:5])}"
    elif ids != mine:
        detail = f"the same ids in another order (first difference at position {next(i for i, (a, b) in enumerate(zip(ids, mine)) if a != b)})"
    elif recorded.get("contiguity") != domain.contiguity:
        detail = f"{what} used {recorded.get('contiguity')} contiguity, the map is read with {domain.contiguity}"
    elif recorded.get("snap") != domain.snap:
        detail = f"{what} used snap {recorded.get('snap')}, the map is read with snap {domain.snap}"
    elif recorded.get("edges") != len(domain.edges):
        detail = f"the adjacency differs: {recorded.get('edges')} neighbour pairs in {what}, {len(domain.edges)} in the map"
    else:
        detail = "the coordinates differ"
    raise SurrogateError(f"{what} was trained on another domain (hash {recorded.get('hash')}, source {recorded.get('source')}); "
                         f"this one is {domain.content_hash()} ({domain.source}): {detail}")  # fmt: skip
