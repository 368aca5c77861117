"""Sampler settings and one run's draws, engine-independent.

Both engines return a :class:`StanFit` holding ``(chain, draw, *shape)`` arrays with
ArviZ's names for the sampler statistics, the timings per chain, the versions used and
the engine's own messages (``log``, written to ``engine.log`` beside the outputs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from surrogate.errors import SurrogateError, check_positive_int

#: Stan's sampler diagnostics -> ArviZ's sample_stats names.
SAMPLE_STATS = {
    "lp__": "lp",
    "accept_stat__": "acceptance_rate",
    "stepsize__": "step_size",
    "treedepth__": "tree_depth",
    "n_leapfrog__": "n_steps",
    "divergent__": "diverging",
    "energy__": "energy",
}


DEFAULT_ADAPT_DELTA = 0.8  # Stan's
#: a CVAE surrogate's default: on 100 sites (GP, lengthscale inferred; 7 seeds of 4 x (500 + 500)) it had 216 divergent
#: transitions at 0.8 (median 5 per fit, two chains stuck in the upper tail of the lengthscale) against the exact GP's 16
#: (median 2); at 0.9 it had 20 (median 2), for a step size about 20% smaller (docs/benchmarks.md, "Divergences")
CONDITIONED_ADAPT_DELTA = 0.9


@dataclass
class SamplerSettings:
    chains: int = 4  # independent chains (run in parallel)
    warmup: int = 1000  # adaptation iterations per chain
    draws: int = 1000  # saved iterations per chain
    seed: int = 1  # the same seed gives the same draws on both engines
    adapt_delta: float | None = None  # target acceptance rate of step-size adaptation (None: see resolved)
    max_treedepth: int = 10  # NUTS tree depth limit
    init: float | list[dict] | None = None  # None: uniform(-2, 2); a number: that radius; a list: one dict per chain
    dense_metric: bool = False  # adapt a dense instead of a diagonal mass matrix

    def validate(self) -> None:
        check_positive_int("chains", self.chains)
        check_positive_int("draws", self.draws)
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise SurrogateError(f"warmup must be a non-negative integer, found {self.warmup!r}")
        if self.adapt_delta is not None and not (isinstance(self.adapt_delta, (int, float)) and 0 < self.adapt_delta < 1):
            raise SurrogateError(f"adapt_delta must be in (0, 1), found {self.adapt_delta}")
        check_positive_int("max_treedepth", self.max_treedepth)
        if isinstance(self.init, (int, float)) and self.init < 0:
            raise SurrogateError(f"init radius must be non-negative, found {self.init}")
        if isinstance(self.init, list) and len(self.init) != self.chains:
            raise SurrogateError(f"init must hold one dict per chain ({self.chains}), found {len(self.init)}")

    def resolved(self, conditioned: bool = False) -> "SamplerSettings":
        """These settings with ``adapt_delta`` set where it was left None: :data:`CONDITIONED_ADAPT_DELTA` for a surrogate
        decoder conditioned on its hyperparameter (a CVAE), Stan's 0.8 otherwise."""
        if self.adapt_delta is not None:
            return self
        return replace(self, adapt_delta=CONDITIONED_ADAPT_DELTA if conditioned else DEFAULT_ADAPT_DELTA)


@dataclass
class StanFit:
    """Draws of one run: ``draws[name]`` and ``stats[name]`` are ``(chain, draw, *shape)``."""

    engine: str
    draws: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    settings: SamplerSettings
    timing: dict = field(default_factory=dict)  # compile_s, warmup_s / sampling_s (per chain), wall_s
    versions: dict = field(default_factory=dict)
    log: str = ""  # the engine's messages: stanc warnings, Stan's console output per chain

    def sampler_problems(self) -> dict:
        """Counts of divergent transitions and tree-depth hits, per chain and in all."""
        div = self.stats["diverging"].sum(axis=1)
        depth = (self.stats["tree_depth"] >= self.settings.max_treedepth).sum(axis=1)
        return {"divergences": int(div.sum()), "divergences_per_chain": div.tolist(),
                "treedepth_hits": int(depth.sum()), "treedepth_hits_per_chain": depth.tolist()}  # fmt: skip


def normalise_stats(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for stan_name, name in SAMPLE_STATS.items():
        if stan_name in stats:
            value = stats[stan_name]
            if name == "diverging":
                value = value.astype(bool)
            elif name in ("tree_depth", "n_steps"):
                value = value.astype(np.int64)
            out[name] = value
    return out


ELAPSED_RE = re.compile(r"([0-9.eE+-]+) seconds \((Warm-up|Sampling)\)")


def parse_elapsed(text: str) -> dict[str, float]:
    """Stan's "Elapsed Time" report of one chain as ``{"warmup_s": .., "sampling_s": ..}``."""
    # only the report's lines: a pattern over the whole output (every draw's numbers) takes seconds
    lines = [line for line in text.splitlines() if " seconds (" in line]
    found = {kind: float(sec) for line in lines for sec, kind in ELAPSED_RE.findall(line)}
    return {"warmup_s": found.get("Warm-up", float("nan")), "sampling_s": found.get("Sampling", float("nan"))}
