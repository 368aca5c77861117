"""Model formulas for areal fits, parsed by formulaic (as bambi does): ``"deaths ~ OCC + UNEMP + offset(log(expected))"``.

The left side names the outcome column (counts, or values for the Gaussian family); the right side the
covariates (any formulaic term: ``C(region)``, ``np.log(x)``, interactions) and at most one
``offset(...)`` term, an expression on the log scale. The intercept is always in the model (the
Stan programs have one). The formula becomes a plain table (id, outcome, trials, offset, covariate
columns) that :func:`surrogate.spatial.data.area_data` checks and aligns with the domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from surrogate.errors import SurrogateError

FAMILIES = ("poisson", "binomial", "gaussian")
OFFSET = "__offset__"
LOG_OF_COLUMN = re.compile(r"^(?:np\.)?log\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$")


@dataclass
class FormulaTable:
    """What a formula takes from the data: a table of plain columns and which column is what."""

    table: object  # pandas DataFrame: id, outcome, [trials], [offset], covariates
    columns: dict  # area_data's keyword arguments: counts / value, trials, offset, covariates
    offset_expression: str | None = None


def parse_formula(formula: str):
    from formulaic import Formula

    if not isinstance(formula, str) or "~" not in formula:
        raise SurrogateError(f"formula must be a string 'outcome ~ terms', found {formula!r}")
    try:
        return Formula(formula)
    except Exception as exc:  # formulaic's own parse errors
        raise SurrogateError(f"formula {formula!r} cannot be parsed: {exc}") from None


def formula_table(formula: str, table, id_column: str, family: str = "poisson", trials: str | None = None, keep=()) -> FormulaTable:
    """The plain table of ``formula`` over ``table`` (every row kept; a missing outcome is an area to predict); ``keep``: more
    columns copied as they are (a period column)."""
    import pandas as pd

    if family not in FAMILIES:
        raise SurrogateError(f"unknown family {family!r}; valid names: {', '.join(FAMILIES)}")
    if trials is not None and family != "binomial":
        raise SurrogateError(f"trials ({trials!r}) applies to family binomial only, found family {family!r}")
    if family == "binomial" and trials is None:
        raise SurrogateError("family binomial needs trials=COLUMN (the number of trials per area)")
    parsed = parse_formula(formula)
    columns = [str(c) for c in table.columns]
    missing = sorted(set(map(str, parsed.required_variables)) - set(columns) - {"offset"})
    for name, what in ((id_column, "id"), (trials, "trials"), *((k, "period") for k in keep)):
        if name is not None and name not in columns:
            missing.append(f"{name} ({what})")
    if missing:
        raise SurrogateError(f"formula {formula!r}: the data have no column {', '.join(map(repr, missing))}; its columns: {', '.join(columns)}")
    lhs = [str(t) for t in parsed.lhs]
    if len(lhs) != 1 or lhs[0] not in columns:
        raise SurrogateError(f"formula {formula!r}: the left side must name one outcome column, found {' + '.join(lhs) or 'nothing'}")
    terms = [str(t) for t in parsed.rhs]
    if "1" not in terms:
        raise SurrogateError(f"formula {formula!r}: the model always has an intercept; found the right side without one ('0 +' or '- 1')")
    offsets = [t for t in terms if t.startswith("offset(")]
    if len(offsets) > 1:
        raise SurrogateError(f"formula {formula!r}: give at most one offset(...) term, found {', '.join(offsets)}")
    covariate_terms = [t for t in terms if t != "1" and not t.startswith("offset(")]
    out = pd.DataFrame({id_column: table[id_column].to_numpy(), lhs[0]: table[lhs[0]].to_numpy()})
    for name in (trials, *keep):
        if name is not None:
            out[name] = table[name].to_numpy()
    covariates: tuple[str, ...] = ()
    if covariate_terms:
        matrix = evaluate(" + ".join(covariate_terms), table, formula)
        covariates = tuple(str(c) for c in matrix.columns)
        for c in covariates:
            out[c] = matrix[c].to_numpy()
    expression = None
    if offsets:
        expression = offsets[0][len("offset(") : -1].strip()
        values = evaluate(expression, table, formula).iloc[:, 0].to_numpy(dtype=float)
        check_offset(values, table, id_column, expression, lhs[0])
        out[OFFSET] = values
    kwargs = {"value" if family == "gaussian" else "counts": lhs[0], "trials": trials, "covariates": covariates, "offset": OFFSET if offsets else None}
    return FormulaTable(out, kwargs, expression)


def evaluate(terms: str, table, formula: str):
    """formulaic's model matrix of ``terms`` without an intercept, every row kept."""
    from formulaic import model_matrix

    try:
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) is reported by check_offset, naming the area
            return model_matrix("0 + " + terms, table, na_action="ignore")
    except Exception as exc:
        raise SurrogateError(f"formula {formula!r}: cannot evaluate {terms!r}: {exc}") from None


def check_offset(values: np.ndarray, table, id_column: str, expression: str, outcome: str) -> None:
    """An offset must be finite wherever the outcome is observed; ``log(col)`` names a non-positive value."""
    import pandas as pd

    observed = pd.to_numeric(table[outcome], errors="coerce").notna().to_numpy()
    bad = np.flatnonzero(observed & ~np.isfinite(values))
    if not bad.size:
        return
    i = bad[0]
    area = table[id_column].iloc[i]
    match = LOG_OF_COLUMN.match(expression)
    if match:
        column = match.group(1)
        raise SurrogateError(f"offset(log({column})): column {column!r} must be positive where {outcome!r} is observed; "
                             f"found {show(table[column].iloc[i])} at area {area} ({bad.size} area(s) in all)")  # fmt: skip
    raise SurrogateError(f"offset({expression}) must be finite where {outcome!r} is observed; found {values[i]} at area {area} ({bad.size} area(s) in all)")


def show(value) -> str:
    """A table value as a user reads it (0, -1.5, 'n/a'), not numpy's repr."""
    return f"{value:g}" if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else repr(value)
