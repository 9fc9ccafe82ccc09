"""A large simulated world written in bounded memory: customers in chunks, tables as Parquet.

:func:`write_world_chunked` draws the same generative model as :func:`roi.simulate.simulate_world`
(see its module docstring) for ``chunk_customers`` customers at a time, each chunk from its own
seeded streams (:data:`CHUNK_SPAWN_KEY`), and appends
every chunk's rows to ``<table>.parquet`` as row groups. Memory grows with the chunk, not with
the world: 10,000,000 customers fit in the memory a 250,000-customer world needs in one piece.
``python -m roi.simulate --chunk-customers N`` uses it.

What differs from the one-piece world (same model, other draws, so not the same tables):

* Paid-media orders: the one-piece world draws Poisson orders per channel-week and gives each
  to a customer drawn among everyone alive that day. Here the same expected orders are split
  per day and chunk in proportion to the chunk's customers alive that day (Poisson splitting:
  the same distribution), then given to a customer of that chunk. This needs the alive counts
  and the organic expected revenue of the whole world, so the customers are drawn twice: a
  first pass writes customers, organic orders, members and activity and counts, a second draws
  each chunk's media orders (the chunk's people are redrawn from its seed, not kept).
* Orders are sorted by date within a chunk, not over the whole table; ``order_id``, member
  numbers and prospects' e-mails are numbered over the whole world.
* The invitation experiment (``experiment_share > 0``) and the engagement knobs are not
  supported (they are drawn over every customer at once); asking for them is an error.

``truth.json`` has every key of the one-piece world, summed over chunks (the naive gap from
sums and counts per group).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roi.simulate import (
    _STREAMS,
    NEVER,
    TABLE_NAMES,
    WorldParams,
    _activity_table,
    _ad_spend_table,
    _arrow_with_dates,
    _build_panel,
    _Calendar,
    _cents,
    _community_costs,
    _customers_table,
    _draw_member_rows,
    _draw_organic_orders,
    _enrolled,
    _make_calendar,
    _MediaPlan,
    _members_table,
    _numbered,
    _Orders,
    _orders_table,
    _People,
    _pick_alive,
    _plan_media,
    _retention_truth,
    _Sales,
    _simulate_people,
    _trigger_orders,
    _truth,
)

DEFAULT_CHUNK = 250_000
"""Customers per chunk: under 1 GiB of working memory with the default parameters."""
CHUNK_SPAWN_KEY = 1_000
"""Chunk ``k`` draws from ``SeedSequence(seed, spawn_key=(1000, k))``: apart from the world-level
streams (``SeedSequence(seed).spawn``, keys 0, 1, ...) and from every other chunk."""


@dataclass
class _Totals:
    """What the truth and the world-level tables need, summed over chunks."""

    k: int                     # communities
    n_days: int
    n_months: int
    width: int                 # digits of order numbers
    member_width: int          # digits of member numbers and prospects' e-mails
    organic_expected: float = 0.0
    ever_members: int = 0
    joined_before: int = 0     # members who joined before their first purchase
    orders: int = 0            # order rows written so far
    retention: dict[str, dict[str, float]] = field(default_factory=dict)
    lift_n: np.ndarray = field(init=False)      # member-months per community
    lift_sum: np.ndarray = field(init=False)
    after_n: np.ndarray = field(init=False)     # the same from the month after joining
    after_sum: np.ndarray = field(init=False)
    gap: np.ndarray = field(init=False)         # [ever, never] x [revenue, whole months]
    alive: np.ndarray = field(init=False)       # (chunk, day) customers alive
    enrolled: np.ndarray = field(init=False)    # (community, month) member rows enrolled
    member_rows: np.ndarray = field(init=False)  # with id, e-mail only, prospects
    per_community: np.ndarray = field(init=False)  # member rows per community so far

    def __post_init__(self) -> None:
        self.lift_n, self.lift_sum = np.zeros(self.k), np.zeros(self.k)
        self.after_n, self.after_sum = np.zeros(self.k), np.zeros(self.k)
        self.gap = np.zeros((2, 2))
        self.alive = np.zeros((0, self.n_days), np.int64)
        self.enrolled = np.zeros((self.k, self.n_months), np.int64)
        self.member_rows = np.zeros(3, np.int64)
        self.per_community = np.zeros(self.k, np.int64)


class _Writer:
    """One ``<table>.parquet`` per table, a row group per chunk (schema of the first)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.writers, self.rows = folder, {}, {}

    def append(self, name: str, frame) -> None:
        table = _arrow_with_dates(frame)
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.folder / f"{name}.parquet", table.schema)
            self.rows[name] = 0
        writer = self.writers[name]
        self.rows[name] += table.num_rows
        writer.write_table(table.cast(writer.schema))

    def close(self) -> list[Path]:
        for writer in self.writers.values():
            writer.close()
        return [self.folder / f"{name}.parquet" for name in self.writers]


def write_world_chunked(folder: str | Path, *, n_customers: int, months: int = 24,
                        start: str = "2023-01-01", seed: int = 7,
                        chunk_customers: int = DEFAULT_CHUNK, params: WorldParams | None = None,
                        **knobs: Any) -> dict[str, Any]:
    """Write ``<table>.parquet`` for the six canonical tables and ``truth.json``; return truth.

    Parameters
    ----------
    folder : str or Path
        Created if missing; existing files of the same names are replaced.
    n_customers, months, start, seed, params, **knobs
        As :func:`roi.simulate.simulate_world`.
    chunk_customers : int
        Customers simulated at a time (bounds the memory).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     truth = write_world_chunked(folder, n_customers=900, months=6, seed=3,
    ...                                 chunk_customers=400)
    ...     sorted(p.name for p in Path(folder).iterdir())[:2]
    ['activity.parquet', 'ad_spend.parquet']
    >>> truth["counts"]["customers"]
    900
    """
    if n_customers < 1 or chunk_customers < 1:
        raise ValueError(f"n_customers and chunk_customers must be at least 1, got "
                         f"{n_customers} and {chunk_customers}")
    p = dataclasses.replace(params or WorldParams(), **knobs)
    if p.experiment_share > 0 or p.engagement is not None:
        raise ValueError("write_world_chunked: the invitation experiment (experiment_share > 0) "
                         "and the engagement knobs (engagement=...) are drawn over every "
                         "customer at once; use roi.simulate.simulate_world for them")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cal = _make_calendar(start, months)
    bounds = np.arange(0, n_customers + chunk_customers, chunk_customers).clip(max=n_customers)
    bounds = np.unique(bounds)
    world = dict(zip(_STREAMS, np.random.default_rng(seed).spawn(len(_STREAMS)), strict=True))
    # Widths fixed up front so that every part numbers alike: member rows stay under 2 per
    # customer, orders far under 100 per customer.
    totals = _Totals(k=len(p.communities), n_days=cal.n_days, n_months=cal.n_months,
                     width=max(7, len(str(100 * n_customers))),
                     member_width=max(6, len(str(2 * n_customers))))
    writer = _Writer(folder)
    width = max(6, len(str(n_customers)))
    for chunk, (low, high) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        _first_pass(chunk, low, high, seed=seed, cal=cal, p=p, totals=totals, writer=writer,
                    width=width)
    plan = _plan_media(world["media"], cal, p, totals.organic_expected)
    unassigned = _media_pass(bounds, seed=seed, plan=plan, cal=cal, p=p, totals=totals,
                             writer=writer, rng=world["media_orders"])
    lift = _lift_truth(totals, p, n_customers)
    costs = _community_costs(world["costs"], lift["lift_revenue_by_community"], None, cal, p,
                             enrolled_by_community=totals.enrolled)
    writer.append("ad_spend", _ad_spend_table(world["media"], plan, cal, p))
    writer.append("community_costs", costs)
    writer.close()
    sales = _Sales(None, plan, unassigned, totals.organic_expected, lift)  # no orders kept
    truth = _truth(None, sales, {"community_costs": costs}, lift, cal, p, seed,
                   retention=totals.retention)
    truth["counts"] = {name: writer.rows[name] for name in TABLE_NAMES}
    truth["membership"] = _membership(totals)
    truth["chunks"] = {"customers_per_chunk": int(chunk_customers), "n": len(bounds) - 1,
                       "note": "simulated in chunks (roi.simulate_chunked): same model, other "
                               "draws than the one-piece world of the same seed"}
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def _chunk_people(chunk: int, n: int, *, seed: int, cal: _Calendar,
                  p: WorldParams) -> tuple[dict[str, np.random.Generator], _People]:
    """The chunk's streams (independent of every other chunk's) and its people."""
    root = np.random.SeedSequence(seed, spawn_key=(CHUNK_SPAWN_KEY, chunk))
    rngs = dict(zip(_STREAMS, map(np.random.default_rng, root.spawn(len(_STREAMS))),
                    strict=True))
    return rngs, _simulate_people(rngs, n, cal, p)


def _first_pass(chunk: int, low: int, high: int, *, seed: int, cal: _Calendar, p: WorldParams,
                totals: _Totals, writer: _Writer, width: int) -> None:
    """Customers, organic orders, members and activity of one chunk; its sums for the truth."""
    rngs, people = _chunk_people(chunk, high - low, seed=seed, cal=cal, p=p)
    ids = _numbered("C", np.arange(low + 1, high + 1), width)
    emails = _numbered("c", np.arange(low + 1, high + 1), width, "@example.com")
    writer.append("customers", _customers_table(people, ids, emails, cal, p))
    panel = _build_panel(people, cal, p)
    orders = _draw_organic_orders(rngs["orders"], panel, people.customers, p)
    if p.join_after_purchase > 0:
        orders = _Orders.concat([orders, _trigger_orders(rngs["triggers"], people, cal, p)])
    totals.organic_expected += float(((panel.mu0 + panel.lift) * panel.exposure).sum())
    _add_lift(totals, panel, people, orders, cal)
    del panel
    _write_orders(writer, orders, ids, cal, p, totals)
    del orders
    _add_alive(totals, people, cal)
    totals.retention = _add_nested(totals.retention, _retention_truth(people, cal, p))
    _members_and_activity(rngs, people, ids, emails, cal=cal, p=p, totals=totals,
                          writer=writer)


def _add_lift(totals: _Totals, panel, people: _People, orders: _Orders, cal: _Calendar) -> None:
    """Member-month lift sums (all, from the month after joining) and the naive gap's sums."""
    k = totals.k
    counted = panel.whole & (panel.since_start >= 0)
    community = people.community[panel.customer[counted]]
    totals.lift_n += np.bincount(community, minlength=k)
    totals.lift_sum += np.bincount(community, weights=panel.lift[counted], minlength=k)
    after = counted & (panel.since_start >= 1)
    community = people.community[panel.customer[after]]
    totals.after_n += np.bincount(community, minlength=k)
    totals.after_sum += np.bincount(community, weights=panel.lift[after], minlength=k)
    row = (panel.row_start[orders.customer] + cal.month_of(orders.day)
           - cal.month_of(people.customers.first_seen[orders.customer]))
    realised = np.bincount(row, weights=orders.revenue, minlength=len(panel.customer))
    ever = people.member[panel.customer]
    for g, rows in enumerate((panel.whole & ever, panel.whole & ~ever)):
        totals.gap[g] += [realised[rows].sum(), rows.sum()]


def _write_orders(writer: _Writer, orders: _Orders, ids: pa.Array, cal: _Calendar,
                  p: WorldParams, totals: _Totals) -> None:
    writer.append("orders", _orders_table(orders, ids, cal, p, first_number=totals.orders + 1,
                                          width=totals.width))
    totals.orders += len(orders.day)


def _add_alive(totals: _Totals, people: _People, cal: _Calendar) -> None:
    """Customers alive on each day (first seen by then, not churned before): a row per chunk."""
    last = np.minimum(people.churn_day, cal.n_days - 1)
    change = (np.bincount(people.customers.first_seen, minlength=cal.n_days + 1)
              - np.bincount(last + 1, minlength=cal.n_days + 1))
    totals.alive = np.vstack([totals.alive, np.cumsum(change)[:cal.n_days]])


def _add_nested(total: dict, part: dict) -> dict:
    return {key: {name: total.get(key, {}).get(name, 0.0) + value
                  for name, value in values.items()} for key, values in part.items()}


def _members_and_activity(rngs: dict[str, np.random.Generator], people: _People, ids: pa.Array,
                          emails: pa.Array, *, cal: _Calendar, p: WorldParams, totals: _Totals,
                          writer: _Writer) -> None:
    rows = _draw_member_rows(rngs["members"], people, cal, p)
    # Member numbers run over the whole world: shift this chunk's by the rows before it.
    before = totals.per_community
    rows = dataclasses.replace(rows, number=rows.number + before[rows.community])
    totals.per_community = before + np.bincount(rows.community, minlength=totals.k)
    width = totals.member_width
    prospect = rows.customer < 0
    writer.append("members", _members_table(rngs["members"], rows, ids, emails, cal, p,
                                            width=width,
                                            prospects_before=int(totals.member_rows[2])))
    writer.append("activity", _activity_table(rngs["activity"], rows, ids, cal, p, width=width))
    totals.enrolled += _enrolled(rows, cal, p)
    totals.member_rows += [int(rows.with_id.sum()), int((~prospect & ~rows.with_id).sum()),
                           int(prospect.sum())]
    totals.joined_before += int((people.member & (people.joined < people.customers.first_seen))
                                .sum())
    totals.ever_members += int(people.member.sum())


def _media_pass(bounds: np.ndarray, *, seed: int, plan: _MediaPlan, cal: _Calendar,
                p: WorldParams, totals: _Totals, writer: _Writer,
                rng: np.random.Generator) -> int:
    """Paid-media orders chunk by chunk; returns the orders no customer was alive for."""
    day = (cal.week_start[:, None] + np.arange(7)[None, :]).ravel()   # (week, weekday)
    per_day = np.repeat(plan.expected / p.media_order_value / 7.0, 7, axis=1)  # (channel, day)
    alive = totals.alive[:, day].astype(float)
    everyone = alive.sum(axis=0)
    unassigned = int(rng.poisson(per_day[:, everyone == 0].sum()))
    width = max(6, len(str(int(bounds[-1]))))
    for chunk, (low, high) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        share = np.divide(alive[chunk], everyone, out=np.zeros_like(everyone),
                          where=everyone > 0)
        rngs, people = _chunk_people(chunk, high - low, seed=seed, cal=cal, p=p)
        counts = rng.poisson(per_day * share[None, :]).ravel()
        cell = np.repeat(np.arange(counts.size), counts)
        channel, position = np.divmod(cell, day.size)
        on = day[position]
        shape = p.order_value_shape
        value = _cents(rng.gamma(shape, p.media_order_value / shape, cell.size))
        last = np.minimum(people.churn_day, cal.n_days - 1)
        customer = _pick_alive(rng, on, people.customers.first_seen, last)
        kept = customer >= 0   # rejection sampling gave up (a day with very few alive)
        unassigned += int((~kept).sum())
        orders = _Orders(customer[kept].astype(np.int32), on[kept].astype(np.int32),
                         value[kept], (channel[kept] + 1).astype(np.int8))
        _add_media_gap(totals, orders, people, cal)
        ids = _numbered("C", np.arange(low + 1, high + 1), width)
        _write_orders(writer, orders, ids, cal, p, totals)
        del rngs
    return unassigned


def _add_media_gap(totals: _Totals, orders: _Orders, people: _People, cal: _Calendar) -> None:
    """Media orders falling in whole customer-months count in the naive gap's revenue."""
    c = orders.customer
    month = cal.month_of(orders.day)
    whole = ((people.customers.first_seen[c] < cal.month_start[month])
             & (people.churn_day[c] >= cal.month_start[month + 1]))
    ever = people.member[c]
    totals.gap[0, 0] += orders.revenue[whole & ever].sum()
    totals.gap[1, 0] += orders.revenue[whole & ~ever].sum()


def _lift_truth(totals: _Totals, p: WorldParams, n_customers: int) -> dict[str, Any]:
    def mean(total: float, count: float) -> float | None:
        return float(total / count) if count else None

    names = p.communities
    (ever_sum, ever_n), (never_sum, never_n) = totals.gap
    gap = (mean(ever_sum, ever_n) - mean(never_sum, never_n)
           if ever_n and never_n else None)
    return {
        "att_from_month_after_joining": mean(totals.after_sum.sum(), totals.after_n.sum()),
        "att_from_month_after_joining_by_community": {
            name: mean(totals.after_sum[c], totals.after_n[c]) for c, name in enumerate(names)},
        "att_per_member_month": mean(totals.lift_sum.sum(), totals.lift_n.sum()),
        "att_by_community": {name: mean(totals.lift_sum[c], totals.lift_n[c])
                             for c, name in enumerate(names)},
        "member_months": int(totals.lift_n.sum()),
        "member_months_by_community": {name: int(totals.lift_n[c])
                                       for c, name in enumerate(names)},
        "lift_revenue_by_community": {name: float(totals.lift_sum[c])
                                      for c, name in enumerate(names)},
        "naive_gap_per_month": gap,
        "ever_member_share": totals.ever_members / n_customers,
    }


def _membership(totals: _Totals) -> dict[str, Any]:
    n_rows = max(int(totals.member_rows.sum()), 1)
    with_id, email_only, prospects = (int(v) for v in totals.member_rows)
    return {"rows": int(totals.member_rows.sum()), "share_with_customer_id": with_id / n_rows,
            "share_email_only": email_only / n_rows, "share_prospects": prospects / n_rows,
            "customers_joined_before_first_seen": totals.joined_before}


# ``NEVER`` is re-exported for callers comparing churn days of chunked worlds.
__all__ = ["DEFAULT_CHUNK", "NEVER", "write_world_chunked"]
