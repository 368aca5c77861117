"""Training a surrogate of a prior on a domain from Python: ``sg.train(sg.BYM2(), domain) -> Surrogate``.

The run is the same as ``surrogate train --prior ...`` writes (config.json, checkpoint.pt, prior.json,
metrics): in a temporary folder unless ``out`` is given, kept with :meth:`Surrogate.save`. A domain
built in memory (a GeoDataFrame, a DataFrame of sites) is written beside the run (``domain.gpkg`` /
``domain.csv``), so the run is whole and ``sg.load`` reads it back anywhere.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from surrogate.errors import SurrogateError
from surrogate.priors import Prior, prior_class
from surrogate.spatial.domain import Domain

MODELS = ("vae", "cvae")


def resolve_latent(latent, probe) -> tuple[int, str | None]:
    """(latent size, the message that explains an ``auto`` one) for ``latent`` = "auto" or a positive int.

    ``probe``: a TrainConfig of the run (its latent and model do not matter) whose prior's spectrum sets K.
    """
    if isinstance(latent, str) and latent == "auto":
        from surrogate.nn.linear_path import auto_latent

        if not probe.is_simulated:
            raise SurrogateError(f"latent 'auto' needs a simulated prior (a GP dataset or a spatial prior), whose eigenvalue spectrum "
                                 f"sets K; found dataset {probe.dataset}")  # fmt: skip
        spec = auto_latent(*probe.prior_covariance())
        if spec["capped"]:
            from surrogate.nn.linear_path import MAX_AUTO_LATENT

            return spec["latent"], (f"WARNING: latent auto is capped at {MAX_AUTO_LATENT}: {spec['latent']} dimensions keep only "
                                    f"{100 * spec['kept_share_min']:.1f}% of the prior's variance and {100 * spec['kept_local_min']:.1f}% "
                                    f"at the worst location (targets: 99% and 95%); decoded draws will be under-dispersed and a "
                                    f"{spec['latent']}-wide decoder is slow: fit the exact model (an ICAR, BYM2 or CAR: its sparse "
                                    f"program) or give latent")  # fmt: skip
        return spec["latent"], (f"latent auto: {spec['latent']} dimensions keep {100 * spec['kept_share_min']:.1f}% of the prior's variance "
                                f"(at least 99%) and {100 * spec['kept_local_min']:.1f}% at every location (at least 95%), over its whole range")  # fmt: skip
    try:
        value = int(latent) if isinstance(latent, str) else latent
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SurrogateError(f"latent must be a positive integer or 'auto', found {latent!r}")
    return value, None  # its range is checked with the rest of the configuration


def domain_settings(domain: Domain, folder: Path) -> dict:
    """TrainConfig's domain settings for ``domain``: its own file where it was read from one, else one written into ``folder``."""
    if not isinstance(domain, Domain):
        raise SurrogateError(f"domain must be a surrogate Domain (Domain.from_map, from_points or grid), found {type(domain).__name__}")
    if domain.kind == "grid":
        return {"grid": int(round(domain.size**0.5)), "contiguity": domain.contiguity or "queen"}
    if domain.kind == "areas" and domain.source and Path(domain.source).is_file():  # sites are always written: x, y may be named otherwise
        return {"map": str(Path(domain.source).resolve()), "id_column": domain.id_column, "contiguity": domain.contiguity, "snap": domain.snap}
    folder.mkdir(parents=True, exist_ok=True)
    return domain.write(folder)


def as_prior(prior) -> Prior:
    """A prior instance from an instance or a registered name."""
    if isinstance(prior, str):
        return prior_class(prior)()
    if not isinstance(prior, Prior):
        raise SurrogateError(f"prior must be a prior (e.g. sg.BYM2()) or one of its names, found {type(prior).__name__}")
    return prior


def train(prior, domain: Domain, model: str | None = None, latent="auto", epochs: int | None = None, out=None, seed: int | None = None,
          settings=None, resume: bool = False, force: bool = False, log=print, **options):  # fmt: skip
    """Train a decoder of ``prior`` on ``domain`` and return the :class:`~surrogate.api.surrogate.Surrogate`.

    ``settings``: a :class:`~surrogate.api.settings.TrainSettings` (data / model / optim sections); the keywords
    ``model`` (``cvae``, conditioned on the prior's hyperparameter, the default where it has a range, or ``vae``),
    ``latent`` (an int or ``"auto"``: the K whose Karhunen-Loeve basis keeps 99% of the variance), ``epochs`` and
    ``seed`` override it, and further ``options`` are :class:`~surrogate.nn.config.TrainConfig` fields.
    """
    from surrogate.api.settings import TrainSettings
    from surrogate.api.surrogate import Surrogate
    from surrogate.nn.config import TrainConfig
    from surrogate.nn.train import train as run_training

    settings = settings if settings is not None else TrainSettings()
    if not isinstance(settings, TrainSettings):
        raise SurrogateError(f"settings must be a TrainSettings, found {type(settings).__name__}")
    flat = settings.flat() | {k: v for k, v in (("model", model), ("epochs", epochs), ("seed", seed)) if v is not None}
    if latent != "auto" or "latent" not in flat:
        flat["latent"] = latent
    spec = as_prior(prior)
    bound = spec.on(domain)  # checks the prior on this domain before anything is written
    flat["model"] = flat["model"] or ("vae" if bound.fixed else "cvae")
    if flat["model"] not in MODELS:
        raise SurrogateError(f"model must be one of {', '.join(MODELS)} for a spatial prior, found {flat['model']!r}")
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="surrogate-run-"))
    if out is not None and not (force or resume) and (folder / "config.json").exists():
        raise SurrogateError(f"out {folder} already holds a run; pass resume=True to continue it or force=True to replace it")
    fields = {**flat, "prior": spec.name, "kernel": bound.kernel if bound.spec.has_kernel else "matern52", "islands": bound.islands,
              "agg_grid": bound.agg_grid, **domain_settings(domain, folder), **options}  # fmt: skip
    if spec.hyper is not None:
        fields[spec.hyper.name] = bound.condition
    probe = TrainConfig(**{**fields, "latent": 1, "model": "vae"})
    fields["latent"], message = resolve_latent(fields["latent"], probe)
    if message:
        log(message)
    config = TrainConfig(**fields)
    result = run_training(config, folder, resume=resume, force=force or (out is None and not resume), log=log)
    return Surrogate(folder, result.model, config, temporary=out is None)
