"""The three in-database aggregations against values worked out by hand (tests/conftest.py
``tiny_frames`` documents the tables; the arithmetic is in the comments)."""

from __future__ import annotations

import pandas as pd
import pytest

from connectors import open_source
from roi.data import load_dataset


@pytest.fixture
def dataset(tiny):
    return load_dataset(open_source(tiny))


def _rows(panel: pd.DataFrame, customer: str) -> pd.DataFrame:
    return panel[panel.customer_id == customer].set_index(panel.month.dt.strftime("%Y-%m")
                                                          [panel.customer_id == customer])


def test_window_and_report(dataset):
    report = dataset.report
    assert (report["start"], report["end"]) == ("2024-01-12", "2024-04-30")
    assert (report["customers"], report["orders"], report["members"]) == (4, 7, 4)
    assert report["identity"] == {"member_rows": 4, "linked_by_customer_id": 2,
                                  "linked_by_email": 1, "unlinked": 1, "link_rate": 0.75}
    assert report["members_before_customer"] == 1          # C joined the forum before buying
    # o1 (01-12) is in January, a partial month; three ad_spend rows predate the window.
    assert report["excluded"] == {"members_unlinked": 1, "orders_outside_complete_months": 1,
                                  "ad_spend_outside_window": 3}
    assert report["row_accounting"] == {
        "customers": {"read": 4, "used": 4, "excluded": {}},
        "orders": {"read": 7, "used": 6, "excluded": {"orders_outside_complete_months": 1}},
        "members": {"read": 4, "used": 3, "excluded": {"members_unlinked": 1}},
        "activity": {"read": 4, "used": 4, "excluded": {}},
        "ad_spend": {"read": 4, "used": 1, "excluded": {"ad_spend_outside_window": 3}},
        "community_costs": {"read": 2, "used": 2, "excluded": {}}}
    assert report["first_seen_from_orders"] == 0
    assert report["churn"] == {"rule": "column", "churned_customers": 2}
    assert report["covariates"] == {"segment": "categorical", "employees": "numeric"}


def test_panel_by_hand(dataset):
    panel = dataset.customer_month_panel()
    # Complete months of the window: Feb, Mar, Apr 2024 (January starts on the 12th).
    assert len(panel) == 9
    a = _rows(panel, "A")
    assert a.revenue.to_dict() == {"2024-02": 0.0, "2024-03": 50.5, "2024-04": 12.0}
    assert a.member.all() and a.active.all()
    assert a.months_since_join.tolist() == [0, 1, 2]
    assert set(a.community) == {"discord"} and set(a.n_communities) == {2}
    b = _rows(panel, "B")                                   # churned 2024-03-20
    assert b.revenue.tolist() == [20.0, 7.0]
    assert b.active.tolist() == [True, False] and b.churned.tolist() == [False, True]
    assert not b.member.any() and b.join_month_index.isna().all()
    c = _rows(panel, "C")            # first seen 02-15, linked by e-mail, joined before buying
    assert c.active.tolist() == [False, True, True]
    assert c.member.all() and c.months_since_join.tolist() == [0, 1, 2]
    assert c.revenue.tolist() == [0.0, -5.0, 0.0]
    d = _rows(panel, "D")                        # churned 02-29: Feb is not a whole month
    assert d.active.tolist() == [False] and d.churned.tolist() == [True]
    assert d.employees.tolist() == [40.0] and d.segment.tolist() == ["mid"]


def test_organic_revenue_leaves_out_orders_of_paid_channels(tiny):
    """Orders whose channel has ad spend are paid; any other channel (or none) is organic."""
    assert (load_dataset(open_source(tiny)).customer_month_panel()
            .eval("organic_revenue == revenue").all())      # no channel column: all organic
    tiny["orders"]["channel"] = ["direct", "search", "social", "email", None, "direct",
                                 "search"]
    panel = load_dataset(open_source(tiny)).customer_month_panel()
    a, b, c = (_rows(panel, name) for name in "ABC")
    assert a.organic_revenue.to_dict() == {"2024-02": 0.0, "2024-03": 0.0, "2024-04": 0.0}
    assert a.revenue.to_dict() == {"2024-02": 0.0, "2024-03": 50.5, "2024-04": 12.0}
    assert b.organic_revenue.tolist() == [0.0, 7.0]         # Feb's 20 came from social
    assert c.organic_revenue.tolist() == [0.0, -5.0, 0.0]   # "email" has no ad spend


def test_survival_by_hand(dataset):
    table = dataset.survival_table().set_index(["customer_id", "start"])
    expected = {
        ("A", 2): (31, 0, 0), ("A", 31): (112, 0, 1),      # joins on day 31, censored
        ("B", 23): (92, 1, 0),                             # enters late, churns day 91
        ("C", 0): (76, 0, 1),                              # member from first day
        ("D", 11): (60, 1, 0),
    }
    got = {key: (row.stop, row.event, row.member) for key, row in table.iterrows()}
    assert got == expected
    assert table.loc[("A", 31), "community"] == "discord"
    assert table.loc[("A", 2), "join_day"] == 31


def test_weekly_by_hand(dataset):
    weekly = dataset.weekly_series()
    totals = weekly.totals
    assert len(totals) == 15                       # Mondays 2024-01-15 .. 2024-04-22
    assert totals.revenue.sum() == pytest.approx(102.5)
    assert totals.loc["2024-01-29", "revenue"] == pytest.approx(50.0)
    assert totals.loc["2024-02-26", "revenue"] == pytest.approx(50.5)   # Sunday 03-03
    assert totals.active_customers.loc[["2024-01-15", "2024-02-26", "2024-03-04",
                                        "2024-03-25"]].tolist() == [3, 4, 3, 2]
    assert weekly.spend.loc["2024-03-04", "social"] == pytest.approx(5.5)
    assert weekly.members.loc["2024-02-19", "discord"] == 2
    assert weekly.members.loc["2024-02-26", "discord"] == 1
    assert weekly.members.loc["2024-03-04", "forum"] == 2
    assert weekly.active_members.loc["2024-02-12", "discord"] == 2
    assert weekly.activity.loc["2024-02-12", "discord"] == 4           # 2 + 1 + default 1
    cost = weekly.cost["discord"]
    assert cost.loc["2024-01-15"] == pytest.approx(70.0)
    assert cost.loc["2024-01-29"] == pytest.approx(30 + 4 * 290 / 31)
    assert cost.loc["2024-02-26"] == pytest.approx(6 * 290 / 31)
    assert cost.sum() == pytest.approx(170 + 290)


def test_inactivity_churn_rule(tiny):
    from roi.data import DataOptions

    tiny["customers"] = tiny["customers"].drop(columns=["churned_at"])
    dataset = load_dataset(open_source(tiny), DataOptions(inactivity_days=45))
    life = dataset.survival_table().groupby("customer_id").agg(stop=("stop", "max"),
                                                                event=("event", "max"))
    # Last orders: A 04-30, B 03-19, C 03-30, D 02-02; window end 04-30; lapsed if > 45 days.
    assert life.event.to_dict() == {"A": 0, "B": 0, "C": 0, "D": 1}
    assert life.loc["D", "stop"] == 33                   # 01-01 -> 02-02 is 32 days, +1
    assert dataset.report["churn"] == {"rule": "inactivity", "inactivity_days": 45,
                                       "churned_customers": 1}
