"""The compiled model: every table a replicate needs, computed once per run.

Compiled from the same parameters and rates as the stock-flow engine
(:func:`sim.model.rates.year_rates`); the DES adds no rate of its own.  The compiled
model is shared read-only by every replicate and worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.engines.des.chains import PhaseChain
from sim.engines.des.common import (
    AGE_ROWS,
    FAMILY_HELP_CLOSURE,
    FAMILY_HELP_ENTRY,
    LAYOUT,
    MONTHS_PER_YEAR,
    N_BANDS,
    N_CARE_STAGES,
    N_HOME_STAGES,
    N_STREAMS,
)
from sim.engines.des.pool import PoolTrajectory
from sim.errors import InputError
from sim.model import spec
from sim.model.capacity import CapacitySettings
from sim.model.parameters import Array, ModelParameters
from sim.model.rates import YearRates, year_rates


@dataclass(frozen=True)
class CompiledModel:
    """Everything a replicate needs, computed once per run (and shared by workers)."""

    params: ModelParameters
    base_year: int
    years: tuple[int, ...]  # base year first
    n_months: int
    population_scale: float
    root_seed: int
    replicates: int
    capacity: CapacitySettings
    foster_places: int  # scaled to the simulated population
    family_help_places: int
    base_rates: YearRates
    rates: tuple[YearRates, ...]  # projected years (index 0 = first projected year)
    care: PhaseChain
    home: PhaseChain
    pool: PoolTrajectory
    family_help_pool: PhaseChain | None  # groups: 0 un-served, 1 being helped
    placement_cumulative: Array  # (years, streams, placements)
    uasc_arrivals: Array  # (months, rows) arrivals per year into each cohort
    population: Array  # (months, rows) population source of each month
    referral_rate: Array  # (years,)


def _care_hazards(rates: list[YearRates]) -> Array:
    """(years, streams, bands, stages, 1 + routes): stage progression then exit routes."""
    out = np.zeros((len(rates), N_STREAMS, N_BANDS, N_CARE_STAGES, 1 + len(spec.EXIT_ROUTES)))
    for y, r in enumerate(rates):
        out[y, :, :, :, 0] = r.stage_progress_rate[None, None, :]
        out[y, :, :, :, 1:] = r.exit_rate
    return out


def _home_hazards(rates: list[YearRates]) -> Array:
    """(years, 1, bands, home stages, 2): next home stage (or leaving), re-entry."""
    out = np.zeros((len(rates), 1, N_BANDS, N_HOME_STAGES, 2))
    for y, r in enumerate(rates):
        out[y, 0, :, :, 0] = r.home_stage_rate[None, :]
        out[y, 0, :, :, 1] = r.reentry_rate[None, :]
    return out


def _family_help_hazards(rates: list[YearRates], effect: float) -> Array:
    """(years, {un-served, helped}, bands, 1, 3): no next stage, entry, closure."""
    out = np.zeros((len(rates), 2, N_BANDS, 1, 3))
    for y, r in enumerate(rates):
        out[y, 0, :, 0, FAMILY_HELP_ENTRY] = r.entry_rate
        out[y, 1, :, 0, FAMILY_HELP_ENTRY] = r.entry_rate * (1.0 - effect)
        out[y, :, :, 0, FAMILY_HELP_CLOSURE] = r.cin_closure_rate
    return out


def _scaled_places(places: int, scale: float, key: str) -> int:
    if places == 0:
        return 0
    scaled = round(places * scale)
    if scaled < 1:
        raise InputError(f"capacity.{key} = {places} x run.population_scale = {scale:g} "
                         "rounds to 0 places; raise run.population_scale or the places")
    return int(scaled)


def compile_model(params: ModelParameters, config: dict[str, Any]) -> CompiledModel:
    """Turn parameters + scenario into the tables every replicate uses."""
    run_config = config["run"]
    capacity = CapacitySettings.from_config(config)
    if capacity.family_help_limited and "family_help" in config.get("levers", {}):
        raise InputError("capacity.family_help_places and [levers.family_help] both model "
                         "family help; set one of them (the lever acts through the entry "
                         "hazard in both engines, the capacity only in the DES)")
    scale = float(run_config["population_scale"])
    base_year, end_year = params.base_year, int(run_config["end_year"])
    years = tuple(range(base_year, end_year + 1))
    n_months = MONTHS_PER_YEAR * (len(years) - 1)
    base_rates = year_rates(params, config, base_year)
    projected = [year_rates(params, config, year) for year in years[1:]]
    initial = params.initial_state
    # The source columns hold, during month m, the values set at the end of month m - 1
    # (stock-flow engine: ``_exogenous`` after each month's ageing), so month 0 uses
    # the initial state's sources and each year's first month the previous year's.
    population = np.empty((n_months, AGE_ROWS))
    uasc = np.empty((n_months, AGE_ROWS))
    population[0], uasc[0] = initial[:, LAYOUT.population], initial[:, LAYOUT.uasc_source]
    for month in range(1, n_months):
        r = projected[(month - 1) // MONTHS_PER_YEAR]
        population[month], uasc[month] = r.population_by_age_month, r.uasc_arrivals_by_age_month
    share_followed = capacity.family_help_referral_share if capacity.family_help_limited else 0.0
    pool = PoolTrajectory.integrate(initial[:, LAYOUT.cin_pool], population, projected,
                                    1.0 - share_followed)
    family_help_pool = (PhaseChain.compile(
        _family_help_hazards(projected, capacity.family_help_entry_effect), n_months)
        if capacity.family_help_limited else None)
    return CompiledModel(
        params=params, base_year=base_year, years=years, n_months=n_months,
        population_scale=scale, root_seed=int(run_config["seed"]),
        replicates=int(run_config["replicates"]), capacity=capacity,
        foster_places=_scaled_places(capacity.foster_places, scale, "foster_places"),
        family_help_places=_scaled_places(capacity.family_help_places, scale,
                                          "family_help_places"),
        base_rates=base_rates, rates=tuple(projected),
        care=PhaseChain.compile(_care_hazards(projected), n_months),
        home=PhaseChain.compile(_home_hazards(projected), n_months),
        pool=pool, family_help_pool=family_help_pool,
        placement_cumulative=np.cumsum([r.placement_mix for r in projected], axis=-1),
        uasc_arrivals=uasc, population=population,
        referral_rate=np.array([r.referral_rate for r in projected]),
    )

