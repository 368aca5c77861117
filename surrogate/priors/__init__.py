"""Spatial priors, one class per module, registered by name (``prior_class("bym2")`` is :class:`BYM2`)."""

from surrogate.priors.agg_gp import AggGP
from surrogate.priors.base import REGISTRY, Hyperparameter, Prior, exact_models, prior_class
from surrogate.priors.bym2 import BYM2
from surrogate.priors.car import CAR
from surrogate.priors.gp import GP
from surrogate.priors.hsgp import HSGP
from surrogate.priors.icar import ICAR

__all__ = ["REGISTRY", "Hyperparameter", "Prior", "exact_models", "prior_class", "GP", "HSGP", "ICAR", "BYM2", "CAR", "AggGP"]
