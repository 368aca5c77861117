"""Shared fixtures: real MNIST from the resolved data folder, small real trainings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from surrogate.data.mnist import resolve_data_dir
from surrogate.nn.config import TrainConfig

#: The engine the sampling tests run on: PyStan here and in CI; SURROGATE_TEST_ENGINE=cmdstan (with CMDSTAN set)
#: runs them on a real CmdStan. Tests of one engine's own features name it.
ENGINE = os.environ.get("SURROGATE_TEST_ENGINE", "pystan")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The MNIST folder ($SURROGATE_DATA_DIR in CI); the tests read the real files.

    Where no folder holds them they are downloaded into the cache, or the offline
    error says which files to put where.
    """
    from surrogate.data.mnist import load_images

    load_images("mnist", "test", limit=1)
    folder, _ = resolve_data_dir("mnist")
    return folder


@pytest.fixture(scope="session")
def small_cvae(tmp_path_factory, mnist_dir) -> Path:
    """A small CVAE trained for real on 20,000 MNIST digits (about 20 s on 2 cores), exported."""
    from surrogate.nn.export import export_decoder
    from surrogate.nn.train import train

    out = tmp_path_factory.mktemp("runs") / "cvae"
    config = TrainConfig(dataset="mnist", model="cvae", hidden=(400, 200), latent=8, epochs=12, train_size=20_000, seed=3)
    train(config, out, data_dir=mnist_dir, log=lambda _: None, progress=False)
    export_decoder(out)
    return out


GP_GRID, GP_ELL = 50, 0.3


@pytest.fixture(scope="session")
def gp_vae(tmp_path_factory):
    """A PriorVAE briefly trained on 1-D Matérn 5/2 draws at lengthscale 0.3 (about 40 s on 2 cores), exported."""
    from surrogate.nn.export import export_decoder
    from surrogate.nn.train import train

    out = tmp_path_factory.mktemp("gp") / "vae"
    config = TrainConfig(dataset="gp1d", grid=GP_GRID, model="vae", lengthscale=(GP_ELL,), hidden=(64, 64), latent=8, epochs=60,
                         lr=3e-3, batch_size=64, epoch_size=5000, seed=1)  # fmt: skip
    train(config, out, log=lambda _: None, progress=False)
    export_decoder(out)
    return out


N_DIGITS = 6


@pytest.fixture(scope="session")
def inpainted(small_cvae, mnist_dir):
    """Six test digits inpainted with the small CVAE (2 chains each); the first writes its outputs."""
    from surrogate.data import load_split
    from surrogate.inference import SamplerSettings
    from surrogate.tasks.inpaint import Observation, random_mask, run_inpaint

    x, y = load_split("mnist", "test", data_dir=mnist_dir, limit=N_DIGITS)
    x_train, _ = load_split("mnist", "train", data_dir=mnist_dir, limit=10_000)
    mean_image = x_train.mean(axis=0)
    results = []
    for i in range(N_DIGITS):
        missing = random_mask(784, 0.5, seed=100 + i)
        obs = Observation(x[i].astype(np.float64), missing, True, int(y[i]), f"test[{i}]")
        settings = SamplerSettings(chains=2, warmup=300, draws=300, seed=i + 1)
        out = small_cvae / f"inpaint{i}" if i == 0 else None
        result = run_inpaint(small_cvae / "decoder.json", obs, 0.1, settings, ENGINE, out)
        baseline = float(np.sqrt(np.mean((mean_image[missing] - x[i][missing]) ** 2)))
        results.append((obs, result, baseline))
    return results


def random_model(kind="cvae", hidden=(16, 8), latent=3, activation="elu", output_activation="sigmoid", input_dim=12, classes=4, seed=0):
    import torch

    from surrogate.nn.models import MLPAutoencoder

    torch.manual_seed(seed)
    model = MLPAutoencoder(kind, input_dim, hidden, latent, classes if kind == "cvae" else 0, activation, output_activation)
    with torch.no_grad():  # larger weights than the default init, so activations leave their linear range
        for p in model.parameters():
            p.mul_(2.0)
    return model.eval()


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


os.environ.setdefault("MPLBACKEND", "Agg")
