"""More family-help money never increases entries to care, for any valid parameters.

Stated for *cumulative* entries (by every year): annual entries can rise for a year or
two after the money stops, because the children kept out are still in the CIN pool and
meet the baseline hazard again (``test_annual_entries_can_rise_after_the_money_stops``
shows it).  Each child in the pool either enters care or leaves the pool; a lower
hazard at any time raises the chance of leaving first, so cumulative entries can only
fall.  The property holds for entries from the pool and for all starts (re-entries fall
with fewer children in care).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engines import stockflow
from sim.estimation.estimate import estimate_parameters
from sim.model.levers import lever_effects
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import load_scenario
from sim.scenarios.schema import TABLE_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
YEARS = list(range(2023, 2033))
TOLERANCE = 1e-6  # children: float noise in a projection of ~80,000


@cache
def baseline_config() -> dict[str, Any]:
    return load_scenario(ROOT / "scenarios" / "baseline.toml").config


@cache
def estimated() -> ModelParameters:
    """Estimated once: levers never change estimation (they are neutral up to the base
    year), so every example can share the parameters."""
    return estimate_parameters(baseline_config())


def lever_table(money: dict[int, float], chain: dict[str, float]) -> dict[str, Any]:
    defaults = {k: f.default for k, f in TABLE_SECTIONS["levers"].items()}
    return defaults | chain | {"funding_gbp_m": {str(y): m for y, m in money.items()}}


def config_with(money: dict[int, float], chain: dict[str, float],
                rates: dict[str, float] | None = None) -> dict[str, Any]:
    config = copy.deepcopy(baseline_config())
    config["levers"] = {"family_help": lever_table(money, chain)}
    config["rates"].update(rates or {})
    return config


chains = st.fixed_dictionaries({
    "unit_cost_gbp": st.floats(200, 50_000),
    "effect": st.floats(0, 1),
    "risk_ratio": st.floats(0.05, 5),
    "lag_years": st.floats(0, 3),
    "ramp_up_years": st.floats(0, 5),
    "area_share": st.floats(0.01, 1),
    "delay_years": st.integers(0, 3),
})
profiles = st.dictionaries(st.sampled_from(YEARS), st.floats(0, 2_000), min_size=1,
                           max_size=len(YEARS))
# Other valid model settings the lever must not interact badly with.
rate_settings = st.fixed_dictionaries({
    "entry_multiplier": st.floats(0.2, 3),
    "cin_closure_multiplier": st.floats(0.2, 3),
    "reunification_multiplier": st.floats(0.2, 3),
    "reentry_multiplier": st.floats(0, 3),
})


def fake_params() -> ModelParameters:
    mix = np.array([[0.5, 0.2, 0.1, 0.2], [0.4, 0, 0, 0.6]])
    return cast(ModelParameters, SimpleNamespace(
        base_year=2022, cin_pool_base=320_000.0, looked_after_base=82_000.0,
        uasc_base_by_band=np.array([0, 0, 0, 1_000.0, 4_000.0]), placement_mix=mix))


@settings(max_examples=300, deadline=None)
@given(chain=chains, profile=profiles, extra=st.floats(0, 5))
def test_entry_multiplier_never_rises_with_money(chain: dict[str, float],
                                                 profile: dict[int, float],
                                                 extra: float) -> None:
    """The hazard step of the chain, for every year: in [0, 1] and monotone in money."""
    less = config_with(profile, chain)
    more = config_with({y: m * (1 + extra) for y, m in profile.items()}, chain)
    for year in range(2023, 2040):
        low = lever_effects(less, fake_params(), year).entry_multiplier
        high = lever_effects(more, fake_params(), year).entry_multiplier
        assert 0.0 <= high <= low <= 1.0


def cumulative_entries(config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    result = stockflow.project(estimated(), config)
    records = result["records"][1:]
    started = np.array([float(r["started"]) for r in records])
    from_pool = started - np.array([float(r["started_uasc"]) + float(r["reentered"])
                                    for r in records])
    return np.cumsum(from_pool), np.cumsum(started)


@settings(max_examples=30, deadline=None)
@given(chain=chains, profile=profiles, extra=st.floats(0.01, 5), rates=rate_settings)
def test_more_family_help_money_never_increases_entries(chain: dict[str, float],
                                                       profile: dict[int, float],
                                                       extra: float,
                                                       rates: dict[str, float]) -> None:
    less = config_with(profile, chain, rates)
    more = config_with({y: m * (1 + extra) for y, m in profile.items()}, chain, rates)
    pool_less, all_less = cumulative_entries(less)
    pool_more, all_more = cumulative_entries(more)
    assert (pool_more <= pool_less + TOLERANCE).all(), pool_more - pool_less
    assert (all_more <= all_less + TOLERANCE).all(), all_more - all_less


def test_zero_money_gives_the_baseline_entries_exactly() -> None:
    chain = {"unit_cost_gbp": 1_000.0, "effect": 0.5, "risk_ratio": 3.0,
             "lag_years": 0.0, "ramp_up_years": 0.0}
    zero = cumulative_entries(config_with({2024: 0.0, 2025: 0.0}, chain))
    none = cumulative_entries(copy.deepcopy(baseline_config()))
    np.testing.assert_array_equal(zero[0], none[0])
    np.testing.assert_array_equal(zero[1], none[1])


def test_annual_entries_can_rise_after_the_money_stops() -> None:
    """Why the property is cumulative: the year after a large programme ends, entries
    from the pool exceed the baseline's (the pool holds the children kept out)."""
    chain = {"unit_cost_gbp": 1_000.0, "effect": 1.0, "risk_ratio": 3.0,
             "lag_years": 0.0, "ramp_up_years": 0.0}
    funded, _ = cumulative_entries(config_with({2024: 2_000.0, 2025: 2_000.0}, chain))
    baseline, _ = cumulative_entries(copy.deepcopy(baseline_config()))
    annual_funded, annual_baseline = np.diff(funded), np.diff(baseline)
    after = YEARS.index(2026) - 1  # np.diff drops the first year
    assert annual_funded[after] > annual_baseline[after]
    assert (funded <= baseline + TOLERANCE).all()
