"""PyStan 3 (httpstan, Stan 2.35 embedded): the default engine, offline.

PyStan's ``build`` and ``sample`` print their own progress and messages to the terminal.
This engine talks to the same in-process httpstan server with the same requests (so the
same seed gives the same draws as ``stan.Model.sample``) but keeps the messages: stanc's
warnings and each chain's Stan messages go into the run's log, progress into
:mod:`surrogate.inference.console`'s bars.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import re
import threading
import time
from pathlib import Path

import numpy as np

from surrogate.errors import SurrogateError
from surrogate.inference import console
from surrogate.inference.fit import SamplerSettings, StanFit, normalise_stats, parse_elapsed
from surrogate.inference.programs import program_source

try:
    import fcntl  # POSIX; PyStan runs on Linux and macOS only
except ImportError:  # pragma: no cover
    fcntl = None

ITERATION_RE = re.compile(r"Iteration:\s+(\d+)\s+/\s+(\d+)")
NUTS = "stan::services::sample::hmc_nuts_diag_e_adapt"
FIXED_PARAM = "stan::services::sample::fixed_param"


def first_line(text, limit: int = 400) -> str:
    """The first line of an engine's message, cut to ``limit`` characters (they can embed the data)."""
    text = str(text).strip()
    line = text.splitlines()[0] if text else "no message"
    return line if len(line) <= limit else line[:limit] + " ..."


def run_coroutine(coro):
    """``asyncio.run(coro)``; inside a running event loop (a Jupyter kernel runs one), the same in a worker
    thread with a loop of its own, so the embedded engine works in notebooks without nest_asyncio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    start_sampler_processes()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="surrogate-pystan") as pool:
        return pool.submit(asyncio.run, coro).result()


def start_sampler_processes() -> None:
    """Fork httpstan's sampler processes from this (the main) thread, before any request runs in a worker thread.

    Stan's autodiff stack is thread-local and set up for the main thread only: a sampler process forked from
    another thread crashed with a segmentation fault (measured: BrokenProcessPool in a Jupyter kernel). httpstan's
    pool uses fork, which starts all its processes at the first submission, so one trivial task started here
    is enough; later requests from the worker thread find them running.
    """
    import httpstan.services_stub

    if threading.current_thread() is threading.main_thread():
        httpstan.services_stub.executor.submit(int).result()


class PyStanEngine:
    """PyStan 3 (httpstan): compiles once per program text, caches the model on disk."""

    name = "pystan"

    def __init__(self):
        try:
            with console.known_noise():
                import httpstan.cache
                import httpstan.models

                import stan
        except ImportError as exc:
            raise SurrogateError(f"engine pystan is not usable: {exc}; pip install 'pystan>=3.10' 'setuptools<81'") from None
        self.stan, self.httpstan = stan, httpstan

    @contextlib.contextmanager
    def client(self):
        with console.known_noise():
            yield self.stan.common.HttpstanClient()

    # --- compile ---
    def build(self, program, data: dict, seed: int):
        """The compiled model with ``data`` (``stan.model.Model``, for ``log_prob`` and the like)."""
        return self._build(program, data, seed)[0]

    def _build(self, program, data: dict, seed: int) -> tuple[object, str, str]:
        """(model, program name, stanc's warnings)."""
        name, source = program_source(program)
        data = plain_json(data)
        model_name = self.httpstan.models.calculate_model_name(source)
        with self.compiling(model_name):
            if model_name not in self.httpstan.cache.list_model_names():
                console.note(f"compiling {name}.stan (once per program text: about 45 s and 2 GB)")
            return self._load(name, source, model_name, data, seed)

    @contextlib.contextmanager
    def compiling(self, model_name: str):
        """An exclusive lock per program while it is looked up or compiled: processes that load the
        same new program at once (a batch's workers) compile it once, the others wait and load it
        (httpstan lists a model as soon as its extension file appears, before the link has finished)."""
        path = self.httpstan.cache.cache_directory() / f"surrogate-compile-{model_name.replace('/', '-')}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def compile(self, program) -> bool:
        """Compile ``program`` into httpstan's cache unless it is there; True if it was compiled now."""
        name, source = program_source(program)
        model_name = self.httpstan.models.calculate_model_name(source)
        with self.compiling(model_name):
            if model_name in self.httpstan.cache.list_model_names():
                return False

            async def go():
                with self.client() as client:
                    async with client:
                        await self.post_model(client, name, source)

            run_coroutine(go())
            return True

    @staticmethod
    async def post_model(client, name: str, source: str) -> str:
        """Ask httpstan for the model (compiling it unless cached); stanc's warnings."""
        resp = await client.post("/models", json={"program_code": source})
        if resp.status != 201:
            message = resp.json()["message"]
            match = re.search(r"""ValueError\(['"](.*)['"]\)""", message, re.DOTALL)
            body = match.group(1).encode().decode("unicode_escape") if match else message
            raise SurrogateError(f"stanc rejected {name}.stan: {body.strip()[:1500]}")
        return resp.json().get("stanc_warnings") or ""

    def _load(self, name: str, source: str, model_name: str, data: dict, seed: int) -> tuple[object, str, str]:
        async def go():
            with self.client() as client:
                async with client:
                    stanc = await self.post_model(client, name, source)
                    resp = await client.post(f"/{model_name}/params", json={"data": data})
                    if resp.status != 200:
                        raise SurrogateError(f"Stan rejected the data for {name}.stan: {first_line(resp.json()['message'])}")
                    params = resp.json()["params"]
            names, dims = zip(*((p["name"], p["dims"]) for p in params)) if params else ((), ())
            constrained = sum((tuple(p["constrained_names"]) for p in params), ())
            return self.stan.model.Model(model_name, source, data, names, constrained, dims, seed), name, stanc

        return run_coroutine(go())

    # --- sample ---
    def run(self, program, data: dict, settings: SamplerSettings, fixed_param: bool = False) -> StanFit:
        settings.validate()
        settings = settings.resolved()  # adapt_delta left None: Stan's 0.8
        if multiprocessing.current_process().daemon:
            raise SurrogateError("engine pystan runs each chain in a process of its own, and this process is a daemon, which may not "
                                 "start any (a Dask worker started with the default settings?): start the workers with "
                                 "DASK_DISTRIBUTED__WORKER__DAEMON=False (surrogate batch does so for its LocalCluster), "
                                 "or use engine='cmdstan'")  # fmt: skip
        if settings.dense_metric:
            raise SurrogateError("dense_metric is not available with engine pystan (httpstan runs only "
                                 "hmc_nuts_diag_e_adapt); use engine='cmdstan' or the default diagonal metric")  # fmt: skip
        t0 = time.perf_counter()
        model, name, stanc = self._build(program, data, settings.seed)
        compile_s = time.perf_counter() - t0
        kwargs: dict = {"num_samples": settings.draws}
        if not fixed_param:
            kwargs.update(num_warmup=settings.warmup, delta=settings.adapt_delta, max_depth=settings.max_treedepth)
        if settings.init is not None and not isinstance(settings.init, list):
            kwargs["init_radius"] = float(settings.init)
        inits = settings.init if isinstance(settings.init, list) else [{} for _ in range(settings.chains)]
        progress = console.reporter()
        progress.start(name, settings.chains, 0 if fixed_param else settings.warmup, settings.draws)
        t0 = time.perf_counter()
        ok = False
        try:
            with self.fits_in_use(model.model_name) as lock:
                outputs = run_coroutine(self._sample(model, FIXED_PARAM if fixed_param else NUTS, inits, kwargs, progress, name))
            ok = True
        finally:
            progress.finish(ok)
        wall_s = time.perf_counter() - t0
        self.forget_fits(model.model_name, lock)
        fit = self.stan.fit.Fit(outputs, settings.chains, model.param_names, model.constrained_param_names, model.dims,
                                kwargs.get("num_warmup", 1000), settings.draws, 1, False)  # fmt: skip
        chains, draws = fit.num_chains, fit.num_samples

        def by_chain(values: np.ndarray, shape) -> np.ndarray:
            # pystan stacks draws as (..., draw * chains) with the chain varying fastest
            return np.moveaxis(values.reshape(*shape, draws, chains), [-1, -2], [0, 1])

        variables = {n: by_chain(fit[n], dims) for n, dims in zip(fit.param_names, fit.dims)}
        stats = {n: by_chain(fit[n], ()) for n in fit.sample_and_sampler_param_names}
        texts = [out.decode(errors="replace") for out in outputs]
        elapsed = [parse_elapsed(t) for t in texts]
        timing = {"compile_s": compile_s, "wall_s": wall_s,
                  "warmup_s": [e["warmup_s"] for e in elapsed], "sampling_s": [e["sampling_s"] for e in elapsed]}  # fmt: skip
        log = self.log_text(name, stanc, texts)
        console.echo_log(log)
        return StanFit(self.name, variables, normalise_stats(stats), settings, timing, self.versions(), log)

    async def _sample(self, model, function: str, inits: list[dict], kwargs: dict, progress, name: str) -> tuple[bytes, ...]:
        """pystan's ``Model._create_fit`` requests, with progress sent to ``progress`` instead of printed."""
        # the data (already plain JSON: see _build) are written once for all chains; a decoder's basis can
        # make them tens of megabytes (62 MB on 50 x 50 with K = 903), and every copy cost seconds
        data_text = json.dumps(model.data)
        payloads = [plain_json({**kwargs, "function": function, "chain": c + 1, "init": init, "random_seed": model.random_seed})
                    for c, init in enumerate(inits)]  # fmt: skip
        with self.client() as client:
            async with client:
                operations = []
                for payload in payloads:
                    resp = await post_with_data(client, f"/{model.model_name}/fits", payload, data_text)
                    if resp.status != 201:
                        raise SurrogateError(f"Stan refused to sample {name}.stan: {first_line(resp.json().get('message', resp.json()))}")
                    operations.append(resp.json())
                while not all(op["done"] for op in operations):
                    for chain, op in enumerate(operations):
                        if op["done"]:
                            continue
                        op.update((await client.get(f"/{op['name']}")).json())
                        message = op["metadata"].get("progress") or ""
                        found = ITERATION_RE.search(message)
                        if found:
                            progress.update(chain, int(found.group(1)), "Sampling" in message)
                    await asyncio.sleep(0.05)
                outputs = []
                for op in operations:
                    fit_name = op["result"].get("name")
                    if fit_name is None:  # the operation's result is an error
                        message = op["result"].get("message", "")
                        why = "Initialization failed." if "Initialization failed" in message else first_line(message)
                        raise SurrogateError(f"Stan failed to sample {name}.stan: {why}")
                    resp = await client.get(f"/{fit_name}")
                    if resp.status != 200:
                        raise SurrogateError(f"Stan failed to sample {name}.stan: {first_line(resp.json()['message'])}")
                    outputs.append(resp.content)
        return tuple(outputs)

    def log_text(self, name: str, stanc: str, outputs: list[str]) -> str:
        """stanc's warnings and each chain's Stan messages (no per-iteration lines)."""
        lines = [f"# {name}.stan on pystan ({', '.join(f'{k} {v}' for k, v in self.versions().items() if k != 'engine')})"]
        if stanc.strip():
            lines += ["## stanc warnings", stanc.rstrip()]
        for chain, text in enumerate(outputs, 1):
            lines.append(f"## chain {chain}")
            for raw in text.splitlines():
                if '"logger"' not in raw:
                    continue
                try:
                    message = json.loads(raw)["values"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    continue
                if message.startswith("info:Iteration:") or message in ("info:", ""):
                    continue
                lines.append(message.removeprefix("info:").removeprefix("error:"))
        return "\n".join(lines) + "\n"

    @staticmethod
    @contextlib.contextmanager
    def fits_in_use(model_name: str):
        """Hold a shared lock on the model's fit cache while sampling (see :meth:`forget_fits`)."""
        from httpstan.cache import model_directory

        path = model_directory(model_name) / "surrogate-fits.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_SH)
            yield path

    @staticmethod
    def forget_fits(model_name: str, lock_path: Path) -> None:
        """Delete the fits httpstan cached for this model, unless another run is sampling it.

        httpstan keeps every seeded fit on disk (tens of MB each) and answers a
        repeated call from that cache; deleting them bounds the disk use and
        makes a repeated run sample (and be timed) again. Runs hold a shared lock
        while sampling and reading their fit; the cache is emptied only under an
        exclusive lock, so a concurrent run (another process) never loses its fit;
        when one is running, the next run cleans up instead.
        """
        from httpstan.cache import model_directory

        with open(lock_path, "a") as lock:
            if fcntl is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
            for path in (model_directory(model_name) / "fits").glob("*.jsonlines.gz"):
                path.unlink(missing_ok=True)

    def versions(self) -> dict:
        return {"engine": "pystan", "pystan": self.stan.__version__, "httpstan": self.httpstan.__version__, "stan": "2.35"}


def plain_json(value):
    """``value`` with numpy arrays and scalars as lists and Python numbers (what Stan's JSON reader takes)."""
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


async def post_with_data(client, path: str, payload: dict, data_text: str):
    """POST ``payload`` plus ``"data"`` given as JSON text (serialised once for every chain) through pystan's
    ``HttpstanClient`` session; answers as its ``post`` does."""
    from stan.common import HTTPResponse

    body = json.dumps(payload)[:-1] + ', "data": ' + data_text + "}"
    async with client.session.post(f"{client.base_url}{path}", data=body.encode(), headers={"Content-Type": "application/json"}) as resp:
        return HTTPResponse(status=resp.status, content=await resp.read())
