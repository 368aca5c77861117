"""Area data: a table of outcomes, exposures and covariates, matched by id to a domain.

The table is a CSV, or any file geopandas reads (a shapefile's attribute table). Its id column
names the areas; every id must be one of the domain's. An area without a row, or with a
missing outcome, is unobserved: the fit predicts it. Covariates are needed at every area
(the maps show every area), are standardised by the tool (mean 0, sd 1) and their
coefficients are reported on the original scale as well.

Outcomes: ``counts`` (Poisson; with ``trials``, binomial) or ``value`` (Gaussian). Offsets:
``exposure`` (expected counts, or a population at risk: log offset), ``population`` (expected
counts computed with the overall rate of the observed areas, internal standardisation) or
``offset`` (a column already on the log scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surrogate.errors import SurrogateError
from surrogate.spatial.domain import MAP_SUFFIXES, Domain


@dataclass
class AreaData:
    """Observations aligned with a domain (``obs_idx`` 0-based into its areas)."""

    domain: Domain
    likelihood: str  # gaussian | poisson | binomial
    obs_idx: np.ndarray  # observed areas, 0-based, increasing
    log_offset: np.ndarray  # per observed area
    y: np.ndarray | None = None  # gaussian values
    counts: np.ndarray | None = None  # poisson / binomial counts
    trials: np.ndarray | None = None  # binomial trials
    expected: np.ndarray | None = None  # expected counts per observed area (poisson), when known
    covariates: tuple[str, ...] = ()
    X: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [N, P] standardised
    x_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x_sd: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source: str = ""
    columns: dict = field(default_factory=dict)  # which column gave what

    @property
    def n_obs(self) -> int:
        return len(self.obs_idx)


def read_table(path: str | Path):
    """A pandas DataFrame of a CSV, or of the attribute table of a map file (geometry dropped)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SurrogateError(f"data file {path} does not exist (expected a CSV, or a {', '.join(MAP_SUFFIXES)} file)")
    try:
        if path.suffix.lower() in MAP_SUFFIXES + (".dbf",):
            import geopandas as gpd

            gdf = gpd.read_file(path)
            return pd.DataFrame(gdf.drop(columns=gdf.geometry.name, errors="ignore"))
        return pd.read_csv(path)
    except Exception as exc:
        raise SurrogateError(f"cannot read data file {path}: {exc}") from None


def _column(table, name: str, what: str, source: str) -> np.ndarray:
    if name not in table.columns:
        raise SurrogateError(f"{source} has no {what} column {name!r}; its columns: {', '.join(map(str, table.columns))}")
    return table[name]


def _numeric(series, what: str, source: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(values) & series.notna().to_numpy())
    if bad.size:
        raise SurrogateError(f"{source}: {what} column {series.name!r} must be numeric, found {series.iloc[bad[0]]!r}")
    return values


def check_column_choice(counts, trials, value, exposure, population, offset) -> None:
    """One outcome, at most one offset, trials only with counts and without an offset."""
    if (counts is None) == (value is None):
        raise SurrogateError("give exactly one outcome: counts=COLUMN (Poisson, or binomial with trials=COLUMN) or value=COLUMN (Gaussian)")
    if trials is not None and counts is None:
        raise SurrogateError("trials=COLUMN needs counts=COLUMN (the binomial successes)")
    offsets = [n for n, v in (("exposure", exposure), ("population", population), ("offset", offset)) if v is not None]
    if len(offsets) > 1:
        raise SurrogateError(f"give at most one of exposure=COLUMN, population=COLUMN and offset=COLUMN; found {', '.join(offsets)}")
    if trials is not None and offsets:
        raise SurrogateError(f"the binomial likelihood takes its denominator from trials=COLUMN; {offsets[0]}=COLUMN does not apply")


def id_values(table, id_column: str, source: str):
    """The id column as stripped strings (ids read as numbers, 37009.0, become 37009)."""
    import pandas as pd

    raw = _column(table, id_column, "id", source)
    ids = raw.astype(str).str.strip()
    if pd.api.types.is_float_dtype(raw.dtype):
        ids = ids.str.replace(r"\.0$", "", regex=True)
    return ids


@dataclass
class Aligned:
    """A table's rows matched to a domain's areas: ``column(name)`` gives a numeric column at every area (NaN where no row)."""

    table: object
    domain: Domain
    rows: np.ndarray  # the area of each row
    source: str

    @classmethod
    def match(cls, table, domain: Domain, id_column: str, source: str) -> "Aligned":

        ids = id_values(table, id_column, source)
        dup = sorted(set(ids[ids.duplicated()]))
        if dup:
            raise SurrogateError(f"{source}: id column {id_column!r} has duplicate ids: {', '.join(dup[:5])}")
        index = {a: i for i, a in enumerate(domain.ids)}
        unknown = [a for a in ids if a not in index]
        if unknown:
            raise SurrogateError(f"{source}: {len(unknown)} id(s) in column {id_column!r} are not in the domain ({domain.source}): "
                                 f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")  # fmt: skip
        return cls(table, domain, np.array([index[a] for a in ids], dtype=int), source)

    def column(self, name: str, what: str) -> np.ndarray:
        out = np.full(self.domain.size, np.nan)
        out[self.rows] = _numeric(_column(self.table, name, what, self.source), what, self.source)
        return out

    def name(self, area: int) -> str:
        return self.domain.ids[area]


def area_data(table, domain: Domain, id_column: str, counts: str | None = None, trials: str | None = None, value: str | None = None,
              exposure: str | None = None, population: str | None = None, offset: str | None = None,
              covariates: tuple[str, ...] = (), source: str = "data") -> AreaData:  # fmt: skip
    """Match ``table`` to ``domain`` by ``id_column`` and check every column used (errors name column and area)."""
    check_column_choice(counts, trials, value, exposure, population, offset)
    at = Aligned.match(table, domain, id_column, source)
    return aligned_data(at, {"id": id_column}, counts, trials, value, exposure, population, offset, covariates)


def aligned_data(at: Aligned, keys: dict, counts: str | None, trials: str | None, value: str | None, exposure: str | None,
                 population: str | None, offset: str | None, covariates: tuple[str, ...]) -> AreaData:  # fmt: skip
    """The outcome, offset and covariates of a table aligned with its locations (``keys``: the columns that matched its rows)."""
    source = at.source
    outcome = at.column(counts or value, "outcome")
    obs = np.flatnonzero(~np.isnan(outcome))
    if obs.size == 0:
        raise SurrogateError(f"{source}: outcome column {counts or value!r} has no values")
    result = AreaData(at.domain, "gaussian" if value else ("binomial" if trials else "poisson"), obs, np.zeros(obs.size), source=source,
                      columns={**keys, "counts": counts, "trials": trials, "value": value, "exposure": exposure, "population": population,
                               "offset": offset})  # fmt: skip
    if value is not None:
        result.y = outcome[obs]
    else:
        set_counts(result, at, outcome, counts, trials)
    set_offset(result, at, exposure, population, offset)
    set_covariates(result, at, tuple(covariates))
    return result


def set_counts(result: AreaData, at: Aligned, outcome: np.ndarray, counts: str, trials: str | None) -> None:
    obs, source = result.obs_idx, at.source
    c = outcome[obs]
    if (c < 0).any():
        raise SurrogateError(f"{source}: counts column {counts!r} must be non-negative, found {c.min():g} at area {at.name(obs[np.argmin(c)])}")
    if (c != np.round(c)).any():
        i = obs[np.flatnonzero(c != np.round(c))[0]]
        raise SurrogateError(f"{source}: counts column {counts!r} must hold integers, found {outcome[i]:g} at area {at.name(i)}")
    result.counts = c.astype(int)
    if trials is not None:
        t = at.column(trials, "trials")[obs]
        bad = np.flatnonzero(np.isnan(t) | (t < result.counts) | (t != np.round(np.nan_to_num(t))))
        if bad.size:
            raise SurrogateError(f"{source}: trials column {trials!r} must hold integers >= the counts; found {t[bad[0]]:g} "
                                 f"(counts {result.counts[bad[0]]}) at area {at.name(obs[bad[0]])}")  # fmt: skip
        result.trials = t.astype(int)


def set_offset(result: AreaData, at: Aligned, exposure: str | None, population: str | None, offset: str | None) -> None:
    obs, source = result.obs_idx, at.source
    for name, col in (("exposure", exposure), ("population", population)):
        if col is None:
            continue
        e = at.column(col, name)[obs]
        bad = np.flatnonzero(~(e > 0))
        if bad.size:
            raise SurrogateError(f"{source}: {name} column {col!r} must be positive at every observed area, found {e[bad[0]]:g} "
                                 f"at area {at.name(obs[bad[0]])}")  # fmt: skip
        if name == "population" and result.counts is not None:
            e = e * result.counts.sum() / e.sum()  # expected counts at the overall rate
        result.log_offset = np.log(e)
        result.expected = e if result.likelihood == "poisson" else None
    if offset is not None:
        o = at.column(offset, "offset")[obs]
        if not np.isfinite(o).all():
            raise SurrogateError(f"{source}: offset column {offset!r} must be finite at every observed area, found {o[~np.isfinite(o)][0]} "
                                 f"at area {at.name(obs[np.flatnonzero(~np.isfinite(o))[0]])}")  # fmt: skip
        result.log_offset = o


def set_covariates(result: AreaData, at: Aligned, covariates: tuple[str, ...]) -> None:
    n, source = at.domain.size, at.source
    if not covariates:
        result.X = np.zeros((n, 0))
        return
    missing = sorted(set(range(n)) - set(at.rows))
    if missing:
        raise SurrogateError(f"covariates are needed at every area; {source} has no row for {len(missing)} area(s): "
                             f"{', '.join(at.name(i) for i in missing[:5])}")  # fmt: skip
    X = np.column_stack([at.column(c, "covariate") for c in covariates])
    for j, c in enumerate(covariates):
        bad = np.flatnonzero(~np.isfinite(X[:, j]))
        if bad.size:
            raise SurrogateError(f"{source}: covariate {c!r} has missing or non-finite values at {bad.size} area(s): "
                                 f"{', '.join(at.name(i) for i in bad[:5])}")  # fmt: skip
        if np.ptp(X[:, j]) == 0:
            raise SurrogateError(f"{source}: covariate {c!r} is constant ({X[0, j]:g} at every area): it cannot be standardised "
                                 "and is confounded with the intercept")  # fmt: skip
    result.covariates = tuple(covariates)
    result.x_mean, result.x_sd = X.mean(0), X.std(0)
    result.X = (X - result.x_mean) / result.x_sd


def read_area_data(path: str | Path, domain: Domain, id_column: str, **columns) -> AreaData:
    return area_data(read_table(path), domain, id_column, source=str(path), **columns)
