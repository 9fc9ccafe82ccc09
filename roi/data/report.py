"""The ``data`` block of ``results.json``: counts, window, exclusions, identity linking, churn rule.

Every number is a COUNT or DISTINCT run in the source database.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from roi.data.schema import TABLES
from roi.data.source import execute_scalar_rows


def _count(dataset, table: str, *where) -> int:
    source = dataset.tables[table]
    query = sa.select(sa.func.count()).select_from(source)
    if where:
        query = query.where(*where)
    return int(execute_scalar_rows(dataset.engine, query)[0][0])


def _count_raw(dataset, table: str) -> int:
    """Rows of a table as the source holds them (before typing or de-duplication)."""
    query = sa.select(sa.func.count()).select_from(dataset.source.tables[table])
    return int(execute_scalar_rows(dataset.engine, query)[0][0])


def _distinct(dataset, table: str, column: str) -> list[str]:
    source = dataset.tables.get(table)
    if source is None or column not in source.c:
        return []
    query = sa.select(source.c[column]).where(source.c[column].is_not(None)).distinct()
    return sorted(str(row[0]) for row in execute_scalar_rows(dataset.engine, query))


def identity_report(dataset) -> dict[str, Any]:
    """How member rows were linked to customers (raw e-mails are never part of it)."""
    members = dataset.tables["members"]
    rows = _count(dataset, "members")
    by_id = _count(dataset, "members", members.c.link == "customer_id")
    by_email = _count(dataset, "members", members.c.link == "email")
    unlinked = rows - by_id - by_email
    return {"member_rows": rows, "linked_by_customer_id": by_id, "linked_by_email": by_email,
            "unlinked": unlinked, "link_rate": round((by_id + by_email) / rows, 6) if rows else 0.0}


def members_before_customer(dataset) -> int:
    """Linked customers whose first join came before first_seen (kept; membership starts then)."""
    members, life = dataset.tables["members"], dataset.tables["life"]
    query = (sa.select(sa.func.count(sa.distinct(members.c.customer_id)))
             .select_from(members.join(life, members.c.customer_id == life.c.customer_id))
             .where(members.c.joined_at < life.c.first_seen))
    return int(execute_scalar_rows(dataset.engine, query)[0][0])


def first_seen_from_orders(dataset) -> int:
    """Customers whose first order came before their ``first_seen``: their life starts at the
    first order (kept, never dropped: contract §4 ``data.first_seen_from_orders``)."""
    customers, life = dataset.tables["customers"], dataset.tables["life"]
    query = (sa.select(sa.func.count())
             .select_from(life.join(customers, life.c.customer_id == customers.c.customer_id))
             .where(life.c.first_seen < customers.c.first_seen))
    return int(execute_scalar_rows(dataset.engine, query)[0][0])


def cost_notes(dataset) -> list[str]:
    """Communities with cost rows but no linked member: their cost is reported, no revenue."""
    costs = dataset.tables.get("community_costs")
    if costs is None:
        return []
    members = dataset.tables["members"]
    linked = sa.select(members.c.community).where(members.c.customer_id.is_not(None))
    query = (sa.select(costs.c.community).where(costs.c.community.not_in(linked))
             .distinct().order_by(costs.c.community))
    return [f"community_costs: {row[0]} has cost rows but no linked member; its cost is "
            "reported, its revenue cannot be estimated"
            for row in execute_scalar_rows(dataset.engine, query)]


def data_report(dataset, *, excluded: dict[str, int]) -> dict[str, Any]:
    from roi.data.accounting import row_accounting, unbalanced

    identity = identity_report(dataset)
    read = {name: _count_raw(dataset, name) for name in TABLES if name in dataset.tables}
    accounting = row_accounting(dataset, read=read, excluded=excluded)
    excluded = {**excluded, "members_unlinked": identity["unlinked"]}
    for entry in accounting.values():
        excluded.update(entry["excluded"])
    notes = [*dataset.source.notes, *cost_notes(dataset)]
    notes += [f"row accounting: rows of {table} do not add up (read != used + excluded)"
              for table in unbalanced(accounting)]
    life = dataset.tables["life"]
    churn: dict[str, Any] = {"rule": dataset.churn_rule}
    if dataset.churn_rule == "inactivity":
        churn["inactivity_days"] = dataset.options.inactivity_days
    churn["churned_customers"] = _count(dataset, "life", life.c.churn_date.is_not(None))
    currencies = _distinct(dataset, "orders", "currency")
    tables = {name: _count(dataset, name) for name in
              ("activity", "ad_spend", "community_costs") if name in dataset.tables}
    return {
        "customers": _count(dataset, "customers"),
        "orders": _count(dataset, "orders"),
        "members": identity["member_rows"],
        "start": dataset.start.isoformat(),
        "end": dataset.end.isoformat(),
        "excluded": excluded,
        "currency": currencies[0] if currencies else None,
        "churn": churn,
        "identity": identity,
        "members_before_customer": members_before_customer(dataset),
        "first_seen_from_orders": first_seen_from_orders(dataset),
        "row_accounting": accounting,
        "communities": _distinct(dataset, "members", "community"),
        "channels": _distinct(dataset, "ad_spend", "channel"),
        "covariates": dict(dataset.covariates),
        "other_tables": tables,
        "source": dataset.source.description,
        "notes": notes,
    }
