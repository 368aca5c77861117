"""What every prior declares: its name, its hyperparameter, its exact Stan program and that program's data.

A prior is one class in one module of this package, registered by name when it is defined
(:class:`Prior` subclasses with a ``name``). An instance holds what a user sets
(``BYM2(rho=(0, 1))``); :meth:`Prior.on` binds it to a domain, giving the
:class:`~surrogate.spatial.priors.SpatialPrior` that draws fields, gives covariances and
the exact program's data. The class methods below take that bound prior: they are the
kind-specific parts, so a new prior is one module here plus one ``.stan`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from surrogate.errors import SurrogateError, check_choice

REGISTRY: dict[str, type["Prior"]] = {}


@dataclass(frozen=True)
class Hyperparameter:
    """A prior's one hyperparameter: how users name it, how the posterior names it, where it may lie."""

    name: str  # as given: lengthscale, rho, alpha
    posterior: str  # in the posterior and the summaries: ell, rho, alpha
    lower: float = 0.0  # allowed values (a lengthscale: (0, inf))
    upper: float = np.inf
    upper_open: bool = False  # alpha < 1
    default: tuple[float, float] | None = None  # None: set from the domain (lengthscale)

    def check(self, value) -> tuple[float, float]:
        """A fixed value or (lo, hi) as a pair inside the allowed range; errors name the hyperparameter and the value."""
        if self.upper == np.inf:  # a positive scale: a lengthscale
            from surrogate.data.gp import check_range

            return check_range(self.name, value)
        pair = (value, value) if np.isscalar(value) else tuple(value)
        pair = pair * 2 if len(pair) == 1 else pair
        try:
            pair = tuple(float(v) for v in pair)
        except (TypeError, ValueError):
            raise SurrogateError(f"{self.name} must be one number or two (lo,hi), found {value!r}") from None
        if len(pair) != 2 or not all(np.isfinite(pair)):
            raise SurrogateError(f"{self.name} must be one number or two (lo,hi), found {value!r}")
        lo, hi = pair
        if lo < self.lower or hi > self.upper or (self.upper_open and hi >= self.upper):
            closing = ")" if self.upper_open else "]"
            raise SurrogateError(f"{self.name} must lie in [{self.lower:g}, {self.upper:g}{closing}, found {lo},{hi}")
        if lo > hi:
            raise SurrogateError(f"{self.name} prior bounds are inverted: lower {lo} > upper {hi}")
        return lo, hi


class Prior:
    """A prior on a spatial field at unit scale (the Stan programs infer its sd).

    Subclasses set ``name`` (the registry key), ``program`` (the exact Stan program in ``stan/``,
    None where the toolkit has none), ``hyper`` (None: no hyperparameter) and ``needs_graph``.
    """

    name: ClassVar[str] = ""
    program: ClassVar[str | None] = None
    hyper: ClassVar[Hyperparameter | None] = None
    needs_graph: ClassVar[bool] = False
    has_kernel: ClassVar[bool] = False  # a covariance kernel (gp, agg-gp)
    scaled: ClassVar[bool] = False  # built on the scaled ICAR (its scaling factors are recorded)
    dense: ClassVar[bool] = True  # binding it forms N x N matrices (its covariance, factor or spectrum)
    kernel: str | None = None
    islands: str = "refuse"
    agg_grid: int | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    def __init__(self, value=None, islands: str | None = None):
        self.value = None if value is None else (self.hyper.check(value) if self.hyper else value)
        if islands is not None:  # a prior on a graph: the rule for areas without neighbours
            from surrogate.spatial.graph import ISLAND_RULES

            self.islands = check_choice("islands", islands, ISLAND_RULES)

    def __repr__(self) -> str:
        parts = [f"{self.hyper.name}={self.value}"] if self.hyper and self.value is not None else []
        parts += [f"{k}={getattr(self, k)!r}" for k in ("kernel", "islands", "agg_grid") if getattr(self, k) not in (None, "refuse")]
        return f"{type(self).__name__}({', '.join(parts)})"

    def on(self, domain):
        """This prior on ``domain``: a :class:`~surrogate.spatial.priors.SpatialPrior`."""
        from surrogate.spatial.priors import SpatialPrior

        return SpatialPrior(self.name, domain, self.kernel or "matern32", self.value, self.islands, self.agg_grid or 30, self.options())

    def options(self) -> tuple:
        """This prior's own settings as (name, value) pairs, carried by the bound prior (none by default)."""
        return ()

    # --- the kind-specific parts, given a bound prior ---
    @classmethod
    def default_range(cls, bound) -> tuple[float, float] | None:
        return cls.hyper.default if cls.hyper else None

    @classmethod
    def validate(cls, bound) -> None:
        """Checks that need the domain (called when a prior is bound)."""

    @classmethod
    def covariance(cls, bound, value: float | None) -> np.ndarray:
        raise TypeError(f"prior class {cls.__name__} must define covariance(bound, value), as every registered prior does")

    @classmethod
    def factor(cls, bound, value: float) -> np.ndarray:
        """``L`` with ``L @ eps`` (eps ~ N(0, I)) a draw at ``value`` (cached by the bound prior)."""
        from surrogate.data.gp import JITTER

        cov = cls.covariance(bound, value)
        return np.linalg.cholesky(cov + JITTER * np.eye(len(cov)))

    @classmethod
    def draw(cls, bound, count: int, randn, uniform, value, device):
        """``(fields, condition)`` drawn by the prior itself, or None: draws from :meth:`factor` per value."""
        return None

    @classmethod
    def exact_data(cls, bound) -> dict:
        """The prior part of the data of ``program`` (``stan/<program>.stan``)."""
        raise SurrogateError(f"prior {cls.name} has no exact Stan program in this toolkit: fit it with its surrogate")

    @classmethod
    def exact_range(cls, bound) -> tuple[float, float]:
        """The hyperparameter's range for an exact program that infers it (a fixed value is refused, naming it)."""
        lo, hi = bound.condition
        if lo == hi:
            raise SurrogateError(f"{cls.name} infers {cls.hyper.name}: give a range lo,hi, found a fixed {cls.hyper.name} {lo}")
        return lo, hi


def prior_class(name: str) -> type[Prior]:
    """The class registered as ``name``; an unknown name is an error listing the valid ones."""
    if name not in REGISTRY:
        raise SurrogateError(f"unknown prior {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def exact_models() -> tuple[str, ...]:
    """The priors that have an exact Stan program, in registry order."""
    return tuple(name for name, cls in REGISTRY.items() if cls.program)
