"""The bottom line in revenue and profit (issue 15): gross margin from the config, profit per
dollar = margin x revenue per dollar, a verdict against break-even at 1/margin, and the same
lines in the terminal, the HTML summary and the workbook, caveats beside the numbers.

Real runs use the 600-customer small world without Bayesian models (``[sampler] models = []``,
about 10 s each); verdict, caveat and convergence cases use constructed results dicts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from roi.bottom_line import bottom_line, bottom_line_text
from roi.cli import print_bottom_line
from roi.comparison import add_bottom_line, build_comparison, judge
from roi.config import ConfigError, RunConfig, load_config
from roi.reports.excel import build_workbook
from roi.reports.html import render_html
from roi.reports.media import break_even_text
from tests.conftest import SAMPLE, run_cli

MARGIN = 0.6


def entry(estimate: float, low: float, high: float, interval: str = "95% CI") -> dict:
    return {"estimate": estimate, "low": low, "high": high, "interval": interval}


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def margin_runs(small_world, tmp_path_factory) -> dict[str, tuple[Path, str, dict]]:
    """The small world run twice through ``roi run``, with ``gross_margin = 0.6`` and without
    a margin, no Bayesian model: {"margin"/"none": (out folder, stdout, results)}."""
    runs = {}
    for name, margin_line in (("margin", f"gross_margin = {MARGIN}\n"), ("none", "")):
        root = tmp_path_factory.mktemp(f"bottom-line-{name}")
        config = root / "roi.toml"
        config.write_text(f"seed = 11\n{margin_line}[sampler]\nmodels = []\n")
        code, stdout, stderr = run_cli(["run", str(small_world / "data"), "--out",
                                        str(root / "out"), "--config", str(config), "--no-pdf",
                                        "--no-progress"])
        assert code == 0, stderr[-3000:]
        results = json.loads((root / "out" / "results.json").read_text())
        runs[name] = (root / "out", stdout, results)
    return runs


def expected_verdict(per_dollar: dict | None, level: float) -> str:
    if per_dollar is None:
        return "cannot tell"
    if per_dollar["low"] > level:
        return "pays back"
    return "does not pay back" if per_dollar["high"] < level else "cannot tell"


def test_a_margin_of_0_6_gives_profit_0_6_times_revenue_and_break_even_1_over_0_6(margin_runs):
    _, _, results = margin_runs["margin"]
    _, _, plain = margin_runs["none"]
    assert results["gross_margin"] == MARGIN and results["config"]["gross_margin"] == MARGIN
    assert results["break_even_revenue_per_dollar"] == pytest.approx(1 / 0.6, rel=1e-12)
    with_numbers = [row for row in results["comparison"] if row["revenue_per_dollar"]]
    assert {row["kind"] for row in with_numbers} == {"community"}   # no media-mix model
    assert len(with_numbers) >= 2
    for row in results["comparison"]:
        rpd, profit = row["revenue_per_dollar"], row["profit_per_dollar"]
        assert row["verdict"] == expected_verdict(rpd, 1 / 0.6), row["name"]
        if rpd is None:
            assert profit is None and row["verdict_reason"]
            continue
        for key in ("estimate", "low", "high"):
            assert profit[key] == pytest.approx(0.6 * rpd[key], rel=1e-12)
        assert profit["interval"] == rpd["interval"]
        assert "break_even_margin" not in row
    # The margin changes the yardstick only: revenue per dollar is the no-margin run's.
    for row, same in zip(results["comparison"], plain["comparison"], strict=True):
        assert row["name"] == same["name"]
        if row["revenue_per_dollar"]:
            assert row["revenue_per_dollar"]["estimate"] == pytest.approx(
                same["revenue_per_dollar"]["estimate"], rel=1e-9)


def test_without_a_margin_the_figures_are_revenue_with_the_margin_that_breaks_even(margin_runs):
    _, stdout, results = margin_runs["none"]
    assert results["gross_margin"] is None and results["break_even_revenue_per_dollar"] is None
    for row in results["comparison"]:
        rpd = row["revenue_per_dollar"]
        assert row["profit_per_dollar"] is None
        assert row["verdict"] == expected_verdict(rpd, 1.0)
        if rpd is not None and rpd["estimate"] > 0:
            assert row["break_even_margin"] == pytest.approx(1 / rpd["estimate"], rel=1e-12)
    assert "No gross margin configured: the figures are revenue" in stdout
    assert "margin to break even" in stdout and "profit per $1" not in stdout


def test_roi_run_prints_the_bottom_line_one_line_per_channel_and_community(margin_runs):
    _, stdout, results = margin_runs["margin"]
    assert "Gross margin 60%: spend pays back when each $1 brings more than $1.67" in stdout
    lines = stdout.splitlines()
    for row in results["comparison"]:
        (line,) = [x for x in lines if re.match(rf"\s+{row['name']}\s+{row['kind']}\s", x)]
        assert row["verdict"] in line
        if row["revenue_per_dollar"]:
            rpd, profit = row["revenue_per_dollar"], row["profit_per_dollar"]
            assert f"${rpd['estimate']:,.2f} [" in line and f"${profit['estimate']:,.2f} [" in line
            assert "did (preferred)" in line   # the preferred revenue-lift method, marked
        else:
            assert "was not fitted" in line    # why, on the same line


def test_reports_open_with_the_bottom_line(margin_runs):
    out, _, results = margin_runs["margin"]
    page = (out / "report.html").read_text()
    summary = page[page.index('<section id="summary">'):]
    first_table = summary[:summary.index("</table>")]
    assert "Profit per $1 [interval]" in first_table and "Verdict" in first_table
    for index, row in enumerate(results["comparison"]):
        if row["profit_per_dollar"]:
            key = f'data-key="comparison.{index}.profit_per_dollar.estimate"'
            value = re.search(rf'{key} data-value="([^"]+)"', first_table).group(1)
            assert float(value) == row["profit_per_dollar"]["estimate"]
    sheet = load_workbook(out / "report.xlsx")["Bottom line"]
    assert sheet["B3"].value == pytest.approx(0.6) and sheet["B4"].value == pytest.approx(1 / 0.6)
    header = [c.value for c in sheet[6]]
    table = {r[0]: dict(zip(header, r, strict=True)) for r in sheet.iter_rows(
        min_row=7, values_only=True) if r[0]}
    for row in results["comparison"]:
        got = table[row["name"]]
        assert got["Verdict"] == row["verdict"]
        if row["profit_per_dollar"]:
            assert isinstance(got["Profit per dollar"], float)
            assert got["Profit per dollar"] == pytest.approx(row["profit_per_dollar"]["estimate"])


def test_a_rejecting_pre_trend_test_sits_beside_the_community_numbers(tmp_path):
    """The bundled sample (a simulated world whose DiD pre-trend test rejects, issue 15): the
    caveat is on each community's line in the terminal and in the report's first table."""
    config = tmp_path / "roi.toml"
    config.write_text("seed = 7\ngross_margin = 0.6\n[sampler]\nmodels = []\n")
    code, stdout, stderr = run_cli(["run", str(SAMPLE), "--out", str(tmp_path / "out"),
                                    "--config", str(config), "--no-pdf", "--no-progress"])
    assert code == 0, stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["community_revenue_lift"]["preferred"] == "did"
    p_value = results["diagnostics"]["revenue_did"]["checks"]["pretrend_event"]["p_value"]
    assert p_value < 0.05   # 0.018 when measured
    caveat = f"pre-trend test rejects parallel trends (p = {p_value:.3f})"
    page = (tmp_path / "out" / "report.html").read_text()
    summary = page[page.index('<section id="summary">'):]
    first_table = summary[:summary.index("</table>")]
    communities = [r for r in results["comparison"] if r["kind"] == "community"]
    assert len(communities) == 2
    for row in communities:
        line = line_of(stdout, row["name"])
        assert caveat in line and f"${row['revenue_per_dollar']['estimate']:,.2f} [" in line
        html_row = first_table[first_table.index(f">{row['name']}<"):]
        assert caveat in html_row[:html_row.index("</tr>")]


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (2.1, 3.0, "pays back"),
    (0.5, 1.9, "does not pay back"),
    (1.5, 2.5, "cannot tell"),
    (2.0, 3.0, "cannot tell"),      # touching break-even is not above it
])
def test_verdict_against_break_even_at_one_over_the_margin(low, high, verdict):
    row = add_bottom_line({"revenue_per_dollar": entry((low + high) / 2, low, high),
                           "notes": []}, margin=0.5)
    assert row["verdict"] == verdict
    assert row["profit_per_dollar"]["low"] == pytest.approx(0.5 * low)
    assert ("2.00" in row["verdict_reason"]) and f"{low:.2f} to {high:.2f}" in row["verdict_reason"]


def test_a_refused_or_unconverged_row_cannot_tell_and_says_why():
    refused = add_bottom_line({"revenue_per_dollar": None, "notes": [
        "no revenue lift per member-month or member-months for forum: incremental revenue not "
        "estimated"]}, margin=0.5)
    assert refused["verdict"] == "cannot tell" and refused["profit_per_dollar"] is None
    assert refused["verdict_reason"].startswith("no revenue lift per member-month")
    unconverged = add_bottom_line({"revenue_per_dollar": {**entry(9.0, 8.0, 10.0),
                                                          "converged": False}, "notes": []},
                                  margin=0.5)
    assert unconverged["verdict"] == "cannot tell"     # 8 to 10 is far above 2, but unconverged
    assert unconverged["verdict_reason"] == "from a model that did not converge"
    assert judge(None, break_even_at=1.0) == ("cannot tell", "revenue per dollar not estimated")


def test_without_a_margin_the_row_gives_the_margin_that_breaks_even():
    row = add_bottom_line({"revenue_per_dollar": entry(2.5, 1.2, 3.8), "notes": []}, margin=None)
    assert row["verdict"] == "pays back"               # 1.2 > 1: pays back on revenue
    assert row["profit_per_dollar"] is None and row["break_even_margin"] == pytest.approx(0.4)
    losing = add_bottom_line({"revenue_per_dollar": entry(-0.5, -1.0, 0.2), "notes": []},
                             margin=None)
    assert losing["verdict"] == "does not pay back" and losing["break_even_margin"] is None


# --------------------------------------------------------------------------- terminal


def world(*, margin: float | None = 0.5) -> dict:
    """Two paid channels (one pays back at margin 0.5, one does not), two communities (forum
    with numbers, discord refused), the DiD's pre-trend test rejecting."""
    results = {
        "gross_margin": margin,
        "data": {"communities": ["forum", "discord"],
                 "community_costs": {"forum": 1000.0, "discord": 2000.0}},
        "community_revenue_lift": {
            "preferred": "did", "member_months_by_community": {"forum": 100, "discord": 40},
            "by_community": {"forum": entry(30.0, 10.0, 50.0),
                             "discord": {"estimate": None, "low": None, "high": None,
                                         "interval": "95% CI", "converged": False,
                                         "refused": "no member of discord joined in the window"}}},
        "community_retention_lift": {"retention_revenue": {
            "source": "cox_time_varying", "by_community": {
                "forum": {"revenue": entry(700.0, 400.0, 1000.0)},
                "discord": {"revenue": entry(1000.0, 800.0, 1300.0)}}}},
        "paid_media": {"method": "mmm", "converged": True, "channels": {
            "zeta": {"spend": 1000.0, "roas": entry(3.0, 2.5, 3.6, "94% HDI")},
            "alpha": {"spend": 400.0, "roas": entry(1.2, 0.9, 1.8, "94% HDI")}}},
        "diagnostics": {"revenue_did": {"converged": True, "warnings": [], "checks": {
            "pretrend_event": {"statistic": 21.4, "df": 10, "p_value": 0.018}}}},
    }
    results["comparison"] = build_comparison(results)
    return results


def line_of(text: str, name: str) -> str:
    (line,) = [x for x in text.splitlines() if re.match(rf"\s+{name}\s", x)]
    return line


def test_terminal_bottom_line_has_verdicts_and_caveats_beside_the_numbers(capsys):
    print_bottom_line(world())
    text = capsys.readouterr().out
    assert "more than $2.00 of revenue" in text
    assert "$3.00 [$2.50 to $3.60]" in line_of(text, "zeta")
    assert "$1.50 [$1.25 to $1.80]" in line_of(text, "zeta")
    assert "pays back" in line_of(text, "zeta")
    assert "does not pay back" in line_of(text, "alpha")
    forum = line_of(text, "forum")   # 3700 / 1000, its interval straddles 2
    assert "$3.70 [$1.68 to $5.72]" in forum and "cannot tell" in forum
    assert "pre-trend test rejects parallel trends (p = 0.018)" in forum
    discord = line_of(text, "discord")
    assert "n/a" in discord and "cannot tell" in discord
    assert "did lift refused for discord: no member of discord joined" in discord
    assert "NOT CONVERGED" not in text
    assert "Intervals: paid 94% HDI; community 95% CI (combined)." in text


def test_terminal_flags_numbers_of_an_unconverged_model():
    results = world()
    results["paid_media"]["converged"] = False
    results["paid_media"]["channels"]["zeta"]["roas"] = {**entry(0.72, 0.5, 0.9, "94% HDI"),
                                                        "converged": False}
    results["diagnostics"]["paid_media_mmm"] = {"converged": False, "warnings": ["r-hat 1.4"]}
    results["comparison"] = build_comparison(results)
    assert results["comparison"][0]["revenue_per_dollar"] is None   # the row holds no number
    text = bottom_line_text(results)
    zeta = line_of(text, "zeta")
    assert "$0.72 [$0.50 to $0.90] NOT CONVERGED" in zeta
    assert "$0.36 [$0.25 to $0.45] NOT CONVERGED" in zeta and "cannot tell" in zeta
    assert "did not converge: its ROAS shown for reference only" in zeta
    assert "no ROAS" not in zeta   # the row's own note would contradict the number shown
    assert "NOT CONVERGED" not in line_of(text, "forum")
    (zeta_line,) = [line for line in bottom_line(results) if line.name == "zeta"]
    assert zeta_line.revenue_key == "paid_media.channels.zeta.roas"
    assert zeta_line.profit_key is None   # computed, not in results.json


def test_an_unconverged_community_fit_is_flagged_on_its_line_and_names_are_masked():
    results = world()
    results["community_revenue_lift"]["by_community"]["forum"]["converged"] = False
    results["comparison"] = build_comparison(results)
    results["comparison"][3]["name"] = "owner.name@example.org"   # a name is data: masked
    text = bottom_line_text(results)
    forum = line_of(text, "forum")
    assert "$3.70 [$1.68 to $5.72] NOT CONVERGED" in forum and "cannot tell" in forum
    assert "example.org" not in text and "[e-mail removed]" in text


def test_spend_only_paid_block_is_not_estimated_not_unconverged():
    results = world()
    results["paid_media"] = {"converged": False, "warnings": ["media-mix model not run"],
                             "channels": {"zeta": {"spend": 1000.0, "roas": None}}}
    results["comparison"] = build_comparison(results)
    zeta = line_of(bottom_line_text(results), "zeta")
    assert "NOT CONVERGED" not in zeta and "was not fitted" in zeta
    assert "media-mix model not run" in zeta


def test_no_margin_text_says_revenue_and_shows_the_breaking_margin():
    text = bottom_line_text(world(margin=None))
    assert "the figures are revenue" in text and "margin to break even" in text
    assert re.search(r"zeta .*\$3\.00 \[\$2\.50 to \$3\.60\]\s+33%\s+pays back", text)
    assert re.search(r"alpha .*\s83%\s+cannot tell", text)   # 0.9 to 1.8 straddles 1


# --------------------------------------------------------------------------- reports


def test_html_summary_opens_with_the_bottom_line_and_charts_use_break_even():
    results = world()
    page = render_html(results)
    summary = page[page.index('<section id="summary">'):]
    table = summary[:summary.index("</table>")]
    forum_row = table[table.index(">forum<"):]
    forum_row = forum_row[:forum_row.index("</tr>")]
    assert "p = 0.018" in forum_row and "cannot tell" in forum_row
    assert 'data-key="comparison.2.revenue_per_dollar.estimate"' in forum_row
    assert break_even_text(results) == (2.0, "break-even 2.00 at a 50% gross margin")
    assert "break-even 2.00 at a 50% gross margin" in page
    assert break_even_text({})[1] == "1 = break-even on revenue; no gross margin configured"


def test_workbook_bottom_line_stores_numbers_and_flags():
    results = world()
    results["paid_media"]["converged"] = False
    results["comparison"] = build_comparison(results)
    sheet = build_workbook(results)["Bottom line"]
    header = [c.value for c in sheet[6]]
    rows = {r[0]: dict(zip(header, r, strict=True))
            for r in sheet.iter_rows(min_row=7, values_only=True) if r[0]}
    assert rows["zeta"]["Revenue per dollar"] == pytest.approx(3.0)
    assert rows["zeta"]["Profit per dollar"] == pytest.approx(1.5)
    assert rows["zeta"]["Status"].startswith("NOT CONVERGED")
    assert rows["forum"]["Cost"] == 1000.0 and rows["forum"]["Status"] == ""
    assert "p = 0.018" in rows["forum"]["Caveats"]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("value", ["60", "0", "-0.2", "1.5", "true", '"0.6"', "nan"])
def test_gross_margin_outside_0_1_is_refused_naming_the_key_and_the_rule(tmp_path, value):
    path = tmp_path / "roi.toml"
    path.write_text(f"gross_margin = {value}\n")
    with pytest.raises(ConfigError, match=r"gross_margin = .*must be a number in \(0, 1\]"):
        load_config(path)


def test_gross_margin_defaults_to_not_configured(tmp_path):
    assert RunConfig().gross_margin is None and load_config(None).gross_margin is None
    path = tmp_path / "roi.toml"
    path.write_text("gross_margin = 1\n")
    assert load_config(path).gross_margin == 1.0
    assert RunConfig(gross_margin=0.6).to_dict()["gross_margin"] == 0.6
    with pytest.raises(ConfigError, match="gross_margin"):
        RunConfig(gross_margin=1.5)


def test_pooled_sensitivity_is_labelled_and_written_once_across_many_communities():
    """30-community worlds: small communities have no sensitivity of their own. Their line must
    say the sentence is the pooled one (not theirs), and each pooled sentence appears in full
    once, the other lines referring to it, so the table stays readable."""
    results = world(margin=None)
    results["community_revenue_lift"]["sensitivity"] = {
        "summary": "POOLED M.", "by_community": {"discord": {"summary": "DISCORD M."}},
        "robustness_value": {"method": "aipw", "benchmark_summary": "BENCH."}}
    names = ["discord", *(f"c{i:02d}" for i in range(5))]
    rows = [row for row in results["comparison"] if row["kind"] == "paid"]
    rows += [{"name": n, "kind": "community", "cost": 10.0, "notes": [],
              "revenue_per_dollar": entry(2.0, 1.5, 2.5)} for n in names]
    results["comparison"] = rows
    lines = {line.name: [c for c in line.caveats if c.startswith("sensitivity")]
             for line in bottom_line(results) if line.kind != "paid"}
    assert "sensitivity: DISCORD M." in lines["discord"]
    assert lines["c00"][0] == ("sensitivity (all communities, none for c00 alone, no month "
                               "before joining with enough members): POOLED M.")
    assert lines["c03"][0].endswith(": as on the c00 line")
    assert lines["c03"][1] == "sensitivity (aipw, all communities): as on the discord line"
    text = " ".join(c for caveats in lines.values() for c in caveats)
    assert text.count("POOLED M.") == 1 and text.count("BENCH.") == 1
