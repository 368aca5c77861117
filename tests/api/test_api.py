"""The Python API (`import surrogate as sg`): domains, the prior registry, train/check/save/load, fit with a formula,
its outputs, and its refusals (each naming the parameter and the value found, with nothing written)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ENGINE
from maps import write_squares

import surrogate as sg
from surrogate.cli import main
from surrogate.errors import SurrogateError

SAMPLER = {"chains": 2, "warmup": 150, "draws": 100, "seed": 4}


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    """A 4 x 4 map written to disk, its GeoDataFrame, and a table of Poisson counts with a covariate."""
    folder = tmp_path_factory.mktemp("api")
    path = write_squares(folder / "block.geojson", 4)
    gdf = gpd.read_file(path)
    rng = np.random.default_rng(7)
    x = rng.normal(10, 3, len(gdf))
    table = pd.DataFrame({"code": gdf["code"], "cases": rng.poisson(30 * np.exp(0.05 * (x - 10))), "expected": 30.0, "x": x})
    return {"folder": folder, "path": path, "gdf": gdf.merge(table, on="code"), "table": table}


@pytest.fixture(scope="module")
def trained(block):
    """A BYM2 VAE of the block (latent auto, the path's start: 0 epochs), trained in memory from a GeoDataFrame, then saved."""
    domain = sg.Domain.from_map(block["gdf"], id="code", contiguity="rook")
    s = sg.train(sg.BYM2(), domain, model="vae", latent="auto", epochs=0, log=lambda _: None)
    return s.save(block["folder"] / "bym2-run")


def test_the_top_level_names_and_the_registry():
    assert {"Domain", "GP", "ICAR", "BYM2", "CAR", "AggGP", "train", "load", "fit", "Surrogate", "Fit", "PriorCheck"} <= set(dir(sg))
    assert sg.prior_class("bym2") is sg.BYM2 and sg.BYM2.program == "areas_bym2" and sg.BYM2.hyper.posterior == "rho"
    assert sg.GP.hyper.posterior == "ell" and sg.ICAR.hyper is None and sg.AggGP.program is None
    with pytest.raises(SurrogateError, match=r"unknown prior 'sar'; valid names: agg-gp, bym2, car, gp, hsgp, icar"):
        sg.prior_class("sar")
    with pytest.raises(SurrogateError, match=r"rho must lie in \[0, 1\], found 0.5,1.5"):
        sg.BYM2(rho=(0.5, 1.5))
    with pytest.raises(SurrogateError, match=r"unknown kernel 'cubic'"):
        sg.GP("cubic")


def test_domains_from_files_and_frames_agree(block):
    from_file = sg.Domain.from_map(block["path"], id="code", contiguity="rook")
    from_frame = sg.Domain.from_map(block["gdf"], id="code", contiguity="rook")
    assert from_file.content_hash() == from_frame.content_hash() and from_frame.id_column == "code"
    sites = sg.Domain.from_points(pd.DataFrame({"site": ["a", "b", "c"], "x": [0, 1, 2.0], "y": [0, 1, 0.5]}), id="site")
    assert sites.kind == "points" and sites.ids == ("a", "b", "c")
    grid = sg.Domain.grid(5)
    assert grid.kind == "grid" and grid.size == 25 and len(grid.edges) == 40
    with pytest.raises(SurrogateError, match=r"has no id column 'FIPS'; its columns: code"):
        sg.Domain.from_map(block["gdf"], id="FIPS")
    with pytest.raises(SurrogateError, match=r"a map must be a GeoDataFrame or a file path, found list"):
        sg.Domain.from_map([1, 2])


def test_train_check_save_and_load(trained, block):
    assert trained.latent == 16 and trained.run_dir == block["folder"] / "bym2-run" and (trained.run_dir / "domain.gpkg").is_file()
    check = trained.check(draws=400)
    assert isinstance(check, sg.PriorCheck) and check.passed and check.prior == "bym2" and check.latent == 16
    assert check.checks[0]["cov_error"] <= max(0.2, check.checks[0]["cov_error_floor"]) and "cov error" in str(check)
    assert list(check.table().columns[:2]) == ["value", "cov_error"]
    again = sg.load(trained.run_dir)
    assert again.domain.content_hash() == trained.domain.content_hash() and again.prior.kind == "bym2"
    path = again.export(block["folder"] / "exported" / "decoder.json")
    assert path.is_file() and path.with_name("decoder.meta.json").is_file()
    meta = __import__("json").loads(path.with_name("decoder.meta.json").read_text())
    assert meta["check_prior"]["passed"] is True


def test_bad_input_is_named_and_nothing_is_written(block, trained, tmp_path):
    domain = sg.Domain.from_map(block["path"], id="code", contiguity="rook")
    out = tmp_path / "fit"
    cases = [
        (dict(prior="sar"), r"unknown prior 'sar'; valid names: agg-gp, bym2, car, gp, hsgp, icar"),
        (dict(formula="cases ~ x + UNEMP"), r"the data have no column 'UNEMP'; its columns: code, cases, expected, x"),
        (dict(formula="cases ~ x + offset(log(zero))"), r"offset\(log\(zero\)\): column 'zero' must be positive where 'cases' is observed; found 0 at area A03"),
        (dict(family="negbin"), r"unknown family 'negbin'; valid names: poisson, binomial, gaussian"),
        (dict(family="binomial"), r"family binomial needs trials=COLUMN"),
        (dict(threshold=0), r"threshold must be a positive relative risk, found 0"),
        (dict(prior=sg.AggGP()), r"prior agg-gp has no exact Stan program"),
    ]
    table = block["table"].assign(zero=np.where(np.arange(16) == 3, 0.0, 1.0))
    for change, message in cases:
        args = {"formula": "cases ~ x + offset(log(expected))", "prior": "bym2", **change}
        with pytest.raises(SurrogateError, match=message):
            sg.fit(args.pop("formula"), table, domain, out=out, **args, **SAMPLER)
        assert not out.exists()
    other = sg.Domain.from_map(write_squares(tmp_path / "other.geojson", 4, id_name="code"), id="code", contiguity="queen")
    with pytest.raises(SurrogateError, match=r"was trained on another domain .*rook contiguity, the map is read with queen"):
        sg.fit("cases ~ x + offset(log(expected))", table, other, prior=trained, out=out, **SAMPLER)
    with pytest.raises(SurrogateError, match=r"latent must be a positive integer or 'auto', found 'many'"):
        sg.train(sg.BYM2(), domain, latent="many", out=tmp_path / "run")
    assert not out.exists() and not (tmp_path / "run").exists()


@pytest.mark.stan
def test_api_fit_gives_the_cli_draws_and_its_outputs(block, trained, tmp_path):
    """The same surrogate fit through sg.fit (a formula) and `surrogate fit` (flags): the same draws for the same seed."""
    domain = sg.Domain.from_map(block["path"], id="code", contiguity="rook")
    fit = sg.fit("cases ~ x + offset(log(expected))", block["table"], domain, prior=trained, engine=ENGINE, threshold=1.1, **SAMPLER)
    block["table"].to_csv(tmp_path / "data.csv", index=False)
    decoder = trained.decoder_json()
    args = ["fit", str(tmp_path / "data.csv"), "--map", str(block["path"]), "--id-column", "code", "--counts", "cases", "--exposure", "expected",
            "--covariates", "x", "--model", "surrogate", "--decoder", str(decoder), "--chains", "2", "--warmup", "150", "--draws", "100",
            "--seed", "4", "--engine", ENGINE, "--out", str(tmp_path / "cli")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cli = __import__("arviz").from_netcdf(tmp_path / "cli" / "posterior.nc")
    for name in ("eta", "beta", "sigma_field", "intercept"):
        np.testing.assert_array_equal(fit.idata.posterior[name].values, cli.posterior[name].values)
    areas = fit.areas
    assert isinstance(areas, gpd.GeoDataFrame) and len(areas) == 16 and areas.crs == domain.geometry.crs
    assert {"code", "rr_mean", "rr_q05", "rr_q95", "p_rr_gt_1.1", "expected", "geometry"} <= set(areas.columns)
    rr = fit.idata.posterior["rr"].values.reshape(-1, 16)
    np.testing.assert_allclose(areas["p_rr_gt_1.1"], (rr > 1.1).mean(0))
    assert (areas["rr_q05"] <= areas["rr_mean"]).all() and (areas["rr_mean"] <= areas["rr_q95"]).all()
    assert list(fit.summary().index[:2]) == ["intercept", "beta_original[x]"]
    assert type(areas.explore()).__name__ == "Map"  # geopandas' interactive map (folium)
    fig = fit.plot_map()
    labels = [t.get_text() for t in fig.axes[3].get_yticklabels()]  # the rr colour bar (after the three maps)
    assert "1" in labels and not any("times" in t or "^" in t for t in labels), labels
    report = fit.report(tmp_path / "api")
    assert report.name == "report.html" and (tmp_path / "api" / "areas.csv").is_file() and (tmp_path / "api" / "maps.png").is_file()


def test_a_configuration_is_checked_without_reading_its_map(tmp_path):
    """Settings are validated when built (named errors); the map is read lazily, when training starts, before anything is written."""
    from surrogate.nn.config import TrainConfig
    from surrogate.nn.train import train

    config = TrainConfig(prior="bym2", map=str(tmp_path / "none.geojson"), id_column="code", model="vae")
    with pytest.raises(SurrogateError, match=r"map .*none.geojson does not exist"):
        train(config, tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(SurrogateError, match=r"rho must lie in \[0, 1\], found 0.2,1.2"):
        TrainConfig(prior="bym2", map="any.geojson", rho=(0.2, 1.2))
    with pytest.raises(SurrogateError, match=r"prior icar has no hyperparameter \(icar\)"):
        TrainConfig(prior="icar", map="any.geojson", model="cvae")


def test_nested_settings_name_the_field_and_reach_the_run(block, tmp_path):
    settings = sg.TrainSettings(data=sg.DataSettings(epoch_size=300, valid_size=50), model=sg.ModelSettings(kind="vae", latent=8, hidden=(32,)),
                                optim=sg.OptimSettings(epochs=1, batch_size=64, seed=3))  # fmt: skip
    domain = sg.Domain.from_map(block["path"], id="code", contiguity="rook")
    s = sg.train(sg.BYM2(), domain, settings=settings, out=tmp_path / "run", log=lambda _: None)
    assert s.settings == settings and (s.config.latent, s.config.epoch_size, s.config.hidden, s.config.seed) == (8, 300, (32,), 3)
    assert sg.train(sg.BYM2(), domain, settings=settings, epochs=0, seed=5, log=lambda _: None).settings.optim.seed == 5
    for build, message in ((lambda: sg.ModelSettings(latent=0), r"model.latent must be a positive integer, found 0"),
                           (lambda: sg.ModelSettings(kind="gan"), r"model.kind must be one of vae, cvae, found 'gan'"),
                           (lambda: sg.OptimSettings(lr=-1), r"optim.lr must be a positive number, found -1"),
                           (lambda: sg.DataSettings(epoch_size=0), r"data.epoch_size must be a positive integer, found 0"),
                           (lambda: sg.TrainSettings(model=sg.OptimSettings()), r"settings.model must be a ModelSettings, found OptimSettings")):
        with pytest.raises(SurrogateError, match=message):
            build()


@pytest.mark.stan
def test_a_grid_is_one_more_domain(tmp_path):
    """The same sg.fit on a 6 x 6 grid (exact GP, a known truth scored as gp-fit scores it): sites and cells are areas without polygons."""
    import torch

    domain = sg.Domain.grid(6)
    gp = sg.GP("matern32", lengthscale=(0.2, 0.6))
    f = gp.on(domain).sample(1, torch.Generator().manual_seed(2), value=0.4)[0][0].double().numpy()
    rng = np.random.default_rng(1)
    eta = 1.0 + 0.5 * f
    table = pd.DataFrame({"id": domain.ids, "cases": rng.poisson(np.exp(eta) * 20), "pop": 20.0})
    fit = sg.fit("cases ~ offset(log(pop))", table, domain, prior=gp, engine=ENGINE, truth=eta, chains=2, warmup=200, draws=200, seed=3)
    d = fit.diagnostics
    assert d["program"] == "areas_gp.stan" and d["areas"] == 36 and "rmse" in d and 0.5 <= d["coverage90"] <= 1.0 and d["rmse"] < 0.3
    assert "vs the truth        RMSE" in str(fit) and "ell" in fit.idata.posterior
    areas = fit.areas
    assert len(areas) == 36 and set(areas.geom_type) == {"Point"} and areas.crs is None
    assert fit.idata.attrs["sampler_adapt_delta"] == "0.8"  # Stan's default for an exact model
    # a CVAE surrogate of the same prior (its path alone: nothing trained) samples at adapt_delta 0.9 unless told
    s = sg.train(gp, domain, log=lambda _: None)
    assert s.config.model == "cvae"
    sampler = dict(engine=ENGINE, chains=2, warmup=150, draws=100, seed=3)
    assert sg.fit("cases ~ offset(log(pop))", table, domain, prior=s, **sampler).idata.attrs["sampler_adapt_delta"] == "0.9"
    told = sg.fit("cases ~ offset(log(pop))", table, domain, prior=s, adapt_delta=0.85, **sampler)
    assert told.idata.attrs["sampler_adapt_delta"] == "0.85"


def test_saving_and_reporting_refuse_places_that_would_lose_or_scatter_files(trained, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(SurrogateError, match=r"exists and is not an empty folder"):
        trained.save(tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me" and not (tmp_path / "busy.partial").exists()
    with pytest.raises(SurrogateError, match=r"already holds a run"):
        trained.save(trained.run_dir)
    fit = sg.Fit.__new__(sg.Fit)
    fit.result = type("R", (), {"out": None})()
    with pytest.raises(SurrogateError, match=r"path is the fit folder the report is written into .* found a file name 'report.html'"):
        fit.report("report.html")
    with pytest.raises(SurrogateError, match=r"report needs a folder: give path, or save the fit first"):
        fit.report()


def test_sites_with_their_own_coordinate_names_train_and_reload(tmp_path):
    sites = pd.DataFrame({"site": [f"s{i}" for i in range(12)], "east": np.arange(12.0) % 4, "north": np.arange(12.0) // 4})
    sites.to_csv(tmp_path / "sites.csv", index=False)
    domain = sg.Domain.from_points(tmp_path / "sites.csv", id="site", x="east", y="north")
    s = sg.train(sg.GP("matern32", lengthscale=(0.5, 2.0)), domain, latent=6, epochs=0, out=tmp_path / "run", log=lambda _: None)
    again = sg.load(tmp_path / "run")
    assert again.domain.content_hash() == domain.content_hash() == s.domain.content_hash() and (tmp_path / "run" / "domain.csv").is_file()
