"""The data layer's SQL compiles for BigQuery, Snowflake and Spark SQL (issue 19; compile only,
no connection): every statement a warehouse run executes, recorded on a real PostgreSQL run of
the tiny tables, compiled against each dialect and compared with golden files in
``tests/golden/``. ``ROI_UPDATE_GOLDEN=1`` rewrites them (review the diff).

The engine-specific expressions (``roi/data/dialect.py``) must come out in each engine's own
spelling: SAFE_CAST / TRY_CAST, REGEXP_CONTAINS / REGEXP_LIKE / RLIKE, SHA-256 as hex, and no
PostgreSQL-only syntax (``::`` casts, ``convert_to``, ``encode``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import open_source
from roi.data import load_dataset

pytestmark = pytest.mark.postgres

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = "golden"


def _dialects() -> dict[str, sa.Dialect]:
    bigquery = pytest.importorskip("sqlalchemy_bigquery", reason="the 'bigquery' extra")
    snowflake = pytest.importorskip("snowflake.sqlalchemy.snowdialect",
                                    reason="the 'snowflake' extra")
    from roi.data.spark import SparkDialect

    return {"bigquery": bigquery.BigQueryDialect(), "snowflake": snowflake.SnowflakeDialect(),
            "spark": SparkDialect()}


@pytest.fixture(scope="module")
def warehouse_statements(postgres_url) -> dict[str, list[sa.ClauseElement]]:
    """Every statement the data layer executes for a warehouse source (PostgreSQL here), in
    order: ``checks`` (validation, the typed layer, the report) and ``aggregations`` (panel,
    weekly series, survival table)."""
    from tests.conftest import tiny_frames

    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        connection.execute(sa.text(f'CREATE SCHEMA "{SCHEMA}"'))
    for name, frame in tiny_frames().items():
        frame.to_sql(name, engine, schema=SCHEMA, index=False)
    engine.dispose()
    source = open_source(postgres_url, schema=SCHEMA)
    recorded: list[sa.ClauseElement] = []

    def record(connection, clause, multiparams, params, execution_options):
        # The data layer's statements; not SQLAlchemy's own catalogue look-ups (pg_catalog).
        if isinstance(clause, sa.sql.Selectable) and not isinstance(clause, sa.TextClause) \
                and "pg_catalog" not in str(clause.compile(dialect=connection.dialect)):
            recorded.append(clause)

    sa.event.listen(source.engine, "before_execute", record)
    dataset = load_dataset(source)
    checks = len(recorded)
    dataset.customer_month_panel()
    dataset.weekly_series()
    dataset.survival_table()
    sa.event.remove(source.engine, "before_execute", record)
    assert checks > 50 and len(recorded) > checks
    return {"checks": recorded[:checks], "aggregations": recorded[checks:]}


def _compiled(statements: list[sa.ClauseElement], dialect: sa.Dialect) -> str:
    texts = [str(s.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))
             for s in statements]
    return "\n;\n".join(t.strip() for t in texts) + "\n"


@pytest.mark.parametrize("name", ["bigquery", "snowflake", "spark"])
def test_sql_compiles_as_golden(warehouse_statements, name):
    """The three aggregations (each holds the typed layer it reads) as golden files; the
    checks compile too but are not kept verbatim (a thousand lines of counts)."""
    _compiled(warehouse_statements["checks"], _dialects()[name])
    text = _compiled(warehouse_statements["aggregations"], _dialects()[name])
    golden = GOLDEN / f"data_layer.{name}.sql"
    if os.environ.get("ROI_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"no golden file {golden}; run with ROI_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (f"{name}: the compiled SQL changed; if intended, "
                                        "rerun with ROI_UPDATE_GOLDEN=1 and review the diff")


# Spellings each engine must show, and PostgreSQL-only syntax none may.
EXPECTED = {
    "bigquery": ("SAFE_CAST(", "REGEXP_CONTAINS(", "to_hex(sha256(", "date_trunc(", "ISOWEEK",
                 "date_diff(", "`golden`.`orders`"),
    "snowflake": ("TRY_CAST(", "REGEXP_LIKE(", "sha2(", "datediff(day,", "date_trunc("),
    "spark": ("TRY_CAST(", " RLIKE ", "sha2(", "datediff(", "trunc(", "golden.orders"),
}
POSTGRES_ONLY = ("::", "convert_to(", "encode(", "1e308::numeric")


@pytest.mark.parametrize("name", ["bigquery", "snowflake", "spark"])
def test_dialect_spellings(warehouse_statements, name):
    statements = warehouse_statements["checks"] + warehouse_statements["aggregations"]
    text = _compiled(statements, _dialects()[name])
    missing = [s for s in EXPECTED[name] if s not in text]
    assert missing == []
    assert [s for s in POSTGRES_ONLY if s in text] == []
    # The statements run as-is on PostgreSQL: its own spellings are the default.
    postgres = _compiled(statements, sa.dialects.postgresql.dialect())
    assert "convert_to(" in postgres and "~" in postgres
