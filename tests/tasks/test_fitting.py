"""The parts every fit shares (grids, sites, maps): the observation data, draws tidied, the scoring against a truth, the warnings."""

from __future__ import annotations

import numpy as np
import pytest

from surrogate.tasks.fitting import observation_stan_data, squeeze_draws, truth_scores, warning_lines


def test_truth_scores_rmse_and_coverage():
    rng = np.random.default_rng(0)
    truth = np.array([0.0, 1.0, 5.0])
    eta = truth + rng.normal(0, 1, (20000, 3))
    eta[:, 2] += 10.0  # far off: not covered, error 10
    got = truth_scores(eta, truth)
    assert got["coverage90"] == pytest.approx(2 / 3)
    assert got["rmse"] == pytest.approx(np.sqrt((0 + 0 + 100) / 3), abs=0.02)
    with pytest.raises(ValueError, match=r"truth has shape \(2,\), the field \(3,\)"):
        truth_scores(eta, truth[:2])


def test_observation_data_and_squeezed_draws():
    d = observation_stan_data("binomial", np.array([0, 4]), np.zeros(2), counts=np.array([1, 2]), trials=np.array([3, 3]), intercept_prior=(1, 2))
    assert d["obs_idx"].tolist() == [1, 5] and d["likelihood"] == 3 and d["y"].size == 0 and d["trials"].tolist() == [3, 3]
    assert (d["intercept_prior_mean"], d["intercept_prior_sd"], d["sigma_prior_scale"]) == (1.0, 2.0, 1.0)
    draws = {"ell": np.ones((2, 5, 1)), "sigma": np.ones((2, 5, 0)), "f": np.ones((2, 5, 7))}
    squeeze_draws(draws, ("ell", "sigma"))
    assert draws["ell"].shape == (2, 5) and "sigma" not in draws and draws["f"].shape == (2, 5, 7)


def test_warning_lines_name_the_remedy():
    r = {"divergences": 3, "chains": 4, "max_rhat": 1.05, "model": "surrogate", "decoder": {"check_prior": None}}
    lines = warning_lines(r)
    assert lines[0] == "WARNING: 3 divergent transitions: raise --adapt-delta" and "R-hat 1.050" in lines[1]
    assert "records no prior check" in lines[2]
    assert warning_lines({"divergences": 0, "chains": 1, "max_rhat": float("nan"), "model": "exact"}) == []
    assert warning_lines(r | {"adapt_delta": 0.9})[0] == "WARNING: 3 divergent transitions: raise --adapt-delta above 0.9"
