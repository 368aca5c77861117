"""Small maps the tests write themselves: unit squares as GeoJSON, and their expected neighbours."""

from __future__ import annotations

import json
from pathlib import Path


def square(x: float, y: float, size: float = 1.0) -> list:
    return [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]


def write_squares(path: Path, n: int, island: bool = False, id_name: str = "code", extra: dict | None = None) -> Path:
    """An ``n x n`` block of unit squares (ids ``A<row><col>``), plus an island square far to the east."""
    features = []
    for i in range(n):
        for j in range(n):
            features.append({"type": "Feature", "properties": {id_name: f"A{i}{j}", "row": i, "col": j},
                             "geometry": {"type": "Polygon", "coordinates": square(j, i)}})  # fmt: skip
    if island:
        features.append({"type": "Feature", "properties": {id_name: "ISLE", "row": -1, "col": -1},
                         "geometry": {"type": "Polygon", "coordinates": square(n + 3, 0)}})  # fmt: skip
    for f in features:
        f["properties"] |= {k: v[f["properties"][id_name]] for k, v in (extra or {}).items()}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def expected_pairs(n: int, queen: bool) -> set[tuple[str, str]]:
    """Neighbour pairs of the block by id (rook: shared edges; queen: also shared corners)."""
    steps = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if queen else [])
    pairs = set()
    for i in range(n):
        for j in range(n):
            for di, dj in steps:
                a, b = i + di, j + dj
                if 0 <= a < n and 0 <= b < n:
                    pairs.add(tuple(sorted((f"A{i}{j}", f"A{a}{b}"))))
    return pairs


def pairs_of(domain) -> set[tuple[str, str]]:
    return {tuple(sorted((domain.ids[a], domain.ids[b]))) for a, b in domain.edges}

