"""Turn parameters + scenario + year into the hazards both engines use for that year.

This is the single place where trends, scenario multipliers and funding-lever effects
are applied, so the stock-flow and discrete-event engines cannot drift apart: each
engine asks :func:`year_rates` and never computes a rate itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.model import spec
from sim.model.levers import LeverEffects, lever_effects
from sim.model.parameters import Array, ModelParameters


@dataclass(frozen=True)
class YearRates:
    """Hazards (per year) and exogenous inputs for one projection year."""

    year: int
    population_by_age_month: Array  # (216,) children in each one-month age cohort
    uasc_arrivals_by_age_month: Array  # (216,) arrivals per year into each cohort
    referral_rate: float  # pool entries per child in the population per year
    cin_closure_rate: float
    entry_rate: Array  # (bands,) per pool child per year
    birth_entry_share: float  # share of each newborn cohort entering care at birth
    exit_rate: Array  # (streams, bands, stages, routes)
    stage_progress_rate: Array  # (stages,) 1 / mean stage length; 0 for the last
    home_stage_rate: Array  # (home stages,)
    reentry_rate: Array  # (home stages,)
    placement_mix: Array  # (streams, placements) entry mix
    effects: LeverEffects


def population_in_year(params: ModelParameters, year: int) -> Array:
    """Children by single year of age 0-17: the base year aged forward year by year,
    with ``births_per_year`` entering age 0 (ASSUMPTION: no mortality or migration
    under 18, which ONS estimates put well under 1 % a year)."""
    population = params.population_by_age.copy()
    for _ in range(max(0, year - params.base_year)):
        population = np.concatenate([[params.births_per_year], population[:-1]])
    return population


def _per_month(by_year_of_age: Array) -> Array:
    return np.repeat(by_year_of_age / spec.MONTHS_PER_YEAR, spec.MONTHS_PER_YEAR)


def trend_factor(trend_per_year: float, params: ModelParameters, year: int) -> float:
    years = min(year, params.trend_until_year) - params.base_year
    return float(np.exp(trend_per_year * years))


def trend_change_factor(change_per_year: float, change_year: int, params: ModelParameters,
                        year: int) -> float:
    """Extra factor when a trend's slope changes by ``change_per_year`` after
    ``change_year`` (a piecewise-linear log trend; calibration fits the change)."""
    years = max(0, min(year, params.trend_until_year) - max(change_year, params.base_year))
    return float(np.exp(change_per_year * years))


# [trends] keys of the route-specific exit trends, in spec.EXIT_ROUTES order.
ROUTE_TREND_KEYS: tuple[str, ...] = ("returned_home_trend_per_year", "adoption_trend_per_year",
                                     "sgo_cao_trend_per_year", "other_exit_trend_per_year")


def year_rates(params: ModelParameters, config: dict[str, Any], year: int) -> YearRates:
    multipliers = config["rates"]
    effects = lever_effects(config, params, year)

    trends = config["trends"]
    change_year = trends["trend_change_year"]
    entry_scale = (trend_factor(params.entry_trend_per_year, params, year)
             * trend_change_factor(trends["entry_trend_change_per_year"], change_year,
                                   params, year)
                   * multipliers["entry_multiplier"] * effects.entry_multiplier)
    entry = params.entry_rate_per_year * entry_scale

    route_multiplier = np.array([
        multipliers["reunification_multiplier"] * effects.reunification_multiplier,
        multipliers["adoption_multiplier"],
        multipliers["sgo_cao_multiplier"] * effects.sgo_cao_multiplier,
        multipliers["other_exit_multiplier"],
    ]) * np.array([trend_factor(trends[key], params, year) for key in ROUTE_TREND_KEYS])
    exit_trend = (trend_factor(params.exit_trend_per_year, params, year)
                  * trend_change_factor(trends["exit_trend_change_per_year"], change_year,
                                        params, year))
    n_streams, n_bands = len(spec.STREAMS), len(spec.AGE_BANDS)
    n_stages, n_routes = len(spec.CARE_STAGES), len(spec.EXIT_ROUTES)
    exit_rate = np.zeros((n_streams, n_bands, n_stages, n_routes))
    # non-UASC: route x band hazard x duration profile x trend x multipliers
    exit_rate[0] = (params.exit_rate_per_year.T[:, None, :]
                    * params.stage_exit_multiplier[None, :, None]
                    * route_multiplier[None, None, :] * exit_trend)
    # UASC: one "other" hazard before 18 (most leave at 18, by ageing)
    exit_rate[1, :, :, spec.EXIT_ROUTES.index("other")] = params.uasc_exit_rate_per_year

    stage_progress = np.array([0.0 if np.isinf(m) else 1.0 / m
                               for m in spec.CARE_STAGE_MEAN_YEARS])
    home_rate = 1.0 / np.array(spec.HOME_STAGE_MEAN_YEARS)
    reentry = (params.reentry_rate_per_year * multipliers["reentry_multiplier"]
               * effects.reentry_multiplier)

    mix = params.placement_mix.copy()
    if effects.placement_shift is not None:
        mix[0] = effects.placement_shift(mix[0])

    arrivals = config["uasc"]["arrivals_by_year"].get(str(year), params.uasc_arrivals_per_year)
    uasc = arrivals * params.uasc_age_share
    return YearRates(
        year=year,
        population_by_age_month=_per_month(population_in_year(params, year)),
        uasc_arrivals_by_age_month=_per_month(uasc),
        referral_rate=params.referral_rate_per_child_year * multipliers["referral_multiplier"],
        cin_closure_rate=(params.cin_closure_rate_per_year
                          * multipliers["cin_closure_multiplier"]),
        entry_rate=entry,
        birth_entry_share=min(params.birth_entry_share * entry_scale, 1.0),
        exit_rate=exit_rate,
        stage_progress_rate=stage_progress,
        home_stage_rate=home_rate,
        reentry_rate=reentry,
        placement_mix=mix,
        effects=effects,
    )
