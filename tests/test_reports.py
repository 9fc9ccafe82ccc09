"""Reports opened for real: the HTML parsed, the workbook read back, the PDF rendered to PNG.

The results are a copy of ``roi run data/sample`` (schema_version 1, before the media-mix model),
so these tests need no models; variants of it add what later issues add (ROAS with a 94% HDI,
comparison rows, budget scenarios) and results that did not converge.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openpyxl import load_workbook

from roi.reports import (
    PdfUnavailableError,
    plots,
    write_excel,
    write_html,
    write_pdf,
    write_reports,
)
from roi.reports.excel import SHEETS
from roi.reports.pdf import chromium_path

NOT_CONVERGED = "NOT CONVERGED - do not rely on it"

# `roi run data/sample --out /tmp/rep_out --no-progress` on 2026-11-23.
SAMPLE_RESULTS = json.loads(r"""
{
 "schema_version": 1,
 "generated_at": "2026-11-23T22:09:56+00:00",
 "data": {
  "customers": 3000,
  "orders": 60306,
  "members": 1307,
  "start": "2023-01-01",
  "end": "2024-12-31",
  "excluded": {
   "members_unlinked": 65
  },
  "currency": "USD",
  "churn": {
   "rule": "column",
   "churned_customers": 918
  },
  "identity": {
   "member_rows": 1307,
   "linked_by_customer_id": 884,
   "linked_by_email": 358,
   "unlinked": 65,
   "link_rate": 0.950268
  },
  "members_before_customer": 32,
  "communities": [
   "discord",
   "forum"
  ],
  "channels": [
   "display",
   "search",
   "social",
   "video"
  ],
  "covariates": {
   "segment": "categorical",
   "region": "categorical",
   "acquisition_channel": "categorical",
   "plan": "categorical",
   "employees": "numeric"
  },
  "other_tables": {
   "activity": 24522,
   "ad_spend": 416,
   "community_costs": 192
  },
  "source": "folder data/sample",
  "notes": []
 },
 "community_revenue_lift": {
  "preferred": "did",
  "estimates": {
   "naive": {
    "estimate": 171.5097389112726,
    "low": 149.49731965352407,
    "high": 193.5221581690211,
    "interval": "95% CI"
   },
   "did": {
    "estimate": 42.499238329226536,
    "low": 5.683777767298253,
    "high": 79.31469889115482,
    "interval": "95% CI"
   }
  },
  "by_community": {
   "discord": {
    "estimate": 47.166104909299484,
    "low": -3.9479854854991245,
    "high": 98.2801953040981,
    "interval": "95% CI"
   },
   "forum": {
    "estimate": 33.98292422856126,
    "low": -15.33730873946228,
    "high": 83.3031571965848,
    "interval": "95% CI"
   }
  },
  "member_months": 13419
 },
 "community_retention_lift": {
  "preferred": "cox_time_varying",
  "estimates": {
   "naive": {
    "hazard_ratio": 0.3690346111329446,
    "low": 0.31874185152614876,
    "high": 0.4272628258949273,
    "interval": "95% CI"
   },
   "cox_time_varying": {
    "hazard_ratio": 0.7194500811327043,
    "low": 0.6171532729032929,
    "high": 0.8387031908732391,
    "interval": "95% CI"
   }
  },
  "by_community": {
   "discord": {
    "hazard_ratio": 0.7240304367449678,
    "low": 0.6042531401662046,
    "high": 0.867550432901214,
    "interval": "95% CI",
    "n_treated": 717,
    "events": 156
   },
   "forum": {
    "hazard_ratio": 0.711873670943049,
    "low": 0.5698656163544807,
    "high": 0.8892695204595454,
    "interval": "95% CI",
    "n_treated": 451,
    "events": 93
   }
  }
 },
 "paid_media": {
  "channels": {
   "display": {
    "spend": 289746.11,
    "roas": null,
    "marginal_roas": null
   },
   "search": {
    "spend": 325964.37,
    "roas": null,
    "marginal_roas": null
   },
   "social": {
    "spend": 301818.86,
    "roas": null,
    "marginal_roas": null
   },
   "video": {
    "spend": 300890.17,
    "roas": null,
    "marginal_roas": null
   }
  }
 },
 "comparison": [],
 "diagnostics": {
  "revenue_naive": {
   "converged": true,
   "warnings": [],
   "checks": {}
  },
  "revenue_did": {
   "converged": true,
   "warnings": [
    "135 units treated from the first period on have no pre-period and are left out."
   ],
   "checks": {
    "pretrend": {
     "statistic": null,
     "df": 231,
     "p_value": null
    },
    "control_group": "never_treated",
    "base_period": "varying",
    "anticipation": 0,
    "scale": "additive",
    "n_units": 2522,
    "n_periods": 23,
    "n_cells": 484,
    "cells_without_controls": 0,
    "cells_not_estimable": 0,
    "dropped": {
     "rows_without_outcome": 0,
     "units_treated_from_first_period": 135,
     "units_with_fewer_than_two_periods": 125
    }
   }
  },
  "retention_naive": {
   "converged": true,
   "warnings": [
    "naive: ever-members are credited with the time before they joined (immortal-time bias), so this hazard ratio overstates the community's effect; shown for contrast."
   ],
   "checks": {
    "customers": 3000,
    "events": 918,
    "ever_member_events": 249,
    "references": {},
    "dropped_constant": []
   }
  },
  "retention_cox_time_varying": {
   "converged": true,
   "warnings": [],
   "checks": {
    "engine": "statsmodels PHReg (Efron ties)",
    "seconds": 0.942,
    "newton_step": 1.2068991846275785e-14,
    "customers": 3000,
    "rows": 4120,
    "events": 918,
    "member_events": 249,
    "member_days": 403000.0,
    "non_member_days": 748253.0,
    "covariate_terms": [
     "segment[enterprise]",
     "segment[mid]",
     "region[apac]",
     "region[emea]",
     "region[latam]",
     "acquisition_channel[referral]",
     "acquisition_channel[search]",
     "acquisition_channel[social]",
     "plan[pro]",
     "employees"
    ],
    "references": {
     "segment": "smb",
     "region": "na",
     "acquisition_channel": "organic",
     "plan": "basic"
    },
    "dropped_constant": [],
    "ph_p": {
     "member": 0.6054564555704532,
     "segment[enterprise]": 0.1366751896457212,
     "segment[mid]": 0.0777188393264483,
     "region[apac]": 0.684648925743332,
     "region[emea]": 0.38660034746051686,
     "region[latam]": 0.7658534472939587,
     "acquisition_channel[referral]": 0.14768681591061997,
     "acquisition_channel[search]": 0.42432360613513287,
     "acquisition_channel[social]": 0.689198993625899,
     "plan[pro]": 0.6731867773227727,
     "employees": 0.12089265060216646,
     "GLOBAL": 0.6511881008722009
    }
   }
  },
  "run": {
   "converged": true,
   "warnings": []
  }
 },
 "config": {
  "seed": 20261123,
  "gross_margin": 1.0,
  "churn_rule": "auto",
  "inactivity_days": 180,
  "exclude": [],
  "covariates": null,
  "sampler": {
   "backend": "nutpie",
   "draws": 1000,
   "tune": 1000,
   "chains": 4,
   "target_accept": 0.9
  }
 },
 "environment": {
  "python": "3.11.7",
  "community-roi": "0.1.0",
  "pandas": "2.3.3",
  "statsmodels": "0.15.0",
  "pymc": "5.28.5",
  "nutpie": "0.16.8",
  "sqlalchemy": "2.1.9",
  "duckdb": "2.0.0"
 }
}
""")


def resolve(results, key: str):
    """``"a.b.0.c"`` -> ``results["a"]["b"][0]["c"]``."""
    node = results
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class Collector(HTMLParser):
    """Elements with data-key (text, class, value), img sources, tags, all text, element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[dict] = []
        self.images: list[str] = []
        self.tags: set[str] = set()
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.resources: list[str] = []
        self._open: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("src", "href"):
            if attrs.get(name) and not attrs[name].startswith("#"):
                self.resources.append(attrs[name])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if "data-key" in attrs:
            item = {"key": attrs["data-key"], "value": attrs.get("data-value"),
                    "class": attrs.get("class", ""), "text": "", "next": None}
            if self.numbers and self.numbers[-1]["next"] is None:
                self.numbers[-1]["next"] = attrs.get("class", "")
            self.numbers.append(item)
            self._open.append(item)
        elif tag == "span" and self.numbers and self.numbers[-1]["next"] is None:
            self.numbers[-1]["next"] = attrs.get("class", "")

    def handle_endtag(self, tag):
        if tag == "span" and self._open:
            self._open.pop()

    def handle_data(self, data):
        self.text.append(data)
        for item in self._open:
            item["text"] += data


def parse(path: Path) -> Collector:
    collector = Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    return collector


def shown_matches(text: str, value: float) -> bool:
    """The displayed text is ``value`` rounded as displayed ($1,234.56, 0.72, 95.0%, 1.2e-14)."""
    cleaned = text.replace("$", "").replace(",", "").strip()
    scale = 1.0
    if cleaned.endswith("%"):
        cleaned, scale = cleaned[:-1], 100.0
    shown = float(cleaned)
    if "e" in cleaned.lower():
        return math.isclose(shown, value * scale, rel_tol=1e-3)
    decimals = len(cleaned.split(".")[1]) if "." in cleaned else 0
    return abs(shown - value * scale) <= 0.5 * 10 ** -decimals + 1e-9


def future_results() -> dict:
    """What later issues add: ROAS (94% HDI), comparison rows, budget scenarios."""
    results = copy.deepcopy(SAMPLE_RESULTS)
    for index, channel in enumerate(results["paid_media"]["channels"].values()):
        roas = 1.2 + 0.4 * index
        channel["roas"] = {"estimate": roas, "low": roas - 0.5, "high": roas + 0.6,
                           "interval": "94% HDI"}
        channel["marginal_roas"] = {"estimate": roas / 2, "low": roas / 3, "high": roas / 1.5,
                                    "interval": "94% HDI"}
    results["comparison"] = [
        {"name": "search", "kind": "paid", "cost": 325964.37,
         "incremental_revenue": {"estimate": 521543.0, "low": 358598.8, "high": 717121.6},
         "revenue_per_dollar": {"estimate": 1.6, "low": 1.1, "high": 2.2}},
        {"name": "discord", "kind": "community", "cost": 120000.0,
         "incremental_revenue": {"estimate": 410000.0, "low": 60000.0, "high": 790000.0},
         "revenue_per_dollar": {"estimate": 3.4166, "low": 0.5, "high": 6.5833}},
    ]
    results["budget_scenarios"] = [
        {"scenario": "current", "spend": 1218419.51, "revenue": 2400000.0},
        {"scenario": "+10% search", "spend": 1251015.95, "revenue": 2451000.0},
    ]
    results["diagnostics"]["paid_media"] = {"converged": True, "warnings": [],
                                            "checks": {"r_hat_max": 1.004, "divergences": 0}}
    return results


def unconverged_results() -> dict:
    results = copy.deepcopy(SAMPLE_RESULTS)
    results["community_revenue_lift"]["estimates"]["did"]["converged"] = False
    results["diagnostics"]["revenue_did"]["converged"] = False
    results["diagnostics"]["revenue_did"]["warnings"].append("r-hat 1.31 > 1.01: chains disagree")
    return results


@pytest.fixture(scope="module")
def sample_reports(tmp_path_factory) -> dict[str, Path]:
    return write_reports(SAMPLE_RESULTS, tmp_path_factory.mktemp("reports"), pdf=False)


@pytest.fixture(scope="module")
def sample_html(sample_reports) -> Collector:
    return parse(sample_reports["html"])


# --------------------------------------------------------------------------- HTML


def test_headlines_equal_results_as_displayed(sample_html):
    headlines = {n["key"]: n for n in sample_html.numbers if "headline" in n["class"]}
    expected = {
        "community_revenue_lift.estimates.did.estimate": "$42",
        "community_revenue_lift.estimates.did.low": "$6",
        "community_revenue_lift.estimates.did.high": "$79",
        "community_revenue_lift.estimates.naive.estimate": "$172",
        "community_retention_lift.estimates.cox_time_varying.hazard_ratio": "0.72",
        "community_retention_lift.estimates.cox_time_varying.low": "0.62",
        "community_retention_lift.estimates.cox_time_varying.high": "0.84",
        "community_retention_lift.estimates.naive.hazard_ratio": "0.37",
    }
    assert {k: headlines[k]["text"] for k in expected} == expected
    for key in expected:
        assert float(headlines[key]["value"]) == resolve(SAMPLE_RESULTS, key)
    text = " ".join("".join(sample_html.text).split())
    assert "Each community member-month adds $42 (95% CI $6 to $79)" in text
    assert "Members churn 28% less (hazard ratio 0.72, 95% CI 0.62-0.84)" in text
    assert "a naive comparison says 63% less" in text


def test_every_number_with_a_key_equals_results(sample_html):
    assert len(sample_html.numbers) > 60
    for item in sample_html.numbers:
        value = resolve(SAMPLE_RESULTS, item["key"])
        assert float(item["value"]) == value, item
        assert shown_matches(item["text"], value), item


def test_sections_and_missing_parts_are_said_plainly(sample_html):
    assert {"summary", "comparison", "revenue", "retention", "paid-media", "budget",
            "diagnostics", "data", "assumptions"} <= sample_html.ids
    text = "".join(sample_html.text)
    assert "return on ad spend (ROAS) not estimated in this run" in text
    assert "Comparison of revenue per dollar: not estimated in this run" in text
    assert NOT_CONVERGED not in text and "not-converged-banner" not in sample_html.ids
    for diag in SAMPLE_RESULTS["diagnostics"].values():
        for warning in diag["warnings"]:
            assert warning in text
    assert "95.0%" in text  # identity link rate
    assert "churned_at column" in text


def test_html_is_self_contained(sample_reports, sample_html):
    raw = sample_reports["html"].read_text()
    assert "http://" not in raw and "https://" not in raw
    assert not {"script", "link", "iframe", "object"} & sample_html.tags
    assert sample_html.images and all(src.startswith("data:image/png;base64,")
                                      for src in sample_html.images)
    assert all(src.startswith("data:") for src in sample_html.resources)
    assert "url(" not in raw


def test_unconverged_estimate_is_labelled_loudly(tmp_path):
    results = unconverged_results()
    page = parse(write_html(results, tmp_path / "report.html"))
    text = " ".join("".join(page.text).split())
    assert "not-converged-banner" in page.ids
    headline = next(n for n in page.numbers if "headline" in n["class"]
                    and n["key"] == "community_revenue_lift.estimates.did.estimate")
    assert headline["next"] == "not-converged"
    assert "Each community member-month adds" not in text
    assert "did not converge" in text and text.count(NOT_CONVERGED) >= 4
    assert "r-hat 1.31 > 1.01: chains disagree" in text
    summary = load_workbook(write_excel(results, tmp_path / "report.xlsx"))["Revenue lift"]
    did = next(row for row in summary.iter_rows(values_only=True) if row[:2] == ("all members",
                                                                                 "did"))
    assert did[-1] == NOT_CONVERGED


def test_future_sections_render_with_hdi(tmp_path):
    results = future_results()
    page = parse(write_html(results, tmp_path / "report.html"))
    for item in page.numbers:
        value = resolve(results, item["key"])
        assert float(item["value"]) == value and shown_matches(item["text"], value), item
    keys = {n["key"] for n in page.numbers}
    assert "paid_media.channels.video.roas.estimate" in keys
    assert "comparison.1.revenue_per_dollar.estimate" in keys
    assert "budget_scenarios.1.spend" in keys
    text = "".join(page.text)
    assert "94% HDI" in text and "not estimated in this run" not in text.split("Budget")[0]
    book = load_workbook(write_excel(results, tmp_path / "report.xlsx"))
    rows = list(book["Comparison"].iter_rows(min_row=2, values_only=True))
    assert rows[1][:3] == ("discord", "community", 120000.0) and rows[1][6] == 3.4166
    roas = {r[0]: r[2] for r in book["Paid media"].iter_rows(min_row=2, values_only=True)}
    # openpyxl writes 16 significant digits (Excel keeps 15): equal to that precision
    assert roas == pytest.approx({k: v["roas"]["estimate"]
                                  for k, v in results["paid_media"]["channels"].items()},
                                 rel=1e-15)


@pytest.mark.parametrize("results", [
    {"schema_version": 1},
    {"schema_version": 1, "data": None, "community_revenue_lift": None,
     "community_retention_lift": {"preferred": None, "estimates": {}},
     "paid_media": {"channels": None}, "comparison": None, "diagnostics": None},
])
def test_missing_sections_do_not_crash(tmp_path, results):
    page = parse(write_html(results, tmp_path / "report.html"))
    assert "".join(page.text).count("not estimated in this run") >= 6
    book = load_workbook(write_excel(results, tmp_path / "report.xlsx"))
    assert book.sheetnames == SHEETS


@pytest.mark.parametrize(("path", "value"), [
    (("community_revenue_lift", "preferred"), ["did"]),
    (("community_revenue_lift", "estimates", "did", "estimate"), "42"),
    (("community_revenue_lift", "by_community", "forum"), None),
    (("paid_media", "channels", "video", "roas"), {"estimate": float("nan")}),
    (("diagnostics", "revenue_did", "warnings"), "one warning written as a string"),
    (("data", "churn"), "column"),
])
def test_malformed_values_do_not_crash(tmp_path, monkeypatch, path, value):
    for chart in ("interval_chart", "bar_chart"):  # charts are tested elsewhere; keep this fast
        monkeypatch.setattr(plots, chart, lambda *args, **kwargs: None)
    results = future_results()
    node = results
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    text = "".join(parse(write_html(results, tmp_path / "report.html")).text)
    assert "What the community earns" in text
    if isinstance(value, str) and "warning" in value:
        assert value in text
    assert load_workbook(write_excel(results, tmp_path / "report.xlsx")).sheetnames == SHEETS


def test_everything_is_escaped(tmp_path):
    results = copy.deepcopy(SAMPLE_RESULTS)
    lift = results["community_revenue_lift"]["by_community"]
    lift["<script>alert(1)</script>"] = lift.pop("discord")
    results["data"]["notes"] = ['<img src="https://evil.example/x.png">']
    raw = write_html(results, tmp_path / "report.html").read_text()
    assert "<script>" not in raw and "<img src=\"https" not in raw
    assert "&lt;script&gt;" in raw


# --------------------------------------------------------------------------- Excel


def test_workbook_sheets_and_numbers(sample_reports):
    book = load_workbook(sample_reports["xlsx"])
    assert book.sheetnames == SHEETS
    for sheet in book:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    with pytest.raises(ValueError):
                        float(cell.value.replace(",", "").rstrip("%"))
    lift = {(r[0], r[1]): r for r in book["Revenue lift"].iter_rows(min_row=2, values_only=True)}
    section = SAMPLE_RESULTS["community_revenue_lift"]
    for method, entry in section["estimates"].items():
        assert lift[("all members", method)][3:6] == pytest.approx(
            (entry["estimate"], entry["low"], entry["high"]), rel=1e-15)
    for community, entry in section["by_community"].items():
        assert lift[(community, "did")][3] == pytest.approx(entry["estimate"], rel=1e-15)
    money_cell = book["Revenue lift"]["D2"]
    assert isinstance(money_cell.value, float) and "$" in money_cell.number_format
    hr = book["Retention"]["D3"]
    assert hr.value == pytest.approx(0.7194500811327043, rel=1e-15)
    assert hr.number_format == "0.00"
    spend = {r[0]: r[1] for r in book["Paid media"].iter_rows(min_row=2, values_only=True)}
    assert spend == {k: v["spend"] for k, v in SAMPLE_RESULTS["paid_media"]["channels"].items()}
    data = {r[0].value: r for r in book["Data quality"].iter_rows(min_row=2)}
    assert data["customers"][1].value == 3000 and isinstance(data["customers"][1].value, int)
    rate = data["identity.link_rate"][1]
    assert rate.value == 0.950268 and rate.number_format == "0.0%"
    assert data["start"][1].value.date().isoformat() == "2023-01-01"
    warnings = [r[4] for r in book["Diagnostics"].iter_rows(min_row=2, values_only=True)
                if r[2] == "warning"]
    assert warnings == [w for d in SAMPLE_RESULTS["diagnostics"].values() for w in d["warnings"]]
    summary = [r[0] for r in book["Summary"].iter_rows(values_only=True)]
    assert any(str(s).startswith("Each community member-month adds $42") for s in summary)


def test_writes_are_atomic(sample_reports):
    folder = sample_reports["html"].parent
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.xlsx"]


# --------------------------------------------------------------------------- PDF


def test_pdf_error_names_the_package(tmp_path, monkeypatch, sample_reports):
    monkeypatch.setenv("ROI_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(PdfUnavailableError, match="Debian package 'chromium'"):
        write_pdf(sample_reports["html"], tmp_path / "report.pdf")
    assert not list(tmp_path.glob("*.pdf"))


@pytest.mark.skipif(chromium_path() is None or shutil.which("pdftoppm") is None,
                    reason="needs Debian packages chromium and poppler-utils (CI installs them)")
def test_pdf_renders_pages(tmp_path):
    written = write_reports(unconverged_results(), tmp_path)
    pdf = written["pdf"]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 1 and pages[0].stat().st_size > 5000
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True, timeout=60).stdout
    assert NOT_CONVERGED in text
    assert re.search(r"comparison\s+says\s+\$172", text)
    assert "http" not in text
