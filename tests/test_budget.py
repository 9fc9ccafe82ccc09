"""Budget scenarios, optimiser and panel on synthetic results with known Hill responses.

Every paid channel's draw ``i`` earns ``beta_i * hill(spend / current)``; the curves are written
into a results dict on a grid of multipliers, and the answers are checked against the Hill
formula itself, arviz's HDI and a brute-force search that never touches ``roi.budget``.
"""

from __future__ import annotations

import functools
import json
import math
import warnings

import arviz as az
import numpy as np
import pytest

from roi.budget import (
    BudgetModel,
    BudgetWarning,
    default_scenarios,
    hdi,
    with_comparison_and_budget,
)
from roi.widgets import budget_panel
from roi.widgets.budget import EXPECTED_CLASS, SLIDER_CLASS, signed_money

N_DRAWS = 400
GRID = np.round(np.arange(0.0, 2.0001, 0.01), 2)       # multipliers 0 to 2
# name -> (current spend, lognormal mu of beta, half, shape); names deliberately not sorted.
CHANNELS = {"zeta": (1000.0, math.log(3000.0), 1.0, 1.0),
            "alpha": (400.0, math.log(2000.0), 0.5, 1.0),
            "mid": (600.0, math.log(1500.0), 1.2, 2.5)}     # S-shaped
BETA_SIGMA = 0.2
Z95, Z94 = 1.959963984540054, 1.880793608151251


def hill(m: np.ndarray, half: float, shape: float) -> np.ndarray:
    m = np.asarray(m, dtype=float)
    return m ** shape / (m ** shape + half ** shape)


@functools.cache
def betas() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {name: np.exp(rng.normal(mu, BETA_SIGMA, N_DRAWS))
            for name, (_, mu, _, _) in CHANNELS.items()}


def revenue(name: str, spend, beta) -> np.ndarray:
    """Revenue of a channel at ``spend`` for each beta (analytic, independent of roi.budget)."""
    current, _, half, shape = CHANNELS[name]
    return np.multiply.outer(beta, hill(np.asarray(spend) / current, half, shape))


def paid_results(communities: list[dict] | None = None) -> dict:
    b = betas()
    curves = {"multipliers": GRID.tolist(),
              "spend": {n: (GRID * c[0]).tolist() for n, c in CHANNELS.items()},
              "draws": {n: revenue(n, GRID * CHANNELS[n][0], b[n]).tolist() for n in CHANNELS}}
    return {"data": {"currency": "USD"},
            "paid_media": {"method": "mmm", "converged": True, "response_curves": curves,
                           "channels": {n: {"spend": c[0]} for n, c in CHANNELS.items()}},
            "comparison": communities or []}


def community(name: str, cost: float, estimate: float, low: float, high: float) -> dict:
    per_dollar = {"estimate": estimate, "low": low, "high": high, "interval": "95% CI"}
    return {"name": name, "kind": "community", "cost": cost, "revenue_per_dollar": per_dollar,
            "incremental_revenue": {k: v * cost if isinstance(v, float) else v
                                    for k, v in per_dollar.items()}, "notes": []}


COMMUNITIES = [community("forum", 1000.0, 3.0, 1.0, 5.0),
               community("discord", 500.0, 1.5, 1.0, 2.0)]


def mean_revenue(name: str, spend) -> np.ndarray:
    """Mean over draws of beta x hill = (mean beta) x hill."""
    current, _, half, shape = CHANNELS[name]
    return betas()[name].mean() * hill(np.asarray(spend) / current, half, shape)


def test_scenario_on_grid_points_equals_the_hill_formula_and_arviz_hdi():
    model = BudgetModel.from_results(paid_results())
    result = model.scenario([{"from": "zeta", "to": "alpha", "amount": 100.0}])
    b = betas()
    change = (revenue("zeta", 900.0, b["zeta"]) - revenue("zeta", 1000.0, b["zeta"])
              + revenue("alpha", 500.0, b["alpha"]) - revenue("alpha", 400.0, b["alpha"]))
    entry = result["revenue_change"]
    assert entry["estimate"] == pytest.approx(change.mean(), rel=1e-12)   # ~ +219
    low, high = az.hdi(change, hdi_prob=0.94)
    assert (entry["low"], entry["high"]) == pytest.approx((low, high), rel=1e-12)
    assert entry["interval"] == "94% HDI"
    # The population answer (E beta = exp(mu + s^2/2)) lies inside the HDI.
    truth = sum(math.exp(CHANNELS[n][1] + BETA_SIGMA ** 2 / 2) * (
        hill(s / CHANNELS[n][0], *CHANNELS[n][2:]) - hill(1.0, *CHANNELS[n][2:]))
        for n, s in (("zeta", 900.0), ("alpha", 500.0)))
    assert entry["low"] < truth < entry["high"]
    assert result["spend"] == {"zeta": 900.0, "alpha": 500.0, "mid": 600.0}
    assert sum(result["spend"].values()) == pytest.approx(sum(model.current.values()))


def test_between_grid_points_revenue_is_linear_per_draw():
    model = BudgetModel.from_results(paid_results())
    draws = model.revenue_change_draws({"zeta": 962.7})
    grid = GRID * 1000.0
    table = revenue("zeta", grid, betas()["zeta"])
    manual = np.array([np.interp(962.7, grid, row) for row in table]) - table[:, 100]
    np.testing.assert_allclose(draws, manual, rtol=1e-12, atol=1e-9)
    exact = revenue("zeta", 962.7, betas()["zeta"]) - table[:, 100]
    # Linear interpolation error <= max|f''| h^2 / 8; f = beta m / (m + 1), |f''| = 2 beta /
    # (m + 1)^3 at m = 0.96, h = 0.01 in multiplier units: about 0.005% of beta.
    bound = betas()["zeta"] * 2.0 / 1.96 ** 3 * 0.01 ** 2 / 8
    assert np.all(np.abs(draws - exact) <= bound)
    assert np.all(np.abs(draws - exact) > 0.2 * bound)    # and it is interpolation, not the curve


def test_outside_the_grid_revenue_is_held_at_the_edge_with_a_warning():
    model = BudgetModel.from_results(paid_results())
    with pytest.warns(BudgetWarning, match="alpha: spend 900 is outside the response grid"):
        result = model.scenario([{"from": "zeta", "to": "alpha", "amount": 500.0}])
    b = betas()
    edge = (revenue("alpha", 800.0, b["alpha"]) - revenue("alpha", 400.0, b["alpha"])
            + revenue("zeta", 500.0, b["zeta"]) - revenue("zeta", 1000.0, b["zeta"]))
    assert result["revenue_change"]["estimate"] == pytest.approx(edge.mean(), rel=1e-12)
    assert result["spend"]["alpha"] == 900.0 and "not extrapolated" in result["notes"][0]
    with pytest.raises(ValueError, match="spend on 'zeta' would be negative"):
        model.scenario([{"from": "zeta", "to": "mid", "amount": 1000.5}])


def test_unknown_names_are_named_with_the_known_ones():
    model = BudgetModel.from_results(paid_results(COMMUNITIES))
    with pytest.raises(KeyError, match="unknown channel or community 'tv'; known: zeta, alpha, "
                                       "mid, forum, discord"):
        model.scenario([{"from": "zeta", "to": "tv", "amount": 1.0}])
    with pytest.raises(KeyError, match="'Forum'") as error:
        model.optimise(bounds={"Forum": (0.0, 1.0)})
    assert str(error.value).startswith("unknown channel or community 'Forum'; known: zeta")


def brute_force(bounds: dict[str, tuple[float, float]], total: float,
                points: int = 801) -> tuple[dict[str, float], float]:
    """Best mean revenue of zeta, alpha and mid (mid takes the rest) on a fine grid."""
    zeta = np.linspace(*bounds["zeta"], points)
    alpha = np.linspace(*bounds["alpha"], points)
    z, a = np.meshgrid(zeta, alpha, indexing="ij")
    m = np.clip(total - z - a, 0.0, None)
    feasible = (total - z - a >= bounds["mid"][0]) & (total - z - a <= bounds["mid"][1])
    value = np.where(feasible, mean_revenue("zeta", z) + mean_revenue("alpha", a)
                     + mean_revenue("mid", m), -np.inf)
    i = np.unravel_index(np.argmax(value), value.shape)
    return {"zeta": z[i], "alpha": a[i], "mid": m[i]}, float(value[i])


def objective(spend: dict[str, float]) -> float:
    return float(sum(mean_revenue(n, spend[n]) for n in CHANNELS))


def test_optimiser_matches_brute_force_and_applies_bounds_by_name():
    model = BudgetModel.from_results(paid_results())
    # Bounds in a third order; alpha's cap binds. Applied by position (in any of the three
    # orders) alpha would get another channel's bounds and a different spend.
    bounds = {"mid": (300.0, 1200.0), "zeta": (500.0, 1500.0), "alpha": (250.0, 380.0)}
    best = model.optimise(total=2000.0, bounds=bounds)
    spend = best["spend"]
    assert spend["alpha"] == pytest.approx(380.0)
    for name, (low, high) in bounds.items():
        assert low - 1e-9 <= spend[name] <= high + 1e-9
    assert sum(spend.values()) == pytest.approx(2000.0)
    expected, value = brute_force(bounds, 2000.0)             # zeta ~757, alpha 380, mid ~863
    assert objective(spend) == pytest.approx(value, rel=2e-5)
    for name in CHANNELS:
        assert spend[name] == pytest.approx(expected[name], abs=10.0)
    assert best["bounds"] == {n: list(b) for n, b in bounds.items()}
    assert best["total"] == 2000.0
    draws = model.revenue_change_draws(spend)
    assert best["revenue_change"]["estimate"] == pytest.approx(draws.mean())
    assert best["revenue_change"]["estimate"] > 0        # better than the current allocation


def test_optimiser_finds_the_global_optimum_of_an_s_curve_from_low_bounds():
    """From mid's lower bound its returns first rise: a greedy walk stops too early."""
    model = BudgetModel.from_results(paid_results())
    bounds = {"zeta": (500.0, 2000.0), "alpha": (100.0, 800.0), "mid": (60.0, 1200.0)}
    best = model.optimise(total=1500.0, bounds=bounds)
    expected, value = brute_force(bounds, 1500.0)
    assert objective(best["spend"]) == pytest.approx(value, rel=2e-5)
    assert best["spend"]["mid"] == pytest.approx(expected["mid"], abs=10.0)
    assert best["spend"]["mid"] > 300.0


def test_interior_optimum_has_equal_marginal_returns():
    results = paid_results()
    model = BudgetModel.from_results(results)
    bounds = {"zeta": (0.0, 2000.0), "alpha": (0.0, 800.0)}
    spend = model.optimise(total=1400.0, bounds=bounds)["spend"]
    b = betas()
    current = {n: CHANNELS[n][0] for n in bounds}
    slopes = {}
    for name in bounds:   # analytic derivative of E[beta] * s/S / (s/S + half)
        half = CHANNELS[name][2]
        m = spend[name] / current[name]
        slopes[name] = b[name].mean() * half / current[name] / (m + half) ** 2
    assert slopes["zeta"] == pytest.approx(slopes["alpha"], rel=0.01)
    assert spend["mid"] == 600.0                       # not in the bounds: left alone


def test_infeasible_total_is_refused():
    model = BudgetModel.from_results(paid_results())
    with pytest.raises(ValueError, match="outside what the bounds allow"):
        model.optimise(total=5000.0, bounds={"zeta": (0.0, 2000.0), "alpha": (0.0, 800.0)})


def test_community_moves_follow_a_square_root_response_with_normal_rate_draws():
    only = {"comparison": COMMUNITIES, "paid_media": {"channels": {}}}
    model = BudgetModel.from_results(only, seed=3)
    assert model.paid == [] and model.communities == ["forum", "discord"]
    result = model.scenario([{"from": "forum", "to": "discord", "amount": 250.0}])
    # r x c0 x (sqrt(c / c0) - 1): discord 500 -> 750 gains 1.5 x 500 x 0.2247 = 168.5, forum
    # 1000 -> 750 loses 3 x 1000 x 0.1340 = 401.9 (a constant return would say +375 - 750);
    # sds from 95% intervals: 1 / 3.92 and 4 / 3.92.
    up, down = 500.0 * (math.sqrt(1.5) - 1), 1000.0 * (1 - math.sqrt(0.75))
    sd = math.hypot(up / (2 * Z95), 4.0 * down / (2 * Z95))
    entry = result["revenue_change"]
    assert entry["estimate"] == pytest.approx(1.5 * up - 3.0 * down, abs=4 * sd / math.sqrt(2000))
    assert (entry["high"] - entry["low"]) / 2 == pytest.approx(Z94 * sd, rel=0.06)
    assert any("square-root" in note for note in model.notes)
    # The next dollar earns half of today's revenue per dollar; beyond 2x the cost, no more.
    assert model.marginal_returns()["discord"] == pytest.approx(0.5 * 1.5, rel=0.03)
    with pytest.warns(BudgetWarning, match="range assumed for a community"):
        capped = model.scenario([{"from": "forum", "to": "discord", "amount": 900.0}])
    at_edge = model.scenario([{"from": "forum", "to": "discord", "amount": 500.0}])
    lost = 3.0 * 1000.0 * (math.sqrt(0.5) - math.sqrt(0.1))
    assert (capped["revenue_change"]["estimate"] - at_edge["revenue_change"]["estimate"]
            == pytest.approx(-lost, rel=0.05))


def test_paid_and_community_draws_line_up():
    model = BudgetModel.from_results(paid_results(COMMUNITIES), seed=5)
    assert {len(v) for v in model.rates.values()} == {N_DRAWS}
    result = model.scenario([{"from": "zeta", "to": "forum", "amount": 100.0}])
    b = betas()
    paid = (revenue("zeta", 900.0, b["zeta"]) - revenue("zeta", 1000.0, b["zeta"])).mean()
    gain = 1000.0 * (math.sqrt(1.1) - 1)     # forum 1000 -> 1100 under the square root
    assert result["revenue_change"]["estimate"] == pytest.approx(
        paid + 3.0 * gain, abs=4 * gain * 4.0 / (2 * Z95) / math.sqrt(N_DRAWS))


def model_returns(results: dict) -> dict[str, float]:
    return BudgetModel.from_results(results, seed=1).marginal_returns()


def test_default_scenarios_block():
    results = paid_results(COMMUNITIES)
    block = default_scenarios(results, seed=1)
    assert json.loads(json.dumps(block, allow_nan=False)) == block
    assert block["current"] == {"zeta": 1000.0, "alpha": 400.0, "mid": 600.0,
                                "forum": 1000.0, "discord": 500.0}
    # Marginal returns at current spend, E beta x hill'(1) / S: zeta 3060 x 0.25 / 1000 = 0.77,
    # alpha 2040 x 0.222 / 400 = 1.13, mid 1530 x 0.594 / 600 = 1.51: mid best, zeta worst.
    returns = model_returns(results)
    assert [returns[n] for n in CHANNELS] == pytest.approx([0.765, 1.134, 1.514], rel=0.02)
    # Communities: half the mean of 400 normal draws (sd 4 / 3.92 and 1 / 3.92).
    assert returns["forum"] == pytest.approx(1.5, abs=2 * 1.02 / math.sqrt(N_DRAWS))
    assert returns["discord"] == pytest.approx(0.75, abs=2 * 0.255 / math.sqrt(N_DRAWS))
    first = block["scenarios"][0]
    assert first["name"] == "10% of every other paid channel to mid"
    assert first["moves"] == [{"from": "zeta", "to": "mid", "amount": 100.0},
                              {"from": "alpha", "to": "mid", "amount": 40.0}]
    assert first["spend"]["mid"] == pytest.approx(740.0)
    assert [s["name"] for s in block["scenarios"][1:]] == ["10% of zeta into forum",
                                                           "10% of zeta into discord"]
    for scenario in block["scenarios"] + [block["optimised"]]:     # moves conserve the total
        assert sum(scenario["spend"].values()) == pytest.approx(sum(block["current"].values()))
    forum = block["scenarios"][1]
    b = betas()
    paid = (revenue("zeta", 900.0, b["zeta"]) - revenue("zeta", 1000.0, b["zeta"])).mean()
    gain = 1000.0 * (math.sqrt(1.1) - 1)
    assert forum["revenue_change"]["estimate"] == pytest.approx(
        paid + 3.0 * gain, abs=4 * gain * 4.0 / (2 * Z95) / math.sqrt(N_DRAWS))
    optimised = block["optimised"]
    assert optimised["total"] == pytest.approx(2000.0)
    assert optimised["bounds"] == {"zeta": [500.0, 1500.0], "alpha": [200.0, 600.0],
                                   "mid": [300.0, 900.0]}
    for name, (low, high) in optimised["bounds"].items():
        assert low - 1e-9 <= optimised["spend"][name] <= high + 1e-9
    expected, value = brute_force({k: tuple(v) for k, v in optimised["bounds"].items()}, 2000.0)
    assert objective(optimised["spend"]) == pytest.approx(value, rel=2e-5)
    assert any("square-root" in note for note in block["notes"])
    # Per-channel gains add up to the total (same draws); communities are left out, with why.
    assert sum(e["estimate"] for e in optimised["by_name"].values()) == pytest.approx(
        optimised["revenue_change"]["estimate"])
    assert 0.0 <= optimised["probability_positive"] <= 1.0
    scope = block["optimiser_scope"]
    assert scope["moved"] == list(CHANNELS) and set(scope["left_out"]) == {"forum", "discord"}
    assert "50% and 150%" in scope["rule"]


def test_without_curves_or_with_an_unconverged_model_nothing_paid_moves():
    results = paid_results(COMMUNITIES)
    results["paid_media"]["converged"] = False
    block = default_scenarios(results)
    assert block["scenarios"] == [] and block["optimised"] is None
    assert "did not converge" in block["notes"][0]
    assert list(block["current"]) == ["forum", "discord"]
    broken = paid_results()
    broken["paid_media"]["response_curves"]["draws"]["mid"].pop()
    with pytest.raises(ValueError, match="different numbers of draws"):
        BudgetModel.from_results(broken)


def test_hdi_matches_arviz():
    values = np.random.default_rng(2).gamma(2.0, 3.0, 5001)
    assert hdi(values) == pytest.approx(tuple(az.hdi(values, hdi_prob=0.94)), rel=1e-12)


def _text(panel) -> str:
    return panel.expected.value


def test_panel_slider_updates_the_expected_revenue_change():
    panel = budget_panel(paid_results(COMMUNITIES))
    assert list(panel.sliders) == ["zeta", "alpha", "mid", "forum", "discord"]
    alpha = panel.sliders["alpha"]
    assert (alpha.description, alpha.min, alpha.max, alpha.value) == ("alpha", 0.0, 800.0, 400.0)
    assert SLIDER_CLASS in alpha._dom_classes and EXPECTED_CLASS in panel.expected._dom_classes
    assert "+$0.00" in _text(panel)
    alpha.value = 500.0
    b = betas()
    change = (revenue("alpha", 500.0, b["alpha"]) - revenue("alpha", 400.0, b["alpha"])).mean()
    assert f"Expected revenue change {signed_money(change, 'USD')}" in _text(panel)   # +$208.xx
    assert "total spend $3,600.00 (+$100.00)" in _text(panel)
    assert "forum" in panel.table.value and "$3,000.00" in panel.table.value


def test_panel_keeps_the_total_and_optimises():
    panel = budget_panel(paid_results(COMMUNITIES))
    panel.keep_total.value = True
    panel.sliders["alpha"].value = 500.0
    assert sum(panel.spend().values()) == pytest.approx(3500.0)
    assert panel.sliders["zeta"].value < 1000.0 and panel.sliders["forum"].value < 1000.0
    # Others' room to give: zeta 1000, mid 600, forum 1000, discord 500 -> zeta gives 100 x 1000/3100.
    assert panel.sliders["zeta"].value == pytest.approx(1000.0 - 100.0 * 1000.0 / 3100.0)
    panel = budget_panel(paid_results(COMMUNITIES))
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        panel.optimise.click()
    bounds = {"zeta": (500.0, 1500.0), "alpha": (200.0, 600.0), "mid": (300.0, 900.0)}
    expected, value = brute_force(bounds, 2000.0)
    spend = {n: panel.sliders[n].value for n in CHANNELS}
    assert objective(spend) == pytest.approx(value, rel=2e-5)
    gain = value - objective({n: c[0] for n, c in CHANNELS.items()})
    shown = _text(panel).split("Expected revenue change ")[1].split(" ")[0]
    assert float(shown.replace("$", "").replace(",", "")) == pytest.approx(gain, rel=1e-3)
    assert "Optimised" in panel.notes.value


def test_run_hook_sets_comparison_budget_and_diagnostics():
    results = paid_results()
    results["comparison"] = []
    results["diagnostics"] = {"run": {"converged": True, "warnings": []}}
    done = with_comparison_and_budget(results, seed=1)
    assert [r["name"] for r in done["comparison"]] == ["zeta", "alpha", "mid"]
    assert done["budget_scenarios"]["optimised"]["total"] == pytest.approx(2000.0)
    assert set(done["diagnostics"]) == {"run", "comparison"}
    assert results["comparison"] == []          # the input is not modified
    broken = paid_results()
    broken["paid_media"]["response_curves"]["draws"]["mid"].pop()
    block = with_comparison_and_budget(broken)["budget_scenarios"]
    assert block["optimised"] is None and "different numbers of draws" in block["notes"][0]
    assert json.loads(json.dumps(done, allow_nan=False)) == done
