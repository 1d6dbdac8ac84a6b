"""A small, fully in-code model: hand-set parameters for a town of about 60,000 children
with a few hundred in care, and the matching code-default configuration.

Nothing here reads ``sim/data`` or a scenario file, so tests built on it do not depend
on the shipped CSVs, on the calibration layers or on the working directory.  The
values are plausible (England's rates, scaled down), not estimates: tests that check the
shipped data or the calibration keep using ``baseline_params``.

Import from a test module as ``from fixtures import small_model`` (``tests/`` is on
``sys.path`` through its conftest), or use the ``small_params`` / ``small_config``
fixtures in ``tests/conftest.py``.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr

from sim.model.parameters import ModelParameters
from sim.scenarios.loader import load_scenario

BASE_YEAR = 2022
END_YEAR = 2030

# Children by single year of age 0-17: about 60,000, gently rising with age.
POPULATION_BY_AGE = np.linspace(3_150.0, 3_500.0, 18)
CIN_POOL = 1_600.0
CIN_CLOSURE = 0.95
# Per CIN-pool child per year, by DfE age band (England 2022: 0.21, 0.07, 0.04, 0.06, 0.09).
ENTRY_RATE = np.array([0.21, 0.066, 0.044, 0.061, 0.086])
# Per child in care per year, route x band (returned home, adoption, SGO/CAO, other);
# adoption only under 10.
EXIT_RATE = np.array([
    [0.073, 0.129, 0.069, 0.058, 0.073],
    [0.060, 0.107, 0.058, 0.0, 0.0],
    [0.057, 0.102, 0.055, 0.046, 0.057],
    [0.045, 0.079, 0.042, 0.035, 0.045],
])
STAGE_MULTIPLIER = np.array([1.86, 1.72, 1.60, 1.32, 0.31])
REENTRY = np.array([0.36, 0.016, 0.016, 0.016, 0.016])
PLACEMENT_MIX = np.array([[0.55, 0.17, 0.11, 0.17],
                          [0.40, 0.0, 0.01, 0.59]])
UASC_AGE_SHARE = np.zeros(18)
UASC_AGE_SHARE[[14, 15]] = 0.065
UASC_AGE_SHARE[[16, 17]] = 0.435
# Looked after at 31 March of the base year, by band (all streams) and UASC alone.
LOOKED_AFTER_BY_BAND = np.array([20.0, 56.0, 72.0, 156.0, 96.0])
UASC_BY_BAND = np.array([0.0, 0.0, 0.0, 4.0, 20.0])


def small_config(end_year: int = END_YEAR, overrides: list[str] | None = None
                 ) -> dict[str, Any]:
    """The code defaults (no scenario file), base year 2022, projected to ``end_year``."""
    scenario = load_scenario(None, [f"run.end_year={end_year}", *(overrides or [])])
    return scenario.config


def _band_shares(population: np.ndarray) -> np.ndarray:
    sizes = np.array([1, 4, 5, 6, 2], dtype=float)  # years of age in each DfE band
    edges = np.cumsum(np.concatenate([[0], sizes])).astype(int)
    totals = np.array([population[a:b].sum() for a, b in zip(edges[:-1], edges[1:],
                                                              strict=True)])
    return totals / totals.sum()


def raw_params(**changes: Any) -> ModelParameters:
    """The hand-set parameters with ``changes`` applied and *no* initial state yet
    (see :func:`with_initial_state`)."""
    population = POPULATION_BY_AGE.copy()
    starts = float((ENTRY_RATE * CIN_POOL * _band_shares(population)).sum())
    values: dict[str, Any] = dict(
        base_year=BASE_YEAR,
        population_by_age=population,
        births_per_year=float(population[0]),
        # keeps the CIN pool roughly stationary: referrals = closures + entries
        referral_rate_per_child_year=(CIN_CLOSURE * CIN_POOL + starts) / population.sum(),
        cin_closure_rate_per_year=CIN_CLOSURE,
        cin_pool_base=CIN_POOL,
        entry_rate_per_year=ENTRY_RATE.copy(),
        birth_entry_share=0.004,
        exit_rate_per_year=EXIT_RATE.copy(),
        stage_exit_multiplier=STAGE_MULTIPLIER.copy(),
        reentry_rate_per_year=REENTRY.copy(),
        placement_mix=PLACEMENT_MIX.copy(),
        uasc_arrivals_per_year=18.0,
        uasc_arrivals_base_year=25.0,
        uasc_age_share=UASC_AGE_SHARE.copy(),
        uasc_exit_rate_per_year=0.1,
        entry_trend_per_year=-0.02,
        exit_trend_per_year=0.01,
        trend_until_year=2060,
        looked_after_base=float(LOOKED_AFTER_BY_BAND.sum()),
        looked_after_base_by_band=LOOKED_AFTER_BY_BAND.copy(),
        uasc_base_by_band=UASC_BY_BAND.copy(),
        sources={"fixture": "tests/fixtures.py (hand-set, not estimated)"},
        turned_18_base=45.0,
        repeat_start_share=0.018,
    )
    values.update(changes)
    return ModelParameters(**values)


def with_initial_state(params: ModelParameters, config: dict[str, Any]) -> ModelParameters:
    """Give ``params`` the base-year state the engines start from, built the way the
    estimation builds it: the equilibrium of the base year's rates scaled to the
    published stock by band and stream."""
    from sim.engines import stockflow
    from sim.model.rates import year_rates

    rates = year_rates(params, config, params.base_year)
    state = stockflow.scale_to_observed(stockflow.equilibrium_state(rates), params)
    return replace(params, initial_state=state)


def small_model(end_year: int = END_YEAR, overrides: list[str] | None = None,
                **changes: Any) -> tuple[ModelParameters, dict[str, Any]]:
    """(parameters with their initial state, config): ready for either engine."""
    config = small_config(end_year, overrides)
    params = with_initial_state(raw_params(**changes), config)
    params.check_bounds()
    return params, config


def copy_config(config: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(config)


# Variables that count children (stocks) or children per year (flows): never negative.
COUNTS = ("looked_after", "looked_after_by_age", "looked_after_by_placement",
          "looked_after_by_stage", "looked_after_by_stream", "looked_after_uasc",
          "started", "started_by_age", "started_every_episode", "started_uasc",
          "started_by_stream", "ceased", "ceased_by_stream", "returned_home", "reentered",
          "home_after_care", "cin_pool", "cin", "cin_referrals")


def assert_balanced(ds: xr.Dataset) -> None:
    """Every count finite and non-negative (to rounding), the stock identity exact
    (stock change = starts - ceased), and every breakdown adding up to the total: a lost
    or double-counted state would show here.  Tolerances are floating-point rounding
    relative to the largest stock, not modelling error."""
    scale = float(ds.looked_after.max())
    for name in COUNTS:
        values = ds[name].values
        assert np.all(np.isfinite(values)), name
        assert values.min() >= -1e-9 * scale, (name, values.min())
    stock = ds.looked_after.values
    net = (ds.started_every_episode - ds.ceased.sum("reason")).values
    np.testing.assert_allclose(np.diff(stock), net[1:], rtol=1e-9, atol=1e-9 * scale)
    for name in ("looked_after_by_age", "looked_after_by_placement",
                 "looked_after_by_stage", "looked_after_by_stream"):
        dim = next(d for d in ds[name].dims if d != "year")
        np.testing.assert_allclose(ds[name].sum(dim).values, stock, rtol=1e-9)
