"""GP priors: simulated draws, a trained surrogate's fidelity, and the three Stan models on known-GP data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import ENGINE, GP_ELL, GP_GRID

from surrogate.cli import main
from surrogate.data.gp import GPPrior, grid_points, kernel_matrix
from surrogate.errors import SurrogateError
from surrogate.nn.config import TrainConfig
from surrogate.tasks.gp_check import covariance_error, mmd_test

# ----------------------------------------------------------------------------
# simulated prior draws


def test_kernels_have_their_closed_forms():
    x = np.array([[0.0], [0.3]])
    r = 0.3 / 0.2
    expected = {"rbf": np.exp(-0.5 * r**2), "matern12": np.exp(-r), "matern32": (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r),
                "matern52": (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)}  # fmt: skip
    for kernel, value in expected.items():
        k = kernel_matrix(x, x, kernel, 0.2, 2.0)
        assert k[0, 0] == pytest.approx(2.0) and k[0, 1] == pytest.approx(2.0 * value)


def test_grid_is_row_major():
    x = grid_points(2, 3)
    assert x.shape == (9, 2)
    assert x[1].tolist() == [0.0, 0.5] and x[3].tolist() == [0.5, 0.0]


@pytest.mark.parametrize("dim, n, kernel", [(1, 30, "matern32"), (2, 6, "rbf")])
def test_draws_have_the_kernel_covariance(dim, n, kernel):
    prior = GPPrior(dim, n, kernel, (0.25, 0.25), (2.0, 2.0))
    f, ell = prior.sample(20_000, torch.Generator().manual_seed(0))
    f = f.double().numpy()
    assert f.shape == (20_000, n**dim) and torch.all(ell == 0.25)
    K = prior.covariance(0.25, 2.0)
    # sampling error of a 20,000-draw covariance is about 1-2% here; 5% fails a wrong kernel or scale
    assert covariance_error(f, K) < 0.05
    assert f.var(axis=0).mean() == pytest.approx(2.0, rel=0.03)


def test_lengthscale_range_draws_fresh_values_per_group():
    prior = GPPrior(1, 20, "matern52", (0.1, 0.5))
    f1, ell1 = prior.sample(64, torch.Generator().manual_seed(1), groups=8)
    _, ell2 = prior.sample(64, torch.Generator().manual_seed(2), groups=8)
    assert len(torch.unique(ell1)) == 8 and ell1.min() >= 0.1 and ell1.max() <= 0.5
    assert not torch.equal(torch.unique(ell1), torch.unique(ell2))
    again, _ = prior.sample(64, torch.Generator().manual_seed(1), groups=8)
    assert torch.equal(f1, again)  # seeded


def test_mmd_separates_different_kernels_and_not_equal_ones():
    prior = GPPrior(1, 20, "rbf", (0.3, 0.3))
    a = prior.sample(300, torch.Generator().manual_seed(1))[0].double().numpy()
    b = prior.sample(300, torch.Generator().manual_seed(2))[0].double().numpy()
    c = GPPrior(1, 20, "matern12", (0.05, 0.05)).sample(300, torch.Generator().manual_seed(3))[0].double().numpy()
    assert mmd_test(a, b, permutations=100)[1] > 0.05
    assert mmd_test(a, c, permutations=100)[1] < 0.02


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(dataset="gp1d", lengthscale=(0.5, 0.1)), "lengthscale prior bounds are inverted: lower 0.5 > upper 0.1"),
        (dict(dataset="gp1d", model="cvae", lengthscale=(0.2,)), "needs a range lo,hi; found a fixed lengthscale 0.2"),
        (dict(dataset="gp2d", kernel="cosine", model="vae"), "kernel"),
        (dict(dataset="mnist", kernel="rbf"), "kernel applies to the GP datasets"),
        (dict(dataset="gp1d", model="vae", grid=0), "grid must be a positive integer, found 0"),
        (dict(dataset="gp1d", model="vae", variance=(-1.0,)), "variance must be positive, found -1.0"),
    ],
)
def test_bad_gp_training_settings(options, message):
    with pytest.raises(SurrogateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**options)


def test_gp_training_resumes_exactly(tmp_path):
    from surrogate.nn.train import train

    def config(epochs):
        return TrainConfig(dataset="gp1d", grid=16, model="cvae", lengthscale=(0.1, 0.5), hidden=(16,), latent=3, residual=True,
                           epochs=epochs, epoch_size=256, valid_size=64, batch_size=64, seed=5)  # fmt: skip

    quiet = dict(log=lambda _: None, progress=False)
    straight = train(config(3), tmp_path / "a", **quiet)
    train(config(2), tmp_path / "b", **quiet)
    resumed = train(config(3), tmp_path / "b", resume=True, **quiet)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    assert straight.metrics[-1]["valid_loss"] == resumed.metrics[-1]["valid_loss"]


# ----------------------------------------------------------------------------
# a trained surrogate and the Stan models


GRID, ELL = GP_GRID, GP_ELL  # the gp_vae fixture's grid and lengthscale (conftest)


def test_briefly_trained_surrogate_reproduces_the_kernel(gp_vae):
    result = CliRunner().invoke(main, ["check-prior", str(gp_vae), "--draws", "1000", "--max-cov-error", "0.4"])
    assert result.exit_code == 0, result.output
    check = json.loads((gp_vae / "check_prior.json").read_text())["checks"][0]
    # loose: a brief training underestimates the variance (a known VAE trait), but the shape is right
    assert check["cov_error"] < 0.4
    assert 0.6 < check["marginal_variance"] < 1.2 and 0.4 < check["variance_ratio_min"] <= check["variance_ratio_median"] < 1.3
    assert check["cov_error_floor"] < 0.1  # the sampling-error floor
    # the linear floor: the rank-8 truncated Karhunen-Loeve expansion of the kernel, written out
    K = GPPrior(1, GRID, "matern52", (ELL, ELL)).covariance(ELL, 1.0)
    lam, V = np.linalg.eigh(K)
    top = np.argsort(lam)[::-1][:8]
    K8 = (V[:, top] * lam[top]) @ V[:, top].T
    assert check["cov_error_linear"] == pytest.approx(np.linalg.norm(K - K8) / np.linalg.norm(K), rel=1e-9)
    assert check["worse_than_linear"] == (check["cov_error"] > check["cov_error_linear"] + 1.5 * check["cov_error_floor"])
    assert "linear" in result.output and "floor" in result.output
    assert (gp_vae / "check_prior.png").stat().st_size > 10_000
    # 1,000 draws: with fewer, exact draws' own error exceeds the limit and a decoder no worse than them passes
    strict = CliRunner().invoke(main, ["check-prior", str(gp_vae), "--draws", "1000", "--max-cov-error", "0.01", "--out", str(gp_vae / "strict")])
    assert strict.exit_code == 1 and "prior check failed: relative covariance error" in strict.output


def test_a_decoder_at_the_sampling_floor_passes():
    """Where exact draws' own error exceeds the limit (short lengthscales, many cells, few draws), a decoder no
    worse than them passes; one worse than them and the limit fails."""
    from surrogate.tasks.gp_check import passes

    assert passes({"cov_error": 0.274, "cov_error_floor": 0.283}, 0.2)  # the 50x50 short decoder at ell 0.075
    assert not passes({"cov_error": 0.30, "cov_error_floor": 0.283}, 0.2)
    assert passes({"cov_error": 0.15, "cov_error_floor": 0.05}, 0.2) and not passes({"cov_error": 0.25, "cov_error_floor": 0.05}, 0.2)


@pytest.fixture(scope="session")
def gp_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpdata") / "data.json"
    result = CliRunner().invoke(main, ["gp-simulate", "--dim", "1", "--grid", str(GRID), "--lengthscale", str(ELL), "--observed", "0.3",
                                       "--likelihood", "poisson", "--intercept", "1.0", "--seed", "3", "-o", str(path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="session")
def gp_fits(gp_vae, gp_data, tmp_path_factory):
    """The three models fitted to the same data, each with the lengthscale fixed at the truth (2 chains)."""
    from surrogate.inference import SamplerSettings
    from surrogate.tasks.gp_fit import fit_gp, read_data

    data = read_data(gp_data)
    out = tmp_path_factory.mktemp("gpfits")
    settings = SamplerSettings(chains=2, warmup=400, draws=400, seed=2)
    return {m: fit_gp(m, data, settings, ENGINE, out / m, decoder_json=gp_vae / "decoder.json") for m in ("surrogate", "exact", "hsgp")}


@pytest.mark.stan
def test_all_three_models_recover_the_field(gp_fits):
    exact = gp_fits["exact"].diagnostics["rmse"]
    for model, r in gp_fits.items():
        assert r.diagnostics["max_rhat"] < 1.05 and r.diagnostics["min_ess_bulk_f"] > 100, (model, r)
        assert r.diagnostics["rmse"] < 0.6, (model, r.diagnostics["rmse"])
        assert r.diagnostics["rmse"] < 1.5 * exact, (model, r.diagnostics["rmse"], exact)
        # 90% intervals over 50 strongly correlated cells: roughly 90%, loosely
        assert 0.65 <= r.diagnostics["coverage90"] <= 1.0, (model, r.diagnostics["coverage90"])


@pytest.mark.stan
def test_gp_fit_outputs(gp_fits):
    from surrogate.inference import import_arviz

    az = import_arviz()

    r = gp_fits["surrogate"]
    idata = r.idata
    assert idata.posterior["f"].dims == ("chain", "draw", "cell") and idata.posterior.sizes["cell"] == GRID
    assert idata.posterior["eta"].shape == (2, 400, GRID)
    assert idata.log_likelihood["log_lik"].dims == ("chain", "draw", "obs") and idata.observed_data["counts"].shape == (15,)
    assert "ell" not in idata.posterior  # fixed at the PriorVAE's lengthscale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k of a few influential counts
        loo = az.loo(idata, pointwise=True)
        exact_loo = az.loo(gp_fits["exact"].idata)
    assert loo.loo_i.shape == (15,) and 0 < loo.p_loo < 15  # pointwise, and a positive effective number of parameters
    assert abs(loo.elpd_loo - exact_loo.elpd_loo) < 3 * max(loo.se, 1.0)  # predicts held-out counts about as well as the exact GP
    out = r.out
    summary = (out / "summary.csv").read_text()
    assert "intercept" in summary and "f[49]" in summary
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["model"] == "surrogate" and diag["lengthscale_prior"] == [ELL, ELL] and diag["kernel"] == "matern52"
    # the gate: this decoder was exported before any check-prior, and the summary says so
    assert diag["decoder"]["check_prior"] is None and "the decoder records no prior check" in r.text
    assert "decoder" not in gp_fits["exact"].diagnostics and "prior check" not in gp_fits["exact"].text
    assert az.from_netcdf(out / "posterior.nc").posterior.sizes == idata.posterior.sizes
    assert (out / "field.png").stat().st_size > 10_000 and not (out / "lengthscale.png").exists()
    from surrogate.reports.fit import build_report

    _, md = build_report(out)
    text = md.read_text()
    assert "RMSE of eta vs the truth / 90% coverage" in text and "The field" in text


@pytest.mark.stan
def test_priorcvae_infers_the_lengthscale(gp_data, tmp_path):
    """A PriorCVAE conditioned on the lengthscale; ell gets a posterior within its prior, the field is recovered."""
    from surrogate.inference import SamplerSettings
    from surrogate.nn.export import export_decoder
    from surrogate.nn.train import train
    from surrogate.tasks.gp_fit import fit_gp, read_data

    config = TrainConfig(dataset="gp1d", grid=GRID, model="cvae", lengthscale=(0.15, 0.6), hidden=(64, 64), latent=8, epochs=30,
                         lr=3e-3, batch_size=64, epoch_size=5000, seed=1)  # fmt: skip
    train(config, tmp_path / "cvae", log=lambda _: None, progress=False)
    export_decoder(tmp_path / "cvae")
    r = fit_gp("surrogate", read_data(gp_data), SamplerSettings(chains=2, warmup=300, draws=300, seed=1), ENGINE,
               tmp_path / "fit", decoder_json=tmp_path / "cvae" / "decoder.json")  # fmt: skip
    ell = r.idata.posterior["ell"].values
    lo, hi = np.quantile(ell, [0.025, 0.975])
    assert lo < ELL < hi, (lo, hi)  # the true lengthscale is inside the 95% interval (15 counts barely narrow the prior)
    assert r.diagnostics["lengthscale_prior"] == [0.15, 0.6]
    assert r.diagnostics["rmse"] < 0.7
    assert (tmp_path / "fit" / "lengthscale.png").exists() and (tmp_path / "fit" / "field.png").exists()


@pytest.mark.stan
def test_exact_and_hsgp_infer_the_lengthscale(gp_data, tmp_path):
    from surrogate.inference import SamplerSettings
    from surrogate.tasks.gp_fit import fit_gp, read_data

    data = read_data(gp_data)
    for model in ("exact", "hsgp"):
        r = fit_gp(model, data, SamplerSettings(chains=2, warmup=300, draws=300, seed=1), ENGINE, None, lengthscale=(0.1, 0.6))
        ell = r.idata.posterior["ell"].values
        lo, hi = np.quantile(ell, [0.025, 0.975])
        assert lo < ELL < hi, (model, lo, hi)  # the true lengthscale is inside the 95% interval
        assert r.diagnostics["rmse"] < 0.7 and r.diagnostics["coverage90"] >= 0.65, (model, r)


# ----------------------------------------------------------------------------
# bad input


def _write(tmp_path, data, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_bad_gp_data(gp_data, gp_vae, tmp_path):
    good = json.loads(gp_data.read_text())
    runner = CliRunner()

    def fit(data, *extra):
        return runner.invoke(main, ["gp-fit", str(_write(tmp_path, data)), "--out", str(tmp_path / "o"), *extra])

    negative = {**good, "counts": [-1] + good["counts"][1:]}
    assert "poisson counts must be non-negative, found -1" in fit(negative, "--model", "exact").output
    binomial = {**good, "likelihood": "binomial", "trials": [0] * len(good["counts"]), "counts": [1] * len(good["counts"])}
    assert "binomial trials must be >= counts; found trials 0 < counts 1" in fit(binomial, "--model", "exact").output
    out = fit(good, "--model", "exact", "--lengthscale-prior", "0.5,0.1")
    assert out.exit_code == 1 and "lengthscale prior bounds are inverted: lower 0.5 > upper 0.1" in out.output
    other_grid = CliRunner().invoke(main, ["gp-simulate", "--grid", "40", "-o", str(tmp_path / "g40.json")])
    assert other_grid.exit_code == 0
    mismatch = runner.invoke(main, ["gp-fit", str(tmp_path / "g40.json"), "--decoder", str(gp_vae / "decoder.json"), "--out", str(tmp_path / "o")])
    assert mismatch.exit_code == 1 and "grid size does not match the decoder" in mismatch.output
    assert "40^1 grid (40 cells)" in mismatch.output and f"{GRID}^1 grid ({GRID} cells)" in mismatch.output
    no_decoder = runner.invoke(main, ["gp-fit", str(gp_data), "--model", "surrogate", "--out", str(tmp_path / "o")])
    assert "model surrogate needs --decoder" in no_decoder.output
    outside = runner.invoke(main, ["gp-fit", str(gp_data), "--decoder", str(gp_vae / "decoder.json"), "--lengthscale-prior", "0.1,0.5", "--out", str(tmp_path / "o")])
    assert "this PriorVAE was trained at lengthscale 0.3 only" in outside.output
    index = {**good, "obs_idx": [0] + good["obs_idx"][1:]}
    assert f"obs_idx must lie in 1..{GRID}" in fit(index, "--model", "exact").output
    bad_sim = runner.invoke(main, ["gp-simulate", "--observed", "1.5", "-o", str(tmp_path / "x.json")])
    assert "observed must be a share of cells in (0, 1], found 1.5" in bad_sim.output


def test_prior_check_gate_words():
    from surrogate.tasks.gp_check import check_rows, check_warning

    failed = {"passed": False, "worst_cov_error": 0.52, "max_cov_error": 0.2, "cov_error_linear": 0.01, "epoch": 150}
    assert check_warning(failed, "surrogate").startswith("WARNING: THE DECODER FAILED ITS PRIOR CHECK (covariance error 0.520 > 0.2)")
    assert check_warning({**failed, "passed": True}, "surrogate") is None and check_warning(failed, "exact") is None
    assert check_rows(failed)[0] == ["passed", "NO"] and check_rows(failed)[2] == ["linear floor (rank-K Karhunen-Loeve)", "0.010"]
