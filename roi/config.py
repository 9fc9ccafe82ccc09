"""Run configuration from a TOML file: covariates, churn rule, margin, sampler, seed.

Example ``roi.toml``::

    seed = 7
    gross_margin = 0.6          # share of revenue kept as gross profit, in (0, 1]; leave it
                                # out and the bottom line is in revenue (break-even 1)

    [data]
    start = 2023-01-01          # optional analysis window
    end = 2024-12-31
    exclude = ["orders_after_churn"]   # count these rows instead of refusing the data
    covariates = ["segment", "region", "plan"]

    [churn]
    rule = "auto"               # auto | column | inactivity
    inactivity_days = 180

    [sampler]
    backend = "nutpie"          # nutpie | pymc
    draws = 1000
    tune = 1000
    chains = 4

    [tiers]                     # engagement tiers (issue 20): activity in the first days
    window_days = 30            # of membership; thresholds start the 2nd, 3rd... tier
    names = ["lurker", "participant", "superfan"]
    thresholds = [1, 10]        # or quantiles = [0.5, 0.9] of members' window activity
    # kind = "post"             # count one activity kind only

    [sensitivity]               # parallel-trends sensitivity (docs/CONTRACT.md)
    horizon = 12                # bound the first 12 months after joining (default: all)
    leads = 6                   # placebo months nearest to joining in the reference

    [scale]                     # issue 19: what the run reads into memory
    max_panel_rows = 5000000    # customer-month rows; above it, the row-level estimators
                                # read a random sample of customers sized to this budget

    [columns.orders]            # files whose headers differ: canonical name = "header"
    order_date = "Date"
    revenue = "Total"

    [source.tables]             # SQL sources only: canonical table -> SELECT
    orders = "SELECT buyer AS customer_id, day AS order_date, amount AS revenue FROM sales"
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roi.data.dataset import DataOptions
from roi.data.errors import RoiError
from roi.data.sample import DEFAULT_MAX_PANEL_ROWS
from roi.engagement.tiers import TierRule

_TOP_KEYS = {"seed", "gross_margin", "currency", "data", "churn", "sampler", "source",
             "lift_tests", "columns", "tiers", "sensitivity", "scale"}
LIFT_TEST_FIELDS = ("channel", "start", "end", "spend_change", "revenue_change",
                    "standard_error")


class ConfigError(RoiError, ValueError):
    """The config file is unreadable or has an unknown or ill-typed key."""


BAYESIAN_MODELS = ("revenue", "retention", "paid_media")


@dataclass(frozen=True)
class SamplerSettings:
    """Sampler settings shared by the Bayesian models; ``models`` says which of them to fit
    (a notebook about retention need not compile the media-mix model). A model left out is
    reported as not run, never silently."""

    backend: str = "nutpie"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    models: tuple[str, ...] = BAYESIAN_MODELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        for name, least in (("draws", 1), ("tune", 0), ("chains", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"[sampler] {name} must be a whole number >= {least}, "
                                 f"not {value!r}")
        if self.backend not in ("nutpie", "pymc"):
            raise ValueError(f"[sampler] backend must be 'nutpie' or 'pymc', not "
                             f"{self.backend!r}")
        unknown = sorted(set(self.models) - set(BAYESIAN_MODELS))
        if unknown:
            raise ValueError(f"[sampler] models: unknown {unknown}; known: "
                             f"{list(BAYESIAN_MODELS)}")

    def for_model(self, name: str) -> SamplerSettings | None:
        """These settings when model ``name`` is to be fitted, else None."""
        return self if name in self.models else None


@dataclass(frozen=True)
class SensitivitySettings:
    """Which event-study months the parallel-trends sensitivity reads (``[sensitivity]``;
    :func:`roi.sensitivity.parallel_trends.from_event_study`): ``leads`` placebo months
    nearest to joining form the reference; ``horizon`` None bounds the headline (every month
    since joining), an integer ``h`` the average over the first ``h`` months instead."""

    horizon: int | None = None
    leads: int = 6

    def __post_init__(self) -> None:
        for name, value in (("horizon", self.horizon), ("leads", self.leads)):
            if value is None and name == "horizon":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"[sensitivity] {name} must be a whole number >= 1, not "
                                 f"{value!r}")

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the sensitivity functions."""
        return {"horizon": self.horizon, "max_leads": self.leads}


@dataclass(frozen=True)
class ScaleSettings:
    """``[scale]``: ``max_panel_rows``, the customer-month rows the run reads into memory for
    the estimators that need customer rows (regression adjustment, AIPW, Cox, engagement tiers,
    experiments, retention value). Above it they read a random sample of customers sized to
    it (:mod:`roi.data.sample`), labelled beside every number; everything computed from
    database sums (the DiDs, the naive gap, the Bayesian models, the piecewise-exponential
    hazard, the curves) uses every customer whatever the size."""

    max_panel_rows: int = DEFAULT_MAX_PANEL_ROWS

    def __post_init__(self) -> None:
        value = self.max_panel_rows
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"[scale] max_panel_rows must be a whole number >= 1, not "
                             f"{value!r}")


def check_gross_margin(value: Any) -> float | None:
    """``gross_margin`` as a float in (0, 1], or None when not configured.

    Examples
    --------
    >>> check_gross_margin(0.6), check_gross_margin(None), check_gross_margin(1)
    (0.6, None, 1.0)
    >>> check_gross_margin(60)
    Traceback (most recent call last):
    ...
    roi.config.ConfigError: gross_margin = 60: must be a number in (0, 1], the share of revenue kept as gross profit (0.6 for 60%); leave it out when unknown
    """
    rule = ("must be a number in (0, 1], the share of revenue kept as gross profit (0.6 for "
            "60%); leave it out when unknown")
    if value is None:
        return None
    # bool is an int: `gross_margin = true` must not read as a margin of 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"gross_margin = {value!r}: {rule}")
    if not 0 < value <= 1:   # also rejects NaN (every comparison with it is False)
        raise ConfigError(f"gross_margin = {value!r}: {rule}")
    return float(value)


@dataclass(frozen=True)
class RunConfig:
    seed: int = 20261123
    # None = not configured: the bottom line is then in revenue (break-even 1 per dollar).
    gross_margin: float | None = None
    data: DataOptions = field(default_factory=DataOptions)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    source_tables: dict[str, str] = field(default_factory=dict)
    # Files only: table -> {canonical column: the header the file uses} ([columns.<table>])
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    # Experiments that calibrate the media-mix model: dicts with LIFT_TEST_FIELDS.
    lift_tests: tuple[dict[str, Any], ...] = ()
    # Engagement tiers of community_engagement ([tiers]).
    tiers: TierRule = field(default_factory=TierRule)
    # Event-study months of the parallel-trends sensitivity ([sensitivity]).
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)
    # Rows read into memory for the row-level estimators ([scale]).
    scale: ScaleSettings = field(default_factory=ScaleSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gross_margin", check_gross_margin(self.gross_margin))

    def to_dict(self) -> dict[str, Any]:
        """What ``results.json`` records about the run's settings (no source SQL)."""
        options = self.data
        return {"seed": self.seed, "gross_margin": self.gross_margin,
                "churn_rule": options.churn_rule, "inactivity_days": options.inactivity_days,
                "exclude": list(options.exclude),
                "covariates": list(options.covariates) if options.covariates else None,
                "sampler": {**self.sampler.__dict__, "models": list(self.sampler.models)},
                "lift_tests": [dict(test) for test in self.lift_tests],
                "tiers": self.tiers.settings(),
                "sensitivity": dict(self.sensitivity.__dict__),
                "scale": dict(self.scale.__dict__)}


def load_config(path: str | Path | None) -> RunConfig:
    """Read a TOML config; ``None`` gives the documented defaults."""
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"config {path}: unknown key(s) {sorted(unknown)}; "
                          f"known: {sorted(_TOP_KEYS)}")
    try:
        return RunConfig(seed=int(raw.get("seed", RunConfig.seed)),
                         gross_margin=check_gross_margin(raw.get("gross_margin")),
                         data=_data_options(raw.get("data", {}), raw.get("churn", {})),
                         sampler=SamplerSettings(**raw.get("sampler", {})),
                         source_tables=dict(raw.get("source", {}).get("tables", {})),
                         columns=_columns(raw.get("columns", {})),
                         lift_tests=_lift_tests(raw.get("lift_tests", [])),
                         tiers=_tiers(raw.get("tiers", {})),
                         sensitivity=_sensitivity(raw.get("sensitivity", {})),
                         scale=_scale(raw.get("scale", {})))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None


def _columns(raw: Any) -> dict[str, dict[str, str]]:
    """``[columns.<table>]``: canonical column = the file's header, both checked by name."""
    from roi.data.schema import TABLES

    if not isinstance(raw, dict):
        raise ValueError("[columns] must be tables of renames, e.g. [columns.orders]")
    for table, renames in raw.items():
        if table not in TABLES:
            raise ValueError(f"[columns.{table}]: unknown table; known: {sorted(TABLES)}")
        known = (*TABLES[table].required, *TABLES[table].optional)
        for column, header in (renames or {}).items():
            if column not in known:
                raise ValueError(f"[columns.{table}] {column}: not a column of {table}; "
                                 f"known: {', '.join(known)}")
            if not isinstance(header, str) or not header.strip():
                raise ValueError(f"[columns.{table}] {column} = {header!r}: expected the "
                                 "header the file uses, as text")
    return {table: dict(renames or {}) for table, renames in raw.items()}


def _data_options(data: dict[str, Any], churn: dict[str, Any]) -> DataOptions:
    allowed_data = {"start", "end", "exclude", "covariates", "max_categories"}
    allowed_churn = {"rule", "inactivity_days"}
    for section, keys, allowed in (("data", data, allowed_data), ("churn", churn, allowed_churn)):
        extra = set(keys) - allowed
        if extra:
            raise ValueError(f"[{section}] unknown key(s) {sorted(extra)}; known: "
                             f"{sorted(allowed)}")
    covariates = data.get("covariates")
    start, end = _date(data.get("start")), _date(data.get("end"))
    if start is not None and end is not None and start > end:
        raise ValueError(f"[data] start ({start}) is after [data] end ({end}): the analysis "
                         "window must start on or before its end")
    return DataOptions(start=start, end=end,
                       churn_rule=churn.get("rule", "auto"),
                       inactivity_days=int(churn.get("inactivity_days", 180)),
                       exclude=tuple(data.get("exclude", ())),
                       covariates=tuple(covariates) if covariates is not None else None,
                       max_categories=int(data.get("max_categories", 50)))


def _tiers(raw: Any) -> TierRule:
    """``[tiers]``: the fields of :class:`TierRule`; ``quantiles`` replaces the thresholds."""
    if not isinstance(raw, dict):
        raise ValueError("[tiers] must be a table, e.g. [tiers] window_days = 30")
    known = {"window_days", "names", "thresholds", "quantiles", "kind"}
    extra = set(raw) - known
    if extra:
        raise ValueError(f"[tiers] unknown key(s) {sorted(extra)}; known: {sorted(known)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    if "quantiles" in values:
        values.setdefault("thresholds", None)
    return TierRule(**values)


def _sensitivity(raw: Any) -> SensitivitySettings:
    """``[sensitivity]``: ``horizon`` and ``leads`` of :class:`SensitivitySettings`."""
    if not isinstance(raw, dict):
        raise ValueError("[sensitivity] must be a table, e.g. [sensitivity] horizon = 12")
    extra = set(raw) - {"horizon", "leads"}
    if extra:
        raise ValueError(f"[sensitivity] unknown key(s) {sorted(extra)}; known: "
                         "['horizon', 'leads']")
    return SensitivitySettings(**raw)


def _scale(raw: Any) -> ScaleSettings:
    """``[scale]``: ``max_panel_rows`` of :class:`ScaleSettings`."""
    if not isinstance(raw, dict):
        raise ValueError("[scale] must be a table, e.g. [scale] max_panel_rows = 5000000")
    extra = set(raw) - {"max_panel_rows"}
    if extra:
        raise ValueError(f"[scale] unknown key(s) {sorted(extra)}; known: ['max_panel_rows']")
    return ScaleSettings(**raw)


def _lift_tests(entries: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """``[[lift_tests]]`` tables, each with exactly the fields of ``LIFT_TEST_FIELDS``."""
    tests = []
    for number, entry in enumerate(entries, start=1):
        missing = [f for f in LIFT_TEST_FIELDS if f not in entry]
        extra = sorted(set(entry) - set(LIFT_TEST_FIELDS))
        if missing or extra:
            raise ValueError(f"[[lift_tests]] entry {number}: missing {missing}, unknown {extra}; "
                             f"fields are {list(LIFT_TEST_FIELDS)}")
        tests.append({f: (str(entry[f]) if f in ("channel", "start", "end") else float(entry[f]))
                      for f in LIFT_TEST_FIELDS})
    return tuple(tests)


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
