"""Trend treatments (sim/model/rates.py): damping interpolates between the old linear
behaviour (phi = 1) and holding the base year's rates (phi = 0), and floors/ceilings
bound every hazard whatever the slopes."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from fixtures import small_model
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.parameters import ModelParameters
from sim.model.rates import ROUTE_TREND_KEYS, effective_years, year_rates
from sim.model.spec import ENTRY_BAND_TREND_KEYS

YEARS = range(2022, 2033)


@pytest.fixture(scope="module")
def estimated() -> tuple[ModelParameters, dict[str, Any]]:
    """The in-code model (tests/fixtures.py): these are properties of the rates, not of
    the shipped data."""
    return small_model()


def _with(config: dict[str, Any], **trends: Any) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out["trends"].update(trends)
    return out


def _hazards(params: ModelParameters, config: dict[str, Any], year: int) -> np.ndarray:
    rates = year_rates(params, config, year)
    return np.concatenate([rates.entry_rate, rates.exit_rate[0].ravel()])


SLOPES = {"returned_home_trend_per_year": -0.13, "adoption_trend_per_year": -0.08,
          "sgo_cao_trend_per_year": 0.03, "other_exit_trend_per_year": -0.014}


def test_damping_one_is_linear_and_zero_is_hold(estimated: tuple) -> None:
    params, config = estimated
    for year in YEARS:
        linear = _hazards(params, _with(config, method="linear", **SLOPES), year)
        damped_1 = _hazards(params, _with(config, method="damped", entry_damping=1.0,
                                          exit_damping=1.0, **SLOPES), year)
        hold = _hazards(params, _with(config, method="hold", **SLOPES), year)
        damped_0 = _hazards(params, _with(config, method="damped", entry_damping=0.0,
                                          exit_damping=0.0, **SLOPES), year)
        np.testing.assert_allclose(damped_1, linear, rtol=1e-12)
        np.testing.assert_allclose(damped_0, hold, rtol=1e-12)
    base = _hazards(params, _with(config, method="hold", **SLOPES), 2022)
    np.testing.assert_allclose(hold, base, rtol=1e-12)  # hold: base-year rates for ever
    # ... and the slopes do matter under linear (the test could fail)
    assert not np.allclose(linear, hold)


def test_damped_lies_between_hold_and_linear(estimated: tuple) -> None:
    params, config = estimated
    year = 2032
    linear = _hazards(params, _with(config, method="linear", **SLOPES), year)
    hold = _hazards(params, _with(config, method="hold", **SLOPES), year)
    damped = _hazards(params, _with(config, method="damped", entry_damping=0.6,
                                    exit_damping=0.6, **SLOPES), year)
    low, high = np.minimum(linear, hold), np.maximum(linear, hold)
    assert np.all(damped >= low * (1 - 1e-12)) and np.all(damped <= high * (1 + 1e-12))


def test_effective_years_closed_forms() -> None:
    assert effective_years(10, {"method": "linear"}) == 10
    assert effective_years(10, {"method": "hold"}) == 0
    assert effective_years(10, {"method": "stop_after", "stop_after_years": 3}) == 3
    assert effective_years(3, {"method": "damped", "entry_damping": 0.5}) == pytest.approx(
        0.5 + 0.25 + 0.125)
    assert effective_years(0, {"method": "damped", "entry_damping": 0.5}) == 0


slope = st.floats(min_value=-0.3, max_value=0.3, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(route=st.lists(slope, min_size=4, max_size=4),
       band=st.lists(slope, min_size=5, max_size=5),
       entry=st.floats(-0.2, 0.2), exit_=st.floats(-0.2, 0.2),
       floor=st.floats(0.05, 1.0), ceiling=st.floats(1.0, 5.0),
       method=st.sampled_from(["linear", "damped", "stop_after"]),
       damping=st.floats(0.0, 1.0), year=st.integers(2023, 2060))
def test_floors_and_ceilings_hold(estimated: tuple, route: list[float], band: list[float],
                                  entry: float, exit_: float, floor: float, ceiling: float,
                                  method: str, damping: float, year: int) -> None:
    params0, config = estimated
    params = ModelParameters(**{**params0.__dict__, "entry_trend_per_year": entry,
                                "exit_trend_per_year": exit_})
    trends = {"method": method, "entry_damping": damping, "exit_damping": 1 - damping,
              "floor": floor, "ceiling": ceiling,
              **dict(zip(ENTRY_BAND_TREND_KEYS, band, strict=True)),
              **dict(zip(ROUTE_TREND_KEYS, route, strict=True))}
    base = year_rates(params, _with(config, method="hold"), params.base_year)
    rates = year_rates(params, _with(config, **trends), year)
    for now, then in ((rates.entry_rate, base.entry_rate),
                      (rates.exit_rate[0], base.exit_rate[0])):
        positive = then > 0
        ratio = now[positive] / then[positive]
        assert np.all(ratio >= floor * (1 - 1e-9))
        assert np.all(ratio <= ceiling * (1 + 1e-9))
