"""Files as real exports write them (issue 14, items 5, 6 and 8, and more cases of the same kind).

Each case asserts the right outcome: the exact values read (dates, counts, sums, notes) or the
exact refusal (table, column, rule, row count, example). Worlds are the hand-checked tiny tables
of ``tests.conftest.tiny_frames`` (seven orders worth 214.5), loaded with ``open_source`` and
``load_dataset``; nothing is fitted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from connectors import open_source
from roi.data import load_dataset
from roi.data.errors import DataValidationError, SourceError
from tests.conftest import tiny_frames

TOTAL_REVENUE = 214.5
UNPARSABLE = "unparsable date (expected YYYY-MM-DD)"
ORDER_DATES = [dt.date(2024, 1, 12), dt.date(2024, 3, 3), dt.date(2024, 2, 1),
               dt.date(2024, 3, 30), dt.date(2024, 3, 19), dt.date(2024, 2, 2),
               dt.date(2024, 4, 30)]


def _folder(path: Path, *, without: tuple[str, ...] = ()) -> Path:
    """The tiny tables as CSV, except those in ``without`` (the test writes them)."""
    path.mkdir(exist_ok=True)
    for name, frame in tiny_frames().items():
        if name not in without:
            frame.to_csv(path / f"{name}.csv", index=False)
    return path


def _orders() -> pd.DataFrame:
    """The tiny orders with typed dates (midnight) and numbers, as a spreadsheet holds them."""
    orders = tiny_frames()["orders"]
    return orders.assign(order_date=pd.to_datetime(orders["order_date"].str[:10]),
                         revenue=pd.to_numeric(orders["revenue"]))


def _typed(dataset, table: str, *columns: str) -> list[tuple]:
    """Typed rows of ``table``, ordered by their first column."""
    source = dataset.tables[table]
    query = sa.select(*(source.c[c] for c in columns)).order_by(source.c[columns[0]])
    with dataset.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def _problems(folder) -> list[tuple]:
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(folder))
    return [(p.table, p.column, p.rule, p.n_rows, p.examples) for p in err.value.problems]


# --- Item 5: every sheet of a workbook -------------------------------------------------------

def _workbook(path: Path, sheets: dict[str, list[list]]) -> None:
    """Sheets written cell by cell (rows of values; None = empty cell)."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)


def _rows(frame: pd.DataFrame) -> list[list]:
    return [list(frame.columns)] + [[None if pd.isna(v) else v for v in row]
                                    for row in frame.itertuples(index=False)]


def test_orders_split_over_two_year_sheets_are_stacked_and_counted(tmp_path):
    """Issue 14 item 5: the second sheet (57% of orders) used to be dropped silently."""
    folder = _folder(tmp_path, without=("orders",))
    orders = _orders()
    _workbook(folder / "orders.xlsx", {"2023": _rows(orders.iloc[:3]),
                                       "2024": _rows(orders.iloc[3:])})
    dataset = load_dataset(open_source(folder))
    assert dataset.report["orders"] == 7
    rows = _typed(dataset, "orders", "order_id", "order_date", "revenue")
    assert [r[0] for r in rows] == [f"o{i}" for i in range(1, 8)]
    assert [r[1] for r in rows] == ORDER_DATES
    assert sum(r[2] for r in rows) == pytest.approx(TOTAL_REVENUE)
    note = "orders.xlsx: 2 sheets stacked ('2023' 3, '2024' 4 rows; 7 in all)."
    assert dataset.source.notes == [note]
    assert note in dataset.report["notes"]   # results.json data.notes


def test_a_sheet_with_other_columns_is_refused_naming_file_sheet_and_columns(tmp_path):
    folder = _folder(tmp_path, without=("orders",))
    orders = _orders()
    later = orders.iloc[3:].drop(columns="currency").assign(coupon="SPRING")
    _workbook(folder / "orders.xlsx", {"2023": _rows(orders.iloc[:3]), "2024": _rows(later)})
    with pytest.raises(SourceError) as err:
        open_source(folder)
    assert str(err.value).startswith(
        "orders: orders.xlsx: sheet '2024' has other columns than sheet '2023' (without "
        "'currency'; with 'coupon' in addition)")


def test_a_summary_sheet_is_ignored_with_a_note(tmp_path):
    """A pivot sheet without the table's columns is not data of the table: ignored, said."""
    folder = _folder(tmp_path, without=("orders",))
    _workbook(folder / "orders.xlsx", {
        "Summary": [["month", "total"], ["2024-01", 100], ["2024-02", 50]],
        "orders": _rows(_orders()), "Sheet1": []})
    dataset = load_dataset(open_source(folder))
    assert dataset.report["orders"] == 7
    assert dataset.source.notes == [
        "orders.xlsx: sheet 'Summary' ignored: its header (month, total) lacks the table's "
        "required columns.",
        "orders.xlsx: sheet 'Sheet1' ignored: it is empty."]


def test_sheets_whose_headers_differ_in_case_spaces_and_order_are_stacked(tmp_path):
    folder = _folder(tmp_path, without=("orders",))
    orders = _orders()
    moved = orders.iloc[3:][["revenue", "order_date", "customer_id", "currency", "order_id"]]
    moved.columns = [" Revenue ", "ORDER_DATE", "Customer_ID", "currency", "order_id"]
    _workbook(folder / "orders.xlsx", {"east": _rows(orders.iloc[:3]), "west": _rows(moved)})
    dataset = load_dataset(open_source(folder))
    rows = _typed(dataset, "orders", "order_id", "customer_id", "order_date", "revenue")
    assert rows[5] == ("o6", "D", dt.date(2024, 2, 2), 30.0)
    assert sum(r[3] for r in rows) == pytest.approx(TOTAL_REVENUE)


def test_title_rows_above_the_header_and_merged_cells_are_read_as_shown(tmp_path):
    """An Excel report: a merged title, a blank row, the header, orders of one customer with
    the customer_id merged down, a blank row in the middle."""
    folder = _folder(tmp_path, without=("orders",))
    header = ["order_id", "customer_id", "order_date", "revenue", "currency"]
    data = [["o1", "A", dt.datetime(2024, 1, 12), 100, "USD"],
            ["o2", None, dt.datetime(2024, 3, 3, 10), 50.5, "USD"],
            ["o7", None, dt.datetime(2024, 4, 30), 12, "USD"],
            [None] * 5,
            ["o3", "B", dt.datetime(2024, 2, 1), 20, "USD"],
            ["o5", None, dt.datetime(2024, 3, 19), 7, "USD"],
            ["o4", "C", dt.datetime(2024, 3, 30), -5, "USD"],
            ["o6", "D", dt.datetime(2024, 2, 2), 30, "USD"]]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Orders report"
    sheet.append(["Orders export, all stores"])
    sheet.merge_cells("A1:E1")
    sheet.append([])
    sheet.append(header)
    for row in data:
        sheet.append(row)
    sheet.merge_cells("B4:B6")
    sheet.merge_cells("B8:B9")
    book.save(folder / "orders.xlsx")
    dataset = load_dataset(open_source(folder))
    rows = _typed(dataset, "orders", "order_id", "customer_id", "order_date", "revenue")
    assert [r[1] for r in rows] == ["A", "A", "B", "C", "B", "D", "A"]
    assert [r[2] for r in rows] == ORDER_DATES
    assert sum(r[3] for r in rows) == pytest.approx(TOTAL_REVENUE)
    assert dataset.source.notes == [
        "orders.xlsx sheet 'Orders report': skipped 1 row(s) above the header (a title or "
        "notes).",
        "orders.xlsx sheet 'Orders report': skipped 1 empty row(s).",
        "orders.xlsx sheet 'Orders report': 2 merged cell range(s) filled with their value."]


def test_a_merged_header_cell_is_a_duplicate_column_not_a_lost_one(tmp_path):
    folder = _folder(tmp_path, without=("orders",))
    rows = _rows(_orders())
    rows[0][4] = None   # 'revenue' merged over D1:E1: the currency column loses its name
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.active.merge_cells("D1:E1")
    book.save(folder / "orders.xlsx")
    with pytest.raises(SourceError, match=r"^orders: orders.xlsx sheet 'Sheet': duplicate "
                                          r"column 'revenue' in the header"):
        open_source(folder)


def test_a_column_with_values_but_no_header_is_refused(tmp_path):
    folder = _folder(tmp_path, without=("orders",))
    rows = _rows(_orders())
    rows[0][4] = None
    _workbook(folder / "orders.xlsx", {"orders": rows})
    with pytest.raises(SourceError, match=r"^orders: orders.xlsx sheet 'orders': column E has "
                                          r"values but no header name"):
        open_source(folder)


def test_excel_dates_real_text_and_serial_mixed_in_one_column(tmp_path):
    """Real date cells and ISO text load; the two serial numbers are refused, with examples."""
    folder = _folder(tmp_path, without=("orders",))
    rows = _rows(_orders())
    rows[2][2] = "2024-03-03 10:00:00"   # text
    rows[4][2] = 45382                   # 2024-03-30 as a serial number
    rows[7][2] = 45412.0                 # 2024-04-30
    _workbook(folder / "orders.xlsx", {"orders": rows})
    assert _problems(folder) == [("orders", "order_date", UNPARSABLE, 2,
                                  ("o4 45382", "o7 45412"))]


# --- Item 6: time-zone-aware timestamps give their local date --------------------------------

def _zoned_orders(zone: str, *, hour: int, minute: int = 0) -> pd.DataFrame:
    orders = _orders()
    local = orders["order_date"].dt.normalize() + pd.Timedelta(hours=hour, minutes=minute)
    return orders.assign(order_date=local.dt.tz_localize(zone))


def test_parquet_new_york_evening_orders_keep_their_day_and_do_not_pass_churn(tmp_path):
    """Issue 14 item 6: 21:30 in New York is the next day in UTC; D churned 2024-02-29 and
    ordered that evening, which the UTC date made an 'order after churn'."""
    folder = _folder(tmp_path, without=("orders",))
    orders = _zoned_orders("America/New_York", hour=21, minute=30)
    orders.loc[5, "order_date"] = pd.Timestamp("2024-02-29 21:30", tz="America/New_York")
    orders.to_parquet(folder / "orders.parquet", index=False)
    dataset = load_dataset(open_source(folder))
    dates = [r[1] for r in _typed(dataset, "orders", "order_id", "order_date")]
    assert dates == [*ORDER_DATES[:5], dt.date(2024, 2, 29), ORDER_DATES[6]]


@pytest.mark.parametrize(("zone", "hour"), [("Asia/Tokyo", 1), ("America/Los_Angeles", 23),
                                            ("+05:30", 2), ("UTC", 23)])
def test_one_parquet_per_region_gives_the_same_local_dates(tmp_path, zone, hour):
    """A timezone per region: each region's file keeps the dates written in its zone (Tokyo
    01:00 is the previous day in UTC, Los Angeles 23:00 the next)."""
    folder = _folder(tmp_path, without=("orders",))
    _zoned_orders(zone, hour=hour).to_parquet(folder / "orders.parquet", index=False)
    dataset = load_dataset(open_source(folder))
    assert [r[1] for r in _typed(dataset, "orders", "order_id", "order_date")] == ORDER_DATES


def test_parquet_naive_late_evening_timestamps_are_not_shifted(tmp_path):
    folder = _folder(tmp_path, without=("orders",))
    orders = _orders()
    orders["order_date"] = orders["order_date"] + pd.Timedelta(hours=23, minutes=59)
    orders.to_parquet(folder / "orders.parquet", index=False)
    dataset = load_dataset(open_source(folder))
    assert [r[1] for r in _typed(dataset, "orders", "order_id", "order_date")] == ORDER_DATES


def test_dataframe_with_zone_aware_column_gives_local_dates():
    frames = tiny_frames()
    frames["orders"] = _zoned_orders("America/New_York", hour=21, minute=30)
    dataset = load_dataset(open_source(frames))
    assert [r[1] for r in _typed(dataset, "orders", "order_id", "order_date")] == ORDER_DATES


def test_csv_offsets_of_two_regions_in_one_column_give_local_dates(tmp_path):
    """ISO strings with offsets: the date written, whatever the offset (New York evening,
    Tokyo morning); the same rule as Parquet."""
    folder = _folder(tmp_path, without=("orders",))
    orders = tiny_frames()["orders"]
    offsets = ["T21:30:00-05:00", "T08:00:00+09:00"] * 4
    orders["order_date"] = [d.isoformat() + off for d, off in zip(ORDER_DATES, offsets,
                                                                    strict=False)]
    orders.to_csv(folder / "orders.csv", index=False)
    dataset = load_dataset(open_source(folder))
    assert [r[1] for r in _typed(dataset, "orders", "order_id", "order_date")] == ORDER_DATES


# --- Item 8: a date is a date, not its first ten characters ----------------------------------

BAD_DATES = ["2023-01-083", "2024-01-12junk", "2024-01-12T25:00", "2024-01-12 10:00 EST",
             "2024-01-12Z", "2024-01-1210:00", "2024-01-12T10", "2024-01-12 / 2024-01-13"]
GOOD_DATES = ["2024-01-12T10:00:00.123Z", "2024-01-12 10:00", "2024-01-12T23:59:59+05:30",
              "2024-01-12 23:59:59 -0500", "2024-01-12 00:00:00.000", "2024-01-12T10:00+0100",
              "2024-01-12 10:00:00 UTC"]


def _with_first_date(folder: Path, value: str) -> Path:
    orders = tiny_frames()["orders"]
    orders.loc[0, "order_date"] = value
    orders.to_csv(folder / "orders.csv", index=False)
    return folder


@pytest.mark.parametrize("value", BAD_DATES)
def test_text_after_the_date_that_is_not_a_time_is_refused(tmp_path, value):
    folder = _with_first_date(_folder(tmp_path, without=("orders",)), value)
    assert _problems(folder) == [("orders", "order_date", UNPARSABLE, 1, (f"o1 {value}",))]


@pytest.mark.parametrize("value", GOOD_DATES)
def test_a_date_with_a_time_and_zone_gives_the_date_written(tmp_path, value):
    folder = _with_first_date(_folder(tmp_path, without=("orders",)), value)
    dataset = load_dataset(open_source(folder))
    assert _typed(dataset, "orders", "order_id", "order_date")[0] == ("o1", dt.date(2024, 1, 12))


@pytest.mark.postgres
def test_postgres_parses_the_same_dates(postgres_url):
    """The same strings in a PostgreSQL table: the same dates and the same refusals."""
    import uuid

    values = BAD_DATES + GOOD_DATES
    frames = tiny_frames()
    orders = pd.concat([frames["orders"].iloc[:1]] * len(values), ignore_index=True)
    orders["order_id"] = [f"x{i:02d}" for i in range(len(values))]
    orders["order_date"] = values
    frames["orders"] = orders
    schema = f"dates_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    for name, frame in frames.items():
        frame.to_sql(name, engine, schema=schema, index=False)
    engine.dispose()
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(postgres_url, schema=schema))
    [problem] = err.value.problems
    assert (problem.column, problem.rule, problem.n_rows) == ("order_date", UNPARSABLE,
                                                              len(BAD_DATES))
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(frames))
    [duck] = err.value.problems
    assert duck.n_rows == problem.n_rows and set(duck.examples) == set(problem.examples)


# --- More of what real exports do ------------------------------------------------------------

def test_bom_semicolons_and_crlf_from_excel_read_every_value(tmp_path):
    folder = _folder(tmp_path, without=("orders", "customers"))
    for name in ("orders", "customers"):
        text = tiny_frames()[name].to_csv(index=False, sep=";", lineterminator="\r\n")
        (folder / f"{name}.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    dataset = load_dataset(open_source(folder))
    rows = _typed(dataset, "orders", "order_id", "customer_id", "order_date", "revenue")
    assert [r[1] for r in rows] == ["A", "A", "B", "C", "B", "D", "A"]
    assert [r[2] for r in rows] == ORDER_DATES
    assert sum(r[3] for r in rows) == pytest.approx(TOTAL_REVENUE)
    assert dataset.report["customers"] == 4


def test_a_trailing_totals_row_is_refused_not_summed(tmp_path):
    folder = _folder(tmp_path)
    with (folder / "orders.csv").open("a") as handle:
        handle.write("Total,,,214.5,\n")
    assert _problems(folder) == [
        ("orders", "customer_id", "empty value in a required column", 1, ("Total",)),
        ("orders", "order_date", "empty value in a required column", 1, ("Total",))]


def test_header_in_other_case_with_spaces_is_the_canonical_header(tmp_path):
    folder = _folder(tmp_path, without=("orders",))
    text = tiny_frames()["orders"].to_csv(index=False).split("\n", 1)[1]
    (folder / "orders.csv").write_text(" ORDER_ID ,Customer_Id,  order_date,REVENUE ,Currency\n"
                                       + text)
    dataset = load_dataset(open_source(folder))
    rows = _typed(dataset, "orders", "order_id", "customer_id", "revenue", "currency")
    assert rows[0] == ("o1", "A", 100.0, "USD")
    assert sum(r[2] for r in rows) == pytest.approx(TOTAL_REVENUE)


def test_quoted_thousands_separator_is_refused_with_the_value(tmp_path):
    """'1,100.50' is 1100.5 in one locale and 1.1005 in another: refused, never guessed."""
    folder = _folder(tmp_path, without=("orders",))
    orders = tiny_frames()["orders"]
    orders.loc[0, "revenue"] = "1,100.50"
    orders.to_csv(folder / "orders.csv", index=False)
    assert '"1,100.50"' in (folder / "orders.csv").read_text()
    assert _problems(folder) == [("orders", "revenue", "non-numeric amount", 1,
                                  ("o1 1,100.50",))]


def test_parquet_epoch_integers_as_dates_are_refused(tmp_path):
    """Seconds, milliseconds or days since 1970 cannot be told apart: refused with values."""
    folder = _folder(tmp_path, without=("orders",))
    orders = _orders()
    epoch = orders["order_date"].astype("int64") // 10**9
    table = pa.Table.from_pandas(orders.assign(order_date=epoch), preserve_index=False)
    pq.write_table(table, folder / "orders.parquet")
    [problem] = _problems(folder)
    assert problem[:4] == ("orders", "order_date", UNPARSABLE, 7)
    assert problem[4][0] == "o1 1705017600"


def test_header_only_files(tmp_path):
    """A required table with a header and no rows is refused; an optional one loads empty."""
    folder = _folder(tmp_path)
    (folder / "ad_spend.csv").write_text("date,channel,spend\n")
    dataset = load_dataset(open_source(folder))
    assert dataset.report["other_tables"]["ad_spend"] == 0
    (folder / "orders.csv").write_text("order_id,customer_id,order_date,revenue,currency\r\n")
    assert _problems(folder) == [("orders", "*", "required table is empty", 0, ())]
