"""Training settings as nested dataclasses, the sections a notebook user thinks in: data, model, optimisation
(the prior is its own object: ``sg.BYM2(...)``). Each section checks its own fields when it is built, naming the
field and the value found; nothing is read or computed until ``sg.train`` runs. ``flat()`` gives the run's
:class:`~surrogate.nn.config.TrainConfig` fields (what ``config.json`` and the CLI's flags hold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from surrogate.errors import SurrogateError

MODEL_KINDS = ("vae", "cvae")
ACTIVATIONS = ("elu", "tanh", "relu", "softplus")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _positive_int(section: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SurrogateError(f"{section}.{name} must be a positive integer, found {value!r}")


def _positive(section: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SurrogateError(f"{section}.{name} must be a positive number, found {value!r}")


def _choice(section: str, name: str, value, choices) -> None:
    if value not in choices:
        raise SurrogateError(f"{section}.{name} must be one of {', '.join(map(str, choices))}, found {value!r}")


@dataclass(frozen=True)
class DataSettings:
    """Prior draws: ``epoch_size`` fresh draws per epoch (an endless data set), ``valid_size`` fixed validation draws."""

    epoch_size: int = 10_000
    valid_size: int = 2_000

    def __post_init__(self):
        _positive_int("data", "epoch_size", self.epoch_size)
        _positive_int("data", "valid_size", self.valid_size)


@dataclass(frozen=True)
class ModelSettings:
    """The VAE: ``kind`` vae or cvae (None: cvae where the prior has a hyperparameter range), ``latent`` an int or
    "auto", encoder widths ``hidden`` (the decoder mirrors them), ``residual``: train an MLP beside a CVAE's path."""

    kind: str | None = None
    latent: int | str = "auto"
    hidden: tuple[int, ...] = (400, 200, 100)
    activation: str = "elu"
    beta: float = 1.0
    noise_scale: float | None = None
    residual: bool | None = None

    def __post_init__(self):
        if self.kind is not None:
            _choice("model", "kind", self.kind, MODEL_KINDS)
        if self.latent != "auto":
            _positive_int("model", "latent", self.latent) if not isinstance(self.latent, str) else _choice("model", "latent", self.latent, ("auto",))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not 1 <= len(self.hidden) <= 4:
            raise SurrogateError(f"model.hidden must list 1 to 4 positive widths, found {self.hidden!r}")
        for width in self.hidden:
            _positive_int("model", "hidden", width)
        _choice("model", "activation", self.activation, ACTIVATIONS)
        if not (isinstance(self.beta, (int, float)) and self.beta >= 0):
            raise SurrogateError(f"model.beta must be a non-negative number, found {self.beta!r}")
        if self.noise_scale is not None:
            _positive("model", "noise_scale", self.noise_scale)


@dataclass(frozen=True)
class OptimSettings:
    """Adam on the VAE loss: ``epochs`` (0: the decoder as initialised, e.g. its linear path), batches, rate, seed, device;
    ``patience``: epochs without a better prior check score before training stops (0: never; the best epoch is kept)."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 1
    device: str = "auto"
    patience: int = 5

    def __post_init__(self):
        for name in ("epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SurrogateError(f"optim.{name} must be a non-negative integer, found {value!r}")
        _positive_int("optim", "batch_size", self.batch_size)
        _positive("optim", "lr", self.lr)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SurrogateError(f"optim.seed must be an integer, found {self.seed!r}")
        _choice("optim", "device", self.device, DEVICES)


@dataclass(frozen=True)
class TrainSettings:
    """All the settings of a training run but the prior and the domain."""

    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)

    def __post_init__(self):
        for name, kind in (("data", DataSettings), ("model", ModelSettings), ("optim", OptimSettings)):
            if not isinstance(getattr(self, name), kind):
                raise SurrogateError(f"settings.{name} must be a {kind.__name__}, found {type(getattr(self, name)).__name__}")

    def flat(self) -> dict:
        """The TrainConfig fields these settings set (``model.kind`` and ``model.latent`` are resolved by ``sg.train``)."""
        model = asdict(self.model)
        kind, latent = model.pop("kind"), model.pop("latent")
        return {**asdict(self.data), **model, **asdict(self.optim), "model": kind, "latent": latent}

    @classmethod
    def from_config(cls, config) -> "TrainSettings":
        """The sections of a run's TrainConfig (``Surrogate.settings``)."""
        return cls(DataSettings(config.epoch_size, config.valid_size),
                   ModelSettings(config.model, config.latent, tuple(config.hidden), config.activation, config.beta, config.noise_scale,
                                 config.residual),
                   OptimSettings(config.epochs, config.batch_size, config.lr, config.seed, config.device, config.patience))  # fmt: skip
