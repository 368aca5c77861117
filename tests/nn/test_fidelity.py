"""Training scores the decoder's prior fidelity every epoch, keeps the best epoch (its linear start included) and
stops when it no longer improves: a decoder is never exported worse than the start it began from."""

import csv

import libpysal
import numpy as np
import pytest
import torch

from surrogate.api.settings import OptimSettings
from surrogate.errors import SurrogateError
from surrogate.nn.checkpoint import load_model
from surrogate.nn.config import TrainConfig
from surrogate.nn.fidelity import FidelityMonitor
from surrogate.nn.train import train

NC = dict(prior="icar", map=libpysal.examples.get_path("sids2.shp"), id_column="FIPS", model="vae", latent=99, hidden=(64, 32),
          epoch_size=1000, valid_size=200, batch_size=100, seed=1)  # fmt: skip


def decoded(model, n: int = 50) -> np.ndarray:
    with torch.no_grad():
        return model.decode(torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(3)), None).numpy()


def test_icar_vae_keeps_its_linear_start_when_training_makes_it_worse(tmp_path):
    """The ICAR-VAE on North Carolina's 100 counties starts at its rank-99 Karhunen-Loeve floor (covariance error ~0.07,
    the sampling error of 1,000 draws); the VAE loss moves it away (0.089, then 0.127 here), so epoch 0 is kept, training stops
    after --patience epochs, and export and check read the kept decoder."""
    lines = []
    result = train(TrainConfig(**NC, epochs=8, patience=2), tmp_path / "run", log=lines.append, progress=False)
    assert [row["epoch"] for row in result.metrics] == [1, 2]  # stopped early: two epochs without a better score
    assert any("stopping early after epoch 2" in line for line in lines)
    assert result.kept["epoch"] == 0 and result.kept["cov_error"] == pytest.approx(result.kept["start_cov_error"])
    assert 0.03 < result.kept["cov_error"] < 0.12
    assert result.metrics[-1]["cov_error"] > 1.3 * result.kept["cov_error"]  # training made it worse here (0.127 vs 0.075)
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert [float(row["cov_error"]) for row in csv.DictReader(f)] == pytest.approx([r["cov_error"] for r in result.metrics])

    model, config, state = load_model(tmp_path / "run")  # what export and check read
    assert state["epoch"] == 2 and state["kept"]["epoch"] == 0
    np.testing.assert_allclose(decoded(model), decoded(result.model), atol=1e-6)
    last = build_last(config, state)
    assert np.abs(decoded(last) - decoded(model)).max() > 1e-3  # the last epoch's decoder differs from the kept one
    assert FidelityMonitor(config, model, seed=config.seed)(model) == pytest.approx(result.kept["cov_error"], rel=1e-4)

    # resumed with more epochs: nothing better came for --patience epochs, so it stops again before training
    lines.clear()
    again = train(TrainConfig(**NC, epochs=10, patience=2), tmp_path / "run", resume=True, log=lines.append, progress=False)
    assert len(again.metrics) == 2 and again.epochs_run == 0 and again.kept["epoch"] == 0
    assert any("stopping early after epoch 2" in line for line in lines)
    # a longer patience continues from the last epoch (not the kept one): the optimiser's state goes on
    longer = train(TrainConfig(**NC, epochs=3, patience=0), tmp_path / "run", resume=True, log=lambda _: None, progress=False)
    assert [row["epoch"] for row in longer.metrics] == [1, 2, 3] and longer.epochs_run == 1


def build_last(config, state):
    from surrogate.nn.models import build_model

    info = config.data_info
    model = build_model(config, info.dim, info.n_classes, config.resolved_output_activation, saved=state["model"])
    model.load_state_dict(state["model"])
    return model.eval()


def test_patience_is_checked():
    with pytest.raises(SurrogateError, match="patience must be a non-negative integer .* found -1"):
        TrainConfig(**NC, patience=-1)
    with pytest.raises(SurrogateError, match="optim.patience must be a non-negative integer, found 1.5"):
        OptimSettings(patience=1.5)


def test_image_models_are_not_scored(tmp_path):
    """Without a prior covariance (images) there is nothing to score: every epoch runs, the last is exported."""
    config = TrainConfig(dataset="clusters", model="vae", hidden=(16,), latent=2, epochs=2, patience=1, train_size=256, batch_size=64)
    result = train(config, tmp_path / "run", log=lambda _: None, progress=False)
    assert result.kept is None and len(result.metrics) == 2 and all(row["cov_error"] == "" for row in result.metrics)
