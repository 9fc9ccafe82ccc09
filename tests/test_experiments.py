"""Randomized invitation experiments (issue 17, part 2): 2SLS against published and
independent numbers, CACE recovery on a simulated experiment, the ``invitations`` table's
validation and row accounting, and the experiment in a run's results and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from connectors import open_source
from roi.data import load_dataset
from roi.data.errors import DataValidationError
from roi.data.source import fetch_frame
from roi.experiments import community_experiment, two_stage_least_squares
from roi.simulate import simulate_world

MROZ = Path(__file__).parent / "data" / "mroz.csv"
# Low-noise experiment world: revenue levels alike (no covariate effects, little hidden trait),
# 3 orders a month of gamma shape 8, a strong effect and uptake, assignment in month 3.
LOW_NOISE = dict(revenue_log_effects=(), engagement_sd=0.1, order_value_shape=8.0,
                 orders_per_month=3.0, tau=(0.5, 0.5), experiment_share=1.0,
                 experiment_uptake=0.7, experiment_month=3, churn_base_monthly=0.015)


def _women_in_the_labour_force() -> pd.DataFrame:
    return pd.read_csv(MROZ).dropna(subset=["lwage"])


def test_wooldridge_example_15_1_return_to_education():
    # Wooldridge, Introductory Econometrics, Example 15.1: log(wage) on educ instrumented by
    # fatheduc, 428 women: educ 0.059 (0.035), intercept 0.441 (0.446); first stage
    # educ = 10.24 + 0.269 fatheduc (t = 9.43, so F = 88.9).
    data = _women_in_the_labour_force()
    fit = two_stage_least_squares(data["lwage"].to_numpy(), endog=data[["educ"]].to_numpy(),
                                  instruments=data[["fatheduc"]].to_numpy())
    assert fit.nobs == 428
    assert fit.params == pytest.approx([0.441, 0.0592], abs=5e-4)
    assert fit.se == pytest.approx([0.446, 0.0351], abs=5e-4)
    assert fit.first_stage_f[0] == pytest.approx(9.43**2, rel=0.01)


def test_wooldridge_example_15_40_overidentified_with_exogenous_regressors():
    # Example 15.40 (15.5 in earlier editions): both parents' education as instruments, exper
    # and exper^2 exogenous: educ 0.0614 (0.0314), exper 0.0442 (0.0134), expersq -0.0009
    # (0.0004), intercept 0.048 (0.400); the first-stage F of the two instruments is 55.40.
    data = _women_in_the_labour_force()
    fit = two_stage_least_squares(data["lwage"].to_numpy(), endog=data[["educ"]].to_numpy(),
                                  instruments=data[["motheduc", "fatheduc"]].to_numpy(),
                                  exog=data[["exper", "expersq"]].to_numpy())
    assert fit.params == pytest.approx([0.048, 0.0442, -0.0009, 0.0614], abs=5e-4)
    assert fit.se == pytest.approx([0.400, 0.0134, 0.0004, 0.0314], abs=5e-4)
    assert fit.first_stage_f[0] == pytest.approx(55.40, abs=0.01)


def test_matches_statsmodels_iv2sls():
    from statsmodels.sandbox.regression.gmm import IV2SLS
    from statsmodels.tools import add_constant

    data = _women_in_the_labour_force()
    ours = two_stage_least_squares(data["lwage"].to_numpy(), endog=data[["educ"]].to_numpy(),
                                   instruments=data[["fatheduc"]].to_numpy())
    theirs = IV2SLS(data["lwage"], add_constant(data[["educ"]]),
                    add_constant(data[["fatheduc"]])).fit()
    assert ours.params == pytest.approx(theirs.params.to_numpy(), rel=1e-10)
    assert ours.se == pytest.approx(theirs.bse.to_numpy(), rel=1e-10)


def test_clustered_errors_match_linearmodels():
    # linearmodels 7.1, IV2SLS(...).fit(cov_type="clustered", clusters=g, debiased=True) on
    # these draws (run once outside the venv, linearmodels is not a dependency):
    # params [2.10784989, 4.91376006], std_errors [0.34942584, 0.93439575], first-stage F
    # 576.38851729 (debiased=False gives 0.34874601, 0.93257783: no small-sample factor).
    rng = np.random.default_rng(17)
    g = np.repeat(np.arange(300), 6)
    z = np.repeat(rng.integers(0, 2, 300), 6).astype(float)
    d = (rng.random(1800) < 0.1 + 0.4 * z).astype(float)
    y = 2.0 + 5.0 * d + np.repeat(rng.normal(size=300), 6) * 3 + rng.normal(size=1800) * 4
    fit = two_stage_least_squares(y, endog=d[:, None], instruments=z[:, None], clusters=g)
    assert fit.params == pytest.approx([2.10784989, 4.91376006], rel=1e-7)
    assert fit.se == pytest.approx([0.34942584, 0.93439575], rel=1e-7)
    assert fit.first_stage_f[0] == pytest.approx(576.38851729, rel=1e-7)
    assert fit.n_clusters == 300


def _experiment_block(world):
    return _experiment_block_from(open_source(dict(world.tables)))


def test_cace_recovered_on_20000_customers():
    world = simulate_world(n_customers=20_000, months=18, seed=5, **LOW_NOISE)
    truth = world.truth["experiment"]
    (entry,) = _experiment_block(world)["experiments"]
    assert entry["name"] == "invite-2023" and entry["community"] == "discord"
    assert entry["customers"] == truth["customers"]
    cace = entry["cace_per_member_month"]
    # measured: 53.13 [49.31, 56.96] against the truth 52.04
    assert abs(cace["estimate"] - truth["cace_per_member_month"]) < 0.10 * truth[
        "cace_per_member_month"]
    assert cace["low"] <= truth["cace_per_member_month"] <= cace["high"]
    itt = entry["itt_revenue_per_customer_month"]
    assert itt["low"] <= truth["itt_revenue_per_customer_month"] <= itt["high"]
    joined = entry["itt_member_months_per_customer_month"]
    assert joined["low"] <= truth["itt_member_months_per_customer_month"] <= joined["high"]
    # CACE = ITT revenue / ITT membership exactly (just-identified, no covariates)
    assert cace["estimate"] == pytest.approx(itt["estimate"] / joined["estimate"], rel=1e-9)
    assert entry["compliance"]["invite"] > entry["compliance"]["holdout"] + 0.3
    assert entry["first_stage_f"] > 100 and entry["warnings"] == []
    # membership lowers churn (HR 0.7 while a member), so the invitation does too
    assert entry["itt_churn_hazard_ratio"]["high"] < 1.0


@pytest.fixture(scope="module")
def small_experiment():
    return simulate_world(n_customers=600, months=12, seed=4, experiment_share=1.0)


def _load_with(world, invitations: pd.DataFrame):
    return load_dataset(open_source({**world.tables, "invitations": invitations}))


@pytest.mark.parametrize("change, column, rule", [
    (lambda t: t.assign(customer_id=t["customer_id"].where(t.index != 0, "NOPE")),
     "customer_id", "invitation for an unknown customer"),
    (lambda t: t.assign(arm=t["arm"].where(t.index != 0, "treated")),
     "arm", "arm must be one of invite, holdout"),
    (lambda t: pd.concat([t, t.iloc[[0]].assign(
        arm="holdout" if t["arm"].iloc[0] == "invite" else "invite")], ignore_index=True),
     "arm", "customer in two arms of one experiment"),
])
def test_invitation_rules(small_experiment, change, column, rule):
    with pytest.raises(DataValidationError) as caught:
        _load_with(small_experiment, change(small_experiment.tables["invitations"].copy()))
    (problem,) = caught.value.problems
    assert (problem.table, problem.column, problem.rule) == ("invitations", column, rule)
    assert problem.n_rows >= 1 and problem.examples
    assert f"invitations.{column}: {rule}" in str(caught.value)


def test_assignment_after_churn_is_refused(small_experiment):
    customers = small_experiment.tables["customers"]
    churned = customers.dropna(subset=["churned_at"]).iloc[0]
    late = pd.DataFrame({"customer_id": [churned["customer_id"]],
                         "assigned_at": [churned["churned_at"] + pd.Timedelta(days=3)],
                         "arm": ["invite"], "community": ["discord"],
                         "experiment": ["late"]})
    invitations = pd.concat([small_experiment.tables["invitations"], late], ignore_index=True)
    with pytest.raises(DataValidationError) as caught:
        _load_with(small_experiment, invitations)
    (problem,) = caught.value.problems
    assert (problem.column, problem.rule, problem.n_rows) == (
        "assigned_at", "assigned after the customer's churned_at", 1)
    assert str(churned["customer_id"]) in problem.examples[0]


def test_same_customer_in_two_experiments_is_allowed_and_counted(small_experiment):
    invitations = small_experiment.tables["invitations"]
    other = invitations.iloc[:5].assign(experiment="second",
                                        arm=lambda t: np.where(t["arm"] == "invite",
                                                               "holdout", "invite"))
    last_month = small_experiment.tables["customers"].iloc[[0]]
    tail = pd.DataFrame({"customer_id": last_month["customer_id"].to_numpy(),
                         "assigned_at": [pd.Timestamp("2023-12-20")], "arm": ["invite"],
                         "community": ["discord"], "experiment": ["too-late"]})
    dataset = _load_with(small_experiment, pd.concat([invitations, other, tail],
                                                     ignore_index=True))
    accounting = dataset.report["row_accounting"]["invitations"]
    assert accounting["read"] == len(invitations) + 5 + 1
    assert accounting["excluded"] == {"invitations_no_months_to_follow": 1}
    assert accounting["read"] == accounting["used"] + 1
    assert dataset.report["excluded"]["invitations_no_months_to_follow"] == 1


@pytest.fixture(scope="module")
def experiment_run(tmp_path_factory):
    """A run without the Bayesian models on a 3000-customer world with an experiment."""
    from roi.config import RunConfig, SamplerSettings
    from roi.run import run_models

    world = simulate_world(n_customers=3000, months=18, seed=2, experiment_share=1.0,
                           experiment_month=3)
    folder = tmp_path_factory.mktemp("experiment-world")
    world.write(folder)
    out = tmp_path_factory.mktemp("experiment-run")
    config = RunConfig(seed=3, sampler=SamplerSettings(models=()))
    outputs = run_models(folder, out=out, progress=False, config=config, pdf=False)
    return world, outputs, out


def test_run_reports_the_experiment_and_uses_it_for_the_community(experiment_run):
    world, outputs, out = experiment_run
    results = json.loads((out / "results.json").read_text())
    (entry,) = results["community_experiment"]["experiments"]
    lift = results["community_revenue_lift"]
    discord = lift["by_community"]["discord"]
    assert discord["source"] == "experiment invite-2023"
    assert discord["estimate"] == pytest.approx(entry["cace_per_member_month"]["estimate"])
    preferred = lift["preferred"]
    observed = lift["estimates_by_community"][preferred]["discord"]
    assert entry["observational"]["estimate"] == pytest.approx(observed["estimate"])
    assert "source" not in observed and "source" not in lift["by_community"]["forum"]
    assert entry["agreement"]["agree"] in (True, False)
    assert any("randomized experiment" in n for n in results["diagnostics"]["run"]["warnings"])
    row = next(r for r in results["comparison"] if r["name"] == "discord")
    months = lift["member_months_by_community"]["discord"]
    assert row["parts"]["lift_revenue"]["estimate"] == pytest.approx(
        entry["cace_per_member_month"]["estimate"] * months)
    # Part 3's block is on every run; no spike in this world
    assert results["community_revenue_lift"]["join_month_adjusted"]["detected"] is False
    html = (out / "report.html").read_text()
    key = "community_experiment.experiments.0.cace_per_member_month.estimate"
    assert f'data-key="{key}"' in html and "Randomized invitation experiment" in html


def test_simulated_invitations_follow_the_schema(small_experiment, tmp_path):
    from roi.data.schema import TABLES

    spec, table = TABLES["invitations"], small_experiment.tables["invitations"]
    assert set(table.columns) == {*spec.required, *spec.optional}
    assert set(table["arm"]) == {"invite", "holdout"}
    assert table["customer_id"].is_unique
    written = {p.name for p in small_experiment.write(tmp_path)}
    assert "invitations.csv" in written


def test_postgres_gives_the_same_problems_and_experiment(small_experiment, postgres_url,
                                                          tmp_path):
    # The rules and the follow-up run as SQL in the source database: PostgreSQL agrees with
    # the embedded DuckDB on the problems found and on the experiment's numbers.
    from tests.conftest import load_world_into_postgres

    invitations = small_experiment.tables["invitations"].copy()
    invitations.loc[invitations.index[0], "arm"] = "treated"
    broken = {**small_experiment.tables, "invitations": invitations}
    for name, frame in broken.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False, date_format="%Y-%m-%d")
    url = load_world_into_postgres(postgres_url, tmp_path, "invitation_rules")
    with pytest.raises(DataValidationError) as caught:
        load_dataset(open_source(url))
    (problem,) = caught.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("invitations", "arm", 1)
    folder = tmp_path / "clean"
    small_experiment.write(folder)
    url = load_world_into_postgres(postgres_url, folder, "invitation_experiment")
    pg, duck = (_experiment_block_from(open_source(u)) for u in (url, folder))
    assert pg["experiments"][0]["customers"] == duck["experiments"][0]["customers"]
    assert pg["experiments"][0]["cace_per_member_month"]["estimate"] == pytest.approx(
        duck["experiments"][0]["cace_per_member_month"]["estimate"], rel=1e-9)


def _experiment_block_from(source):
    dataset = load_dataset(source)
    panel = dataset.customer_month_panel()
    invitations = fetch_frame(dataset.engine, sa.select(dataset.tables["invitations"]))
    return community_experiment(panel, invitations, end_month=int(panel["month_index"].max()))
