"""Exported decoders on disk: Stan JSON data and its ``.meta.json``, written and checked (numpy only).

The data block of the decoder programs (``stan/include/decoder_data.stan``) reads sizes ``K``
(latent), ``C`` (condition: classes, 0 for an unconditional decoder), ``D`` (outputs), ``L``
(hidden layers, 1-4) and ``H`` (hidden widths, padded with 0 to 4); ``W1..W4``/``b1..b4`` (hidden
layers in PyTorch's ``[out, in]`` orientation, empty beyond ``L``), ``W_out``/``b_out``, and the
activation codes (see :mod:`surrogate.decoder.schema`). A CVAE's conditioned linear path adds
``G`` knots ``lin_knots``, the factors at the knots in compressed rows (``lin_nnz`` entries, their
values ``lin_w`` [G, nnz], columns ``lin_v`` [nnz] and row starts ``lin_u`` [K + 1], 1-based as Stan's
``csr_matrix_times_vector`` reads them) and the basis ``lin_basis`` [D, K]
(``stan/include/linear_path_data.stan``); files without them read as ``G = 0``, files with the dense
``lin_factor`` [G, K, K] of earlier versions as its lower triangle.

Numbers are written with :data:`DIGITS` significant digits (:func:`compact_json`): the float32 weights
round-trip exactly and the float64 path moves by under 1e-8 relative, while the file is about half the size
of Python's shortest float64 repr (a 5,000 x 1,000 basis: measured in docs/bench_scale.json). Both engines read it
as it is: PyStan as a dict, CmdStan as the JSON file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from surrogate.decoder.schema import ARRAY_KEYS, HIDDEN_CODES, MAX_HIDDEN, OUTPUT_CODES, SIZE_KEYS
from surrogate.errors import SurrogateError
from surrogate.fileio import read_json_object


def to_json_data(data: dict) -> dict:
    """Stan JSON: numbers and nested lists (numpy arrays become lists)."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in data.items()}


#: significant digits of a stored number (float32 round-trips at 9)
DIGITS = 9


def _json_value(value) -> str:
    """One value as JSON text; float arrays row by row with :data:`DIGITS` digits."""
    if not isinstance(value, np.ndarray):
        return json.dumps(value.item() if isinstance(value, np.generic) else value)
    if value.dtype.kind != "f" or value.size == 0:
        return json.dumps(value.tolist())
    if value.ndim == 0:
        return format(float(value), f".{DIGITS}g")
    if value.ndim == 1:
        return "[" + ",".join(np.char.mod(f"%.{DIGITS}g", value).tolist()) + "]"
    return "[" + ",".join(_json_value(row) for row in value) + "]"


def compact_json(data: dict, sort_keys: bool = False) -> str:
    """Stan JSON of ``data`` with floats at :data:`DIGITS` significant digits (finite values: checked before)."""
    keys = sorted(data) if sort_keys else list(data)
    return "{" + ",".join(f"{json.dumps(k)}:{_json_value(data[k])}" for k in keys) + "}"


def weights_hash(data: dict) -> str:
    """sha256 of the data as written (its compact JSON, keys sorted)."""
    return hashlib.sha256(compact_json(data, sort_keys=True).encode()).hexdigest()


def meta_path_for(decoder_json: str | Path) -> Path:
    p = Path(decoder_json)
    return p.with_name(p.name.removesuffix(".json") + ".meta.json")


def load_decoder(path: str | Path) -> tuple[dict, dict]:
    """(validated Stan data with numpy arrays, metadata or ``{}``) from an export."""
    path = Path(path)
    data = validate_decoder_data(read_json_object(path, "decoder file"), str(path))
    meta_path = meta_path_for(path)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return data, meta


def validate_decoder_data(raw: dict, source: str) -> dict:
    """Check sizes, shapes, finiteness and codes; errors name the key and what was found."""
    missing = [k for k in (*SIZE_KEYS, *ARRAY_KEYS) if k not in raw]
    if missing:
        raise SurrogateError(f"{source} lacks the decoder keys {', '.join(missing)} (is it a `surrogate export` file?)")

    def integer(key, low, high=None):
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high is not None and v > high):
            bound = f"in {low}..{high}" if high is not None else f">= {low}"
            raise SurrogateError(f"{source}: {key} must be an integer {bound}, found {v!r}")
        return int(v)

    K, C, D = integer("K", 1), integer("C", 0), integer("D", 1)
    L = integer("L", 1, MAX_HIDDEN)
    H = raw["H"]
    if not (isinstance(H, (list, np.ndarray)) and len(H) == MAX_HIDDEN and all(isinstance(h, (int, np.integer)) for h in H)):
        raise SurrogateError(f"{source}: H must be {MAX_HIDDEN} integers, found {H!r}")
    H = [int(h) for h in H]
    if any(h < 1 for h in H[:L]) or any(h != 0 for h in H[L:]):
        raise SurrogateError(f"{source}: H must hold L = {L} positive widths then zeros, found {H}")
    codes = {"hidden_activation": HIDDEN_CODES, "output_activation": OUTPUT_CODES}
    out = {"K": K, "C": C, "D": D, "L": L, "H": H}
    for key, table in codes.items():
        if raw[key] not in table.values():
            valid = ", ".join(f"{c} ({n})" for n, c in table.items())
            raise SurrogateError(f"{source}: {key} must be one of {valid}, found {raw[key]!r}")
        out[key] = int(raw[key])
    widths = [K + C, *H]
    expected = {f"W{i}": (H[i - 1], widths[i - 1]) for i in range(1, MAX_HIDDEN + 1)}
    expected |= {f"b{i}": (H[i - 1],) for i in range(1, MAX_HIDDEN + 1)}
    expected |= {"W_out": (D, H[L - 1]), "b_out": (D,)}
    G = integer("G", 0) if "G" in raw else 0
    if G and C != 1:
        raise SurrogateError(f"{source}: a linear path (G = {G} knots) needs a decoder conditioned on one value (C = 1), found C = {C}")
    out["G"] = G
    raw = raw if "G" in raw else raw | {"lin_knots": [], "lin_basis": []}
    if "lin_w" not in raw:  # no path, or the dense factors of earlier versions: their lower triangle
        raw = raw | dense_to_rows(raw.get("lin_factor", []), G, K, source)
    absent = [k for k in ("lin_knots", "lin_nnz", "lin_w", "lin_v", "lin_u", "lin_basis") if k not in raw]
    if absent:
        raise SurrogateError(f"{source} has a linear path (G = {G}) but lacks {', '.join(absent)}")
    nnz = integer("lin_nnz", 0)
    out["lin_nnz"] = nnz
    expected |= {"lin_knots": (G,), "lin_w": (G, nnz), "lin_basis": (D, K) if G else (0, 0)}
    for key, shape in expected.items():
        try:
            value = np.asarray(raw[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise SurrogateError(f"{source}: {key} must be an array of numbers of shape {shape}") from None
        if value.size == 0 and np.prod(shape) == 0:
            value = value.reshape(shape)
        if value.shape != shape:
            raise SurrogateError(f"{source}: {key} has shape {value.shape}, expected {shape} from K={K}, C={C}, D={D}, H={H}, G={G}, lin_nnz={nnz}")
        bad = ~np.isfinite(value)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SurrogateError(f"{source}: {key} has {int(bad.sum())} non-finite values (first at {list(first)}: {value[first]})")
        out[key] = value
    out["lin_v"], out["lin_u"] = check_rows(raw, G, K, nnz, source)
    steps = np.diff(out["lin_knots"])
    if G > 1 and not ((steps > 0).all() and np.allclose(steps, steps[0], rtol=1e-6)):
        raise SurrogateError(f"{source}: lin_knots must increase in even steps, found {out['lin_knots'].tolist()}")
    return out


def dense_to_rows(factor, G: int, K: int, source: str) -> dict:
    """``lin_nnz``/``lin_w``/``lin_v``/``lin_u`` holding the lower triangle of dense factors [G, K, K]."""
    if not G:
        return {"lin_nnz": 0, "lin_w": np.zeros((0, 0)), "lin_v": [], "lin_u": []}
    try:
        factor = np.asarray(factor, dtype=np.float64)
    except (TypeError, ValueError):
        raise SurrogateError(f"{source}: lin_factor must be an array of numbers of shape {(G, K, K)}") from None
    if factor.shape != (G, K, K):
        raise SurrogateError(f"{source}: lin_factor has shape {factor.shape}, expected {(G, K, K)} from G={G}, K={K}")
    rows, cols = np.tril_indices(K)
    return {"lin_nnz": len(rows), "lin_w": factor[:, rows, cols], "lin_v": cols + 1, "lin_u": row_starts(rows, K)}


def check_rows(raw: dict, G: int, K: int, nnz: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(``lin_v``, ``lin_u``) checked as a compressed-row pattern of a K x K matrix with ``nnz`` entries
    (1-based): columns in 1..K, row starts from 1 to nnz + 1, never decreasing."""
    arrays = []
    for key, size in (("lin_v", nnz), ("lin_u", K + 1 if G else 0)):
        value = np.asarray(raw.get(key, []))
        if value.size == 0:
            value = value.reshape(0).astype(np.int64)
        if value.shape != (size,) or not (np.issubdtype(value.dtype, np.integer) or (value == np.round(value)).all()):
            raise SurrogateError(f"{source}: {key} must be {size} integers, found shape {value.shape}")
        arrays.append(value.astype(np.int64))
    v, u = arrays
    if G and nnz == 0:
        raise SurrogateError(f"{source}: a linear path (G = {G}) needs lin_nnz >= 1, found 0")
    if len(v) and (v.min() < 1 or v.max() > K):
        raise SurrogateError(f"{source}: lin_v must hold columns 1..{K}, found {int(v.min())}..{int(v.max())}")
    if len(u) and (u[0] != 1 or u[-1] != nnz + 1 or (np.diff(u) < 0).any()):
        raise SurrogateError(f"{source}: lin_u must rise from 1 to lin_nnz + 1 = {nnz + 1}, found {u[:3].tolist()}..{u[-1]}")
    return v, u


def row_starts(rows: np.ndarray, K: int) -> np.ndarray:
    """The 1-based row starts ``lin_u`` [K + 1] of entries in row order with 0-based ``rows``."""
    return np.searchsorted(rows, np.arange(K + 1)) + 1


def rows_of(u: np.ndarray) -> np.ndarray:
    """The 0-based row of each entry of a 1-based compressed-row pattern with row starts ``u``."""
    return np.repeat(np.arange(len(u) - 1), np.diff(u))
