"""Report section of issue 20: what kind of community pays (engagement tiers, programmes,
community-led acquisition), from ``results["community_engagement"]`` only; the page layout is
``templates/engagement.html.j2``.

Examples
--------
>>> "not estimated" in engagement_section({})
True
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from roi.reports.base import get, missing, money, number, shown, table

BLOCK = "community_engagement"


def engagement_section(results: dict, currency: str = "$") -> str:
    """The section's HTML (always present, so the page's navigation link works)."""
    from roi.reports.html import templates

    return templates().get_template("engagement.html.j2").render(
        **engagement_context(results, currency))


def engagement_context(results: dict, currency: str = "$") -> dict[str, Any]:
    block = get(results, BLOCK)
    if not isinstance(block, dict):
        return {"present": False, "missing": Markup(missing("Engagement tiers, programmes and "
                                                            "acquisition"))}
    tiers, programs = block.get("tiers") or {}, block.get("programs") or {}
    acquisition = block.get("acquisition") or {}
    rule = tiers.get("rule") or {}
    referrals = acquisition.get("referrals") or {}
    return {"present": True, "window_days": rule.get("window_days", "?"),
            "tier_rule": rule.get("rule", ""), "window_rule": rule.get("months_in_window", ""),
            "tier_refused": tiers.get("refused"),
            "tier_table": Markup(_tier_table(tiers, currency)),
            "program_rule": programs.get("rule", ""),
            "program_table": Markup(_program_table(programs, currency)),
            "program_refused": programs.get("refused") or "no programme in the data",
            "prospect_rule": (acquisition.get("prospects") or {}).get("rule", ""),
            "prospect_table": Markup(_prospect_table(acquisition.get("prospects") or {},
                                                     currency)),
            "referral_rule": referrals.get("rule", ""),
            "referral_table": Markup(_referral_table(referrals, currency)),
            "referral_refused": referrals.get("refused") or "not estimated"}


def _shown(key: str, value: Any, fmt) -> Any:
    """A traceable number (its results.json key in the page), or "n/a" when there is none."""
    return shown(key, value, fmt) if number(value) is not None else "n/a"


def _interval(entry: dict | None, fmt) -> str:
    entry = entry or {}
    if number(entry.get("low")) is None:
        return "n/a"
    return f"{fmt(entry.get('low'))} to {fmt(entry.get('high'))}"


def _ratio(value: Any) -> str:
    value = number(value)
    return "n/a" if value is None else f"{value:.2f}"


def _share(value: Any) -> str:
    value = number(value)
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _tier_table(tiers: dict, currency: str) -> str:
    fmt = lambda v: money(v, currency)  # noqa: E731
    rows = []
    for name, entry in (tiers.get("by_tier") or {}).items():
        key = f"{BLOCK}.tiers.by_tier.{name}"
        lift, hazard = entry.get("lift_per_member_month") or {}, entry.get("hazard_ratio") or {}
        rows.append([name, f"{entry.get('members', 0):,}", f"{entry.get('member_months', 0):,}",
                     _shown(f"{key}.lift_per_member_month.estimate", lift.get("estimate"), fmt),
                     _interval(lift, fmt),
                     _shown(f"{key}.hazard_ratio.hazard_ratio", hazard.get("hazard_ratio"),
                           _ratio), _interval(hazard, _ratio),
                     _share(entry.get("share_of_incremental_revenue")),
                     lift.get("refused") or ""])
    return table(["Tier", "Members", "Member-months after the window", "Lift per member-month",
                  "95% CI", "Churn hazard ratio", "95% CI", "Share of incremental revenue",
                  "Not estimated because"], rows) if rows else ""


def _program_table(programs: dict, currency: str) -> str:
    fmt = lambda v: money(v, currency)  # noqa: E731
    rows = []
    for name, entry in (programs.get("by_program") or {}).items():
        key = f"{BLOCK}.programs.by_program.{name}"
        lift = entry.get("lift_per_member_month") or {}
        per_dollar = entry.get("revenue_per_dollar") or {}
        pre = (entry.get("pretrend") or {}).get("p_value")
        breakdown = (entry.get("sensitivity") or {}).get("breakdown_m")
        rows.append([name, f"{entry.get('members', 0):,}",
                     _shown(f"{key}.lift_per_member_month.estimate", lift.get("estimate"), fmt),
                     _interval(lift, fmt), fmt(entry.get("cost")),
                     _shown(f"{key}.revenue_per_dollar.estimate", per_dollar.get("estimate"),
                           _ratio), _interval(per_dollar, _ratio),
                     _ratio(pre), _ratio(breakdown), lift.get("refused") or ""])
    return table(["Programme", "Members", "Lift per member-month", "95% CI", "Cost",
                  "Revenue per dollar", "95% CI", "Pre-trend p", "Breakdown M",
                  "Not estimated because"], rows) if rows else ""


def _prospect_table(prospects: dict, currency: str) -> str:
    fmt = lambda v: money(v, currency, 0)  # noqa: E731
    rows = [[community, f"{entry.get('customers', 0):,}",
             _ratio(entry.get("median_days_to_first_purchase")), fmt(entry.get("revenue")),
             fmt(entry.get("revenue_per_customer"))]
            for community, entry in (prospects.get("by_community") or {}).items()]
    return table(["Community", "Joined before buying, then bought", "Median days to first "
                  "purchase", "Revenue in the window", "Per customer"], rows) if rows else ""


def _referral_table(referrals: dict, currency: str) -> str:
    if referrals.get("refused") or not referrals:
        return ""
    did = referrals.get("extra_referrals_per_member_month") or {}
    rows = [["Referred customers", f"{referrals.get('referred_customers', 0):,}"],
            ["Share referred by members", _share(referrals.get("referred_by_members_share"))],
            ["Revenue of referred customers", money(referrals.get("revenue_of_referred"),
                                                    currency, 0)],
            ["Referrals per member-month", _ratio4(referrals.get("referrals_per_member_month"))],
            ["Referrals per non-member customer-month",
             _ratio4(referrals.get("referrals_per_non_member_customer_month"))],
            ["Extra referrals per member-month caused by membership (DiD, 95% CI)",
             f"{_ratio4(did.get('estimate'))} ({_interval(did, _ratio4)})"]]
    return table(["Referrals", "Value"], rows)


def _ratio4(value: Any) -> str:
    value = number(value)
    return "n/a" if value is None else f"{value:.4f}"
