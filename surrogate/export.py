"""Decoder weights as Stan JSON data, and the checks on loading them back.

The data block of ``stan/inpaint.stan`` (and the other decoder programs) reads:
sizes ``K`` (latent), ``C`` (classes, 0 for an unconditional decoder), ``D``
(outputs), ``L`` (hidden layers, 1-4) and ``H`` (hidden widths, padded with 0
to 4); ``W1..W4``/``b1..b4`` (hidden layers in PyTorch's ``[out, in]``
orientation, empty beyond ``L``), ``W_out``/``b_out``, and the activation codes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from surrogate.data.mnist import IMAGE_DATASETS
from surrogate.errors import SurrogateError
from surrogate.fileio import read_json_object, write_json, write_text
from surrogate.models import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, MLPAutoencoder
from surrogate.train import load_model, versions

MAX_HIDDEN = 4
DECODER_FORMAT = "surrogate-decoder/1"
HIDDEN_CODES = {name: code for name, (_, code) in HIDDEN_ACTIVATIONS.items()}
OUTPUT_CODES = {name: code for name, (_, code) in OUTPUT_ACTIVATIONS.items()}
SIZE_KEYS = ("K", "C", "D", "L", "H", "hidden_activation", "output_activation")
ARRAY_KEYS = (*(f"{p}{i}" for i in range(1, MAX_HIDDEN + 1) for p in ("W", "b")), "W_out", "b_out")


def decoder_stan_data(model: MLPAutoencoder, activation: str, output_activation: str) -> dict:
    """The decoder of ``model`` as a dict of Stan data (numpy float64 arrays), shapes asserted."""
    layers = [m for m in model.decoder if isinstance(m, nn.Linear)]
    hidden, out = layers[:-1], layers[-1]
    K, C, L = model.latent_dim, model.cond_dim, len(hidden)
    assert 1 <= L <= MAX_HIDDEN, f"decoder has {L} hidden layers, expected 1 to {MAX_HIDDEN}"
    widths = [K + C] + [layer.out_features for layer in hidden]
    data = {"K": K, "C": C, "D": out.out_features, "L": L, "H": widths[1:] + [0] * (MAX_HIDDEN - L)}
    for i in range(1, MAX_HIDDEN + 1):
        if i <= L:
            W, b = as_float64(hidden[i - 1].weight), as_float64(hidden[i - 1].bias)
            assert W.shape == (widths[i], widths[i - 1]), f"W{i} has shape {W.shape}, expected {(widths[i], widths[i - 1])}"
            assert b.shape == (widths[i],), f"b{i} has shape {b.shape}, expected {(widths[i],)}"
        else:
            W, b = np.zeros((0, data["H"][i - 2] if i > 1 else K + C)), np.zeros(0)
        data[f"W{i}"], data[f"b{i}"] = W, b
    data["W_out"], data["b_out"] = as_float64(out.weight), as_float64(out.bias)
    assert data["W_out"].shape == (data["D"], widths[-1]), f"W_out has shape {data['W_out'].shape}"
    data["hidden_activation"] = HIDDEN_CODES[activation]
    data["output_activation"] = OUTPUT_CODES[output_activation]
    return validate_decoder_data(data, "exported decoder")


def as_float64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def to_json_data(data: dict) -> dict:
    """Stan JSON: numbers and nested lists (numpy arrays become lists)."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in data.items()}


def weights_hash(data: dict) -> str:
    return hashlib.sha256(json.dumps(to_json_data(data), sort_keys=True).encode()).hexdigest()


def export_decoder(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``decoder.json`` (Stan data) and ``decoder.meta.json`` (provenance) for a run."""
    run_dir = Path(run_dir)
    model, config, state = load_model(run_dir)
    data = decoder_stan_data(model, config.activation, config.resolved_output_activation)
    out = Path(out) if out else run_dir / "decoder.json"
    info = config.data_info
    meta = {
        "format": DECODER_FORMAT,
        "weights_sha256": weights_hash(data),
        "run_dir": str(run_dir.resolve()),
        "epoch": state["epoch"],
        "dataset": config.dataset,
        "image_shape": list(info.image_shape) if info.image_shape else None,
        "condition": info.condition if model.cond_dim else None,
        "classes": class_names(config, model.cond_dim),
        "gp": gp_meta(config) if config.is_gp else None,
        "activation": config.activation,
        "output_activation": config.resolved_output_activation,
        "config": config.to_dict(),
        "versions": versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(out, json.dumps(to_json_data(data)) + "\n")
    meta_path = meta_path_for(out)
    write_json(meta_path, meta)
    return out, meta_path


def class_names(config, cond_dim: int) -> list[str]:
    if config.is_gp:
        return []  # a PriorCVAE is conditioned on the lengthscale, not on classes
    if config.dataset in IMAGE_DATASETS and cond_dim:
        return list(IMAGE_DATASETS[config.dataset].classes)
    return [str(c) for c in range(cond_dim)]


def gp_meta(config) -> dict:
    """The GP prior a PriorVAE/PriorCVAE decoder stands for (read by ``gp-fit`` and ``check-prior``)."""
    prior = config.gp_prior()
    return {"dim": prior.dim, "grid": prior.n, "kernel": prior.kernel, "lengthscale": list(prior.lengthscale), "variance": list(prior.variance)}


def meta_path_for(decoder_json: str | Path) -> Path:
    p = Path(decoder_json)
    return p.with_name(p.name.removesuffix(".json") + ".meta.json")


# ----------------------------------------------------------------------------
# loading and validation


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
    for key, shape in expected.items():
        try:
            value = np.asarray(raw[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise SurrogateError(f"{source}: {key} must be an array of numbers of shape {shape}") from None
        if value.size == 0 and np.prod(shape) == 0:
            value = value.reshape(shape)
        if value.shape != shape:
            raise SurrogateError(f"{source}: {key} has shape {value.shape}, expected {shape} from K={K}, C={C}, D={D}, H={H}")
        bad = ~np.isfinite(value)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SurrogateError(f"{source}: {key} has {int(bad.sum())} non-finite values (first at {list(first)}: {value[first]})")
        out[key] = value
    return out


def torch_decoder(data: dict) -> nn.Sequential:
    """A float64 PyTorch decoder rebuilt from Stan data (input: z, then class weights)."""
    act = {code: name for name, code in HIDDEN_CODES.items()}[data["hidden_activation"]]
    out_act = {code: name for name, code in OUTPUT_CODES.items()}[data["output_activation"]]
    layers: list[nn.Module] = []
    pairs = [(data[f"W{i}"], data[f"b{i}"]) for i in range(1, data["L"] + 1)] + [(data["W_out"], data["b_out"])]
    for i, (W, b) in enumerate(pairs):
        linear = nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        layers.append(HIDDEN_ACTIVATIONS[act][0]() if i < len(pairs) - 1 else OUTPUT_ACTIVATIONS[out_act][0]())
    return nn.Sequential(*layers).eval()
