"""What every revenue-lift estimator reads from a user's table, the same way.

* :func:`never_treated` -- the one rule for "never treated" in a ``group`` (first treated period)
  column: 0, NaN/None, or a period after the last one (R ``did`` codes 0; others NaN, ``inf`` or
  9999). ``StaggeredDiD``, ``MultiplicativeDiD``, ``RegressionAdjustment``, ``IPW``, ``AIPW``,
  ``BayesianHierarchicalLift`` and ``NaiveRevenueGap`` all call it, so the same data coded any of
  these ways gives identical results.
* :func:`check_group_column` -- a boolean ``group`` column is refused with the rule (a panel's
  ``group`` is a period, not a flag; a cross-section has ``treated=``).
* :func:`cross_section_panel` -- a one-row-per-unit table with a 0/1 or boolean ``treated``
  column as the one-period panel the cohort estimators fit (``lookback = 0``).
* :func:`formula_covariates` -- ``covariates`` as a list of columns or a formula right-hand side
  (``"age + I(age**2) + C(plan)"``), parsed by patsy as statsmodels does.

Examples
--------
>>> import pandas as pd
>>> never_treated(pd.Series([0, 3, None, 99]), periods=np.array([1, 2, 3, 4])).tolist()
[True, False, True, True]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

Covariates = Sequence[str] | str | None
CROSS_UNIT, CROSS_TIME, CROSS_GROUP = "__unit", "__time", "__group"


def never_treated(first_treated: pd.Series | np.ndarray, *,
                  periods: np.ndarray | None) -> np.ndarray:
    """True where a first-treated period means "never treated": missing (NaN, None, NaT), 0 (a
    numeric column), or after the last period of ``periods`` (not checked when None).

    Examples
    --------
    >>> never_treated(np.array([0.0, 2.0, np.nan, 9999.0]), periods=np.array([1, 2, 3])).tolist()
    [True, False, True, True]
    """
    values = pd.Series(first_treated).reset_index(drop=True)
    never = values.isna().to_numpy(dtype=bool)
    last = np.max(periods) if periods is not None and len(periods) else None
    if pd.api.types.is_datetime64_any_dtype(values):
        if last is not None:
            never |= (values > last).fillna(False).to_numpy(dtype=bool)
        return never
    # numeric, or object (e.g. None mixed with numbers): compare the numbers it holds
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        never |= numbers == 0
        if last is not None:
            never |= numbers > float(last)
    return never


def first_treated_numbers(first_treated: pd.Series, *, periods: np.ndarray) -> np.ndarray:
    """``first_treated`` as floats with NaN for every never-treated unit (:func:`never_treated`)."""
    values = pd.to_numeric(pd.Series(first_treated).reset_index(drop=True), errors="coerce")
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    return np.where(never_treated(first_treated, periods=periods), np.nan, numbers)


def check_group_column(data: pd.DataFrame, *, group: str, estimator: str) -> None:
    """Refuse a ``group`` column that cannot be a first treated period (booleans)."""
    if group not in data.columns:
        raise KeyError(f"{estimator}: column {group!r} (group = first treated period) is not "
                       f"in the data; columns are {list(data.columns)[:12]}")
    if pd.api.types.is_bool_dtype(data[group]):
        raise ValueError(
            f"{estimator}: column {group!r} is True/False, but group must be the first treated "
            "period of each unit (on the grid of time; 0, NaN or a period after the last one = "
            "never treated). For one row per unit with a 0/1 or True/False treatment column, "
            "call fit(data, outcome=..., treated=...) (RegressionAdjustment, IPW, AIPW).")


def treated_indicator(data: pd.DataFrame, *, treated: str, estimator: str) -> np.ndarray:
    """The ``treated`` column as booleans; it must be 0/1 or True/False with no empty value."""
    if treated not in data.columns:
        raise KeyError(f"{estimator}: column {treated!r} (treated) is not in the data; columns "
                       f"are {list(data.columns)[:12]}")
    column = data[treated]
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=bool)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = ~numbers.isin([0, 1]) | column.isna()
    if bad.any():
        examples = column[bad].drop_duplicates().head(3).tolist()
        raise ValueError(f"{estimator}: column {treated!r} (treated) must be 0/1 or True/False "
                         f"with no empty value; {int(bad.sum())} rows break the rule, e.g. "
                         f"{examples}")
    return numbers.to_numpy(dtype=float) == 1


def cross_section_panel(data: pd.DataFrame, *, outcome: str, treated: str,
                        covariates: list[str], estimator: str) -> pd.DataFrame:
    """One row per unit as a one-period panel: unit = row position, time = 1, group = 1 for
    treated units and NaN for controls (the cohort estimators' design with ``lookback = 0``)."""
    is_treated = treated_indicator(data, treated=treated, estimator=estimator)
    missing = [c for c in (outcome, *covariates) if c not in data.columns]
    if missing:
        raise KeyError(f"{estimator}: column(s) {missing} not in the data")
    empty = int(data[outcome].isna().sum())
    if empty:
        raise ValueError(f"{estimator}: column {outcome!r} (outcome) has {empty} empty values; "
                         "drop or impute those rows first (nothing is dropped silently)")
    return _as_panel(data, outcome=outcome, covariates=covariates, treated=is_treated)


def _as_panel(data: pd.DataFrame, *, outcome: str, covariates: list[str],
              treated: np.ndarray) -> pd.DataFrame:
    frame = data[list(dict.fromkeys([outcome, *covariates]))].reset_index(drop=True)
    frame[CROSS_UNIT] = np.arange(len(frame))
    frame[CROSS_TIME] = 1
    frame[CROSS_GROUP] = np.where(treated, 1.0, np.nan)
    return frame


def formula_covariates(data: pd.DataFrame, covariates: Covariates, *,
                       estimator: str) -> tuple[pd.DataFrame, list[str]]:
    """``covariates`` as column names: a list is returned as it is; a formula right-hand side
    (patsy syntax: ``I(x**2)``, ``C(plan)``, ``a:b``, ``np.log(x)``) becomes its design columns
    (no intercept; categoricals in treatment coding against their first level), added to a copy
    of ``data``.

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [20.0, 30.0, 40.0], "plan": ["a", "b", "a"]})
    >>> _, names = formula_covariates(frame, "age + I(age**2) + C(plan)", estimator="x")
    >>> names
    ['C(plan)[T.b]', 'age', 'I(age ** 2)']
    """
    if covariates is None:
        return data, []
    if not isinstance(covariates, str):
        return data, list(covariates)
    import patsy

    rhs = covariates.split("~", 1)[1] if "~" in covariates else covariates
    try:
        design = patsy.dmatrix(rhs, data, return_type="dataframe", NA_action="raise",
                               eval_env=0)
    except patsy.PatsyError as exc:
        raise ValueError(f"{estimator}: covariates formula {rhs.strip()!r} cannot be built: "
                         f"{exc}") from None
    design = design.drop(columns=[c for c in design.columns if c == "Intercept"])
    out, names = data.copy(), []
    for name in design.columns:
        values = design[name].to_numpy()
        if name in data.columns and np.array_equal(data[name].to_numpy(), values):
            names.append(str(name))           # a plain numeric column: used as it is
            continue
        column = f"{name} (formula)" if name in data.columns else str(name)
        out[column] = values
        names.append(column)
    return out, names


CANONICAL_SCALE = "currency per member-month"


def panel_scale(*, unit: str, time: str, outcome: str) -> str:
    """The unit of a panel estimate, in the data's own names.

    The run's customer-month panel (``customer_id`` x ``month_index``, a revenue outcome) gives
    the contract's ``"currency per member-month"``; any other panel says what its rows are, so
    a lift fitted on stores by week is not labelled as money per member-month.

    Examples
    --------
    >>> panel_scale(unit="customer_id", time="month_index", outcome="organic_revenue")
    'currency per member-month'
    >>> panel_scale(unit="store", time="week", outcome="sales")
    'sales per treated unit-period (store x week)'
    """
    if unit == "customer_id" and time in ("month_index", "month") and "revenue" in outcome:
        return CANONICAL_SCALE
    return f"{outcome} per treated unit-period ({unit} x {time})"
