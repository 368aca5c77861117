"""Space-time disease maps: long tables on a map (real NC SIDS and St. Louis homicides), their refusals, and the exact
and surrogate area x period models in Stan on a known space-time field."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ENGINE

import surrogate as sg
from surrogate.errors import SurrogateError
from surrogate.spatial.spacetime import spacetime_data
from surrogate.tasks.spacetime_fit import check_structure, simulate


@pytest.fixture(scope="module")
def stl():
    gdf, table = sg.datasets.stl_homicides()
    return sg.Domain.from_map(gdf, id="FIPS"), table, gdf


def test_bundled_tables_are_long_with_expected_counts():
    for fn, outcome, periods, areas in ((sg.datasets.nc_sids, "SID", 2, 100), (sg.datasets.stl_homicides, "HC", 3, 78)):
        gdf, table = fn()
        assert len(gdf) == areas and len(table) == areas * periods
        assert sorted(table["period"].unique()) == list(range(1, periods + 1))
        assert table["E"].sum() == pytest.approx(table[outcome].sum())  # internal standardisation over all area-periods
        assert (table["E"] > 0).all()


def test_cells_are_ordered_period_by_period(stl):
    domain, table, _ = stl
    data = spacetime_data(table, domain, "FIPS", "period", counts="HC", exposure="E", covariates=("RDAC",))
    assert (data.D, data.T, data.n_obs) == (78, 3, 234) and list(data.periods) == [1, 2, 3]
    area, period = data.area_period(data.cells.obs_idx)
    row = table.set_index(["FIPS", "period"])
    for k in (0, 100, 233):  # the outcome and covariate of a cell are its row's
        a, t = domain.ids[area[k]], int(data.periods[period[k]])
        assert data.cells.counts[k] == row.loc[(a, t), "HC"]
        x = data.cells.X[data.cells.obs_idx[k], 0] * data.cells.x_sd[0] + data.cells.x_mean[0]
        assert x == pytest.approx(row.loc[(a, t), "RDAC"])
    assert np.exp(data.cells.log_offset).sum() == pytest.approx(table["HC"].sum())
    assert data.cell_labels([0, 78 * 2 + 1]) == [f"{domain.ids[0]} @ 1", f"{domain.ids[1]} @ 3"]


def test_missing_outcomes_and_forecast_periods_are_predicted(stl):
    domain, table, _ = stl
    blank = table.copy()
    blank.loc[blank["period"] == 3, "HC"] = np.nan
    data = spacetime_data(blank, domain, "FIPS", "period", counts="HC", exposure="E", covariates=("RDAC",))
    assert data.T == 3 and data.n_obs == 156 and data.cells.obs_idx.max() < 156
    data = spacetime_data(table, domain, "FIPS", "period", counts="HC", exposure="E", forecast=2)
    assert list(data.periods) == [1, 2, 3, 4, 5] and data.n_obs == 234 and data.forecast == 2


def test_bad_space_time_tables_are_named(stl):
    domain, table, _ = stl

    def refused(tab, match, **kw):
        with pytest.raises(SurrogateError, match=match):
            spacetime_data(tab, domain, "FIPS", "period", counts="HC", exposure="E", **kw)

    refused(table[table["period"] != 2], r"period column 'period' has gaps: no rows for 2 between 1 and 3")
    mixed = table.astype({"period": object})
    mixed.loc[5, "period"] = "1984-88"
    refused(mixed, r"must hold numbers .* found '1984-88' \(mixed types: int, str\)")
    refused(table.assign(period=table["period"] + 0.5), r"whole numbers, found 1.5")
    refused(table.assign(period=table["period"].where(table.index != 3)), r"1 missing value")
    refused(pd.concat([table, table.iloc[[7]]]), rf"1 \(area, period\) pair\(s\) have more than one row .*{table['FIPS'][7]} in period 1")
    refused(table.assign(FIPS=table["FIPS"].where(table.index != 0, "99999")), r"id\(s\) in column 'FIPS' are not areas of the map.*99999")
    refused(table, r"forecast=1 with covariates: .* add rows for periods 4", covariates=("RDAC",), forecast=1)
    refused(table, r"forecast must be a whole number of periods >= 0, found -1", forecast=-1)
    with pytest.raises(SurrogateError, match=r"temporal='ar1' needs two or more periods; the data have one"):
        check_structure("none", "ar1", 1)
    with pytest.raises(SurrogateError, match=r"interaction='ar1' \(AR1 fields\) needs two or more periods"):
        check_structure("ar1", "rw1", 1)
    with pytest.raises(SurrogateError, match=r"unknown interaction 'V'; valid names: I, II, III, IV, ar1, none"):
        check_structure("V", "rw1", 3)
    with pytest.raises(SurrogateError, match=r"give time=COLUMN"):
        sg.fit("HC ~ RDAC + offset(log(E))", table, domain, prior="bym2", interaction="IV")


def test_simulated_table_is_long_and_matches_its_truth():
    domain = sg.Domain.grid(4)
    table, eta = simulate(domain, 3, seed=2)
    assert eta.shape == (16, 3) and len(table) == 48
    assert set(table.columns) == {"id", "period", "y", "E", "x"}
    assert np.corrcoef(np.log((table["y"] + 0.5) / table["E"]), eta.T.ravel())[0, 1] > 0.8


# ----------------------------------------------------------------------------
# Stan: exact and surrogate area x period models


SAMPLER = {"chains": 2, "warmup": 400, "draws": 400, "seed": 3}


@pytest.fixture(scope="module")
def grid_fits(tmp_path_factory):
    """A known field of AR1 fields (rho 0.7) of BYM2 fields on a 6 x 6 grid over 4 periods, fitted exactly and with a BYM2-VAE
    trained on the grid (the path's start, 2 epochs), both with the AR1-fields model."""
    domain = sg.Domain.grid(6)
    table, eta = simulate(domain, 4, rho_fields=0.7, seed=1)
    folder = tmp_path_factory.mktemp("spacetime")
    s = sg.train(sg.BYM2(), domain, epochs=2, out=folder / "run", log=lambda _: None)
    fits = {}
    for name, prior in (("exact", "bym2"), ("surrogate", s)):
        fits[name] = sg.fit("y ~ x + offset(log(E))", table, domain, prior=prior, time="period", interaction="ar1", truth=eta,
                            engine=ENGINE, out=folder / name, **SAMPLER)  # fmt: skip
    return fits, eta, folder


@pytest.mark.stan
def test_exact_and_surrogate_recover_a_known_space_time_field(grid_fits):
    fits, eta, _ = grid_fits
    means = {}
    for name, fit in fits.items():
        d = fit.diagnostics
        assert d["divergences"] == 0 and d["max_rhat"] < 1.06, name
        assert 0.8 <= d["coverage90"] <= 1.0 and d["rmse"] < 0.3, name  # one replicate (bench_spacetime: 0.85-0.95 over many)
        lo, hi = d["rho_fields"]["interval90"]
        assert lo < 0.7 < hi, name  # the AR1 autocorrelation of the fields
        assert fit.idata.posterior["eta"].dims[-2:] == ("area", "period")
        means[name] = fit.idata.posterior["eta"].mean(("chain", "draw")).values
    assert np.abs(means["exact"] - means["surrogate"]).max() < 0.1
    assert np.median(np.abs(means["exact"] - means["surrogate"])) < 0.03


@pytest.mark.stan
def test_space_time_outputs_tables_maps_and_report(grid_fits):
    fits, _, folder = grid_fits
    fit = fits["surrogate"]
    for name in ("posterior.nc", "summary.csv", "diagnostics.json", "cells.csv", "trends.csv", "maps_periods.png", "trends.png"):
        assert (folder / "surrogate" / name).is_file(), name
    cells = pd.read_csv(folder / "surrogate" / "cells.csv")
    assert len(cells) == 36 * 4 and cells["observed"].all() and {"rr_mean", "rr_q05", "rr_q95", "p_rr_gt_1"} <= set(cells.columns)
    assert (cells["rr_q05"] <= cells["rr_mean"]).all() and (cells["rr_mean"] <= cells["rr_q95"]).all()
    trends = fit.trends
    assert len(trends) == 36 and ((trends["p_trend_gt_0"] >= 0) & (trends["p_trend_gt_0"] <= 1)).all()
    assert len(fit.cells) == 144 and fit.cells.geometry.notna().all()
    diag = json.loads((folder / "surrogate" / "diagnostics.json").read_text())
    assert diag["kind"] == "spacetime" and diag["interaction"] == "ar1" and diag["periods"] == 4 and np.isfinite(diag["elpd_loo"])
    html = fit.report(folder / "surrogate")
    text = html.read_text()
    assert "maps_periods.png" in text or "Maps per period" in text
    fig = fit.plot_trends(["0", "35"])
    assert len([ax for ax in fig.axes if ax.has_data()]) == 2
    with pytest.raises(SurrogateError, match=r"trend areas must be ids of the map, found nowhere"):
        fit.plot_trends(["nowhere"])


@pytest.mark.stan
def test_cli_fits_a_long_table_with_a_forecast(tmp_path, stl):
    from surrogate.cli import main

    domain, table, gdf = stl
    gdf.to_file(tmp_path / "stl.gpkg")
    table[["FIPS", "period", "HC", "E"]].to_csv(tmp_path / "stl.csv", index=False)
    out = tmp_path / "fit"
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "stl.csv"), "--map", str(tmp_path / "stl.gpkg"), "--id-column", "FIPS",
                                       "--counts", "HC", "--exposure", "E", "--time-column", "period", "--model", "icar",
                                       "--interaction", "II", "--forecast", "1", "--chains", "1", "--warmup", "150", "--draws", "100",
                                       "--engine", ENGINE, "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "type II interaction" in result.output and "234 of 78 x 4 area-periods observed" in result.output
    cells = pd.read_csv(out / "cells.csv")
    last = cells[cells["period"] == 4]
    assert len(last) == 78 and last["forecast"].all() and not last["observed"].any() and last["rr_mean"].gt(0).all()
    # the forecast period is wider than the observed ones
    assert last["eta_sd"].median() > cells.loc[cells["period"] == 3, "eta_sd"].median()
    bad = CliRunner().invoke(main, ["fit", str(tmp_path / "stl.csv"), "--map", str(tmp_path / "stl.gpkg"), "--id-column", "FIPS",
                                    "--counts", "HC", "--exposure", "E", "--model", "icar", "--interaction", "IV", "--out", str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code != 0 and "give --time-column" in bad.output and not (tmp_path / "x").exists()
