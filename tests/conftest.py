"""Shared fixtures: a real PostgreSQL server started by the tests, small hand-made tables."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def _postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    # initdb refuses to run as root; Debian's package creates the 'postgres' user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server on 127.0.0.1, created in a temp folder and stopped afterwards."""
    bindir = _postgres_bindir()
    if bindir is None:
        if os.environ.get("ROI_REQUIRE_POSTGRES"):
            pytest.fail("ROI_REQUIRE_POSTGRES is set but no PostgreSQL server binary was found")
        pytest.skip("no PostgreSQL server binary (initdb) on this machine; CI installs one")
    folder = Path(tempfile.mkdtemp(prefix="roi-pg-"))
    folder.chmod(0o755)
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = _free_port()
    subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                                    "-U", "roi", "--no-sync"]),
                   check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                                    "-l", str(folder / "server.log"), "-w", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://roi@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                        "-w", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def tiny_frames() -> dict[str, pd.DataFrame]:
    """Six tables small enough to work out every aggregation by hand (see test_aggregations)."""
    return {
        "customers": pd.DataFrame({
            "customer_id": ["A", "B", "C", "D"],
            "first_seen": ["2024-01-10", "2023-12-20", "2024-02-15", "2024-01-01"],
            "churned_at": ["", "2024-03-20", None, "2024-02-29"],
            "email": ["a@x.com", "b@x.com", "c@x.com", "d@x.com"],
            "segment": ["smb", "mid", "smb", "mid"],
            "employees": ["10", "200", "15", "40"]}),
        "orders": pd.DataFrame({
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6", "o7"],
            "customer_id": ["A", "A", "B", "C", "B", "D", "A"],
            "order_date": ["2024-01-12", "2024-03-03 10:00:00", "2024-02-01", "2024-03-30",
                           "2024-03-19", "2024-02-02", "2024-04-30"],
            "revenue": ["100", "50.5", "20", "-5", "7", "30", "12"],
            "currency": ["USD"] * 7}),
        "members": pd.DataFrame({
            "community": ["discord", "forum", "discord", "forum"],
            "joined_at": ["2024-02-10", "2024-01-05", "2023-12-01", "2024-03-01"],
            "customer_id": ["A", None, None, "A"],
            "email": [None, " C@X.com ", "zz@x.com", None],
            "member_id": ["m1", "m2", "m3", "m4"],
            "left_at": [None, None, "2024-02-20", None]}),
        "activity": pd.DataFrame({
            "community": ["discord", "discord", "forum", "discord"],
            "date": ["2024-02-12", "2024-02-13", "2024-03-05", "2024-02-14"],
            "member_id": ["m1", "m3", "m2", "m1"],
            "count": ["2", "1", "1", None]}),
        "ad_spend": pd.DataFrame({
            "date": ["2024-01-01", "2024-01-08", "2024-01-02", "2024-03-04"],
            "channel": ["search", "search", "social", "social"],
            "spend": ["100", "50", "10", "5.5"]}),
        "community_costs": pd.DataFrame({
            "date": ["2024-01-01", "2024-02-01"], "community": ["discord", "discord"],
            "cost": ["310", "290"], "category": ["staff", "staff"]}),
    }


@pytest.fixture
def tiny() -> dict[str, pd.DataFrame]:
    return tiny_frames()
