"""`surrogate evaluate` and `surrogate latent`: ELBO terms, IWAE bounds, active units, PCA, on real trainings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from surrogate.cli import main
from surrogate.errors import SurrogateError
from surrogate.nn.checkpoint import load_model
from surrogate.nn.config import TrainConfig
from surrogate.nn.evaluate import evaluate_run, scores, split_data
from surrogate.nn.losses import elbo, kl_per_dim
from surrogate.nn.train import train


def test_the_theory_pages_worked_example():
    """Ten inputs, encoder mean (x - 2.49) / 1.31 with variance 0.5, decoder the inverse map.

    The page prints a mean KL of 0.62; its own formula, 0.5 (sigma^2 + mu^2 - 1 - log sigma^2),
    gives 0.601 on these ten inputs (0.601 too with mu or each KL rounded to two decimals),
    so the test asserts 0.60.
    """
    x = torch.tensor([1.0, 2.5, 3.8, 1.2, 4.1, 2.0, 3.5, 0.8, 4.5, 1.5], dtype=torch.float64)[:, None]
    mu = (x - 2.49) / 1.31
    logvar = torch.full_like(mu, math.log(0.5))
    kl = kl_per_dim(mu, logvar).sum(1)
    assert kl[8].item() == pytest.approx(1.27, abs=0.005)  # x = 4.5
    assert kl.mean().item() == pytest.approx(0.60, abs=0.005)
    x_hat = 1.31 * mu + 2.49  # the decoder at the encoder mean
    log_lik = -((x - x_hat) ** 2).sum(1)  # reconstruction error at the mean: 0
    assert torch.allclose(log_lik, torch.zeros(10, dtype=torch.float64), atol=1e-12)
    assert elbo(log_lik, mu, logvar).mean().item() == pytest.approx(-0.60, abs=0.005)


def small_vae(root, mnist_dir, name: str, **options):
    settings = {"dataset": "mnist", "model": "vae", "hidden": (256,), "latent": 8, "epochs": 4, "train_size": 5000, "seed": 2}
    config = TrainConfig(**(settings | options))
    train(config, root / name, data_dir=mnist_dir, log=lambda _: None, progress=False)
    return root / name


@pytest.fixture(scope="module")
def mnist_vae(tmp_path_factory, mnist_dir):
    return small_vae(tmp_path_factory.mktemp("eval"), mnist_dir, "vae")


def test_iwae_bounds_tighten_with_k_and_iwae_1_is_the_elbo(mnist_vae, mnist_dir):
    model, config, _ = load_model(mnist_vae)
    x, c, _ = split_data(config, "test", 300, mnist_dir)
    per = {k: scores(model, config, x, c, k, seed=k) for k in (1, 10, 100)}

    def paired(a, b):  # mean of a - b and its Monte Carlo standard error over the 300 examples
        d = a - b
        return d.mean(), d.std(ddof=1) / math.sqrt(len(d))

    gain, se = paired(per[1]["iwae"], per[1]["elbo"])
    assert abs(gain) < 4 * se + 1e-9, (gain, se)  # IWAE_1 is an unbiased estimate of the ELBO
    for lo, hi in ((1, 10), (10, 100)):
        gain, se = paired(per[hi]["iwae"], per[lo]["iwae"])
        assert gain > -3 * se, (lo, hi, gain, se)  # non-decreasing within Monte Carlo error
    gain, se = paired(per[100]["iwae"], per[1]["iwae"])
    assert gain > 3 * se and gain > 0.5, (gain, se)  # and the bound does tighten on a real VAE


def test_a_collapsed_vae_has_fewer_active_units(tmp_path, mnist_dir):
    # beta = 30 (measured: 1 of 8 units active; beta = 8 still kept all 8) against free bits of 0.5 nats (8 of 8)
    collapsed = evaluate_run(small_vae(tmp_path, mnist_dir, "beta30", beta=30.0), "valid", k=1, n=500, data_dir=mnist_dir)
    healthy = evaluate_run(small_vae(tmp_path, mnist_dir, "freebits", free_bits=0.5), "valid", k=1, n=500, data_dir=mnist_dir)
    assert collapsed["active_units"] < healthy["active_units"], (collapsed["active_units"], healthy["active_units"])
    assert healthy["active_units"] >= 6 and collapsed["active_units"] <= 3
    assert collapsed["kl"]["mean"] < healthy["kl"]["mean"]


def test_evaluate_and_latent_commands_write_their_outputs_and_the_run_report_shows_them(mnist_vae, mnist_dir, tmp_path):
    runner = CliRunner()
    out = mnist_vae / "evaluate"
    result = runner.invoke(main, ["evaluate", str(mnist_vae), "--k", "20", "--n", "200", "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "ELBO" in result.output and "IWAE_20" in result.output and "active units" in result.output
    ev = json.loads((out / "evaluate.json").read_text())
    assert ev["examples"] == 200 and ev["iwae_20"]["mean"] >= ev["elbo"]["mean"] - 3 * ev["elbo"]["se"]
    assert ev["elbo"]["mean"] == pytest.approx(ev["expected_log_likelihood"]["mean"] - ev["kl"]["mean"], rel=1e-6)  # float32 sums
    assert sum(ev["kl_per_dim"]) == pytest.approx(ev["kl"]["mean"], rel=1e-6) and len(ev["kl_per_dim"]) == 8
    # the linear autoencoder with K components is the yardstick, measured on the same examples
    assert 0 < ev["pca_reconstruction_mse"]["mean"] < 0.1 and 0 < ev["reconstruction_mse"]["mean"] < 0.1
    assert len((out / "scores.csv").read_text().splitlines()) == 201
    for name in ("anomalies.png", "kl_per_dim.png"):
        assert (out / name).stat().st_size > 5_000
    latent = runner.invoke(main, ["latent", str(mnist_vae), "--out", str(mnist_vae / "latent.png"), "--n", "500", "--data-dir", str(mnist_dir)])
    assert latent.exit_code == 0, latent.output and (mnist_vae / "latent.png").stat().st_size > 10_000
    report = runner.invoke(main, ["report", str(mnist_vae)])
    assert report.exit_code == 0, report.output
    page = (mnist_vae / "report.html").read_text()
    assert "Evaluation on the test split" in page and "IWAE_20" in page and "active units" in page
    assert page.count("data:image/png;base64,") >= 4  # learning curves, latent space, KL per dimension, anomalies
    import xml.etree.ElementTree as ET

    ET.fromstring(page.split("\n", 2)[2])  # well-formed XHTML after the XML declaration and doctype
    assert "![KL per latent dimension](evaluate/kl_per_dim.png)" in (mnist_vae / "report.md").read_text()


def test_evaluate_gp_prior_draws(tmp_path):
    config = TrainConfig(dataset="gp1d", grid=30, model="vae", hidden=(32,), latent=4, epochs=2, epoch_size=500, valid_size=200,
                         lengthscale=(0.3,), seed=1)  # fmt: skip
    train(config, tmp_path / "gp", log=lambda _: None, progress=False)
    result = evaluate_run(tmp_path / "gp", "test", k=5, n=100, out=tmp_path / "gp" / "evaluate")
    assert result["examples"] == 100 and np.isfinite(result["iwae_5"]["mean"]) and result["likelihood"] == "gaussian"
    assert (tmp_path / "gp" / "evaluate" / "anomalies.png").is_file()


def test_dropout_autoencoder(tmp_path, mnist_dir):
    from torch import nn

    with pytest.raises(SurrogateError, match=r"dropout must be a probability in \[0, 1\), found 1.0"):
        TrainConfig(dropout=1.0)
    run = small_vae(tmp_path, mnist_dir, "dropout", dropout=0.2, epochs=1, hidden=(128, 64))
    model, config, _ = load_model(run)
    assert config.dropout == 0.2
    assert sum(isinstance(m, nn.Dropout) for m in model.encoder) == len(config.hidden) == 2 and not any(isinstance(m, nn.Dropout) for m in model.decoder)
    x = torch.rand(4, 784)
    assert torch.equal(model.encode(x)[0], model.encode(x)[0])  # evaluation mode: no dropout


def test_bad_evaluate_input(mnist_vae, mnist_dir, tmp_path):
    runner = CliRunner()
    export_only = tmp_path / "export"
    export_only.mkdir()
    (export_only / "decoder.json").write_text("{}")
    cases = [
        ([str(export_only)], f"{export_only} holds only a decoder export (decoder.json): evaluating needs the encoder"),
        ([str(mnist_vae), "--k", "0"], "k must be a positive integer, found 0"),
        ([str(mnist_vae), "--split", "holdout"], "unknown split 'holdout'; valid names: train, valid, test"),
    ]
    for args, message in cases:
        result = runner.invoke(main, ["evaluate", *args, "--out", str(tmp_path / "o"), "--data-dir", str(mnist_dir)])
        assert result.exit_code == 1 and message in result.output, result.output
        assert not (tmp_path / "o").exists()  # nothing written
    result = runner.invoke(main, ["latent", str(export_only), "--out", str(tmp_path / "l.png")])
    assert result.exit_code == 1 and "evaluating needs the encoder" in result.output
