import csv
import json

import pytest
import torch

from surrogate.errors import SurrogateError
from surrogate.nn.checkpoint import load_checkpoint, load_model
from surrogate.nn.config import TrainConfig
from surrogate.nn.train import train


def small_config(**changes):
    base = dict(dataset="mnist", model="vae", hidden=(64, 32), latent=4, epochs=2, train_size=1500, batch_size=100, seed=7)
    return TrainConfig(**(base | changes))


def quiet(config, out, mnist_dir, **kw):
    return train(config, out, data_dir=mnist_dir, log=lambda _: None, progress=False, **kw)


def test_loss_decreases_over_a_few_hundred_steps(tmp_path, mnist_dir):
    result = quiet(small_config(epochs=15, train_size=2000), tmp_path / "run", mnist_dir)  # 300 steps
    losses = [row["train_loss"] for row in result.metrics]
    assert losses[-1] < 0.6 * losses[0]
    assert result.metrics[-1]["valid_loss"] < result.metrics[0]["valid_loss"]


def test_run_directory_contents(tmp_path, mnist_dir):
    out = tmp_path / "run"
    quiet(small_config(model="cvae"), out, mnist_dir)
    assert {p.name for p in out.iterdir()} >= {"config.json", "checkpoint.pt", "metrics.csv", "learning_curves.png"}
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "cvae" and saved["hidden"] == [64, 32] and saved["latent"] == 4
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_kl"]) > 0 and float(rows[1]["valid_recon"]) > 0


def test_checkpoint_round_trip(tmp_path, mnist_dir):
    out = tmp_path / "run"
    result = quiet(small_config(), out, mnist_dir)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 2 and state["config"] == small_config()
    model, config, _ = load_model(out)
    for (name, a), (_, b) in zip(result.model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.rand(3, 784)
    torch.testing.assert_close(model.encode(x)[0], result.model.encode(x)[0])


@pytest.mark.parametrize("extra", [dict(), dict(model="cvae", denoise=0.2, kl_warmup=1.5, free_bits=0.1)])
def test_resume_equals_uninterrupted_training(tmp_path, mnist_dir, extra):
    straight = quiet(small_config(epochs=3, **extra), tmp_path / "straight", mnist_dir)
    quiet(small_config(epochs=1, **extra), tmp_path / "resumed", mnist_dir)
    resumed = quiet(small_config(epochs=3, **extra), tmp_path / "resumed", mnist_dir, resume=True)
    assert resumed.epochs_run == 2
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(straight.metrics) == drop(resumed.metrics)


def test_existing_run_is_protected(tmp_path, mnist_dir):
    out = tmp_path / "run"
    quiet(small_config(epochs=1), out, mnist_dir)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(SurrogateError, match="already holds a run .*pass resume=True to continue it or force=True"):
        quiet(small_config(epochs=1, latent=5), out, mnist_dir)
    with pytest.raises(SurrogateError, match=r"settings differ from the saved run \(latent: saved 4, given 5\)"):
        quiet(small_config(epochs=2, latent=5), out, mnist_dir, resume=True)
    assert (out / "checkpoint.pt").read_bytes() == before
    quiet(small_config(epochs=1, latent=5), out, mnist_dir, force=True)
    assert load_checkpoint(out / "checkpoint.pt")["config"].latent == 5


def test_resume_without_a_run(tmp_path, mnist_dir):
    with pytest.raises(SurrogateError, match="holds no run to resume"):
        quiet(small_config(), tmp_path / "new", mnist_dir, resume=True)


def test_sparse_and_gaussian_autoencoder_on_clusters(tmp_path):
    config = TrainConfig(dataset="clusters", model="ae", hidden=(32,), latent=2, epochs=20, sparsity=0.01, lr=3e-3)
    assert config.resolved_loss == "gaussian" and config.resolved_output_activation == "identity"
    result = train(config, tmp_path / "ae", log=lambda _: None, progress=False)
    assert result.metrics[-1]["valid_recon"] < result.metrics[0]["valid_recon"]


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(latent=0), "latent must be a positive integer, found 0"),
        (dict(epochs=-1), "epochs must be a non-negative integer, found -1"),
        (dict(activation="swish"), "unknown activation 'swish'; valid names: elu, relu, softplus, tanh"),
        (dict(dataset="cifar"), "unknown dataset 'cifar'; valid names: clusters, fashion-mnist, gp1d, gp2d, mnist"),
        (dict(loss="bce", output_activation="identity"), "loss bce needs output activation sigmoid"),
        (dict(lr=0.0), "lr must be positive, found 0.0"),
    ],
)
def test_bad_config(changes, message):
    with pytest.raises(SurrogateError, match=message):
        small_config(**changes)


def test_resume_compares_resolved_defaults():
    """A run saved with an explicit value resumes under the default that resolves to it (runs saved before
    noise_scale's default became dataset-dependent recorded 0.1)."""
    assert small_config(noise_scale=0.1, loss="bce", output_activation="sigmoid").differences(small_config()) == []
    assert small_config(noise_scale=0.5).differences(small_config()) == ["noise-scale: saved 0.5, given 0.1"]
