"""Space-time data: a long table of area-periods (an area id, a period, the outcome, an exposure, covariates).

Each row is one area in one period. Periods are consecutive whole numbers (years, or 1, 2, 3, ... for periods
of several years); a missing period in between is an error (the RW1 and AR1 effects step one period at a time). Area-periods without a row, or with a
missing outcome, are predicted; so are ``forecast`` periods past the last one. Covariates may change from
period to period and are needed at every area-period (a forecast period with covariates needs its rows,
with an empty outcome).

The cells of the model are ordered period by period, areas fastest: cell = period_index * D + area_index,
as ``stan/spacetime_*.stan`` index them. The checks on outcomes, offsets and covariates are those of
:func:`surrogate.spatial.data.area_data`, run over the cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surrogate.errors import SurrogateError
from surrogate.spatial.data import Aligned, AreaData, _column, aligned_data, check_column_choice, id_values
from surrogate.spatial.domain import Domain


@dataclass
class CellIndex:
    """The area-periods of a space-time model, as :class:`Aligned` reads a domain: a size and a name per cell."""

    ids: list  # "area @ period", cell by cell
    source: str

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass
class SpaceTimeData:
    """Observations over the area-periods of ``domain`` x ``periods`` (``cells.obs_idx``: 0-based cells)."""

    domain: Domain
    periods: np.ndarray  # the period values, increasing in even steps (forecast periods last)
    cells: AreaData  # outcomes, offsets and covariates over the D * T cells
    time_column: str
    forecast: int = 0  # periods past the last one in the data

    @property
    def D(self) -> int:
        return self.domain.size

    @property
    def T(self) -> int:
        return len(self.periods)

    @property
    def likelihood(self) -> str:
        return self.cells.likelihood

    @property
    def n_obs(self) -> int:
        return self.cells.n_obs

    @property
    def covariates(self) -> tuple[str, ...]:
        return self.cells.covariates

    def area_period(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(area index, period index) of 0-based cells."""
        cells = np.asarray(cells)
        return cells % self.D, cells // self.D

    def cell_labels(self, cells: np.ndarray | None = None) -> list[str]:
        cells = np.arange(self.D * self.T) if cells is None else np.asarray(cells)
        area, period = self.area_period(cells)
        return [f"{self.domain.ids[a]} @ {period_label(self.periods[t])}" for a, t in zip(area, period)]


def period_label(value: float) -> str:
    return f"{value:g}"


def period_values(table, time_column: str, source: str) -> np.ndarray:
    """The time column as numbers; a missing, non-numeric (mixed types) or fractional value is an error naming it."""
    import pandas as pd

    raw = _column(table, time_column, "period", source)
    if raw.isna().any():
        raise SurrogateError(f"{source}: period column {time_column!r} has {int(raw.isna().sum())} missing value(s) "
                             f"(row {int(np.flatnonzero(raw.isna().to_numpy())[0])})")  # fmt: skip
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise SurrogateError(f"{source}: period column {time_column!r} must hold numbers (years or 1, 2, 3, ...), found booleans")
    values = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if bad.size:
        kinds = sorted({type(v).__name__ for v in raw})
        mixed = f" (mixed types: {', '.join(kinds)})" if len(kinds) > 1 else ""
        raise SurrogateError(f"{source}: period column {time_column!r} must hold numbers (years or 1, 2, 3, ...), found "
                             f"{raw.iloc[bad[0]]!r}{mixed}; code the periods as numbers")  # fmt: skip
    values = values.to_numpy(dtype=float)
    frac = np.flatnonzero(values != np.round(values))
    if frac.size:
        raise SurrogateError(f"{source}: period column {time_column!r} must hold whole numbers, found {values[frac[0]]:g}")
    return values


def period_grid(values: np.ndarray, time_column: str, source: str, forecast: int = 0) -> np.ndarray:
    """The periods from the first to the last in steps of 1, with ``forecast`` more after the last; a gap is an error listing it."""
    present = np.unique(values).astype(int)
    if isinstance(forecast, bool) or not isinstance(forecast, (int, np.integer)) or forecast < 0:
        raise SurrogateError(f"forecast must be a whole number of periods >= 0, found {forecast!r}")
    grid = np.arange(present[0], present[-1] + 1)
    missing = sorted(set(grid) - set(present))
    if missing:
        raise SurrogateError(f"{source}: period column {time_column!r} has gaps: no rows for {', '.join(map(str, missing[:10]))}"
                             f"{' ...' if len(missing) > 10 else ''} between {present[0]} and {present[-1]}; periods are consecutive "
                             "whole numbers (code periods of several years 1, 2, 3, ...); add a missing period's rows with an empty "
                             "outcome to predict it")  # fmt: skip
    return np.concatenate([grid, present[-1] + np.arange(1, forecast + 1)]).astype(float)


def spacetime_data(table, domain: Domain, id_column: str, time_column: str, counts: str | None = None, trials: str | None = None,
                   value: str | None = None, exposure: str | None = None, population: str | None = None, offset: str | None = None,
                   covariates: tuple[str, ...] = (), forecast: int = 0, source: str = "data") -> SpaceTimeData:  # fmt: skip
    """Match a long ``table`` to ``domain`` by ``id_column`` and ``time_column``; every check names the column and area-period."""
    check_column_choice(counts, trials, value, exposure, population, offset)
    times = period_values(table, time_column, source)
    periods = period_grid(times, time_column, source, forecast)
    if forecast and covariates:
        raise SurrogateError(f"forecast={forecast} with covariates: their values are needed in the forecast periods; add rows for "
                             f"periods {', '.join(period_label(p) for p in periods[-forecast:])} with the covariates and an empty outcome "
                             "(and forecast=0)")  # fmt: skip
    ids = id_values(table, id_column, source)
    index = {a: i for i, a in enumerate(domain.ids)}
    unknown = sorted({a for a in ids if a not in index})
    if unknown:
        raise SurrogateError(f"{source}: {len(unknown)} id(s) in column {id_column!r} are not areas of the map ({domain.source or 'in memory'}): "
                             f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")  # fmt: skip
    D = domain.size
    period_index = {p: t for t, p in enumerate(periods)}
    cell = np.array([period_index[t] * D + index[a] for a, t in zip(ids, times)], dtype=int)
    counts_per_cell = np.bincount(cell, minlength=D * len(periods))
    if (counts_per_cell > 1).any():
        dup = np.flatnonzero(counts_per_cell > 1)
        labels = [f"{domain.ids[c % D]} in period {period_label(periods[c // D])}" for c in dup[:5]]
        raise SurrogateError(f"{source}: {dup.size} (area, period) pair(s) have more than one row ({id_column!r}, {time_column!r}): "
                             f"{'; '.join(labels)}{' ...' if dup.size > 5 else ''}")  # fmt: skip
    cells = CellIndex([f"{domain.ids[c % D]} @ {period_label(periods[c // D])}" for c in range(D * len(periods))], source)
    at = Aligned(table, cells, cell, source)
    result = aligned_data(at, {"id": id_column, "time": time_column}, counts, trials, value, exposure, population, offset, covariates)
    return SpaceTimeData(domain, periods, result, time_column, forecast)
