"""Simulated maps and data with a known truth: Voronoi areas, and counts from an exact spatial prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from surrogate.errors import check_positive_int
from surrogate.spatial.domain import Domain
from surrogate.spatial.priors import SpatialPrior


def voronoi_map(n: int, seed: int = 0, width: float = 2.0, height: float = 1.0):
    """A GeoDataFrame of ``n`` Voronoi polygons of uniform random sites, clipped to a ``width x height`` box (ids ``V001``...)."""
    import geopandas as gpd
    import shapely

    check_positive_int("areas", n)
    rng = np.random.default_rng(seed)
    pts = shapely.multipoints(rng.uniform([0, 0], [width, height], size=(n, 2)))
    box = shapely.box(0, 0, width, height)
    cells = [c.intersection(box) for c in shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=box))]
    order = np.lexsort([[c.centroid.x for c in cells], [round(c.centroid.y, 1) for c in cells]])
    cells = [cells[i] for i in order]
    return gpd.GeoDataFrame({"id": [f"V{i + 1:03d}" for i in range(n)]}, geometry=cells)


def write_voronoi_map(path: str | Path, n: int, seed: int = 0) -> Path:
    import warnings

    path = Path(path)
    with warnings.catch_warnings():  # the map has no CRS: plain coordinates
        warnings.simplefilter("ignore", UserWarning)
        voronoi_map(n, seed).to_file(path, driver="GeoJSON")
    return path


def simulate_counts(domain: Domain, prior: SpatialPrior, value: float | None, sigma: float, intercept: float, beta: float,
                    expected: float | np.ndarray, seed: int = 0) -> dict:  # fmt: skip
    """A data table (dict of columns) of Poisson counts from ``intercept + beta * x_std + sigma * f`` with ``f`` an exact prior draw.

    ``x`` is a covariate on its own scale (mean 10, sd about 3, smooth in space); the returned
    ``eta`` is the true log relative risk of every area.
    """
    rng = np.random.default_rng(seed)
    f = prior.sample(1, torch.Generator().manual_seed(seed), value=value)[0][0].double().numpy()
    c = domain.coords
    x = 10 + 3 * np.sin(2 * c[:, 0] / max(np.ptp(c[:, 0]), 1e-9) * np.pi) + rng.normal(0, 1.5, domain.size)
    eta = intercept + beta * (x - x.mean()) / x.std() + sigma * f
    e = np.broadcast_to(np.asarray(expected, dtype=float), (domain.size,))
    return {"id": list(domain.ids), "cases": rng.poisson(e * np.exp(eta)), "expected": e.copy(), "x": x, "eta_true": eta}
