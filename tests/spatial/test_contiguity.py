"""Contiguity on a map whose shared edges have vertices on one side only (a T-junction), as real shapefiles do:
vertex-based queen contiguity finds no neighbour for such an area; it is reported as a topology problem naming the
areas it touches, not as an island; fuzzy contiguity reads the map right, and snap joins small gaps."""

from __future__ import annotations

import geopandas as gpd
import pytest
from click.testing import CliRunner
from shapely import box

import surrogate as sg
from surrogate.cli import main
from surrogate.errors import SurrogateError
from surrogate.spatial.priors import SpatialPrior


@pytest.fixture()
def t_junction(tmp_path):
    """BASE spans three squares' width with vertices at its corners only; TOP sits on its middle, sharing no vertex;
    SIDE shares BASE's right edge with its vertices; FAR is a real island; GAP lies 0.001 right of SIDE."""
    gdf = gpd.GeoDataFrame({"code": ["BASE", "TOP", "SIDE", "FAR", "GAP"]},
                           geometry=[box(0, 0, 3, 1), box(1, 1, 2, 2), box(3, 0, 4, 1), box(10, 10, 11, 11), box(4.001, 0, 5, 1)])  # fmt: skip
    path = tmp_path / "t.geojson"
    gdf.set_crs(3857).to_file(path, driver="GeoJSON")
    return path


def pairs(domain):
    return {tuple(sorted((domain.ids[a], domain.ids[b]))) for a, b in domain.edges}


def test_touching_without_shared_vertices_is_a_topology_problem_not_an_island(t_junction):
    queen = sg.Domain.from_map(t_junction, id="code")
    assert pairs(queen) == {("BASE", "SIDE")} and queen.touching == {"TOP": ("BASE",)}
    assert "1 area(s) without queen neighbours touch others" in queen.describe() and "island(s): FAR, GAP" in queen.describe()
    for islands in ("refuse", "independent", "nearest"):  # no island rule hides it
        with pytest.raises(SurrogateError, match=r"have no queen neighbours although they touch other areas \(distance 0\): TOP touches BASE\. .*"
                                                 r"contiguity='fuzzy'"):  # fmt: skip
            SpatialPrior("bym2", queen, islands=islands)


def test_fuzzy_contiguity_and_snap(t_junction):
    fuzzy = sg.Domain.from_map(t_junction, id="code", contiguity="fuzzy")
    assert pairs(fuzzy) == {("BASE", "SIDE"), ("BASE", "TOP")} and fuzzy.touching == {} and fuzzy.islands() == ["FAR", "GAP"]
    snapped = sg.Domain.from_map(t_junction, id="code", contiguity="fuzzy", snap=0.01)
    assert pairs(snapped) == {("BASE", "SIDE"), ("BASE", "TOP"), ("GAP", "SIDE")} and snapped.islands() == ["FAR"]
    assert snapped.content_hash() != fuzzy.content_hash() and snapped.to_dict()["snap"] == 0.01
    prior = SpatialPrior("icar", snapped, islands="independent")  # FAR: a real island, its own effect
    assert prior.graph.islands.tolist() == [3] and len(prior.graph.components) == 1


def test_bad_snap_and_geometry_are_named(t_junction, tmp_path):
    for snap, message in ((0, r"snap must be a positive distance in map units, found 0"), (-1.5, r"found -1.5"),
                          (float("nan"), r"found nan")):  # fmt: skip
        with pytest.raises(SurrogateError, match=message):
            sg.Domain.from_map(t_junction, id="code", contiguity="fuzzy", snap=snap)
    with pytest.raises(SurrogateError, match=r"snap applies to contiguity='fuzzy' only, found contiguity='queen' with snap=0.1"):
        sg.Domain.from_map(t_junction, id="code", snap=0.1)
    with pytest.raises(SurrogateError, match=r"unknown contiguity 'bishop'; valid names: fuzzy, queen, rook"):
        sg.Domain.from_map(t_junction, id="code", contiguity="bishop")
    points = gpd.GeoDataFrame({"code": ["a", "b"]}, geometry=gpd.points_from_xy([0, 1], [0, 1]))
    with pytest.raises(SurrogateError, match=r"areas need polygon geometries; these have none or another type: a, b"):
        sg.Domain.from_map(points, id="code", contiguity="fuzzy")


def test_the_command_line_takes_fuzzy_contiguity_and_snap(t_junction, tmp_path):
    base = ["train", "--prior", "bym2", "--map", str(t_junction), "--id-column", "code", "--model", "vae", "--latent", "3", "--epochs", "0",
            "--islands", "independent"]  # fmt: skip
    queen = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "q")])
    assert queen.exit_code != 0 and "TOP touches BASE" in queen.output and "read the map with --contiguity fuzzy" in queen.output
    assert not (tmp_path / "q").exists()
    bad = CliRunner().invoke(main, [*base, "--contiguity", "fuzzy", "--snap", "0", "--out", str(tmp_path / "b")])
    assert bad.exit_code != 0 and "snap must be a positive distance in map units, found 0" in bad.output
    ok = CliRunner().invoke(main, [*base, "--contiguity", "fuzzy", "--snap", "0.01", "--out", str(tmp_path / "f")])
    assert ok.exit_code == 0, ok.output
    assert '"snap": 0.01' in (tmp_path / "f" / "config.json").read_text()


def test_a_map_too_large_for_dense_steps_is_refused_with_the_estimate(t_junction, monkeypatch):
    import surrogate.spatial.priors as priors

    domain = sg.Domain.from_map(t_junction, id="code", contiguity="fuzzy")
    monkeypatch.setattr(priors, "available_memory", lambda: 1000)  # bytes
    with pytest.raises(SurrogateError, match=r"prior bym2 on 5 locations needs dense 5 x 5 steps: about 0.0 GB \(6 matrices of 0.00 GB\), "
                                             r"and 0.0 GB of memory is available"):  # fmt: skip
        SpatialPrior("bym2", domain, islands="independent")
    monkeypatch.setattr(priors, "available_memory", lambda: 24e9)
    assert SpatialPrior("bym2", domain, islands="independent").size == 5
    with pytest.raises(SurrogateError, match=r"on 50,000 locations needs dense 50,000 x 50,000 steps: about 120.0 GB \(6 matrices of 20.00 GB\)"):
        priors.check_dense_memory(50_000, "prior gp")
