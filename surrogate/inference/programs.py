"""The project's Stan programs: where they are, and their text with ``#include`` inlined.

A program is named by its stem (``"inpaint"`` for ``stan/inpaint.stan``) or given as a path
to any ``.stan`` file; both engines compile the inlined text, so a model is cached by the
text it was built from. Included files are looked up beside the including file, then in
``stan/include/`` (the folder to pass as stanc's ``--include-paths`` when compiling the
programs yourself).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from surrogate.errors import SurrogateError

INCLUDE_RE = re.compile(r"^[ \t]*#include[ \t]+[<\"]?([^\s>\"]+)[>\"]?[ \t]*$", re.MULTILINE)


def stan_dir() -> Path:
    """The folder of the project's Stan programs (``$SURROGATE_STAN_DIR`` overrides)."""
    candidates = [os.environ.get("SURROGATE_STAN_DIR"), Path(__file__).resolve().parents[2] / "stan", Path(sys.prefix) / "share" / "surrogate" / "stan"]
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


def include_dirs(path: Path) -> list[Path]:
    """Where ``#include`` in ``path`` is resolved: its folder, then the shared ``stan/include/``."""
    return [path.parent, stan_dir() / "include"]


def inline_includes(path: Path, seen: tuple[Path, ...] = ()) -> str:
    """The program text with each ``#include file`` replaced by that file (PyStan has no include paths)."""
    if path in seen:
        raise SurrogateError(f"{path} includes itself")

    def replace(match: re.Match) -> str:
        folders = include_dirs(path)
        found = next((folder / match.group(1) for folder in folders if (folder / match.group(1)).is_file()), None)
        if found is None:
            raise SurrogateError(f"{path} includes {match.group(1)!r}, found in none of {', '.join(map(str, folders))}")
        return inline_includes(found, (*seen, path))

    return INCLUDE_RE.sub(replace, path.read_text())


def program_source(program: str | os.PathLike) -> tuple[str, str]:
    """``(name, inlined text)`` of a program given by name or as a path to a ``.stan`` file."""
    if isinstance(program, os.PathLike):
        path = Path(program)
        if path.suffix != ".stan" or not path.is_file():
            raise SurrogateError(f"Stan program file must be an existing .stan file, found {path}")
    else:
        path = program_file(program)
    return path.stem, inline_includes(path)
