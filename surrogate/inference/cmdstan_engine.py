"""CmdStan through cmdstanpy (``cmdstanpy>=1.3,<2``): the engine of choice where CmdStan is installed.

It offers what PyStan cannot: the dense metric and a CmdStan of the user's choosing
(``--cmdstan-path``). Programs are inlined and compiled once into a cache folder keyed by
their text. cmdstanpy's logger and console output go into the run's log; progress goes to
:mod:`surrogate.inference.console`'s bars.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import time
from pathlib import Path

import numpy as np

from surrogate.errors import SurrogateError
from surrogate.inference import console
from surrogate.inference.fit import SamplerSettings, StanFit, normalise_stats
from surrogate.inference.programs import program_source
from surrogate.inference.pystan_engine import first_line

CMDSTANPY_RANGE = ((1, 3), (2, 0))  # the fit API this module reads (fit.time as a list per chain: 1.3)
PROGRESS_RE = re.compile(r"(Chain \[(\d+)\] )?Iteration:\s+(\d+)")
CHAIN_ID_RE = re.compile(r"#\s+id = (\d+)")
ERROR_LINES = 12  # console lines of a failed run shown in the error message


def check_cmdstanpy_version(version: str) -> None:
    """Refuse cmdstanpy versions outside ``CMDSTANPY_RANGE``, naming the one found."""
    try:
        found = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    except ValueError:
        found = ()
    (lo, hi) = CMDSTANPY_RANGE
    if not (len(found) == 2 and lo <= found < hi):
        raise SurrogateError(f"engine cmdstan needs cmdstanpy>={lo[0]}.{lo[1]},<{hi[0]}, found cmdstanpy {version}; "
                             f"pip install 'cmdstanpy>={lo[0]}.{lo[1]},<{hi[0]}' or use engine='pystan'")  # fmt: skip


class CmdStanEngine:
    """CmdStan through cmdstanpy: compiles each program once into a cache folder."""

    name = "cmdstan"

    def __init__(self, path: str | os.PathLike | None = None):
        try:
            import cmdstanpy
        except ImportError:
            raise SurrogateError("engine cmdstan needs cmdstanpy: pip install 'cmdstanpy>=1.3,<2'") from None
        check_cmdstanpy_version(cmdstanpy.__version__)
        console.capture_logger("cmdstanpy")
        if path is not None:
            folder = Path(path).expanduser()
            if not (folder / "makefile").is_file() or not (folder / "bin").is_dir():
                raise SurrogateError(f"cmdstan-path must be a CmdStan installation (a folder with makefile and bin/), found {folder}")
            try:
                cmdstanpy.set_cmdstan_path(str(folder))
            except ValueError as exc:
                raise SurrogateError(f"cmdstan-path {folder} is not usable: {first_line(exc)}") from None
        try:
            self.path = cmdstanpy.cmdstan_path()
        except (ValueError, RuntimeError) as exc:
            raise SurrogateError(
                f"engine cmdstan was requested but no CmdStan installation was found ({first_line(exc)}); "
                "install CmdStan (python -m cmdstanpy.install_cmdstan), give cmdstan_path=DIR, or use engine='pystan'"
            ) from None
        finally:
            console.drain_captured()
        self.cmdstanpy = cmdstanpy

    def model(self, program):
        """(the compiled model, program name), built in a cache folder keyed by the program text."""
        name, source = program_source(program)
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "surrogate" / "cmdstan" / digest
        folder.mkdir(parents=True, exist_ok=True)
        stan_file = folder / f"{name}.stan"
        if not stan_file.exists():
            stan_file.write_text(source)
        if not (folder / name).exists():
            console.note(f"compiling {name}.stan with CmdStan (once per program text: about 45 s)")
        try:
            return self.cmdstanpy.CmdStanModel(stan_file=str(stan_file)), name
        except (ValueError, RuntimeError) as exc:
            raise SurrogateError(f"CmdStan could not compile {name}.stan: {console_excerpt(str(exc))}") from None

    def run(self, program, data: dict, settings: SamplerSettings, fixed_param: bool = False) -> StanFit:
        settings.validate()
        settings = settings.resolved()  # adapt_delta left None: Stan's 0.8
        t0 = time.perf_counter()
        model, name = self.model(program)
        compile_s = time.perf_counter() - t0
        kwargs = dict(data=data, chains=settings.chains, parallel_chains=settings.chains, iter_sampling=settings.draws,
                      seed=settings.seed, inits=settings.init, show_progress=True, sig_figs=18)  # fmt: skip
        if fixed_param:
            # cmdstanpy 1.3 runs fixed_param chains in one process but names per-chain init files
            # that CmdStan then cannot open ("Can't open specified file"): one process per chain
            kwargs.update(fixed_param=True, force_one_process_per_chain=True)
        else:
            kwargs.update(iter_warmup=settings.warmup, adapt_delta=settings.adapt_delta,
                          max_treedepth=settings.max_treedepth, metric="dense_e" if settings.dense_metric else "diag_e")  # fmt: skip
        progress = console.reporter()
        progress.start(name, settings.chains, 0 if fixed_param else settings.warmup, settings.draws)
        model._wrap_sampler_progress_hook = lambda chain_ids, total: progress_hook(progress, chain_ids)
        t0 = time.perf_counter()
        ok = False
        stdout = io.StringIO()  # cmdstanpy pads the terminal after its bars
        try:
            with contextlib.redirect_stdout(stdout):
                fit = model.sample(**kwargs)
            ok = True
        except RuntimeError as exc:
            raise SurrogateError(f"CmdStan failed to sample {name}.stan: {console_excerpt(str(exc))}") from None
        except ValueError as exc:  # cmdstanpy's own checks of the data and arguments
            raise SurrogateError(f"CmdStan rejected the data for {name}.stan: {first_line(exc)}") from None
        finally:
            progress.finish(ok)
        wall_s = time.perf_counter() - t0
        result = from_cmdstanpy(fit, settings, compile_s, wall_s, self.versions())
        result.log = self.log_text(name, fit)
        console.echo_log(result.log)
        return result

    def log_text(self, name: str, fit) -> str:
        lines = [f"# {name}.stan on cmdstan ({', '.join(f'{k} {v}' for k, v in self.versions().items() if k != 'engine')})"]
        captured = console.drain_captured()
        if captured:
            lines += ["## cmdstanpy", *captured]
        for chain, path in enumerate(fit.runset.stdout_files, 1):
            text = Path(path).read_text(errors="replace") if Path(path).is_file() else ""
            lines.append(f"## console {chain}")
            lines += [line for line in text.splitlines() if not PROGRESS_RE.search(line)]
        return "\n".join(lines) + "\n"

    def versions(self) -> dict:
        return {"engine": "cmdstan", "cmdstanpy": self.cmdstanpy.__version__, "cmdstan": Path(self.path).name}


def csv_chain_order(files) -> list[tuple[int, int]]:
    """A sort key per CmdStan CSV file: (the chain id its header records, the ``_N`` of its name).

    One CmdStan process running several chains records its first chain id in every file
    and writes chain ``id + N - 1`` to ``..._N.csv``; one process per chain records each id.
    """
    keys = []
    for path in files:
        found = None
        with open(path) as fh:
            for line in fh:
                if not line.startswith("#"):
                    break
                match = CHAIN_ID_RE.match(line)
                if match:
                    found = int(match.group(1))
                    break
        if found is None:
            raise SurrogateError(f"CmdStan CSV file {path} records no chain id (# id = N) in its header")
        suffix = re.search(r"_(\d+)\.csv$", str(path))
        keys.append((found, int(suffix.group(1)) if suffix else 0))
    return keys


def progress_hook(progress, chain_ids: list[int]):
    """A cmdstanpy progress hook (``(console line, process index)``) feeding ``progress``."""

    def hook(line: str, idx: int) -> None:
        found = PROGRESS_RE.search(line)
        if found:
            chain = int(found.group(2)) if found.group(2) else chain_ids[idx]
            progress.update(chain_ids.index(chain), int(found.group(3)), "Sampling" in line)

    return hook


CONFIG_LINE_RE = re.compile(r"^\s*[\w.]+( = .*)?$")  # CmdStan echoing its arguments: "data", "  file = ..."


def explaining_lines(raw: list[str], skip_config: bool = False) -> list[str]:
    """Distinct non-empty lines that are neither progress nor (with ``skip_config``) CmdStan's argument echo."""
    seen, lines = set(), []
    for line in (ln.strip() for ln in raw):
        if not line or PROGRESS_RE.search(line) or line in seen or line.startswith("Consider re-running"):
            continue
        if skip_config and CONFIG_LINE_RE.match(line):
            continue
        seen.add(line)
        lines.append(line if len(line) <= 300 else line[:300] + " ...")
    return lines


def console_excerpt(message: str, limit: int = ERROR_LINES) -> str:
    """The lines of a cmdstanpy error that explain it: CmdStan's messages, without progress lines or file lists."""
    text = message.split("Command and output files:")[0]
    text = text.replace("Error during sampling:", "")
    lines = explaining_lines(text.splitlines())
    if not lines:  # the message names the console files instead: CmdStan's own words are there
        for path in re.findall(r"(\S+-stdout\.txt)", message):
            if Path(path).is_file():
                lines += explaining_lines(Path(path).read_text(errors="replace").splitlines(), skip_config=True)
    if not lines:
        return first_line(message)
    more = f"\n  ... {len(lines) - limit} more lines" if len(lines) > limit else ""
    return "\n  " + "\n  ".join(lines[:limit]) + more


def from_cmdstanpy(fit, settings: SamplerSettings, compile_s: float = float("nan"), wall_s: float = float("nan"),
                   versions: dict | None = None) -> StanFit:  # fmt: skip
    """A cmdstanpy ``CmdStanMCMC`` (a run, or ``cmdstanpy.from_csv``) as a :class:`StanFit`.

    Chains are put in the order of the chain ids their CSV files record: ``from_csv(folder)``
    lists a folder's files in the file system's order, which need not be the chains'.
    """
    chains, draws = fit.chains, fit.num_draws_sampling
    keys = csv_chain_order(fit.runset.csv_files)
    order = sorted(range(chains), key=keys.__getitem__)
    variables = {}
    for name in fit.metadata.stan_vars:
        values = np.asarray(fit.stan_variable(name))  # (chains * draws, *shape), file by file
        variables[name] = values.reshape(chains, draws, *values.shape[1:])[order]
    stats = {name: np.asarray(v).T[order] for name, v in fit.method_variables().items()}  # (draws, chains) -> (chain, draw)
    per_chain = list(fit.time) if isinstance(fit.time, (list, tuple)) else [{}] * chains  # cmdstanpy >= 1.3: a list per chain
    per_chain = [per_chain[i] for i in order]
    timing = {"compile_s": compile_s, "wall_s": wall_s,
              "warmup_s": [float(t.get("warmup", float("nan"))) for t in per_chain],
              "sampling_s": [float(t.get("sampling", float("nan"))) for t in per_chain]}  # fmt: skip
    return StanFit("cmdstan", variables, normalise_stats(stats), settings, timing, versions or {"engine": "cmdstan"})
