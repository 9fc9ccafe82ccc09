"""``roi run`` above its row budget (issue 19): the sums come from every customer, the row-level
estimators from a random sample of customers, and every number computed on the sample says so
beside it.

One run of the sample with ``[scale] max_panel_rows = 20000`` (about half the customers'
rows; Bayesian models off, they fit cells of every customer and have their own tests) against
the session's full run (``sample_run``, same seed):

* naive gap, both DiDs, join-month block, member-months, the piecewise-exponential hazard,
  the landmark curves and the engagement tiers' DiDs are the full run's numbers (1e-9);
* regression adjustment, AIPW and the Cox models carry the sample's sentence and its figures;
  the retention value is scaled up to every customer; the report shows the sentence in the
  caveats of those rows and in the data section.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import SAMPLE

BUDGET = 20_000


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, sample_run):
    from roi.config import RunConfig, SamplerSettings, ScaleSettings
    from roi.run import run_models
    from tests.conftest import SAMPLE_RUN

    out = tmp_path_factory.mktemp("scaled-run")
    config = RunConfig(seed=SAMPLE_RUN["seed"], sampler=SamplerSettings(models=()),
                       scale=ScaleSettings(max_panel_rows=BUDGET))
    run_models(SAMPLE, out=out, progress=False, config=config, pdf=False)
    return json.loads((out / "results.json").read_text()), (out / "report.html").read_text()


@pytest.fixture(scope="module")
def full(sample_run):
    return json.loads((sample_run.out / "results.json").read_text())


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _sample_warning(results: dict, key: str) -> bool:
    warnings = results["diagnostics"][key]["warnings"]
    return any("random" in w and "max_panel_rows" in w for w in warnings)


def test_the_run_records_its_sample(scaled):
    results, _ = scaled
    sample = results["data"]["customer_sample"]
    assert sample["max_panel_rows"] == BUDGET
    assert sample["panel_rows"] > BUDGET and 0 < sample["customers"] < sample["population"]
    assert abs(sample["fraction"] - BUDGET / sample["panel_rows"]) < 1 / 65536
    assert any("random" in note for note in results["data"]["notes"])
    assert results["config"]["scale"] == {"max_panel_rows": BUDGET}


@pytest.mark.parametrize("name", ["naive", "did", "did_multiplicative"])
def test_sums_over_every_customer_equal_the_full_run(scaled, full, name):
    results, _ = scaled
    ours = results["community_revenue_lift"]["estimates"][name]
    theirs = full["community_revenue_lift"]["estimates"][name]
    assert _close(ours, theirs), name
    assert not _sample_warning(results, f"revenue_{name}")
    for key in ("member_months", "member_months_by_community", "join_month_adjusted"):
        assert _close(results["community_revenue_lift"][key],
                      full["community_revenue_lift"][key]), key


def test_retention_from_every_customer_equals_the_full_run(scaled, full):
    results, _ = scaled
    retention = results["community_retention_lift"]
    assert _close(retention["estimates"]["piecewise_exponential"],
                  full["community_retention_lift"]["estimates"]["piecewise_exponential"])
    assert _close(retention["landmark_retention"],
                  full["community_retention_lift"]["landmark_retention"])
    # Cox read the sample: the run prefers the hazard of every customer
    assert retention["preferred"] == "piecewise_exponential"
    assert full["community_retention_lift"]["preferred"] == "cox_time_varying"


def test_estimates_on_the_sample_say_so_beside_their_number(scaled):
    results, html = scaled
    for key in ("revenue_regression", "revenue_aipw", "retention_cox_time_varying",
                "retention_naive"):
        assert _sample_warning(results, key), key
        assert results["diagnostics"][key]["checks"]["customer_sample"]["max_panel_rows"] \
            == BUDGET
    money = results["community_retention_lift"]["retention_revenue"]
    factor = money["customer_sample"]["expansion_factor"]
    sample = results["data"]["customer_sample"]
    assert math.isclose(factor, sample["population"] / sample["customers"])
    assert "scaled up to every customer" in money["customer_sample"]["note"]
    assert html.count("max_panel_rows") >= 5   # each sampled row's caveats, data, retention


def test_engagement_tiers_from_every_customer(scaled, full):
    results, _ = scaled
    ours = results["community_engagement"]["tiers"]["by_tier"]
    theirs = full["community_engagement"]["tiers"]["by_tier"]
    assert ours.keys() == theirs.keys() and ours
    for tier, entry in ours.items():
        assert entry["members"] == theirs[tier]["members"]
        lift = {k: v for k, v in entry["lift_per_member_month"].items() if k != "warnings"}
        expected = {k: v for k, v in theirs[tier]["lift_per_member_month"].items()
                    if k != "warnings"}
        assert _close(lift, expected), tier
