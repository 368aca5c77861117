"""Run directories: checkpoints written atomically and loaded safely, the trained model read back, resume checks.

Sampling code does not need this module: an exported decoder is read by :mod:`surrogate.decoder.io`.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

import surrogate
from surrogate.errors import SurrogateError
from surrogate.fileio import atomic_path
from surrogate.nn.config import TrainConfig, relocated
from surrogate.nn.models import MLPAutoencoder, build_model

CHECKPOINT_FORMAT = "surrogate-checkpoint/1"
RUN_FILES = ("config.json", "checkpoint.pt", "metrics.csv", "learning_curves.png")


def save_checkpoint(path: Path, model, optimizer, config: TrainConfig, epoch: int, metrics: list[dict], kept: dict | None = None) -> None:
    """Write the checkpoint atomically (a crash leaves the previous one intact). ``model`` is the last epoch's (a resumed
    run continues from it); ``kept``: the best epoch's decoder by the prior check's score (``nn.fidelity``), which
    :func:`load_model` reads."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(config.to_dict()),
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "metrics": metrics,
        "versions": json.dumps(versions()),
    }
    if kept is not None:
        state["kept"] = kept
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a surrogate checkpoint safely (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise SurrogateError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise SurrogateError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise SurrogateError(f"{path} is not a surrogate checkpoint: format {found!r}, expected {CHECKPOINT_FORMAT!r}")
    state["config"] = TrainConfig.from_dict(relocated(json.loads(state["config"]), path.parent))
    return state


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[MLPAutoencoder, TrainConfig, dict]:
    """The trained model of a run directory (its kept epoch where training scored the decoder, else its last),
    its config and its checkpoint."""
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt", map_location=device)
    config = state["config"]
    info = config.data_info
    weights = state["kept"]["model"] if state.get("kept") else state["model"]
    model = build_model(config, info.dim, info.n_classes, config.resolved_output_activation, saved=weights)
    model.load_state_dict(weights)
    return model.to(device).eval(), config, state


def versions() -> dict:
    return {"surrogate": surrogate.__version__, "torch": torch.__version__, "python": platform.python_version()}


def prepare_run_dir(out: Path, config: TrainConfig, resume: bool, force: bool) -> dict | None:
    """Check ``out`` against the requested run; return the checkpoint to resume from, if any.

    Nothing is deleted or overwritten unless ``force``; ``resume`` needs the
    saved config to match ``config`` in everything but epochs and device.
    """
    if resume and force:
        raise SurrogateError("resume=True and force=True contradict each other: pick one")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if not existing:
        if resume:
            raise SurrogateError(f"resume=True: {out} holds no run to resume (no config.json or checkpoint.pt)")
        return None
    if force:
        for name in existing:
            (out / name).unlink()
        return None
    if not resume:
        raise SurrogateError(
            f"{out} already holds a run ({', '.join(existing)}); pass resume=True to continue it "
            f"or force=True to replace it"
        )
    saved = TrainConfig.load(out / "config.json") if (out / "config.json").exists() else None
    state = load_checkpoint(out / "checkpoint.pt") if (out / "checkpoint.pt").exists() else None
    saved = saved or (state and state["config"])
    diffs = saved.differences(config)
    if diffs:
        raise SurrogateError(f"cannot resume {out}: settings differ from the saved run ({'; '.join(diffs)})")
    return state
