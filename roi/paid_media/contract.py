"""The ``paid_media`` block of ``results.json`` (docs/CONTRACT.md section 4) from a fitted MMM.

Plain JSON types only (floats, lists, dicts); ``fit`` (actual vs predicted weekly revenue,
R-squared, MAPE) and ``adstock`` (share of an ad's effect per week after the spend) come from
:mod:`roi.paid_media.fit`; response-curve draws are thinned to at most 200
posterior draws, row ``i`` the same draw for every channel. When the convergence gate failed,
``converged`` is False at the top and in every interval entry.

Examples
--------
>>> _entry({"estimate": 1.0, "low": 0.5, "high": 1.5, "interval": "94% HDI"}, converged=False)
{'estimate': 1.0, 'low': 0.5, 'high': 1.5, 'interval': '94% HDI', 'converged': False}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roi.paid_media.fit import adstock_block, fit_block


def _entry(entry: dict[str, Any], *, converged: bool) -> dict[str, Any]:
    out = {k: (float(v) if k in ("estimate", "low", "high") else v) for k, v in entry.items()}
    if not converged:
        out["converged"] = False
    return out


def paid_media_block(mmm) -> dict[str, Any]:
    """``paid_media`` for a fitted :class:`~roi.paid_media.mmm.MediaMixModel`."""
    result = mmm.result_
    ok = bool(result.diagnostics.converged)
    block = {"method": "mmm", "converged": ok, "interval": result.interval,
             "sampler": result.diagnostics.checks.get("sampler"),
             "warnings": list(result.diagnostics.warnings),
             "channels": _channels(result.by_group, converged=ok),
             "communities": _communities(result.tables["communities"], converged=ok),
             "response_curves": _curves(mmm),
             "weekly_contributions": _weekly(result.tables["contributions"]),
             "fit": fit_block(mmm), "adstock": adstock_block(mmm),
             "lift_tests": [t.to_record() for t in mmm.lift_tests]}
    if getattr(mmm, "baseline_", None) is not None:
        block["regression_baseline"] = mmm.baseline_.to_contract()
    return block


def _channels(by_group: dict[str, dict[str, Any]], *, converged: bool) -> dict[str, Any]:
    out = {}
    for channel, entry in by_group.items():
        out[channel] = {"spend": float(entry["spend"]),
                        **{key: _entry(entry[key], converged=converged)
                           for key in ("roas", "marginal_roas", "incremental_revenue")},
                        "identified": bool(entry["identified"])}
    return out


def _communities(table, *, converged: bool) -> dict[str, Any]:
    out = {}
    for name, row in table.iterrows():
        revenue = {"estimate": row["revenue_estimate"], "low": row["revenue_low"],
                   "high": row["revenue_high"], "interval": "94% HDI"}
        out[str(name)] = {"cost": float(row["cost"]),
                          "incremental_revenue": _entry(revenue, converged=converged)}
    return out


def _curves(mmm) -> dict[str, Any]:
    from roi.paid_media.mmm import CURVE_MULTIPLIERS

    revenue = mmm.curve_draws()                          # (draw, multiplier, channel)
    spend = mmm.data_.spend.sum(axis=0)
    channels = mmm.data_.channels
    return {"multipliers": [float(m) for m in CURVE_MULTIPLIERS],
            "spend": {ch: [float(m * spend[i]) for m in CURVE_MULTIPLIERS]
                      for i, ch in enumerate(channels)},
            "draws": {ch: np.round(revenue[:, :, i], 2).tolist()
                      for i, ch in enumerate(channels)}}


def _weekly(table) -> list[dict[str, Any]]:
    return [{"week": week.strftime("%Y-%m-%d"), "channel": str(channel),
             "contribution": float(value), "low": float(low), "high": float(high)}
            for week, channel, value, low, high in table[
                ["week", "channel", "contribution", "low", "high"]].itertuples(index=False)]
