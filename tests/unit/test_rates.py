"""sim/model/rates.py on the in-code model (tests/fixtures.py): how trends, scenario
multipliers, floors and ceilings, the UASC path and DfE's counting rule turn parameters
into one year's hazards.  tests/properties/test_trend_treatments.py covers the damped /
hold / linear family and floors as properties; these are the exact values."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.model.rates import (
    ROUTE_TREND_KEYS,
    dfe_basis_starts,
    effective_years,
    population_in_year,
    year_rates,
)

HOME, ADOPTION, SGO, OTHER = (spec.EXIT_ROUTES.index(r) for r in
                              ("returned_home", "adoption", "sgo_cao", "other"))


def _with(config: dict[str, Any], section: str, **values: Any) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out[section].update(values)
    return out


def _flat(params: ModelParameters) -> ModelParameters:
    return replace(params, entry_trend_per_year=0.0, exit_trend_per_year=0.0)


# --- trends ---------------------------------------------------------------------------


def test_base_year_hazards_are_the_parameters(small_params: ModelParameters,
                                              small_config: dict) -> None:
    rates = year_rates(small_params, small_config, small_params.base_year)
    np.testing.assert_allclose(rates.entry_rate, small_params.entry_rate_per_year, rtol=1e-14)
    expected = (small_params.exit_rate_per_year.T[:, None, :]
                * small_params.stage_exit_multiplier[None, :, None])
    np.testing.assert_allclose(rates.exit_rate[0], expected, rtol=1e-14)
    assert rates.birth_entry_share == pytest.approx(small_params.birth_entry_share, rel=1e-14)


def test_linear_trend_compounds_exactly(small_params: ModelParameters,
                                        small_config: dict) -> None:
    config = _with(small_config, "trends", method="linear")
    for years in (1, 5, 8):
        rates = year_rates(small_params, config, small_params.base_year + years)
        np.testing.assert_allclose(
            rates.entry_rate,
            small_params.entry_rate_per_year * np.exp(small_params.entry_trend_per_year
                                                       * years), rtol=1e-12)
        np.testing.assert_allclose(
            rates.exit_rate[0, :, 0, HOME],
            small_params.exit_rate_per_year[HOME] * small_params.stage_exit_multiplier[0]
            * np.exp(small_params.exit_trend_per_year * years), rtol=1e-12)


def test_trends_stop_after_continue_until(small_params: ModelParameters,
                                          small_config: dict) -> None:
    params = replace(small_params, trend_until_year=small_params.base_year + 3)
    at_stop = year_rates(params, small_config, params.base_year + 3)
    later = year_rates(params, small_config, params.base_year + 7)
    np.testing.assert_allclose(later.entry_rate, at_stop.entry_rate, rtol=1e-14)
    np.testing.assert_allclose(later.exit_rate, at_stop.exit_rate, rtol=1e-14)
    before = year_rates(params, small_config, params.base_year + 2)
    assert not np.allclose(before.entry_rate, at_stop.entry_rate)  # it did move until then


def test_damped_uses_entry_and_exit_damping_separately(small_params: ModelParameters,
                                                       small_config: dict) -> None:
    config = _with(small_config, "trends", method="damped", entry_damping=0.5,
                   exit_damping=0.8)
    year = small_params.base_year + 4
    rates = year_rates(small_params, config, year)
    entry_years = 0.5 + 0.25 + 0.125 + 0.0625
    exit_years = 0.8 * (1 - 0.8 ** 4) / (1 - 0.8)
    assert effective_years(4, config["trends"], "exit") == pytest.approx(exit_years)
    np.testing.assert_allclose(rates.entry_rate, small_params.entry_rate_per_year
                               * np.exp(small_params.entry_trend_per_year * entry_years),
                               rtol=1e-12)
    np.testing.assert_allclose(
        rates.exit_rate[0, :, 0, OTHER],
        small_params.exit_rate_per_year[OTHER] * small_params.stage_exit_multiplier[0]
        * np.exp(small_params.exit_trend_per_year * exit_years), rtol=1e-12)


def test_stop_after_holds_the_slope_after_n_years(small_params: ModelParameters,
                                                  small_config: dict) -> None:
    config = _with(small_config, "trends", method="stop_after", stop_after_years=2)
    two = year_rates(small_params, config, small_params.base_year + 2)
    six = year_rates(small_params, config, small_params.base_year + 6)
    np.testing.assert_allclose(six.entry_rate, two.entry_rate, rtol=1e-14)
    np.testing.assert_allclose(two.entry_rate, small_params.entry_rate_per_year
                               * np.exp(2 * small_params.entry_trend_per_year), rtol=1e-12)


def test_band_entry_trend_moves_only_its_band(small_params: ModelParameters,
                                              small_config: dict) -> None:
    params = _flat(small_params)
    key = spec.ENTRY_BAND_TREND_KEYS[3]
    config = _with(small_config, "trends", **{key: 0.05})
    rates = year_rates(params, config, params.base_year + 4)
    ratio = rates.entry_rate / params.entry_rate_per_year
    np.testing.assert_allclose(ratio, [1, 1, 1, np.exp(0.2), 1], rtol=1e-12)


def test_route_trend_moves_only_its_route(small_params: ModelParameters,
                                          small_config: dict) -> None:
    params = _flat(small_params)
    for route, key in enumerate(ROUTE_TREND_KEYS):
        config = _with(small_config, "trends", **{key: -0.1})
        base = year_rates(params, config, params.base_year).exit_rate[0]
        later = year_rates(params, config, params.base_year + 3).exit_rate[0]
        positive = base > 0
        ratio = np.ones_like(base)
        ratio[positive] = later[positive] / base[positive]
        expected = np.ones(len(spec.EXIT_ROUTES))
        expected[route] = np.exp(-0.3)
        np.testing.assert_allclose(ratio[positive],
                                   np.broadcast_to(expected, base.shape)[positive],
                                   rtol=1e-12)


def test_trend_change_after_change_year(small_params: ModelParameters,
                                        small_config: dict) -> None:
    params = replace(_flat(small_params), entry_trend_per_year=0.02)
    change = params.base_year + 2
    config = _with(small_config, "trends", trend_change_year=change,
                   entry_trend_change_per_year=-0.05)
    rates = year_rates(params, config, params.base_year + 5)
    log_factor = 0.02 * 5 - 0.05 * 3
    np.testing.assert_allclose(rates.entry_rate,
                               params.entry_rate_per_year * np.exp(log_factor), rtol=1e-12)


def test_floor_and_ceiling_bind_exactly(small_params: ModelParameters,
                                        small_config: dict) -> None:
    falling = replace(_flat(small_params), entry_trend_per_year=-0.2)
    config = _with(small_config, "trends", floor=0.6)
    rates = year_rates(falling, config, falling.base_year + 10)  # exp(-2) < 0.6
    np.testing.assert_allclose(rates.entry_rate, 0.6 * falling.entry_rate_per_year,
                               rtol=1e-12)
    rising = replace(_flat(small_params), exit_trend_per_year=0.2)
    config = _with(small_config, "trends", ceiling=1.5)
    rates = year_rates(rising, config, rising.base_year + 10)  # exp(2) > 1.5
    base = year_rates(rising, config, rising.base_year)
    np.testing.assert_allclose(rates.exit_rate[0], 1.5 * base.exit_rate[0], rtol=1e-12)
    # a trend inside the bounds is untouched
    mild = year_rates(rising, config, rising.base_year + 1)
    np.testing.assert_allclose(mild.exit_rate[0], np.exp(0.2) * base.exit_rate[0],
                               rtol=1e-12)


# --- scenario multipliers ------------------------------------------------------------


@pytest.mark.parametrize(("key", "route"), [("reunification_multiplier", HOME),
                                            ("adoption_multiplier", ADOPTION),
                                            ("sgo_cao_multiplier", SGO),
                                            ("other_exit_multiplier", OTHER)])
def test_route_multiplier_scales_its_route_only(small_params: ModelParameters,
                                                small_config: dict, key: str,
                                                route: int) -> None:
    year = small_params.base_year + 2
    base = year_rates(small_params, small_config, year)
    scaled = year_rates(small_params, _with(small_config, "rates", **{key: 0.7}), year)
    expected = base.exit_rate[0].copy()
    expected[..., route] *= 0.7
    np.testing.assert_allclose(scaled.exit_rate[0], expected, rtol=1e-14)
    np.testing.assert_allclose(scaled.exit_rate[1], base.exit_rate[1], rtol=1e-14)  # UASC
    np.testing.assert_allclose(scaled.entry_rate, base.entry_rate, rtol=1e-14)


def test_entry_and_other_multipliers(small_params: ModelParameters,
                                     small_config: dict) -> None:
    year = small_params.base_year + 1
    base = year_rates(small_params, small_config, year)
    config = _with(small_config, "rates", entry_multiplier=0.8, reentry_multiplier=1.5,
                   referral_multiplier=1.1, cin_closure_multiplier=0.9)
    scaled = year_rates(small_params, config, year)
    np.testing.assert_allclose(scaled.entry_rate, 0.8 * base.entry_rate, rtol=1e-14)
    assert scaled.birth_entry_share == pytest.approx(0.8 * base.birth_entry_share, rel=1e-14)
    np.testing.assert_allclose(scaled.reentry_rate, 1.5 * base.reentry_rate, rtol=1e-14)
    assert scaled.referral_rate == pytest.approx(1.1 * base.referral_rate, rel=1e-14)
    assert scaled.cin_closure_rate == pytest.approx(0.9 * base.cin_closure_rate, rel=1e-14)
    np.testing.assert_allclose(scaled.exit_rate, base.exit_rate, rtol=1e-14)


def test_birth_entry_share_is_capped_at_one(small_params: ModelParameters,
                                            small_config: dict) -> None:
    params = replace(small_params, birth_entry_share=0.05)
    config = _with(small_config, "rates", entry_multiplier=50.0)
    assert year_rates(params, config, params.base_year + 1).birth_entry_share == 1.0


# --- UASC, population, stages ----------------------------------------------------------


def test_uasc_exit_is_one_other_hazard(small_params: ModelParameters,
                                       small_config: dict) -> None:
    rates = year_rates(small_params, small_config, small_params.base_year + 1)
    uasc = rates.exit_rate[1]
    assert np.all(uasc[..., OTHER] == small_params.uasc_exit_rate_per_year)
    assert np.all(np.delete(uasc, OTHER, axis=-1) == 0.0)


def test_uasc_arrivals_base_year_path_and_override(small_params: ModelParameters,
                                                   small_config: dict) -> None:
    base = small_params.base_year
    arrivals = [year_rates(small_params, small_config, y).uasc_arrivals_by_age_month.sum()
                for y in (base, base + 1, base + 5)]
    np.testing.assert_allclose(arrivals, [small_params.uasc_arrivals_base_year,
                                          small_params.uasc_arrivals_per_year,
                                          small_params.uasc_arrivals_per_year], rtol=1e-12)
    config = copy.deepcopy(small_config)
    config["uasc"]["arrivals_by_year"] = {str(base + 5): 99.0}
    rates = year_rates(small_params, config, base + 5)
    assert rates.uasc_arrivals_by_age_month.sum() == pytest.approx(99.0, rel=1e-12)
    # only at ages with a share
    per_year = rates.uasc_arrivals_by_age_month.reshape(18, 12).sum(1)
    np.testing.assert_allclose(per_year, 99.0 * small_params.uasc_age_share, rtol=1e-12)


def test_population_ages_forward_with_births(small_params: ModelParameters) -> None:
    params = replace(small_params, births_per_year=1234.0)
    base = params.population_by_age
    np.testing.assert_array_equal(population_in_year(params, params.base_year), base)
    two = population_in_year(params, params.base_year + 2)
    np.testing.assert_array_equal(two[:2], [1234.0, 1234.0])
    np.testing.assert_array_equal(two[2:], base[:-2])
    # years before the base year: the base year's population
    np.testing.assert_array_equal(population_in_year(params, params.base_year - 3), base)


def test_population_by_age_month_sums_to_population(small_params: ModelParameters,
                                                    small_config: dict) -> None:
    rates = year_rates(small_params, small_config, small_params.base_year)
    assert rates.population_by_age_month.shape == (spec.MAX_AGE_MONTHS,)
    np.testing.assert_allclose(rates.population_by_age_month.reshape(18, 12).sum(1),
                               small_params.population_by_age, rtol=1e-12)


def test_stage_progress_rates(small_params: ModelParameters, small_config: dict) -> None:
    rates = year_rates(small_params, small_config, small_params.base_year)
    expected = [1 / m if np.isfinite(m) else 0.0 for m in spec.CARE_STAGE_MEAN_YEARS]
    np.testing.assert_allclose(rates.stage_progress_rate, expected, rtol=1e-14)
    np.testing.assert_allclose(rates.home_stage_rate,
                               1 / np.array(spec.HOME_STAGE_MEAN_YEARS), rtol=1e-14)


# --- DfE counting rule ---------------------------------------------------------------


def test_dfe_basis_starts_removes_a_share_of_non_uasc_starts_only() -> None:
    every = np.array([100.0, 200.0, 50.0, 80.0, 120.0])
    uasc = np.array([0.0, 0.0, 0.0, 20.0, 60.0])
    out = dfe_basis_starts(every, uasc, 0.1)
    np.testing.assert_allclose(out, [90.0, 180.0, 45.0, 74.0, 114.0], rtol=1e-14)
    np.testing.assert_array_equal(dfe_basis_starts(every, uasc, 0.0), every)
    # all UASC: nothing to remove
    np.testing.assert_allclose(dfe_basis_starts(uasc, uasc, 0.2), uasc, rtol=1e-14)


def test_repeat_start_share_is_passed_through(small_params: ModelParameters,
                                              small_config: dict) -> None:
    rates = year_rates(small_params, small_config, small_params.base_year + 1)
    assert rates.repeat_start_share == small_params.repeat_start_share
