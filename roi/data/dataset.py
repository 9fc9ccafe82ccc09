"""Load a source into a validated, typed :class:`Dataset` whose aggregations run in the database.

Examples
--------
>>> from connectors import open_source
>>> from roi.data import load_dataset
>>> dataset = load_dataset(open_source("data/sample"))        # doctest: +SKIP
>>> panel = dataset.customer_month_panel()                     # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from roi.data import dialect, sql_parts
from roi.data.errors import DataProblem, DataValidationError
from roi.data.schema import TABLES
from roi.data.source import CanonicalSource, create_as, execute_scalar_rows
from roi.data.typed import extra_columns, typed_select
from roi.data.validate import parse_problems, relation_checks, run_checks, structure_problems

EXCLUDABLE = ("orders_unknown_customer", "orders_after_churn")
CHURN_RULES = ("auto", "column", "inactivity")


@dataclass(frozen=True)
class DataOptions:
    """How to read the data (the ``[data]`` and ``[churn]`` sections of the config file).

    Parameters
    ----------
    start, end : date, optional
        Analysis window; default from the first to the last order.
    churn_rule : {"auto", "column", "inactivity"}
        ``auto`` uses ``customers.churned_at`` when the column exists, else the inactivity rule.
    inactivity_days : int
        Inactivity rule: a customer with no order for more than this many days before the end of
        the window churned on the day of the last order (or of first_seen without orders).
    exclude : tuple of str
        Rules whose breaking rows are excluded and counted instead of being an error:
        ``orders_unknown_customer``, ``orders_after_churn``.
    covariates : tuple of str, optional
        Customer columns used as covariates; default every extra column that is numeric or has at
        most ``max_categories`` distinct values.
    """

    start: dt.date | None = None
    end: dt.date | None = None
    churn_rule: str = "auto"
    inactivity_days: int = 180
    exclude: tuple[str, ...] = ()
    covariates: tuple[str, ...] | None = None
    max_categories: int = 50

    def __post_init__(self) -> None:
        if self.churn_rule not in CHURN_RULES:
            raise ValueError(f"churn rule must be one of {CHURN_RULES}, got {self.churn_rule!r}")
        unknown = set(self.exclude) - set(EXCLUDABLE)
        if unknown:
            raise ValueError(f"cannot exclude {sorted(unknown)}; excludable: {EXCLUDABLE}")
        if self.inactivity_days <= 0:
            raise ValueError("inactivity_days must be positive")


@dataclass
class Dataset:
    """The validated canonical tables of one source, typed, living in its database.

    Attributes
    ----------
    tables : dict
        Typed selectables: ``customers``, ``life`` (one row per customer: effective churn,
        first membership, month indices, covariates), ``orders``, ``members`` (linked), ``activity``, ``ad_spend``,
        ``community_costs``.
    covariates : dict
        Covariate name -> ``"numeric"`` or ``"categorical"``.
    report : dict
        The ``data`` block of ``results.json``.
    """

    source: CanonicalSource
    options: DataOptions
    tables: dict[str, sa.FromClause]
    covariates: dict[str, str]
    start: dt.date
    end: dt.date
    churn_rule: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> sa.Engine:
        return self.source.engine

    def customer_month_panel(self) -> pd.DataFrame:
        """One row per customer and calendar month of their life in the window."""
        from roi.data.panel import customer_month_panel

        return customer_month_panel(self)

    def weekly_series(self):
        """Weekly revenue, spend per channel, members, activity and cost per community."""
        from roi.data.weekly import weekly_series

        return weekly_series(self)

    def survival_table(self) -> pd.DataFrame:
        """Start-stop table in days since first_seen with membership time-varying."""
        from roi.data.survival import survival_table

        return survival_table(self)


def load_dataset(source: CanonicalSource, options: DataOptions | None = None) -> Dataset:
    """Validate ``source`` against the contract inside its database and type it.

    Raises
    ------
    DataValidationError
        Listing every broken rule with table, column, rule, row count and examples.
    """
    options = options or DataOptions()
    engine, duckdb = source.engine, source.duckdb
    for stage in (structure_problems(engine, source.tables),
                  parse_problems(engine, source.tables, duckdb=duckdb)):
        if stage:
            raise DataValidationError(stage)
    covariates = _detect_covariates(source, options)
    typed = {name: _materialise(source, name, typed_select(
                 TABLES[name], raw, duckdb=duckdb,
                 numeric_extras=tuple(c for c, k in covariates.items() if k == "numeric"),
                 keep_extras=tuple(covariates) if name == "customers" else ()),
                 store=_needs_parsing(TABLES[name], raw))
             for name, raw in source.tables.items() if name in TABLES}
    excluded = dict(source.excluded)
    _merge_community_spellings(source, typed)
    # Exact re-exports of an order are one order: de-duplicated before any rule counts rows.
    repeated = _order_ids_repeat(engine, typed["orders"])
    typed["orders"], n_duplicates = _unique_orders(source, typed["orders"], repeated=repeated)
    if n_duplicates:
        excluded["orders_duplicate_row"] = n_duplicates
    checks = relation_checks(typed)
    if not repeated:
        # No order_id on two rows: no rows can conflict (the check would count 0 after a
        # grouping of every order_id; at 200M orders its COUNT(DISTINCT) runs out of memory)
        checks.pop("orders_conflicting_order_id", None)
    problems = run_checks(engine, [c for key, c in checks.items() if key not in options.exclude])
    if problems:
        raise DataValidationError(problems)
    for key in options.exclude:
        if key in checks:
            excluded[key] = checks[key].count(engine)
    if set(options.exclude) & {"orders_unknown_customer", "orders_after_churn"}:
        # Only an exclusion option can leave orders to drop; otherwise the checks passed.
        typed["orders"] = _materialise(source, "orders_kept", _kept_orders(typed, options),
                                       store=False)
    start, end = _window(engine, typed, options)
    churn_rule = _churn_rule(typed, options)
    life_base = _materialise(source, "life_base", _customer_life(
        typed, covariates, start=start, end=end, churn_rule=churn_rule,
        inactivity_days=options.inactivity_days), store=True)
    typed["members"] = _materialise(source, "members_linked", _linked_members(typed), store=True)
    typed["life"] = _materialise(source, "life", sql_parts.customer_summary(
        life_base, typed["members"], end=end), store=True)
    if source.embedded or source.engine.dialect.name == "spark":
        # Every panel aggregate (DiD sums, naive gap, Bayesian cells) needs the orders summed
        # per customer and month: grouped once here (200M orders at 10M customers), not once
        # per aggregate.
        from roi.data.panel import MONTHLY, monthly_revenue_select

        typed[MONTHLY] = _materialise(source, "monthly_revenue", monthly_revenue_select(
            typed, start=start, end=end, life=life_base), store=True)
    if "activity" in typed:
        typed["activity"] = _materialise(source, "activity_linked", _linked_activity(typed),
                                         store=False)
    if "programs" in typed:
        typed["programs"] = _materialise(source, "programs_linked", _linked_programs(typed),
                                         store=True)
    dataset = Dataset(source=source, options=options, tables=typed, covariates=covariates,
                      start=start, end=end, churn_rule=churn_rule)
    from roi.data.report import data_report

    dataset.report = data_report(dataset, excluded=excluded)
    return dataset


def _materialise(source: CanonicalSource, name: str, select: sa.Select, *,
                 store: bool) -> sa.FromClause:
    """Embedded database: a table (computed once) when ``store``, else a view (no copy of
    large tables). Spark: a temporary view of the session, checkpointed when ``store``
    (nothing is written to the warehouse). Warehouse: a subquery, since the toolkit only reads
    there."""
    table_name = f"roi_{name}"
    if source.engine.dialect.name == "spark":
        from roi.data.spark import materialise

        return materialise(source.engine, table_name, select, store=store)
    if not source.embedded:
        return select.subquery(table_name)
    return create_as(source.engine, table_name, select, kind="TABLE" if store else "VIEW")


def _needs_parsing(spec, raw: sa.FromClause) -> bool:
    """True when dates or numbers arrive as text (CSV, Excel): parse them once, store typed."""
    return any(not (dialect.is_native_date(raw.c[c]) or dialect.is_native_number(raw.c[c]))
               for c in raw.c.keys() if spec.kind(c) in ("date", "number"))


def _detect_covariates(source: CanonicalSource, options: DataOptions) -> dict[str, str]:
    """Extra customer columns: numeric when every non-empty value parses as a number."""
    raw = source.tables["customers"]
    extras = extra_columns(TABLES["customers"], raw)
    if options.covariates is not None:
        missing = [c for c in options.covariates if c not in extras]
        if missing:
            raise DataValidationError([DataProblem(
                "customers", ", ".join(missing), "configured covariate is not a column", 0,
                tuple(extras[:5]))])
        extras = list(options.covariates)
    kinds: dict[str, str] = {}
    for name in extras:
        text = dialect.as_text(raw.c[name])
        number = dialect.parse_number(raw.c[name], duckdb=source.duckdb)
        query = sa.select(
            sa.func.count(text),
            sa.func.sum(sa.case((sa.and_(text.is_not(None), number.is_(None)), 1), else_=0)),
            sa.func.count(sa.distinct(text))).select_from(raw)
        n_values, n_not_numeric, n_distinct = execute_scalar_rows(source.engine, query)[0]
        if n_values and not n_not_numeric:
            kinds[name] = "numeric"
        elif options.covariates is not None or (n_distinct or 0) <= options.max_categories:
            kinds[name] = "categorical"
    return kinds


def _merge_community_spellings(source: CanonicalSource,
                               typed: dict[str, sa.FromClause]) -> None:
    """Community names differing only in case ("Discord", "discord") are one community, named
    by its most frequent spelling over members, activity and costs; a note says so. Exports
    that rename a community's capitalisation mid-window otherwise split it in two."""
    tables = [n for n in ("members", "activity", "community_costs") if n in typed]
    names = sa.union_all(*(sa.select(typed[n].c.community.label("community")) for n in tables)
                         ).subquery("community_names_used")
    key = sa.func.lower(names.c.community)
    spellings = (sa.select(key.label("key"), names.c.community, sa.func.count().label("n"))
                 .where(names.c.community.is_not(None))
                 .group_by(key, names.c.community).subquery("spellings"))
    rank = sa.func.row_number().over(partition_by=spellings.c.key,
                                     order_by=(spellings.c.n.desc(), spellings.c.community))
    ranked = sa.select(spellings.c.key, spellings.c.community, rank.label("rank")).subquery()
    variants = execute_scalar_rows(source.engine, sa.select(
        ranked.c.key, ranked.c.community, ranked.c.rank).where(ranked.c.key.in_(
            sa.select(ranked.c.key).where(ranked.c.rank > 1))).order_by(ranked.c.key,
                                                                        ranked.c.rank))
    if not variants:
        return
    canonical = _materialise(source, "community_spellings", sa.select(
        ranked.c.key, ranked.c.community).where(ranked.c.rank == 1), store=True)
    for name in tables:
        table = typed[name]
        columns = [canonical.c.community if c.key == "community" else c for c in table.c]
        typed[name] = _materialise(source, f"{name}_named", sa.select(*columns).select_from(
            table.outerjoin(canonical, sa.func.lower(table.c.community) == canonical.c.key)),
            store=False)
    groups: dict[str, list[str]] = {}
    for group_key, spelling, _ in variants:
        groups.setdefault(group_key, []).append(str(spelling))
    source.notes.extend(
        f"community names differing only in case merged: {', '.join(repr(s) for s in found)} "
        f"counted as {found[0]!r}" for found in groups.values())


def _order_ids_repeat(engine: sa.Engine, orders: sa.FromClause) -> bool:
    """True when some ``order_id`` is on more than one row (or, in DuckDB, when two ids share
    a 64-bit hash: then the exact comparison of :func:`_unique_orders` runs, as for repeats).

    A grouping, not ``COUNT(DISTINCT order_id)``; in DuckDB on the ids' hashes: grouping 200M
    distinct trimmed texts, like counting them, overflows its 1 GB memory limit (10M-customer
    world), fixed-width hashes spill to disk.
    """
    if "order_id" not in orders.c:
        return False
    key = (sa.func.hash(orders.c.order_id) if dialect.is_duckdb(engine)
           else orders.c.order_id)
    repeated = (sa.select(key.label("id")).where(orders.c.order_id.is_not(None))
                .group_by(key).having(sa.func.count() > 1).limit(1))
    return bool(execute_scalar_rows(engine, sa.select(sa.func.count()).select_from(
        repeated.subquery("repeated_order_ids")))[0][0])


def _unique_orders(source: CanonicalSource, orders: sa.FromClause, *,
                   repeated: bool) -> tuple[sa.FromClause, int]:
    """Orders with rows identical in every column and sharing an ``order_id`` kept once, and
    how many rows that removed. Rows without ``order_id`` are never merged (two equal
    purchases on one day are possible); differing rows of one ``order_id`` are a rule
    (``orders_conflicting_order_id``), not merged. ``repeated``: some order_id is on two
    rows (:func:`_order_ids_repeat`); else there is nothing to merge (the usual case)."""
    if not repeated:
        return orders, 0
    with_id = sa.select(*orders.c).where(orders.c.order_id.is_not(None))
    n_rows = execute_scalar_rows(source.engine, sa.select(sa.func.count(orders.c.order_id)))[0][0]
    n_unique = execute_scalar_rows(source.engine, sa.select(sa.func.count()).select_from(
        with_id.distinct().subquery("distinct_orders")))[0][0]
    if n_rows == n_unique:
        return orders, 0
    unique = sa.union_all(with_id.distinct(),
                          sa.select(*orders.c).where(orders.c.order_id.is_(None)))
    return (_materialise(source, "orders_unique", sa.select(*unique.subquery().c), store=True),
            int(n_rows - n_unique))


def _kept_orders(typed: dict[str, sa.FromClause], options: DataOptions) -> sa.Select:
    """Orders of known customers; orders after churn dropped only when the option says so."""
    orders, customers = typed["orders"], typed["customers"]
    query = (sa.select(*orders.c)
             .select_from(orders.join(customers, orders.c.customer_id == customers.c.customer_id)))
    if "orders_after_churn" in options.exclude and "churned_at" in customers.c:
        query = query.where(sa.or_(customers.c.churned_at.is_(None),
                                   orders.c.order_date <= customers.c.churned_at))
    return query


def _window(engine: sa.Engine, typed: dict[str, sa.FromClause],
            options: DataOptions) -> tuple[dt.date, dt.date]:
    orders = typed["orders"]
    first, last = execute_scalar_rows(engine, sa.select(sa.func.min(orders.c.order_date),
                                                        sa.func.max(orders.c.order_date)))[0]
    start = options.start or _as_date(first)
    end = options.end or _as_date(last)
    if start is None or end is None or start > end:
        raise DataValidationError([DataProblem("orders", "order_date",
                                                "no orders inside the analysis window", 0,
                                                (str(start), str(end)))])
    if not sql_parts.complete_months(start, end) or not sql_parts.complete_weeks(start, end):
        raise DataValidationError([DataProblem(
            "orders", "order_date", "the analysis window (first to last order, or [data] "
            "start/end) holds no complete calendar month", 0, (str(start), str(end)))])
    return start, end


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    return pd.Timestamp(value).date()


def _churn_rule(typed: dict[str, sa.FromClause], options: DataOptions) -> str:
    has_column = "churned_at" in typed["customers"].c
    if options.churn_rule == "column" and not has_column:
        raise DataValidationError([DataProblem("customers", "churned_at",
                                                "churn rule 'column' needs this column", 0)])
    if options.churn_rule == "auto":
        return "column" if has_column else "inactivity"
    return options.churn_rule


def _customer_life(typed: dict[str, sa.FromClause], covariates: dict[str, str], *,
                   start: dt.date, end: dt.date, churn_rule: str,
                   inactivity_days: int) -> sa.Select:
    """Customers with last order and effective churn date (NULL = still a customer at end)."""
    customers, orders = typed["customers"], typed["orders"]
    last = (sa.select(orders.c.customer_id, sa.func.max(orders.c.order_date).label("last_order"),
                      sa.func.min(orders.c.order_date).label("first_order"),
                      sa.func.count().label("n_orders"))
            .group_by(orders.c.customer_id).subquery("last_orders"))
    # A customer is a customer from the first order at the latest: first_seen is
    # min(first_seen, first order), so no order falls before the customer's life.
    first_seen = sa.case((last.c.first_order < customers.c.first_seen, last.c.first_order),
                         else_=customers.c.first_seen)
    seen = sa.func.coalesce(last.c.last_order, first_seen)
    if churn_rule == "column":
        raw_churn = customers.c.churned_at
    else:
        lapsed = seen + sa.literal(inactivity_days) < sa.literal(end, sa.Date)
        raw_churn = sa.case((lapsed, seen), else_=None)
    churn_date = sa.case((raw_churn <= sa.literal(end, sa.Date), raw_churn), else_=None)
    # An integer per customer in customer_id order: cheap deterministic ordering downstream.
    customer_key = sa.func.row_number().over(order_by=customers.c.customer_id)
    return (sa.select(customers.c.customer_id, customer_key.label("customer_key"),
                      first_seen.label("first_seen"),
                      last.c.last_order, sa.func.coalesce(last.c.n_orders, 0).label("n_orders"),
                      churn_date.label("churn_date"),
                      *(customers.c[c] for c in covariates))
            .select_from(customers.outerjoin(last, last.c.customer_id == customers.c.customer_id))
            .where(first_seen <= sa.literal(end, sa.Date)))


def _linked_members(typed: dict[str, sa.FromClause]) -> sa.Select:
    """Members with ``customer_id`` resolved directly or through the hashed e-mail; rows
    identical in every column (a re-exported member list) kept once."""
    members = sa.select(*typed["members"].c).distinct().subquery("members_unique")
    customers = typed["customers"]
    by_id = customers.alias("by_id")
    joins = members.outerjoin(by_id, members.c.customer_id == by_id.c.customer_id) \
        if "customer_id" in members.c else members
    linked_id = by_id.c.customer_id if "customer_id" in members.c else sa.null()
    linked_mail = sa.null()
    if "email_hash" in members.c and "email_hash" in customers.c:
        mail = (sa.select(customers.c.email_hash, sa.func.min(customers.c.customer_id)
                          .label("customer_id"))
                .where(customers.c.email_hash.is_not(None))
                .group_by(customers.c.email_hash).subquery("by_mail"))
        joins = joins.outerjoin(mail, sa.and_(linked_id.is_(None),
                                              members.c.email_hash == mail.c.email_hash))
        linked_mail = mail.c.customer_id
    link = sa.case((linked_id.is_not(None), "customer_id"),
                   (linked_mail.is_not(None), "email"), else_=None)
    optional = [members.c[c] for c in ("left_at", "member_id") if c in members.c]
    return sa.select(members.c.community, members.c.joined_at, *optional,
                     sa.func.coalesce(linked_id, linked_mail).label("customer_id"),
                     link.label("link")).select_from(joins)


def _linked_activity(typed: dict[str, sa.FromClause]) -> sa.Select:
    """Activity with a customer (when linkable) and a member key for distinct counts."""
    activity, members = typed["activity"], typed["members"]
    count = (sa.func.coalesce(activity.c["count"], 1) if "count" in activity.c
             else sa.literal(1.0))
    kind = activity.c.kind if "kind" in activity.c else sa.null()
    direct = activity.c.customer_id if "customer_id" in activity.c else sa.null()
    joins = activity
    via_member = sa.null()
    if "member_id" in activity.c and "member_id" in members.c:
        ids = (sa.select(members.c.member_id, sa.func.min(members.c.customer_id)
                         .label("customer_id"))
               .where(members.c.member_id.is_not(None))
               .group_by(members.c.member_id).subquery("member_ids"))
        joins = activity.outerjoin(ids, activity.c.member_id == ids.c.member_id)
        via_member = ids.c.customer_id
    member_id = activity.c.member_id if "member_id" in activity.c else sa.null()
    return sa.select(activity.c.community, activity.c.date, kind.label("kind"),
                     sa.cast(count, sa.Double).label("count"),
                     sa.func.coalesce(direct, via_member).label("customer_id"),
                     sa.func.coalesce(member_id, direct).label("member_key")).select_from(joins)


def _linked_programs(typed: dict[str, sa.FromClause]) -> sa.Select:
    """Programme rows with ``customer_id`` resolved as members are (issue 20): the row's own
    ``customer_id``, else its ``member_id``'s customer, else its hashed e-mail's customer; NULL
    when none links (counted as ``programs_unlinked``)."""
    programs, members, customers = typed["programs"], typed["members"], typed["customers"]
    joins: sa.FromClause = programs
    candidates = [programs.c.customer_id] if "customer_id" in programs.c else []
    if "member_id" in programs.c and "member_id" in members.c:
        ids = (sa.select(members.c.member_id, sa.func.min(members.c.customer_id)
                         .label("customer_id"))
               .where(members.c.member_id.is_not(None))
               .group_by(members.c.member_id).subquery("program_member_ids"))
        joins = joins.outerjoin(ids, programs.c.member_id == ids.c.member_id)
        candidates.append(ids.c.customer_id)
    if "email_hash" in programs.c and "email_hash" in customers.c:
        mail = (sa.select(customers.c.email_hash, sa.func.min(customers.c.customer_id)
                          .label("customer_id"))
                .where(customers.c.email_hash.is_not(None))
                .group_by(customers.c.email_hash).subquery("program_mail"))
        joins = joins.outerjoin(mail, programs.c.email_hash == mail.c.email_hash)
        candidates.append(mail.c.customer_id)
    customer = (sa.func.coalesce(*candidates) if len(candidates) > 1
                else candidates[0] if candidates else sa.cast(sa.null(), sa.String))
    ended = programs.c.ended_at if "ended_at" in programs.c else sa.cast(sa.null(), sa.Date)
    return sa.select(programs.c.program, programs.c.started_at, ended.label("ended_at"),
                     customer.label("customer_id")).select_from(joins)
