"""When is the exact sparse model the better choice? A cost model, measured, for a surrogate fit's closing note.

A surrogate's gradient costs about N x K multiply-adds (its decoder: the basis times the latent vector), an
exact sparse BYM2 / ICAR / CAR's about N + E (its areas and edges). The surrogate's gain is fewer gradients per
effective draw; whether that pays depends on N, K and the map. After a surrogate fit the toolkit knows its own
microseconds per gradient and gradients per effective draw (measured in this run); for the exact sparse model it
predicts both from power laws fitted to ``scripts/bench_scale.py`` (exact BYM2 on synthetic Voronoi maps of
100-2,000 areas inside North Carolina's outline; docs/bench_scale.json, docs/benchmarks.md). When the exact model
is predicted faster per effective draw, it is as faithful by construction, so the fit says so and names the
command. The prediction is a rate on this machine's class of CPU (2 cores); it ignores compilation.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the exact programs a surrogate of this prior can be replaced by (sparse: cost linear in areas + edges)
SPARSE_EXACT = ("bym2", "icar", "car")


@dataclass(frozen=True)
class PowerLaw:
    """``scale * x ** power``, fitted on log-log axes to measurements over ``fitted_on`` (x's range)."""

    scale: float
    power: float
    fitted_on: tuple[float, float]

    def __call__(self, x: float) -> float:
        return self.scale * float(x) ** self.power

    def held(self, x: float) -> float:
        """The law within ``fitted_on``, held at its ends outside (for a measure that flattens: not extrapolated)."""
        lo, hi = self.fitted_on
        return self(min(max(float(x), lo), hi))


#: exact sparse BYM2, microseconds per gradient against areas + edges (bench_scale --part bym2: 18, 46, 183 and 751 us at
#: 347, 1,108, 3,819 and 7,734 areas + edges)
EXACT_US_PER_GRADIENT = PowerLaw(0.01622, 1.166, (347.0, 7734.0))
#: exact sparse BYM2, gradients (sampling phase, 4 chains) per effective draw of eta, against areas (314, 150, 89 and 88 at
#: 100, 300, 1,000 and 2,000 areas); held at its ends outside them (it flattens: not extrapolated)
EXACT_GRADIENTS_PER_ESS = PowerLaw(2088.0, -0.4375, (100.0, 2000.0))
#: the exact model must be predicted this many times faster before the note is printed (the model's own error: it
#: predicts the measured exact cost within 0.63-1.52x over the four sizes)
MARGIN = 1.25


def exact_alternative(prior: str, areas: int, edges: int, us_per_gradient: float, gradients_per_ess: float) -> dict | None:
    """The exact sparse model's predicted cost beside the surrogate's measured one, or None where there is no sparse exact
    model of ``prior``. ``faster``: the predicted speed-up of the exact model (seconds per effective draw, sampling)."""
    if prior not in SPARSE_EXACT or not EXACT_US_PER_GRADIENT.scale:
        return None
    exact_us, exact_gpe = EXACT_US_PER_GRADIENT(areas + edges), EXACT_GRADIENTS_PER_ESS.held(areas)
    surrogate_cost, exact_cost = us_per_gradient * gradients_per_ess, exact_us * exact_gpe
    return {"model": prior, "predicted_us_per_gradient": exact_us, "predicted_gradients_per_ess": exact_gpe,
            "surrogate_us_per_gradient": us_per_gradient, "surrogate_gradients_per_ess": gradients_per_ess,
            "faster": surrogate_cost / exact_cost, "recommend": surrogate_cost > MARGIN * exact_cost,
            "fitted_on_areas": EXACT_GRADIENTS_PER_ESS.fitted_on}  # fmt: skip


def note(alt: dict | None) -> str | None:
    """The closing line that names the faster exact model, or None."""
    if not alt or not alt["recommend"]:
        return None
    lo, hi = alt["fitted_on_areas"]
    return (f"note: the exact sparse {alt['model']} is predicted {alt['faster']:.1f}x faster per effective draw here (about "
            f"{alt['predicted_us_per_gradient']:.0f} us per gradient and {alt['predicted_gradients_per_ess']:.0f} gradients per effective draw, "
            f"against this fit's {alt['surrogate_us_per_gradient']:.0f} and {alt['surrogate_gradients_per_ess']:.0f}; cost model fitted on "
            f"{lo:,.0f}-{hi:,.0f} areas, docs/benchmarks.md) and it is exact: fit it with --model {alt['model']} (sg.fit(..., "
            f"prior=\"{alt['model']}\"))")  # fmt: skip
