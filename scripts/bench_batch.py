"""Issue 16, measured: the same 20-digit partitioned batch serially and on a LocalCluster(2).

    python scripts/bench_batch.py [--decoder runs/bench/cvae/decoder.json] [--digits 20] [--json docs/bench_batch.json]

The tasks: MNIST test images 0..19, mask seed 100 + i, 50% missing, sigma 0.1, `--class-model partitioned`
with its defaults (4 chains, 1000 warmup + 2000 draws per fitted region), sampler seed 1: the
agreement digits of scripts/bench_multimodal.py.

1. Serially: the 20 `surrogate inpaint` commands one after another, each its own process (what a user
   runs without a batch runner).
2. The same spec through `run_batch` on a LocalCluster of 2 single-threaded workers.

Recorded: both wall times and their ratio; the cluster's start; per task, its wall time in the
batch against its serial one (the difference is contention: two tasks' chains share 2 cores);
the time the workers were not running a task (scheduler, transfers, the last task alone); the load
of the cached Stan program; and a check that both ways give the same class posteriors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from surrogate.fileio import write_json

OPTIONS = {"split": "test", "missing": 0.5, "sigma": 0.1, "class-model": "partitioned", "seed": 1}


def spec_for(decoder: Path, digits: int) -> dict:
    tasks = [{"name": f"test-{i}", "options": {"mnist-index": i, "mask-seed": 100 + i}} for i in range(digits)]
    return {"command": "inpaint", "args": [str(decoder.resolve())], "options": OPTIONS, "tasks": tasks}


def run_serial(spec: dict, out: Path) -> dict:
    """Each task as its own `surrogate inpaint` process; (wall of each, total)."""
    from surrogate.batch import build_tasks

    walls = {}
    t0 = time.perf_counter()
    for task in build_tasks(spec):
        folder = out / task.name
        if not (folder / "diagnostics.json").is_file():
            t = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "surrogate"), "inpaint", *task.argv, "--out", str(folder)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            walls[task.name] = time.perf_counter() - t
            (folder / "wall_s.txt").write_text(f"{walls[task.name]:.3f}\n")
        else:  # resumed: the recorded wall time
            walls[task.name] = float((folder / "wall_s.txt").read_text())
    return {"task_wall_s": walls, "wall_s": sum(walls.values()), "elapsed_this_run_s": time.perf_counter() - t0}


def cluster_start_s(workers: int) -> float:
    from surrogate.batch.runner import dask_client

    t0 = time.perf_counter()
    with dask_client(None, workers) as (client, _, _):
        client.run(os.getpid)  # every worker up and answering
        return time.perf_counter() - t0


def program_load_s(decoder: Path) -> float:
    """Loading the cached inpaint_dominant.stan with one digit's data (what each region's fit pays)."""
    from surrogate.decoder.io import load_decoder
    from surrogate.inference.pystan_engine import PyStanEngine
    from surrogate.tasks.inpaint import observation_from_mnist, random_mask
    from surrogate.tasks.pieces import Pieces

    dec, meta = load_decoder(decoder)
    obs = observation_from_mnist("mnist", "test", 0, random_mask(784, 0.5, 100))
    program, data = Pieces(dec, obs, 0.1, "partitioned").stan(dec, obs, 0)
    engine = PyStanEngine()
    engine.build(program, data, 1)  # compiled, cached
    t0 = time.perf_counter()
    engine.build(program, data, 1)
    return time.perf_counter() - t0


def class_posteriors(folder: Path, names) -> dict:
    return {n: json.loads((folder / n / "diagnostics.json").read_text())["class_posterior"] for n in names}


def main(args):
    from surrogate.batch import run_batch

    decoder = Path(args.decoder)
    if not decoder.is_file():
        raise SystemExit(f"no decoder at {decoder}: train it with `python scripts/bench_inpaint.py` (about 2 minutes) or pass --decoder")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    spec = spec_for(decoder, args.digits)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    names = [f"test-{i}" for i in range(args.digits)]

    print(f"serial: {args.digits} `surrogate inpaint --class-model partitioned` commands, one by one", flush=True)
    serial = run_serial(spec, work / "serial")
    print(f"serial wall {serial['wall_s']:.0f} s", flush=True)
    start = cluster_start_s(args.workers)
    print(f"LocalCluster({args.workers}) start {start:.1f} s", flush=True)
    batch_dir = work / "batch"
    if (batch_dir / "batch.json").is_file() and json.loads((batch_dir / "batch.json").read_text())["counts"].get("resumed") == args.digits:
        record = json.loads((batch_dir / "batch.json").read_text())
    else:
        import shutil

        shutil.rmtree(batch_dir, ignore_errors=True)
        record = run_batch(spec_path, batch_dir, workers=args.workers)
    tasks = {t["name"]: t for t in record["tasks"]}
    batch_walls = {n: tasks[n]["wall_s"] for n in names}
    busy = sum(batch_walls.values())
    p_serial, p_batch = class_posteriors(work / "serial", names), class_posteriors(batch_dir, names)
    same = max(float(np.max(np.abs(np.subtract(p_serial[n], p_batch[n])))) for n in names)
    load = program_load_s(decoder)
    result = {
        "digits": args.digits, "workers": args.workers, "options": OPTIONS, "cores": os.cpu_count(),
        "serial_wall_s": serial["wall_s"], "batch_wall_s": record["wall_s"], "speedup": serial["wall_s"] / record["wall_s"],
        "cluster_start_s": start, "program_load_s": load,
        "task_wall_s": {"serial_median": float(np.median(list(serial["task_wall_s"].values()))), "batch_median": float(np.median(list(batch_walls.values()))),
                        "batch_over_serial_median": float(np.median([batch_walls[n] / serial["task_wall_s"][n] for n in names]))},
        "worker_time_outside_tasks_s": record["wall_s"] * args.workers - busy,
        "worker_time_outside_tasks_per_task_s": (record["wall_s"] * args.workers - busy) / args.digits,
        "class_posterior_max_abs_diff_serial_vs_batch": same,
        "per_task": {n: {"serial_s": serial["task_wall_s"][n], "batch_s": batch_walls[n], "worker": tasks[n].get("worker")} for n in names},
    }  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "per_task"}, indent=1))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", default="runs/bench/cvae/decoder.json")
    parser.add_argument("--digits", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="runs/bench/batch", help="folders of both runs (serial tasks resume)")
    parser.add_argument("--json", help="also write the results here (docs/bench_batch.json)")
    main(parser.parse_args())
