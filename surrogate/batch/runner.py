"""Run a batch of independent fits on Dask: a LocalCluster on this machine, or a running scheduler.

``run_batch(spec, out)`` submits every unfinished task to dask.distributed, one task per worker
thread (Stan chains are processes of their own, so a worker has one thread), and records every
task's status, timing and headline numbers in ``DIR/batch.json`` and ``DIR/batch.csv`` after each
one ends. Finished tasks are skipped on a second run (resume); a task that raises is retried once
by Dask and then recorded as failed with its error, without stopping the rest; a task whose worker
dies is rerun by the scheduler elsewhere (up to Dask's ``allowed-failures``). Ctrl-C cancels what is
still queued and leaves the finished task folders intact.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from surrogate.batch.spec import Task, load_tasks
from surrogate.batch.worker import ATTEMPTS, STAGING, TaskFailed, finished, run_task, stan_worker_plugin
from surrogate.errors import SurrogateError
from surrogate.fileio import write_json, write_text

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

FORMAT = "surrogate-batch/1"
CONNECT_TIMEOUT = "10s"
RETRIES = 1  # a task that raises is run once more before it is recorded as failed


def import_distributed():
    try:
        import dask
        import distributed
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise SurrogateError(f"batches need dask.distributed: {exc}; pip install 'dask[distributed]'") from None
    return dask, distributed


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None):
    """A Dask client: connected to ``scheduler``, or to a new LocalCluster of ``workers`` single-threaded workers."""
    dask, distributed = import_distributed()
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address
            raise SurrogateError(f"cannot reach the Dask scheduler at {scheduler!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                 "start one with `dask scheduler` and workers with `dask worker ADDRESS --nthreads 1`, check the address "
                                 "(tcp://host:8786), or leave out --scheduler to run on this machine") from None  # fmt: skip
        try:
            yield client, scheduler, sum(client.nthreads().values())
        finally:
            client.close()
        return
    n = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SurrogateError(f"workers must be a positive integer, found {workers!r}")
    # Stan's engines start processes of their own (httpstan's chains, CmdStan): workers must not be daemons
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                           silence_logs=logging.ERROR)  # fmt: skip
        client = distributed.Client(cluster)
        try:
            yield client, f"LocalCluster({n})", n
        finally:
            with contextlib.suppress(Exception):
                client.close()
            with contextlib.suppress(Exception):
                cluster.close()


@contextlib.contextmanager
def batch_lock(out: Path):
    """One batch run per folder at a time."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".batch.lock", "a") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SurrogateError(f"another batch is running in {out}; wait for it or use another --out") from None
        yield


def attempts(out: Path, name: str) -> int:
    path = out / ATTEMPTS / name
    return len(path.read_text().splitlines()) if path.is_file() else 0


def write_table(out: Path, record: dict) -> None:
    """``batch.json`` (everything) and ``batch.csv`` (a row per task, headline numbers as columns)."""
    write_json(out / "batch.json", record)
    keys: list[str] = []
    for t in record["tasks"]:
        keys += [k for k in t.get("headline", {}) if k not in keys]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["name", "status", "wall_s", "attempts", "worker", *keys, "error"])
    for t in record["tasks"]:
        h = t.get("headline", {})
        writer.writerow([t["name"], t["status"], t.get("wall_s", ""), t.get("attempts", ""), t.get("worker", ""),
                         *[h.get(k, "") for k in keys], (t.get("error") or "").splitlines()[0] if t.get("error") else ""])  # fmt: skip
    write_text(out / "batch.csv", buf.getvalue())


class Progress:
    """A bar over tasks (done / running / failed) on a terminal; a line per finished task elsewhere."""

    def __init__(self, total: int, show: bool):
        from tqdm import tqdm

        self.live = show and sys.stderr.isatty()
        self.show = show
        self.bar = tqdm(total=total, desc="tasks", unit="task", file=sys.stderr) if self.live else None
        self.n, self.total = 0, total

    def update(self, running: int, failed: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"running {running}, failed {failed}")

    def finished(self, line: str) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(line, file=sys.stderr)
        elif self.show:
            print(f"[{self.n}/{self.total}] {line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe(rec: dict) -> str:
    if rec["status"] != "done":
        return f"{rec['name']}: {rec['status']}: {(rec.get('error') or '').splitlines()[0] if rec.get('error') else ''}"
    h = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(rec.get("headline", {}).items())[:4])
    return f"{rec['name']}: done in {rec['wall_s']:.1f} s" + (f" ({h})" if h else "")


def run_batch(spec_path: str | Path, out: str | Path, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True) -> dict:  # fmt: skip
    """Run a spec's tasks on Dask into ``out``; return the batch record (what batch.json holds)."""
    out = Path(out).resolve()
    command, tasks = load_tasks(spec_path)
    with batch_lock(out):
        records: dict[str, dict] = {}
        todo: list[Task] = []
        for task in tasks:
            done = finished(out, task.name)
            if done is None:
                records[task.name] = {"name": task.name, "status": "pending"}
                todo.append(task)
            elif tuple(done.get("argv", ())) != task.argv:
                raise SurrogateError(f"task {task.name} in {out} was run with another command line ({' '.join(done.get('argv', []))}); "
                                     f"the spec now gives ({' '.join(task.argv)}): use another --out, or remove {out / task.name} to rerun it")  # fmt: skip
            else:
                records[task.name] = {**done, "resumed": True}
        shutil.rmtree(out / STAGING, ignore_errors=True)  # what killed attempts left behind
        record = {"format": FORMAT, "command": command, "spec": str(Path(spec_path).resolve()), "out": str(out), "scheduler": None,
                  "workers": None, "started": time.time(), "wall_s": None, "counts": {}, "tasks": []}  # fmt: skip

        def save(status_of_rest: str | None = None) -> None:
            if status_of_rest:
                for r in records.values():
                    if r["status"] in ("pending", "running"):
                        r["status"] = status_of_rest
            for r in records.values():
                r["attempts"] = attempts(out, r["name"])
            record["tasks"] = [records[t.name] for t in tasks]
            record["counts"] = {s: sum(r["status"] == s for r in record["tasks"]) for s in ("done", "failed", "pending", "interrupted")}
            record["counts"]["resumed"] = sum(bool(r.get("resumed")) for r in record["tasks"])
            record["wall_s"] = round(time.time() - record["started"], 3)
            write_table(out, record)

        if not todo:
            save()
            return record
        bar = Progress(len(todo), progress)
        with dask_client(scheduler, workers) as (client, where, nthreads):
            from distributed import wait

            record["scheduler"], record["workers"] = where, nthreads
            client.register_plugin(stan_worker_plugin())
            save()
            futures = {client.submit(run_task, t, str(out), key=f"surrogate-task-{t.name}-{os.getpid()}-{time.time_ns()}", retries=RETRIES,
                                     pure=False): t for t in todo}  # fmt: skip
            pending = set(futures)
            try:
                while pending:
                    try:
                        done, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
                    except TimeoutError:  # none finished within the second
                        done = set()
                    for fut in done:
                        task = futures[fut]
                        try:
                            records[task.name] = {**fut.result(), "resumed": False}
                        except TaskFailed as exc:
                            records[task.name] = {"name": task.name, "status": "failed", "error": str(exc), "argv": list(task.argv)}
                        except Exception as exc:  # KilledWorker (its workers kept dying), CancelledError
                            records[task.name] = {"name": task.name, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                                  "argv": list(task.argv)}  # fmt: skip
                        bar.finished(describe(records[task.name]))
                    if done:
                        save()
                    keys = {k for ks in client.processing().values() for k in ks}
                    bar.update(sum(f.key in keys for f in pending), sum(r["status"] == "failed" for r in records.values()))
            except KeyboardInterrupt:
                client.cancel(list(pending))
                for task in futures.values():  # tasks that finished while their results were on the way are done
                    done_record = finished(out, task.name) if records[task.name]["status"] == "pending" else None
                    if done_record is not None:
                        records[task.name] = {**done_record, "resumed": False}
                save("interrupted")
                raise
            finally:
                bar.close()
        save()
    return record
