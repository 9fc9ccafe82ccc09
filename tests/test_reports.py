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

from roi.budget import COMMUNITY_RESPONSE, OPTIMISER_LEFT_OUT
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
    """``"a.b.0.c"`` -> ``results["a"]["b"][0]["c"]``; a key holding dots (a quantile "0.05")
    is matched whole, longest first."""
    node, parts = results, key.split(".")
    while parts:
        if isinstance(node, list):
            node, parts = node[int(parts[0])], parts[1:]
            continue
        size = next(n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in node)
        node, parts = node[".".join(parts[:size])], parts[size:]
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


def _entry(estimate: float, low: float, high: float, interval: str = "94% HDI") -> dict:
    return {"estimate": estimate, "low": low, "high": high, "interval": interval}


CHANNEL_ROAS = {"display": 0.8, "search": 2.4, "social": 1.5, "video": 1.1}
MULTIPLIERS = [0.0, 0.5, 1.0, 1.5, 2.0]


def _response_draws(spend: float, roas: float, n_draws: int = 40) -> list[list[float]]:
    """Saturating curves through ``roas * spend`` at multiplier 1, spread over draws."""
    return [[round(roas * spend * (1 + 0.01 * (i - n_draws // 2)) * (2 * m / (1 + m)), 2)
             for m in MULTIPLIERS] for i in range(n_draws)]


def _paid_media() -> dict:
    channels = {}
    for name, roas in CHANNEL_ROAS.items():
        spend = SAMPLE_RESULTS["paid_media"]["channels"][name]["spend"]
        channels[name] = {"spend": spend, "roas": _entry(roas, roas * 0.7, roas * 1.3),
                          "marginal_roas": _entry(roas / 2, roas / 3, roas / 1.5),
                          "incremental_revenue": _entry(roas * spend, 0.7 * roas * spend,
                                                        1.3 * roas * spend)}
    weeks = ["2024-11-04", "2024-11-11", "2024-11-18", "2024-11-25"]
    return {
        "method": "mmm", "converged": True, "channels": channels,
        "communities": {"discord": {"cost": 96000.0,
                                    "incremental_revenue": _entry(250000.0, 90000.0, 410000.0)},
                        "forum": {"cost": 48000.0,
                                  "incremental_revenue": _entry(70000.0, -10000.0, 150000.0)}},
        "response_curves": {"multipliers": MULTIPLIERS,
                            "spend": {n: [c["spend"] * m for m in MULTIPLIERS]
                                      for n, c in channels.items()},
                            "draws": {n: _response_draws(c["spend"], CHANNEL_ROAS[n])
                                      for n, c in channels.items()}},
        "weekly_contributions": [
            {"week": week, "channel": name, "contribution": 1000.0 * (i + 1) + 10 * k,
             "low": 800.0 * (i + 1), "high": 1300.0 * (i + 1) + 10 * k}
            for i, name in enumerate(channels) for k, week in enumerate(weeks)],
        "regression_baseline": {"method": "regression", "channels": {
            n: {"roas": _entry(r + 0.9, r + 0.1, r + 1.7, "95% CI")}
            for n, r in CHANNEL_ROAS.items()}},
        "lift_tests": [{"channel": "search", "start": "2024-06-03", "end": "2024-06-30",
                        "spend_change": 20000.0, "revenue_change": 41000.0,
                        "standard_error": 9000.0}],
        "fit": {"interval": "94% HDI", "band": "posterior predictive", "r_squared": 0.9069,
                "mape": 0.0683, "share_inside": 0.9423,
                "weeks": [{"week": week, "actual": 100000.0 + 3000 * k,
                           "predicted": 99000.0 + 3100 * k, "low": 91000.0 + 3000 * k,
                           "high": 108000.0 + 3000 * k} for k, week in enumerate(weeks)]},
        "adstock": {"interval": "94% HDI", "component": "GeometricAdstock(l_max=4)",
                    "lags": [0, 1, 2, 3], "channels": {
                        name: {"share": {"estimate": [0.5, 0.25, 0.15, 0.1],
                                         "low": [0.4, 0.2, 0.1, 0.05],
                                         "high": [0.6, 0.3, 0.2, 0.15]},
                               "half_life_weeks": _entry(1.0, 0.6, 1.7)}
                        for name in channels}},
    }


def _comparison(paid: dict) -> list[dict]:
    rows = []
    for name, channel in paid["channels"].items():
        roas = channel["roas"]
        rows.append({"name": name, "kind": "paid", "cost": channel["spend"], "method": "mmm",
                     "incremental_revenue": channel["incremental_revenue"],
                     "revenue_per_dollar": roas, "notes": []})
    for name, cost, lift, kept in (("discord", 96000.0, 301000.0, 42000.0),
                                   ("forum", 48000.0, 120000.0, 25000.0)):
        total = lift + kept
        rows.append({"name": name, "kind": "community", "cost": cost, "method": "did + cox",
                     "incremental_revenue": _entry(total, total * 0.4, total * 1.6, "95% CI"),
                     "revenue_per_dollar": _entry(total / cost, 0.4 * total / cost,
                                                  1.6 * total / cost, "95% CI"),
                     "parts": {"lift_revenue": _entry(lift, lift * 0.3, lift * 1.7, "95% CI"),
                               "retention_revenue": _entry(kept, kept * 0.5, kept * 1.5,
                                                           "95% CI")},
                     "notes": ["revenue per dollar assumed constant when money moves in"]})
    return rows


def _budget(paid: dict) -> dict:
    current = {n: c["spend"] for n, c in paid["channels"].items()}
    current.update({"discord": 96000.0, "forum": 48000.0})
    moved = {**current, "display": current["display"] - 50000.0,
             "discord": current["discord"] + 50000.0}
    optimised = {**current, "display": current["display"] * 0.5,
                 "search": current["search"] + current["display"] * 0.5}
    paid_names = list(paid["channels"])
    return {
        "current": current,
        "scenarios": [{"name": "display to discord",
                       "moves": [{"from": "display", "to": "discord", "amount": 50000.0}],
                       "spend": moved, "revenue_change": _entry(118000.0, 21000.0, 230000.0)}],
        "optimised": {"total": sum(current[n] for n in paid_names),
                      "bounds": {n: [0.5 * current[n], 1.5 * current[n]] for n in paid_names},
                      "spend": optimised, "revenue_change": _entry(151000.0, 64000.0, 240000.0),
                      "probability_positive": 0.995,
                      "by_name": {"display": _entry(-52000.0, -80000.0, -30000.0),
                                  "search": _entry(203000.0, 120000.0, 290000.0)}},
        "optimiser_scope": {"moved": paid_names, "rule": "each paid channel between 50% and "
                            "150% of today's spend, total paid spend unchanged",
                            "left_out": {n: OPTIMISER_LEFT_OUT for n in ("discord", "forum")}},
        "notes": [COMMUNITY_RESPONSE],
    }


def full_results() -> dict:
    """The sample results with every contract section 4 block filled, as the MMM,
    roi/comparison.py and roi/budget.py write them (realistic values, not a run)."""
    results = copy.deepcopy(SAMPLE_RESULTS)
    results["paid_media"] = _paid_media()
    results["comparison"] = _comparison(results["paid_media"])
    results["budget_scenarios"] = _budget(results["paid_media"])
    results["data"]["community_costs"] = {"discord": 96000.0, "forum": 48000.0}
    lift = results["community_revenue_lift"]
    lift["member_months_by_community"] = {"discord": 7900, "forum": 5519}
    lift["event_study"] = {"method": "did", "interval": "95% CI", "points": [
        {"e": e, "estimate": 3.0 * e if e >= 0 else 1.5 * (e % 2), "low": 3.0 * e - 20,
         "high": 3.0 * e + 20, "n_treated": 500} for e in range(-6, 12)]}
    retention = results["community_retention_lift"]
    retention["landmark_retention"] = {"retention": [
        {"landmark_month": 6, "group": group, "horizon_month": h, "customers": n,
         "retention": r, "low": r - 0.03, "high": r + 0.03, "interval": "95% CI"}
        for group, n, base in (("member", 640, 0.93), ("non-member", 1510, 0.88))
        for h, r in ((6, base), (12, base - 0.07))], "difference": []}
    retention["retention_revenue"] = {"interval": "95% CI", "source": "cox", "by_community": {
        name: {"extra_customer_months": _entry(m, m * 0.5, m * 1.5, "95% CI"),
               "revenue": _entry(v, v * 0.5, v * 1.5, "95% CI"), "members": 700,
               "value_per_month": v / m}
        for name, m, v in (("discord", 310.0, 42000.0), ("forum", 190.0, 25000.0))},
        "total": {"extra_customer_months": _entry(500.0, 260.0, 740.0, "95% CI"),
                  "revenue": _entry(67000.0, 34000.0, 99000.0, "95% CI")}}
    results["diagnostics"]["paid_media_mmm"] = {
        "converged": True, "warnings": ["search and social spend move together (r = 0.62)"],
        "checks": {"r_hat_max": 1.004, "divergences": 0, "ess_bulk_min": 612.0}}
    return results


def empty_results() -> dict:
    """Today's run: paid media with spend only, no comparison rows, no budget scenarios."""
    return copy.deepcopy(SAMPLE_RESULTS)


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


def test_unconverged_estimate_is_labelled_loudly(tmp_path, no_charts):
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
    assert did[8] == NOT_CONVERGED and "r-hat 1.31 > 1.01: chains disagree" in did[9]


def _sections(raw: str) -> dict[str, str]:
    """Section id -> its HTML."""
    parts = raw.split('<section id="')[1:]
    return {part.split('"', 1)[0]: part for part in parts}


@pytest.fixture
def no_charts(monkeypatch) -> None:
    """Charts are checked on the full report; elsewhere skip drawing them (seconds each)."""
    for chart in ("interval_chart", "bar_chart", "response_curve_chart", "contribution_chart",
                  "event_study_chart", "per_dollar_chart", "share_chart", "response_multiples",
                  "stacked_contribution_chart", "retention_curve_chart",
                  "event_study_multiples"):
        monkeypatch.setattr(plots, chart, lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def full_reports(tmp_path_factory) -> dict[str, Path]:
    return write_reports(full_results(), tmp_path_factory.mktemp("full"), pdf=False)


def test_full_results_every_number_equals_results(full_reports):
    results = full_results()
    page = parse(full_reports["html"])
    for item in page.numbers:
        value = resolve(results, item["key"])
        assert float(item["value"]) == value and shown_matches(item["text"], value), item
    keys = {n["key"] for n in page.numbers}
    expected = {
        "paid_media.channels.video.roas.estimate", "paid_media.channels.search.marginal_roas.low",
        "paid_media.channels.social.incremental_revenue.high",
        "paid_media.regression_baseline.channels.search.roas.estimate",
        "paid_media.communities.forum.incremental_revenue.low",
        "paid_media.lift_tests.0.revenue_change",
        "comparison.5.revenue_per_dollar.estimate", "comparison.4.parts.retention_revenue.high",
        "comparison.1.incremental_revenue.estimate", "budget_scenarios.current.discord",
        "budget_scenarios.scenarios.0.revenue_change.low",
        "budget_scenarios.optimised.spend.search", "budget_scenarios.optimised.by_name.search.low",
        "budget_scenarios.optimised.total", "paid_media.fit.r_squared", "paid_media.fit.mape",
        "community_retention_lift.landmark_retention.retention.3.retention",
        "community_retention_lift.retention_revenue.by_community.discord.revenue.estimate",
        "community_retention_lift.retention_revenue.total.extra_customer_months.high",
        "community_revenue_lift.by_community.forum.estimate",
    }
    assert expected <= keys
    assert len(keys) > 250


def test_full_summary_reads_like_a_sentence_for_finance(full_reports):
    summary = _sections(full_reports["html"].read_text())["summary"]
    page = Collector()
    page.feed(summary)
    text = " ".join("".join(page.text).split())
    assert ("Per community: each discord member-month adds $47 (95% CI -$4 to $98); each forum "
            "member-month adds $34 (95% CI -$15 to $83).") in text
    assert ("Per dollar spent, the discord community returns $3.57 (95% CI $1.43 to $5.72); "
            "the forum community returns $3.02 (95% CI $1.21 to $4.83), against $2.40 "
            "(94% HDI $1.68 to $3.12) for search; $1.50") in text
    assert ("Scenario 'display to discord' (move $50,000 from display to discord) would change "
            "revenue by $118,000 (94% HDI $21,000 to $230,000), assuming discord earns along a "
            "square-root response (the next dollar half of today's revenue per dollar; "
            "measured only at today's cost).") in text
    assert ("Re-allocating the same paid total within the bounds would change revenue by "
            "$151,000 (94% HDI $64,000 to $240,000; a gain in >99% of draws).") in text
    assert "not estimated" not in text


def test_full_sections_have_their_tables_and_charts(full_reports):
    sections = _sections(full_reports["html"].read_text())
    charts = {name: html.count("data:image/png;base64,") for name, html in sections.items()}
    assert charts == {"summary": 1, "comparison": 1, "revenue": 2, "retention": 2,
                      "paid-media": 7, "budget": 2, "engagement": 0, "diagnostics": 0,
                      "data": 0, "assumptions": 0}
    assert "Where community revenue comes from" in sections["comparison"]
    assert "revenue per dollar assumed constant when money moves in" in sections["comparison"]
    assert COMMUNITY_RESPONSE in _text_of(sections["budget"])
    assert "Event study" in sections["revenue"] and "Retention curves" in sections["retention"]
    assert "search and social spend move together (r = 0.62)" in sections["diagnostics"]
    assert "Lift tests used to calibrate the model" in sections["paid-media"]


def test_todays_results_render_with_spend_only(tmp_path, no_charts):
    results = empty_results()
    page = parse(write_html(results, tmp_path / "report.html"))
    text = " ".join("".join(page.text).split())
    assert "Comparison of revenue per dollar: not estimated in this run" in text
    assert "Budget scenarios: not estimated in this run" in text
    assert "return on ad spend (ROAS) not estimated in this run" in text
    assert "Event study: not estimated in this run" in text
    spend = {n["key"]: float(n["value"]) for n in page.numbers if n["key"].endswith(".spend")}
    assert spend == {f"paid_media.channels.{k}.spend": v["spend"]
                     for k, v in results["paid_media"]["channels"].items()}
    assert NOT_CONVERGED not in text
    book = load_workbook(write_excel(results, tmp_path / "report.xlsx"))
    assert book["Budget scenarios"]["A1"].value == "Budget scenarios: not estimated in this run"
    assert book["Comparison"]["A1"].value == ("Comparison of revenue per dollar: not estimated "
                                              "in this run")


def test_media_model_not_fitted_says_why_at_the_top_and_in_its_section(tmp_path, no_charts):
    results = empty_results()
    why = "media-mix model not fitted: no channel has spend in 8 or more weeks"
    results["paid_media"].update({"converged": False, "warnings": [why]})
    raw = write_html(results, tmp_path / "report.html").read_text()
    sections = _sections(raw)
    assert why in raw.split("<nav>")[0]  # the caution above the summary
    assert why in sections["paid-media"]
    assert "not-converged-banner" not in raw  # nothing estimated, nothing to distrust
    book = load_workbook(write_excel(results, tmp_path / "report.xlsx"))
    cells = [c for row in book["Paid media"].iter_rows(values_only=True) for c in row]
    assert f"warning: {why}" in cells


def test_unconverged_media_model_is_marked_wherever_its_numbers_appear(tmp_path, no_charts):
    results = full_results()
    results["paid_media"]["converged"] = False
    results["diagnostics"]["paid_media_mmm"]["converged"] = False
    raw = write_html(results, tmp_path / "report.html").read_text()
    sections, page = _sections(raw), parse(tmp_path / "report.html")
    assert "not-converged-banner" in page.ids
    flagged = {n["key"] for n in page.numbers if n["next"] == "not-converged"}
    for name in CHANNEL_ROAS:
        assert f"paid_media.channels.{name}.roas.estimate" in flagged
    assert {"comparison.0.revenue_per_dollar.estimate",
            "budget_scenarios.scenarios.0.revenue_change.estimate",
            "budget_scenarios.optimised.revenue_change.estimate"} <= flagged
    assert "comparison.4.revenue_per_dollar.estimate" not in flagged  # community row
    for name in ("summary", "comparison", "paid-media", "budget"):
        assert NOT_CONVERGED in sections[name], name
    book = load_workbook(write_excel(results, tmp_path / "report.xlsx"))
    status = {r[0]: r[-1] for r in book["Paid media"].iter_rows(min_row=2, max_row=5,
                                                                 values_only=True)}
    assert status == dict.fromkeys(CHANNEL_ROAS, NOT_CONVERGED)
    comparison = {r[0]: r[11] for r in book["Comparison"].iter_rows(min_row=2, max_row=7,
                                                                     values_only=True)}
    assert comparison == {**dict.fromkeys(CHANNEL_ROAS, NOT_CONVERGED), "discord": None,
                          "forum": None}  # an empty status cell


def _rows_after(sheet, header: str) -> list[tuple]:
    rows = list(sheet.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows) if r[0] == header)
    out = []
    for row in rows[start + 1:]:
        if row[0] is None:
            break
        out.append(row)
    return out


def test_full_workbook_numbers_equal_results(full_reports):
    results, book = full_results(), load_workbook(full_reports["xlsx"])
    paid = {r[0].value: r for r in book["Paid media"].iter_rows(min_row=2, max_row=5)}
    for name, channel in results["paid_media"]["channels"].items():
        row = paid[name]
        assert row[1].value == channel["spend"] and "$" in row[1].number_format
        assert [c.value for c in row[2:5]] == pytest.approx(
            [channel["roas"][k] for k in ("estimate", "low", "high")], rel=1e-15)
        assert row[2].number_format == "0.00"
        assert row[10].value == pytest.approx(channel["incremental_revenue"]["estimate"],
                                              rel=1e-15)
        baseline = results["paid_media"]["regression_baseline"]["channels"][name]["roas"]
        assert row[14].value == pytest.approx(baseline["estimate"], rel=1e-15)
    comparison = {r[0]: r for r in _rows_after(book["Comparison"], "Name")}
    for row in results["comparison"]:
        shown = comparison[row["name"]]
        assert shown[2] == row["cost"]
        assert shown[6:10] == (pytest.approx(row["revenue_per_dollar"]["estimate"], rel=1e-15),
                               pytest.approx(row["revenue_per_dollar"]["low"], rel=1e-15),
                               pytest.approx(row["revenue_per_dollar"]["high"], rel=1e-15),
                               row["revenue_per_dollar"]["interval"])
    budget = results["budget_scenarios"]
    spend = {r[0]: r[1:4] for r in _rows_after(book["Budget scenarios"], "Spend")}
    assert spend == {n: (budget["current"][n], budget["scenarios"][0]["spend"][n],
                         budget["optimised"]["spend"][n]) for n in budget["current"]}
    changes = {r[0]: r[2:5] for r in _rows_after(book["Budget scenarios"], "Allocation")}
    assert changes == {"display to discord": (118000.0, 21000.0, 230000.0),
                       "optimised": (151000.0, 64000.0, 240000.0)}
    curve = [r for r in _rows_after(book["Paid media"], "Response curve") if r[0] == "search"]
    assert [r[2] for r in curve] == results["paid_media"]["response_curves"]["spend"]["search"]
    weekly = _rows_after(book["Paid media"], "Week")
    assert len(weekly) == len(results["paid_media"]["weekly_contributions"])
    assert weekly[0][2] == results["paid_media"]["weekly_contributions"][0]["contribution"]


def test_reports_never_show_e_mails_or_credentials(tmp_path, no_charts):
    results = full_results()
    results["data"]["source"] = "postgresql+psycopg://roi:hunter2@db.internal/shop"
    results["data"]["notes"] = ["member row for jane.doe@example.com folded"]
    results["comparison"][4]["notes"] = ["owner: ops@brand.example"]
    written = write_reports(results, tmp_path, pdf=False)
    raw = written["html"].read_text()
    cells = [str(c.value) for sheet in load_workbook(written["xlsx"]) for row in
             sheet.iter_rows() for c in row if c.value is not None]
    for text in (raw, "\n".join(cells)):
        assert "hunter2" not in text and "jane.doe@example.com" not in text
        assert "ops@brand.example" not in text and "[e-mail removed]" in text
    assert "postgresql+psycopg://roi:***@db.internal/shop" in raw


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
def test_malformed_values_do_not_crash(tmp_path, no_charts, path, value):
    results = full_results()
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
    rate = data["identity: link rate"][1]
    assert rate.value == 0.950268 and rate.number_format == "0.0%"
    assert data["start"][1].value.date().isoformat() == "2023-01-01"
    warnings = [r[5] for r in book["Diagnostics"].iter_rows(min_row=2, values_only=True)
                if r[3] == "warning"]
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


BUDGET_HEADERS = ["Name", "Kind", "Current spend", "Recommended", "Change", "Revenue change",
                  "Low", "High", "Interval", "Why"]
COMPARISON_HEADERS = ["Name", "Kind", "Cost", "Incremental revenue", "Low", "High",
                      "Revenue per $", "Interval", "Method", "Status", "Caveats"]


@pytest.mark.skipif(chromium_path() is None or shutil.which("pdftotext") is None,
                    reason="needs Debian packages chromium and poppler-utils (CI installs them)")
@pytest.mark.parametrize(("paper", "size"), [("A4", "595.92 x 842.88"), ("Letter", "612 x 792")])
def test_pdf_pages_fit_are_numbered_and_name_every_column(tmp_path, paper, size):
    """A4 and Letter: every header of the comparison table whole (the last one read "Stat"
    when the table was clipped), "Page k of N" on every page, diagnostics with plain names."""
    pdf = write_reports(caveated_results(), tmp_path, paper=paper)["pdf"]
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    width, height = (float(v) for v in size.split(" x "))
    found = re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info)
    assert abs(float(found.group(1)) - width) < 1.5 and abs(float(found.group(2)) - height) < 1.5
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True, timeout=60).stdout
    per_page = text.split("\f")
    numbers = [re.findall(r"Page (\d+) of (\d+)", page) for page in per_page[:pages]]
    assert numbers == [[(str(k), str(pages))] for k in range(1, pages + 1)]
    # The header row as printed: its line and the wrapped second line of "Incremental revenue"
    # and "Revenue per $" (a header may wrap inside its cell, never be cut).
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines)
                 if re.match(r"Name\s+Kind\s+Cost\s+Incremental", line))
    words = " ".join(lines[first:first + 2]).split()
    for header in COMPARISON_HEADERS:
        assert all(word in words for word in header.split()), header
    assert words[words.index("Caveats") - 1] == "Status" and "Stat" not in words
    # The budget page's table too, and its heading whole.
    first = next(i for i, line in enumerate(lines) if re.match(r"Name\s+Kind\s+Current", line))
    words = " ".join(lines[first:first + 2]).split()
    for header in BUDGET_HEADERS:
        assert all(word in words for word in header.split()), header
    assert "Budget: current against recommended spend" in text
    assert "What the optimiser may move, and why" in text
    assert "pre-trend test (event time): p-value" in text
    assert "balance.smd" not in text and "pretrend_event.p_value" not in text


# --------------------------------------------------------------------------- the real run


def test_reports_of_the_sample_run_equal_its_results_json(sample_run):
    """The reports ``run_models`` wrote, opened for real, against the results.json beside them."""
    out = Path(sample_run.out)
    results = json.loads((out / "results.json").read_text())
    page = parse(out / "report.html")
    assert len(page.numbers) > 60
    for item in page.numbers:
        value = resolve(results, item["key"])
        assert float(item["value"]) == value and shown_matches(item["text"], value), item
    keys = {n["key"] for n in page.numbers}
    preferred = results["community_revenue_lift"]["preferred"]
    assert f"community_revenue_lift.estimates.{preferred}.estimate" in keys
    for name in results["paid_media"]["channels"]:
        assert f"paid_media.channels.{name}.spend" in keys
    book = load_workbook(out / "report.xlsx")
    assert book.sheetnames == SHEETS
    lift = {(r[0], r[1]): r for r in book["Revenue lift"].iter_rows(min_row=2, values_only=True)}
    for method, entry in results["community_revenue_lift"]["estimates"].items():
        assert lift[("all members", method)][3] == pytest.approx(entry["estimate"], rel=1e-15)
    text = "".join(page.text)
    for diag in results["diagnostics"].values():
        for warning in diag.get("warnings", []):
            assert " ".join(warning.split()) in " ".join(text.split())


# --------------------------------------------------------------------------- caveats (issue 15)

PRETREND = "Pre-trend test rejects parallel trends at 5% (Wald 29.97, df 16, p = 0.0182)"
RV_SUMMARY = "A hidden factor explaining 5.3% of the variation would bring the lift to zero."
REFUSED = "no order is attributed to a paid channel, so the ratio form cannot be computed"


def caveated_results() -> dict:
    """Full results whose preferred DiD fails its pre-trend test, with sensitivity sentences,
    a refused Bayesian lift and an unconverged Bayesian survival model that is not preferred."""
    results = full_results()
    lift, retention = results["community_revenue_lift"], results["community_retention_lift"]
    diagnostics = results["diagnostics"]
    diagnostics["revenue_did"]["checks"]["pretrend_event"] = {"statistic": 29.97, "df": 16,
                                                               "p_value": 0.0182}
    diagnostics["revenue_did"]["warnings"].insert(0, PRETREND + ": members differed.")
    lift["preferred_reason"] = "did is the best available but its pre-trend test rejects."
    lift["estimates"]["aipw"] = _entry(39.8, 11.2, 68.4, "95% CI")
    lift["estimates"]["bayesian"] = {"estimate": None, "low": None, "high": None,
                                     "interval": "94% HDI", "converged": False,
                                     "refused": REFUSED}
    diagnostics["revenue_bayesian"] = {"converged": False, "warnings": [REFUSED],
                                       "checks": {"refused": REFUSED}}
    lift["sensitivity"] = {"estimator": "did", "summary": "The lift stays positive unless "
                           "post-join trends diverge more than 0.017x.",
                           "robustness_value": {"method": "aipw", "summary": RV_SUMMARY},
                           "by_community": {"forum": {"summary": "Forum is fragile."}}}
    retention["preferred_reason"] = "cox_time_varying passed its gate."
    retention["sensitivity"] = {"method": "cox_time_varying", "summary": "E-value 1.82."}
    retention["estimates"]["bayesian"] = _entry(0.71, 0.6, 0.83)
    diagnostics["retention_bayesian"] = {"converged": False, "warnings": ["r-hat 1.2"],
                                         "checks": {"r_hat_max": 1.2}}
    return results


@pytest.fixture(scope="module")
def caveated_reports(tmp_path_factory) -> dict[str, Path]:
    return write_reports(caveated_results(), tmp_path_factory.mktemp("caveated"), pdf=False)


def _words(html: str) -> str:
    page = Collector()
    page.feed(html)
    return " ".join(" ".join(page.text).split())


def test_caveats_stand_beside_their_numbers_in_html(caveated_reports):
    raw = caveated_reports["html"].read_text()
    top, sections = raw.split("<nav>")[0], _sections(raw)
    # The preferred method's failed check is on the first screen; a model the bottom line does
    # not use (retention_bayesian) raises no banner but is named in Diagnostics.
    assert "pre-trend test rejects parallel trends (p = 0.018)" in top
    assert "not-converged-banner" not in raw and "retention_bayesian" not in top
    assert "retention_bayesian: NOT CONVERGED" in _words(sections["diagnostics"])
    summary = _words(sections["summary"])
    assert "Why this method: did is the best available but its pre-trend test rejects." in summary
    assert PRETREND in summary and "0.017x" in summary and "E-value 1.82." in summary
    rows = {r.split("</td>")[0].split(">")[-1]: _words(r)
            for r in sections["revenue"].split("<tr>")[1:]}
    assert PRETREND in rows["difference-in-differences"] and "0.017x" in rows[
        "difference-in-differences"]
    assert RV_SUMMARY.rstrip(".") in rows["aipw"] and PRETREND not in rows["aipw"]
    assert f"refused refused: {REFUSED}" in rows["bayesian"] and NOT_CONVERGED not in rows[
        "bayesian"]
    assert "Forum is fragile" in rows["forum"] and "Forum is fragile" not in rows["discord"]
    retention_rows = [_words(r) for r in sections["retention"].split("<tr>")[1:]]
    assert any(r.startswith("bayesian") and NOT_CONVERGED in r and "r-hat 1.2" in r
               for r in retention_rows)
    comparison = [_words(r) for r in sections["comparison"].split("<tr>")[1:]]
    assert all(("p = 0.018" in r) == (" community " in f" {r} ") for r in comparison[1:7])


def test_glossary_explains_every_method_shown_and_both_intervals(caveated_reports):
    raw = caveated_reports["html"].read_text()
    glossary = _words(_sections(raw)["assumptions"])
    assert '"95% CI" is a frequentist' in glossary and '"94% HDI" is the Bayesian' in glossary
    for term in ("naive", "did", "aipw", "bayesian", "cox_time_varying", "bayesian survival",
                 "mmm", "regression baseline", "E-value", "robustness value",
                 "relative-magnitudes breakdown"):
        assert f'id="glossary-{term.replace(" ", "-")}"' in raw, term
    assert 'id="glossary-did_multiplicative"' not in raw   # not estimated in this run
    # One vocabulary: the comparison's combined interval is a term the glossary explains.
    from roi.comparison import COMBINED_LABEL, combine_independent

    entry = {"estimate": 1.0, "low": 0.0, "high": 2.0, "interval": "94% HDI"}
    assert combine_independent([entry, entry])["interval"] == COMBINED_LABEL
    assert f'"{COMBINED_LABEL}" is the 95% interval of a community\'s revenue' in glossary


def test_workbook_caveats_chart_dates_and_wrapping(caveated_reports):
    import datetime as dt

    book = load_workbook(caveated_reports["xlsx"])
    lift = {(r[0], r[1]): r for r in book["Revenue lift"].iter_rows(min_row=2, values_only=True)}
    assert lift[("all members", "naive")][8] == "for contrast: biased"
    assert PRETREND in lift[("all members", "did")][9]
    assert lift[("all members", "bayesian")][8:10] == ("refused", f"refused: {REFUSED}")
    summary = [r[0] for r in book["Summary"].iter_rows(values_only=True) if r[0]]
    assert any("pre-trend test rejects parallel trends (p = 0.018)" in s for s in summary[:3])
    assert any(s.strip() == "Why this method: did is the best available but its pre-trend "
               "test rejects." for s in summary)
    naive = [r for r in book["Summary"].iter_rows(values_only=True) if r[1] == "naive"]
    assert naive and all(r[6] == "for contrast: biased" for r in naive)
    assert book["Summary"]["A3"].alignment.wrap_text
    sheet = book["Bottom line"]
    assert len(sheet._charts) == 1
    chart = sheet._charts[0]
    head = next(c for row in sheet.iter_rows() for c in row if c.value == "Chart data: name")
    letter = [chr(ord(head.column_letter) + k) for k in (1, 2)]
    assert [s.tx.strRef.f for s in chart.series] == [f"'Bottom line'!{x}{head.row}"
                                                     for x in letter]
    data = {r[0]: r[1:4] for r in sheet.iter_rows(
        min_row=head.row + 1, max_row=head.row + 6, min_col=head.column,
        max_col=head.column + 3, values_only=True)}
    assert data["search"] == (pytest.approx(2.4), None, 1.0)
    assert data["discord"][0] is None and data["discord"][1] == pytest.approx(343000 / 96000)
    weekly = [r for r in book["Paid media"].iter_rows(values_only=True)
              if isinstance(r[0], dt.datetime) and isinstance(r[1], str)]   # not the fit's rows
    assert len(weekly) == 16 and weekly[0][0] == dt.datetime(2024, 11, 4)
    tests = [r for r in book["Paid media"].iter_rows(values_only=True) if r[0] == "search"
             and isinstance(r[1], dt.datetime)]
    assert tests[0][1:3] == (dt.datetime(2024, 6, 3), dt.datetime(2024, 6, 30))
    retention = [c for r in book["Retention"].iter_rows(values_only=True) for c in r]
    assert "Retention curve group" in retention and "Retained months: community" in retention
    assert "Months since joining" in [c for r in book["Revenue lift"].iter_rows(values_only=True)
                                      for c in r]


def test_retention_curves_come_from_the_landmark_curves_else_the_records():
    from roi.reports.html import retention_curves

    results = full_results()
    records = retention_curves(results)
    assert list(records) == ["6"] and list(records["6"]) == ["member", "non-member"]
    assert [p for point in records["6"]["member"] for p in point] == pytest.approx(
        [0.0, 1.0, 1.0, 1.0, 6.0, 0.93, 0.90, 0.96, 12.0, 0.86, 0.83, 0.89])
    results["community_retention_lift"]["landmark_retention"]["curves"] = {
        "interval": "95% CI", "points": [
            {"landmark_month": 3, "group": group, "month": m, "customers": 10,
             "survival": 1 - 0.01 * m, "low": 0.9 - 0.01 * m, "high": 1.0}
            for group in ("member", "non-member", "member: discord") for m in (0, 1, 2)]}
    curves = retention_curves(results)
    assert list(curves) == ["3"] and list(curves["3"]) == ["member", "non-member"]
    assert [p[1] for p in curves["3"]["member"]] == [1.0, 0.99, 0.98]


def test_poor_overlap_and_sensitivity_are_caveats_of_their_own_method_only():
    from roi.reports.caveats import estimate_caveats

    results = caveated_results()
    results["diagnostics"]["revenue_aipw"] = {"converged": True, "warnings": [], "checks": {
        "overlap": {"passed": False, "treated_share_trimmed": 0.2}}}
    aipw = estimate_caveats(results, "community_revenue_lift", "aipw")
    assert aipw[0].startswith("poor overlap") and aipw[1] == f"sensitivity: {RV_SUMMARY}"
    did = estimate_caveats(results, "community_revenue_lift", "did")
    assert did[0].startswith(PRETREND) and not any("overlap" in c for c in did)
    assert estimate_caveats(results, "community_retention_lift", "cox_time_varying") == [
        "sensitivity: E-value 1.82."]
    assert estimate_caveats(results, "community_retention_lift", "bayesian") == ["r-hat 1.2"]


def test_event_study_is_the_preferred_methods_with_a_panel_per_community(tmp_path, monkeypatch):
    """``event_studies[preferred]`` is drawn (not ``event_study`` of another DiD form), pooled
    and per community, and the pre-trend p-value quoted is the preferred method's."""
    drawn: dict[str, object] = {}
    monkeypatch.setattr(plots, "event_study_chart",
                        lambda rows, **kw: drawn.setdefault("pooled", rows) and b"png")
    monkeypatch.setattr(plots, "event_study_multiples",
                        lambda studies, **kw: drawn.setdefault("panels", studies) and None)
    results = caveated_results()
    lift = results["community_revenue_lift"]
    lift["event_study"]["method"] = "did_multiplicative"
    points = [{"e": e, "estimate": 10.0 * e, "low": 10.0 * e - 5, "high": 10.0 * e + 5}
              for e in (-2, -1, 0, 1)]
    lift["event_studies"] = {"did": {"method": "did", "interval": "95% CI", "points": points,
                                     "by_community": {"discord": points[:2],
                                                      "forum": points[2:]}}}
    page = write_html(results, tmp_path / "report.html").read_text()
    assert "the joint pre-trend test gives p = 0.018" in _sections(page)["revenue"]
    assert drawn["pooled"] == [(-2.0, -20.0, -25.0, -15.0), (-1.0, -10.0, -15.0, -5.0),
                               (0.0, 0.0, -5.0, 5.0), (1.0, 10.0, 5.0, 15.0)]
    assert list(drawn["panels"]) == ["discord", "forum"]
    assert drawn["panels"]["forum"] == drawn["pooled"][2:]


# --------------------------------------------------------------------------- budget page, fit, adstock


def _text_of(html: str) -> str:
    page = Collector()
    page.feed(html)
    return " ".join("".join(page.text).split())


def test_budget_page_current_against_recommended_with_gain_and_community_assumption(
        full_reports):
    """The budget page opens with what to do and how sure (the optimised split's gain and its
    94% HDI), then current against recommended spend per name with each move's revenue change,
    and says why the communities are left out and what a community scenario assumes."""
    results = full_results()
    budget = _sections(full_reports["html"].read_text())["budget"]
    text = _text_of(budget)
    assert ("Budget: current against recommended spend Recommended: display -$144,873; search "
            "+$144,873 (same total). Expected revenue gain $151,000 (94% HDI $64,000 to "
            "$240,000); the gain is above zero in >99% of the posterior draws.") in text
    page = Collector()
    page.feed(budget)
    values = {n["key"]: n for n in page.numbers}
    for item in page.numbers:
        value = resolve(results, item["key"])
        assert float(item["value"]) == value and shown_matches(item["text"], value), item
    summary = _text_of(_sections(full_reports["html"].read_text())["summary"])
    assert ("Budget: Recommended: display -$144,873; search +$144,873 (same total). Expected "
            "revenue gain $151,000") in summary
    optimised = results["budget_scenarios"]["optimised"]
    for name in ("display", "search", "social", "video", "discord", "forum"):
        assert f"budget_scenarios.current.{name}" in values
    for name in ("display", "search"):
        assert values[f"budget_scenarios.optimised.spend.{name}"]["value"] == repr(
            optimised["spend"][name])
        for bound in ("estimate", "low", "high"):
            assert f"budget_scenarios.optimised.by_name.{name}.{bound}" in values
    rows = {r.split("</td>")[0].split(">")[-1]: _words(r) for r in budget.split("<tr>")[1:]}
    assert rows["discord"].startswith("discord community $96,000 not moved not moved left out")
    assert rows["social"].startswith("social paid $301,819 $301,819 no change")
    assert "Moved: each paid channel between 50% and 150% of today's spend" in text
    assert f"forum: {OPTIMISER_LEFT_OUT}." in text and COMMUNITY_RESPONSE in text
    assert "community revenue follows an assumed square-root response" in rows[
        "display to discord"]
    assert "response curves of the media-mix model" in rows["optimised"]
    book = load_workbook(full_reports["xlsx"])
    sheet = book["Budget scenarios"]
    assert sheet["A1"].value.startswith("Recommended: display -$144,873; search +$144,873")
    recommended = {r[0]: r for r in _rows_after(sheet, "Name")}
    assert recommended["search"][3] == pytest.approx(optimised["spend"]["search"])
    assert recommended["search"][5:9] == (203000.0, 120000.0, 290000.0, "94% HDI")
    assert recommended["forum"][3] == "not moved" and recommended["forum"][9] == \
        OPTIMISER_LEFT_OUT


def test_budget_page_says_when_the_gain_cannot_be_told(tmp_path, no_charts):
    results = full_results()
    results["budget_scenarios"]["optimised"].update(
        revenue_change=_entry(4463.0, -59052.0, 55218.0), probability_positive=0.57)
    text = _text_of(_sections(write_html(results, tmp_path / "r.html").read_text())["budget"])
    assert ("No clear gain from moving money: the best split the optimiser found (display "
            "-$144,873; search +$144,873, same total) changes revenue by $4,463 (94% HDI "
            "-$59,052 to $55,218); the gain is above zero in 57% of the posterior draws.") in text


def test_model_fit_and_adstock_charts_are_drawn_from_the_results(full_reports, monkeypatch):
    sections = _sections(full_reports["html"].read_text())
    paid = sections["paid-media"]
    assert 'alt="Model fit: actual against predicted weekly revenue"' in paid
    assert 'alt="Adstock: how long an ad&#x27;s effect lasts, per channel"' in paid
    assert "R² 0.91 (share of the week-to-week variation explained), MAPE 6.8%" in _text_of(
        paid)
    drawn = {}
    monkeypatch.setattr(plots, "model_fit_chart", lambda weeks, **kw: drawn.update(
        fit=(weeks, kw)))
    monkeypatch.setattr(plots, "adstock_multiples", lambda decays, **kw: drawn.update(
        adstock=decays))
    from roi.reports.media import adstock_figure, fit_figure

    results = full_results()
    fit_figure(results, "$")
    adstock_figure(results)
    weeks, options = drawn["fit"]
    first = results["paid_media"]["fit"]["weeks"][0]
    assert weeks[0] == (first["week"], first["actual"], first["predicted"], first["low"],
                        first["high"])
    assert options["r_squared"] == 0.9069 and options["mape"] == 0.0683
    assert drawn["adstock"]["video"] == ([0.5, 0.25, 0.15, 0.1], [0.4, 0.2, 0.1, 0.05],
                                         [0.6, 0.3, 0.2, 0.15], 1.0)
    # The workbook has both as tables: weeks as dates, shares as percentages.
    import datetime as dt

    sheet = load_workbook(full_reports["xlsx"])["Paid media"]
    fit = _rows_after(sheet, "Model fit week (R2 0.91, MAPE 6.8%)")
    assert fit[0][:5] == (dt.datetime(2024, 11, 4), first["actual"], first["predicted"],
                          first["low"], first["high"])
    shares = [r for r in _rows_after(sheet, "Adstock channel") if r[0] == "video"]
    assert [r[1:5] for r in shares[:2]] == [(0, 0.5, 0.4, 0.6), (1, 0.25, 0.2, 0.3)]


def test_sample_run_fit_and_adstock_hold_up(sample_run):
    """The real run's model fit: R-squared and MAPE recomputed from the weekly series it
    wrote; about 94% of actual weeks inside the 94% predictive band; every adstock draw's
    shares sum to 1, so their means do; the report draws both charts."""
    out = Path(sample_run.out)
    results = json.loads((out / "results.json").read_text())
    fit = results["paid_media"]["fit"]
    actual = [w["actual"] for w in fit["weeks"]]
    predicted = [w["predicted"] for w in fit["weeks"]]
    mean = sum(actual) / len(actual)
    r2 = 1 - sum((a - p) ** 2 for a, p in zip(actual, predicted, strict=True)) / sum(
        (a - mean) ** 2 for a in actual)
    mape = sum(abs(a - p) / a for a, p in zip(actual, predicted, strict=True)) / len(actual)
    assert fit["r_squared"] == pytest.approx(r2, abs=1e-4) and r2 > 0.6
    assert fit["mape"] == pytest.approx(mape, abs=1e-4)
    inside = sum(w["low"] <= w["actual"] <= w["high"] for w in fit["weeks"]) / len(actual)
    assert inside == pytest.approx(fit["share_inside"], abs=1e-4) and 0.85 <= inside <= 0.99
    adstock = results["paid_media"]["adstock"]
    assert set(adstock["channels"]) == set(results["paid_media"]["channels"])
    for entry in adstock["channels"].values():
        share = entry["share"]
        assert sum(share["estimate"]) == pytest.approx(1.0, abs=1e-3)
        # (a tail lag's mean may lie above its 94% HDI: most draws near 0, a long right tail)
        assert all(0 <= lo <= hi <= 1 for lo, hi in zip(share["low"], share["high"], strict=True))
        assert share["estimate"][0] == max(share["estimate"])     # geometric: decays from week 0
        assert 0 < entry["half_life_weeks"]["low"] <= entry["half_life_weeks"]["high"]
    html = (out / "report.html").read_text()
    assert "Model fit: actual against predicted weekly revenue" in html
    assert "Adstock: how long an ad&#x27;s effect lasts" in html


def test_retention_headline_of_a_null_effect_says_the_interval_includes_one():
    """A world where membership does nothing (hazard ratio 1.00, CI 0.90-1.12): the headline
    says members churn about as often (was '0% more') and that no effect is not ruled out."""
    from roi.reports.summary import retention_summary

    results = copy.deepcopy(SAMPLE_RESULTS)
    entry = results["community_retention_lift"]["estimates"]["cox_time_varying"]
    entry.update(hazard_ratio=0.998, low=0.90, high=1.12)
    text = "".join(f if isinstance(f, str) else f.plain() for f in retention_summary(results))
    assert text.startswith("Members churn about as often (hazard ratio 1.00, 95% CI 0.90-1.12)")
    assert text.endswith("The interval includes 1: the data cannot rule out that membership "
                         "leaves churn unchanged.")
    entry.update(hazard_ratio=0.72, low=0.62, high=0.84)
    text = "".join(f if isinstance(f, str) else f.plain() for f in retention_summary(results))
    assert "Members churn 28% less" in text and "includes 1" not in text


def test_event_study_multiples_scale_ignores_a_few_thin_months():
    """30 communities whose effects stay within +-100 and one month with a handful of members
    (band +-4,000): the shared scale follows the bulk, not that month; without such outliers
    the full range is kept."""
    import numpy as np

    from roi.reports.plots import _robust_limits

    rng = np.random.default_rng(0)
    studies = {f"c{i}": [(e, float(v), float(v) - 50, float(v) + 50)
                         for e, v in zip(range(-6, 12), rng.uniform(-50, 50, 18), strict=True)]
               for i in range(30)}
    assert _robust_limits(studies) is None
    studies["c7"][-1] = (11, 300.0, -4000.0, 4000.0)
    low, high = _robust_limits(studies)
    assert -140 < low < -100 and 100 < high < 140


def test_paid_media_not_estimated_says_why():
    """A run without ad_spend: the summary gives the block's reason, not a bare 'not
    estimated'."""
    from roi.reports.summary import paid_media_summary

    reason = ("media-mix model not fitted: no paid channel to model (no ad_spend table, or no "
              "ad_spend row in the window)")
    results = {"paid_media": {"channels": {}, "converged": False, "warnings": [reason]}}
    assert paid_media_summary(results) == [f"Paid media: not estimated in this run ({reason})."]
    assert paid_media_summary({}) == ["Paid media: not estimated in this run."]
