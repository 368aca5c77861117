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
from surrogate.priors import prior_class
from surrogate.spatial.contiguity import CONTIGUITY, check_snap
from surrogate.spatial.graph import ISLAND_RULES
from surrogate.spatial.priors import PRIORS


@dataclass
class TrainConfig:
    # data
    dataset: str = "mnist"  # mnist | fashion-mnist | clusters | gp1d | gp2d (GP prior draws) | spatial (set by prior)
    digits: tuple[int, ...] | None = None  # keep only these labels (None: all)
    train_size: int | None = None  # use the first N training examples (None: the whole split)
    # GP prior draws (datasets gp1d and gp2d only)
    grid: int | None = None  # points per axis: n (1-D) or n x n cells (2-D) (None: 100 for gp1d, 20 for gp2d)
    kernel: str = "matern52"  # rbf | matern12 | matern32 | matern52
    lengthscale: tuple[float, ...] | None = None  # fixed, or (lo, hi): Uniform(lo, hi) (PriorCVAE conditions on it)
    #   (None: 0.2 on grids; 0.05-0.5 x the extent of a map or of sites)
    variance: tuple[float, ...] = (1.0,)  # marginal variance, fixed or (lo, hi): Uniform(lo, hi)
    epoch_size: int = 10_000  # fresh prior draws per epoch (an endless data set)
    valid_size: int = 2_000  # fixed validation draws
    # spatial priors on a map, sites or a grid domain (dataset spatial; draws at unit scale)
    prior: str | None = None  # gp | icar | bym2 | car | agg-gp
    map: str | None = None  # polygons: a shapefile, GeoJSON or GeoPackage
    points: str | None = None  # sites: a CSV with columns id, x, y
    id_column: str | None = None  # the map's (or sites file's) id column
    contiguity: str = "queen"  # neighbours sharing a point (queen), an edge (rook), or touching anywhere (fuzzy)
    snap: float | None = None  # fuzzy contiguity: polygons within this distance (map units) are neighbours too
    islands: str = "refuse"  # areas without neighbours: refuse | independent | nearest
    alpha: tuple[float, ...] = (0.1, 0.99)  # CAR dependence: fixed, or (lo, hi) (a cvae conditions on it)
    rho: tuple[float, ...] = (0.0, 1.0)  # BYM2 mixing: fixed, or (lo, hi) (a cvae conditions on it)
    agg_grid: int = 30  # agg-gp: points per axis of the fine grid over the map
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
    linear_path: bool | None = None  # decoder = linear Karhunen-Loeve path + MLP (B L(c) z for a CVAE, A z else; None: on for GP and spatial priors)
    residual: bool | None = None  # train the MLP beside a CVAE's conditioned path (None: off where the prior is Gaussian at each c; measured)
    # optimisation
    epochs: int = 30  # total epochs (a resumed run continues up to this)
    batch_size: int = 128
    lr: float = 1e-3  # Adam learning rate
    seed: int = 1  # seeds initialisation, shuffling and the reparameterisation noise
    device: str = "auto"  # auto (cuda > mps > cpu) | cuda | mps | cpu
    patience: int = 5  # prior draws with a linear path: stop when the decoder's covariance error has not improved for this many epochs (0: never)

    #: settings that may differ when a run is resumed
    RESUMABLE_CHANGES = ("epochs", "device", "patience")

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        self.digits = tuple(sorted(int(d) for d in self.digits)) if self.digits else None
        self.lengthscale = None if self.lengthscale is None else as_tuple(self.lengthscale)
        self.variance, self.alpha, self.rho = as_tuple(self.variance), as_tuple(self.alpha), as_tuple(self.rho)
        if self.prior is not None and self.dataset == "mnist":
            self.dataset = "spatial"  # a spatial prior implies its own data set
        self.validate()

    # --- derived settings ---
    @property
    def is_gp(self) -> bool:
        return self.dataset in GP_DATASETS

    @property
    def is_spatial(self) -> bool:
        return self.dataset == "spatial"

    @property
    def is_simulated(self) -> bool:
        """Trained on prior draws simulated afresh each epoch (a GP on a grid, or a spatial prior)."""
        return self.is_gp or self.is_spatial

    @property
    def data_info(self) -> DatasetInfo:
        if self.is_spatial:
            prior = self.simulator()
            return DatasetInfo(dim=prior.size, n_classes=1, image_shape=None, bounded=False, condition=prior.condition_name or "none")
        return dataset_info(self.dataset, self.grid)

    def gp_prior(self) -> GPPrior:
        """The GP prior the training draws come from (GP datasets only)."""
        info = self.data_info
        n = info.image_shape[0] if info.image_shape else info.dim
        return GPPrior(GP_DATASETS[self.dataset], n, self.kernel, check_range("lengthscale", self.lengthscale or (0.2,)),
                       check_range("variance", self.variance))  # fmt: skip

    def domain(self):
        """The spatial domain (dataset spatial): a map, sites or a grid."""
        from surrogate.spatial.domain import load_domain

        return load_domain(self.map, self.points, self.grid, self.id_column, self.contiguity, self.snap)

    def spatial_prior(self):
        """The spatial prior the training draws come from (dataset spatial)."""

        return _spatial_prior(self.prior, self.domain(), self.kernel, self.condition_value, self.islands, self.agg_grid)

    def simulator(self):
        """What draws the training data of a simulated data set (``.sample(count, generator, device=)``)."""
        return self.spatial_prior() if self.is_spatial else self.gp_prior()

    def prior_covariance(self):
        """``(covariance(value), lo, hi)``: the simulated prior's covariance at a value of its
        hyperparameter, and the hyperparameter's range (a fixed one: lo = hi)."""
        prior = self.simulator()
        if self.is_spatial:
            lo, hi = prior.condition if prior.condition is not None else (0.0, 0.0)
            return (lambda v: prior.covariance(None if prior.condition is None else v)), lo, hi
        mean_variance = 0.5 * sum(prior.variance)  # a random variance: the linear path matches its mean
        return (lambda v: prior.covariance(v, mean_variance)), *prior.lengthscale

    @property
    def resolved_output_activation(self) -> str:
        if self.output_activation:
            return self.output_activation
        if self.is_simulated:  # prior draws are real-valued
            return "identity"
        return "sigmoid" if self.data_info.bounded else "identity"

    @property
    def resolved_noise_scale(self) -> float:
        # GP draws (variance ~1): a unit noise sd keeps the KL strong enough for decoded prior
        # draws to match the GP (measured in docs/benchmarks.md); 0.1 under-disperses them
        if self.noise_scale is not None:
            return self.noise_scale
        if self.is_spatial:  # measured: 0.2 matches a BYM2's covariance best at full rank (docs/benchmarks.md)
            return 0.2
        return 1.0 if self.is_gp else 0.1

    @property
    def resolved_linear_path(self) -> bool:
        return self.is_simulated if self.linear_path is None else bool(self.linear_path)

    @property
    def conditioned_path(self) -> bool:
        """A CVAE of a simulated prior with the linear path on: its path follows the condition (B L(c) z)."""
        return self.resolved_linear_path and self.model == "cvae" and self.is_simulated

    @property
    def resolved_residual(self) -> bool:
        """Whether the decoder MLP is trained. Beside a conditioned path it is not by default when the prior is
        Gaussian at each value of its condition (GP with a fixed variance; ICAR, BYM2, CAR, agg-GP): the path
        is then the best rank-K decoder, and training the MLP on the VAE loss moved decoded draws away from
        the prior (docs/benchmarks.md, bench_remedies)."""
        if self.residual is not None:
            return bool(self.residual)
        if not self.conditioned_path:
            return True
        gaussian_at_each_c = self.is_spatial or len(set(self.variance)) == 1  # a random GP variance makes a scale mixture
        return not gaussian_at_each_c

    @property
    def path_alone(self) -> bool:
        """The decoder is the conditioned linear path alone, set from the prior's covariance: nothing of it is trained
        (the encoder is never exported), so training runs no epochs. Measured at 1,000 sites: 390 s of encoder
        training skipped, the same decoder (docs/bench_scale.json)."""
        return self.conditioned_path and not self.resolved_residual

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
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 0:
            raise SurrogateError(f"patience must be a non-negative integer (0: never stop early), found {self.patience!r}")
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
        spatial_keys = ("prior", "map", "points", "id_column", "contiguity", "snap", "islands", "alpha", "rho", "agg_grid")
        if not self.is_spatial:
            changed = [k.replace("_", "-") for k in spatial_keys if getattr(self, k) != defaults[k]]
            if changed:
                raise SurrogateError(f"{', '.join(changed)} {'applies' if len(changed) == 1 else 'apply'} to spatial priors only (prior=NAME); dataset is {self.dataset}")
        else:
            return self.validate_spatial()
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
            raise SurrogateError(f"model cvae (PriorCVAE) conditions on the lengthscale and needs a range lo,hi; found a fixed lengthscale {prior.lengthscale[0]}")

    def validate_spatial(self) -> None:
        if self.prior is None:
            raise SurrogateError(f"dataset spatial needs prior=NAME, one of {', '.join(PRIORS)}")
        check_choice("prior", self.prior, PRIORS)
        check_choice("islands", self.islands, ISLAND_RULES)
        check_choice("contiguity", self.contiguity, CONTIGUITY)
        self.snap = check_snap(self.snap, self.contiguity)
        if self.digits or self.train_size is not None:
            raise SurrogateError(f"digits and train-size do not apply to prior draws (prior {self.prior}): set epoch-size")
        if self.variance != (1.0,):
            raise SurrogateError(f"spatial priors are drawn at unit variance (the Stan programs infer the field's sd); found variance {self.variance}")
        check_positive_int("epoch-size", self.epoch_size)
        check_positive_int("valid-size", self.valid_size)
        spec = prior_class(self.prior)  # the domain is read when the prior is first used (spatial_prior), not here
        value = self.condition_value
        if spec.hyper is not None and value is not None:
            value = spec.hyper.check(value)
        if self.model == "cvae" and (spec.hyper is None or (value is not None and value[0] == value[1])):
            name = spec.hyper.name if spec.hyper else None
            what = f"a fixed {name} {value[0]}" if name else "no hyperparameter (icar)"
            raise SurrogateError(f"model cvae conditions on the prior's hyperparameter and needs a range lo,hi; prior {self.prior} has {what}")

    @property
    def condition_value(self):
        """The spatial prior's hyperparameter as given (lengthscale, alpha or rho); None: its default (or icar's none)."""
        return {"gp": self.lengthscale, "agg-gp": self.lengthscale, "car": self.alpha, "bym2": self.rho}.get(self.prior)

    # --- persistence ---
    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["digits"] = list(self.digits) if self.digits else None
        d["lengthscale"] = None if self.lengthscale is None else list(self.lengthscale)
        for name in ("variance", "alpha", "rho"):
            d[name] = list(getattr(self, name))
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
            return cls.from_dict(relocated(json.loads(Path(path).read_text()), Path(path).parent))
        except (OSError, json.JSONDecodeError) as exc:
            raise SurrogateError(f"cannot read config {path}: {exc}") from None

    def differences(self, other: "TrainConfig") -> list[str]:
        """Settings (other than epochs and device) where ``other`` differs from this one.

        Settings with a derived default compare by their resolved values, so a run saved
        with an explicit value resumes under the default that resolves to it, and back.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        for name in ("output_activation", "noise_scale", "loss", "linear_path", "residual"):
            mine[name], theirs[name] = getattr(self, f"resolved_{name}"), getattr(other, f"resolved_{name}")
        return [
            f"{k.replace('_', '-')}: saved {mine[k]!r}, given {theirs[k]!r}"
            for k in mine
            if k not in self.RESUMABLE_CHANGES and mine[k] != theirs[k]
        ]


#: where a run keeps a domain it was given in memory (``Domain.write``)
RUN_DOMAIN_FILES = {"map": "domain.gpkg", "points": "domain.csv"}


def relocated(d: dict, run_dir: Path) -> dict:
    """A saved config whose domain file was written into its run folder, pointed at that folder's copy once
    the folder has moved (``Surrogate.save``, a copied run)."""
    for key, name in RUN_DOMAIN_FILES.items():
        if d.get(key) and Path(d[key]).name == name and (run_dir / name).is_file():
            d = {**d, key: str((run_dir / name).resolve())}
    return d


def as_tuple(value) -> tuple[float, ...]:
    return tuple(float(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))


_PRIORS: dict = {}


def _spatial_prior(kind, domain, kernel, value, islands, agg_grid):
    """One SpatialPrior per setting (its factorisations are cached on it)."""
    from surrogate.spatial.priors import SpatialPrior

    key = (kind, domain.content_hash(), kernel, None if value is None else tuple(value), islands, agg_grid)
    if key not in _PRIORS:
        _PRIORS[key] = SpatialPrior(kind, domain, kernel, value, islands, agg_grid)
    return _PRIORS[key]
