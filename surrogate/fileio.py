"""Atomic file output: a reader never sees a half-written file.

Each writer writes to a temporary file in the destination folder and then
renames it over the destination (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator

from surrogate.errors import SurrogateError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def json_safe(obj):
    """``obj`` with NaN and infinities replaced by None (strict JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed); in a Jupyter kernel, its own (inline) backend."""
    import sys

    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    write_bytes(path, buf.getvalue())


def read_json_object(path: str | os.PathLike, what: str) -> dict:
    """The JSON object in ``path``; errors name ``what`` (e.g. "decoder file") and the problem."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SurrogateError(f"{what} {path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SurrogateError(f"{what} {path} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise SurrogateError(f"{what} {path} must hold a JSON object, found {type(raw).__name__}")
    return raw

