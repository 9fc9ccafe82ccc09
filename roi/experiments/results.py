"""The experiment in ``results.json``: observational estimate beside each CACE, and the rule
that the comparison uses the experimental number for that community.

Agreement: the CACE and the observational lift of the same community agree when their
difference is within its 95% interval, ``|a - b| <= 1.96 sqrt(se_a^2 + se_b^2)`` (each SE from
its interval's half-width; the two taken as independent, which the experiment's randomization
makes nearly true). They estimate different averages (compliers' member-months with their
retention, against all members' member-months), so agreement is a check, not a proof.

Rule (docs/CONTRACT.md section 4): where an experiment for a community has a CACE with a
first-stage F of at least 10, ``community_revenue_lift.by_community[community]`` becomes that
CACE (``source`` says so, ``observational`` keeps the number it replaced), so the comparison
and the budget use the experimental number. With several experiments for one community, the
one with the most assigned customers.

Examples
--------
>>> entry = {"name": "x", "community": "discord", "first_stage_f": 50.0, "customers":
...          {"invite": 10, "holdout": 10}, "cace_per_member_month":
...          {"estimate": 40.0, "low": 30.0, "high": 50.0, "interval": "95% CI"}}
>>> section = {"preferred": "did", "by_community": {"discord": {"estimate": 35.0, "low": 25.0,
...            "high": 45.0, "interval": "95% CI"}}}
>>> block = {"experiments": [entry]}
>>> _ = apply_experiments(block, section)
>>> section["by_community"]["discord"]["estimate"], entry["agreement"]["agree"]
(40.0, True)
"""

from __future__ import annotations

import math
from typing import Any

from roi.experiments.invitations import WEAK_F

Z95 = 1.959963984540054


def apply_experiments(block: dict[str, Any], revenue_section: dict[str, Any]) -> list[str]:
    """Add ``observational`` and ``agreement`` to each experiment and put usable CACEs into
    ``revenue_section["by_community"]``; returns the run's notes (one per replaced number)."""
    # A copy: the section's map is the preferred estimator's own (also in
    # estimates_by_community), which must keep the observational numbers.
    by_community = dict(revenue_section.get("by_community") or {})
    revenue_section["by_community"] = by_community
    method = revenue_section.get("preferred")
    chosen: dict[str, dict[str, Any]] = {}
    for entry in block.get("experiments", []):
        community = entry.get("community")
        observed = by_community.get(community) if community else None
        entry["observational"] = ({**_numbers(observed), "method": method}
                                  if observed and observed.get("source") is None else None)
        entry["agreement"] = agreement(entry.get("cace_per_member_month"), observed)
        if community and _usable(entry):
            best = chosen.get(community)
            if best is None or _size(entry) > _size(best):
                chosen[community] = entry
    notes = []
    for community, entry in chosen.items():
        cace = entry["cace_per_member_month"]
        by_community[community] = {**_numbers(cace), "source": f"experiment {entry['name']}",
                                   "observational": entry["observational"]}
        notes.append(f"{community}: the comparison uses the randomized experiment "
                     f"{entry['name']!r} (CACE {cace['estimate']:,.2f} per member-month) "
                     "instead of the observational lift; the CACE already counts revenue of "
                     "months kept by lower churn, which the retention revenue counts too.")
    return notes


def agreement(cace: dict[str, Any] | None, observed: dict[str, Any] | None) -> dict[str, Any]:
    """``{"agree", "difference", "z"}``; ``agree`` None when either number is missing."""
    if not _finite(cace) or not _finite(observed):
        return {"agree": None, "difference": None, "z": None}
    difference = cace["estimate"] - observed["estimate"]
    se = math.hypot(_se(cace), _se(observed))
    z = difference / se if se > 0 else math.inf
    return {"agree": bool(abs(z) <= Z95), "difference": difference, "z": z}


def _se(entry: dict[str, Any]) -> float:
    return (entry["high"] - entry["low"]) / (2 * Z95)


def _finite(entry: dict[str, Any] | None) -> bool:
    return bool(entry) and all(isinstance(entry.get(k), int | float)
                               and math.isfinite(entry[k]) for k in ("estimate", "low", "high"))


def _usable(entry: dict[str, Any]) -> bool:
    f = entry.get("first_stage_f")
    return _finite(entry.get("cace_per_member_month")) and f is not None and f >= WEAK_F


def _size(entry: dict[str, Any]) -> int:
    return sum((entry.get("customers") or {}).values())


def _numbers(entry: dict[str, Any] | None) -> dict[str, Any]:
    entry = entry or {}
    return {k: entry.get(k) for k in ("estimate", "low", "high", "interval")}


def invitation_experiments(dataset: Any, panel: Any, *,
                           sample: Any = None) -> dict[str, Any] | None:
    """The ``community_experiment`` block when the source has an ``invitations`` table
    (:mod:`roi.experiments`), else None. With ``sample`` (a
    :class:`roi.data.sample.CustomerSample`; ``dataset`` and ``panel`` then hold its customers
    only), the invitations of the sampled customers, and each experiment says so."""
    if "invitations" not in dataset.tables:
        return None
    import sqlalchemy as sa

    from roi.data.source import fetch_frame
    from roi.experiments import community_experiment

    invitations = sa.select(dataset.tables["invitations"])
    if sample is not None:   # the same customers as the panel's: none counted as unfollowed
        sampled = sa.select(dataset.tables["life"].c.customer_id)
        invitations = invitations.where(
            dataset.tables["invitations"].c.customer_id.in_(sampled))
    invitations = fetch_frame(dataset.engine, invitations)
    end_month = int(panel["month_index"].max()) if len(panel) else 0
    block = community_experiment(panel, invitations, end_month=end_month)
    if sample is not None:
        for entry in block["experiments"]:
            entry["warnings"].append(sample.sentence())
    return block
