"""Contract rules, each run as SQL in the source database: a count and up to five examples.

Two stages: :func:`structure_problems` (tables and columns present, not empty) and
:func:`parse_problems` (dates and numbers parse) run on the raw tables; :func:`rule_problems`
(keys, relations, signs) run on the typed tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from roi.data import dialect
from roi.data.errors import MAX_EXAMPLES, DataProblem
from roi.data.schema import TABLES, TableSpec
from roi.data.source import execute_scalar_rows
from roi.data.typed import canonical_columns, parsed_column

REQUIRED_TABLES = ("customers", "orders", "members")


@dataclass(frozen=True)
class Check:
    """A rule as SQL: rows of ``source`` where ``condition`` holds break it."""

    table: str
    column: str
    rule: str
    source: sa.FromClause
    condition: ColumnElement
    examples: tuple[ColumnElement, ...]

    def run(self, engine: sa.Engine) -> DataProblem | None:
        return self.problem(engine, self.count(engine))

    def problem(self, engine: sa.Engine, n_rows: int) -> DataProblem | None:
        """The problem for ``n_rows`` breaking rows (None for 0), with examples."""
        if not n_rows:
            return None
        example_query = (sa.select(*self.examples).select_from(self.source)
                         .where(self.condition).limit(MAX_EXAMPLES))
        rows = execute_scalar_rows(engine, example_query)
        return DataProblem(self.table, self.column, self.rule, n_rows,
                           tuple(_example(row) for row in rows))

    def count(self, engine: sa.Engine) -> int:
        query = sa.select(sa.func.count()).select_from(self.source).where(self.condition)
        return int(execute_scalar_rows(engine, query)[0][0])


def _example(row: tuple) -> str:
    return " ".join(str(v) for v in row) if len(row) > 1 else str(row[0])


def run_checks(engine: sa.Engine, checks: Iterable[Check]) -> list[DataProblem]:
    return [p for p in (check.run(engine) for check in checks) if p is not None]


def run_checks_batched(engine: sa.Engine, checks: Iterable[Check]) -> list[DataProblem]:
    """:func:`run_checks` with the counts of checks on one source in one scan of it (a
    ``SUM(CASE ...)`` per rule): each parse rule otherwise reads all 200M orders again."""
    checks = list(checks)
    by_source: dict[int, list[int]] = {}
    for index, check in enumerate(checks):
        by_source.setdefault(id(check.source), []).append(index)
    counts = [0] * len(checks)
    for indices in by_source.values():
        sums = [sa.func.coalesce(sa.func.sum(sa.case((checks[i].condition, 1), else_=0)), 0)
                for i in indices]
        row = execute_scalar_rows(engine, sa.select(*sums).select_from(checks[indices[0]].source))
        for i, n_rows in zip(indices, row[0], strict=True):
            counts[i] = int(n_rows)
    return [p for p in (c.problem(engine, n) for c, n in zip(checks, counts, strict=True))
            if p is not None]


def structure_problems(engine: sa.Engine, tables: dict[str, sa.FromClause]) -> list[DataProblem]:
    """Missing tables, missing required columns, empty required tables."""
    problems: list[DataProblem] = []
    for name, spec in TABLES.items():
        raw = tables.get(name)
        if raw is None:
            if name in REQUIRED_TABLES:
                problems.append(DataProblem(name, "*", "required table is missing", 0))
            continue
        present = set(raw.c.keys())
        missing = [c for c in spec.required if c not in present]
        for group in spec.one_of:
            if not present.intersection(group):
                missing.append(" or ".join(group))
        for column in missing:
            problems.append(DataProblem(name, column, "missing required column", 0,
                                        found=tuple(sorted(present))))
        if name in REQUIRED_TABLES and not missing:
            n_rows = execute_scalar_rows(engine, sa.select(sa.func.count()).select_from(raw))
            if n_rows[0][0] == 0:
                problems.append(DataProblem(name, "*", "required table is empty", 0))
    return problems


def _key_columns(spec: TableSpec, raw: sa.FromClause) -> tuple[ColumnElement, ...]:
    """Columns that identify a row in examples (never an e-mail)."""
    for key in ("order_id", "member_id", "customer_id", "channel", "community"):
        if key in raw.c and key != "email":
            return (dialect.as_text(raw.c[key]),)
    return ()


def parse_checks(spec: TableSpec, raw: sa.FromClause, *, duckdb: bool) -> list[Check]:
    """Dates that do not parse, amounts that are not finite numbers, empty required values."""
    checks = []
    keys = _key_columns(spec, raw)
    for name in canonical_columns(spec, raw):
        kind = spec.kind(name)
        column = raw.c[name]
        native = dialect.is_native_date(column) or dialect.is_native_number(column)
        # A natively typed column is only NULL or a value; text is trimmed, '' counts as empty.
        value = column if native else dialect.as_text(column)
        if name in spec.required:
            checks.append(Check(spec.name, name, "empty value in a required column", raw,
                                value.is_(None), keys or (sa.literal("(row)"),)))
        if kind not in ("date", "number") or dialect.is_native_date(column):
            continue
        rule = "unparsable date (expected YYYY-MM-DD)" if kind == "date" else "non-numeric amount"
        parsed = parsed_column(spec, raw, name, duckdb=duckdb)
        checks.append(Check(spec.name, name, rule, raw,
                            sa.and_(value.is_not(None), parsed.is_(None)), (*keys, value)))
    return (checks + date_range_checks(spec, raw, keys, duckdb=duckdb)
            + amount_range_checks(spec, raw, keys, duckdb=duckdb))


def amount_range_checks(spec: TableSpec, raw: sa.FromClause, keys: tuple, *,
                        duckdb: bool) -> list[Check]:
    """Numbers beyond +-1e15: no real order, spend or cost; sums are exact below that."""
    checks = []
    for name in canonical_columns(spec, raw):
        if spec.kind(name) != "number":
            continue
        parsed = parsed_column(spec, raw, name, duckdb=duckdb)
        checks.append(Check(spec.name, name, f"amount beyond +-{dialect.MAX_AMOUNT:.0e}", raw,
                            sa.func.abs(parsed) > dialect.MAX_AMOUNT,
                            (*keys, dialect.as_text(raw.c[name]))))
    return checks


EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2199, 12, 31)
# Far-future end dates are a common warehouse spelling of "not yet": allowed.
OPEN_ENDED = ("churned_at", "left_at")


def date_range_checks(spec: TableSpec, raw: sa.FromClause, keys: tuple, *,
                      duckdb: bool) -> list[Check]:
    """Dates that parse but lie outside 1900-01-01 .. 2199-12-31 (years 0000 or 9999 are
    placeholders, not dates; the window and calendars cannot be built from them)."""
    checks = []
    for name in canonical_columns(spec, raw):
        if spec.kind(name) != "date":
            continue
        parsed = parsed_column(spec, raw, name, duckdb=duckdb)
        early = parsed < sa.literal(EARLIEST, sa.Date)
        late = parsed > sa.literal(LATEST, sa.Date)
        condition = early if name in OPEN_ENDED else sa.or_(early, late)
        bounds = (f"before {EARLIEST}" if name in OPEN_ENDED
                  else f"outside {EARLIEST} to {LATEST}")
        checks.append(Check(spec.name, name, f"date {bounds}", raw, condition,
                            (*keys, dialect.as_text(raw.c[name]))))
    return checks


def parse_problems(engine: sa.Engine, tables: dict[str, sa.FromClause], *,
                   duckdb: bool) -> list[DataProblem]:
    checks = [c for name, raw in tables.items() if name in TABLES
              for c in parse_checks(TABLES[name], raw, duckdb=duckdb)]
    return run_checks_batched(engine, checks)


def relation_checks(typed: dict[str, sa.FromClause]) -> dict[str, Check]:
    """Rules across rows and tables, keyed by a short name (options may exclude some)."""
    customers, orders, members = typed["customers"], typed["orders"], typed["members"]
    checks: dict[str, Check] = {}
    duplicates = (sa.select(customers.c.customer_id, sa.func.count().label("n"))
                  .group_by(customers.c.customer_id).having(sa.func.count() > 1).subquery())
    checks["customers_duplicate_id"] = Check(
        "customers", "customer_id", "duplicate customer_id", customers,
        customers.c.customer_id.in_(sa.select(duplicates.c.customer_id)),
        (customers.c.customer_id,))
    if "churned_at" in customers.c:
        checks["customers_churn_before_first_seen"] = Check(
            "customers", "churned_at", "churned_at before first_seen", customers,
            customers.c.churned_at < customers.c.first_seen,
            (customers.c.customer_id, customers.c.first_seen, customers.c.churned_at))
    known = sa.select(customers.c.customer_id)
    checks["orders_unknown_customer"] = Check(
        "orders", "customer_id", "order for an unknown customer", orders,
        orders.c.customer_id.not_in(known), (orders.c.customer_id,))
    if "order_id" in orders.c:
        checks["orders_conflicting_order_id"] = _conflicting_order_ids(orders)
    if "churned_at" in customers.c:
        joined = orders.join(customers, orders.c.customer_id == customers.c.customer_id)
        checks["orders_after_churn"] = Check(
            "orders", "order_date", "order after the customer's churned_at", joined,
            orders.c.order_date > customers.c.churned_at,
            (orders.c.customer_id, orders.c.order_date, customers.c.churned_at))
    if "currency" in orders.c:
        checks["orders_currency"] = _currency_check(orders)
    checks["members_no_identity"] = Check(
        "members", "customer_id", "member without customer_id and without email", members,
        sa.and_(*(members.c[c].is_(None) for c in ("customer_id", "email_hash")
                  if c in members.c)),
        tuple(members.c[c] for c in ("member_id", "community", "joined_at") if c in members.c))
    if "left_at" in members.c:
        checks["members_left_before_joined"] = Check(
            "members", "left_at", "left_at before joined_at", members,
            members.c.left_at < members.c.joined_at,
            (members.c.community, members.c.joined_at, members.c.left_at))
    if "invitations" in typed:
        checks.update(invitation_checks(typed))
    if "programs" in typed:
        checks.update(program_checks(typed))
    if "referred_by" in customers.c:
        checks.update(referral_checks(customers))
    for table, column in (("ad_spend", "spend"), ("community_costs", "cost")):
        if table in typed:
            source = typed[table]
            label = source.c["channel"] if table == "ad_spend" else source.c["community"]
            checks[f"{table}_negative"] = Check(
                table, column, f"negative {column} (must be >= 0)", source,
                source.c[column] < 0, (label, source.c.date, source.c[column]))
    return checks


def invitation_checks(typed: dict[str, sa.FromClause]) -> dict[str, Check]:
    """The ``invitations`` rules: known customer, arm ``invite``/``holdout``, one arm per
    customer per experiment, assigned no later than the customer's churn."""
    from roi.data.schema import INVITATION_ARMS

    invitations, customers = typed["invitations"], typed["customers"]
    ids = (invitations.c.customer_id,)
    checks = {"invitations_unknown_customer": Check(
        "invitations", "customer_id", "invitation for an unknown customer", invitations,
        invitations.c.customer_id.not_in(sa.select(customers.c.customer_id)), ids),
        "invitations_unknown_arm": Check(
        "invitations", "arm", f"arm must be one of {', '.join(INVITATION_ARMS)}", invitations,
        sa.or_(invitations.c.arm.is_(None), invitations.c.arm.not_in(INVITATION_ARMS)),
        (*ids, invitations.c.arm))}
    experiment = (invitations.c.experiment if "experiment" in invitations.c
                  else sa.literal(""))
    keyed = sa.select(invitations.c.customer_id, sa.func.coalesce(experiment, "").label("x"),
                      invitations.c.arm).subquery()
    both = (sa.select(keyed.c.customer_id, keyed.c.x).group_by(keyed.c.customer_id, keyed.c.x)
            .having(sa.func.count(sa.distinct(keyed.c.arm)) > 1).subquery())
    in_both = sa.exists().where(both.c.customer_id == invitations.c.customer_id,
                                both.c.x == sa.func.coalesce(experiment, ""))
    checks["invitations_two_arms"] = Check(
        "invitations", "arm", "customer in two arms of one experiment", invitations, in_both,
        (*ids, invitations.c.arm))
    if "churned_at" in customers.c:
        joined = invitations.join(customers,
                                  invitations.c.customer_id == customers.c.customer_id)
        checks["invitations_after_churn"] = Check(
            "invitations", "assigned_at", "assigned after the customer's churned_at", joined,
            invitations.c.assigned_at > customers.c.churned_at,
            (*ids, invitations.c.assigned_at, customers.c.churned_at))
    return checks


def program_checks(typed: dict[str, sa.FromClause]) -> dict[str, Check]:
    """The ``programs`` rules (issue 20): a row names someone (customer_id, member_id or
    e-mail), a given customer_id is a known customer, a given member_id is a known member,
    ``ended_at`` is not before ``started_at``."""
    programs, customers, members = typed["programs"], typed["customers"], typed["members"]
    keys = tuple(programs.c[c] for c in ("program", "customer_id", "member_id", "started_at")
                 if c in programs.c)
    who = [c for c in ("customer_id", "member_id", "email_hash") if c in programs.c]
    checks = {"programs_no_identity": Check(
        "programs", "customer_id", "programme row without customer_id, member_id or email",
        programs, sa.and_(*(programs.c[c].is_(None) for c in who)), keys)}
    if "customer_id" in programs.c:
        checks["programs_unknown_customer"] = Check(
            "programs", "customer_id", "programme row for an unknown customer", programs,
            programs.c.customer_id.not_in(sa.select(customers.c.customer_id)), keys)
    if "member_id" in programs.c:
        given = programs.c.member_id.is_not(None)
        unknown = (sa.and_(given, programs.c.member_id.not_in(
            sa.select(members.c.member_id).where(members.c.member_id.is_not(None))))
            if "member_id" in members.c else given)
        checks["programs_unknown_member"] = Check(
            "programs", "member_id", "programme row for a member_id not in members", programs,
            unknown, keys)
    if "ended_at" in programs.c:
        checks["programs_ended_before_started"] = Check(
            "programs", "ended_at", "ended_at before started_at", programs,
            programs.c.ended_at < programs.c.started_at, (*keys, programs.c.ended_at))
    return checks


def referral_checks(customers: sa.FromClause) -> dict[str, Check]:
    """``customers.referred_by`` (issue 20) names a known customer other than itself."""
    ids = (customers.c.customer_id, customers.c.referred_by)
    return {"customers_referred_by_unknown": Check(
        "customers", "referred_by", "referred_by is not a known customer_id", customers,
        sa.and_(customers.c.referred_by.is_not(None),
                customers.c.referred_by.not_in(sa.select(customers.c.customer_id))), ids),
        "customers_referred_by_self": Check(
        "customers", "referred_by", "customer referred by itself", customers,
        customers.c.referred_by == customers.c.customer_id, ids)}


def _conflicting_order_ids(orders: sa.FromClause) -> Check:
    """Rows sharing an ``order_id`` after exact duplicates are merged: allowed only as one sale
    (revenue >= 0) and its refunds (negative revenue) of the same customer. Anything else is
    two different orders under one id, which no rule can add up safely."""
    groups = (sa.select(orders.c.order_id).where(orders.c.order_id.is_not(None))
              .group_by(orders.c.order_id)
              .having(sa.or_(sa.func.count(sa.distinct(orders.c.customer_id)) > 1,
                             sa.func.sum(sa.case((orders.c.revenue >= 0, 1), else_=0)) > 1)))
    return Check("orders", "order_id",
                 "rows with the same order_id differ (exact duplicates are merged; further rows "
                 "of an order must be refunds: negative revenue, same customer)", orders,
                 orders.c.order_id.in_(groups),
                 (orders.c.order_id, orders.c.order_date, orders.c.revenue))


def _currency_check(orders: sa.FromClause) -> Check:
    """More than one currency: rows in any currency other than the most common one."""
    counts = (sa.select(orders.c.currency, sa.func.count().label("n"))
              .where(orders.c.currency.is_not(None)).group_by(orders.c.currency).subquery())
    majority = sa.select(counts.c.currency).order_by(counts.c.n.desc(), counts.c.currency).limit(1)
    return Check("orders", "currency", "more than one currency (one currency per project)",
                 orders, sa.and_(orders.c.currency.is_not(None),
                                 orders.c.currency != majority.scalar_subquery()),
                 (orders.c.currency,))
