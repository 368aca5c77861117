"""A small reader and writer for the IDX format of MNIST and Fashion-MNIST.

An IDX file starts with two zero bytes, a type code, the number of dimensions
and one big-endian uint32 size per dimension, followed by the values in C
order. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from surrogate.errors import SurrogateError

#: IDX type code -> numpy dtype (big-endian, as the format stores them).
IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def maybe_gunzip(raw: bytes, source: str) -> bytes:
    """``raw`` decompressed when it is gzip (detected by its magic bytes), else as is."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise SurrogateError(f"{source} is a corrupt or truncated gzip file ({exc})") from None


def read_bytes(path: str | Path) -> bytes:
    """The file's IDX content, decompressed when it is gzip."""
    return maybe_gunzip(Path(path).read_bytes(), str(path))


def parse_idx(content: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX ``content``; raise a clear error on a bad magic number or size."""
    if len(content) < 4:
        raise SurrogateError(f"{source} is not an IDX file: {len(content)} bytes, expected a 4-byte header")
    zero, code, ndim = struct.unpack(">HBB", content[:4])
    if zero != 0 or code not in IDX_TYPES or ndim == 0:
        raise SurrogateError(
            f"{source} is not an IDX file: magic number 0x{content[:4].hex()}, "
            f"expected 0x0000TTNN with a type code TT in "
            f"{{{', '.join(f'{c:02x}' for c in IDX_TYPES)}}} and NN ≥ 1 dimensions"
        )
    header = 4 + 4 * ndim
    if len(content) < header:
        raise SurrogateError(f"{source} is truncated: its header needs {header} bytes, found {len(content)}")
    shape = struct.unpack(f">{ndim}I", content[4:header])
    dtype = IDX_TYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        what = "truncated" if len(content) < expected else "longer than its header says"
        raise SurrogateError(
            f"{source} is {what}: shape {tuple(shape)} needs {expected} bytes, found {len(content)}"
        )
    return np.frombuffer(content, dtype=dtype, offset=header).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a numpy array of its stored type."""
    return parse_idx(read_bytes(path), str(path))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as IDX; gzip-compress when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    for code, dtype in IDX_TYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            break
    else:
        raise SurrogateError(f"array dtype {array.dtype} has no IDX type code")
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.astype(dtype, copy=False).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
