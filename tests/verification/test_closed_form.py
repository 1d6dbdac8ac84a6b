"""Verification against closed forms (STYLE.md item 12).

With constant rates and ageing off, the engine must equal ``expm(Q t) x0``.  The
expected generator is written out by hand here for a reduced chain (care stages and
returned-home stages only), independently of ``stockflow.build_generators``.  The
parameters are the in-code model (tests/fixtures.py): these are engine mechanics, not
the shipped data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import scipy.linalg

from sim.engines import stockflow
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.model.rates import YearRates, year_rates

L = spec.LAYOUT


def closed_rates(params: ModelParameters, config: dict[str, Any]) -> YearRates:
    """Base-year rates with no inflows from outside care and every (re-)entry placed in
    foster care, so one placement's care and home stages form a closed chain."""
    rates = year_rates(params, config, params.base_year)
    mix = rates.placement_mix.copy()
    mix[0] = [1.0, 0.0, 0.0, 0.0]
    return replace(rates, referral_rate=0.0, placement_mix=mix,
                   uasc_arrivals_by_age_month=np.zeros_like(rates.uasc_arrivals_by_age_month),
                   population_by_age_month=np.zeros_like(rates.population_by_age_month))


def hand_generator(rates: YearRates, band: int, placement: int) -> np.ndarray:
    """Care stages (one placement, non-UASC) + home stages, built from the rates."""
    n_care, n_home = len(spec.CARE_STAGES), len(spec.HOME_STAGES)
    q = np.zeros((n_care + n_home, n_care + n_home))
    mix = rates.placement_mix[0, placement]
    for k in range(n_care):
        hazards = rates.exit_rate[0, band, k]
        if k + 1 < n_care:
            q[k, k + 1] = rates.stage_progress_rate[k]
        q[k, n_care] = hazards[spec.EXIT_ROUTES.index("returned_home")]
        q[k, k] = -(rates.stage_progress_rate[k] + hazards.sum())
    for j in range(n_home):
        h = n_care + j
        if j + 1 < n_home:
            q[h, h + 1] = rates.home_stage_rate[j]
        q[h, 0] = rates.reentry_rate[j] * mix  # re-entry into stage 0 (mix is 1 here)
        q[h, h] = -(rates.home_stage_rate[j] + rates.reentry_rate[j])
    return q


def test_engine_matches_expm_with_constant_rates_and_no_ageing(
        small_params: ModelParameters, small_config: dict[str, Any]) -> None:
    rates = closed_rates(small_params, small_config)
    band, placement, row = 2, 0, 80  # a 6-year-old in foster care
    x = np.zeros((spec.MAX_AGE_MONTHS, L.size))
    x[row, L.care(0, placement, 0)] = 1000.0
    years = 5
    matrices = stockflow.propagators(rates, 1.0 / 12)
    for _ in range(years):
        stockflow.advance_year(x, rates, ageing=False, matrices=matrices)
    expected = np.zeros(len(spec.CARE_STAGES) + len(spec.HOME_STAGES))
    expected[0] = 1000.0
    expected = expected @ scipy.linalg.expm(hand_generator(rates, band, placement) * years)
    engine = np.concatenate([[x[row, L.care(0, placement, k)]
                              for k in range(len(spec.CARE_STAGES))],
                             x[row, L.home_start:L.counter_start]])
    relative = np.abs(engine - expected) / expected
    assert relative.max() < 1e-6, (engine, expected)


def test_full_state_matches_expm_of_generator(
        small_params: ModelParameters, small_config: dict[str, Any]) -> None:
    """All states at once (sources and counters included): monthly stepping composes to
    expm(Q t) exactly when nothing ages."""
    rates = year_rates(small_params, small_config, small_params.base_year)
    x = small_params.initial_state.copy()
    x0 = x.copy()
    generators = stockflow.build_generators(rates)
    total_counters = np.zeros(L.size - L.counter_start)
    for _ in range(3):
        tally = stockflow.advance_year(x, rates, ageing=False)
        total_counters += tally.counters_by_band.sum(0)
    expected = np.concatenate([
        x0[s:e] @ scipy.linalg.expm(generators[b] * 3.0)
        for b, (s, e) in enumerate(stockflow.BAND_ROWS)])
    stocks = slice(L.cin_pool, L.counter_start)
    np.testing.assert_allclose(x[:, stocks], expected[:, stocks], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(total_counters, expected[:, L.counter_start:].sum(0),
                               rtol=1e-6)


def test_euler_converges_to_engine_as_steps_shrink(
        small_params: ModelParameters, small_config: dict[str, Any]) -> None:
    """A first-order explicit scheme converges to the engine's exact step: the error
    roughly halves each time the step halves (and the engine itself does not depend
    on the number of sub-steps per month)."""
    rates = year_rates(small_params, small_config, small_params.base_year)
    generators = stockflow.build_generators(rates)
    x0 = small_params.initial_state.copy()
    exact = x0.copy()
    stockflow.advance_year(exact, rates, ageing=False)
    finer = x0.copy()
    stockflow.advance_year(finer, rates, ageing=False, steps_per_month=4)
    care = slice(L.care_start, L.home_start)
    np.testing.assert_allclose(finer[:, care], exact[:, care], rtol=1e-9, atol=1e-9)

    errors = []
    for steps_per_year in (12, 24, 48, 96):
        x = x0.copy()
        dt = 1.0 / steps_per_year
        for _ in range(steps_per_year):
            x = np.concatenate([
                x[s:e] + dt * (x[s:e] @ generators[b])
                for b, (s, e) in enumerate(stockflow.BAND_ROWS)])
        errors.append(np.abs(x[:, care].sum() - exact[:, care].sum()))
    ratios = [errors[i] / errors[i + 1] for i in range(len(errors) - 1)]
    assert all(1.7 < r < 2.3 for r in ratios), (errors, ratios)
    assert errors[-1] / exact[:, care].sum() < 1e-3
