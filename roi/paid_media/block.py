"""The ``paid_media`` block of ``results.json``: the media-mix model on the weekly series, or
spend only and why, and each community's cost in the window (the comparison's denominators)."""

from __future__ import annotations

from typing import Any


def paid_media_model(weekly, *, sampler, seed: int,
                     lift_tests=()) -> tuple[dict[str, Any], Any]:
    """The Bayesian media-mix model on the weekly series: the ``paid_media`` block and its
    result; a spend-only block with a warning when no channel has spend to model."""
    from roi.paid_media import MediaMixModel
    from roi.paid_media.frame import media_frame

    if sampler is None:
        return _spend_only(weekly, "media-mix model not run ([sampler] models leaves out "
                           "paid_media)"), None
    if len(weekly.spend.columns) == 0:
        # Said in the user's terms, not as the model's argument error ("channels: name at
        # least one spend column"), which a run without ad_spend used to print.
        return _spend_only(weekly, "media-mix model not fitted: no paid channel to model (no "
                           "ad_spend table, or no ad_spend row in the window)"), None
    # The weekly rows as a plain DataFrame: the same path as a user's own data.
    frame, columns = media_frame(weekly)
    try:
        mmm = MediaMixModel(sampler=sampler.backend, draws=sampler.draws, tune=sampler.tune,
                            chains=sampler.chains, seed=seed,
                            lift_tests=list(lift_tests) or None).fit(frame, **columns)
    except ValueError as exc:
        return _spend_only(weekly, f"media-mix model not fitted: {exc}"), None
    return mmm.to_contract(), mmm.result_


def _spend_only(weekly, reason: str) -> dict[str, Any]:
    """The ``paid_media`` block without a model: spend per channel, no ROAS, and why."""
    spend = {channel: {"spend": float(weekly.spend[channel].sum()), "roas": None,
                       "marginal_roas": None} for channel in weekly.spend.columns}
    return {"channels": spend, "converged": False, "warnings": [reason]}


def community_costs(weekly) -> dict[str, float]:
    """Community cost in the analysis window (complete weeks), per community: every community
    with a cost row (with or without members or activity), and 0 for active communities
    without one."""
    communities = [*weekly.cost.columns,
                   *(c for c in weekly.active_members.columns if c not in weekly.cost.columns)]
    totals = weekly.cost.reindex(columns=communities).fillna(0.0).sum()
    return {str(k): float(v) for k, v in totals.items()}
