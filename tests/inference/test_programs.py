"""The Stan programs: their files, the decoder parity with PyTorch, the engines around them."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ENGINE, random_model, softmax

from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings, get_engine
from surrogate.inference.cmdstan_engine import CmdStanEngine
from surrogate.inference.fit import parse_elapsed
from surrogate.inference.programs import program_source, stan_dir
from surrogate.inference.pystan_engine import PyStanEngine
from surrogate.nn.export import decoder_stan_data
from surrogate.tasks.inpaint import Observation, stan_data

pytestmark = pytest.mark.stan


def stanc() -> Path:
    import httpstan

    return Path(httpstan.__file__).parent / "stanc"


# ----------------------------------------------------------------------------
# the Stan files themselves


STAN_FILES = sorted(str(p.relative_to(stan_dir())) for p in [*stan_dir().glob("*.stan"), *stan_dir().glob("include/*.stanfunctions")])


def test_every_stan_file_is_checked():
    assert len(STAN_FILES) == 18 and {"include/decoder.stanfunctions", "include/areas.stanfunctions", "areas_bym2.stan"} <= set(STAN_FILES)


@pytest.mark.parametrize("name", STAN_FILES)
def test_stan_files_are_auto_format_clean(name):
    path = stan_dir() / name
    formatted = subprocess.run(
        [stanc(), "--auto-format", "--include-paths", str(stan_dir() / "include"), str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert formatted.rstrip() == path.read_text().rstrip()


@pytest.mark.parametrize("program", ["inpaint", "inpaint_dominant", "gp_surrogate", "gp_exact", "gp_hsgp", "areas_surrogate", "areas_bym2",
                                     "areas_car", "areas_gp", "areas_hsgp", "spacetime_bym2", "spacetime_surrogate"])
def test_every_data_declaration_is_commented(program):
    text = program_source(program)[1]  # the includes inlined
    block = re.search(r"^data \{\n(.*?)^\}", text, re.S | re.M).group(1)
    declarations = [line for line in block.splitlines() if line.strip() and not line.strip().startswith("//")]
    assert len(declarations) >= 15
    undocumented = [line for line in declarations if "//" not in line]
    assert not undocumented


# ----------------------------------------------------------------------------
# parity: the Stan decoder equals the PyTorch decoder


CASES = [
    ("cvae", (16,), "elu", "sigmoid"),
    ("cvae", (16, 8), "tanh", "identity"),
    ("vae", (10, 8, 6), "relu", "sigmoid"),
    ("cvae", (12, 10, 8, 6), "softplus", "sigmoid"),
    ("vae", (9, 7), "elu", "identity"),
]


@pytest.mark.parametrize("kind, hidden, activation, output", CASES)
def test_stan_decoder_matches_pytorch(kind, hidden, activation, output):
    model = random_model(kind, hidden, latent=3, activation=activation, output_activation=output, classes=4, seed=len(hidden))
    decoder = decoder_stan_data(model, activation, output)
    K, C, D = decoder["K"], decoder["C"], decoder["D"]
    rng = np.random.default_rng(5)
    thetas = 1.5 * rng.standard_normal((4, K + C))
    missing = np.arange(D) % 3 == 0
    obs = Observation(rng.random(D), missing, True)
    settings = SamplerSettings(chains=4, warmup=0, draws=1, init=[{"theta": t.tolist()} for t in thetas])
    fit = get_engine(ENGINE).run("inpaint", stan_data(decoder, obs, 0.3), settings, fixed_param=True)
    np.testing.assert_array_equal(fit.draws["theta"][:, 0], thetas)

    z = torch.from_numpy(thetas[:, :K])
    c = torch.from_numpy(softmax(thetas[:, K:])) if C else None
    expected = model.double().decode(z, c).detach().numpy()
    y_hat = fit.draws["y_hat"][:, 0]
    assert np.abs(y_hat - expected).max() <= 1e-6
    np.testing.assert_array_equal(fit.draws["y_mis"][:, 0], y_hat[:, missing])
    if C:
        np.testing.assert_allclose(fit.draws["class_probs"][:, 0], softmax(thetas[:, K:]), atol=1e-12)
    resid = (obs.y[~missing] - expected[:, ~missing]) / 0.3
    log_lik = -0.5 * resid**2 - np.log(0.3) - 0.5 * np.log(2 * np.pi)  # pointwise, one per observed pixel
    assert fit.draws["log_lik"].shape == (4, 1, int((~missing).sum()))
    np.testing.assert_allclose(fit.draws["log_lik"][:, 0], log_lik, atol=1e-6)



def test_engine_selection_errors(monkeypatch):
    with pytest.raises(SurrogateError, match="unknown engine 'jags'; valid names: auto, cmdstan, pystan"):
        get_engine("jags")
    monkeypatch.setenv("CMDSTAN", "/nonexistent/cmdstan")
    with pytest.raises(SurrogateError, match="engine cmdstan was requested but no CmdStan installation was found"):
        CmdStanEngine()
    with pytest.raises(SurrogateError, match="chains must be a positive integer, found 0"):
        SamplerSettings(chains=0).validate()
    with pytest.raises(SurrogateError, match="dense_metric is not available with engine pystan"):
        PyStanEngine().run("inpaint", {}, SamplerSettings(dense_metric=True))


def test_elapsed_time_is_read_from_stan_output():
    draws = '{"topic": "sample", "values": [-1.5e-3, 2.0, 7e+1]}\n' * 2000
    report = "Elapsed Time: 1.5e-2 seconds (Warm-up)\n               0.75 seconds (Sampling)\n"
    assert parse_elapsed(draws + report) == {"warmup_s": 0.015, "sampling_s": 0.75}
    assert all(np.isnan(v) for v in parse_elapsed(draws).values())


def test_pystan_runs_its_requests_inside_a_running_event_loop():
    """Jupyter runs an event loop: the engine's requests then run on a loop of their own in a worker thread."""
    import asyncio
    import threading

    from surrogate.inference.pystan_engine import run_coroutine

    async def where():
        return threading.current_thread().name

    async def inside():
        return run_coroutine(where())

    assert run_coroutine(where()) == threading.current_thread().name  # no loop running: asyncio.run here
    assert asyncio.run(inside()).startswith("surrogate-pystan")


def test_cmdstan_gives_the_same_draws_as_pystan():
    try:
        cmdstan = CmdStanEngine()
    except SurrogateError as exc:
        pytest.skip(f"CmdStan is not installed here ({exc}); PyStan is the engine in use")
    model = random_model("cvae", (12, 8), latent=3, classes=4, seed=9)
    decoder = decoder_stan_data(model, "elu", "sigmoid")
    obs = Observation(np.random.default_rng(1).random(12), np.arange(12) % 2 == 0, True)
    data = stan_data(decoder, obs, 0.2)
    settings = SamplerSettings(chains=2, warmup=200, draws=100, seed=11)
    a, b = PyStanEngine().run("inpaint", data, settings), cmdstan.run("inpaint", data, settings)
    np.testing.assert_allclose(a.draws["theta"], b.draws["theta"], rtol=1e-8)



def test_fit_cache_is_not_emptied_under_a_concurrent_run(tmp_path, monkeypatch):
    """A run empties httpstan's fit cache only when no other run (another process) is sampling the model."""
    import httpstan.cache

    from surrogate.inference.pystan_engine import PyStanEngine

    monkeypatch.setattr(httpstan.cache, "model_directory", lambda name: tmp_path / name)
    fits = tmp_path / "models" / "m1" / "fits"
    fits.mkdir(parents=True)
    other = fits / "other.jsonlines.gz"
    other.write_bytes(b"in flight")
    with PyStanEngine.fits_in_use("models/m1") as lock:  # another run holds the shared lock while it samples
        import subprocess
        import sys

        code = "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)"
        assert subprocess.run([sys.executable, "-c", code, str(lock)]).returncode != 0  # exclusive is refused meanwhile
        PyStanEngine.forget_fits("models/m1", lock)
        assert other.exists()
    PyStanEngine.forget_fits("models/m1", lock)
    assert not other.exists()
