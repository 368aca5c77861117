"""surrogate: train a decoder in PyTorch, use it as a fast prior in Stan.

The library, as a notebook uses it::

    import surrogate as sg
    domain = sg.Domain.from_map("nc.shp", id="FIPS", contiguity="rook")
    bym2 = sg.train(sg.BYM2(), domain, latent="auto")          # a Surrogate
    print(bym2.check())                                         # a PriorCheck
    fit = sg.fit("SID74 ~ NWPROP74 + offset(log(BIR74))", table, domain, prior=bym2)
    fit.summary(); fit.areas.explore(); fit.plot_map(); fit.report("runs/nc")

The names below are imported on first use, so ``import surrogate`` (and the CLI) stay light.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Domain": "surrogate.spatial.domain",
    "Prior": "surrogate.priors",
    "GP": "surrogate.priors",
    "HSGP": "surrogate.priors",
    "ICAR": "surrogate.priors",
    "BYM2": "surrogate.priors",
    "CAR": "surrogate.priors",
    "AggGP": "surrogate.priors",
    "prior_class": "surrogate.priors",
    "train": "surrogate.api.train",
    "TrainSettings": "surrogate.api.settings",
    "DataSettings": "surrogate.api.settings",
    "ModelSettings": "surrogate.api.settings",
    "OptimSettings": "surrogate.api.settings",
    "Surrogate": "surrogate.api.surrogate",
    "PriorCheck": "surrogate.api.surrogate",
    "load": "surrogate.api.surrogate",
    "fit": "surrogate.api.fit",
    "Fit": "surrogate.api.fit",
    "SpaceTimeFit": "surrogate.api.fit",
    "SamplerSettings": "surrogate.inference.fit",
    "datasets": "surrogate.datasets",
    "SurrogateError": "surrogate.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, name) if hasattr(module, name) else module  # sg.datasets is the module itself
        globals()[name] = value
        return value
    raise AttributeError(f"module 'surrogate' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
