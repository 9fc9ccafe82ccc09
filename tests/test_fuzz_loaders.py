"""Fuzzing the loaders: random corruptions of valid tables never end in a traceback.

Each corrupted folder (a cell replaced by a hostile value, another encoding or delimiter, a
duplicated header, an empty or truncated file, random bytes, Parquet columns of other types,
Excel date serials) is either loaded -- then nothing was dropped (row counts as written) and the
three aggregations run -- or refused with the contract's error: ``DataValidationError`` whose
problems each name table, column, rule, row count and examples, or ``SourceError`` naming the
table. Seeds are fixed (``derandomize``) so CI sees the same cases every run.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import open_source
from roi.data import load_dataset
from roi.data.errors import DataValidationError, SourceError
from roi.data.schema import TABLE_NAMES, TABLES
from tests.conftest import tiny_frames

NASTY = ["1e308", "1e309", "-1e400", "9" * 400, "nan", "NaN", "inf", "-Infinity", "", " ",
         "\x00", "1e-400", "0x1F", "1,5", "$10", "2024-01-12T10:00:00+05:00",
         "2024-01-12 23:59:59 -0500", "2024-01-12Z", "45303", "45303.5", "2024-02-30",
         "0000-01-01", "9999-12-31", "10000-01-01", "12/01/2024", "2024-1-5", "Zoë", "😀",
         "\ufeff", "a,b", '"', "'", "x; DROP TABLE orders; --", "\r\n", "\t", ";", "|"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1"]
DELIMITERS = [",", ";", "\t", "|"]
COUNTED = ("customers", "orders", "members")
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def outcome(spec, *, rows: dict[str, int] | None) -> str:
    """Load ``spec``; 'loaded' (counts checked against ``rows``) or 'refused' (clear error)."""
    try:
        dataset = load_dataset(open_source(spec))
        dataset.customer_month_panel()
        dataset.survival_table()
        dataset.weekly_series()
    except DataValidationError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.table in TABLES and problem.column and problem.rule
            assert problem.n_rows >= 0 and isinstance(problem.examples, tuple)
            assert str(problem).startswith(f"{problem.table}.{problem.column}: {problem.rule}")
        return "refused"
    except SourceError as exc:
        assert str(exc).startswith(TABLE_NAMES), str(exc)
        assert "Traceback" not in str(exc)
        return "refused"
    for table, n in (rows or {}).items():
        assert dataset.report[table] == n, f"{table}: rows dropped or invented"
    return "loaded"


def _write(folder: Path, frames: dict[str, pd.DataFrame], *, encoding: str = "utf-8",
           sep: str = ",") -> None:
    for name, frame in frames.items():
        text = frame.to_csv(index=False, sep=sep)
        (folder / f"{name}.csv").write_bytes(text.encode(encoding, errors="replace"))


def _fresh(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@st.composite
def cell_corruption(draw) -> tuple[dict[str, pd.DataFrame], str, str]:
    frames = tiny_frames()
    table = draw(st.sampled_from(sorted(frames)))
    frame = frames[table]
    column = draw(st.sampled_from(list(frame.columns)))
    row = draw(st.integers(0, len(frame) - 1))
    value = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=12)))
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frames, draw(st.sampled_from(ENCODINGS)), draw(st.sampled_from(DELIMITERS))


@FUZZ
@given(case=cell_corruption())
def test_a_hostile_cell_in_any_encoding_and_delimiter(tmp_path_factory, case):
    frames, encoding, sep = case
    folder = _fresh(tmp_path_factory)
    _write(folder, frames, encoding=encoding, sep=sep)
    outcome(folder, rows={t: len(frames[t]) for t in COUNTED})


@st.composite
def file_corruption(draw) -> tuple[str, bytes]:
    table = draw(st.sampled_from(["customers", "orders", "members", "ad_spend"]))
    data = tiny_frames()[table].to_csv(index=False).encode()
    kind = draw(st.sampled_from(["empty", "header", "truncate", "insert", "dup-header",
                                 "blank", "bom"]))
    if kind == "empty":
        data = b""
    elif kind == "header":
        data = data.split(b"\n")[0] + b"\n"
    elif kind == "truncate":
        data = data[:draw(st.integers(1, len(data) - 1))]
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif kind == "dup-header":
        names = data.split(b"\n")[0].split(b",")
        i, j = draw(st.permutations(range(len(names))))[:2]
        names[i] = names[j].upper() if draw(st.booleans()) else names[j]
        data = b",".join(names) + data[data.index(b"\n"):]
    elif kind == "blank":
        data = draw(st.sampled_from([b"\n", b"   \n\n", b"\r\n"]))
    else:
        data = b"\xef\xbb\xbf" + data
    return table, data


@FUZZ
@given(case=file_corruption())
def test_broken_files(tmp_path_factory, case):
    table, data = case
    folder = _fresh(tmp_path_factory)
    frames = tiny_frames()
    _write(folder, {t: f for t, f in frames.items() if t != table})
    (folder / f"{table}.csv").write_bytes(data)
    outcome(folder, rows=None)


PARQUET_VALUES = {
    "number": st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, 5e-324]),
    "date": st.sampled_from([pd.Timestamp("2024-02-10 23:30", tz="America/New_York"),
                             pd.Timestamp("2024-02-10 01:30", tz="Asia/Tokyo"),
                             pd.Timestamp("1899-12-31"), pd.Timestamp("2200-01-01"),
                             pd.NaT]),
}


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parquet_columns_of_other_types(tmp_path_factory, data):
    """Typed Parquet columns: doubles with NaN/inf/extremes, timestamps with time zones or out
    of range, integers as Excel date serials."""
    frames = tiny_frames()
    table = data.draw(st.sampled_from(["orders", "customers", "ad_spend"]))
    frame = frames[table]
    kind = data.draw(st.sampled_from(["number", "date", "serial"]))
    columns = [c for c in frame.columns
               if TABLES[table].kind(c) == ("number" if kind == "number" else "date")]
    if not columns:
        return
    column = data.draw(st.sampled_from(columns))
    if kind == "number":
        values = pd.to_numeric(frame[column])
        values.iloc[data.draw(st.integers(0, len(frame) - 1))] = data.draw(PARQUET_VALUES[kind])
    elif kind == "date":
        values = pd.to_datetime(frame[column].replace("", None).str[:10]).dt.tz_localize(
            "UTC").copy()
        value = data.draw(PARQUET_VALUES[kind])
        values.iloc[data.draw(st.integers(0, len(frame) - 1))] = (
            value.tz_localize("UTC") if value is not pd.NaT and value.tzinfo is None else value)
    else:
        values = (pd.to_datetime(frame[column].replace("", None).str[:10])
                  - pd.Timestamp("1899-12-30")).dt.days.astype("Int64")
    frame[column] = values
    folder = _fresh(tmp_path_factory)
    _write(folder, {t: f for t, f in frames.items() if t != table})
    frame.to_parquet(folder / f"{table}.parquet", index=False)
    result = outcome(folder, rows={t: len(frames[t]) for t in COUNTED})
    if kind == "serial":
        assert result == "refused"


def test_excel_date_serials_and_real_dates(tmp_path):
    """An .xlsx with real date cells loads; a serial number where a date belongs is refused
    with the row's example."""
    frames = tiny_frames()
    orders = frames.pop("orders")
    _write(tmp_path, frames)
    dated = orders.assign(order_date=pd.to_datetime(orders["order_date"].str[:10]),
                          revenue=pd.to_numeric(orders["revenue"]))
    dated.to_excel(tmp_path / "orders.xlsx", index=False)
    assert outcome(tmp_path, rows={"orders": 7}) == "loaded"
    serials = dated.assign(order_date=(dated["order_date"] - pd.Timestamp("1899-12-30")).dt.days)
    serials.to_excel(tmp_path / "orders.xlsx", index=False)
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(tmp_path))
    [problem] = err.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "order_date", 7)
    assert problem.examples[0] == "o1 45303"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("sep", [";", "\t"])
def test_encodings_and_delimiters_load_the_same_values(tmp_path, encoding, sep):
    frames = tiny_frames()
    frames["customers"].loc[0, "segment"] = "Zoë"
    _write(tmp_path, frames, encoding=encoding, sep=sep)
    dataset = load_dataset(open_source(tmp_path))
    panel = dataset.customer_month_panel()
    assert set(panel["segment"].astype(str)) == {"Zoë", "mid", "smb"}
    assert dataset.report["orders"] == 7


@pytest.mark.postgres
def test_hostile_text_values_in_postgres_are_refused_not_crashing(postgres_url):
    """PostgreSQL has no TRY_CAST: impossible days, year 0, overflowing or NaN numbers must
    become contract errors instead of aborting the query."""
    frames = tiny_frames()
    dates = ["2024-02-30", "0000-01-01", "2023-02-29", "2024-13-01", "10000-01-01",
             "2024-04-31", "9999-12-31"]
    numbers = ["1e309", "-1e400", "9" * 400, "NaN", "Infinity", "1e99999", "abc"]
    frames["orders"]["order_date"] = dates
    frames["orders"]["revenue"] = numbers
    engine = sa.create_engine(postgres_url)
    schema = "fuzz_" + "".join(np.random.default_rng(1).choice(list(string.ascii_lowercase), 6))
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    for name, frame in frames.items():
        frame.to_sql(name, engine, schema=schema, index=False)
    typed = pd.DataFrame({"date": ["2024-01-01"] * 3, "channel": ["a", "b", "c"],
                          "spend": [float("nan"), float("inf"), 5.0]})
    typed.to_sql("ad_spend", engine, schema=schema, index=False, if_exists="replace")
    with engine.begin() as connection:  # pandas writes NaN as NULL: set it in SQL
        connection.execute(sa.text(f"UPDATE \"{schema}\".ad_spend SET spend = 'NaN' "
                                   "WHERE channel = 'a'"))
    engine.dispose()
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(postgres_url, schema=schema))
    found = {(p.column, p.rule): p.n_rows for p in err.value.problems}
    assert found[("order_date", "unparsable date (expected YYYY-MM-DD)")] == 6
    assert found[("revenue", "non-numeric amount")] == 7
    assert found[("spend", "non-numeric amount")] == 2
