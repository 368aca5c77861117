"""Simulation-based calibration: truths from the exact prior, rank statistics, bands, and a real run on Dask."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from surrogate.cli import main
from surrogate.data.gp import GPPrior
from surrogate.nn.config import TrainConfig
from surrogate.tasks.gp_check import covariance_error
from surrogate.tasks.sbc import RANK_DRAWS, draw_replicate, ecdf, ecdf_bands, in_band, rank_of, uniformity_p


def test_replicates_draw_their_truth_from_the_exact_prior():
    prior = GPPrior(1, 30, "matern52", (0.2, 0.6))
    reps = [draw_replicate(prior, r, 7, "gaussian", 0.3) for r in range(1, 1501)]
    truth = [d["truth"] for d in reps]
    ell = np.array([t["lengthscale"] for t in truth])
    assert ell.min() >= 0.2 and ell.max() <= 0.6 and abs(ell.mean() - 0.4) < 0.01  # Uniform(0.2, 0.6)
    intercept = np.array([t["intercept"] for t in truth])
    assert abs(intercept.mean()) < 0.15 and intercept.std() == pytest.approx(2.0, rel=0.06)  # normal(0, 2)
    sigma = np.array([t["noise_sd"] for t in truth])
    assert sigma.min() > 0 and sigma.mean() == pytest.approx(np.sqrt(2 / np.pi), rel=0.06)  # half-normal(1)
    # the field: the exact GP at each replicate's lengthscale, so its covariance is the mixture of kernels
    f = np.array([t["f"] for t in truth])
    mixture = np.mean([prior.covariance(e, 1.0) for e in ell], axis=0)
    assert covariance_error(f, mixture) < 0.12  # 1,500 draws: sampling error about 0.05
    d = reps[0]
    assert len(d["obs_idx"]) == 9 and len(d["y"]) == 9 and d["truth"]["eta"][0] == pytest.approx(d["truth"]["intercept"] + d["truth"]["f"][0])
    again = draw_replicate(prior, 1, 7, "gaussian", 0.3)
    assert again == d  # seeded by (seed, replicate)


def test_rank_statistics_and_bands():
    draws = np.arange(2 * 500, dtype=float).reshape(2, 500)  # [chain, draw]
    assert rank_of(-1.0, draws) == 0 and rank_of(1e9, draws) == RANK_DRAWS
    assert rank_of(500.0, draws) in range(45, 55)
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, RANK_DRAWS + 1, 400)
    u_shape = np.concatenate([rng.integers(0, 10, 150), rng.integers(90, 100, 150), rng.integers(0, 100, 100)])
    assert uniformity_p(uniform, RANK_DRAWS) > 0.01 and uniformity_p(u_shape, RANK_DRAWS) < 1e-6
    bands = ecdf_bands(60, RANK_DRAWS, simulations=1000)
    inside = np.mean([in_band(rng.integers(0, RANK_DRAWS + 1, 60), RANK_DRAWS, bands) for _ in range(400)])
    assert 0.91 <= inside <= 0.99  # simultaneous 95%: about 95% of uniform rank sets stay inside everywhere
    assert not in_band(u_shape[:60], RANK_DRAWS, bands)
    assert ecdf([0, 0, 99], RANK_DRAWS)[0] == pytest.approx(2 / 3)


@pytest.mark.stan
def test_sbc_runs_on_dask_and_writes_its_files(gp_vae, tmp_path):
    out = tmp_path / "sbc"
    result = CliRunner().invoke(main, ["sbc", str(gp_vae), "--replicates", "4", "--out", str(out), "--chains", "2", "--warmup", "150",
                                       "--draws", "150", "--workers", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 of 4 replicates fitted" in result.output
    sbc = json.loads((out / "sbc.json").read_text())
    assert sbc["fitted"] == 4 and sbc["failed"] == 0
    assert sbc["quantities"] == ["intercept", "f[12]", "f[25]", "f[37]", "sigma"]  # a PriorVAE: no lengthscale
    for q in sbc["quantities"]:
        assert len(sbc["ranks"][q]) == 4 and all(0 <= r <= RANK_DRAWS for r in sbc["ranks"][q])
        assert 0 <= sbc["rank_uniformity_p"][q] <= 1 and 0 <= sbc["coverage90"][q] <= 1
    assert (out / "sbc.png").stat().st_size > 10_000
    batch = json.loads((out / "fits" / "batch.json").read_text())
    assert batch["command"] == "gp-fit" and batch["counts"]["done"] == 4
    # a rerun resumes: no replicate is drawn or fitted again
    again = CliRunner().invoke(main, ["sbc", str(gp_vae), "--replicates", "4", "--out", str(out), "--chains", "2", "--warmup", "150",
                                      "--draws", "150"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads((out / "fits" / "batch.json").read_text())["counts"]["resumed"] == 4
    assert json.loads((out / "sbc.json").read_text())["ranks"] == sbc["ranks"]


def test_sbc_bad_inputs(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["sbc", str(tmp_path), "--replicates", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "is not a training run (no config.json)" in result.output
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(dataset="gp1d", grid=16, model="vae", lengthscale=(0.3,)).to_dict()))
    result = runner.invoke(main, ["sbc", str(tmp_path), "--replicates", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "has no decoder.json: run `surrogate export" in result.output
    result = runner.invoke(main, ["sbc", str(tmp_path), "--replicates", "0", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "replicates must be a positive integer, found 0" in result.output
    result = runner.invoke(main, ["sbc", str(tmp_path), "--replicates", "3", "--draws", "20", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "chains x draws must be at least 99" in result.output
    assert not (tmp_path / "o").exists()


def test_prior_draws_are_seeded_per_replicate():
    prior = GPPrior(1, 10, "rbf", (0.3, 0.3))
    a, b = draw_replicate(prior, 1, 1, "poisson", 0.5), draw_replicate(prior, 2, 1, "poisson", 0.5)
    assert a["truth"]["f"] != b["truth"]["f"] and "counts" in a and a["truth"]["noise_sd"] is None
    assert a["truth"]["lengthscale"] == 0.3
    torch.manual_seed(0)  # the global seed plays no part
    assert draw_replicate(prior, 1, 1, "poisson", 0.5) == a
