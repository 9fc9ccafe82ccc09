"""Dashboards on the sample run, driven without a browser: change a dropdown, check the display."""

from __future__ import annotations

import atexit
import base64
import functools
import shutil
import tempfile

import pytest

from roi.config import RunConfig, SamplerSettings
from roi.run import RunOutputs, run_models
from roi.widgets import data_overview, lift_explorer, retention_explorer
from tests.conftest import SAMPLE


@functools.cache
def sample_outputs() -> RunOutputs:
    """One run of every model on data/sample, shared by this module and test_notebooks."""
    out = tempfile.mkdtemp(prefix="roi-widgets-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    # The notebooks' parameters (seed 7, 200 draws), so sampled numbers match theirs exactly.
    config = RunConfig(seed=7, sampler=SamplerSettings(draws=200))
    outputs = run_models(SAMPLE, out=out, progress=False, config=config, pdf=False)
    outputs.out = out
    return outputs


@pytest.fixture(scope="module")
def outputs() -> RunOutputs:
    return sample_outputs()


def _text(output_widget) -> str:
    (message,) = output_widget.outputs
    return message["data"]["text/plain"]


def _has_png(output_widget) -> bool:
    (message,) = output_widget.outputs
    png = message["data"].get("image/png")
    return png is not None and base64.b64decode(png)[:4] == b"\x89PNG"


def test_data_overview_shows_counts_window_link_rate_exclusions_and_warnings(outputs):
    data = outputs.results["data"]
    for source in (outputs, outputs.results, f"{outputs.out}/results.json", outputs.out):
        html = data_overview(source).table.value
        assert f"{data['customers']:,}" in html and f"{data['orders']:,}" in html
        assert f"{data['start']} to {data['end']}" in html
        assert f"{data['identity']['link_rate']:.1%}" in html
        for reason, count in data["excluded"].items():
            assert f"excluded: {reason}" in html and f"{count:,}" in html
        assert data["source"] in html
    warning = outputs.revenue["did"].diagnostics.warnings[0]
    assert warning in data_overview(outputs).table.value


def test_lift_explorer_follows_the_community_dropdown(outputs):
    explorer = lift_explorer(outputs)
    did, naive = outputs.revenue["did"], outputs.revenue["naive"]
    assert explorer.estimator.value == outputs.results["community_revenue_lift"]["preferred"]
    assert f"${did.estimate:,.2f}" in explorer.summary.value
    assert f"${naive.estimate:,.2f}" in explorer.summary.value
    assert _has_png(explorer.plot) and "all communities" in _text(explorer.plot)
    communities = outputs.results["data"]["communities"]
    assert sorted(v for _, v in explorer.community.options if v) == communities
    for community in communities:
        before = explorer.summary.value
        explorer.community.value = community
        assert explorer.summary.value != before
        assert f"${did.by_group[community]['estimate']:,.2f}" in explorer.summary.value
        assert f"${naive.by_group[community]['estimate']:,.2f}" in explorer.summary.value
        assert f"${did.estimate:,.2f}" not in explorer.summary.value
        assert community in _text(explorer.plot)


def test_lift_explorer_event_study_shades_pre_periods_and_follows_the_estimator(outputs):
    explorer = lift_explorer(outputs, min_treated=0)
    dynamic = outputs.revenue["did"].tables["dynamic"]
    pre, post = int((dynamic["e"] < 0).sum()), int((dynamic["e"] >= 0).sum())
    assert f"{pre} months before joining (shaded), {post} months after" in _text(explorer.plot)
    explorer.estimator.value = "naive"
    assert "No event study for naive" in _text(explorer.plot)
    assert not _has_png(explorer.plot)


def test_retention_explorer_follows_community_and_landmark(outputs):
    explorer = retention_explorer(outputs)
    cox = outputs.retention["cox_time_varying"]
    assert f"{cox.estimate:.3f}" in explorer.table.value
    assert _has_png(explorer.plot)
    for community in outputs.results["data"]["communities"]:
        explorer.community.value = community
        assert f"{cox.by_group[community]['hazard_ratio']:.3f}" in explorer.table.value
        assert f"member: {community}" in _text(explorer.plot)
    retention = explorer.curves.retention_
    for month in (12, 6):
        explorer.landmark.value = month
        members = retention[(retention["landmark_month"] == month)
                            & (retention["group"] == f"member: {community}")]
        assert f"{int(members['customers'].iloc[0]):,}" in explorer.table.value
        assert f"{month} months" in _text(explorer.plot)
        assert f"{members['retention'].iloc[-1]:.1%}" in explorer.table.value
    explorer.landmark.value = 0
    assert "all:" in _text(explorer.plot) and "non-member" not in _text(explorer.plot)
