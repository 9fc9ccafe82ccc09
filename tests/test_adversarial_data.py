"""Adversarial data (issue 14): what real exports do to a world from ``roi.simulate``, and the
right numbers coming out. Nothing is lost without a counted reason: every case also checks the
row accounting (``data.row_accounting``: read = used + excluded, per table).

Data-layer functions only (``load_dataset`` and the three aggregations), no models, except the
naive comparison, which is arithmetic."""

from __future__ import annotations

import pandas as pd
import pytest

from connectors import open_source
from roi.data import DataOptions, load_dataset
from roi.data.errors import DataValidationError
from roi.paid_media.block import community_costs as _community_costs

N_CUSTOMERS = 1500


@pytest.fixture(scope="module")
def world_tables() -> dict[str, pd.DataFrame]:
    from roi.simulate import simulate_world

    return simulate_world(n_customers=N_CUSTOMERS, seed=5).tables


@pytest.fixture
def tables(world_tables) -> dict[str, pd.DataFrame]:
    """A fresh copy per test: cases change the tables."""
    return {name: frame.copy() for name, frame in world_tables.items()}


@pytest.fixture(scope="module")
def baseline(world_tables):
    dataset = load_dataset(open_source({k: v.copy() for k, v in world_tables.items()}))
    return {"dataset": dataset, "weekly": dataset.weekly_series(),
            "panel": dataset.customer_month_panel()}


def load(tables, **options):
    dataset = load_dataset(open_source(tables), DataOptions(**options) if options else None)
    assert_balanced(dataset)
    return dataset


def assert_balanced(dataset) -> None:
    """Every row read is used or excluded with a reason, and data.excluded says so."""
    accounting = dataset.report["row_accounting"]
    for table, entry in accounting.items():
        assert entry["read"] == entry["used"] + sum(entry["excluded"].values()), (table, entry)
        for reason, count in entry["excluded"].items():
            assert reason.startswith(table + "_") and count > 0
            assert dataset.report["excluded"][reason] == count
    assert not [n for n in dataset.report["notes"] if n.startswith("row accounting")]


def naive_gap(panel: pd.DataFrame) -> float:
    from roi.revenue_lift.naive_revenue import NaiveRevenueGap

    active = panel[panel["active"]]
    return NaiveRevenueGap().fit(active, group="community").result_.estimate


# --------------------------------------------------------------------- the items


def test_costs_booked_on_one_date_add_up(tables, baseline):
    """Item 1: a second staff row on the same date (period inside the window) adds its cost."""
    costs = tables["community_costs"]
    row = costs[(costs.community == "discord") & (costs.category == "staff")
                & (costs.date == "2024-03-01")]
    assert len(row) == 1
    tables["community_costs"] = pd.concat([costs, row.assign(cost=12_345.0)], ignore_index=True)
    weekly = load(tables).weekly_series()
    before = baseline["weekly"].cost["discord"].sum()
    assert weekly.cost["discord"].sum() == pytest.approx(before + 12_345.0, abs=1e-6)
    assert weekly.cost["forum"].sum() == pytest.approx(baseline["weekly"].cost["forum"].sum())


def test_merged_communities_keep_both_costs(tables, baseline):
    """Item 1: two communities renamed into one cost what both did."""
    tables["community_costs"]["community"] = "hub"
    costs = _community_costs(load(tables).weekly_series())
    expected = baseline["weekly"].cost.sum().sum()
    assert costs["hub"] == pytest.approx(expected, abs=1e-6)
    assert expected > 80_000


def test_cost_of_a_community_without_activity_or_members_is_reported(tables, baseline):
    """Item 2: forum without activity rows keeps its cost; a cost-only community is reported
    with its cost, a data note, and a comparison row saying no revenue is estimated."""
    from roi.comparison import build_comparison

    tables["activity"] = tables["activity"][tables["activity"].community != "forum"]
    podcast = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-02-01"]),
                            "community": ["podcast", "podcast"], "category": ["staff"] * 2,
                            "cost": [1000.0, 1000.0]})
    tables["community_costs"] = pd.concat([tables["community_costs"], podcast],
                                          ignore_index=True)
    dataset = load(tables)
    costs = _community_costs(dataset.weekly_series())
    assert costs["forum"] == pytest.approx(baseline["weekly"].cost["forum"].sum())
    assert costs["forum"] > 25_000
    assert costs["podcast"] == pytest.approx(2000.0)     # Jan and Feb, both inside the window
    assert any("podcast has cost rows but no linked member" in n
               for n in dataset.report["notes"])
    rows = {r["name"]: r for r in build_comparison({"data": {"community_costs": costs}})}
    assert rows["podcast"]["cost"] == pytest.approx(2000.0) and rows["podcast"]["notes"]


def test_orders_before_first_seen_are_kept(tables, baseline):
    """Item 3: first_seen moved 60 days after the first order for a third of the customers:
    their life starts at the first order, so the panel keeps all revenue."""
    orders, customers = tables["orders"], tables["customers"]
    first_order = orders.groupby("customer_id").order_date.min()
    moved = customers.customer_id.isin(first_order.index) & (customers.index % 3 == 0)
    shifted = customers.loc[moved, "customer_id"].map(first_order) + pd.Timedelta(days=60)
    customers.loc[moved, "first_seen"] = shifted
    customers["churned_at"] = customers["churned_at"].where(
        customers["churned_at"].isna() | (customers["churned_at"] >= customers["first_seen"]),
        customers["first_seen"] + pd.Timedelta(days=1))
    tables["orders"] = orders[orders.order_date <= orders.customer_id.map(
        customers.set_index("customer_id").churned_at).fillna(pd.Timestamp.max)]
    dataset = load(tables)
    panel = dataset.customer_month_panel()
    assert panel.revenue.sum() == pytest.approx(tables["orders"].revenue.sum(), abs=1e-4)
    assert dataset.report["first_seen_from_orders"] == int(moved.sum())


def test_exact_duplicate_orders_are_merged_and_counted(tables, baseline):
    """Item 4: a CRM re-export repeats 500 orders: they count once, and are counted."""
    orders = tables["orders"]
    tables["orders"] = pd.concat([orders, orders.sample(500, random_state=1)],
                                 ignore_index=True)
    dataset = load(tables)
    assert dataset.report["excluded"]["orders_duplicate_row"] == 500
    assert dataset.report["orders"] == len(orders)
    panel = dataset.customer_month_panel()
    assert panel.revenue.sum() == pytest.approx(baseline["panel"].revenue.sum(), abs=1e-4)
    assert naive_gap(panel) == pytest.approx(naive_gap(baseline["panel"]), rel=1e-12)


def test_conflicting_duplicate_order_ids_are_refused(tables):
    """Item 4: one order_id on two different sales is refused, naming the ids."""
    orders = tables["orders"]
    clash = orders.iloc[[10, 11]].assign(order_id=orders.order_id.iloc[10])
    tables["orders"] = pd.concat([orders.drop(index=[10, 11]), clash], ignore_index=True)
    with pytest.raises(DataValidationError) as error:
        load_dataset(open_source(tables))
    [problem] = error.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "order_id", 2)
    assert orders.order_id.iloc[10] in " ".join(problem.examples)


def test_spend_in_partial_edge_weeks_is_kept(tables, baseline):
    """Item 7: monthly spend rows dated the 1st (2023-01-01 is a Sunday, in a partial week)."""
    spend = tables["ad_spend"]
    spend["month"] = spend.date.dt.to_period("M").dt.to_timestamp()
    monthly = spend.groupby(["month", "channel"], as_index=False).spend.sum()
    monthly = monthly.rename(columns={"month": "date"})
    tables["ad_spend"] = monthly
    weekly = load(tables).weekly_series()
    raw = monthly.groupby("channel").spend.sum()
    for channel in raw.index:
        assert weekly.spend[channel].sum() == pytest.approx(raw[channel], abs=1e-6)
    first_week = weekly.spend.index[0]
    assert first_week == pd.Timestamp("2023-01-02")
    january = monthly[monthly.date == "2023-01-01"].set_index("channel").spend
    assert weekly.spend.loc[first_week].to_dict() == pytest.approx(january.to_dict())


def test_members_joining_after_the_window_are_non_members(tables, baseline):
    """Item 9: 40 never-members join after the window's end: counted, and non-members in the
    panel, the survival table and the naive comparison alike."""
    life = baseline["panel"].groupby("customer_id", observed=True).join_month_index.first()
    never = life[life.isna()].index[:40]
    late = pd.DataFrame({"member_id": [f"late-{i}" for i in range(40)], "community": "discord",
                         "customer_id": never, "joined_at": pd.Timestamp("2025-02-01")})
    tables["members"] = pd.concat([tables["members"], late], ignore_index=True)
    dataset = load(tables)
    assert dataset.report["excluded"]["members_joined_after_window"] == 40
    panel = dataset.customer_month_panel()
    assert panel[panel.customer_id.isin(never)].join_month_index.isna().all()
    survival = dataset.survival_table()
    assert survival[survival.customer_id.isin(never)].community.isna().all()
    assert naive_gap(panel) == pytest.approx(naive_gap(baseline["panel"]), rel=1e-12)


# --------------------------------------------------------------------- row accounting


def test_row_accounting_of_the_sample():
    from tests.conftest import SAMPLE

    dataset = load_dataset(open_source(SAMPLE))
    assert_balanced(dataset)
    accounting = dataset.report["row_accounting"]
    assert set(accounting) == {"customers", "orders", "members", "activity", "ad_spend",
                               "community_costs"}
    raw = {p.stem: len(pd.read_csv(p)) for p in SAMPLE.glob("*.csv")}
    assert {t: e["read"] for t, e in accounting.items()} == raw
    assert accounting["members"]["excluded"] == {
        "members_unlinked": dataset.report["identity"]["unlinked"]}


def test_row_accounting_with_every_kind_of_awkward_row(tables, baseline):
    """Each awkward kind planted in known numbers lands under its own reason."""
    orders, customers, members = tables["orders"], tables["customers"], tables["members"]
    churned = customers.dropna(subset=["churned_at"]).iloc[:5]
    after_churn = pd.DataFrame({"order_id": [f"late-{i}" for i in range(5)],
                                "customer_id": churned.customer_id.to_numpy(),
                                "order_date": (churned.churned_at + pd.Timedelta(days=3))
                                .to_numpy(), "revenue": 10.0, "currency": "USD",
                                "channel": "direct"})
    after_churn = after_churn[after_churn.order_date <= orders.order_date.max()]
    unknown = orders.iloc[:3].assign(customer_id="NOBODY", order_id=["u1", "u2", "u3"])
    tables["orders"] = pd.concat([orders, orders.iloc[:7], after_churn, unknown],
                                 ignore_index=True)
    stranger = members.iloc[:4].assign(customer_id=None, email="nobody@example.com",
                                       member_id=["s1", "s2", "s3", "s4"])
    gone = churned.iloc[:2]
    after = pd.DataFrame({"member_id": ["g1", "g2"], "community": "forum",
                          "customer_id": gone.customer_id.to_numpy(),
                          "joined_at": (gone.churned_at + pd.Timedelta(days=1)).to_numpy()})
    future = members.iloc[:1].assign(member_id="f1", joined_at=pd.Timestamp("2025-03-01"))
    tables["members"] = pd.concat([members, members.iloc[:2], stranger, after, future],
                                  ignore_index=True)
    activity = tables["activity"]
    tables["activity"] = pd.concat([activity, activity.iloc[:6].assign(
        member_id="ghost", customer_id="ghost-customer"), activity.iloc[:2].assign(
        date=pd.Timestamp("2023-01-01"))], ignore_index=True)
    spend = tables["ad_spend"]
    tables["ad_spend"] = pd.concat([spend, spend.iloc[:3].assign(
        date=pd.Timestamp("2022-11-07"))], ignore_index=True)
    tables["community_costs"] = pd.concat([tables["community_costs"], pd.DataFrame({
        "date": pd.to_datetime(["2024-05-01", "2021-01-01"]), "community": ["podcast", "old"],
        "category": "staff", "cost": [500.0, 700.0]})], ignore_index=True)
    first_order = orders.groupby("customer_id").order_date.min()
    late_start = customers.churned_at.isna() & customers.customer_id.isin(first_order.index)
    late_start &= late_start.cumsum() <= 10            # ten customers first seen a month late
    customers.loc[late_start, "first_seen"] = (customers.loc[late_start, "customer_id"]
                                               .map(first_order) + pd.Timedelta(days=30))
    dataset = load(tables, exclude=("orders_unknown_customer", "orders_after_churn"))
    assert dataset.report["first_seen_from_orders"] == 10
    excluded = dataset.report["excluded"]
    assert {k: excluded.get(k) for k in (
        "orders_duplicate_row", "orders_unknown_customer", "orders_after_churn",
        "members_duplicate_row", "members_unlinked", "members_joined_after_window",
        "members_joined_after_churn", "ad_spend_outside_window",
        "community_costs_outside_window")} == {
        "orders_duplicate_row": 7, "orders_unknown_customer": 3,
        "orders_after_churn": len(after_churn), "members_duplicate_row": 2,
        "members_unlinked": dataset.report["identity"]["unlinked"],
        "members_joined_after_window": 1, "members_joined_after_churn": 2,
        "ad_spend_outside_window": 3, "community_costs_outside_window": 1}
    assert len(after_churn) >= 3
    assert excluded["members_unlinked"] >= 4 + 32       # the world's own unlinked rows
    # Activity of unknown members is community activity: used; 2023-01-01 is a partial week.
    edges = baseline["dataset"].report["excluded"]["activity_outside_complete_weeks"]
    assert excluded["activity_outside_complete_weeks"] == edges + 2
    assert dataset.report["row_accounting"]["activity"]["used"] == len(activity) - edges + 6


def test_data_quality_section_shows_the_row_accounting(tmp_path):
    """The report's Data quality section has the table; its numbers are keyed to results."""
    from roi.reports import write_html
    from tests.conftest import tiny_frames
    from tests.test_reports import SAMPLE_RESULTS, parse, resolve

    results = {**SAMPLE_RESULTS, "data": {**SAMPLE_RESULTS["data"], **load_dataset(
        open_source(tiny_frames())).report}}
    page = parse(write_html(results, tmp_path / "report.html"))
    keyed = {n["key"]: n["text"] for n in page.numbers if ".row_accounting." in n["key"]}
    assert keyed["data.row_accounting.ad_spend.read"] == "4"
    assert keyed["data.row_accounting.ad_spend.used"] == "1"
    assert len(keyed) == 12 and all(str(resolve(results, k)) == v for k, v in keyed.items())
    text = " ".join("".join(page.text).split())
    assert "Row accounting" in text and "outside window 3" in text


# --------------------------------------------------------------------- what real exports do


def test_refunds_as_negative_rows_with_the_sale_order_id(tables, baseline):
    """Shopify-style refunds: a negative row carrying the sale's order_id, ten days later.
    Both count (the month of the refund loses the money); nothing is taken for a duplicate."""
    orders, customers = tables["orders"], tables["customers"]
    alive = customers.loc[customers.churned_at.isna(), "customer_id"]
    sales = orders[orders.customer_id.isin(alive)
                   & (orders.order_date < "2024-11-01")].iloc[::50]
    refunds = sales.assign(revenue=-(sales.revenue / 2).round(2),
                           order_date=sales.order_date + pd.Timedelta(days=10))
    tables["orders"] = pd.concat([orders, refunds], ignore_index=True)
    dataset = load(tables)
    assert "orders_duplicate_row" not in dataset.report["excluded"]
    panel = dataset.customer_month_panel()
    assert panel.revenue.sum() == pytest.approx(
        baseline["panel"].revenue.sum() + refunds.revenue.sum(), abs=1e-4)
    assert refunds.revenue.sum() < -1000


def test_a_refund_booked_to_another_customer_is_refused(tables):
    orders = tables["orders"]
    refund = orders.iloc[[5]].assign(revenue=-10.0, customer_id=orders.customer_id.iloc[6])
    tables["orders"] = pd.concat([orders, refund], ignore_index=True)
    with pytest.raises(DataValidationError, match="same order_id differ"):
        load_dataset(open_source(tables))


def test_orders_without_order_id_are_never_merged(tables, baseline):
    """Without an order_id two equal rows may be two purchases: both count (contract §1)."""
    orders = tables["orders"].drop(columns="order_id")
    tables["orders"] = pd.concat([orders, orders.iloc[100:110]], ignore_index=True)
    dataset = load(tables)
    assert "orders_duplicate_row" not in dataset.report["excluded"]
    assert dataset.report["orders"] == len(orders) + 10


def test_member_list_re_exported_twice(tables, baseline):
    """A CRM that appends its member export again: every aggregation as before."""
    members = tables["members"]
    tables["members"] = pd.concat([members, members], ignore_index=True)
    dataset = load(tables)
    assert dataset.report["excluded"]["members_duplicate_row"] == len(members)
    assert dataset.report["identity"] == baseline["dataset"].report["identity"]
    pd.testing.assert_frame_equal(dataset.weekly_series().members,
                                  baseline["weekly"].members)
    pd.testing.assert_frame_equal(dataset.customer_month_panel(), baseline["panel"])


def test_costs_booked_weekly_for_one_category_monthly_for_the_others(tables, baseline):
    """The platform bill of discord re-booked as rows on the 1st, 8th, 15th, 22nd and 29th with
    amounts in proportion to their days: the same daily cost, so the same weekly series."""
    costs = tables["community_costs"]
    monthly = costs[(costs.community == "discord") & (costs.category == "platform")]
    rows = []
    for _, row in monthly.iterrows():
        days = row.date.days_in_month
        starts = [d for d in (1, 8, 15, 22, 29) if d <= days]
        for start, following in zip(starts, [*starts[1:], days + 1], strict=True):
            rows.append({**row, "date": row.date.replace(day=start),
                         "cost": row.cost * (following - start) / days})
    tables["community_costs"] = pd.concat([costs.drop(index=monthly.index), pd.DataFrame(rows)],
                                          ignore_index=True)
    weekly = load(tables).weekly_series()
    # The last booking of a series covers as long as the one before it (a month, or a week):
    # December 2024 is spread differently by construction, everything before is the same.
    before = weekly.cost.index < "2024-11-25"
    pd.testing.assert_frame_equal(weekly.cost[before], baseline["weekly"].cost[before],
                                  atol=1e-6)
    assert weekly.cost["discord"].sum() == pytest.approx(baseline["weekly"].cost["discord"]
                                                         .sum(), rel=2e-3)


def test_community_renamed_mid_window_with_other_case_and_spaces(tables, baseline):
    """From July 2024 the exports spell discord " Discord ": still one community."""
    for name, column in (("members", "joined_at"), ("activity", "date"),
                         ("community_costs", "date")):
        frame = tables[name]
        late = (frame.community == "discord") & (frame[column] >= "2024-07-01")
        assert late.any()
        frame.loc[late, "community"] = " Discord "
    dataset = load(tables)
    assert dataset.report["communities"] == ["discord", "forum"]
    assert any("'discord', 'Discord'" in n for n in dataset.report["notes"])
    weekly = dataset.weekly_series()
    for part in ("members", "activity", "cost"):
        pd.testing.assert_frame_equal(getattr(weekly, part), getattr(baseline["weekly"], part))
    pd.testing.assert_frame_equal(dataset.customer_month_panel(), baseline["panel"])


def test_spend_in_a_channel_never_seen_in_orders(tables, baseline):
    """A podcast channel with spend but no attributed orders: its spend is kept in full, and no
    order becomes paid because of it."""
    weeks = pd.date_range("2023-01-02", "2024-12-23", freq="W-MON")
    podcast = pd.DataFrame({"date": weeks, "channel": "podcast", "campaign": "pod",
                            "spend": 250.0, "impressions": 0, "clicks": 0})
    tables["ad_spend"] = pd.concat([tables["ad_spend"], podcast], ignore_index=True)
    dataset = load(tables)
    assert dataset.weekly_series().spend["podcast"].sum() == pytest.approx(250.0 * len(weeks))
    panel = dataset.customer_month_panel()
    pd.testing.assert_series_equal(panel.organic_revenue, baseline["panel"].organic_revenue)


def test_member_row_of_a_customer_who_churned_before_joining(tables, baseline):
    """A former customer joins the forum after churning: counted, and a non-member for the
    panel, the survival table and the naive comparison."""
    panel = baseline["panel"]
    firsts = panel.groupby("customer_id", observed=True).agg(
        joined=("join_month_index", "first"), churned=("churned", "any"))
    gone = firsts[firsts.joined.isna() & firsts.churned].index[:12]
    churn = tables["customers"].set_index("customer_id").churned_at[gone]
    late = pd.DataFrame({"member_id": [f"back-{i}" for i in range(12)], "community": "forum",
                         "customer_id": gone, "joined_at": (churn + pd.Timedelta(days=2))
                         .to_numpy()})
    late = late[late.joined_at <= "2024-12-31"]
    tables["members"] = pd.concat([tables["members"], late], ignore_index=True)
    dataset = load(tables)
    assert dataset.report["excluded"]["members_joined_after_churn"] == len(late) >= 10
    panel = dataset.customer_month_panel()
    assert panel[panel.customer_id.isin(gone)].join_month_index.isna().all()
    survival = dataset.survival_table()
    assert not survival[survival.customer_id.isin(gone)].member.any()
    assert survival[survival.customer_id.isin(gone)].community.isna().all()
    assert naive_gap(panel) == pytest.approx(naive_gap(baseline["panel"]), rel=1e-12)


def test_window_cut_short_counts_what_falls_outside(tables):
    """``[data] end`` at mid-2024: later customers and orders are counted, not lost."""
    end = pd.Timestamp("2024-06-30")
    dataset = load(tables, end=end.date())
    customers, orders = tables["customers"], tables["orders"]
    excluded = dataset.report["excluded"]
    assert excluded["customers_first_seen_after_window"] == int((customers.first_seen > end)
                                                                .sum())
    assert excluded["orders_outside_complete_months"] == int((orders.order_date > end).sum())
    spend = tables["ad_spend"]
    assert excluded["ad_spend_outside_window"] == int((spend.date > end).sum())
    assert dataset.customer_month_panel().revenue.sum() == pytest.approx(
        orders.loc[orders.order_date <= end, "revenue"].sum(), abs=1e-4)


def test_activity_of_members_nobody_knows_is_community_activity(tables, baseline):
    """Posts by a handle missing from the member list still count as the community's activity
    (and as one more active member that week); they are not linked to any customer."""
    activity = tables["activity"]
    ghosts = activity[activity.date == "2024-03-05"].assign(member_id="ghost", customer_id="")
    tables["activity"] = pd.concat([activity, ghosts.dropna(axis=1, how="all")],
                                   ignore_index=True)
    weekly = load(tables).weekly_series()
    week = pd.Timestamp("2024-03-04")
    for community, rows in ghosts.groupby("community"):
        assert weekly.activity.loc[week, community] == pytest.approx(
            baseline["weekly"].activity.loc[week, community] + rows["count"].sum())
        assert weekly.active_members.loc[week, community] == pytest.approx(
            baseline["weekly"].active_members.loc[week, community] + 1)


def test_blank_and_missing_cost_category_are_one_booking(tables, baseline):
    """A cost re-booked with an empty category on the date of one without: both add."""
    costs = tables["community_costs"]
    extra = pd.DataFrame({"date": pd.to_datetime(["2024-04-01", "2024-04-01"]),
                          "community": ["forum", "forum"], "category": [None, ""],
                          "cost": [300.0, 200.0]})
    tables["community_costs"] = pd.concat([costs, extra], ignore_index=True)
    weekly = load(tables).weekly_series()
    assert weekly.cost["forum"].sum() == pytest.approx(
        baseline["weekly"].cost["forum"].sum() + 500.0, abs=1e-6)
