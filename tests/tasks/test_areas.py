"""Maps in Stan: a briefly trained BYM2 surrogate against the exact BYM2 on a small map with a covariate,
the exact ICAR, CAR and GP programs, the `fit` command, and its refusals (nothing written)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import ENGINE
from maps import write_squares

from surrogate.cli import main
from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings
from surrogate.nn.config import TrainConfig
from surrogate.spatial.data import area_data
from surrogate.spatial.domain import read_map
from surrogate.spatial.priors import SpatialPrior
from surrogate.tasks.areas_fit import fit_areas, resolve_prior

N = 4  # a 4 x 4 block of unit squares: 16 areas
TRUTH = {"intercept": 0.1, "beta": 0.3, "sigma": 0.6, "rho": 0.7}


@pytest.fixture(scope="module")
def small_map(tmp_path_factory):
    """The map, and a table of Poisson counts simulated from a BYM2 field plus a covariate (expected 40 per area)."""
    folder = tmp_path_factory.mktemp("map")
    path = write_squares(folder / "block.geojson", N)
    domain = read_map(path, "code", "rook")
    prior = SpatialPrior("bym2", domain)
    f = TRUTH["sigma"] * prior.sample(1, torch.Generator().manual_seed(5), value=TRUTH["rho"])[0][0].double().numpy()
    rng = np.random.default_rng(3)
    x = rng.normal(10.0, 4.0, domain.size)  # a covariate on its own scale (sd 4)
    eta = TRUTH["intercept"] + TRUTH["beta"] * (x - x.mean()) / x.std() + f
    expected = np.full(domain.size, 40.0)
    table = pd.DataFrame({"code": domain.ids, "cases": rng.poisson(expected * np.exp(eta)), "expected": expected, "x": x})
    table.to_csv(folder / "data.csv", index=False)
    return {"path": path, "domain": domain, "table": table, "eta": eta, "csv": folder / "data.csv", "folder": folder}


@pytest.fixture(scope="module")
def bym2_decoder(small_map):
    """A BYM2 VAE on the map (latent 16: full rank, as the prior's spectrum asks), trained for real in a few seconds, exported."""
    from surrogate.nn.export import export_decoder
    from surrogate.nn.train import train

    out = small_map["folder"] / "run-bym2"
    config = TrainConfig(prior="bym2", map=str(small_map["path"]), id_column="code", contiguity="rook", model="vae", hidden=(128, 64),
                         latent=16, epochs=20, epoch_size=5000, valid_size=500, seed=2)  # fmt: skip
    train(config, out, log=lambda _: None, progress=False)
    export_decoder(out)
    return out / "decoder.json"


def data_of(small_map):
    return area_data(small_map["table"], small_map["domain"], "code", counts="cases", exposure="expected", covariates=("x",))


@pytest.fixture(scope="module")
def surrogate_and_exact(small_map, bym2_decoder):
    settings = SamplerSettings(chains=4, warmup=500, draws=500, seed=1)
    data = data_of(small_map)
    out = small_map["folder"] / "fit-surrogate"
    surrogate = fit_areas("surrogate", data, settings, ENGINE, out, decoder_json=bym2_decoder)
    exact = fit_areas("bym2", data, settings, ENGINE, None, decoder_json=bym2_decoder)  # the decoder's prior settings
    return surrogate, exact, out


@pytest.mark.stan
def test_surrogate_agrees_with_the_exact_bym2(surrogate_and_exact):
    surrogate, exact, _ = surrogate_and_exact
    for r in (surrogate, exact):
        assert r.diagnostics["max_rhat"] < 1.05 and r.diagnostics["divergences"] <= 5
    eta_s = surrogate.idata.posterior["eta"].mean(("chain", "draw")).values
    eta_e = exact.idata.posterior["eta"].mean(("chain", "draw")).values
    diff = np.abs(eta_s - eta_e)
    assert np.median(diff) <= 0.05 and diff.max() <= 0.15  # posterior mean log relative risks (issue 15's tolerances)
    es, ee = surrogate.diagnostics["covariate_effects"][0], exact.diagnostics["covariate_effects"][0]
    assert es["interval90"][0] < ee["interval90"][1] and ee["interval90"][0] < es["interval90"][1]  # the 90% intervals overlap
    # on the covariate's own scale: TRUTH["beta"] per sd of x is beta / sd(x) per unit, inside both 90% intervals
    per_unit = TRUTH["beta"] / data_sd(surrogate)
    assert ee["interval90"][0] < per_unit < ee["interval90"][1]
    assert abs(surrogate.diagnostics["elpd_loo"] - exact.diagnostics["elpd_loo"]) < 3 * exact.diagnostics["elpd_loo_se"]


def data_sd(result) -> float:
    return result.diagnostics["covariate_effects"][0]["sd_of_covariate"]


@pytest.mark.stan
def test_fit_folder_and_named_dims(surrogate_and_exact, small_map):
    surrogate, _, out = surrogate_and_exact
    post = surrogate.idata.posterior
    assert post["eta"].dims == ("chain", "draw", "area") and list(post["area"].values) == list(small_map["domain"].ids)
    assert post["beta_original"].dims == ("chain", "draw", "covariate") and list(post["covariate"].values) == ["x"]
    assert surrogate.idata.log_likelihood["log_lik"].shape == (4, 500, 16)
    np.testing.assert_allclose(post["rr"].values, np.exp(post["eta"].values), rtol=1e-6)
    for name in ("posterior.nc", "summary.csv", "diagnostics.json", "areas.csv", "maps.png", "summary.txt"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "areas.csv")
    assert len(table) == 16 and {"rr_mean", "rr_sd", "rr_q05", "rr_q95", "p_rr_gt_1", "expected"} <= set(table.columns)
    assert ((table["rr_q05"] <= table["rr_mean"]) & (table["rr_mean"] <= table["rr_q95"])).all()
    assert table["p_rr_gt_1"].between(0, 1).all()
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0 and "maps.png" in (out / "report.md").read_text()


@pytest.mark.stan
@pytest.mark.parametrize("model, hyper", [("icar", None), ("car", "alpha"), ("gp", "ell")])
def test_exact_programs_fit_the_same_data(small_map, model, hyper):
    data = data_of(small_map)
    r = fit_areas(model, data, SamplerSettings(chains=2, warmup=300, draws=300, seed=2), ENGINE,
                  condition=(0.5, 4.0) if model == "gp" else None, keep_field=model != "icar")  # fmt: skip
    post = r.idata.posterior
    assert post["eta"].shape == (2, 300, 16) and (hyper is None or post[hyper].dims == ("chain", "draw"))
    assert ("f" in post) == (model != "icar") and "rr" in post and "log_lik" in r.idata.log_likelihood  # keep_field=False: eta, rr, log_lik only
    corr = np.corrcoef(post["eta"].mean(("chain", "draw")).values, small_map["eta"])[0, 1]
    assert corr > 0.6  # each recovers the simulated field (40 expected cases per area)
    assert r.diagnostics["max_rhat"] < 1.1


@pytest.mark.stan
def test_hsgp_approximates_the_exact_gp(small_map):
    """The HSGP (its default basis for lengthscales 0.5-1.5 on the block) gives the exact GP's posterior."""
    data = data_of(small_map)
    settings = SamplerSettings(chains=2, warmup=300, draws=300, seed=2)
    exact, hsgp = (fit_areas(model, data, settings, ENGINE, condition=(0.5, 1.5)) for model in ("gp", "hsgp"))
    e, h = exact.idata.posterior["eta"], hsgp.idata.posterior["eta"]
    assert np.abs(e.mean(("chain", "draw")).values - h.mean(("chain", "draw")).values).max() < 0.1
    ratio = h.std(("chain", "draw")).values / e.std(("chain", "draw")).values
    assert 0.8 < ratio.min() and ratio.max() < 1.25
    assert hsgp.diagnostics["hsgp_basis"] == {"m": 47, "c": 4.5, "functions": 2209}
    assert hsgp.diagnostics["max_rhat"] < 1.1


# ----------------------------------------------------------------------------
# refusals, before any Stan work


def test_decoder_from_another_map_is_refused(small_map, bym2_decoder, tmp_path):
    other = read_map(write_squares(tmp_path / "other.geojson", 3), "code", "rook")
    data = area_data(pd.DataFrame({"code": other.ids, "cases": 1}), other, "code", counts="cases")
    with pytest.raises(SurrogateError, match=r"decoder .*decoder.json was trained on another domain .*trained on 16 locations, the map has 9"):
        resolve_prior("surrogate", data, bym2_decoder)
    with pytest.raises(SurrogateError, match=r"was trained on prior bym2; the exact model for it is model=bym2, found model=car"):
        resolve_prior("car", data_of(small_map), bym2_decoder)


def test_fit_command_refuses_bad_input_and_writes_nothing(small_map, bym2_decoder, tmp_path):
    island_map = write_squares(tmp_path / "island.geojson", 2, island=True)
    pd.DataFrame({"code": ["A00", "A01", "A10", "A11", "ISLE"], "cases": 3}).to_csv(tmp_path / "isl.csv", index=False)
    base = [str(small_map["csv"]), "--map", str(small_map["path"]), "--id-column", "code", "--counts", "cases", "--exposure", "expected"]
    cases = [
        (["--map", str(tmp_path / "none.shp")], r"map .*none.shp does not exist"),
        (["--id-column", "FIPS"], r"has no id column 'FIPS'; its columns: code, row, col"),
        (["--covariates", "x,nope"], r"has no covariate column 'nope'"),
        (["--model", "surrogate"], r"model surrogate needs --decoder"),
        (["--model", "bym2", "--iid"], r"bym2 has an unstructured area effect of its own"),
        (["--model", "surrogate", "--decoder", str(bym2_decoder), "--contiguity", "queen"], r"trained on another domain .*rook contiguity"),
    ]
    for extra, message in cases:
        args = base + extra
        out = tmp_path / "out"
        result = CliRunner().invoke(main, ["fit", *args, "--out", str(out)])
        assert result.exit_code == 1 and not out.exists(), (extra, result.output)
        assert pytest.importorskip("re").search(message, " ".join(result.output.split())), (message, result.output)
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "isl.csv"), "--map", str(island_map), "--id-column", "code", "--counts", "cases",
                                       "--model", "icar", "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1 and "island(s) without neighbours (ISLE); prior icar needs a rule" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_train_command_on_a_map(small_map, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--prior", "car", "--map", str(small_map["path"]), "--id-column", "code", "--alpha", "0.2,0.9", "--model", "cvae",
            "--hidden", "16", "--latent", "4", "--epochs", "1", "--epoch-size", "256", "--valid-size", "64", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["export", str(out)]).exit_code == 0
    import json

    meta = json.loads((out / "decoder.meta.json").read_text())
    assert meta["spatial"]["prior"] == "car" and meta["spatial"]["condition"] == [0.2, 0.9]
    assert meta["spatial"]["domain"]["hash"] == read_map(small_map["path"], "code").content_hash()
    bad = CliRunner().invoke(main, args[:-2] + ["--alpha", "0.5,1.0", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "alpha must lie in [0, 1), found 0.5,1.0" in bad.output and not (tmp_path / "bad").exists()
