"""Training configuration: one dataclass, saved as ``config.json`` beside the checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from surrogate.data import DATASETS, DatasetInfo, dataset_info
from surrogate.data.gp import GP_DATASETS, GPPrior, check_range
from surrogate.errors import SurrogateError, check_choice, check_positive_int
from surrogate.nn.losses import RECON_LOSSES
from surrogate.nn.models import HIDDEN_ACTIVATIONS, MODEL_KINDS, OUTPUT_ACTIVATIONS


@dataclass
class TrainConfig:
    # data
    dataset: str = "mnist"  # mnist | fashion-mnist | clusters | gp1d | gp2d (GP prior draws)
    digits: tuple[int, ...] | None = None  # keep only these labels (None: all)
    train_size: int | None = None  # use the first N training examples (None: the whole split)
    # GP prior draws (datasets gp1d and gp2d only)
    grid: int | None = None  # points per axis: n (1-D) or n x n cells (2-D) (None: 100 for gp1d, 20 for gp2d)
    kernel: str = "matern52"  # rbf | matern12 | matern32 | matern52
    lengthscale: tuple[float, ...] = (0.2,)  # fixed, or (lo, hi): Uniform(lo, hi) (PriorCVAE conditions on it)
    variance: tuple[float, ...] = (1.0,)  # marginal variance, fixed or (lo, hi): Uniform(lo, hi)
    epoch_size: int = 10_000  # fresh prior draws per epoch (an endless data set)
    valid_size: int = 2_000  # fixed validation draws
    # model
    model: str = "cvae"  # ae | vae | cvae (conditioned on the one-hot label, or on the GP lengthscale)
    hidden: tuple[int, ...] = (400, 200, 100)  # encoder widths; the decoder mirrors them
    latent: int = 15  # size of the code z
    activation: str = "elu"  # hidden activation: elu | tanh | relu | softplus
    output_activation: str | None = None  # sigmoid | identity (None: sigmoid for images)
    # loss
    loss: str | None = None  # bce | gaussian (None: bce for images, gaussian otherwise)
    noise_scale: float | None = None  # sd of the gaussian reconstruction loss (None: 1.0 for GP draws, else 0.1)
    beta: float = 1.0  # weight of the KL term (beta-VAE)
    kl_warmup: float = 0.0  # epochs over which the KL weight ramps linearly from 0 to beta
    free_bits: float = 0.0  # nats per latent dimension not penalised by the KL
    denoise: float = 0.0  # sd of Gaussian noise added to the encoder input (denoising AE)
    sparsity: float = 0.0  # weight of the L1 penalty on the code (sparse AE)
    dropout: float = 0.0  # dropout probability after each hidden layer of the encoder (dropout autoencoder)
    # optimisation
    epochs: int = 30  # total epochs (a resumed run continues up to this)
    batch_size: int = 128
    lr: float = 1e-3  # Adam learning rate
    seed: int = 1  # seeds initialisation, shuffling and the reparameterisation noise
    device: str = "auto"  # auto (cuda > mps > cpu) | cuda | mps | cpu

    #: settings that may differ when a run is resumed
    RESUMABLE_CHANGES = ("epochs", "device")

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        self.digits = tuple(sorted(int(d) for d in self.digits)) if self.digits else None
        self.lengthscale = tuple(float(v) for v in (self.lengthscale if isinstance(self.lengthscale, (tuple, list)) else (self.lengthscale,)))
        self.variance = tuple(float(v) for v in (self.variance if isinstance(self.variance, (tuple, list)) else (self.variance,)))
        self.validate()

    # --- derived settings ---
    @property
    def is_gp(self) -> bool:
        return self.dataset in GP_DATASETS

    @property
    def data_info(self) -> DatasetInfo:
        return dataset_info(self.dataset, self.grid)

    def gp_prior(self) -> GPPrior:
        """The GP prior the training draws come from (GP datasets only)."""
        info = self.data_info
        n = info.image_shape[0] if info.image_shape else info.dim
        return GPPrior(GP_DATASETS[self.dataset], n, self.kernel, check_range("lengthscale", self.lengthscale), check_range("variance", self.variance))

    @property
    def resolved_output_activation(self) -> str:
        if self.output_activation:
            return self.output_activation
        return "sigmoid" if self.data_info.bounded else "identity"

    @property
    def resolved_noise_scale(self) -> float:
        # GP draws (variance ~1): a unit noise sd keeps the KL strong enough for decoded prior
        # draws to match the GP (measured in docs/benchmarks.md); 0.1 under-disperses them
        if self.noise_scale is not None:
            return self.noise_scale
        return 1.0 if self.is_gp else 0.1

    @property
    def resolved_loss(self) -> str:
        if self.loss:
            return self.loss
        return "bce" if self.resolved_output_activation == "sigmoid" else "gaussian"

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("model", self.model, MODEL_KINDS)
        check_choice("activation", self.activation, HIDDEN_ACTIVATIONS)
        if self.output_activation is not None:
            check_choice("output activation", self.output_activation, OUTPUT_ACTIVATIONS)
        if self.loss is not None:
            check_choice("loss", self.loss, RECON_LOSSES)
        if self.resolved_loss == "bce" and self.resolved_output_activation != "sigmoid":
            raise SurrogateError("loss bce needs output activation sigmoid, found identity")
        self.validate_gp()
        check_positive_int("latent", self.latent)
        check_positive_int("batch-size", self.batch_size)
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise SurrogateError(f"epochs must be a non-negative integer, found {self.epochs!r}")
        if self.train_size is not None:
            check_positive_int("train-size", self.train_size)
        if not 1 <= len(self.hidden) <= 4 or min(self.hidden) < 1:
            raise SurrogateError(f"hidden must list 1 to 4 positive widths, found {','.join(map(str, self.hidden))}")
        for name in ("lr", "noise_scale"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise SurrogateError(f"{name.replace('_', '-')} must be positive, found {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise SurrogateError(f"dropout must be a probability in [0, 1), found {self.dropout}")
        for name in ("beta", "kl_warmup", "free_bits", "denoise", "sparsity"):
            if not getattr(self, name) >= 0:
                raise SurrogateError(f"{name.replace('_', '-')} must be non-negative, found {getattr(self, name)}")

    def validate_gp(self) -> None:
        defaults = {f.name: f.default for f in fields(self)}
        gp_keys = ("grid", "kernel", "lengthscale", "variance", "epoch_size", "valid_size")
        if not self.is_gp:
            changed = [k.replace("_", "-") for k in gp_keys if getattr(self, k) != defaults[k]]
            if changed:
                raise SurrogateError(f"{', '.join(changed)} {'applies' if len(changed) == 1 else 'apply'} to the GP datasets (gp1d, gp2d) only; dataset is {self.dataset}")
            return
        if self.digits:
            raise SurrogateError(f"digits apply to labelled datasets only; dataset {self.dataset} has none")
        if self.train_size is not None:
            raise SurrogateError(f"train-size does not apply to {self.dataset}: set epoch-size (fresh draws per epoch)")
        if self.grid is not None:
            check_positive_int("grid", self.grid)
        check_positive_int("epoch-size", self.epoch_size)
        check_positive_int("valid-size", self.valid_size)
        prior = self.gp_prior()  # checks kernel, grid, lengthscale and variance
        if self.model == "cvae" and prior.fixed_lengthscale:
            raise SurrogateError(f"model cvae (PriorCVAE) conditions on the lengthscale and needs a range lo,hi; found a fixed lengthscale {self.lengthscale[0]}")

    # --- persistence ---
    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["digits"] = list(self.digits) if self.digits else None
        d["lengthscale"], d["variance"] = list(self.lengthscale), list(self.variance)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SurrogateError(f"config has unknown keys {sorted(unknown)}; valid keys: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise SurrogateError(f"cannot read config {path}: {exc}") from None

    def differences(self, other: "TrainConfig") -> list[str]:
        """Settings (other than epochs and device) where ``other`` differs from this one.

        Settings with a derived default compare by their resolved values, so a run saved
        with an explicit value resumes under the default that resolves to it, and back.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        for name in ("output_activation", "noise_scale", "loss"):
            mine[name], theirs[name] = getattr(self, f"resolved_{name}"), getattr(other, f"resolved_{name}")
        return [
            f"{k.replace('_', '-')}: saved {mine[k]!r}, given {theirs[k]!r}"
            for k in mine
            if k not in self.RESUMABLE_CHANGES and mine[k] != theirs[k]
        ]
