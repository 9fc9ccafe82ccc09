"""Folder (CSV, Parquet, Excel, platform exports), DataFrame and config paths into one dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from connectors import open_source
from connectors.platforms import load_export
from roi.config import ConfigError, load_config
from roi.data import SourceError, load_dataset, mask_url

FIXTURES = Path(__file__).parent / "fixtures" / "platforms"


def _write(folder: Path, frames: dict[str, pd.DataFrame], formats: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, frame in frames.items():
        kind = formats.get(name, "csv")
        if kind == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        elif kind == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_excel(folder / f"{name}.xlsx", index=False)
    return folder


def test_mixed_formats_give_the_same_dataset(tmp_path, tiny):
    typed_orders = tiny["orders"].assign(
        revenue=pd.to_numeric(tiny["orders"]["revenue"]),
        order_date=pd.to_datetime(tiny["orders"]["order_date"].str[:10]))
    frames = {**tiny, "orders": typed_orders}
    folder = _write(tmp_path / "mixed", frames, {"orders": "parquet", "members": "excel"})
    from_folder = load_dataset(open_source(folder))
    from_frames = load_dataset(open_source(tiny))
    pd.testing.assert_frame_equal(from_folder.customer_month_panel(),
                                  from_frames.customer_month_panel())
    assert from_folder.report["identity"] == from_frames.report["identity"]


def test_two_files_for_one_table(tmp_path, tiny):
    folder = _write(tmp_path / "both", tiny, {})
    tiny["orders"].to_parquet(folder / "orders.parquet")
    with pytest.raises(SourceError, match="orders: more than one file"):
        open_source(folder)


def test_platform_exports_in_manifest(tmp_path, tiny):
    frames = {k: v for k, v in tiny.items() if k != "ad_spend"}
    folder = _write(tmp_path / "exports", frames, {})
    for name in ("google_ads_campaigns.csv", "meta_ads_export.csv"):
        shutil.copy(FIXTURES / name, folder / name)
    (folder / "sources.toml").write_text(
        '[[export]]\nplatform = "google_ads_campaigns"\npath = "google_ads_campaigns.csv"\n'
        '[[export]]\nplatform = "meta_ads"\npath = "meta_ads_export.csv"\n')
    dataset = load_dataset(open_source(folder))
    google = load_export(folder / "google_ads_campaigns.csv", platform="google_ads_campaigns")
    meta = load_export(folder / "meta_ads_export.csv", platform="meta_ads")
    assert dataset.report["other_tables"]["ad_spend"] == len(google.frame) + len(meta.frame)
    expected_channels = set(google.frame.channel) | set(meta.frame.channel)
    assert set(dataset.report["channels"]) == expected_channels
    assert any(note.startswith("google_ads_campaigns:") for note in dataset.report["notes"])


def test_export_and_file_for_the_same_table_is_refused(tmp_path, tiny):
    folder = _write(tmp_path / "clash", tiny, {})
    shutil.copy(FIXTURES / "meta_ads_export.csv", folder / "meta.csv")
    (folder / "sources.toml").write_text('[[export]]\nplatform = "meta_ads"\npath = "meta.csv"\n')
    with pytest.raises(SourceError, match="ad_spend: given both"):
        open_source(folder)


def test_config_file(tmp_path):
    path = tmp_path / "roi.toml"
    path.write_text('seed = 3\n[data]\nstart = 2024-01-01\nexclude = ["orders_after_churn"]\n'
                    '[churn]\nrule = "inactivity"\ninactivity_days = 90\n'
                    '[sampler]\ndraws = 200\n')
    config = load_config(path)
    assert config.seed == 3 and config.sampler.draws == 200
    assert config.data.churn_rule == "inactivity" and config.data.inactivity_days == 90
    assert config.data.start.isoformat() == "2024-01-01"
    assert config.data.exclude == ("orders_after_churn",)
    path.write_text("[churn]\nrul = 'auto'\n")
    with pytest.raises(ConfigError, match=r"\[churn\] unknown key"):
        load_config(path)
    path.write_text("[data]\nexclude = ['everything']\n")
    with pytest.raises(ConfigError, match="cannot exclude"):
        load_config(path)


def test_config_reads_lift_tests(tmp_path):
    path = tmp_path / "roi.toml"
    path.write_text('[[lift_tests]]\nchannel = "search"\nstart = 2024-03-04\nend = 2024-03-25\n'
                    'spend_change = -10000\nrevenue_change = -21000\nstandard_error = 4000\n')
    (test,) = load_config(path).lift_tests
    assert test == {"channel": "search", "start": "2024-03-04", "end": "2024-03-25",
                    "spend_change": -10000.0, "revenue_change": -21000.0,
                    "standard_error": 4000.0}
    path.write_text('[[lift_tests]]\nchannel = "search"\nspend = 1\n')
    with pytest.raises(ConfigError, match=r"entry 1: missing \['start'.*unknown \['spend'\]"):
        load_config(path)


def test_mask_url():
    assert mask_url("postgresql+psycopg://ana:p%40ss@db:5432/crm") == \
        "postgresql+psycopg://ana:***@db:5432/crm"
    assert mask_url("duckdb:///tmp/x.duckdb") == "duckdb:///tmp/x.duckdb"


def test_bad_url_is_masked():
    with pytest.raises(SourceError) as caught:
        open_source("postgresql+psycopg://ana:hunter2@127.0.0.1:1/crm")
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_columns_map_renames_a_files_headers(tmp_path, tiny):
    """``[columns.orders]`` in roi.toml: the same dataset as canonical headers give."""
    renamed = tiny["orders"].rename(columns={"order_date": "Date", "revenue": " Total "})
    folder = _write(tmp_path / "own", {**tiny, "orders": renamed},
                    {"orders": "parquet", "members": "excel"})
    config_file = tmp_path / "roi.toml"
    config_file.write_text('[columns.orders]\norder_date = "Date"\nrevenue = "total"\n')
    config = load_config(config_file)
    assert config.columns == {"orders": {"order_date": "Date", "revenue": "total"}}
    own = load_dataset(open_source(folder, columns=config.columns))
    canonical = load_dataset(open_source(tiny))
    pd.testing.assert_frame_equal(own.customer_month_panel(), canonical.customer_month_panel())
    assert own.report["orders"] == canonical.report["orders"] == 7
    # Without the map the error lists the headers the file has
    with pytest.raises(Exception) as without:
        load_dataset(open_source(folder))
    assert ("orders.order_date: missing required column; columns found: Date, Total, "
            "currency, customer_id, order_id") in str(without.value)
    # A header the file does not have is named, with the ones it has
    with pytest.raises(SourceError, match=r"\[columns.orders\] order_date = 'Day': no such "
                                          r"column; columns found: order_id, customer_id, Date"):
        open_source(folder, columns={"orders": {"order_date": "Day"}})
    config_file.write_text('[columns.orders]\nwhen = "Date"\n')
    with pytest.raises(ConfigError, match=r"\[columns.orders\] when: not a column of orders"):
        load_config(config_file)
    with pytest.raises(SourceError, match=r"\[source.tables\]"):
        open_source("sqlite:///x.db", columns={"orders": {"order_date": "Date"}})
