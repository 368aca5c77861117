"""Inpainting real MNIST digits with a small trained CVAE: results, outputs, bad input, the command."""

import json

import numpy as np
import pytest
import torch
from conftest import ENGINE, N_DIGITS, random_model

from surrogate.data import load_split
from surrogate.decoder.io import load_decoder
from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings, get_engine
from surrogate.nn.export import decoder_stan_data
from surrogate.tasks.inpaint import Observation, random_mask, stan_data

pytestmark = pytest.mark.stan



# ----------------------------------------------------------------------------
# inpainting real MNIST digits with a small trained CVAE

def test_inpainting_beats_the_mean_image(inpainted):
    for obs, result, baseline in inpainted:
        assert result.diagnostics["rmse_missing_pooled"] < 0.8 * baseline, obs.source


def test_inpainting_finds_the_class(inpainted):
    correct = [int(np.argmax(r.diagnostics["pooled_class_probs"])) == obs.label for obs, r, _ in inpainted]
    assert sum(correct) >= N_DIGITS - 1, correct


def test_inference_data_structure(inpainted):
    obs, result, _ = inpainted[0]
    idata = result.idata
    post = idata.posterior
    assert post["class_probs"].dims == ("chain", "draw", "class")
    assert post["y_hat"].dims == ("chain", "draw", "pixel") and post.sizes["pixel"] == 784
    assert post["y_mis"].sizes["missing_pixel"] == obs.missing.sum()
    assert list(post["class"].values) == [str(d) for d in range(10)]
    np.testing.assert_array_equal(post["missing_pixel"].values, np.flatnonzero(obs.missing))
    n_mis = int(obs.missing.sum())
    assert dict(post.sizes) == {"chain": 2, "draw": 300, "param": 18, "latent": 8, "class": 10, "pixel": 784, "missing_pixel": n_mis}
    assert idata.log_likelihood["log_lik"].dims == ("chain", "draw", "observed_pixel")
    assert idata.log_likelihood.sizes["observed_pixel"] == 784 - n_mis
    np.testing.assert_allclose(post["log_lik"].values, idata.log_likelihood["log_lik"].sum("observed_pixel").values)
    np.testing.assert_allclose(post["class_probs"].sum("class"), 1.0, atol=1e-9)
    assert {"diverging", "tree_depth", "n_steps", "energy", "lp", "step_size"} <= set(idata.sample_stats.data_vars)
    np.testing.assert_array_equal(idata.observed_data["y_obs"].values, obs.y[~obs.missing])
    # moments, with tolerances: the decoded observed pixels sit near the data (sigma = 0.1)
    fitted = post["y_hat"].mean(("chain", "draw")).values[~obs.missing]
    assert np.sqrt(np.mean((fitted - obs.y[~obs.missing]) ** 2)) < 0.12


def test_inpaint_outputs(inpainted, small_cvae):
    obs = inpainted[0][0]
    from surrogate.inference import import_arviz

    az = import_arviz()
    import pandas as pd

    out = small_cvae / "inpaint0"
    for name in ("posterior.nc", "summary.csv", "inpaint.png", "class_probs.png", "trace.png", "rank.png", "diagnostics.json", "observations.json"):
        assert (out / name).stat().st_size > 0, name
    idata = az.from_netcdf(out / "posterior.nc")
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data", "constant_data"}
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert "class_probs[3]" in summary.index and {"ess_bulk", "r_hat", "mcse_mean"} <= set(summary.columns)
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["n_chains"] == 2 and len(diag["per_chain"]) == 2 and diag["engine"] == ENGINE
    # Stan's own per-chain timings, read from its output
    timing = inpainted[0][1].diagnostics["timing"]
    assert len(timing["warmup_s"]) == len(timing["sampling_s"]) == 2
    assert all(0 < t < timing["wall_s"] for t in timing["warmup_s"] + timing["sampling_s"])
    # a Stan user can rebuild the full data from the two JSON files
    decoder, _ = load_decoder(small_cvae / "decoder.json")
    observations = json.loads((out / "observations.json").read_text())
    assert observations["N_obs"] == len(observations["obs_idx"]) == len(observations["y_obs"]) == int((~obs.missing).sum())
    assert set(observations) | set(decoder) >= {"K", "C", "D", "W_out", "obs_idx", "y_obs", "sigma_fixed", "estimate_sigma"}


def test_estimated_sigma_and_unconditional_decoder():
    model = random_model("vae", (16, 8), latent=2, input_dim=30, output_activation="identity", seed=4)
    decoder = decoder_stan_data(model, "elu", "identity")
    theta = np.array([0.5, -1.0])
    truth = model.double().decode(torch.from_numpy(theta[None])).detach().numpy()[0]
    rng = np.random.default_rng(0)
    y = truth + 0.05 * rng.standard_normal(30)
    missing = np.arange(30) < 10
    result = run_inpaint_data(decoder, Observation(y, missing, True), sigma=None)
    sigma = result.draws["sigma"].ravel()
    assert 0.02 < np.median(sigma) < 0.12
    assert "class_probs" not in result.draws or result.draws["class_probs"].size == 0


def run_inpaint_data(decoder, obs, sigma):
    settings = SamplerSettings(chains=2, warmup=400, draws=400, seed=3)
    return get_engine(ENGINE).run("inpaint", stan_data(decoder, obs, sigma), settings)


# ----------------------------------------------------------------------------
# bad input


def test_bad_inpainting_input(small_cvae):
    decoder, _ = load_decoder(small_cvae / "decoder.json")
    y = np.zeros(784)
    with pytest.raises(SurrogateError, match="mask leaves no observed pixels"):
        stan_data(decoder, Observation(y, np.ones(784, bool), False), 0.1)
    with pytest.raises(SurrogateError, match="mask has no missing pixels"):
        stan_data(decoder, Observation(y, np.zeros(784, bool), False), 0.1)
    with pytest.raises(SurrogateError, match="sigma must be positive, found -0.1"):
        stan_data(decoder, Observation(y, random_mask(784, 0.5, 1), False), -0.1)
    with pytest.raises(SurrogateError, match="image and mask must have 784 values, found 100 and 784"):
        stan_data(decoder, Observation(np.zeros(100), random_mask(784, 0.5, 1), False), 0.1)
    with pytest.raises(SurrogateError, match=r"missing must be a fraction in \(0, 1\), found 1.5"):
        random_mask(784, 1.5, 0)



# ----------------------------------------------------------------------------
# the inpaint command


def test_inpaint_command(small_cvae, tmp_path, mnist_dir):
    from click.testing import CliRunner

    from surrogate.cli import main

    x, _ = load_split("mnist", "test", data_dir=mnist_dir, limit=1)
    np.save(tmp_path / "digit.npy", x[0].reshape(28, 28))
    np.save(tmp_path / "mask.npy", (np.arange(784) % 2).reshape(28, 28))
    decoder = small_cvae / "decoder.json"

    def invoke(*args):
        return CliRunner().invoke(main, ["inpaint", str(decoder), *map(str, args)])

    common = ["--chains", "2", "--warmup", "150", "--draws", "100", "--out", tmp_path / "out"]
    result = invoke("--image", tmp_path / "digit.npy", "--mask", tmp_path / "mask.npy", *common)
    assert result.exit_code == 0, result.output
    assert "392 of 784 values missing" in result.output and "max R-hat" in result.output
    assert (tmp_path / "out" / "inpaint.png").exists() and (tmp_path / "out" / "posterior.nc").exists()

    np.save(tmp_path / "small.npy", np.zeros((10, 10)))
    for args, message in [
        (["--image", tmp_path / "small.npy"], "has 100 values (shape (10, 10)), the decoder outputs 784"),
        ([], "give exactly one of --mnist-index N or --image FILE"),
        (["--mnist-index", "0", "--sigma", "-1"], "sigma must be positive, found -1.0"),
        (["--mnist-index", "0", "--engine", "jags"], "unknown engine 'jags'; valid names: auto, cmdstan, pystan"),
        (["--mnist-index", "0", "--missing", "0"], r"missing must be a fraction in (0, 1), found 0.0"),
        (["--mnist-index", "20000", "--split", "valid"], "mnist-index must be in 0..9999 for split valid, found 20000"),
    ]:
        result = invoke(*args, "--data-dir", mnist_dir, *common)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
