"""Area data matched to a map by id: offsets, standardised covariates, and every bad input named."""

import numpy as np
import pandas as pd
import pytest
from maps import write_squares

from surrogate.errors import SurrogateError
from surrogate.spatial.data import area_data, read_area_data
from surrogate.spatial.domain import read_map


@pytest.fixture(scope="module")
def domain(tmp_path_factory):
    return read_map(write_squares(tmp_path_factory.mktemp("maps") / "m.geojson", 3), "code")


def table(**changes):
    ids = [f"A{i}{j}" for i in range(3) for j in range(3)]
    t = pd.DataFrame({"code": ids, "cases": np.arange(9), "births": 100.0 * (1 + np.arange(9)), "x": np.linspace(0, 0.8, 9)[::-1]})
    for k, v in changes.items():
        t[k] = v
    return t


def test_population_gives_expected_counts_and_covariates_are_standardised(domain):
    t = table().iloc[::-1]  # row order does not matter: ids do
    d = area_data(t, domain, "code", counts="cases", population="births", covariates=("x",))
    assert d.likelihood == "poisson" and d.n_obs == 9
    assert d.expected.sum() == pytest.approx(36.0)  # the overall rate reproduces the total
    order = [domain.ids.index(i) for i in t["code"]]
    np.testing.assert_allclose(d.expected[order], t["births"] * 36 / t["births"].sum())
    np.testing.assert_allclose(np.exp(d.log_offset), d.expected)
    assert d.X.mean() == pytest.approx(0, abs=1e-12) and d.X.std() == pytest.approx(1)
    np.testing.assert_allclose(d.X[:, 0] * d.x_sd[0] + d.x_mean[0], np.linspace(0, 0.8, 9)[::-1])


def test_missing_outcomes_are_unobserved(domain):
    cases = np.arange(9, dtype=float)
    cases[4] = np.nan
    d = area_data(table(cases=cases), domain, "code", counts="cases", exposure="births")
    assert d.n_obs == 8 and 4 not in d.obs_idx
    d = area_data(table().iloc[:5], domain, "code", value="x")  # rows for 5 areas only, no covariates: fine
    assert d.likelihood == "gaussian" and d.n_obs == 5


def test_binomial_trials(domain):
    d = area_data(table(n=20), domain, "code", counts="cases", trials="n")
    assert d.likelihood == "binomial" and d.trials.tolist() == [20] * 9
    with pytest.raises(SurrogateError, match=r"trials column 'n' must hold integers >= the counts; found 5 \(counts 6\) at area A20"):
        area_data(table(n=5), domain, "code", counts="cases", trials="n")


@pytest.mark.parametrize("changes, columns, message", [
    ({"code": [f"A{i}" for i in range(9)]}, {}, r"9 id\(s\) in column 'code' are not in the domain .*: A0, A1, A2, A3, A4 \.\.\."),
    ({"code": ["A00"] * 9}, {}, r"id column 'code' has duplicate ids: A00"),
    ({"cases": -np.arange(9)}, {}, r"counts column 'cases' must be non-negative, found -8 at area A22"),
    ({"cases": np.arange(9) + 0.5}, {}, r"counts column 'cases' must hold integers, found 0.5 at area A00"),
    ({"births": np.r_[100.0, -1, np.ones(7)]}, {"population": "births"}, r"population column 'births' must be positive .* found -1 at area A01"),
    ({"x": np.r_[np.nan, np.ones(8)]}, {"covariates": ("x",)}, r"covariate 'x' has missing or non-finite values at 1 area\(s\): A00"),
    ({"x": 3.0}, {"covariates": ("x",)}, r"covariate 'x' is constant \(3 at every area\)"),
    ({}, {"covariates": ("nope",)}, r"has no covariate column 'nope'; its columns: code, cases, births, x"),
    ({}, {"exposure": "births", "offset": "x"}, r"give at most one of exposure=COLUMN, population=COLUMN and offset=COLUMN; found exposure, offset"),
])  # fmt: skip
def test_bad_data_are_named(domain, changes, columns, message):
    with pytest.raises(SurrogateError, match=message):
        area_data(table(**changes), domain, "code", counts="cases", **columns)


def test_covariates_need_every_area(domain):
    with pytest.raises(SurrogateError, match=r"covariates are needed at every area; data has no row for 4 area\(s\): A11, A12, A20, A21"):
        area_data(table().iloc[:4].pipe(lambda t: pd.concat([t, table().iloc[8:]])), domain, "code", counts="cases", covariates=("x",))


def test_read_from_csv_with_numeric_ids(tmp_path):
    csv = tmp_path / "d.csv"
    m = write_squares(tmp_path / "num.geojson", 2, id_name="fips")
    dom = read_map(m, "fips")
    pd.DataFrame({"fips": dom.ids, "cases": [1, 2, 3, 4]}).to_csv(csv, index=False)
    assert read_area_data(csv, dom, "fips", counts="cases").n_obs == 4
    with pytest.raises(SurrogateError, match=r"data file .*nothing.csv does not exist"):
        read_area_data(tmp_path / "nothing.csv", dom, "fips", counts="cases")
