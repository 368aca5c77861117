"""The Stan programs as a user outside the package meets them: the README's merged-JSON path, and the
programs' own checks of the decoder data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ENGINE, random_model

from surrogate.decoder.io import load_decoder, to_json_data
from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings, get_engine
from surrogate.inference.programs import program_file
from surrogate.nn.export import decoder_stan_data
from surrogate.tasks.inpaint import Observation, random_mask, stan_data

pytestmark = pytest.mark.stan


def test_readme_merged_json_path(small_cvae, tmp_path):
    """The README's recipe: decoder.json | observations.json merged into one data file, the program file as is."""
    from click.testing import CliRunner

    from surrogate.cli import main

    out = tmp_path / "inpaint"
    result = CliRunner().invoke(main, ["inpaint", str(small_cvae / "decoder.json"), "--mnist-index", "3", "--chains", "1",
                                       "--warmup", "50", "--draws", "50", "--engine", ENGINE, "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((small_cvae / "decoder.json").read_text()) | json.loads((out / "observations.json").read_text())
    (tmp_path / "data.json").write_text(json.dumps(data))
    merged = json.loads((tmp_path / "data.json").read_text())
    fit = get_engine(ENGINE).run(program_file("inpaint"), merged, SamplerSettings(chains=1, warmup=100, draws=100, seed=1))
    n_obs = merged["N_obs"]
    assert fit.draws["y_mis"].shape == (1, 100, 784 - n_obs) and fit.draws["log_lik"].shape == (1, 100, n_obs)
    assert fit.draws["theta"].shape == (1, 100, merged["K"] + merged["C"])


def test_program_rejects_widths_that_do_not_match_the_layers():
    model = random_model("vae", (6,), latent=2, input_dim=5, seed=1)
    decoder = decoder_stan_data(model, "elu", "sigmoid")
    obs = Observation(np.full(5, 0.5), random_mask(5, 0.4, 0), False)
    data = to_json_data(stan_data(decoder, obs, 0.2))
    data |= {"H": [6, 2, 0, 0], "W2": np.zeros((2, 6)).tolist(), "b2": [0.0, 0.0]}  # a second layer given, L still 1
    with pytest.raises(SurrogateError, match=r"H must hold L = 1 positive widths, then zeros; found H\[2\] = 2"):
        get_engine(ENGINE).run("inpaint", data, SamplerSettings(chains=1, warmup=10, draws=10))


def test_multistart_optima_find_the_best_mode_of_each_piece(small_cvae, mnist_dir):
    """Batched Adam starts: each piece's best optimum is a stationary point no worse than a polished random start."""
    import torch

    from surrogate.data import load_split
    from surrogate.tasks.pieces import Pieces, laplace_evidence, multistart_optima

    decoder, _ = load_decoder(small_cvae / "decoder.json")
    x, _ = load_split("mnist", "test", data_dir=mnist_dir, limit=2)
    obs = Observation(x[1].astype(np.float64), random_mask(784, 0.5, seed=7), True)
    values, optima = multistart_optima(decoder, obs, 0.1, starts=8, seed=0, steps=300)
    C = decoder["C"]
    assert values.shape == (C, 8) and optima.shape == (C, 8, decoder["K"])
    assert np.all(np.diff(values, axis=1) >= 0)  # best first
    pieces = Pieces(decoder, obs, 0.1)

    def gradient_norm(phi: np.ndarray, c: int) -> float:
        phi = torch.tensor(phi[None], requires_grad=True)
        (-pieces.log_joint(phi, torch.tensor([c]))).sum().backward()
        return float(phi.grad.norm())

    start = np.random.default_rng(0).standard_normal(decoder["K"])
    for c in (0, 5):
        assert gradient_norm(optima[c, 0], c) < 0.05 * gradient_norm(start, c)  # near a stationary point
        _, _, polished = laplace_evidence(decoder, obs, 0.1, starts=1, seed=11, c=c)
        random_start_value = -pieces.log_joint_np(polished[0][None], c)[0]
        assert values[c, 0] <= random_start_value + 1.0, (c, values[c, 0], random_start_value)
