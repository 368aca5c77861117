"""The GP programs' paths the 1-D Poisson fits do not reach: 2-D grids (HSGP's tensor-product basis),
the Gaussian and binomial likelihoods, HSGP's covariance against its kernel, and the programs' own
rejections of bad codes and sizes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ENGINE

from surrogate.data.gp import grid_points, kernel_matrix
from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings, get_engine
from surrogate.tasks.gp_fit import fit_gp, simulate, stan_data, validate_data

pytestmark = pytest.mark.stan


def data_set(**options):
    return validate_data(simulate(**options))


@pytest.mark.parametrize("model", ["exact", "hsgp"])
def test_two_dimensional_fits_recover_the_field(model):
    """An 8x8 grid, Gaussian noise: the exact GP and HSGP's M^2 tensor-product basis both recover eta."""
    data = data_set(dim=2, grid=8, lengthscale=0.4, observed=0.5, likelihood="gaussian", noise_sd=0.2, seed=4)
    r = fit_gp(model, data, SamplerSettings(chains=2, warmup=300, draws=300, seed=3), ENGINE, None, lengthscale=(0.4, 0.4))
    assert r.idata.posterior.sizes["cell"] == 64
    if model == "hsgp":
        assert r.diagnostics["basis_functions"] == r.diagnostics["hsgp_m"] ** 2
    spread = float(np.std(data["eta_true"]))
    assert r.diagnostics["max_rhat"] < 1.05, r
    assert r.diagnostics["rmse"] < 0.5 * spread, (r.diagnostics["rmse"], spread)  # far better than the field's own spread
    assert 0.7 <= r.diagnostics["coverage90"] <= 1.0, r.diagnostics["coverage90"]
    assert "sigma" in r.idata.posterior and 0.1 < float(r.idata.posterior["sigma"].mean()) < 0.4  # noise sd 0.2


def test_binomial_likelihood_recovers_the_field():
    data = data_set(dim=1, grid=40, lengthscale=0.3, observed=0.5, likelihood="binomial", trials=30, intercept=0.0, seed=5)
    r = fit_gp("exact", data, SamplerSettings(chains=2, warmup=300, draws=300, seed=2), ENGINE, None, lengthscale=(0.3, 0.3))
    assert r.diagnostics["max_rhat"] < 1.05 and r.diagnostics["rmse"] < 0.5 * float(np.std(data["eta_true"])), r
    loglik = r.idata.log_likelihood["log_lik"]
    assert loglik.sizes["obs"] == 20 and float(loglik.max()) <= 0  # binomial log probabilities


def test_hsgp_covariance_matches_its_kernel():
    """Prior draws of HSGP's f (no observations) have the kernel's covariance within Monte Carlo error."""
    data = data_set(dim=1, grid=30, lengthscale=0.3, observed=0.1, likelihood="gaussian", seed=1)
    sdata, prior = stan_data("hsgp", data, kernel="matern52", lengthscale=(0.3, 0.3), variance=1.0)
    sdata = {**sdata, "N_obs": 0, "obs_idx": [], "y": [], "log_offset": []}
    fit = get_engine(ENGINE).run("gp_hsgp", sdata, SamplerSettings(chains=2, warmup=300, draws=2000, seed=4))
    f = fit.draws["f"].reshape(-1, 30)
    K = kernel_matrix(grid_points(1, 30), grid_points(1, 30), "matern52", 0.3)
    error = np.linalg.norm(np.cov(f, rowvar=False) - K) / np.linalg.norm(K)
    assert error < 0.1, error  # 4,000 nearly independent draws: sampling error about 0.03-0.05


@pytest.mark.parametrize("program, change, message", [
    ("gp_exact", {"likelihood": 4}, "likelihood"),  # the data block bounds the code
    ("gp_exact", {"kernel": 7}, "kernel"),
])  # fmt: skip
def test_programs_reject_unknown_codes(program, change, message):
    data = data_set(dim=1, grid=10, lengthscale=0.3, observed=0.5, likelihood="poisson", seed=1)
    sdata, _ = stan_data("exact", data, lengthscale=(0.3, 0.3))
    with pytest.raises(SurrogateError, match=message):
        get_engine(ENGINE).run(program, {**sdata, **change}, SamplerSettings(chains=1, warmup=10, draws=10))


def test_programs_reject_binomial_counts_above_trials():
    """The programs check what the Python side checks too, for users who call them directly."""
    data = data_set(dim=1, grid=10, lengthscale=0.3, observed=0.5, likelihood="binomial", trials=5, seed=1)
    sdata, _ = stan_data("exact", data, lengthscale=(0.3, 0.3))
    counts = list(sdata["counts"])
    counts[2] = 6
    with pytest.raises(SurrogateError, match="counts must not exceed trials; found 6 > 5 at observation 3"):
        get_engine(ENGINE).run("gp_exact", {**sdata, "counts": counts}, SamplerSettings(chains=1, warmup=10, draws=10))
