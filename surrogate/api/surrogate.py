"""A trained surrogate in memory: its decoder, its prior on its domain, its check, its export.

``sg.train`` returns one, ``sg.load(run_dir)`` reads one back; ``sg.fit(..., prior=surrogate)``
samples with it. The run folder is the CLI's (``surrogate check-prior`` / ``export`` read it too).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from surrogate.errors import SurrogateError


@dataclass
class PriorCheck:
    """The prior check of a decoder (``surrogate check-prior``): per checked hyperparameter value, the covariance
    error of decoded draws against the exact prior beside its linear and sampling floors, variance ratios, MMD."""

    passed: bool
    prior: str
    condition_name: str | None
    locations: int
    latent: int
    draws: int
    max_cov_error: float
    linear_floor_share: float
    k99: int
    checks: list[dict] = field(default_factory=list)
    run_dir: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "PriorCheck":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self):
        """The checked values as a DataFrame (one row per value)."""
        import pandas as pd

        return pd.DataFrame(self.checks)

    def __str__(self) -> str:
        from surrogate.tasks.prior_check import format_spatial_check

        return format_spatial_check(self.to_dict())


WHERE = {"areas": "areas", "points": "sites", "grid": "grid cells"}


class Surrogate:
    """A decoder trained on draws of a spatial prior on one domain."""

    def __init__(self, run_dir, model, config, temporary: bool = False):
        self.run_dir, self.model, self.config, self.temporary = Path(run_dir), model, config, temporary
        self.prior = config.spatial_prior()  # the bound prior (SpatialPrior) it stands for
        self.domain = self.prior.domain

    def __repr__(self) -> str:
        c = self.prior.condition
        cond = f", {self.prior.condition_name} {c[0]:g}-{c[1]:g}" if c else ""
        return (f"Surrogate({self.config.model} of {self.prior.kind}{cond} on {self.domain.size} {WHERE[self.domain.kind]}, "
                f"latent {self.model.latent_dim}, {self.run_dir})")  # fmt: skip

    @property
    def settings(self):
        """The run's settings in sections (data / model / optim): a :class:`~surrogate.api.settings.TrainSettings`."""
        from surrogate.api.settings import TrainSettings

        return TrainSettings.from_config(self.config)

    @property
    def latent(self) -> int:
        return self.model.latent_dim

    def check(self, draws: int = 2000, values=None, max_cov_error: float = 0.2, seed: int = 0) -> PriorCheck:
        """Check decoded draws against the exact prior; recorded in the run (an export carries it)."""
        from surrogate.tasks.gp_check import check_prior

        return PriorCheck.from_dict(check_prior(self.run_dir, draws, values, max_cov_error, seed, out=self.run_dir))

    def export(self, path=None) -> Path:
        """Write the decoder as Stan data (``decoder.json`` and ``decoder.meta.json``); the path of decoder.json."""
        from surrogate.nn.export import export_decoder

        return export_decoder(self.run_dir, path)[0]

    def decoder_json(self) -> Path:
        """The run's exported decoder, written now if missing or older than the checkpoint or its check."""
        path = self.run_dir / "decoder.json"
        newest = max((self.run_dir / n).stat().st_mtime for n in ("checkpoint.pt", "check_prior.json") if (self.run_dir / n).exists())
        if not path.is_file() or path.stat().st_mtime < newest:
            self.export(path)
        return path

    def save(self, folder) -> "Surrogate":
        """Copy the run into ``folder`` (refused if it holds a run); this surrogate then lives there."""
        folder = Path(folder)
        if (folder / "config.json").exists() or (folder / "checkpoint.pt").exists():
            raise SurrogateError(f"folder {folder} already holds a run; choose another or remove it")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SurrogateError(f"folder {folder} exists and is not an empty folder; save into a new or empty one")
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.run_dir, tmp)
        if folder.exists():
            folder.rmdir()  # an empty folder only: a non-empty one raises, nothing lost
        tmp.rename(folder)
        self.run_dir, self.temporary = folder, False
        self.config = load(folder).config
        return self


def load(run_dir) -> Surrogate:
    """The surrogate of a run folder (written by ``sg.train``, ``Surrogate.save`` or ``surrogate train --prior``)."""
    from surrogate.nn.checkpoint import load_model

    run_dir = Path(run_dir)
    if not (run_dir / "checkpoint.pt").is_file():
        raise SurrogateError(f"run_dir {run_dir} holds no trained run (no checkpoint.pt)")
    model, config, _ = load_model(run_dir)
    if not config.is_spatial:
        raise SurrogateError(f"run_dir {run_dir} was trained on {config.dataset}, not on a spatial prior; sg.load reads spatial surrogates")
    return Surrogate(run_dir, model, config)
