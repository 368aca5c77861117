"""Compile the toolkit's Stan programs ahead of use, several at once.

Each program is compiled once per program text and cached (httpstan's cache for PyStan, a folder
per text hash for CmdStan). A compile is one single-threaded C++ build of about 45 s and 2 GB, so
compiling the programs in ``jobs`` processes at once takes about 1/jobs of the time: worth it on a
fresh machine before a test run, a batch on a cluster (whose workers then only load them) or a demo.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time

from surrogate.errors import check_positive_int
from surrogate.inference.programs import program_file, stan_dir


def _compile_one(args: tuple[str, str]) -> dict:
    engine_name, program = args
    from surrogate.inference import get_engine

    engine = get_engine(engine_name)
    t0 = time.perf_counter()
    if engine.name == "pystan":
        compiled_now = engine.compile(program)
    else:  # cmdstanpy compiles unless its executable is up to date, and does not say which
        engine.model(program)
        compiled_now = None
    return {"program": program, "engine": engine.name, "compiled_now": compiled_now, "seconds": round(time.perf_counter() - t0, 1)}


def compile_programs(programs: tuple[str, ...] = (), jobs: int = 2, engine: str = "auto") -> list[dict]:
    """Compile ``programs`` (default: every ``stan/*.stan``) in ``jobs`` processes; one record per program."""
    check_positive_int("jobs", jobs)
    names = list(programs) or sorted(p.stem for p in stan_dir().glob("*.stan"))
    for name in names:
        program_file(name)  # unknown names list the valid ones
    context = multiprocessing.get_context("spawn")  # a clean process per compile: no inherited event loop or threads
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(names)), mp_context=context) as pool:
        return list(pool.map(_compile_one, [(engine, n) for n in names]))
