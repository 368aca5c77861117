"""One interface, two engines for the same ``.stan`` files: CmdStan (via cmdstanpy) and PyStan 3.

Both run Stan's own NUTS; with the same seed they give the same draws. PyStan ships
Stan 2.35 and works offline, so it is the default where no CmdStan installation is found.
An engine's ``run(program, data, settings)`` returns a :class:`~surrogate.inference.fit.StanFit`.
"""

from __future__ import annotations

from surrogate.errors import SurrogateError, check_choice
from surrogate.inference.cmdstan_engine import CmdStanEngine
from surrogate.inference.pystan_engine import PyStanEngine

ENGINES = ("auto", "cmdstan", "pystan")


def get_engine(name: str = "auto", cmdstan_path=None):
    """``auto``: CmdStan when installed (or given by ``cmdstan_path``), else PyStan; a named engine must be usable."""
    if not isinstance(name, str):  # already an engine
        return name
    check_choice("engine", name, ENGINES)
    if cmdstan_path is not None and name == "pystan":
        raise SurrogateError(f"cmdstan-path applies to engine cmdstan or auto, found engine {name}")
    if name == "cmdstan" or cmdstan_path is not None:
        return CmdStanEngine(cmdstan_path)
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
        status["cmdstan"] = f"usable ({engine.path}, cmdstanpy {engine.cmdstanpy.__version__})"
    except SurrogateError as exc:
        status["cmdstan"] = "not installed" if "no CmdStan installation" in str(exc) else f"not usable: {exc}"
    return status
