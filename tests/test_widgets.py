"""Dashboards on the sample run, driven without a browser: change a dropdown, check the display.

The run is the session fixture ``sample_run`` (tests/conftest.py), opened as a notebook opens a
finished run (its output folder, ``results.json`` or the loaded dict: nothing is refitted);
the paid media explorer is also driven with results that have every contract section 4 block
filled (``tests.test_reports.full_results``) and with today's spend-only block.
"""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from roi.run import RunOutputs
from roi.widgets import (
    budget_panel,
    data_overview,
    lift_explorer,
    paid_media_explorer,
    retention_explorer,
)
from roi.widgets._common import open_run, sentence
from roi.widgets.budget import signed_money
from tests.test_reports import empty_results, full_results, resolve


@pytest.fixture(scope="module")
def outputs(sample_run) -> RunOutputs:
    return sample_run


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


def _sources(run) -> list:
    """A finished run as a notebook may hold it: folder, results.json path, loaded dict."""
    return [run.out, str(Path(run.out, "results.json")),
            json.loads(Path(run.out, "results.json").read_text())]


@pytest.mark.parametrize("dashboard", [data_overview, lift_explorer, retention_explorer,
                                       paid_media_explorer, budget_panel])
def test_every_dashboard_opens_a_finished_run_as_folder_file_or_dict(outputs, dashboard):
    shown = {repr(dashboard(source)) for source in _sources(outputs)}
    assert len(shown) == 1  # the same numbers whichever way the run is opened
    assert shown == {repr(dashboard(outputs))}


def test_lift_explorer_follows_the_community_dropdown(outputs):
    explorer = lift_explorer(outputs.out)
    did, naive = outputs.revenue["did"], outputs.revenue["naive"]
    assert explorer.estimator.value == outputs.results["community_revenue_lift"]["preferred"]
    explorer.estimator.value = "did"
    assert f"${did.estimate:,.2f}" in explorer.summary.value
    assert f"${naive.estimate:,.2f}" in explorer.summary.value
    assert _has_png(explorer.plot) and "did, All communities" in _text(explorer.plot)
    communities = outputs.results["data"]["communities"]
    assert sorted(v for _, v in explorer.community.options if v) == communities
    for community in communities:
        before = explorer.summary.value
        explorer.community.value = community
        assert explorer.summary.value != before
        assert f"${did.by_group[community]['estimate']:,.2f}" in explorer.summary.value
        assert f"${naive.by_group[community]['estimate']:,.2f}" in explorer.summary.value
        assert f"${did.estimate:,.2f}" not in explorer.summary.value
        # The plot is that community's own event study (the fitted per-community DiD's table)
        assert f"Event study (did, {community})" in _text(explorer.plot)
        assert f"Event study (did, {community})" in explorer.caption.value
        fitted = did.tables["dynamic_by_community"][community]
        shown = explorer.event_study()
        assert shown["e"].tolist() == fitted["e"].tolist()
        assert shown["estimate"].to_numpy() == pytest.approx(fitted["att"].to_numpy(), rel=1e-9)
        assert "download=" in explorer.download.value


def test_lift_explorer_event_study_shades_pre_periods_and_follows_the_estimator(outputs):
    explorer = lift_explorer(outputs.results, min_treated=0)
    explorer.estimator.value = "did"
    dynamic = outputs.revenue["did"].tables["dynamic"]
    pre, post = int((dynamic["e"] < 0).sum()), int((dynamic["e"] >= 0).sum())
    assert f"{pre} months before joining (shaded), {post} months after" in _text(explorer.plot)
    p_value = outputs.revenue["did"].diagnostics.checks["pretrend_event"]["p_value"]
    assert f"p = {p_value:.3f}" in explorer.caption.value
    explorer.estimator.value = "naive"
    assert "No event study for naive" in _text(explorer.plot)
    assert "No event study for naive" in explorer.caption.value
    assert not _has_png(explorer.plot)


def test_sentences_from_results_equal_the_fitted_results(outputs):
    for section, fitted in (("community_revenue_lift", outputs.revenue),
                            ("community_retention_lift", outputs.retention)):
        prefix = "revenue" if section.startswith("community_revenue") else "retention"
        for name, result in fitted.items():
            entry = outputs.results[section]["estimates"][name]
            converged = outputs.results["diagnostics"][f"{prefix}_{name}"]["converged"]
            mine = sentence(name, entry, converged=converged)
            # the same words; the results key names the method (bayes_piecewise is "bayesian")
            assert mine.split(": ", 1) == [name, result.sentence().split(": ", 1)[1]]


def test_retention_explorer_follows_community_and_landmark(outputs):
    from roi.retention.survival_curves import RetentionCurves

    explorer = retention_explorer(outputs.out)
    cox = outputs.retention["cox_time_varying"]
    assert f"{cox.estimate:.3f}" in explorer.table.value
    assert _has_png(explorer.plot)
    # An independent fit of the landmark curves, per community, on the run's survival table
    refit = RetentionCurves().fit(outputs.dataset.survival_table(), community="community")
    retention = refit.retention_
    for community in outputs.results["data"]["communities"]:
        explorer.community.value = community
        assert f"{cox.by_group[community]['hazard_ratio']:.3f}" in explorer.table.value
        assert f"member: {community}" in _text(explorer.plot)
    for month in (12, 6):
        explorer.landmark.value = month
        members = retention[(retention["landmark_month"] == month)
                            & (retention["group"] == f"member: {community}")]
        assert f"{int(members['customers'].iloc[0]):,}" in explorer.table.value
        assert f"{month} months" in _text(explorer.plot)
        shown = explorer.retention_rows()
        shown = shown[shown["group"] == f"member: {community}"]
        assert shown["survival"].to_numpy() == pytest.approx(
            members["retention"].to_numpy(), rel=1e-9)
        assert f"{members['retention'].iloc[-1]:.1%}" in explorer.table.value
    explorer.landmark.value = 0
    assert "all:" in _text(explorer.plot) and "non-member" not in _text(explorer.plot)


def test_retention_curves_in_the_results_hold_the_report_numbers(outputs):
    """The monthly curves read at the horizons give the report's landmark retention."""
    block = outputs.results["community_retention_lift"]["landmark_retention"]
    points = {(p["landmark_month"], p["group"], p["month"]): p
              for p in block["curves"]["points"]}
    for row in block["retention"]:
        point = points[(row["landmark_month"], row["group"], row["horizon_month"])]
        assert point["customers"] == row["customers"]
        for key, value in (("survival", row["retention"]), ("low", row["low"]),
                           ("high", row["high"])):
            assert point[key] == pytest.approx(value, rel=1e-12)
    assert len(json.dumps(block["curves"])) < 100_000  # small enough for results.json


def test_export_defaults_outside_the_notebooks_folder(outputs):
    explorer = lift_explorer(outputs.out)
    assert Path(explorer.export.folder.value) == Path(outputs.out) / "exported"
    assert "notebooks" not in data_overview(outputs.results).export.folder.value


def test_open_run_reads_a_finished_run_and_runs_the_job_once_when_missing(outputs, tmp_path,
                                                                          monkeypatch):
    import roi.run

    assert open_run(outputs.out) == outputs.results
    assert open_run(Path(outputs.out, "results.json")) == outputs.results
    calls = []

    def fake_run_job(source, *, out, progress):
        calls.append((source, Path(out), progress))
        return {"data": {}}

    monkeypatch.setattr(roi.run, "run_job", fake_run_job)
    assert open_run(tmp_path / "out", source="my-data") == {"data": {}}
    assert calls == [("my-data", tmp_path / "out", True)]


# --------------------------------------------------------------------------- budget panel


def test_budget_panel_optimise_with_keep_total_equals_the_python_api():
    from roi.budget import BudgetModel
    from tests.test_budget import COMMUNITIES, paid_results

    results = paid_results(COMMUNITIES)
    panel = budget_panel(results)
    total = sum(panel.spend().values())
    panel.keep_total.value = True
    panel.optimise.click()
    assert sum(panel.spend().values()) == pytest.approx(total, abs=1e-6)
    model = BudgetModel.from_results(results, seed=0)
    bounds = {n: (max(model.spend_range(n)[0], 0.5 * model.current[n]),
                  min(model.spend_range(n)[1], 1.5 * model.current[n])) for n in model.paid}
    best = model.optimise(total=sum(model.current[n] for n in model.paid), bounds=bounds)
    change = best["revenue_change"]
    assert panel.spend() == pytest.approx(best["spend"], abs=1e-9)
    assert signed_money(change["estimate"], "USD") in panel.expected.value
    assert f"total spend ${total:,.2f} (+$0.00)" in panel.expected.value
    # The browser echoes each value snapped to the slider's step: not a move, nothing changes
    expected, notes = panel.expected.value, panel.notes.value
    for slider in panel.sliders.values():
        slider.value = slider.min + round((slider.value - slider.min) / slider.step) * slider.step
    assert panel.spend() == pytest.approx(best["spend"], abs=1e-9)
    assert (panel.expected.value, panel.notes.value) == (expected, notes)
    assert "Optimised" in panel.notes.value
    # A real move (one step) with keep total: the total still holds, exactly
    slider = panel.sliders["alpha"]
    slider.value = slider.value + slider.step
    assert sum(panel.spend().values()) == pytest.approx(total, abs=1e-6)
    assert "Optimised" not in panel.notes.value


def test_budget_panel_readouts_show_dollars_and_change():
    from tests.test_budget import COMMUNITIES, paid_results

    panel = budget_panel(paid_results(COMMUNITIES))
    assert panel.readouts["alpha"].value == "<span>$400.00 (+0.0%)</span>"
    panel.sliders["alpha"].value = 500.0
    assert panel.readouts["alpha"].value == "<span>$500.00 (+25.0%)</span>"
    assert _has_png(panel.chart) and "total spend $3,600.00" in _text(panel.chart)
    assert 'download="comparison.csv"' in panel.table.value


# --------------------------------------------------------------------------- paid media


def _roas_text(entry: dict) -> str:
    return (f"{entry['estimate']:.2f} ({entry['interval']} {entry['low']:.2f} to "
            f"{entry['high']:.2f})")


def test_paid_media_explorer_shows_roas_curves_and_contributions():
    results = full_results()
    channels = results["paid_media"]["channels"]
    explorer = paid_media_explorer(results)
    for name, channel in channels.items():
        assert _roas_text(channel["roas"]) in explorer.table.value
        assert _roas_text(channel["marginal_roas"]) in explorer.table.value
        assert f"${channel['spend']:,.2f}" in explorer.table.value
        baseline = results["paid_media"]["regression_baseline"]["channels"][name]["roas"]
        assert _roas_text(baseline) in explorer.table.value
    assert _has_png(explorer.curves) and _has_png(explorer.contributions)
    assert _text(explorer.curves) == f"Response curves (mean, 94% HDI) for {', '.join(channels)}."
    explorer.channel.value = "search"
    assert _text(explorer.curves) == "Response curves (mean, 94% HDI) for search."
    assert _text(explorer.contributions) == "Weekly contributions, 4 weeks, for search."
    assert _roas_text(channels["search"]["roas"]) in explorer.table.value
    assert _roas_text(channels["video"]["roas"]) not in explorer.table.value
    assert repr(explorer) == f"PaidMediaExplorer [search]: search ROAS " \
                             f"{_roas_text(channels['search']['roas'])}"


def test_paid_media_explorer_curve_band_is_the_hdi_of_the_draws():
    from roi.widgets.paid_media import curve_series

    paid = full_results()["paid_media"]
    spend, mean, low, high = curve_series(paid)["search"]
    draws = paid["response_curves"]["draws"]["search"]
    column = sorted(row[2] for row in draws)  # multiplier 1.0
    assert spend == paid["response_curves"]["spend"]["search"]
    assert mean[2] == pytest.approx(sum(column) / len(column), rel=1e-12)
    assert column[0] <= low[2] < mean[2] < high[2] <= column[-1]
    inside = sum(low[2] <= value <= high[2] for value in column)
    assert inside == 38  # ceil(0.94 * 40) draws in the narrowest interval


def test_paid_media_explorer_without_the_model_says_why():
    results = empty_results()
    explorer = paid_media_explorer(results)
    assert _text(explorer.curves) == ("No response curves in this run: the media-mix model "
                                      "did not run.")
    assert _text(explorer.contributions) == "No weekly contributions in this run."
    for channel in results["paid_media"]["channels"].values():
        assert f"${channel['spend']:,.2f}" in explorer.table.value
    # ROAS, marginal ROAS, revenue caused and regression ROAS for each of 4 channels
    assert explorer.table.value.count("not estimated") == 16


def test_paid_media_explorer_marks_an_unconverged_model():
    results = full_results()
    results["paid_media"]["converged"] = False
    explorer = paid_media_explorer(results)
    assert "NOT CONVERGED - do not rely on it" in explorer.table.value
    assert "[NOT CONVERGED - do not rely on it]" in repr(explorer)


def test_paid_media_explorer_on_the_run(outputs):
    explorer = paid_media_explorer(outputs)
    for channel in outputs.results["paid_media"]["channels"].values():
        assert f"${channel['spend']:,.2f}" in explorer.table.value
        if isinstance(channel.get("roas"), dict):
            assert _roas_text(channel["roas"]) in explorer.table.value


# --------------------------------------------------------------------------- export


class _Keys(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-key" in attrs:
            self.values[attrs["data-key"]] = attrs["data-value"]


def test_export_button_writes_the_reports_and_shows_the_paths(tmp_path):
    results = full_results()
    explorer = paid_media_explorer(results)
    explorer.export.folder.value = str(tmp_path / "exported")
    explorer.export.pdf.value = False
    explorer.export.button.click()
    written = explorer.export.written
    assert sorted(written) == ["html", "xlsx"]
    for path in written.values():
        assert path.is_file() and str(path.resolve()) in explorer.export.paths.value
    parser = _Keys()
    parser.feed(Path(written["html"]).read_text())
    key = "paid_media.channels.search.roas.estimate"
    assert float(parser.values[key]) == resolve(results, key)
    assert len(parser.values) > 100


def test_export_without_chromium_writes_html_and_excel_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("ROI_CHROMIUM", str(tmp_path / "no-such-chromium"))
    overview = data_overview(empty_results())
    overview.export.folder.value = str(tmp_path)
    overview.export.pdf.value = True
    overview.export.button.click()
    assert "report.pdf not written" in overview.export.paths.value
    assert "Debian package" in overview.export.paths.value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.xlsx"]
