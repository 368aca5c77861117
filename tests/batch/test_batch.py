"""Batches on a real dask.distributed LocalCluster of 2 workers, running real Stan fits."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from surrogate.batch import build_tasks, run_batch
from surrogate.batch import runner as batch_runner
from surrogate.cli import main
from surrogate.errors import SurrogateError

SETTINGS = {"model": "exact", "lengthscale-prior": "0.3", "chains": 2, "warmup": 300, "draws": 300}
SEEDS = (1, 2, 3, 4)


def write_spec(folder, tasks, options=SETTINGS, data="data.json", name="spec.json"):
    spec = {"command": "gp-fit", "args": [data], "options": options, "tasks": tasks}
    path = folder / name
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def gp_batch(tmp_path_factory):
    """A 1-D GP data set, a 4-task spec (seeds 1-4) and the 4 commands run one by one."""
    folder = tmp_path_factory.mktemp("batch")
    result = CliRunner().invoke(main, ["gp-simulate", "--dim", "1", "--grid", "30", "--lengthscale", "0.3", "--observed", "0.5",
                                       "--likelihood", "gaussian", "--seed", "5", "-o", str(folder / "data.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    spec = write_spec(folder, [{"range": {"seed": "1-4"}}])
    serial = {}
    for seed in SEEDS:
        out = folder / "serial" / f"seed-{seed}"
        args = ["gp-fit", str(folder / "data.json"), *sum(([f"--{k}", str(v)] for k, v in SETTINGS.items()), []), "--seed", str(seed), "--out", str(out)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        serial[f"seed-{seed}"] = out
    return folder, spec, serial


def assert_same_draws(batch_dir, serial):
    for name, folder in serial.items():
        a = xr.open_dataset(batch_dir / name / "posterior.nc", group="posterior", engine="h5netcdf")
        b = xr.open_dataset(folder / "posterior.nc", group="posterior", engine="h5netcdf")
        for var in ("f", "intercept", "sigma"):
            np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=f"{name}: {var}")


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded worker processes (non-daemonic, as the runner makes them)."""
    import dask
    import distributed

    with dask.config.set({"distributed.worker.daemon": False}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50) as lc:
            yield lc


@pytest.mark.stan
def test_batch_equals_the_commands_run_one_by_one_and_resumes(gp_batch):
    folder, spec, serial = gp_batch
    out = folder / "local"
    record = run_batch(spec, out, workers=2, progress=False)
    assert record["scheduler"] == "LocalCluster(2)" and record["workers"] == 2
    assert record["counts"]["done"] == 4 and record["counts"]["failed"] == 0
    assert_same_draws(out, serial)
    table = json.loads((out / "batch.json").read_text())
    assert [t["name"] for t in table["tasks"]] == [f"seed-{s}" for s in SEEDS]
    for t in table["tasks"]:
        assert t["status"] == "done" and t["attempts"] == 1 and t["wall_s"] > 0
        assert t["headline"]["model"] == "exact" and 0 <= t["headline"]["coverage90"] <= 1 and t["headline"]["max_rhat"] < 1.1
    rows = (out / "batch.csv").read_text().splitlines()
    assert rows[0].startswith("name,status,wall_s,attempts,worker") and len(rows) == 5
    assert not list((out / ".staging").glob("*"))
    # the same files a single command writes, plus the task's record and its printed output
    assert {p.name for p in (out / "seed-1").iterdir()} == {p.name for p in serial["seed-1"].iterdir()} | {"task.json", "output.txt"}
    # a second run of the same spec does no work: no cluster, no attempt
    mtime = (out / "seed-1" / "posterior.nc").stat().st_mtime_ns
    result = CliRunner().invoke(main, ["batch", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 done (4 from an earlier run), 0 failed; nothing to run" in result.output
    again = json.loads((out / "batch.json").read_text())
    assert all(t["attempts"] == 1 and t["resumed"] for t in again["tasks"])
    assert (out / "seed-1" / "posterior.nc").stat().st_mtime_ns == mtime
    # the same names with other options are refused, not silently skipped
    other = write_spec(folder / "local", [{"range": {"seed": "1-4"}}], {**SETTINGS, "draws": 301}, data=str(folder / "data.json"))
    with pytest.raises(SurrogateError, match="seed-1 .* was run with another command line"):
        run_batch(other, out, workers=2, progress=False)


@pytest.mark.stan
def test_a_killed_worker_loses_nothing(gp_batch, cluster):
    folder, spec, serial = gp_batch
    out = folder / "killed"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(run_batch(spec, out, scheduler=cluster.scheduler_address, progress=False)))
    thread.start()
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline:  # the first task a worker starts: kill that worker
        started = sorted((out / ".attempts").glob("*")) if (out / ".attempts").is_dir() else []
        for path in started:
            lines = path.read_text().split()
            if len(lines) >= 3:
                victim = (path.name, int(lines[2]))
                os.kill(victim[1], signal.SIGKILL)
                break
        time.sleep(0.02)
    thread.join(timeout=300)
    assert victim is not None and not thread.is_alive()
    assert result["counts"]["done"] == 4 and result["counts"]["failed"] == 0
    tasks = {t["name"]: t for t in result["tasks"]}
    assert tasks[victim[0]]["attempts"] == 2  # rerun on a worker that lived
    assert tasks[victim[0]]["worker"].split(":")[1] != str(victim[1])
    assert_same_draws(out, serial)


@pytest.mark.stan
def test_a_failing_task_is_retried_once_then_recorded(gp_batch, cluster):
    folder, _, serial = gp_batch
    spec = write_spec(folder, [{"name": "seed-1", "options": {"seed": 1}}, {"name": "broken", "args": ["missing.json"]}], name="failing.json")
    out = folder / "failing"
    record = run_batch(spec, out, scheduler=cluster.scheduler_address, progress=False)
    tasks = {t["name"]: t for t in record["tasks"]}
    assert tasks["seed-1"]["status"] == "done" and record["counts"] == {"done": 1, "failed": 1, "pending": 0, "interrupted": 0, "resumed": 0}
    assert tasks["broken"]["status"] == "failed" and tasks["broken"]["attempts"] == 2
    assert "missing.json does not exist" in tasks["broken"]["error"]
    assert not (out / "broken").exists()
    assert "broken,failed" in (out / "batch.csv").read_text()
    assert_same_draws(out, {"seed-1": serial["seed-1"]})
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "| broken | failed |" in md and "| seed-1 | done |" in md and "missing.json does not exist" in md


# ----------------------------------------------------------------------------
# bad input, before any work


def test_spec_errors_name_what_is_wrong(tmp_path):
    base = {"command": "gp-fit", "args": ["data.json"], "tasks": [{"name": "a"}]}
    with pytest.raises(SurrogateError, match="unknown batch command 'gp-fitt'; valid commands: inpaint, gp-fit, fit"):
        build_tasks({**base, "command": "gp-fitt"}, tmp_path)
    with pytest.raises(SurrogateError, match=r"task a: unknown option 'chain' of `surrogate gp-fit`; valid options: .*chains.*seed"):
        build_tasks({**base, "options": {"chain": 4}}, tmp_path)
    with pytest.raises(SurrogateError, match="repeated: a"):
        build_tasks({**base, "tasks": [{"name": "a"}, {"name": "a", "options": {"seed": 2}}]}, tmp_path)
    with pytest.raises(SurrogateError, match="repeated: seed-2"):
        build_tasks({**base, "tasks": [{"range": {"seed": "1-3"}}, {"name": "seed-2"}]}, tmp_path)
    with pytest.raises(SurrogateError, match="option out is set by the batch"):
        build_tasks({**base, "options": {"out": "x"}}, tmp_path)
    with pytest.raises(SurrogateError, match="task a: .*'bogus' is not one of"):
        build_tasks({**base, "options": {"model": "bogus"}}, tmp_path)
    with pytest.raises(SurrogateError, match="range of seed must be like 0-99"):
        build_tasks({**base, "tasks": [{"range": {"seed": "x-y"}}]}, tmp_path)
    with pytest.raises(SurrogateError, match="task name must be letters"):
        build_tasks({**base, "tasks": [{"name": "../up"}]}, tmp_path)
    with pytest.raises(SurrogateError, match="option verbose is a flag and takes true or false, found 'yes'"):
        build_tasks({**base, "options": {"verbose": "yes"}}, tmp_path)
    tasks = build_tasks({**base, "options": {"model": "hsgp", "adapt_delta": 0.9, "verbose": True}, "tasks": [{"range": {"seed": [3, 5]}}]}, tmp_path)
    assert [t.name for t in tasks] == ["seed-3", "seed-5"]
    assert tasks[0].argv == ("data.json", "--model", "hsgp", "--adapt-delta", "0.9", "--verbose", "--seed", "3")


def test_spec_files_and_paths(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "spec.yaml").write_text("command: gp-fit\nargs: [data.json]\noptions: {decoder: runs/d.json}\ntasks:\n  - range: {seed: 1-2}\n")
    from surrogate.batch import load_tasks

    command, tasks = load_tasks(tmp_path / "spec.yaml")
    assert command == "gp-fit" and len(tasks) == 2
    assert tasks[0].argv[:3] == (str(tmp_path / "data.json"), "--decoder", str(tmp_path / "runs/d.json"))  # read from the spec's folder
    (tmp_path / "bad.yaml").write_text("command: [unclosed\n")
    with pytest.raises(SurrogateError, match="is not valid YAML"):
        load_tasks(tmp_path / "bad.yaml")
    with pytest.raises(SurrogateError, match="does not exist"):
        load_tasks(tmp_path / "nope.json")


def test_unreachable_scheduler_names_the_address(tmp_path, monkeypatch):
    (tmp_path / "spec.json").write_text(json.dumps({"command": "gp-fit", "args": ["d.json"], "tasks": [{"name": "a"}]}))
    monkeypatch.setattr(batch_runner, "CONNECT_TIMEOUT", "1s")
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "spec.json"), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in result.output and "dask scheduler" in result.output
    assert not (tmp_path / "out" / "a").exists()


@pytest.mark.stan
def test_ctrl_c_keeps_finished_tasks_and_a_rerun_completes(gp_batch):
    import subprocess
    import sys

    folder, spec, serial = gp_batch
    out = folder / "interrupted"
    exe = os.path.join(os.path.dirname(sys.executable), "surrogate")
    # SIGINT's default restored in the child: a shell without job control starts background jobs with it ignored,
    # and Python then installs no KeyboardInterrupt handler (CI scripts may run so)
    proc = subprocess.Popen([exe, "batch", str(spec), "--out", str(out), "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.time() + 180
    while not list(out.glob("*/task.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted; completed work is saved" in output
    record = json.loads((out / "batch.json").read_text())
    assert record["counts"]["done"] >= 1 and record["counts"]["interrupted"] >= 1, record["counts"]
    done = [t["name"] for t in record["tasks"] if t["status"] == "done"]
    assert all((out / n / "task.json").is_file() for n in done)
    again = run_batch(spec, out, workers=2, progress=False)
    assert again["counts"]["done"] == 4 and again["counts"]["resumed"] == len(done)
    assert_same_draws(out, serial)
