"""Fitting a disease map from Python: ``sg.fit(formula, data, domain, prior=..., family=...) -> Fit``.

The same fit as ``surrogate fit`` (one task: :func:`surrogate.tasks.areas_fit.fit_areas`), with the
data given by a formula. ``prior`` is a trained :class:`~surrogate.api.surrogate.Surrogate` (its
decoder is the prior), a prior instance (``sg.BYM2(rho=(0, 1))``: the exact Stan model) or a
registered prior's name. The result keeps the InferenceData, the per-area table as a GeoDataFrame,
maps, the report and the fit folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surrogate.api.formula import LOG_OF_COLUMN
from surrogate.errors import SurrogateError

SAMPLER_KEYS = ("chains", "warmup", "draws", "seed", "adapt_delta", "max_treedepth", "init", "dense_metric")


class Fit:
    """A fitted map: ``.idata``, ``.summary()``, ``.areas`` (GeoDataFrame), ``.plot_map()``, ``.report(path)``, ``.save(dir)``."""

    def __init__(self, result, data, threshold: float = 1.0):
        self.result, self.data, self.threshold = result, data, float(threshold)

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"Fit({d['model']} model, {d['prior']['prior']} prior, {d['likelihood']}, {d['observed']} of {d['areas']} areas observed; "
                f"max R-hat {d['max_rhat']:.3f}, {d['divergences']} divergences)")  # fmt: skip

    def __str__(self) -> str:
        return self.result.text

    @property
    def idata(self):
        return self.result.idata

    @property
    def diagnostics(self) -> dict:
        return self.result.diagnostics

    def summary(self, var_names=None):
        """ArviZ's summary of the model's parameters (default: intercept, coefficients, field sd, hyperparameter)."""
        from surrogate.inference.diagnostics import import_arviz

        post = self.idata.posterior
        names = var_names or [n for n in ("intercept", "beta_original", "intercept_original", "beta", "sigma_field", "ell", "alpha", "rho",
                                          "sigma_iid", "sigma") if n in post]  # fmt: skip
        return import_arviz().summary(self.idata, var_names=names)

    @property
    def areas(self):
        """Per area (a GeoDataFrame): outcome, posterior mean, sd and 90% interval of rr, P(rr > threshold), eta."""
        return self.area_table(self.threshold)

    def area_table(self, threshold: float | None = None):
        """:attr:`areas` at another exceedance ``threshold``."""
        from surrogate.tasks.areas_fit import area_table

        threshold = self.threshold if threshold is None else threshold
        if not threshold > 0:
            raise SurrogateError(f"threshold must be a positive relative risk, found {threshold!r}")
        table = area_table(self.idata, self.data, threshold)
        column = self.data.domain.id_column or "id"
        return self.data.domain.to_geodataframe(**table.drop(columns="id").to_dict("series")).rename(columns={"id": column})

    def plot_map(self, axes=None):
        """The maps of ``maps.png``: posterior mean rr, its sd, P(rr > threshold); the matplotlib figure."""
        from surrogate.tasks.areas_fit import area_table, map_title, plot_maps

        return plot_maps(None, self.data, area_table(self.idata, self.data, self.threshold), map_title(self.diagnostics), self.threshold, axes)

    def save(self, folder) -> Path:
        """Write the fit folder (posterior.nc, summary.csv, diagnostics.json, areas.csv, maps.png, engine.log)."""
        from surrogate.tasks.areas_fit import write_outputs

        write_outputs(Path(folder), self.result, self.data, self.result.log)
        return Path(folder)

    def report(self, path=None) -> Path:
        """A self-contained ``report.html`` (and ``report.md``) in the fit folder (``path``: the folder; default: the saved one)."""
        from surrogate.reports.fit import build_report

        folder = Path(path) if path is not None else self.result.out
        if folder is None:
            raise SurrogateError("report needs a folder: give path, or save the fit first (fit.save(folder))")
        if folder.suffix in (".html", ".md"):
            raise SurrogateError(f"path is the fit folder the report is written into (report.html, report.md and the fit's files), "
                                 f"found a file name {str(folder)!r}")  # fmt: skip
        if self.result.out is None or Path(self.result.out).resolve() != folder.resolve():
            self.save(folder)
        return build_report(folder)[0]


class SpaceTimeFit(Fit):
    """A fitted map over periods: ``.cells`` (per area-period), ``.trends`` (per area), ``.plot_periods()``, ``.plot_trends(areas)``;
    ``.idata`` has ``eta`` and ``rr`` with dims (area, period)."""

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"SpaceTimeFit({d['model']} model, {d['prior']['prior']} fields, interaction {d['interaction']}, {d['temporal']} in time; "
                f"{d['observed']} of {d['areas']} x {d['periods']} area-periods observed; max R-hat {d['max_rhat']:.3f}, "
                f"{d['divergences']} divergences)")  # fmt: skip

    def summary(self, var_names=None):
        from surrogate.inference.diagnostics import import_arviz
        from surrogate.tasks.spacetime_fit import HYPER

        post = self.idata.posterior
        names = var_names or [n for n in ("intercept", "beta_original", "intercept_original", "beta", *HYPER, "time_effect", "sigma")
                              if n in post]  # fmt: skip
        return import_arviz().summary(self.idata, var_names=names)

    @property
    def areas(self):
        """Per area (a GeoDataFrame): the trend of eta per period step (mean, 90% interval, P(trend > 0)), rr last / first period."""
        return self.trends

    @property
    def trends(self):
        from surrogate.tasks.spacetime_fit import trend_table

        return self.geo(trend_table(self.idata, self.data))

    @property
    def cells(self):
        """Per area-period (a long GeoDataFrame, each area's polygon once per period): rr mean, sd, 90% interval, P(rr > threshold)."""
        return self.cell_table(self.threshold)

    def cell_table(self, threshold: float | None = None):
        from surrogate.tasks.spacetime_fit import cell_table

        threshold = self.threshold if threshold is None else threshold
        if not threshold > 0:
            raise SurrogateError(f"threshold must be a positive relative risk, found {threshold!r}")
        return self.geo(cell_table(self.idata, self.data, threshold), repeat=self.data.T)

    def area_table(self, threshold: float | None = None):
        return self.cell_table(threshold)

    def geo(self, table, repeat: int = 1):
        """``table`` (one row per area, or per area-period with ``repeat`` periods) with the map's geometry."""
        import geopandas as gpd

        domain = self.data.domain
        column = domain.id_column or "id"
        base = domain.to_geodataframe()
        geometry = gpd.GeoSeries(list(base.geometry) * repeat, crs=base.crs)
        return gpd.GeoDataFrame(table.rename(columns={"id": column}).reset_index(drop=True), geometry=geometry)

    def plot_map(self, axes=None):
        return self.plot_periods()

    def plot_periods(self):
        """Small multiples: posterior mean rr per period on one scale, and P(rr > threshold); the figure."""
        from surrogate.tasks.spacetime_fit import cell_table, map_title, plot_periods

        return plot_periods(None, self.data, cell_table(self.idata, self.data, self.threshold), map_title(self.diagnostics), self.threshold)

    def plot_trends(self, areas=None):
        """rr over the periods with its 90% band for ``areas`` (ids; default: the surest trends); the figure."""
        from surrogate.tasks.spacetime_fit import plot_trends

        return plot_trends(None, self.data, self.idata, areas)

    def save(self, folder) -> Path:
        """Write the fit folder (posterior.nc, summary.csv, diagnostics.json, cells.csv, trends.csv, maps_periods.png, trends.png)."""
        from surrogate.tasks.spacetime_fit import write_outputs

        write_outputs(Path(folder), self.result, self.data, self.result.log)
        return Path(folder)


def table_of(data):
    """A DataFrame of ``data``: a DataFrame or GeoDataFrame as it is, or a CSV / map file's table."""
    if hasattr(data, "columns"):
        return data
    if isinstance(data, (str, Path)):
        from surrogate.spatial.data import read_table

        return read_table(data)
    raise SurrogateError(f"data must be a DataFrame, a GeoDataFrame or a file path, found {type(data).__name__}")


def model_of(prior) -> tuple[str, dict]:
    """(model name, fit_areas keyword arguments) for a Surrogate, a prior instance or a prior name."""
    from surrogate.api.surrogate import Surrogate
    from surrogate.api.train import as_prior

    if isinstance(prior, Surrogate):
        return "surrogate", {"decoder_json": prior.decoder_json()}
    spec = as_prior(prior)
    if spec.program is None:
        raise SurrogateError(f"prior {spec.name} has no exact Stan program in this toolkit: train its surrogate (sg.train) and fit with that")
    return spec.name, {"kernel": spec.kernel, "condition": spec.value, "islands": spec.islands, **({"options": spec.options()} if spec.options() else {})}


def fit(formula: str, data, domain, prior="bym2", family: str = "poisson", trials: str | None = None, id: str | None = None,
        threshold: float = 1.0, engine="auto", out=None, intercept_prior=(0.0, 2.0), beta_sd: float = 1.0, field_sd: float = 1.0,
        iid: bool = False, truth=None, time: str | None = None, interaction: str = "none", temporal: str = "rw1", forecast: int = 0,
        keep_field: bool | None = None, **sampler) -> Fit:  # fmt: skip
    """Fit ``formula`` to ``data`` on ``domain`` with ``prior`` (see the module docstring).

    ``time``: the period column of a long table (one row per area and period): a space-time model
    (:mod:`surrogate.tasks.spacetime_fit`) with a spatial main effect, a ``temporal`` effect (``rw1`` or ``ar1``),
    iid period effects and an ``interaction`` (``none``, Knorr-Held ``I``, ``II``, ``III``, ``IV``, or ``ar1``: AR1
    spatial fields in place of the spatial main effect), predicting ``forecast`` periods past the last; the result is
    a :class:`SpaceTimeFit`.

    ``sampler``: chains (4), warmup (1000), draws (1000), seed (1), adapt_delta (0.9 for a CVAE surrogate, else 0.8), max_treedepth (10),
    init, dense_metric. ``out``: also write the fit folder there. ``truth``: a known ``eta`` per area (simulated data),
    scored by RMSE and 90% coverage as ``gp-fit`` scores its truth. ``keep_field``: keep the draws of the field and the
    latent vectors beside eta, rr and log_lik (None: up to 1,000 areas).
    """
    from surrogate.api.formula import formula_table
    from surrogate.inference import SamplerSettings, get_engine
    from surrogate.spatial.data import area_data
    from surrogate.spatial.domain import Domain
    from surrogate.tasks.areas_fit import fit_areas

    unknown = sorted(set(sampler) - set(SAMPLER_KEYS))
    if unknown:
        raise SurrogateError(f"unknown argument(s) {', '.join(unknown)}; sampler settings are {', '.join(SAMPLER_KEYS)}")
    if not isinstance(domain, Domain):
        raise SurrogateError(f"domain must be a surrogate Domain (Domain.from_map, from_points or grid), found {type(domain).__name__}")
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise SurrogateError(f"threshold must be a positive relative risk, found {threshold!r}")
    for name, v in (("beta_sd", beta_sd), ("field_sd", field_sd), ("intercept_prior sd", tuple(intercept_prior)[-1])):
        if not v > 0:
            raise SurrogateError(f"{name} must be positive, found {v!r}")
    model, options = model_of(prior)
    table = table_of(data)
    id_column = id or domain.id_column or "id"
    if time is not None and keep_field is not None:
        raise SurrogateError(f"keep_field applies to areal fits; a space-time fit (time={time!r}) keeps all of its draws, found keep_field={keep_field!r}")
    if time is None and (interaction != "none" or temporal != "rw1" or forecast):
        raise SurrogateError("interaction, temporal and forecast belong to a space-time model: give time=COLUMN (the period column)")
    parsed = formula_table(formula, table, id_column, family, trials, keep=() if time is None else (time,))
    settings = SamplerSettings(**sampler)
    priors = {"intercept": tuple(intercept_prior), "beta_sd": beta_sd, "field_sd": field_sd, "iid": iid}
    if time is not None:
        from surrogate.spatial.spacetime import spacetime_data
        from surrogate.tasks.spacetime_fit import fit_spacetime

        st = spacetime_data(parsed.table, domain, id_column, time, forecast=forecast, source="data", **parsed.columns)
        expected_of(parsed, st.cells)
        options.pop("kernel", None)
        options.pop("options", None)
        result = fit_spacetime(model, st, interaction, temporal, settings, get_engine(engine) if isinstance(engine, str) else engine, out,
                               priors=priors, truth=truth, **options)  # fmt: skip
        return SpaceTimeFit(result, st, threshold)
    area = area_data(parsed.table, domain, id_column, source="data", **parsed.columns)
    expected_of(parsed, area)
    result = fit_areas(model, area, settings, get_engine(engine) if isinstance(engine, str) else engine, out, priors=priors,
                        truth=truth, keep_field=keep_field, **options)  # fmt: skip
    return Fit(result, area, threshold)


def expected_of(parsed, area) -> None:
    """offset(log(expected)) of a Poisson model: the expected counts, shown per area."""
    if parsed.offset_expression and LOG_OF_COLUMN.match(parsed.offset_expression) and area.likelihood == "poisson":
        area.expected = np.exp(area.log_offset)
