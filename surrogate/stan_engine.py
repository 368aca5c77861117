"""One interface, two engines for the same ``.stan`` files: CmdStan (via cmdstanpy) and PyStan 3.

Both run Stan's own NUTS; with the same seed they give the same draws. PyStan
ships Stan 2.35 and works offline, so it is the default where no CmdStan
installation is found. Results come back as a :class:`StanFit` holding
``(chain, draw, *shape)`` arrays, which :func:`to_inference_data` turns into
ArviZ InferenceData with named dims.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from surrogate.errors import SurrogateError, check_choice, check_positive_int

try:
    import fcntl  # POSIX; PyStan runs on Linux and macOS only
except ImportError:  # pragma: no cover
    fcntl = None

ENGINES = ("auto", "cmdstan", "pystan")
#: Stan's sampler diagnostics -> ArviZ's sample_stats names.
SAMPLE_STATS = {
    "lp__": "lp",
    "accept_stat__": "acceptance_rate",
    "stepsize__": "step_size",
    "treedepth__": "tree_depth",
    "n_leapfrog__": "n_steps",
    "divergent__": "diverging",
    "energy__": "energy",
}
INCLUDE_RE = re.compile(r"^[ \t]*#include[ \t]+[<\"]?([^\s>\"]+)[>\"]?[ \t]*$", re.MULTILINE)


# ----------------------------------------------------------------------------
# Stan programs


def stan_dir() -> Path:
    """The folder of the project's Stan programs (``$SURROGATE_STAN_DIR`` overrides)."""
    candidates = [os.environ.get("SURROGATE_STAN_DIR"), Path(__file__).resolve().parents[1] / "stan", Path(sys.prefix) / "share" / "surrogate" / "stan"]
    for folder in candidates:
        if folder and (Path(folder) / "inpaint.stan").is_file():
            return Path(folder)
    raise SurrogateError(f"cannot find the Stan programs; looked in {', '.join(str(c) for c in candidates if c)}; set SURROGATE_STAN_DIR")


def program_file(name: str) -> Path:
    """``stan/<name>.stan``; unknown names list the valid ones."""
    folder = stan_dir()
    path = folder / f"{name}.stan"
    if not path.is_file():
        valid = sorted(p.stem for p in folder.glob("*.stan"))
        raise SurrogateError(f"unknown Stan program {name!r}; valid names: {', '.join(valid)}")
    return path


def inline_includes(path: Path, seen: tuple[Path, ...] = ()) -> str:
    """The program text with each ``#include file`` replaced by that file (PyStan has no include paths)."""
    if path in seen:
        raise SurrogateError(f"{path} includes itself")

    def replace(match: re.Match) -> str:
        return inline_includes(path.parent / match.group(1), (*seen, path))

    return INCLUDE_RE.sub(replace, path.read_text())


# ----------------------------------------------------------------------------
# settings and results


@dataclass
class SamplerSettings:
    chains: int = 4  # independent chains (run in parallel)
    warmup: int = 1000  # adaptation iterations per chain
    draws: int = 1000  # saved iterations per chain
    seed: int = 1  # the same seed gives the same draws on both engines
    adapt_delta: float = 0.8  # target acceptance rate of step-size adaptation
    max_treedepth: int = 10  # NUTS tree depth limit
    init: float | list[dict] | None = None  # None: uniform(-2, 2); a number: that radius; a list: one dict per chain
    dense_metric: bool = False  # adapt a dense instead of a diagonal mass matrix

    def validate(self) -> None:
        check_positive_int("chains", self.chains)
        check_positive_int("draws", self.draws)
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise SurrogateError(f"warmup must be a non-negative integer, found {self.warmup!r}")
        if not 0 < self.adapt_delta < 1:
            raise SurrogateError(f"adapt_delta must be in (0, 1), found {self.adapt_delta}")
        check_positive_int("max_treedepth", self.max_treedepth)
        if isinstance(self.init, (int, float)) and self.init < 0:
            raise SurrogateError(f"init radius must be non-negative, found {self.init}")
        if isinstance(self.init, list) and len(self.init) != self.chains:
            raise SurrogateError(f"init must hold one dict per chain ({self.chains}), found {len(self.init)}")


@dataclass
class StanFit:
    """Draws of one run: ``draws[name]`` and ``stats[name]`` are ``(chain, draw, *shape)``."""

    engine: str
    draws: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    settings: SamplerSettings
    timing: dict = field(default_factory=dict)  # compile_s, warmup_s / sampling_s (per chain), wall_s
    versions: dict = field(default_factory=dict)

    def sampler_problems(self) -> dict:
        """Counts of divergent transitions and tree-depth hits, per chain and in all."""
        div = self.stats["diverging"].sum(axis=1)
        depth = (self.stats["tree_depth"] >= self.settings.max_treedepth).sum(axis=1)
        return {"divergences": int(div.sum()), "divergences_per_chain": div.tolist(),
                "treedepth_hits": int(depth.sum()), "treedepth_hits_per_chain": depth.tolist()}  # fmt: skip


def normalise_stats(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for stan_name, name in SAMPLE_STATS.items():
        if stan_name in stats:
            value = stats[stan_name]
            if name == "diverging":
                value = value.astype(bool)
            elif name in ("tree_depth", "n_steps"):
                value = value.astype(np.int64)
            out[name] = value
    return out


ELAPSED_RE = re.compile(r"([0-9.eE+-]+) seconds \((Warm-up|Sampling)\)")


def parse_elapsed(text: str) -> dict[str, float]:
    """Stan's "Elapsed Time" report of one chain as ``{"warmup_s": .., "sampling_s": ..}``."""
    # only the report's lines: a pattern over the whole output (every draw's numbers) takes seconds
    lines = [line for line in text.splitlines() if " seconds (" in line]
    found = {kind: float(sec) for line in lines for sec, kind in ELAPSED_RE.findall(line)}
    return {"warmup_s": found.get("Warm-up", float("nan")), "sampling_s": found.get("Sampling", float("nan"))}


# ----------------------------------------------------------------------------
# engines


class PyStanEngine:
    """PyStan 3 (httpstan): compiles once per program text, caches the model on disk."""

    name = "pystan"

    def __init__(self):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pystan 3.10 imports the deprecated pkg_resources
                import stan
        except ImportError as exc:
            raise SurrogateError(f"engine pystan is not usable: {exc}; pip install 'pystan>=3.10' 'setuptools<81'") from None
        self.stan = stan

    @staticmethod
    def check_event_loop() -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise SurrogateError(
            "PyStan cannot run inside a running asyncio event loop (Jupyter and IPython kernels run one). "
            "Call `import nest_asyncio; nest_asyncio.apply()` first, run from a script or the `surrogate` "
            "command, or use engine='cmdstan'"
        )

    def build(self, program: str, data: dict, seed: int):
        self.check_event_loop()
        source = inline_includes(program_file(program))
        try:
            return self.stan.build(source, data=data, random_seed=seed)
        except (ValueError, RuntimeError) as exc:
            raise SurrogateError(f"Stan rejected the data for {program}.stan: {first_line(exc)}") from None

    def run(self, program: str, data: dict, settings: SamplerSettings, fixed_param: bool = False) -> StanFit:
        settings.validate()
        if settings.dense_metric:
            raise SurrogateError("dense_metric is not available with engine pystan (httpstan runs only "
                                 "hmc_nuts_diag_e_adapt); use --engine cmdstan or the default diagonal metric")  # fmt: skip
        t0 = time.perf_counter()
        model = self.build(program, data, settings.seed)
        compile_s = time.perf_counter() - t0
        kwargs = dict(num_chains=settings.chains, num_samples=settings.draws)
        if isinstance(settings.init, list):
            kwargs["init"] = settings.init
        elif settings.init is not None:
            kwargs["init_radius"] = float(settings.init)
        t0 = time.perf_counter()
        with self.fits_in_use(model.model_name) as lock:
            try:
                if fixed_param:
                    fit = model.fixed_param(**kwargs)
                else:
                    kwargs.update(num_warmup=settings.warmup, delta=settings.adapt_delta, max_depth=settings.max_treedepth)
                    fit = model.sample(**kwargs)
            except (ValueError, RuntimeError) as exc:
                raise SurrogateError(f"Stan failed to sample {program}.stan: {first_line(exc)}") from None
        wall_s = time.perf_counter() - t0
        self.forget_fits(model.model_name, lock)
        chains, draws = fit.num_chains, fit.num_samples

        def by_chain(values: np.ndarray, shape) -> np.ndarray:
            # pystan stacks draws as (..., draw * chains) with the chain varying fastest
            return np.moveaxis(values.reshape(*shape, draws, chains), [-1, -2], [0, 1])

        variables = {name: by_chain(fit[name], dims) for name, dims in zip(fit.param_names, fit.dims)}
        stats = {name: by_chain(fit[name], ()) for name in fit.sample_and_sampler_param_names}
        elapsed = [parse_elapsed(out.decode(errors="replace")) for out in fit.stan_outputs]
        timing = {"compile_s": compile_s, "wall_s": wall_s,
                  "warmup_s": [e["warmup_s"] for e in elapsed], "sampling_s": [e["sampling_s"] for e in elapsed]}  # fmt: skip
        return StanFit(self.name, variables, normalise_stats(stats), settings, timing, self.versions())

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
        import httpstan

        return {"engine": "pystan", "pystan": self.stan.__version__, "httpstan": httpstan.__version__, "stan": "2.35"}


class CmdStanEngine:
    """CmdStan through cmdstanpy: compiles each program once into a cache folder."""

    name = "cmdstan"

    def __init__(self):
        try:
            import cmdstanpy

            self.path = cmdstanpy.cmdstan_path()
        except (ImportError, ValueError, RuntimeError) as exc:
            raise SurrogateError(
                f"engine cmdstan was requested but no CmdStan installation was found ({first_line(exc)}); "
                "install CmdStan (python -m cmdstanpy.install_cmdstan) or use --engine pystan"
            ) from None
        self.cmdstanpy = cmdstanpy

    def model(self, program: str):
        """The compiled model, built in a cache folder keyed by the program text."""
        source = inline_includes(program_file(program))
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "surrogate" / "cmdstan" / digest
        folder.mkdir(parents=True, exist_ok=True)
        stan_file = folder / f"{program}.stan"
        if not stan_file.exists():
            stan_file.write_text(source)
        return self.cmdstanpy.CmdStanModel(stan_file=str(stan_file))

    def run(self, program: str, data: dict, settings: SamplerSettings, fixed_param: bool = False) -> StanFit:
        settings.validate()
        t0 = time.perf_counter()
        model = self.model(program)
        compile_s = time.perf_counter() - t0
        kwargs = dict(
            data=data, chains=settings.chains, parallel_chains=settings.chains, iter_sampling=settings.draws,
            seed=settings.seed, inits=settings.init, show_progress=True, sig_figs=18,
        )  # fmt: skip
        if fixed_param:
            kwargs.update(fixed_param=True)
        else:
            kwargs.update(iter_warmup=settings.warmup, adapt_delta=settings.adapt_delta,
                          max_treedepth=settings.max_treedepth, metric="dense_e" if settings.dense_metric else "diag_e")  # fmt: skip
        t0 = time.perf_counter()
        try:
            fit = model.sample(**kwargs)
        except RuntimeError as exc:
            raise SurrogateError(f"CmdStan failed to sample {program}.stan: {first_line(exc)}") from None
        wall_s = time.perf_counter() - t0
        chains, draws = settings.chains, settings.draws
        variables = {}
        for name in fit.metadata.stan_vars:
            values = np.asarray(fit.stan_variable(name))  # (chains * draws, *shape), chain by chain
            variables[name] = values.reshape(chains, draws, *values.shape[1:])
        stats = {name: np.asarray(v).T for name, v in fit.method_variables().items()}  # (draws, chains) -> (chain, draw)
        per_chain = getattr(fit, "time", None) or {}
        timing = {"compile_s": compile_s, "wall_s": wall_s,
                  "warmup_s": [per_chain.get(c, {}).get("warmup", float("nan")) for c in range(1, chains + 1)],
                  "sampling_s": [per_chain.get(c, {}).get("sampling", float("nan")) for c in range(1, chains + 1)]}  # fmt: skip
        return StanFit(self.name, variables, normalise_stats(stats), settings, timing, self.versions())

    def versions(self) -> dict:
        return {"engine": "cmdstan", "cmdstanpy": self.cmdstanpy.__version__, "cmdstan": Path(self.path).name}


def first_line(exc: BaseException, limit: int = 400) -> str:
    """The first line of an engine's message, cut to ``limit`` characters (they can embed the data)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + " ..."


def get_engine(name: str = "auto"):
    """``auto``: CmdStan when installed, else PyStan; a named engine must be usable."""
    check_choice("engine", name, ENGINES)
    if name == "cmdstan":
        return CmdStanEngine()
    if name == "pystan":
        return PyStanEngine()
    try:
        return CmdStanEngine()
    except SurrogateError:
        return PyStanEngine()


def engine_status() -> dict[str, str]:
    """What ``surrogate doctor`` prints about each engine."""
    status = {}
    try:
        status["pystan"] = f"usable (pystan {PyStanEngine().stan.__version__}, Stan 2.35)"
    except SurrogateError as exc:
        status["pystan"] = f"not usable: {exc}"
    try:
        engine = CmdStanEngine()
        status["cmdstan"] = f"usable ({engine.path})"
    except SurrogateError:
        status["cmdstan"] = "not installed"
    return status


# ----------------------------------------------------------------------------
# ArviZ


def to_inference_data(fit: StanFit, coords=None, dims=None, observed_data=None, constant_data=None, attrs=None, log_likelihood=None):
    """ArviZ InferenceData with named dims; zero-size variables (e.g. no classes) are left out.

    ``log_likelihood`` names pointwise log-likelihood variables moved to their own group (for LOO).
    """
    import arviz as az

    posterior = {k: v for k, v in fit.draws.items() if v.size}
    log_lik = {k: posterior.pop(k) for k in (log_likelihood or []) if k in posterior}
    attrs = {**(attrs or {}), **{f"sampler_{k}": str(v) for k, v in asdict(fit.settings).items() if k != "init"},
             **{k: str(v) for k, v in fit.versions.items()}}  # fmt: skip
    used = set(posterior) | set(log_lik) | set(observed_data or {}) | set(constant_data or {})
    dims = {k: v for k, v in (dims or {}).items() if k in used}
    return az.from_dict(
        posterior=posterior,
        sample_stats=fit.stats,
        log_likelihood=log_lik or None,
        observed_data=observed_data,
        constant_data=constant_data,
        coords=coords,
        dims=dims,
        attrs=attrs,
    )
