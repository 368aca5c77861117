"""The disagreement logic on constructed posteriors (no sampler needed)."""

import numpy as np
import pytest

from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings
from surrogate.inference.diagnostics import assess, format_summary, import_arviz
from surrogate.tasks.inpaint import Observation, plot_inpainting

CLASSES = [str(c) for c in range(3)]
MISSING = np.array([True, False, True, False])


def idata_from(class_means, y_mis_means, draws=400, seed=0):
    """Chains with the given per-chain class weights and imputations, plus small noise."""
    az = import_arviz()
    rng = np.random.default_rng(seed)
    chains = len(class_means)
    probs = np.array(class_means)[:, None, :] + 0.01 * rng.standard_normal((chains, draws, 3))
    y_mis = np.array(y_mis_means)[:, None, :] + 0.01 * rng.standard_normal((chains, draws, 2))
    posterior = {
        "theta": rng.standard_normal((chains, draws, 4)),
        "class_probs": probs,
        "y_mis": y_mis,
        "log_lik": -100 + rng.standard_normal((chains, draws)),
    }
    return az.from_dict(posterior=posterior, coords={"class": CLASSES}, dims={"class_probs": ["class"]})


NO_PROBLEMS = {"divergences": 0, "divergences_per_chain": [0, 0], "treedepth_hits": 0, "treedepth_hits_per_chain": [0, 0]}
TRUTH = np.array([0.9, 0.0, 0.1, 0.0])


def test_agreeing_chains_get_a_predicted_class():
    idata = idata_from([[0.1, 0.8, 0.1]] * 4, [[0.88, 0.12]] * 4)
    result = assess(idata, NO_PROBLEMS, TRUTH, MISSING, CLASSES)
    assert not result["chains_disagree"] and result["predicted_class"] == "1"
    assert result["max_rhat"] < 1.01 and result["min_ess_bulk"] > 1000
    assert result["rmse_missing_pooled"] == pytest.approx(np.sqrt((0.02**2 + 0.02**2) / 2), abs=2e-3)
    assert result["warnings"] == []
    assert "predicted class     1" in format_summary(result)


def test_chains_in_different_modes_are_flagged_and_not_pooled():
    idata = idata_from([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], [[0.88, 0.12], [0.88, 0.12], [0.3, 0.6], [0.88, 0.12]])
    result = assess(idata, NO_PROBLEMS, TRUTH, MISSING, CLASSES)
    assert result["chains_disagree"] and result["predicted_class"] is None
    assert result["chain_classes"] == ["0", "1"] and result["max_rhat"] > 1.1
    assert [row["class"] for row in result["per_chain"]] == ["1", "1", "0", "1"]
    assert result["per_chain"][2]["rmse_missing"] > 0.5 > result["per_chain"][0]["rmse_missing"]
    text = format_summary(result)
    assert "no consensus" in text and "pooled over disagreeing chains" in text
    assert "WARNING: chains disagree" in text and "chains settle on classes 0, 1" in text


def test_short_chains_warn_without_claiming_modes():
    # chains 0.005 apart with within-chain sd 0.01: R-hat about 1.03
    idata = idata_from([[0.1, 0.8, 0.1]] * 2, [[0.88, 0.12], [0.885, 0.12]], draws=400)
    result = assess(idata, NO_PROBLEMS, TRUTH, MISSING, CLASSES)
    assert 1.01 < result["max_rhat"] <= 1.1 and not result["chains_disagree"]
    assert any("have not converged" in w for w in result["warnings"])


def test_sampler_problems_are_counted_in_warnings():
    idata = idata_from([[0.1, 0.8, 0.1]] * 2, [[0.88, 0.12]] * 2)
    problems = {"divergences": 3, "divergences_per_chain": [1, 2], "treedepth_hits": 5, "treedepth_hits_per_chain": [5, 0]}
    result = assess(idata, problems, None, MISSING, CLASSES)
    assert "3 divergent transitions (per chain [1, 2])" in " ".join(result["warnings"])
    assert "5 transitions hit max tree depth" in " ".join(result["warnings"])
    assert "rmse_missing_pooled" not in result


def test_inpainting_figure_has_a_row_per_disagreeing_chain(tmp_path):
    idata = idata_from([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]], [[0.88, 0.12], [0.3, 0.6]])
    obs = Observation(TRUTH, MISSING, True)
    plot_inpainting(tmp_path / "rows.png", idata, obs, (2, 2), by_chain=True)
    plot_inpainting(tmp_path / "one.png", idata, obs, (2, 2), by_chain=False)
    from PIL import Image

    assert Image.open(tmp_path / "rows.png").size[1] > 1.6 * Image.open(tmp_path / "one.png").size[1]


def test_adapt_delta_left_unset_resolves_by_model():
    from surrogate.inference.fit import CONDITIONED_ADAPT_DELTA, DEFAULT_ADAPT_DELTA

    assert SamplerSettings().resolved().adapt_delta == DEFAULT_ADAPT_DELTA == 0.8
    assert SamplerSettings().resolved(conditioned=True).adapt_delta == CONDITIONED_ADAPT_DELTA == 0.9
    assert SamplerSettings(adapt_delta=0.95).resolved(conditioned=True).adapt_delta == 0.95  # a value given is kept
    with pytest.raises(SurrogateError, match="adapt_delta must be in \\(0, 1\\), found 1.5"):
        SamplerSettings(adapt_delta=1.5).validate()
