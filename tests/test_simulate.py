"""The sample world: reproducible, contract-clean, and its truth is what the tables say."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import roi.simulate
from roi.data.schema import TABLES as SCHEMA_TABLES
from roi.simulate import WorldParams, main, simulate_world

# The six tables every world has (optional ones, such as invitations, only with their knob)
TABLES = {name: SCHEMA_TABLES[name] for name in roi.simulate.TABLE_NAMES}

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
COVARIATES = ["segment", "region", "acquisition_channel", "plan"]
# Same seed on another CPU: numbers equal to this relative tolerance (README, Reproducibility).
SAMPLE_REL = 1e-9


@pytest.fixture(scope="module")
def sample_world():
    """The world committed in data/sample."""
    return simulate_world(n_customers=3000, months=24, start="2023-01-01", seed=7)


@pytest.fixture(scope="module")
def big_world():
    return simulate_world(n_customers=20_000, months=24, seed=11)


@pytest.fixture(scope="module")
def big_months(big_world):
    return _customer_months(big_world)


# ----------------------------------------------------------------------- helpers from the tables


def _month_index(dates: pd.Series) -> np.ndarray:
    return (dates.dt.year * 12 + dates.dt.month - 1).to_numpy().astype(np.int64)


def _first_memberships(world) -> pd.DataFrame:
    """Customer, first community and membership start, linking e-mail-only rows."""
    members, customers = world.tables["members"], world.tables["customers"]
    by_email = pd.Series(customers["customer_id"].to_numpy(),
                         index=customers["email"].str.strip().str.lower())
    linked = members["customer_id"].fillna(
        members["email"].str.strip().str.lower().map(by_email))
    frame = (members.assign(customer_id=linked).dropna(subset=["customer_id"])
             .merge(customers[["customer_id", "first_seen"]], on="customer_id"))
    frame["start"] = frame[["joined_at", "first_seen"]].max(axis=1)
    return (frame.sort_values(["customer_id", "start", "community"])
            .drop_duplicates("customer_id")[["customer_id", "community", "start"]])


def _customer_months(world) -> pd.DataFrame:
    """Customer-months from first_seen to churn, with the member-month rule and mu0."""
    customers = world.tables["customers"]
    end = pd.Timestamp(world.truth["window"]["end"])
    first = _month_index(customers["first_seen"])
    last = _month_index(customers["churned_at"].fillna(end))
    who = np.repeat(np.arange(len(customers)), last - first + 1)
    offsets = np.concatenate([[0], np.cumsum(last - first + 1)[:-1]])
    month = first[who] + np.arange(len(who)) - offsets[who]
    month_start = (month - 1970 * 12).astype("datetime64[M]").astype("datetime64[ns]")
    next_start = (month + 1 - 1970 * 12).astype("datetime64[M]").astype("datetime64[ns]")
    churn = customers["churned_at"].to_numpy()[who]
    frame = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy()[who],
                          "month": month,
                          "whole": (customers["first_seen"].to_numpy()[who] < month_start)
                          & (np.isnat(churn) | (churn >= next_start))})
    frame = frame.merge(_first_memberships(world), on="customer_id", how="left")
    start_month = np.where(frame["start"].notna(),
                           _month_index(frame["start"].fillna(end)), np.iinfo(np.int64).max)
    frame["since_start"] = np.where(frame["month"] >= start_month, frame["month"] - start_month, -1)
    level = world.latent.set_index("customer_id")["revenue_level"]
    season = np.asarray(world.truth["seasonality"])
    frame["mu0"] = frame["customer_id"].map(level).to_numpy() * season[frame["month"] % 12]
    orders = world.tables["orders"]
    direct = orders[orders["channel"] == "direct"]
    realised = direct.groupby([direct["customer_id"], _month_index(direct["order_date"])])[
        "revenue"].sum().rename("direct_revenue")
    frame = frame.join(realised, on=["customer_id", "month"])
    frame["direct_revenue"] = frame["direct_revenue"].fillna(0.0)
    return frame


def _lift(frame: pd.DataFrame, world) -> np.ndarray:
    tau = frame["community"].map(world.truth["tau_by_community"]).fillna(0.0).to_numpy()
    rate = world.truth["params"]["ramp_rate"]
    ramp = np.where(frame["since_start"] >= 0, 1 - rate ** (frame["since_start"] + 1), 0.0)
    return frame["mu0"].to_numpy() * tau * ramp


# ----------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_tables_and_truth():
    # Exact on purpose: both worlds are generated in this process on this CPU. Across machines
    # numpy's SIMD paths change the last digits (test_committed_sample_... uses a tolerance).
    first = simulate_world(n_customers=1500, months=12, seed=5)
    second = simulate_world(n_customers=1500, months=12, seed=5)
    for name in TABLES:
        pd.testing.assert_frame_equal(first.tables[name], second.tables[name])
    assert json.dumps(first.truth) == json.dumps(second.truth)


def test_different_seed_gives_different_tables():
    first = simulate_world(n_customers=1500, months=12, seed=5)
    other = simulate_world(n_customers=1500, months=12, seed=6)
    assert not first.tables["orders"]["revenue"].equals(other.tables["orders"]["revenue"])
    assert not first.tables["customers"]["first_seen"].equals(
        other.tables["customers"]["first_seen"])


def test_committed_sample_is_what_the_generator_gives(sample_world, tmp_path):
    # data/sample was written on another CPU: numbers agree to 1e-9 relative, not bit for bit
    # (numpy's SIMD summation order differs between AVX2 and AVX-512; README "Reproducibility").
    stale = ("data/sample is stale: python -m roi.simulate --out data/sample --customers 3000 "
             "--months 24 --seed 7 --format csv")
    written = sample_world.write(tmp_path, fmt="csv")
    assert {p.name for p in written} == {p.name for p in SAMPLE.iterdir()} - {"README.md"}
    truth = json.loads((SAMPLE / "truth.json").read_text())
    differing = _json_differences(truth, json.loads((tmp_path / "truth.json").read_text()))
    assert not differing, f"{stale}; truth.json differs at {differing[:5]}"
    for path in written:
        if path.suffix == ".csv":
            _assert_same_csv(SAMPLE / path.name, path, hint=stale)


def _json_differences(a, b, *, rel: float = SAMPLE_REL, path: str = "") -> list[str]:
    """Paths where two JSON documents differ: numbers beyond ``rel`` relative, anything else."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b))
                for d in _json_differences(a.get(key), b.get(key), rel=rel, path=f"{path}.{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _json_differences(x, y, rel=rel, path=f"{path}[{i}]")]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if numbers and (a == b or np.isclose(a, b, rtol=rel, atol=0.0)):
        return []
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def _assert_same_csv(committed: Path, regenerated: Path, *, hint: str) -> None:
    """Same header and rows; numeric columns within SAMPLE_REL, text columns exactly."""
    old = pd.read_csv(committed, dtype=str, keep_default_na=False)
    new = pd.read_csv(regenerated, dtype=str, keep_default_na=False)
    assert list(old.columns) == list(new.columns), (committed.name, hint)
    assert len(old) == len(new), (committed.name, len(old), len(new), hint)
    for column in old.columns:
        numbers = [pd.to_numeric(frame[column].replace("", np.nan), errors="coerce")
                   for frame in (old, new)]
        text = (numbers[0].isna() & (old[column] != "")).any()
        if text:
            mismatched = old[column] != new[column]
        else:
            mismatched = ~np.isclose(numbers[0], numbers[1], rtol=SAMPLE_REL, atol=0.0,
                                     equal_nan=True)
        assert not mismatched.any(), (
            f"{committed.name}.{column}: {int(mismatched.sum())} cells differ, e.g. "
            f"{old.loc[mismatched, column].head(3).tolist()} vs "
            f"{new.loc[mismatched, column].head(3).tolist()}; {hint}")


def test_sample_comparison_tolerates_last_digits_only(tmp_path):
    """The comparison above passes a last-digit difference and fails a real one."""
    assert not _json_differences({"x": [3.9861666161529477]}, {"x": [3.986166616152947]})
    assert _json_differences({"x": 1.0, "n": "a"}, {"x": 1.0 + 1e-6, "n": "b"}) == [
        ".n: 'a' vs 'b'", ".x: 1.0 vs 1.000001"]
    committed, regenerated = tmp_path / "a.csv", tmp_path / "b.csv"
    committed.write_text("id,revenue,channel\nc1,12.5,\nc2,3.9861666161529477,direct\n")
    regenerated.write_text("id,revenue,channel\nc1,12.5,\nc2,3.986166616152947,direct\n")
    _assert_same_csv(committed, regenerated, hint="")
    regenerated.write_text("id,revenue,channel\nc1,12.51,\nc2,3.986166616152947,direct\n")
    with pytest.raises(AssertionError, match="revenue: 1 cells differ"):
        _assert_same_csv(committed, regenerated, hint="")
    regenerated.write_text("id,revenue,channel\nc1,12.5,\nc2,3.986166616152947,search\n")
    with pytest.raises(AssertionError, match="channel: 1 cells differ"):
        _assert_same_csv(committed, regenerated, hint="")


# ----------------------------------------------------------------------- the contract


def test_tables_have_canonical_columns(sample_world):
    for name, spec in TABLES.items():
        columns = set(sample_world.tables[name].columns)
        assert set(spec.required) <= columns, name
        extra = columns - set(spec.required) - set(spec.optional)
        assert extra <= ({"segment", "region", "acquisition_channel", "plan", "employees"}
                         if name == "customers" else set()), (name, extra)


def test_tables_follow_the_contract_rules(sample_world):
    t = sample_world.tables
    customers, orders, members = t["customers"], t["orders"], t["members"]
    assert customers["customer_id"].is_unique and customers["customer_id"].str.len().min() > 0
    assert customers["email"].is_unique
    assert (customers["churned_at"].isna() | (customers["churned_at"] >= customers["first_seen"])
            ).all()
    assert orders["customer_id"].isin(customers["customer_id"]).all()
    assert orders["order_id"].is_unique
    churn = orders["customer_id"].map(customers.set_index("customer_id")["churned_at"])
    assert not (orders["order_date"] > churn).any()
    first_seen = orders["customer_id"].map(customers.set_index("customer_id")["first_seen"])
    assert not (orders["order_date"] < first_seen).any()
    assert (orders["currency"] == "USD").all()
    assert (members["customer_id"].notna() | members["email"].notna()).all()
    assert (t["activity"]["customer_id"].notna() | t["activity"]["member_id"].notna()).all()
    assert (t["activity"]["count"] >= 1).all()
    assert (t["ad_spend"]["spend"] >= 0).all()
    assert (t["community_costs"]["cost"] >= 0).all()
    assert (t["ad_spend"]["date"].dt.weekday == 0).all()
    assert (t["community_costs"]["date"].dt.day == 1).all()
    window_end = pd.Timestamp(sample_world.truth["window"]["end"])
    for name, column in (("orders", "order_date"), ("customers", "first_seen"),
                         ("members", "joined_at"), ("activity", "date")):
        dates = t[name][column]
        assert dates.min() >= pd.Timestamp("2023-01-01") and dates.max() <= window_end


def test_refunds_are_small_and_follow_an_order(sample_world):
    orders = sample_world.tables["orders"]
    refunds = orders[orders["revenue"] < 0]
    assert 0.005 < len(refunds) / len(orders) < 0.02
    assert (refunds["channel"] == "direct").all()
    assert refunds["revenue"].abs().sum() < 0.02 * orders["revenue"].sum()


def test_members_are_messy_in_the_documented_ways(big_world):
    members, customers = big_world.tables["members"], big_world.tables["customers"]
    with_id = members["customer_id"].notna()
    assert 0.62 < with_id.mean() < 0.72
    email_only = members.loc[~with_id, "email"]
    assert (email_only != email_only.str.strip().str.lower()).mean() > 0.5
    known = email_only.str.strip().str.lower().isin(customers["email"])
    assert 0.04 < (~known).sum() / len(members) < 0.06       # prospects stay unlinked
    firsts = _first_memberships(big_world).merge(customers, on="customer_id")
    joined = members.dropna(subset=["customer_id"]).merge(customers, on="customer_id")
    before = (joined["joined_at"] < joined["first_seen"]).mean()
    assert 0.015 < before < 0.05
    assert 0.35 < len(firsts) / len(customers) < 0.45
    assert 0.55 < (firsts["community"] == "discord").mean() < 0.65
    left = members.dropna(subset=["left_at"])
    assert (left["left_at"] > left["joined_at"]).all() and 0.05 < len(left) / len(members) < 0.12
    assert members["member_id"].is_unique


def test_sample_world_sizes_and_csv_under_5_mb(sample_world, tmp_path):
    counts = sample_world.truth["counts"]
    assert counts["customers"] == 3000
    assert 45_000 < counts["orders"] < 75_000
    assert 900 < counts["members"] < 1500
    assert counts["ad_spend"] == 4 * 104 and counts["community_costs"] == 2 * 24 * 4
    paths = sample_world.write(tmp_path, fmt="csv")
    assert sum(path.stat().st_size for path in paths) < 5 * 2 ** 20


# ----------------------------------------------------------------------- the truth


def test_naive_gap_is_far_from_the_true_att(sample_world, big_world):
    for world in (sample_world, big_world):
        att = world.truth["att_per_member_month"]
        assert 20 < att < 60
        assert world.truth["naive_gap_per_month"] > 1.5 * att


def test_att_recomputed_from_the_tables_is_the_truth(big_world, big_months):
    member_months = big_months[big_months["whole"] & (big_months["since_start"] >= 0)]
    lift = _lift(member_months, big_world)
    truth = big_world.truth
    assert len(member_months) == truth["member_months"] > 50_000
    assert lift.mean() == pytest.approx(truth["att_per_member_month"], rel=1e-9)
    for community, att in truth["att_by_community"].items():
        mine = (member_months["community"] == community).to_numpy()
        assert lift[mine].mean() == pytest.approx(att, rel=1e-9)
    assert truth["att_by_community"]["discord"] > truth["att_by_community"]["forum"] > 0


def test_realised_revenue_matches_the_known_means(big_world, big_months):
    whole = big_months[big_months["whole"]]
    member = whole["since_start"] >= 0
    never = whole[whole["community"].isna()]
    ratio_never = never["direct_revenue"].sum() / never["mu0"].sum()
    assert ratio_never == pytest.approx(1.0, abs=0.02)
    members = whole[member]
    expected = 1 + _lift(members, big_world).sum() / members["mu0"].sum()
    assert 1.09 < expected < 1.14
    realised = members["direct_revenue"].sum() / members["mu0"].sum()
    assert realised == pytest.approx(expected, abs=0.02)


def test_churn_hazard_ratio_is_recovered_by_a_poisson_model(big_world):
    sm = pytest.importorskip("statsmodels.api")
    customers = big_world.tables["customers"].merge(
        _first_memberships(big_world), on="customer_id", how="left")
    end = pd.Timestamp(big_world.truth["window"]["end"])
    last = customers["churned_at"].fillna(end)
    start = customers["start"].where(customers["start"] <= last)
    pre_days = ((start.fillna(last + pd.Timedelta(days=1)) - customers["first_seen"]).dt.days)
    member_days = (last - start).dt.days + 1
    churned = customers["churned_at"].notna()
    rows = pd.concat([
        customers.assign(days=pre_days, member=0, event=churned & start.isna()),
        customers.assign(days=member_days, member=1, event=churned & start.notna())])
    rows = rows[rows["days"] > 0]
    levels = WorldParams().levels()
    categorical = rows[COVARIATES].apply(lambda c: pd.Categorical(c, categories=levels[c.name]))
    design = pd.get_dummies(categorical, drop_first=True, dtype=float)
    design["log_employees"] = np.log(rows["employees"] / WorldParams().employees_reference)
    design["member"] = rows["member"]
    fit = sm.GLM(rows["event"].astype(float), sm.add_constant(design),
                 family=sm.families.Poisson(), offset=np.log(rows["days"])).fit()
    assert np.exp(fit.params["member"]) == pytest.approx(0.70, abs=0.08)
    assert fit.params["segment_enterprise"] == pytest.approx(-0.6, abs=0.2)
    baseline = np.exp(fit.params["const"]) * 365.25 / 12
    assert baseline == pytest.approx(big_world.truth["churn_baseline_monthly_hazard"], rel=0.15)


def test_the_toolkit_reads_the_world_and_agrees_with_its_truth():
    from connectors.frames import from_frames
    from roi.data.dataset import load_dataset

    world = simulate_world(n_customers=2000, months=12, seed=3)
    dataset = load_dataset(from_frames(world.tables))
    assert dataset.report["identity"]["link_rate"] == pytest.approx(
        world.truth["membership"]["share_with_customer_id"]
        + world.truth["membership"]["share_email_only"])
    panel = dataset.customer_month_panel()
    whole = panel[panel["active"]]
    assert (whole["member"]).sum() == world.truth["member_months"]
    ever = whole["join_month_index"].notna()
    naive = whole.loc[ever, "revenue"].mean() - whole.loc[~ever, "revenue"].mean()
    assert naive == pytest.approx(world.truth["naive_gap_per_month"], rel=1e-9)


def test_paid_media_share_roas_and_response_curves(big_world):
    truth, orders = big_world.truth, big_world.tables["orders"]
    paid = orders["channel"] != "direct"
    assert 0.15 < orders.loc[paid, "revenue"].sum() / orders["revenue"].sum() < 0.25
    assert truth["paid_share_of_revenue"] == pytest.approx(0.20)
    spend = big_world.tables["ad_spend"].pivot(index="date", columns="channel", values="spend")
    realised = orders[paid].groupby("channel")["revenue"].sum()
    for channel, media in truth["media_params"].items():
        roas, marginal = truth["roas"][channel], truth["marginal_roas"][channel]
        assert np.isfinite(roas) and roas > 0 and np.isfinite(marginal) and marginal > 0
        stock, carried = [], 0.0
        for amount in spend[channel]:
            carried = amount + media["adstock"]["decay"] * carried
            stock.append(carried)
        stock = np.asarray(stock) ** media["saturation"]["shape"]
        half = media["saturation"]["half_saturation"] ** media["saturation"]["shape"]
        expected = media["beta"] * (stock / (stock + half)).sum()
        assert expected == pytest.approx(media["expected_revenue"], rel=1e-9)
        assert expected / spend[channel].sum() == pytest.approx(roas, rel=1e-9)
        assert realised[channel] == pytest.approx(expected, rel=0.08)
    dark = (spend == 0).mean()
    assert dark["search"] == 0 and dark["display"] > 0.2 and dark["video"] > 0.3


def test_community_costs_give_a_plausible_revenue_per_dollar(sample_world):
    for value in sample_world.truth["community_revenue_per_dollar"].values():
        assert 1 < value < 5
    retention = sample_world.truth["retention_revenue_by_community"]
    assert all(value > 0 for value in retention.values())


# ----------------------------------------------------------------------- API and CLI


def test_knobs_and_bad_arguments():
    world = simulate_world(n_customers=400, months=6, seed=1, tau=(0.3, 0.1),
                           media_channels=("search",), media_revenue_split=(1.0,),
                           media_roas=(2.0,), adstock_decay=(0.3,), hill_half_saturation=(1.0,),
                           hill_shape=(1.0,), dark_week_share=(0.0,), cost_per_mille=(20.0,),
                           click_through=(0.03,))
    assert world.truth["tau_by_community"] == {"discord": 0.3, "forum": 0.1}
    assert set(world.tables["ad_spend"]["channel"]) == {"search"}
    with pytest.raises(ValueError, match="first day of a month"):
        simulate_world(n_customers=10, start="2023-01-15")
    with pytest.raises(ValueError, match="tau"):
        WorldParams(tau=(0.1,))
    with pytest.raises(TypeError):
        simulate_world(n_customers=10, no_such_knob=1)


def test_cli_writes_parquet_tables_and_truth(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--customers", "300", "--months", "6", "--seed", "2",
                 "--format", "parquet"]) == 0
    assert "wrote 7 files" in capsys.readouterr().out
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["seed"] == 2 and truth["counts"]["customers"] == 300
    customers = pq.read_table(tmp_path / "customers.parquet")
    assert str(customers.schema.field("first_seen").type) == "date32[day]"
    assert customers.num_rows == 300
    for name in TABLES:
        assert (tmp_path / f"{name}.parquet").exists()


def test_module_runs_as_a_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "roi.simulate", "--out", str(tmp_path),
                           "--customers", "200", "--months", "3", "--format", "csv"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    orders = pd.read_csv(tmp_path / "orders.csv")
    assert list(orders.columns) == ["order_id", "customer_id", "order_date", "revenue",
                                    "currency", "channel"]
    assert orders["order_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


def test_docstring_examples_run():
    assert doctest.testmod(roi.simulate).failed == 0
