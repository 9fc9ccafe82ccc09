"""The ``data`` block of ``results.json``: counts, window, exclusions, identity linking, churn rule.

Every number is a COUNT or DISTINCT run in the source database.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from roi.data.source import execute_scalar_rows


def _count(dataset, table: str, *where) -> int:
    source = dataset.tables[table]
    query = sa.select(sa.func.count()).select_from(source)
    if where:
        query = query.where(*where)
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


def data_report(dataset, *, excluded: dict[str, int]) -> dict[str, Any]:
    identity = identity_report(dataset)
    excluded = {**excluded, "members_unlinked": identity["unlinked"]}
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
        "communities": _distinct(dataset, "members", "community"),
        "channels": _distinct(dataset, "ad_spend", "channel"),
        "covariates": dict(dataset.covariates),
        "other_tables": tables,
        "source": dataset.source.description,
        "notes": list(dataset.source.notes),
    }
