"""A trained PyTorch decoder as Stan data (``surrogate export``), and back (for parity checks).

Shapes are asserted when weights move between the frameworks; the data block the programs read
is described in :mod:`surrogate.decoder.io`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from surrogate.data.mnist import IMAGE_DATASETS
from surrogate.decoder.io import compact_json, meta_path_for, row_starts, rows_of, validate_decoder_data, weights_hash
from surrogate.decoder.schema import DECODER_FORMAT, HIDDEN_CODES, MAX_HIDDEN, OUTPUT_CODES, name_of
from surrogate.fileio import write_json, write_text
from surrogate.nn.checkpoint import load_model, versions
from surrogate.nn.models import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, MLPAutoencoder

PASS_OFFSET = 100.0  # a linear path rides through ELU/ReLU units as z + PASS_OFFSET, where both are the identity


def folded_layers(model: MLPAutoencoder) -> list[nn.Linear]:
    """The decoder's Linear layers, with a linear path ``A z`` folded in as K pass-through units per hidden layer.

    Layer 1 gains rows ``[I_K, 0]`` with bias ``PASS_OFFSET``; each later hidden layer passes those
    units on (identity block, zero bias); the output layer adds ``A`` on them and subtracts
    ``A @ PASS_OFFSET``. ELU and ReLU are the identity on positive inputs, so the folded decoder
    equals ``A z + MLP(z, c)`` wherever every ``z_k > -PASS_OFFSET``.
    """
    layers = [m for m in model.decoder if isinstance(m, nn.Linear)]
    if model.linear is None:
        return layers
    K, C = model.latent_dim, model.cond_dim
    A = model.linear.weight.detach().double()
    out = []
    for i, layer in enumerate(layers):
        W, b = layer.weight.detach().double(), layer.bias.detach().double()
        n_out, n_in = W.shape
        last = i == len(layers) - 1
        extra_in = 0 if i == 0 else K
        new = nn.Linear(n_in + extra_in, n_out + (0 if last else K)).double()
        with torch.no_grad():
            new.weight.zero_()
            new.bias.zero_()
            new.weight[:n_out, :n_in] = W
            new.bias[:n_out] = b
            if last:
                new.weight[:, n_in:] = A
                new.bias[:] = b - PASS_OFFSET * A.sum(1)
            elif i == 0:
                new.weight[n_out:, :K] = torch.eye(K, dtype=torch.float64)
                new.bias[n_out:] = PASS_OFFSET
            else:
                new.weight[n_out:, n_in:] = torch.eye(K, dtype=torch.float64)
        out.append(new)
    assert C == 0 or out[0].weight.shape[1] == K + C
    return out


def zero_residual(model: MLPAutoencoder) -> bool:
    """A conditioned linear path beside an MLP whose output layer is all zero (the default for Gaussian priors)."""
    last = [m for m in model.decoder if isinstance(m, nn.Linear)][-1]
    return model.cond_linear is not None and not last.weight.detach().any() and not last.bias.detach().any()


def decoder_stan_data(model: MLPAutoencoder, activation: str, output_activation: str) -> dict:
    """The decoder of ``model`` as a dict of Stan data (numpy float64 arrays), shapes asserted.

    An MLP residual that is exactly zero beside a conditioned path is written as one hidden unit
    with zero weights: the same decoder, without the MLP's cost in every gradient.
    """
    layers = folded_layers(model)
    if zero_residual(model):
        n_in, n_out = layers[0].in_features, layers[-1].out_features
        layers = [nn.Linear(n_in, 1).double(), nn.Linear(1, n_out).double()]
        for layer in layers:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
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
    path = model.cond_linear
    data["G"] = 0 if path is None else len(path.knots)
    if path is None:
        data |= {"lin_knots": np.zeros(0), "lin_nnz": 0, "lin_w": np.zeros((0, 0)), "lin_v": np.zeros(0, dtype=np.int64),
                 "lin_u": np.zeros(0, dtype=np.int64), "lin_basis": np.zeros((0, 0))}  # fmt: skip
    else:
        rows, cols = path.rows.cpu().numpy(), path.cols.cpu().numpy()
        assert (np.diff(rows) >= 0).all(), "the path's entries must be in row order (compressed rows)"
        data |= {"lin_knots": as_float64(path.knots), "lin_nnz": len(rows), "lin_w": as_float64(path.values), "lin_v": cols + 1,
                 "lin_u": row_starts(rows, K), "lin_basis": as_float64(path.basis)}  # fmt: skip
        assert data["lin_w"].shape == (data["G"], len(rows)), f"lin_w has shape {data['lin_w'].shape}, expected {(data['G'], len(rows))}"
        assert data["lin_basis"].shape == (data["D"], K), f"lin_basis has shape {data['lin_basis'].shape}, expected {(data['D'], K)}"
    return validate_decoder_data(data, "exported decoder")


def as_float64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


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
        "spatial": spatial_meta(config) if config.is_spatial else None,
        "check_prior": recorded_check(run_dir, state["epoch"]),
        "activation": config.activation,
        "output_activation": config.resolved_output_activation,
        "config": config.to_dict(),
        "versions": versions(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(out, compact_json(data) + "\n")
    meta_path = meta_path_for(out)
    write_json(meta_path, meta)
    return out, meta_path


def class_names(config, cond_dim: int) -> list[str]:
    if config.is_simulated:
        return []  # a PriorCVAE is conditioned on the lengthscale, not on classes
    if config.dataset in IMAGE_DATASETS and cond_dim:
        return list(IMAGE_DATASETS[config.dataset].classes)
    return [str(c) for c in range(cond_dim)]


def gp_meta(config) -> dict:
    """The GP prior a PriorVAE/PriorCVAE decoder stands for (read by ``gp-fit`` and ``check-prior``)."""
    prior = config.gp_prior()
    return {"dim": prior.dim, "grid": prior.n, "kernel": prior.kernel, "lengthscale": list(prior.lengthscale), "variance": list(prior.variance)}


def recorded_check(run_dir: Path, epoch: int) -> dict | None:
    """The run's ``check_prior.json`` (its pass, worst error and linear floor), if one was written after the last epoch."""
    path = run_dir / "check_prior.json"
    ckpt = run_dir / "checkpoint.pt"
    if not path.is_file() or (ckpt.is_file() and path.stat().st_mtime < ckpt.stat().st_mtime):
        return None  # none, or one of earlier weights
    result = json.loads(path.read_text())
    rows = result.get("checks", [])
    worst = max((r.get("cov_error", r.get("cov_rel_error", float("nan"))) for r in rows), default=float("nan"))  # cov_rel_error: checks before 0.1
    return {"passed": bool(result.get("passed")), "worst_cov_error": worst, "max_cov_error": result.get("max_cov_error"),
            "cov_error_linear": max((r.get("cov_error_linear", float("nan")) for r in rows), default=None), "epoch": epoch}  # fmt: skip


def spatial_meta(config) -> dict:
    """The spatial prior and domain a decoder stands for (read by ``fit``): its hash refuses other maps."""
    return config.spatial_prior().to_dict()


class StanDecoder(nn.Module):
    """A float64 PyTorch decoder rebuilt from Stan data: the dense layers, plus the conditioned
    linear path ``B L(c) z`` when the data has one (input: z, then the condition or class weights)."""

    def __init__(self, data: dict):
        super().__init__()
        act = name_of(HIDDEN_CODES, "hidden_activation", data["hidden_activation"])
        out_act = name_of(OUTPUT_CODES, "output_activation", data["output_activation"])
        layers: list[nn.Module] = []
        pairs = [(data[f"W{i}"], data[f"b{i}"]) for i in range(1, data["L"] + 1)] + [(data["W_out"], data["b_out"])]
        for i, (W, b) in enumerate(pairs):
            linear = nn.Linear(W.shape[1], W.shape[0]).double()
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W))
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            layers.append(HIDDEN_ACTIVATIONS[act]() if i < len(pairs) - 1 else OUTPUT_ACTIVATIONS[out_act]())
        self.net = nn.Sequential(*layers)
        self.K = data["K"]
        self.path = None
        if data.get("G", 0):
            from surrogate.nn.linear_path import ConditionedLinearPath

            self.path = ConditionedLinearPath(data["D"], data["K"], data["G"])
            self.path.set_path({"knots": data["lin_knots"], "rows": rows_of(data["lin_u"]), "cols": data["lin_v"] - 1, "values": data["lin_w"],
                                "basis": data["lin_basis"]})  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out if self.path is None else out + self.path(x[:, : self.K], x[:, self.K :])


def torch_decoder(data: dict) -> nn.Module:
    """The decoder of Stan data as a float64 PyTorch module, in eval mode."""
    return StanDecoder(data).double().eval()
