"""Every bad-input class of the contract: a clear error naming table, column, rule, row count
and examples; the CLI prints it without a traceback and exits 2."""

from __future__ import annotations

import pandas as pd
import pytest

from connectors import open_source
from roi.cli import main
from roi.data import DataOptions, DataValidationError, SourceError, load_dataset


def problems_of(frames, options=None):
    with pytest.raises(DataValidationError) as caught:
        load_dataset(open_source(frames), options)
    return caught.value.problems


def only(problems, rule_fragment):
    matching = [p for p in problems if rule_fragment in p.rule]
    assert len(matching) == 1, [str(p) for p in problems]
    return matching[0]


def test_missing_required_column(tiny):
    tiny["orders"] = tiny["orders"].drop(columns=["revenue"])
    problem = only(problems_of(tiny), "missing required column")
    assert (problem.table, problem.column) == ("orders", "revenue")
    assert problem.found == ("currency", "customer_id", "order_date", "order_id")
    assert str(problem) == ("orders.revenue: missing required column; columns found: "
                            "currency, customer_id, order_date, order_id")


def test_members_need_customer_id_or_email(tiny):
    tiny["members"] = tiny["members"].drop(columns=["customer_id", "email"])
    problem = only(problems_of(tiny), "missing required column")
    assert (problem.table, problem.column) == ("members", "customer_id or email")


def test_unparsable_date(tiny):
    tiny["orders"].loc[[1, 3], "order_date"] = ["2024-13-45", "yesterday"]
    problem = only(problems_of(tiny), "unparsable date")
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "order_date", 2)
    assert set(problem.examples) == {"o2 2024-13-45", "o4 yesterday"}


def test_non_numeric_amount_and_nan(tiny):
    tiny["orders"].loc[[0, 2, 4], "revenue"] = ["12,50", "n/a", "NaN"]
    problem = only(problems_of(tiny), "non-numeric amount")
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "revenue", 3)
    assert "o1 12,50" in problem.examples


@pytest.mark.parametrize(("table", "column"), [("ad_spend", "spend"),
                                               ("community_costs", "cost")])
def test_negative_spend_or_cost(tiny, table, column):
    tiny[table].loc[0, column] = "-3"
    problem = only(problems_of(tiny), "negative")
    assert (problem.table, problem.column, problem.n_rows) == (table, column, 1)
    assert "-3.0" in problem.examples[0]


def test_duplicate_customer_id(tiny):
    tiny["customers"].loc[1, "customer_id"] = "A"
    problem = only(problems_of(tiny), "duplicate customer_id")
    assert (problem.table, problem.column, problem.n_rows) == ("customers", "customer_id", 2)
    assert problem.examples == ("A", "A")


def test_empty_customer_id(tiny):
    tiny["customers"].loc[2, "customer_id"] = "  "
    problem = only(problems_of(tiny), "empty value")
    assert (problem.table, problem.column, problem.n_rows) == ("customers", "customer_id", 1)


def test_order_for_unknown_customer_and_its_exclusion(tiny):
    extra = pd.DataFrame({"order_id": ["x1", "x2"], "customer_id": ["ZZ", "ZZ"],
                          "order_date": ["2024-02-01"] * 2, "revenue": ["1", "2"],
                          "currency": ["USD"] * 2})
    tiny["orders"] = pd.concat([tiny["orders"], extra], ignore_index=True)
    problem = only(problems_of(tiny), "unknown customer")
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "customer_id", 2)
    assert problem.examples == ("ZZ", "ZZ")
    dataset = load_dataset(open_source(tiny), DataOptions(exclude=("orders_unknown_customer",)))
    assert dataset.report["excluded"]["orders_unknown_customer"] == 2
    assert dataset.report["orders"] == 7


def test_order_after_churn_and_its_exclusion(tiny):
    tiny["orders"].loc[4, "order_date"] = "2024-03-25"         # B churned 2024-03-20
    problem = only(problems_of(tiny), "after the customer's churned_at")
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "order_date", 1)
    assert problem.examples == ("B 2024-03-25 2024-03-20",)
    dataset = load_dataset(open_source(tiny), DataOptions(exclude=("orders_after_churn",)))
    assert dataset.report["excluded"]["orders_after_churn"] == 1
    assert dataset.report["orders"] == 6


def test_churned_before_first_seen(tiny):
    tiny["customers"].loc[3, "churned_at"] = "2023-06-01"
    problem = only(problems_of(tiny), "churned_at before first_seen")
    assert (problem.table, problem.column, problem.n_rows) == ("customers", "churned_at", 1)
    assert problem.examples == ("D 2024-01-01 2023-06-01",)


def test_member_without_customer_id_and_email(tiny):
    tiny["members"].loc[[0, 3], "customer_id"] = None
    problem = only(problems_of(tiny), "without customer_id and without email")
    assert (problem.table, problem.n_rows) == ("members", 2)
    assert problem.examples[0] == "m1 discord 2024-02-10"


def test_more_than_one_currency(tiny):
    tiny["orders"].loc[[2, 5], "currency"] = "EUR"
    problem = only(problems_of(tiny), "more than one currency")
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "currency", 2)
    assert problem.examples == ("EUR", "EUR")


def test_empty_required_table(tiny):
    tiny["members"] = tiny["members"].iloc[0:0]
    problem = only(problems_of(tiny), "required table is empty")
    assert problem.table == "members"


def test_missing_required_table(tiny):
    del tiny["members"]
    problem = only(problems_of(tiny), "required table is missing")
    assert problem.table == "members"


def test_all_problems_reported_at_once(tiny):
    tiny["customers"].loc[1, "customer_id"] = "A"
    tiny["ad_spend"].loc[0, "spend"] = "-1"
    tiny["orders"].loc[[2, 5], "currency"] = "EUR"
    rules = {p.rule for p in problems_of(tiny)}
    assert {"duplicate customer_id", "negative spend (must be >= 0)"} <= rules
    assert any("currency" in r for r in rules)


def test_emails_never_in_errors(tiny):
    tiny["members"].loc[[0, 3], "customer_id"] = None
    tiny["members"].loc[0, "joined_at"] = "not a date"
    with pytest.raises(DataValidationError) as caught:
        load_dataset(open_source(tiny))
    assert "@" not in str(caught.value)


def _write(folder, frames):
    folder.mkdir(exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_unreadable_file(tmp_path, tiny):
    folder = _write(tmp_path / "src", tiny)
    (folder / "orders.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SourceError, match="orders: cannot read orders.csv"):
        open_source(folder)


def test_empty_file(tmp_path, tiny):
    folder = _write(tmp_path / "src", tiny)
    (folder / "orders.csv").write_bytes(b"")
    with pytest.raises(SourceError, match="orders: orders.csv is an empty file"):
        open_source(folder)


def test_header_only_file_is_an_empty_table(tmp_path, tiny):
    tiny["orders"] = tiny["orders"].iloc[0:0]
    folder = _write(tmp_path / "src", tiny)
    with pytest.raises(DataValidationError, match="orders.*required table is empty"):
        load_dataset(open_source(folder))


def test_cli_reports_without_traceback(tmp_path, tiny, capsys):
    tiny["orders"].loc[1, "order_date"] = "2024-13-45"
    folder = _write(tmp_path / "src", tiny)
    assert main(["validate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "orders.order_date: unparsable date" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "source folder not found" in capsys.readouterr().err


def test_csv_header_names_are_normalised(tmp_path, tiny):
    tiny["orders"] = tiny["orders"].rename(columns={"revenue": " Revenue ",
                                                    "order_date": "ORDER_DATE"})
    folder = _write(tmp_path / "src", tiny)
    dataset = load_dataset(open_source(folder))
    assert dataset.report["orders"] == 7
