"""The bundled North Carolina SIDS map (libpysal's sids2) through the library: counts, adjacency, expected counts."""

import numpy as np
import pytest

from surrogate.spatial.data import read_area_data, read_table
from surrogate.spatial.domain import read_map


@pytest.fixture(scope="module")
def sids():
    from libpysal import examples

    return examples.get_path("sids2.shp"), examples.get_path("sids2.gal")


def test_counts_and_expected_counts(sids):
    shp, _ = sids
    domain = read_map(shp, "FIPS", "rook")
    data = read_area_data(shp, domain, "FIPS", counts="SID74", population="BIR74", covariates=("NWR74",))
    assert domain.size == data.n_obs == 100
    assert data.counts.sum() == 667  # SIDS deaths 1974-78 (Cressie 1993)
    table = read_table(shp).set_index("FIPS").loc[list(domain.ids)]
    assert table["BIR74"].sum() == 329962
    np.testing.assert_allclose(data.expected, table["BIR74"].to_numpy() * 667 / 329962)
    assert data.expected.sum() == pytest.approx(667)
    assert data.counts[domain.ids.index("37119")] == 44  # Mecklenburg


def test_rook_contiguity_is_the_gal_file(sids):
    import libpysal

    shp, gal = sids
    w = libpysal.io.open(gal).read()
    rook, queen = read_map(shp, "FIPS", "rook"), read_map(shp, "FIPS", "queen")
    pairs = {tuple(sorted((a, b))) for a in w.neighbors for b in w.neighbors[a]}
    assert {tuple(sorted((rook.ids[i], rook.ids[j]))) for i, j in rook.edges} == pairs  # the same 231 pairs
    degrees = np.array([w.cardinalities[i] for i in rook.ids])
    np.testing.assert_array_equal(rook.degrees, degrees)
    assert (degrees.min(), degrees.max(), degrees.mean()) == (2, 9, 4.62)
    assert len(queen.edges) == 245 and not rook.islands() and len(rook.components()) == 1
