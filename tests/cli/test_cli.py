import json

import pytest
import torch
from click.testing import CliRunner
from conftest import ENGINE

from surrogate.cli import main


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
        assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("command", ["train", "sample", "export", "inpaint", "doctor"])
def test_help(command):
    out = run(command, "--help").output
    assert "Usage:" in out


def test_train_help_shows_defaults():
    out = run("train", "--help").output
    for text in ("--latent", "[default: 15]", "--kl-warmup", "--free-bits", "--denoise", "--sparsity", "--resume", "--force"):
        assert text in out


def test_doctor(mnist_dir):
    out = run("doctor", "--data-dir", mnist_dir).output
    assert "torch" in out and "device        cpu" in out or "cuda" in out
    assert "pystan: usable" in out
    assert "cmdstan:" in out
    assert str(mnist_dir) in out


TRAIN = ["train", "--dataset", "mnist", "--train-size", "600", "--hidden", "32", "--latent", "3", "--epochs", "1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--latent", "0"], "latent must be a positive integer, found 0"),
        (["--epochs", "-2"], "epochs must be a non-negative integer, found -2"),
        (["--activation", "gelu"], "unknown activation 'gelu'; valid names: elu, relu, softplus, tanh"),
        (["--dataset", "svhn"], "unknown dataset 'svhn'; valid names: clusters, fashion-mnist, gp1d, gp2d, mnist"),
        (["--hidden", "a,b"], "expected comma-separated integers, found 'a,b'"),
    ],
)
def test_train_bad_options(tmp_path, args, message):
    out = run(*TRAIN, "--out", tmp_path / "r", *args, ok=False).output
    assert message in out
    assert not (tmp_path / "r").exists()


def test_train_data_dir_errors(tmp_path):
    out = run(*TRAIN, "--out", tmp_path / "r", "--data-dir", tmp_path / "none", ok=False).output
    assert "--data-dir folder" in out and "does not exist" in out
    (tmp_path / "empty").mkdir()
    out = run(*TRAIN, "--out", tmp_path / "r", "--data-dir", tmp_path / "empty", ok=False).output
    assert "lacks train-images-idx3-ubyte.gz" in out


def test_train_resume_sample_export(tmp_path, mnist_dir):
    out = tmp_path / "run"
    run(*TRAIN, "--model", "cvae", "--out", out, "--data-dir", mnist_dir)
    # a second run into the same folder is refused, nothing is overwritten
    before = (out / "checkpoint.pt").read_bytes()
    assert "already holds a run" in run(*TRAIN, "--out", out, "--data-dir", mnist_dir, ok=False).output
    assert (out / "checkpoint.pt").read_bytes() == before
    # resume takes unspecified settings from the saved run; a different one is refused
    assert "settings differ" in run("train", "--out", out, "--resume", "--latent", "4", "--epochs", "2", ok=False).output
    res = run("train", "--out", out, "--resume", "--epochs", "2", "--data-dir", mnist_dir).output
    assert "resuming" in res and "epoch   2/2" in res
    # samples: one row per class; --label must be a class
    run("sample", out, "--out", tmp_path / "s.png", "--n", "3")
    run("sample", out, "--out", tmp_path / "s2.png", "--scales", "0,2,4", "--label", "3")
    assert (tmp_path / "s.png").stat().st_size > 1000 and (tmp_path / "s2.png").stat().st_size > 1000
    assert "label must be in 0..9, found 12" in run("sample", out, "--label", "12", "--out", tmp_path / "x.png", ok=False).output
    # export
    run("export", out, "-o", tmp_path / "dec.json")
    data = json.loads((tmp_path / "dec.json").read_text())
    meta = json.loads((tmp_path / "dec.meta.json").read_text())
    assert (data["K"], data["C"], data["D"], data["L"], data["H"]) == (3, 10, 784, 1, [32, 0, 0, 0])
    assert meta["config"]["latent"] == 3 and meta["epoch"] == 2 and len(meta["weights_sha256"]) == 64


def test_export_rejects_a_non_decoder_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "run" / "checkpoint.pt")
    out = run("export", tmp_path / "run", ok=False).output
    assert "is not a surrogate checkpoint" in out
    (tmp_path / "run" / "checkpoint.pt").write_text("hello")
    assert "is not a readable PyTorch checkpoint" in run("export", tmp_path / "run", ok=False).output


@pytest.mark.stan
def test_compile_command_reports_cached_programs_and_refuses_unknown_names():
    runner = CliRunner()
    result = runner.invoke(main, ["compile", "gp_exact", "--jobs", "1", "--engine", ENGINE])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("gp_exact.stan: ") and "done in" in result.output
    again = runner.invoke(main, ["compile", "gp_exact", "--jobs", "1", "--engine", ENGINE])
    assert "gp_exact.stan: cached" in again.output or ENGINE == "cmdstan"
    bad = runner.invoke(main, ["compile", "gp_exactt"])
    assert bad.exit_code == 1 and "unknown Stan program 'gp_exactt'; valid names: " in bad.output and "inpaint_dominant" in bad.output
    bad = runner.invoke(main, ["compile", "--jobs", "0"])
    assert bad.exit_code == 1 and "jobs must be a positive integer, found 0" in bad.output


def test_library_errors_name_parameters_and_the_command_line_shows_flags():
    from surrogate.errors import as_flags

    text = "prior icar needs a rule: islands='independent' (one effect each) or islands='nearest'; give id=COLUMN; pass resume=True"
    assert as_flags(text) == "prior icar needs a rule: --islands independent (one effect each) or --islands nearest; give --id-column COLUMN; pass --resume"
    assert as_flags("rho=(0, 1) and valid=1 stay as they are") == "rho=(0, 1) and valid=1 stay as they are"
