"""Fit folders: one writer for every task, one result type, and the fit's kind stored in the folder.

A fit folder holds ``posterior.nc`` (InferenceData; its ``fit_kind`` attribute), ``summary.csv``
(ArviZ's summary, when the fit has one set of chains), ``diagnostics.json`` (everything the printed
summary says, with ``kind``), ``summary.txt`` (the printed summary), ``engine.log`` and the task's
figures and extra files. ``surrogate report`` reads the kind from ``diagnostics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from surrogate.errors import SurrogateError
from surrogate.fileio import atomic_path, write_json, write_text

FIT_KINDS = ("inpaint", "pieces", "gp", "areas", "spacetime")  # softmax inpainting, piece-wise class models, GP on a grid, maps, maps over time


@dataclass
class FitResult:
    """What every fitting task returns."""

    kind: str  # one of FIT_KINDS
    idata: object  # arviz.InferenceData
    diagnostics: dict  # JSON-able: what diagnostics.json holds
    text: str  # the printed summary
    out: Path | None = None  # the fit folder, when one was written
    log: str = ""  # the engines' messages (engine.log)


def write_fit_dir(out: str | Path, result: FitResult, summary=None, log: str = "", extra_json: dict | None = None) -> Path:
    """Write a fit folder atomically file by file (a crash leaves no half-written file behind)."""
    if result.kind not in FIT_KINDS:
        raise SurrogateError(f"fit kind must be one of {', '.join(FIT_KINDS)}, found {result.kind!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "engine.log", log)
    result.idata.attrs["fit_kind"] = result.kind
    with atomic_path(out / "posterior.nc") as tmp:
        result.idata.to_netcdf(str(tmp))
    if summary is not None:
        write_text(out / "summary.csv", summary.to_csv())
    write_json(out / "diagnostics.json", {"kind": result.kind, **result.diagnostics})
    write_text(out / "summary.txt", result.text + "\n")
    for name, obj in (extra_json or {}).items():
        write_json(out / name, obj, indent=None)
    result.out = out
    return out


def fit_kind(fit_dir: Path) -> str:
    """The kind a fit folder's ``diagnostics.json`` records."""
    path = fit_dir / "diagnostics.json"
    if not (fit_dir / "posterior.nc").is_file() or not path.is_file():
        raise SurrogateError(f"{fit_dir} is not a fit folder: it needs posterior.nc and diagnostics.json")
    kind = json.loads(path.read_text()).get("kind")
    if kind not in FIT_KINDS:
        raise SurrogateError(f"{path} records fit kind {kind!r}, expected one of {', '.join(FIT_KINDS)} "
                             "(a folder written before surrogate stored its kind: fit it again)")  # fmt: skip
    return kind
