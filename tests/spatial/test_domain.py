"""Domains read from real files: a GeoJSON map the test writes, sites from a CSV, a grid."""

import json

import numpy as np
import pytest
from maps import expected_pairs, pairs_of, write_squares

from surrogate.errors import SurrogateError
from surrogate.spatial.domain import check_same_domain, grid_domain, load_domain, read_map, read_points


@pytest.fixture
def squares(tmp_path):
    return write_squares(tmp_path / "squares.geojson", 3, island=True)


def test_queen_and_rook_neighbours_of_a_written_map(squares):
    queen = read_map(squares, "code")
    rook = read_map(squares, "code", "rook")
    assert queen.size == rook.size == 10 and queen.kind == "areas"
    assert pairs_of(queen) == expected_pairs(3, queen=True)  # 12 edges + 8 corners
    assert pairs_of(rook) == expected_pairs(3, queen=False)
    assert queen.islands() == rook.islands() == ["ISLE"]
    assert [len(c) for c in queen.components()] == [9, 1]
    np.testing.assert_allclose(queen.coords[queen.ids.index("A12")], [2.5, 1.5])  # the centroid of square (row 1, col 2)
    np.testing.assert_allclose(queen.areas, 1.0)
    assert queen.degrees[queen.ids.index("A11")] == 8 and rook.degrees[rook.ids.index("A11")] == 4


def test_content_hash_follows_the_content(tmp_path, squares):
    a, b = read_map(squares, "code"), read_map(squares, "code")
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != read_map(squares, "code", "rook").content_hash()
    other = write_squares(tmp_path / "other.geojson", 3, island=False)
    c = read_map(other, "code")
    assert c.content_hash() != a.content_hash()
    with pytest.raises(SurrogateError, match=r"trained on 10 locations, the map has 9"):
        check_same_domain(a.to_dict(), c, "decoder d.json")
    check_same_domain(a.to_dict(), b, "decoder d.json")  # the same map passes


def test_another_map_with_the_same_size_names_the_ids(tmp_path, squares):
    recorded = read_map(squares, "code").to_dict()
    renamed = json.loads(squares.read_text())
    renamed["features"][0]["properties"]["code"] = "B00"
    path = tmp_path / "renamed.geojson"
    path.write_text(json.dumps(renamed))
    with pytest.raises(SurrogateError, match=r"ids differ: decoder x has A00 that the map lacks; the map has B00"):
        check_same_domain(recorded, read_map(path, "code"), "decoder x")


def test_bad_maps_are_clear_errors(tmp_path, squares):
    with pytest.raises(SurrogateError, match=r"map .*missing.geojson does not exist"):
        read_map(tmp_path / "missing.geojson", "code")
    garbage = tmp_path / "garbage.geojson"
    garbage.write_text("this is not a map")
    with pytest.raises(SurrogateError, match=r"cannot read map .*garbage.geojson"):
        read_map(garbage, "code")
    with pytest.raises(SurrogateError, match=r"has no id column 'FIPS'; its columns: code, row, col"):
        read_map(squares, "FIPS")
    with pytest.raises(SurrogateError, match=r"give id=COLUMN"):
        read_map(squares, None)
    dup = json.loads(squares.read_text())
    dup["features"][1]["properties"]["code"] = "A00"
    (tmp_path / "dup.geojson").write_text(json.dumps(dup))
    with pytest.raises(SurrogateError, match=r"duplicate ids: A00"):
        read_map(tmp_path / "dup.geojson", "code")
    with pytest.raises(SurrogateError, match=r"unknown contiguity 'bishop'; valid names: fuzzy, queen, rook"):
        read_map(squares, "code", "bishop")


def test_points_and_grid_domains(tmp_path):
    sites = tmp_path / "sites.csv"
    sites.write_text("id,x,y\ns1,0,0\ns2,3,4\ns3,1,1\n")
    d = read_points(sites)
    assert d.ids == ("s1", "s2", "s3") and not d.has_adjacency and d.extent == pytest.approx(5.0)
    sites.write_text("id,x,y\ns1,0,0\ns1,3,4\n")
    with pytest.raises(SurrogateError, match=r"duplicate ids: s1"):
        read_points(sites)
    sites.write_text("id,x\ns1,0\n")
    with pytest.raises(SurrogateError, match=r"no coordinate column 'y'"):
        read_points(sites)
    g = grid_domain(4)
    assert g.size == 16 and len(g.edges) == 24 and g.kind == "grid"
    with pytest.raises(SurrogateError, match=r"give exactly one domain: map=FILE, points=FILE or grid=N; found map, grid"):
        load_domain(map_path="x.shp", grid=3)
