"""Spatial priors drawn exactly: covariances against the models', scaling factors, island rules."""

import numpy as np
import pytest
import torch
from maps import write_squares

from surrogate.errors import SurrogateError
from surrogate.spatial.domain import read_map
from surrogate.spatial.priors import SpatialPrior, icar_precision, scaling_factor

DRAWS = 40_000  # relative Frobenius error of an empirical covariance of 10 areas: about sqrt(2 / DRAWS) * 3


@pytest.fixture(scope="module")
def island_map(tmp_path_factory):
    return read_map(write_squares(tmp_path_factory.mktemp("maps") / "m.geojson", 3, island=True), "code", "rook")


def empirical_error(prior, value=None):
    f, _ = prior.sample(DRAWS, torch.Generator().manual_seed(7), value=value)
    emp = np.cov(f.double().numpy().T)
    model = prior.covariance(value)
    return np.linalg.norm(emp - model) / np.linalg.norm(model), model


def test_scaling_factor_closed_form():
    # two areas: Q = [[1, -1], [-1, 1]]; under sum-to-zero phi = (a, -a) with var(a) = 1/4
    assert scaling_factor(icar_precision(2, np.array([[0, 1]]))) == pytest.approx(0.25)
    # a path of three: the generalised inverse's diagonal is (5, 2, 5) / 9
    assert scaling_factor(icar_precision(3, np.array([[0, 1], [1, 2]]))) == pytest.approx((5 * 2 * 5 / 9**3) ** (1 / 3))


@pytest.mark.parametrize("kind, value", [("icar", None), ("bym2", 0.7), ("car", 0.9), ("gp", 1.5)])
def test_draws_have_the_model_covariance(island_map, kind, value):
    prior = SpatialPrior(kind, island_map, "matern32", None if value is None else (0.1 if kind == "car" else 0.0, value) if kind != "gp" else (0.5, 3.0),
                         islands="independent")  # fmt: skip
    error, model = empirical_error(prior, value)
    assert error < 0.05
    if kind == "icar":
        block = [island_map.ids.index(f"A{i}{j}") for i in range(3) for j in range(3)]
        assert np.abs(model[np.ix_(block, block)].sum(1)).max() < 1e-9  # sum to zero on the component
        assert np.exp(np.mean(np.log(np.diag(model)[block]))) == pytest.approx(1.0)  # Riebler scaling
        assert model[island_map.ids.index("ISLE"), island_map.ids.index("ISLE")] == pytest.approx(1.0)
    if kind == "car":
        W = island_map.adjacency()
        deg = W.sum(1)
        deg[deg == 0] = 1
        np.testing.assert_allclose(model, np.linalg.inv(np.diag(deg) - value * W))


def test_condition_is_drawn_in_its_range(island_map):
    prior = SpatialPrior("car", island_map, condition=(0.2, 0.8), islands="independent")
    _, alpha = prior.sample(64, torch.Generator().manual_seed(1))
    assert 0.2 <= alpha.min() and alpha.max() <= 0.8 and len(set(alpha.tolist())) > 1


def test_island_rules(island_map):
    with pytest.raises(SurrogateError, match=r"1 island\(s\) without neighbours \(ISLE\); prior icar needs a rule: islands='independent'"):
        SpatialPrior("icar", island_map)
    near = SpatialPrior("icar", island_map, islands="nearest")
    assert near.graph.added == (("ISLE", "A02"),) and len(near.graph.components) == 1 and near.graph.islands.size == 0
    indep = SpatialPrior("bym2", island_map, islands="independent")
    assert [len(c) for c in indep.graph.components] == [9] and indep.graph.islands.tolist() == [island_map.ids.index("ISLE")]


def test_agg_gp_averages_a_fine_grid(island_map):
    prior = SpatialPrior("agg-gp", island_map, "rbf", (1.0, 1.0), agg_grid=25)
    pts, A = prior.aggregation
    np.testing.assert_allclose(A.sum(1), 1.0)
    assert (A > 0).sum(1).min() >= 4  # every unit square holds several fine-grid points
    error, _ = empirical_error(prior)
    assert error < 0.05


def test_bad_hyperparameters(island_map):
    with pytest.raises(SurrogateError, match=r"alpha must lie in \[0, 1\), found 0.5,1.0"):
        SpatialPrior("car", island_map, condition=(0.5, 1.0), islands="independent")
    with pytest.raises(SurrogateError, match=r"unknown prior 'sar'; valid names: agg-gp, bym2, car, gp, hsgp, icar"):
        SpatialPrior("sar", island_map)


def test_hsgp_basis_follows_the_rules_and_refuses_bad_settings():
    """The HSGP's default basis is Riutort-Mayol et al.'s rule in the sites' half-range; m and c can be set; bad values
    and a basis too large are refused, naming them; it forms no dense N x N matrix, so it has no dense-memory guard."""
    import pandas as pd

    import surrogate as sg
    from surrogate.priors.hsgp import basis_size

    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 2, (60, 2))  # half-range about 1
    domain = sg.Domain.from_points(pd.DataFrame({"id": [f"s{i}" for i in range(60)], "x": pts[:, 0], "y": pts[:, 1]}))
    half = float((pts.max(0) - pts.min(0)).max() / 2)
    bound = sg.HSGP(lengthscale=(0.2, 0.6)).on(domain)
    m, c = bound.spec.basis(bound)
    assert (m, c) == basis_size("matern32", 0.2, 0.6, half) and m == int(np.ceil(3.42 * c * half / 0.2))
    data = bound.exact_data()
    assert data["M"] == m and data["c_boundary"] == c and data["x"].shape == (60, 2)
    assert sg.HSGP(lengthscale=(0.2, 0.6), m=12, c=1.5).on(domain).exact_data() | {} == data | {"M": 12, "c_boundary": 1.5}
    assert not sg.HSGP.dense and sg.GP.dense
    with pytest.raises(SurrogateError, match="m must be a positive integer, found 0"):
        sg.HSGP(m=0)
    with pytest.raises(SurrogateError, match=r"c \(the HSGP's boundary factor\) must be a number >= 1, found 0.5"):
        sg.HSGP(c=0.5)
    with pytest.raises(SurrogateError, match=r"needs m = \d+ basis functions per dimension \([\d,]+ in 2-D, over the 10,000 allowed\)"):
        sg.HSGP(lengthscale=(0.01, 0.6)).on(domain).exact_data()
