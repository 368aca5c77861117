"""Both engines without CmdStan installed: a real CmdStan 2.35.0 run's CSV files (a fixture in
../shared) read through the CmdStan engine's conversion, the same program sampled by PyStan, and
what a sampling command prints at a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from conftest import ENGINE

from surrogate.errors import SurrogateError
from surrogate.inference import SamplerSettings, console
from surrogate.inference.cmdstan_engine import (
    check_cmdstanpy_version,
    console_excerpt,
    csv_chain_order,
    from_cmdstanpy,
    progress_hook,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(os.environ.get("SURROGATE_FIXTURES_DIR", ROOT.parent / "shared" / "fixtures")) / "cmdstan-2.35.0" / "inpaint"
FIXTURE_SETTINGS = SamplerSettings(chains=2, warmup=200, draws=100, seed=11)  # the fixture's README
needs_fixture = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"the CmdStan fixture is not at {FIXTURE} (CI has it in ../shared)")
NOISE = ["Gradient evaluation took", "Adjust your expectations", "Building", "Sampling:", "Messages received", "has no priors",
         "AppKey", "Warning", "ArviZ is undergoing", "found in cache", "cmdstanpy", "Iteration:", "Elapsed Time"]  # fmt: skip


@pytest.fixture(scope="module")
def cmdstan_fit():
    import cmdstanpy

    return cmdstanpy.from_csv(str(FIXTURE / "csv"))


@needs_fixture
def test_cmdstan_output_converts_with_names_shapes_stats_and_timings(cmdstan_fit):
    fit = from_cmdstanpy(cmdstan_fit, FIXTURE_SETTINGS)
    data = json.loads((FIXTURE / "data.json").read_text())
    K, C, D, n_obs = data["K"], data["C"], data["D"], data["N_obs"]
    shapes = {k: v.shape for k, v in fit.draws.items()}
    assert shapes == {"theta": (2, 100, K + C), "sigma": (2, 100), "z": (2, 100, K), "class_probs": (2, 100, C),
                      "y_hat": (2, 100, D), "y_mis": (2, 100, D - n_obs), "log_lik": (2, 100)}  # fmt: skip
    assert set(fit.stats) == {"lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging", "energy"}
    assert fit.stats["diverging"].dtype == bool and fit.stats["tree_depth"].dtype == np.int64
    np.testing.assert_allclose(fit.draws["class_probs"].sum(-1), 1, atol=1e-12)
    # chains in chain-id order: the step size each CSV reports for its chain (files listed in any order)
    steps = {int(re.search(r"_(\d)\.csv", p.name).group(1)): float(re.search(r"# Step size = ([0-9.]+)", p.read_text()).group(1))
             for p in (FIXTURE / "csv").glob("*.csv")}  # fmt: skip
    np.testing.assert_allclose(fit.stats["step_size"][:, 0], [steps[1], steps[2]], rtol=1e-5)
    assert all(t > 0 for t in fit.timing["warmup_s"] + fit.timing["sampling_s"]) and len(fit.timing["warmup_s"]) == 2
    assert fit.sampler_problems()["divergences"] == int(fit.stats["diverging"].sum())


@needs_fixture
def test_chain_order_comes_from_the_files_not_their_listing(cmdstan_fit):
    files = cmdstan_fit.runset.csv_files
    keys = csv_chain_order(files)
    assert sorted(keys) == [(1, 1), (1, 2)]  # one process, two chains: first id 1, files _1 and _2
    assert csv_chain_order(list(reversed(files))) == list(reversed(keys))


@needs_fixture
@pytest.mark.stan
def test_pystan_draws_equal_the_real_cmdstan_run(cmdstan_fit):
    from surrogate.inference.pystan_engine import PyStanEngine

    cmdstan = from_cmdstanpy(cmdstan_fit, FIXTURE_SETTINGS)
    pystan = PyStanEngine().run(FIXTURE / "inpaint.stan", json.loads((FIXTURE / "data.json").read_text()), FIXTURE_SETTINGS)
    for name, values in cmdstan.draws.items():
        np.testing.assert_allclose(pystan.draws[name], values, rtol=1e-12, atol=1e-14, err_msg=name)
    for name in ("lp", "step_size", "n_steps", "diverging"):
        np.testing.assert_array_equal(pystan.stats[name], cmdstan.stats[name], err_msg=name)
    assert "## stanc warnings" in pystan.log and "## chain 2" in pystan.log and "Gradient evaluation took" in pystan.log


def test_cmdstanpy_versions_outside_the_supported_range_are_refused():
    check_cmdstanpy_version("1.3.2")
    check_cmdstanpy_version("1.10.0")
    for found in ("1.2.0", "2.0.1", "unknown"):
        with pytest.raises(SurrogateError, match=f"engine cmdstan needs cmdstanpy>=1.3,<2, found cmdstanpy {found}"):
            check_cmdstanpy_version(found)


def test_cmdstan_errors_show_the_console_lines_that_explain_them():
    message = ("Error during sampling:\nChain [1] Iteration:    1 / 300 [  0%]  (Warmup)\n"
               "Exception: normal_lpdf: Random variable[1] is nan, but must be not nan! (in 'inpaint.stan', line 207)\n"
               "Exception: normal_lpdf: Random variable[1] is nan, but must be not nan! (in 'inpaint.stan', line 207)\n"
               "Initialization failed.\nCommand and output files:\nRunSet: chains=2 ...\n"
               "Consider re-running with show_console=True if the above output is unclear!")  # fmt: skip
    text = console_excerpt(message)
    assert text.splitlines()[1:] == ["  Exception: normal_lpdf: Random variable[1] is nan, but must be not nan! (in 'inpaint.stan', line 207)",
                                     "  Initialization failed."]  # fmt: skip
    long = console_excerpt("Error during sampling:\n" + "\n".join(f"line {i}" for i in range(30)))
    assert "line 11" in long and "line 12" not in long and "18 more lines" in long


def test_cmdstan_errors_read_the_console_file_when_the_message_has_no_lines(tmp_path):
    console_file = tmp_path / "inpaint-20261202011308-stdout.txt"
    console_file.write_text("method = sample (Default)\n  sample\n    num_samples = 1\nid = 1 (Default)\ndata\n  file = /tmp/d.json\n"
                            "num_threads = 2 (Default)\n\nCan't open specified file, \"/tmp/i.json\"\n")  # fmt: skip
    message = f"Error during sampling:\n\nCommand and output files:\nRunSet: chains=2\n console_msgs (if any):\n\t{console_file}\n"
    assert console_excerpt(message) == '\n  Can\'t open specified file, "/tmp/i.json"'


def test_cmdstanpy_progress_lines_drive_the_bars():
    class Record:
        def __init__(self):
            self.calls = []

        def update(self, chain, iteration, sampling):
            self.calls.append((chain, iteration, sampling))

    record = Record()
    hook = progress_hook(record, [1, 2])
    hook("Chain [2] Iteration: 100 / 300 [ 33%]  (Warmup)", 0)
    hook("Chain [1] Iteration: 250 / 300 [ 83%]  (Sampling)", 0)
    hook("Iteration: 50 / 300 [ 16%]  (Warmup)", 1)  # one process per chain: the process index names the chain
    hook("Gradient evaluation took 1e-05 seconds", 0)
    assert record.calls == [(1, 100, False), (0, 250, True), (1, 50, False)]


def test_bars_off_a_terminal_print_one_closing_line_per_chain(capsys):
    bars = console.ChainBars()
    bars.start("inpaint", 2, 10, 20)
    bars.update(0, 15, True)
    bars.finish(ok=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("chain 1: 100%") and "30/30" in lines[0] and lines[1].startswith("chain 2")
    with console.one_bar(2 * 2 * 30, "partitioned fits") as bar:
        for _ in range(2):
            bar.start("piece", 2, 10, 20)
            bar.update(0, 30, True)
            bar.finish(ok=True)  # chain 2 reported nothing (a cached run): counted on finishing
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("partitioned fits: 100%") and "120/120" in lines[0]


# ----------------------------------------------------------------------------
# what a user sees


def run_in_terminal(args: list[str], timeout: float = 600) -> str:
    """Run the ``surrogate`` command in a pseudo-terminal (as a user would) and return what it printed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # 40 rows, 100 columns
    proc = subprocess.Popen([sys.executable, "-c", "from surrogate.cli import main; main()", *args],
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        if not ready:
            proc.kill()
            raise TimeoutError(f"no output for {timeout} s from surrogate {' '.join(args)}")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.stan
def test_a_sampling_command_shows_bars_and_the_summary_and_no_engine_noise(small_cvae, mnist_dir, tmp_path):
    out = tmp_path / "fit"
    args = ["inpaint", str(small_cvae / "decoder.json"), "--mnist-index", "0", "--data-dir", str(mnist_dir), "--chains", "2",
            "--warmup", "200", "--draws", "200", "--engine", ENGINE, "--out", str(out)]  # fmt: skip
    screen = run_in_terminal(args)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "chain 1" in plain and "chain 2" in plain and "400/400" in plain, plain
    for line in ("inpainting mnist valid[0]", "predicted class", "max R-hat", "per chain:", "engine.log"):
        assert line in plain, plain
    for noise in NOISE:
        assert noise not in plain, f"{noise!r} reached the terminal:\n{plain}"
    lines = [ln for ln in plain.replace("\r", "\n").splitlines() if ln.strip() and not re.match(r"\s*chain \d+:", ln)]
    assert len(lines) < 20, plain  # the summary, and the bars' redraws aside
    log = (out / "engine.log").read_text()
    if ENGINE == "pystan":
        assert "has no priors" in log and "Gradient evaluation took" in log and "## chain 2" in log
    else:  # CmdStan's console (stanc's warnings appear only in the run that compiles)
        assert "## console 1" in log and "Elapsed Time" in log and "Gradient evaluation took" in log
    verbose = subprocess.run([sys.executable, "-c", "from surrogate.cli import main; main()", *args, "--verbose"],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert verbose.returncode == 0 and "Gradient evaluation took" in verbose.stderr
    assert "chain 1: 100%" in verbose.stderr and "400/400" in verbose.stderr  # off a terminal: closing lines


def test_bad_cmdstan_paths_are_refused_by_name(tmp_path):
    from surrogate.inference import get_engine

    with pytest.raises(SurrogateError, match=f"cmdstan-path must be a CmdStan installation .* found {tmp_path}"):
        get_engine("auto", tmp_path)
    with pytest.raises(SurrogateError, match="cmdstan-path applies to engine cmdstan or auto, found engine pystan"):
        get_engine("pystan", tmp_path)


def installed_cmdstan():
    from surrogate.inference.cmdstan_engine import CmdStanEngine

    try:
        return CmdStanEngine()
    except SurrogateError as exc:
        pytest.skip(f"CmdStan is not installed here ({exc}); CI has none (see ../shared/tools/cmdstan)")


@pytest.mark.stan
def test_cmdstan_runs_the_dense_metric_and_logs_its_console():
    engine = installed_cmdstan()
    data = json.loads((FIXTURE / "data.json").read_text())
    fit = engine.run(FIXTURE / "inpaint.stan", data, SamplerSettings(chains=2, warmup=200, draws=100, seed=3, dense_metric=True))
    assert fit.draws["z"].shape == (2, 100, data["K"]) and fit.engine == "cmdstan"
    assert "metric=dense_e" in fit.log and "## console 1" in fit.log
    with pytest.raises(SurrogateError, match="CmdStan failed to sample inpaint.stan: \n  .*is nan"):
        engine.run(FIXTURE / "inpaint.stan", {**data, "y_obs": [float("nan")] * data["N_obs"]}, SamplerSettings(chains=1, warmup=10, draws=10))
