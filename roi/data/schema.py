"""The six canonical tables of ``shared/CONTRACT.md`` section 1 (and the optional
``invitations`` of section 5 and ``programs`` of issue 20), as data.

Connectors produce these tables, the validator checks them, and the SQL aggregations read them.
Column kinds: ``id`` (text key), ``date`` (ISO date; a timestamp is truncated to its date),
``number`` (numeric), ``text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableSpec:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)
    # Groups of columns of which at least one must be present (members: customer_id or email).
    one_of: tuple[tuple[str, ...], ...] = ()
    # Tables that may be empty or absent (a run without ad spend still estimates the community).
    may_be_empty: bool = False

    def kind(self, column: str) -> str:
        return self.kinds.get(column, "text")


TABLES: dict[str, TableSpec] = {
    "customers": TableSpec(
        name="customers",
        required=("customer_id", "first_seen"),
        optional=("churned_at", "email", "referred_by"),
        kinds={"customer_id": "id", "first_seen": "date", "churned_at": "date", "email": "text",
               "referred_by": "id"},
    ),
    "orders": TableSpec(
        name="orders",
        required=("customer_id", "order_date", "revenue"),
        optional=("order_id", "channel", "currency"),
        kinds={"customer_id": "id", "order_date": "date", "revenue": "number",
               "order_id": "id", "channel": "text", "currency": "text"},
    ),
    "members": TableSpec(
        name="members",
        required=("community", "joined_at"),
        optional=("customer_id", "email", "left_at", "member_id"),
        kinds={"community": "text", "joined_at": "date", "customer_id": "id", "email": "text",
               "left_at": "date", "member_id": "id"},
        one_of=(("customer_id", "email"),),
    ),
    "activity": TableSpec(
        name="activity",
        required=("community", "date"),
        optional=("customer_id", "member_id", "kind", "count"),
        kinds={"community": "text", "date": "date", "customer_id": "id", "member_id": "id",
               "kind": "text", "count": "number"},
        one_of=(("customer_id", "member_id"),),
        may_be_empty=True,
    ),
    "ad_spend": TableSpec(
        name="ad_spend",
        required=("date", "channel", "spend"),
        optional=("campaign", "impressions", "clicks"),
        kinds={"date": "date", "channel": "text", "spend": "number", "campaign": "text",
               "impressions": "number", "clicks": "number"},
        may_be_empty=True,
    ),
    "community_costs": TableSpec(
        name="community_costs",
        required=("date", "community", "cost"),
        optional=("category",),
        kinds={"date": "date", "community": "text", "cost": "number", "category": "text"},
        may_be_empty=True,
    ),
    # Optional (shared/CONTRACT.md section 5): a randomized invitation experiment.
    "invitations": TableSpec(
        name="invitations",
        required=("customer_id", "assigned_at", "arm"),
        optional=("community", "experiment"),
        kinds={"customer_id": "id", "assigned_at": "date", "arm": "text", "community": "text",
               "experiment": "text"},
        may_be_empty=True,
    ),
    # Optional (issue 20): community programmes (ambassadors, levels, perks), linked to
    # customers as members are (customer_id, else member_id or e-mail).
    "programs": TableSpec(
        name="programs",
        required=("program", "started_at"),
        optional=("customer_id", "member_id", "email", "ended_at"),
        kinds={"program": "text", "started_at": "date", "customer_id": "id", "member_id": "id",
               "email": "text", "ended_at": "date"},
        one_of=(("customer_id", "member_id", "email"),),
        may_be_empty=True,
    ),
}

INVITATION_ARMS = ("invite", "holdout")

TABLE_NAMES: tuple[str, ...] = tuple(TABLES)
