"""User-facing errors.

Every message says what was expected and what was found, naming the argument as Python names it
(``islands='nearest'``), so that a notebook shows it as it is and the command line, through
:func:`as_flags`, with its own flags (``--islands nearest``), without a traceback.
"""

import re


class SurrogateError(Exception):
    """An error caused by input the user can fix (files, options, data)."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`SurrogateError` with ``message`` unless ``condition``."""
    if not condition:
        raise SurrogateError(message)


def check_positive_int(name: str, value) -> int:
    """``value`` as an int, or an error like ``latent must be a positive integer, found 0``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) or value < 1:
        raise SurrogateError(f"{name} must be a positive integer, found {value!r}")
    return int(value)


def check_choice(name: str, value: str, choices) -> str:
    """``value`` if it is one of ``choices``, else an error listing the valid names."""
    if value not in choices:
        valid = ", ".join(sorted(choices))
        raise SurrogateError(f"unknown {name} {value!r}; valid names: {valid}")
    return value


#: The library names a setting in its messages as Python does (``islands='nearest'``, ``id=COLUMN``,
#: ``resume=True``); the command line shows the same message with its own flags (:func:`as_flags`).
FLAGS = {
    "id": "--id-column", "id_column": "--id-column", "islands": "--islands", "prior": "--prior", "map": "--map", "points": "--points",
    "grid": "--grid", "counts": "--counts", "trials": "--trials", "value": "--value", "exposure": "--exposure",
    "population": "--population", "offset": "--offset", "model": "--model", "decoder": "--decoder", "iid": "--iid",
    "resume": "--resume", "force": "--force", "latent": "--latent", "engine": "--engine", "cmdstan_path": "--cmdstan-path",
    "dense_metric": "--dense-metric", "contiguity": "--contiguity", "snap": "--snap",
}  # fmt: skip
_SETTING = re.compile(r"(?<![\w-])(" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")=(?:'([^']*)'|([^\s,;:()]+))")


def as_flags(message: str) -> str:
    """A library message as the command line says it: ``islands='nearest'`` -> ``--islands nearest``, ``resume=True`` -> ``--resume``."""

    def flag(match: re.Match) -> str:
        value = match.group(2) if match.group(2) is not None else match.group(3)
        return FLAGS[match.group(1)] + ("" if value == "True" else f" {value}")

    return _SETTING.sub(flag, message)
