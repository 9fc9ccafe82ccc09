"""Budget scenarios on the posterior: move money between paid channels and communities.

Reads a ``results.json`` dict only (contract §4, ``paid_media.response_curves`` and
``comparison``); it never fits a model.

Response model
    * A **paid channel** earns what its response curve says: for every posterior draw the
      revenue is interpolated linearly in spend between the grid points of
      ``response_curves`` (the model was evaluated there and nowhere else). Outside the grid the
      revenue is held at the grid edge with a :class:`BudgetWarning` and a note: no silent
      extrapolation.
    * A **community**'s revenue per dollar (the ``comparison`` row) is measured at its current
      cost only; no response to more or less money is identified. Money moved in or out follows
      an assumed square-root response through that point, ``revenue(c) = r x c0 x (c / c0) **
      0.5`` (:data:`COMMUNITY_ELASTICITY`): the next dollar earns half of today's revenue per
      dollar, doubling the cost adds 41% more revenue (not 100% as a constant return would),
      and cutting it to 0 loses all of it. Its cost stays between 0 and twice today's
      (:data:`COMMUNITY_MAX_MULTIPLE`); beyond, revenue is held at the edge with a
      :class:`BudgetWarning`. The rate draws ``r`` come from a normal approximation of the
      row's interval, independent of the paid draws. The default optimiser moves paid channels
      only (communities' response is assumed, not estimated); a caller may pass community
      bounds explicitly.

Every revenue change is the posterior mean with a 94% HDI over draws; row ``i`` of every paid
channel is the same posterior draw, so sums keep the channels' correlation. Channels and
communities are matched by name everywhere, never by position.

Examples
--------
>>> results = {"paid_media": {"channels": {"a": {"spend": 100.0}, "b": {"spend": 100.0}},
...     "response_curves": {"multipliers": [0.0, 1.0, 2.0],
...                         "spend": {"a": [0.0, 100.0, 200.0], "b": [0.0, 100.0, 200.0]},
...                         "draws": {"a": [[0.0, 300.0, 450.0]], "b": [[0.0, 100.0, 150.0]]}}}}
>>> model = BudgetModel.from_results(results)
>>> model.scenario([{"from": "b", "to": "a", "amount": 50.0}])["revenue_change"]["estimate"]
25.0
>>> model.optimise(total=200.0, bounds={"a": (50.0, 200.0), "b": (0.0, 150.0)})["spend"]
{'a': 200.0, 'b': 0.0}
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy.stats import norm

from roi.comparison import build_comparison, interval_level

HDI94 = "94% HDI"
HDI_PROB = 0.94
COMMUNITY_DRAWS = 2000
OPTIMISER_STEPS = 1000
COMMUNITY_ELASTICITY = 0.5
COMMUNITY_MAX_MULTIPLE = 2.0
COMMUNITY_RESPONSE = ("Communities: revenue per dollar is measured only at today's cost, so "
                      "money moved into or out of a community follows an assumed square-root "
                      "response through that point (the next dollar earns half of today's "
                      "revenue per dollar; doubling the cost adds 41% more revenue, not 100%), "
                      "and its cost stays between 0 and twice today's.")
OPTIMISER_LEFT_OUT = ("not moved by the optimiser: its revenue per dollar is measured at "
                      "today's cost only, so how revenue responds to more or less money is "
                      "assumed (square-root response), not estimated")


class UnknownNameError(KeyError):
    """A channel or community the results do not have (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class BudgetWarning(UserWarning):
    """A spend outside a response curve's grid: revenue held at the grid edge."""


def hdi(values: np.ndarray, prob: float = HDI_PROB) -> tuple[float, float]:
    """The narrowest interval holding ``prob`` of the draws.

    Examples
    --------
    >>> hdi(np.arange(101.0), 0.9)
    (0.0, 90.0)
    """
    x = np.sort(np.asarray(values, dtype=float).ravel())
    width = int(math.floor(prob * len(x)))
    spans = x[width:] - x[: len(x) - width]
    start = int(np.argmin(spans))
    return float(x[start]), float(x[start + width])


def draws_entry(values: np.ndarray) -> dict[str, Any]:
    """Posterior mean and 94% HDI, shaped like the contract.

    Examples
    --------
    >>> draws_entry(np.array([1.0, 2.0, 3.0]))["estimate"]
    2.0
    """
    low, high = hdi(values)
    return {"estimate": float(np.mean(values)), "low": low, "high": high, "interval": HDI94}


@dataclass(frozen=True)
class PaidCurve:
    """Revenue per posterior draw at a grid of window spends (``draws[i, k]`` at ``spend[k]``)."""

    spend: np.ndarray
    draws: np.ndarray

    def revenue(self, value: float) -> np.ndarray:
        """Revenue per draw at ``value``, linear between grid points (caller clips first)."""
        k = int(np.clip(np.searchsorted(self.spend, value, side="right") - 1, 0,
                        len(self.spend) - 2))
        weight = (value - self.spend[k]) / (self.spend[k + 1] - self.spend[k])
        return self.draws[:, k] * (1.0 - weight) + self.draws[:, k + 1] * weight

    def mean_revenue(self, values: np.ndarray) -> np.ndarray:
        """Posterior mean revenue at many spends (the mean of linear interpolations is the
        interpolation of the mean curve: the weights do not depend on the draw)."""
        return np.interp(values, self.spend, self.mean_curve)

    @cached_property
    def mean_curve(self) -> np.ndarray:
        return self.draws.mean(axis=0)


@dataclass
class BudgetModel:
    """Revenue response of every paid channel and community, per posterior draw.

    Attributes
    ----------
    current : dict
        Spend (paid) or cost (community) in the window, by name.
    curves : dict of PaidCurve
        Paid channels with a response curve.
    rates : dict of ndarray
        Revenue-per-dollar draws of each community.
    notes : list of str
        Assumptions and what was left out, for the reader.
    """

    current: dict[str, float]
    curves: dict[str, PaidCurve]
    rates: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_results(cls, results: Mapping[str, Any], *, seed: int = 0) -> BudgetModel:
        """Paid curves from ``paid_media.response_curves``, community rates from the comparison.

        Parameters
        ----------
        results : dict
            A ``results.json`` document.
        seed : int
            Seed of the community rate draws (the paid draws are the posterior's own).
        """
        notes: list[str] = []
        curves, current = _paid_curves(results, notes)
        n_draws = next(iter(curves.values())).draws.shape[0] if curves else COMMUNITY_DRAWS
        rows = results.get("comparison") or build_comparison(results)
        rng = np.random.default_rng(seed)
        rates = {}
        for row in rows:
            if row["kind"] != "community":
                continue
            per_dollar = row.get("revenue_per_dollar")
            cost = row.get("cost")
            if not per_dollar or not math.isfinite(cost or math.nan) or cost <= 0:
                notes.append(f"{row['name']}: no revenue per dollar, left out of the budget.")
                continue
            rates[row["name"]] = _normal_draws(per_dollar, n_draws, rng)
            current[row["name"]] = float(row["cost"])
        if rates:
            notes.append(COMMUNITY_RESPONSE)
        return cls(current=current, curves=curves, rates=rates, notes=notes)

    @property
    def names(self) -> list[str]:
        return list(self.current)

    @property
    def paid(self) -> list[str]:
        return [n for n in self.current if n in self.curves]

    @property
    def communities(self) -> list[str]:
        return [n for n in self.current if n in self.rates]

    def check_names(self, names: Sequence[str]) -> None:
        """A clear error naming an unknown channel or community and the known ones."""
        for name in names:
            if name not in self.current:
                raise UnknownNameError(f"unknown channel or community {name!r}; known: "
                               f"{', '.join(self.current) or 'none'}")

    def spend_range(self, name: str) -> tuple[float, float]:
        """Where the model has answers: the curve's grid (paid), 0 to
        :data:`COMMUNITY_MAX_MULTIPLE` x the cost (community: its response is assumed, so the
        range is kept near the one cost observed)."""
        self.check_names([name])
        if name in self.curves:
            grid = self.curves[name].spend
            return float(grid[0]), float(grid[-1])
        return 0.0, COMMUNITY_MAX_MULTIPLE * self.current[name]

    def community_revenue(self, name: str, value: float | np.ndarray,
                          rate: float | np.ndarray | None = None) -> np.ndarray:
        """Revenue of a community at cost ``value`` under the square-root response, per rate
        draw (``rate`` None) or for the given rate (e.g. the mean).

        Examples
        --------
        >>> model = BudgetModel(current={"c": 100.0}, curves={}, rates={"c": np.array([2.0])})
        >>> float(model.community_revenue("c", 400.0)[0])   # 2 x 100 x sqrt(4)
        400.0
        """
        cost = self.current[name]
        rate = self.rates[name] if rate is None else rate
        return rate * cost * (np.asarray(value, dtype=float) / cost) ** COMMUNITY_ELASTICITY

    def revenue_change_draws(self, spend: Mapping[str, float], *,
                             notes: list[str] | None = None) -> np.ndarray:
        """Revenue change per draw against the current allocation; names not given stay put."""
        self.check_names(list(spend))
        total = np.zeros(self._n_draws())
        for name, value in spend.items():
            if value < 0:
                raise ValueError(f"spend on {name!r} would be negative ({value:,.2f})")
            used = self._clip(name, value, notes)
            total += self._draw_revenue(name, used) - self._draw_revenue(name, self.current[name])
        return total

    def _draw_revenue(self, name: str, value: float) -> np.ndarray:
        if name in self.curves:
            return self.curves[name].revenue(value)
        return self.community_revenue(name, value)

    def evaluate(self, spend: Mapping[str, float]) -> dict[str, Any]:
        """Revenue change of an allocation (names not given keep their current spend)."""
        notes: list[str] = []
        change = self.revenue_change_draws(spend, notes=notes)
        return {"spend": {**self.current, **{k: float(v) for k, v in spend.items()}},
                "revenue_change": draws_entry(change),
                "probability_positive": float(np.mean(change > 0)), "notes": notes}

    def changes_by_name(self, spend: Mapping[str, float]) -> dict[str, dict[str, Any]]:
        """Revenue change of each name whose spend moves by more than a dollar and 0.01% of
        today's (mean, 94% HDI); the optimiser's polish leaves cents elsewhere."""
        return {name: draws_entry(self.revenue_change_draws({name: value}))
                for name, value in spend.items()
                if abs(value - self.current[name]) > max(1.0, 1e-4 * self.current[name])}

    def scenario(self, moves: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Apply moves ``{"from", "to", "amount"}`` in order; total spend is unchanged.

        Returns
        -------
        dict
            ``moves``, ``spend`` (every name), ``revenue_change`` (mean, 94% HDI), ``notes``.
        """
        spend = dict(self.current)
        for move in moves:
            self.check_names([move["from"], move["to"]])
            amount = float(move["amount"])
            if amount < 0:
                raise ValueError(f"move amounts must be >= 0, got {amount} ({move})")
            spend[move["from"]] -= amount
            spend[move["to"]] += amount
        return {"moves": [dict(m) for m in moves], **self.evaluate(spend)}

    def marginal_returns(self) -> dict[str, float]:
        """Posterior mean revenue of the next dollar at current spend (central difference
        over 1% of spend on a paid curve; for a community the square-root response's slope at
        today's cost, :data:`COMMUNITY_ELASTICITY` x its mean revenue per dollar)."""
        out = {}
        for name in self.paid:
            curve, now = self.curves[name], self.current[name]
            step = 0.01 * now if now > 0 else 0.01 * curve.spend[-1]
            low, high = max(now - step, curve.spend[0]), min(now + step, curve.spend[-1])
            values = curve.mean_revenue(np.array([low, high]))
            out[name] = float((values[1] - values[0]) / (high - low))
        out.update({name: COMMUNITY_ELASTICITY * float(np.mean(self.rates[name]))
                    for name in self.communities})
        return out

    def optimise(self, *, total: float | None = None,
                 bounds: Mapping[str, tuple[float, float]] | None = None,
                 steps: int = OPTIMISER_STEPS) -> dict[str, Any]:
        """The allocation of ``total`` over the names in ``bounds`` with the highest posterior
        mean revenue; every other name keeps its current spend.

        Dynamic programming over ``steps`` equal increments of the budget above the lower
        bounds: exact on that grid, also for S-shaped curves where greedy marginal allocation
        stops at a local optimum.

        Parameters
        ----------
        total : float, optional
            Budget to share; default the current spend of the names in ``bounds``.
        bounds : dict, optional
            ``{name: (low, high)}``; default every paid channel over its curve's grid. Paid
            bounds are cut to the grid (with a note).
        steps : int
            Increments of the free budget.

        Returns
        -------
        dict
            ``total``, ``bounds``, ``spend`` (every name), ``revenue_change``, ``notes``.
        """
        bounds = dict(bounds) if bounds is not None else {n: self.spend_range(n)
                                                          for n in self.paid}
        self.check_names(list(bounds))
        notes: list[str] = []
        limits = {n: self._usable_bounds(n, b, notes) for n, b in bounds.items()}
        total = float(sum(self.current[n] for n in limits) if total is None else total)
        floor, ceiling = (sum(b[i] for b in limits.values()) for i in (0, 1))
        if not floor - 1e-9 <= total <= ceiling + 1e-9:
            raise ValueError(f"total {total:,.2f} is outside what the bounds allow "
                             f"({floor:,.2f} to {ceiling:,.2f})")
        chosen = _allocate(self._mean_curves(limits, unit=(total - floor) / steps,
                                             steps=steps), steps=steps)
        unit = (total - floor) / steps
        spend = {n: limits[n][0] + u * unit for n, u in zip(limits, chosen, strict=True)}
        spend = _polish(spend, limits, self._mean_revenue, step=unit)
        result = self.evaluate(spend)
        return {"total": total, "bounds": {n: [float(lo), float(hi)] for n, (lo, hi)
                                           in bounds.items()},
                "spend": result["spend"], "revenue_change": result["revenue_change"],
                "probability_positive": result["probability_positive"],
                "by_name": self.changes_by_name({n: result["spend"][n] for n in limits}),
                "notes": notes + result["notes"]}

    def _usable_bounds(self, name: str, bound: Sequence[float],
                       notes: list[str]) -> tuple[float, float]:
        low, high = float(bound[0]), float(bound[1])
        if low > high or low < 0:
            raise ValueError(f"bounds of {name!r} must satisfy 0 <= low <= high, got {bound}")
        edge_low, edge_high = self.spend_range(name)
        if low < edge_low or high > edge_high:
            notes.append(f"{name}: bounds cut to the range the budget model covers "
                         f"({edge_low:,.0f} to {edge_high:,.0f}); it has no answer beyond it.")
        return max(low, edge_low), min(high, edge_high)

    def _mean_curves(self, limits: Mapping[str, tuple[float, float]], *, unit: float,
                     steps: int) -> list[np.ndarray]:
        """Mean revenue of each name at low + u * unit, u = 0..steps (-inf above its high)."""
        out = []
        for name, (low, high) in limits.items():
            values = low + unit * np.arange(steps + 1)
            if name in self.curves:
                revenue = self.curves[name].mean_revenue(np.minimum(values, high))
            else:
                revenue = self.community_revenue(name, np.minimum(values, high),
                                                 float(np.mean(self.rates[name])))
            out.append(np.where(values <= high + 1e-9 * max(1.0, high), revenue, -np.inf))
        return out

    def _mean_revenue(self, name: str, value: float) -> float:
        if name in self.curves:
            return float(self.curves[name].mean_revenue(np.array([value]))[0])
        return float(self.community_revenue(name, value, float(np.mean(self.rates[name]))))

    def _clip(self, name: str, value: float, notes: list[str] | None) -> float:
        low, high = self.spend_range(name)
        tolerance = 1e-9 * max(1.0, high)
        if low - tolerance <= value <= high + tolerance:
            return min(max(value, low), high)
        where = "response grid" if name in self.curves else "range assumed for a community"
        message = (f"{name}: spend {value:,.0f} is outside the {where} ({low:,.0f} to "
                   f"{high:,.0f}); its revenue is held at the edge, not extrapolated.")
        warnings.warn(message, BudgetWarning, stacklevel=3)
        if notes is not None:
            notes.append(message)
        return min(max(value, low), high)

    def _n_draws(self) -> int:
        if self.curves:
            return next(iter(self.curves.values())).draws.shape[0]
        return len(next(iter(self.rates.values()))) if self.rates else 1


def _allocate(values: list[np.ndarray], *, steps: int) -> list[int]:
    """Units per item maximising the sum of ``values[j][units_j]`` with sum(units) == steps.

    ``best[u]`` is the best sum of the items so far with ``u`` units; adding an item tries
    every split of ``u`` (a loop over this item's units keeps memory linear in ``steps``).
    """
    best, choices = values[0].copy(), []
    for item in values[1:]:
        merged, choice = np.full(steps + 1, -np.inf), np.zeros(steps + 1, dtype=int)
        for given in range(steps + 1):
            if not np.isfinite(item[given]):
                break
            candidate = best[: steps + 1 - given] + item[given]
            better = candidate > merged[given:]
            merged[given:][better] = candidate[better]
            choice[given:][better] = given
        best = merged
        choices.append(choice)
    units, remaining = [], steps
    for choice in reversed(choices):
        units.append(int(choice[remaining]))
        remaining -= units[-1]
    return [remaining] + units[::-1]


def _polish(spend: dict[str, float], limits: Mapping[str, tuple[float, float]], revenue,
            *, step: float, halvings: int = 12) -> dict[str, float]:
    """Pairwise exchanges of shrinking size from the grid optimum: brings a bound that falls
    between grid steps exactly to the bound, and any interior split to within step / 4096."""
    spend = dict(spend)
    for _ in range(halvings):
        improved = True
        while improved:
            improved = False
            for giver in spend:
                for taker in spend:
                    amount = min(step, spend[giver] - limits[giver][0],
                                 limits[taker][1] - spend[taker])
                    if giver == taker or amount <= 0:
                        continue
                    gain = (revenue(taker, spend[taker] + amount) - revenue(taker, spend[taker])
                            + revenue(giver, spend[giver] - amount)
                            - revenue(giver, spend[giver]))
                    if gain > 1e-12 * (1.0 + abs(revenue(taker, spend[taker]))):
                        spend[giver] -= amount
                        spend[taker] += amount
                        improved = True
        step /= 2
    return spend


def _paid_curves(results: Mapping[str, Any],
                 notes: list[str]) -> tuple[dict[str, PaidCurve], dict[str, float]]:
    paid = results.get("paid_media") or {}
    curves_block = paid.get("response_curves") or {}
    if not curves_block.get("draws"):
        notes.append("No paid-media response curves in the results (media-mix model absent): "
                     "paid channels cannot be moved.")
        return {}, {}
    if paid.get("converged") is False:
        notes.append("The media-mix model did not converge: paid channels cannot be moved.")
        return {}, {}
    curves, current, sizes = {}, {}, set()
    for name, draws in curves_block["draws"].items():
        grid = np.asarray(curves_block["spend"][name], dtype=float)
        if len(grid) < 2 or np.any(np.diff(grid) <= 0):
            notes.append(f"{name}: its spend grid is not increasing (no spend?), left out.")
            continue
        curves[name] = PaidCurve(spend=grid, draws=np.asarray(draws, dtype=float))
        sizes.add(curves[name].draws.shape[0])
        current[name] = _current_spend(paid, curves_block, name)
        if ((paid.get("channels") or {}).get(name) or {}).get("identified") is False:
            notes.append(f"{name}: its response curve is the prior's (spend never changes in "
                         "the data), so moves involving it rest on assumptions.")
    if len(sizes) > 1:
        raise ValueError(f"response curves have different numbers of draws {sorted(sizes)}: "
                         "row i must be the same posterior draw for every channel")
    return curves, current


def _current_spend(paid: Mapping[str, Any], block: Mapping[str, Any], name: str) -> float:
    spend = ((paid.get("channels") or {}).get(name) or {}).get("spend")
    if spend is not None:
        return float(spend)
    at_one = list(block["multipliers"]).index(1.0)
    return float(block["spend"][name][at_one])


def _normal_draws(entry: Mapping[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of a normal with the entry's estimate and an sd from its interval's width."""
    level = interval_level(entry.get("interval"))
    sd = (entry["high"] - entry["low"]) / (2 * float(norm.ppf(0.5 + level / 2)))
    return rng.normal(entry["estimate"], sd, n)


def default_scenarios(results: Mapping[str, Any], *, seed: int = 0, share: float = 0.1,
                      bounds: tuple[float, float] = (0.5, 1.5)) -> dict[str, Any]:
    """The ``budget_scenarios`` block of ``results.json``.

    Scenarios: ``share`` of every other paid channel to the one with the highest marginal
    return; ``share`` of the lowest-marginal-return channel into each community (under the
    assumed square-root community response); and the current paid total reallocated with each
    paid channel between ``bounds`` x its spend (``optimised``). ``optimiser_scope`` says which
    names the optimiser moved, within what, and why the others were left out.

    Parameters
    ----------
    results : dict
        A ``results.json`` document.
    seed : int
        Seed of the community rate draws.
    share : float
        Fraction of a channel's spend a scenario moves.
    bounds : tuple of float
        Lower and upper multipliers of current spend for the optimiser.

    Examples
    --------
    >>> block = default_scenarios({"paid_media": {"channels": {"tv": {"spend": 1.0}}}})
    >>> block["scenarios"], block["optimised"]
    ([], None)
    """
    model = BudgetModel.from_results(results, seed=seed)
    block: dict[str, Any] = {"current": dict(model.current), "scenarios": [], "optimised": None,
                             "optimiser_scope": _scope(model, bounds),
                             "notes": list(model.notes)}
    if not model.paid:
        return block
    returns = model.marginal_returns()
    best = max(model.paid, key=returns.__getitem__)
    worst = min(model.paid, key=returns.__getitem__)
    moves = [{"from": n, "to": best, "amount": share * model.current[n]}
             for n in model.paid if n != best]
    if moves:
        block["scenarios"].append({"name": f"{share:.0%} of every other paid channel to {best}",
                                   **model.scenario(moves)})
    for community in model.communities:
        move = {"from": worst, "to": community, "amount": share * model.current[worst]}
        block["scenarios"].append({"name": f"{share:.0%} of {worst} into {community}",
                                   **model.scenario([move])})
    limits = {n: (bounds[0] * model.current[n], bounds[1] * model.current[n])
              for n in model.paid}
    block["optimised"] = model.optimise(bounds=limits)
    return block


def _scope(model: BudgetModel, bounds: tuple[float, float]) -> dict[str, Any]:
    """``optimiser_scope``: the names the default optimiser moves, their rule, and why every
    other name is left out."""
    rule = (f"each paid channel between {bounds[0]:.0%} and {bounds[1]:.0%} of today's spend, "
            "total paid spend unchanged: near the spend the media-mix model learnt from "
            "(its response curves go from 0 to 2x today's spend)")
    return {"moved": list(model.paid), "rule": rule if model.paid else None,
            "left_out": {name: OPTIMISER_LEFT_OUT for name in model.communities}}


def with_comparison_and_budget(results: Mapping[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """``results`` with ``comparison``, ``budget_scenarios`` and ``diagnostics.comparison`` set.

    What :mod:`roi.run` calls last, on the assembled (JSON-ready) document. A budget that cannot
    be computed (malformed curves) becomes a note in the block and a diagnostics warning, not a
    failed run.

    Examples
    --------
    >>> done = with_comparison_and_budget({"paid_media": {"channels": {"tv": {"spend": 1.0}}},
    ...                                    "diagnostics": {}})
    >>> done["comparison"][0]["name"], done["budget_scenarios"]["optimised"]
    ('tv', None)
    >>> done["diagnostics"]["comparison"]["converged"]
    True
    """
    from roi.comparison import find_disagreements

    done = dict(results)
    done["comparison"] = build_comparison(done)
    disagreements = find_disagreements(done)
    warnings_ = [d["message"] for d in disagreements]
    try:
        done["budget_scenarios"] = default_scenarios(done, seed=seed)
    except (ValueError, KeyError) as exc:
        note = f"budget scenarios not computed: {exc}"
        done["budget_scenarios"] = {"current": {}, "scenarios": [], "optimised": None,
                                    "notes": [note]}
        warnings_.append(note)
    done["diagnostics"] = {**(done.get("diagnostics") or {}), "comparison": {
        "converged": True, "warnings": warnings_, "checks": {"disagreements": disagreements}}}
    return done
