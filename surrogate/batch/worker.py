"""What a Dask worker runs for one task: the command itself, into a staging folder published atomically.

A task runs the ``surrogate`` command in the worker's process (so the worker keeps its imports and
engine between tasks; a program is compiled once per program text, under a lock, and loaded
from the cache after), with ``--out`` set to a fresh staging folder ``DIR/.staging/<task>.<id>``.
When the command succeeds the folder gets ``task.json`` (the command line, timing, worker) and
``output.txt`` (what the command printed), and is renamed to ``DIR/<task>/`` in one step: a task
folder is either complete or absent, whatever kills the worker. Each attempt appends a line to
``DIR/.attempts/<task>``, so batch.json can say how often a task was started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

from surrogate.batch.spec import HEADLINES, Task, click_command
from surrogate.fileio import write_json

TASK_FILE = "task.json"  # written last, inside the staging folder: a task folder with it is finished
STAGING = ".staging"
ATTEMPTS = ".attempts"


def _chain_process_init(worker_pid: int) -> None:
    """In each of httpstan's chain processes: ignore Ctrl-C (as httpstan does) and exit when the worker is gone."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        while os.getppid() == worker_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def stan_worker_plugin():
    """A Dask worker plugin that ties PyStan's chain processes to their worker.

    httpstan runs chains in a module-level ``ProcessPoolExecutor`` whose processes outlive a
    worker that is closed or killed (they hold each other's pipes open) and then idle forever.
    On each worker this plugin gives httpstan a pool whose processes exit when their worker is
    gone, and shuts it down with the worker.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class StanChainProcesses(WorkerPlugin):
        name = "surrogate-stan-chain-processes"

        def setup(self, worker):
            try:
                import httpstan.services_stub as stub
            except ImportError:  # no PyStan on this worker: CmdStan's processes are cmdstanpy's
                return
            import concurrent.futures
            import multiprocessing

            stub.executor = concurrent.futures.ProcessPoolExecutor(mp_context=multiprocessing.get_context("fork"), initializer=_chain_process_init,
                                                                   initargs=(os.getpid(),))  # fmt: skip

        def teardown(self, worker):
            with contextlib.suppress(Exception):
                import httpstan.services_stub as stub

                stub.executor.shutdown(wait=False, cancel_futures=True)

    return StanChainProcesses()


class TaskFailed(Exception):
    """A task's command failed; the message is the command's error and its last output lines."""


def finished(out: Path, name: str) -> dict | None:
    """The task record of a finished task folder, else None."""
    path = out / name / TASK_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def headline(command: str, folder: Path) -> dict:
    """The command's headline numbers from the task folder's diagnostics.json (scalars only)."""
    path = folder / "diagnostics.json"
    if not path.is_file():
        return {}
    diag = json.loads(path.read_text())
    return {k: diag[k] for k in HEADLINES[command] if k in diag and (diag[k] is None or isinstance(diag[k], (int, float, str, bool)))}


def run_task(task: Task, out: str) -> dict:
    """Run one task on this worker; return its record (raises :class:`TaskFailed` on failure)."""
    out = Path(out)
    done = finished(out, task.name)
    if done is not None:  # an earlier attempt finished (e.g. its worker died after publishing)
        return done
    attempts = out / ATTEMPTS / task.name
    attempts.parent.mkdir(parents=True, exist_ok=True)
    with attempts.open("a") as fh:
        fh.write(f"{time.time():.3f} {socket.gethostname()} {os.getpid()}\n")
    staging = out / STAGING / f"{task.name}.{uuid.uuid4().hex[:8]}"
    staging.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    started = time.time()
    # a real file, not a StringIO: httpstan silences the compiler only when stderr has a file descriptor
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as printed:
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                click_command(task.command).main(args=[*task.argv, "--out", str(staging)], prog_name=f"surrogate {task.command}",
                                                 standalone_mode=False)  # fmt: skip
        except KeyboardInterrupt:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except (Exception, SystemExit) as exc:  # the command's error, or its exit
            shutil.rmtree(staging, ignore_errors=True)
            message = exc.format_message() if hasattr(exc, "format_message") else f"{type(exc).__name__}: {exc}"
            printed.seek(0)
            tail = "\n".join(printed.read().strip().splitlines()[-5:])
            raise TaskFailed(f"{message}" + (f"\n{tail}" if tail else "")) from None
        printed.seek(0)
        text = printed.read()
    wall = time.perf_counter() - t0
    final = out / task.name
    text = text.replace(str(staging), str(final))
    (staging / "output.txt").write_text(text)
    record = {"name": task.name, "command": task.command, "argv": list(task.argv), "status": "done", "wall_s": round(wall, 3),
              "started": started, "finished": time.time(), "worker": f"{socket.gethostname()}:{os.getpid()}",
              "headline": headline(task.command, staging)}  # fmt: skip
    write_json(staging / TASK_FILE, record)
    try:
        os.rename(staging, final)  # atomic: the folder appears complete, or not at all
    except OSError:  # another attempt published it first (a worker thought dead came back)
        shutil.rmtree(staging, ignore_errors=True)
        return finished(out, task.name) or record
    return record
