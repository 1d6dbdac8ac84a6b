"""Discrete-event engine (simpy): individual children in care and returned home.

Compiled from the same model as the stock-flow engine: every hazard comes from
:func:`sim.model.rates.year_rates` and every state from :mod:`sim.model.spec`; this
module adds no rate of its own.  See ``docs/des.md`` for the full account.

Who is simulated
    Every child in care and every child returned home (tracked for five years), with an
    exact birth month, a time-in-care stage, a placement and a stream (UASC or not).
    UASC arrivals are individual.  The upstream children-in-need (CIN) pool is
    **aggregate**: its expected trajectory is integrated in closed form (it does not
    depend on who is in care) and entries to care are a Poisson process with exactly the
    stock-flow intensity.  Following the pool's 320,000 children individually would
    triple the event count for no change in any reported mean.  With family-help
    capacity on, children referred for family help are followed individually (see
    :mod:`sim.model.capacity`).

Time and ageing
    The clock is in months from 31 March of the base year; year ``Y`` covers months
    ``12 (Y - base - 1)`` to ``12 (Y - base)``.  Birthdays are aligned to the stock-flow
    engine's monthly cohorts: a child is born at a month boundary, so during month ``m``
    a child born at month ``b`` is ``m - b`` months old and has the hazards of that
    row's DfE age band, and leaves care at its 18th birthday ``b + 216``, exactly as
    the stock-flow engine ages its rows.  Rates change on 1 April.  Hazards are therefore
    constant within each month for each child, and the expected DES trajectory *equals*
    the stock-flow one (``tests/statistical`` checks it within sampling error).

How a child's life is drawn
    Time-in-care stages and returned-home stages are Coxian chains of exponential
    stages.  For each chain, the cumulative hazard of leaving each stage is precomputed
    on the month grid for every birth month (:class:`PhaseChain`); a stage's end is
    found by inverting it for an Exp(1) draw, which is exact for piecewise-constant
    hazards and needs no events at year or age-band boundaries.  A care episode's
    stage path, its end (exit route, 18th birthday, or still in care at the horizon)
    and, after a return home, the home spell and any re-entry are drawn when the
    episode starts, vectorised over the children starting in the same month.

Events (simpy)
    Only the points where children meet capacity or are counted are events on the
    simpy heap: the start and the end of every care episode (and, with family-help
    capacity, referral, start and end of help, and leaving the pool).  Stage
    progressions touch nothing else, so they are not heap events, just as a queueing
    DES draws a service time when service starts.  Month starts (new entries) and year
    ends (31 March snapshots) are events too.  Events are plain
    :class:`simpy.events.Event` objects with callbacks (no generator processes).

Randomness
    One root seed -> ``SeedSequence(root, spawn_key=(replicate, stable_hash(stream)))``
    per named stream -> numbers keyed by child id (:mod:`sim.rng`).  Child ids describe
    where a child came from (initial state cell, or month x age cohort x ordinal of an
    entry), so the same child draws the same numbers in every scenario (common random
    numbers) and whatever the number of worker processes.

Results
    The stock-flow schema (:mod:`sim.results.schema`) per replicate, scaled back by
    ``1 / population_scale``, stacked along ``replicate``.  The base year's stock is the
    drawn initial state and its flows follow the stock-flow convention (annualised
    rates at that state, :func:`sim.engines.stockflow.instantaneous_flows`).
"""

from __future__ import annotations

import gc
import json
import math
import multiprocessing
import os
import time
from bisect import bisect_left
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import scipy.stats
import simpy
import xarray as xr
from numpy.typing import NDArray
from simpy.events import NORMAL, EventPriority

from sim import rng
from sim.engines import stockflow
from sim.engines.record import YearTotals, year_record
from sim.errors import InputError
from sim.model import spec
from sim.model.capacity import CapacitySettings
from sim.model.parameters import Array, ModelParameters
from sim.model.rates import YearRates, year_rates
from sim.results.schema import build_dataset, stack_replicates

IntArray = NDArray[np.int64]
ProgressCallback = Callable[[int, int], None]

LAYOUT = spec.LAYOUT
MONTHS_PER_YEAR = spec.MONTHS_PER_YEAR
AGE_ROWS = spec.MAX_AGE_MONTHS  # 216 monthly cohorts, ages 0 to 17 years 11 months
MONTH_IN_YEARS = 1.0 / MONTHS_PER_YEAR
BAND_OF_AGE_ROW = np.array([spec.band_of_age_month(a) for a in range(AGE_ROWS)])
N_BANDS = len(spec.AGE_BANDS)
N_STREAMS = len(spec.STREAMS)
N_PLACEMENTS = len(spec.PLACEMENTS)
N_CARE_STAGES = len(spec.CARE_STAGES)
N_HOME_STAGES = len(spec.HOME_STAGES)
N_REASONS = len(spec.CEASED_REASONS)
UASC = spec.STREAMS.index("uasc")
FOSTER = spec.PLACEMENTS.index("foster")
# reason index (spec.CEASED_REASONS) of each hazard exit route (spec.EXIT_ROUTES)
REASON_OF_ROUTE = np.array([spec.CEASED_REASONS.index(r) for r in spec.EXIT_ROUTES])
RETURNED_HOME = spec.CEASED_REASONS.index("returned_home")
TURNED_18 = spec.CEASED_REASONS.index("turned_18")
CARE_STOCK_SHAPE = (N_BANDS, N_STREAMS, N_PLACEMENTS, N_CARE_STAGES)
CARE_STOCK_SIZE = int(np.prod(CARE_STOCK_SHAPE))
STILL_IN_CARE = -1  # episode not ended by the horizon
# state-matrix column of each (stream, placement, stage), from the model's own layout
CARE_COLUMN = np.array([[[LAYOUT.care(g, p, k) for k in range(N_CARE_STAGES)]
                         for p in range(N_PLACEMENTS)] for g in range(N_STREAMS)])

# Where an episode started (``started`` counts all but INITIAL).
SOURCE_INITIAL, SOURCE_CIN, SOURCE_UASC, SOURCE_REENTRY, SOURCE_BIRTH = 0, 1, 2, 3, 4
# How a home spell ended.
HOME_COMPLETED, HOME_REENTERED, HOME_AGED_OUT, HOME_STILL_AT_HOME = 0, 1, 2, 3
# Origins of child ids (see child_ids).
ORIGIN_INITIAL, ORIGIN_CIN, ORIGIN_UASC, ORIGIN_FAMILY_HELP, ORIGIN_BIRTH = 0, 1, 2, 3, 4

# Event priorities at equal times: children first, then the 31 March snapshot (after
# every 18th birthday at that instant, as the stock-flow engine ages before it
# records), then the month start that draws the next month's entries.
CHILD_EVENT = NORMAL
YEAR_END = EventPriority(NORMAL + 1)
MONTH_START = EventPriority(NORMAL + 2)

# Named random streams (sim.rng): one per kind of draw, so adding a draw of one kind
# never shifts another.
STREAM_CELL_COUNTS = "cell_counts"  # Poisson counts of children per cell
STREAM_ENTRY_TIMES = "entry_times"  # time of an entry within its month
STREAM_CARE = "care_episodes"  # placement, stage clocks and exit-route choices
STREAM_HOME = "home_spells"  # home-stage clocks and re-entry choices
STREAM_FAMILY_HELP = "family_help"  # pool clock, route choice, length of help
CARE_DRAWS = 1 + 2 * N_CARE_STAGES  # placement, then a clock and a route per stage
HOME_DRAWS = 2 * N_HOME_STAGES


def child_ids(origin: int | IntArray, month: int | IntArray, row: int | IntArray,
              column: int | IntArray, ordinal: IntArray) -> NDArray[np.uint64]:
    """Stable 53-bit child ids: (origin, month, age row, state column, ordinal).

    A child is identified by where it came from, not by the order of the simulation:
    the 3rd child entering care from the CIN pool in month 40 at age row 100 has the
    same id (and so the same random numbers) in every scenario.
    """
    parts = np.broadcast_arrays(np.asarray(month, dtype=np.uint64),
                                np.asarray(row, dtype=np.uint64),
                                np.asarray(column, dtype=np.uint64),
                                np.asarray(ordinal, dtype=np.uint64))
    month_u, row_u, column_u, ordinal_u = parts
    ids = np.asarray(origin, dtype=np.uint64) << np.uint64(51)
    ids = ids | (month_u << np.uint64(39)) | (row_u << np.uint64(31))
    return np.asarray(ids | (column_u << np.uint64(24)) | ordinal_u, dtype=np.uint64)


def _year_of_time(times: Array) -> IntArray:
    """Projected-year index (1 = first projected year) of events at ``times`` (months).

    An event at a month boundary belongs to the month that ends there, so an 18th
    birthday on 31 March is counted in the year ending that day.
    """
    return np.ceil(np.asarray(times) / MONTHS_PER_YEAR).astype(np.int64)


def _counts(values: IntArray, size: int) -> Array:
    return np.bincount(values, minlength=size).astype(np.float64)


def _phi(x: Array) -> Array:
    """(1 - exp(-x)) / x, continuous at 0."""
    safe = np.where(x > 1e-8, x, 1.0)
    return np.where(x > 1e-8, -np.expm1(-safe) / safe, 1.0 - x / 2.0)


def _psi(x: Array) -> Array:
    """(x - 1 + exp(-x)) / x**2, continuous at 0."""
    safe = np.where(x > 1e-4, x, 1.0)
    return np.where(x > 1e-4, (safe + np.expm1(-safe)) / safe**2, 0.5 - x / 6.0)


def _pool_time(start: Array, inflow: Array, leave: Array, tau: Array) -> Array:
    """Integral over [0, tau] (years) of a cohort's pool that starts at ``start`` and
    follows dP/dt = inflow - leave * P: the expected pool-years behind entries."""
    x = leave * tau
    return start * tau * _phi(x) + inflow * tau**2 * _psi(x)


def poisson_quantile(uniforms: Array, means: Array) -> IntArray:
    """Smallest k with P(Poisson(mean) <= k) >= u, element-wise (inversion, so counts
    are monotone in the mean for a fixed uniform).  Small means are summed term by
    term; large ones (where exp(-mean) would underflow) go to scipy."""
    counts = np.zeros(len(means), dtype=np.int64)
    small = np.flatnonzero(means <= 200.0)
    if small.size:
        u, mean = uniforms[small], means[small]
        term = np.exp(-mean)
        cumulative = term.copy()
        k = np.zeros(small.size, dtype=np.int64)
        below = np.flatnonzero(cumulative < u)
        while below.size:
            k[below] += 1
            term[below] *= mean[below] / k[below]
            cumulative[below] += term[below]
            below = below[cumulative[below] < u[below]]
            if below.size and (term[below] == 0.0).all():
                break  # the remaining mass is below float resolution
        counts[small] = k
    large = np.flatnonzero(means > 200.0)
    if large.size:
        counts[large] = scipy.stats.poisson.ppf(uniforms[large], means[large])
    return counts


# --- compiled model ---------------------------------------------------------------


@dataclass(frozen=True)
class PhaseChain:
    """A Coxian chain of exponential stages on the month grid.

    ``hazards[year, group, band, stage, choice]`` (per year): choice 0 moves to the next
    stage (or, from the last stage, completes the chain); choices 1... are exit routes.
    For every (group, birth month) row this stores the cumulative hazard of leaving each
    stage at every month boundary, zero outside ages 0-17, so that the end of a stage
    is found by inverting it (:meth:`next_times`) and the choice by the hazards of the
    month it happens in (:meth:`choose`).  Rows of all groups are laid end to end with
    a gap between them so one ``searchsorted`` serves every child at once.
    """

    n_months: int
    n_birth_rows: int
    flat_cumulative: tuple[Array, ...]  # per stage: (rows * (n_months + 1),)
    choice_cumulative: Array  # (stages, groups, years, bands, choices) cumulative shares

    @classmethod
    def compile(cls, hazards: Array, n_months: int) -> PhaseChain:
        n_years, n_groups, _, n_stages, _ = hazards.shape
        n_birth_rows = AGE_ROWS - 1 + n_months  # births from -(AGE_ROWS - 1) to n_months - 1
        births = np.arange(n_birth_rows) - (AGE_ROWS - 1)
        months = np.arange(n_months)
        age = months[None, :] - births[:, None]  # (birth rows, months)
        alive = (age >= 0) & (age < AGE_ROWS)
        band = BAND_OF_AGE_ROW[np.clip(age, 0, AGE_ROWS - 1)]
        year = np.minimum(months // MONTHS_PER_YEAR, n_years - 1)[None, :]
        total = hazards.sum(axis=-1)  # (years, groups, bands, stages)
        per_stage: list[Array] = []
        for stage in range(n_stages):
            monthly = np.where(alive[None], total[year, :, band, stage].transpose(2, 0, 1),
                               0.0) * MONTH_IN_YEARS  # (groups, birth rows, months)
            cumulative = np.zeros((n_groups * n_birth_rows, n_months + 1))
            cumulative[:, 1:] = np.cumsum(monthly.reshape(-1, n_months), axis=1)
            gap = float(cumulative[:, -1].max()) + 1.0
            offsets = np.arange(cumulative.shape[0]) * gap
            per_stage.append((cumulative + offsets[:, None]).ravel())
        shares = np.divide(hazards, total[..., None], out=np.zeros_like(hazards),
                           where=total[..., None] > 0)
        # -> (stages, groups, years, bands, choices)
        choice_cumulative = np.cumsum(shares, axis=-1).transpose(3, 1, 0, 2, 4)
        return cls(n_months, n_birth_rows, tuple(per_stage), choice_cumulative)

    def rows(self, groups: IntArray, births: IntArray) -> IntArray:
        return np.asarray(groups) * self.n_birth_rows + np.asarray(births) + (AGE_ROWS - 1)

    def _position(self, stage: int, rows: IntArray, times: Array) -> Array:
        """Flat cumulative hazard (with the row's offset) at ``times`` (months)."""
        flat = self.flat_cumulative[stage]
        month = np.minimum(np.floor(times).astype(np.int64), self.n_months - 1)
        index = rows * (self.n_months + 1) + month
        return flat[index] + (times - month) * (flat[index + 1] - flat[index])

    def next_times(self, stage: int, rows: IntArray, start: Array, clock: Array,
                   ) -> tuple[Array, IntArray]:
        """When a stage entered at ``start`` ends, for Exp(1) ``clock`` draws.

        Returns (time in months, month index); time is ``inf`` if the cumulative hazard
        does not reach the draw before the horizon or the 18th birthday.
        """
        flat = self.flat_cumulative[stage]
        width = self.n_months + 1
        target = self._position(stage, rows, start) + clock
        index = np.searchsorted(flat, target, side="left")
        position = index - rows * width
        reached = position <= self.n_months
        safe = np.where(reached, index, 1)
        low, high = flat[safe - 1], flat[safe]
        month = position - 1
        times = np.where(reached, month + (target - low) / np.where(reached, high - low, 1.0),
                         np.inf)
        return times, month

    def choose(self, stage: int, groups: IntArray, months: IntArray, births: IntArray,
               uniforms: Array) -> IntArray:
        """Which transition happens, given the hazards of the month it happens in."""
        n_years = self.choice_cumulative.shape[2]
        year = np.minimum(months // MONTHS_PER_YEAR, n_years - 1)
        band = BAND_OF_AGE_ROW[np.clip(months - births, 0, AGE_ROWS - 1)]
        cumulative = self.choice_cumulative[stage, groups, year, band]  # (n, choices)
        above = np.asarray(uniforms[:, None] > cumulative[:, :-1])
        return np.asarray(above.sum(axis=1), dtype=np.int64)


@dataclass(frozen=True)
class ScalarChain:
    """Pure-Python view of a one-stage :class:`PhaseChain` for children handled one at a
    time in event callbacks (numpy's per-call cost would dominate there)."""

    chain: PhaseChain
    flat: list[float]
    choices: list[Any]  # nested lists [group][year][band][choice]

    @classmethod
    def of(cls, chain: PhaseChain) -> ScalarChain:
        return cls(chain, chain.flat_cumulative[0].tolist(),
                   chain.choice_cumulative[0].tolist())

    def position(self, row: int, time_months: float) -> float:
        month = min(int(time_months), self.chain.n_months - 1)
        index = row * (self.chain.n_months + 1) + month
        low = self.flat[index]
        return low + (time_months - month) * (self.flat[index + 1] - low)

    def next_time(self, row: int, start: float, clock: float) -> tuple[float, int]:
        width = self.chain.n_months + 1
        target = self.position(row, start) + clock
        index = bisect_left(self.flat, target)
        position = index - row * width
        if position > self.chain.n_months:
            return math.inf, -1
        low, high = self.flat[index - 1], self.flat[index]
        return position - 1 + (target - low) / (high - low), position - 1

    def choose(self, group: int, month: int, birth: int, uniform: float) -> int:
        n_years = len(self.choices[group])
        year = min(month // MONTHS_PER_YEAR, n_years - 1)
        band = int(BAND_OF_AGE_ROW[min(max(month - birth, 0), AGE_ROWS - 1)])
        cumulative = self.choices[group][year][band]
        return sum(1 for share in cumulative[:-1] if uniform > share)


@dataclass(frozen=True)
class PoolTrajectory:
    """The aggregate CIN pool: expected values per month (rows) and age row (columns).

    Within a month the pool of a cohort follows ``dP/dt = inflow - leave_rate * P``
    (referrals in; entries to care and closures out), the same linear flow the
    stock-flow generator holds, solved in closed form; at each month end cohorts age by
    one row.  Entries to care are a Poisson process with intensity ``entry_rate * P``.
    """

    start: Array  # (months, rows) pool at the start of each month
    inflow: Array  # (months, rows) referrals into the aggregate pool, per year
    leave_rate: Array  # (months, rows) entry + closure hazard, per year
    expected_entries: Array  # (months, rows) expected entries to care in the month
    expected_referrals: Array  # (months,) referrals into the aggregate pool in the month
    year_end_pool: Array  # (projected years + 1,) pool on each 31 March, index 0 = base

    @classmethod
    def integrate(cls, initial_pool: Array, population: Array, rates: list[YearRates],
                  aggregate_share: float) -> PoolTrajectory:
        n_months = population.shape[0]
        starts, inflows, leaves, entries = (np.zeros((n_months, AGE_ROWS)) for _ in range(4))
        referrals = np.zeros(n_months)
        year_end = [float(initial_pool.sum())]
        pool = initial_pool.copy()
        for month in range(n_months):
            r = rates[month // MONTHS_PER_YEAR]
            entry = r.entry_rate[BAND_OF_AGE_ROW]
            leave = entry + r.cin_closure_rate
            inflow = population[month] * r.referral_rate * aggregate_share
            x = leave * MONTH_IN_YEARS
            starts[month], inflows[month], leaves[month] = pool, inflow, leave
            entries[month] = entry * _pool_time(pool, inflow, leave,
                                                np.full(AGE_ROWS, MONTH_IN_YEARS))
            referrals[month] = inflow.sum() * MONTH_IN_YEARS
            pool = pool * np.exp(-x) + inflow * MONTH_IN_YEARS * _phi(x)
            pool = np.concatenate([[0.0], pool[:-1]])  # month end: every cohort ages
            if (month + 1) % MONTHS_PER_YEAR == 0:
                year_end.append(float(pool.sum()))
        return cls(starts, inflows, leaves, entries, referrals, np.array(year_end))

    def entry_times(self, month: int, rows: IntArray, uniforms: Array) -> Array:
        """Entry times (months) inside ``month`` with density proportional to the pool
        of each entrant's cohort: the closed-form distribution inverted by Newton's
        method (the density varies by a few per cent within a month, so a handful of
        steps reach machine precision), with bisection for any that do not settle."""
        start, inflow = self.start[month, rows], self.inflow[month, rows]
        leave = self.leave_rate[month, rows]
        target = uniforms * _pool_time(start, inflow, leave, np.full(rows.shape,
                                                                     MONTH_IN_YEARS))
        tau = uniforms * MONTH_IN_YEARS
        for _ in range(6):
            density = start * np.exp(-leave * tau) + inflow * tau * _phi(leave * tau)
            step = (_pool_time(start, inflow, leave, tau) - target) / np.maximum(density,
                                                                                 1e-300)
            tau = np.clip(tau - step, 0.0, MONTH_IN_YEARS)
        error = np.abs(_pool_time(start, inflow, leave, tau) - target)
        unsettled = np.flatnonzero(error > 1e-12 * np.maximum(target, 1e-300))
        if unsettled.size:
            low, high = np.zeros(unsettled.size), np.full(unsettled.size, MONTH_IN_YEARS)
            for _ in range(60):
                middle = 0.5 * (low + high)
                below = _pool_time(start[unsettled], inflow[unsettled], leave[unsettled],
                                   middle) < target[unsettled]
                low, high = np.where(below, middle, low), np.where(below, high, middle)
            tau[unsettled] = 0.5 * (low + high)
        return month + tau * MONTHS_PER_YEAR


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


FAMILY_HELP_ENTRY, FAMILY_HELP_CLOSURE = 1, 2  # choices of the family-help pool chain


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


# --- sampling paths ---------------------------------------------------------------


@dataclass
class Paths:
    """Drawn paths through a chain: when each stage was entered, how and when it ended."""

    stage_start: Array  # (n, stages), inf for stages never entered
    end_time: Array  # (n,) months; the limit (birthday or horizon) if no transition
    end_choice: IntArray  # (n,) chain choice that ended it, -1 if it reached the limit
    transitions: int  # stage progressions and ends drawn


def sample_paths(chain: PhaseChain, groups: IntArray, births: IntArray, start: Array,
                 start_stage: IntArray, limit: Array, clocks: Array, choices: Array) -> Paths:
    """Draw every child's path from ``start_stage`` at ``start`` until the chain ends or
    ``limit``; ``clocks`` (Exp(1)) and ``choices`` (uniform) are (n, stages), one per
    stage, so a child's draws for a stage do not depend on the path before it."""
    n = len(start)
    n_stages = clocks.shape[1]
    stage = start_stage.astype(np.int64).copy()
    now = start.astype(float).copy()
    stage_start = np.full((n, n_stages), np.inf)
    stage_start[np.arange(n), stage] = start
    end_time = limit.astype(float).copy()
    end_choice = np.full(n, -1, dtype=np.int64)
    rows = chain.rows(groups, births)
    active = np.ones(n, dtype=bool)
    transitions = 0
    for s in range(n_stages):
        here = np.flatnonzero(active & (stage == s))
        if here.size == 0:
            continue
        times, months = chain.next_times(s, rows[here], now[here], clocks[here, s])
        happens = times < limit[here]
        active[here[~happens]] = False
        moving, times, months = here[happens], times[happens], months[happens]
        picked = chain.choose(s, groups[moving], months, births[moving], choices[moving, s])
        transitions += moving.size
        progress = (picked == 0) & (s < n_stages - 1)
        if s < n_stages - 1:
            onward = moving[progress]
            stage[onward] = s + 1
            now[onward] = times[progress]
            stage_start[onward, s + 1] = times[progress]
        ended = moving[~progress]
        end_time[ended] = times[~progress]
        end_choice[ended] = picked[~progress]
        active[ended] = False
    return Paths(stage_start, end_time, end_choice, transitions)


# --- one replicate ----------------------------------------------------------------


class _At(simpy.Event):
    """A triggered event with one callback at ``delay`` from now and a priority.

    simpy's ``Timeout`` is the same thing at NORMAL priority; like it, this inlines
    ``Event.__init__`` (a per-child event must be cheap).  ``payload`` carries the data
    the callback needs.
    """

    def __init__(self, env: simpy.Environment, delay: float, priority: EventPriority,
                 callback: Callable[[Any], None], payload: Any) -> None:
        self.env = env
        self.callbacks = [callback]
        self.payload = payload
        self._value = None
        self._ok = True
        env.schedule(self, priority, delay)


class _Columns:
    """Growable struct-of-arrays table (append whole batches; views for queries)."""

    def __init__(self, **dtypes: Any) -> None:
        self.size = 0
        self._data: dict[str, NDArray[Any]] = {}
        for name, spec_ in dtypes.items():
            dtype, width = spec_ if isinstance(spec_, tuple) else (spec_, None)
            shape = (1024,) if width is None else (1024, width)
            self._data[name] = np.zeros(shape, dtype=dtype)

    def append(self, **columns: NDArray[Any]) -> IntArray:
        n = len(next(iter(columns.values())))
        if self.size + n > len(next(iter(self._data.values()))):
            capacity = max(2 * (self.size + n), 1024)
            for name, old in self._data.items():
                grown = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
                grown[: self.size] = old[: self.size]
                self._data[name] = grown
        for name, values in columns.items():
            self._data[name][self.size: self.size + n] = values
        indices = np.arange(self.size, self.size + n)
        self.size += n
        return indices

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self._data[name][: self.size]


@dataclass
class ReplicateResult:
    """One replicate: the per-year records plus the raw episode records behind them."""

    replicate: int
    years: list[int]
    records: list[dict[str, Array]]
    episodes: dict[str, NDArray[Any]]  # one row per care episode (see _ReplicateRun)
    home_spells: dict[str, NDArray[Any]]
    heap_events: int  # events processed by the simpy environment
    transitions: int  # model transitions (entries, stage moves, exits, home moves...)
    wall_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)


class _ReplicateRun:
    """The state and event callbacks of one replicate (one simpy environment)."""

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        self.model = model
        self.replicate = replicate
        self.scale = model.population_scale
        self.env = simpy.Environment()
        self.keys = {name: rng.stream_key(model.root_seed, replicate, name) for name in (
            STREAM_CELL_COUNTS, STREAM_ENTRY_TIMES, STREAM_CARE, STREAM_HOME,
            STREAM_FAMILY_HELP)}
        n_years = len(model.years) - 1
        self.current_month = -1  # last month whose entries have been drawn
        self.heap_events = 0
        self.transitions = 0
        self.children = _Columns(id=np.uint64, birth=np.int64, care_episodes=np.int64,
                                 home_spells=np.int64)
        self.last_start_year: list[int] = []
        self.episodes = _Columns(
            child=np.int64, stream=np.int64, birth=np.int64, source=np.int64,
            start=np.float64, placement=np.int64, drawn_placement=np.int64,
            stage_start=(np.float64, N_CARE_STAGES), end=np.float64, reason=np.int64,
            foster_from=np.float64, wait_start=np.float64, wait_end=np.float64)
        self.home = _Columns(child=np.int64, start=np.float64, end=np.float64,
                             outcome=np.int64)
        self.pending_reentries: dict[int, list[tuple[int, float]]] = {}
        # Two-level schedule: an episode's end is filed under the month it falls in
        # and put on the simpy heap when that month starts, so the heap holds about a
        # month of events (~5,000 nationally) instead of one per child in care
        # (~85,000): heap operations are memory-bound and 3x slower on the big heap.
        self.calendar: dict[int, list[tuple[float, tuple[int, int, int, int]]]] = {}
        self.scheduled_events = 0
        # events on the heap just before and just after each month start fills it (the
        # heap drains roughly linearly in between): their mean approximates the time
        # average, reported for the benchmark's like-for-like heapq loop
        self.pending_samples: list[int] = []
        # flows by projected year (index 1..n; 0 unused), kept as flat Python lists
        # because callbacks add to them one child at a time
        self.started = [[0] * N_BANDS for _ in range(n_years + 1)]
        self.started_uasc = [[0] * N_BANDS for _ in range(n_years + 1)]
        self.reentered = [0] * (n_years + 1)
        self.first_starts = [0] * (n_years + 1)
        self.ceased = [[[0] * N_REASONS for _ in range(N_STREAMS)]
                       for _ in range(n_years + 1)]  # [year][stream][reason]
        self.snapshots: list[dict[str, Array]] = []
        # capacity
        self.foster: simpy.Resource | None = (
            simpy.Resource(self.env, capacity=model.foster_places)
            if model.foster_places else None)
        self.foster_requests: dict[int, simpy.resources.resource.Request] = {}
        self.overflow = spec.PLACEMENTS.index(model.capacity.foster_overflow_placement)
        self.foster_waits = [[0.0, 0] for _ in range(n_years + 1)]  # (total months, count)
        self.family_help: _FamilyHelp | None = (
            _FamilyHelp(self) if model.family_help_places else None)

    def at(self, moment: float, priority: EventPriority, callback: Callable[[Any], None],
           payload: Any) -> None:
        """Schedule ``callback(event)`` at time ``moment`` (months)."""
        self.scheduled_events += 1
        _At(self.env, moment - self.env.now, priority, callback, payload)

    # -- set-up ------------------------------------------------------------------

    def run(self) -> ReplicateResult:
        start = time.perf_counter()
        base_record = self._draw_initial_state()
        for year in range(1, len(self.model.years)):
            self.at(MONTHS_PER_YEAR * year, YEAR_END, self._on_year_end, year)
        self.at(0.0, MONTH_START, self._on_month_start, 0)
        # Every child in care has a pending end (on the heap or in the calendar):
        # ~100,000 live objects at national scale, which Python's cyclic garbage
        # collector, triggered by allocations, would traverse again and again
        # (measured: a national run takes 5.1 s with it, 3.4 s without).  Nothing here
        # relies on it mid-run.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.env.run()
        finally:
            if collecting:
                gc.enable()
        records = [base_record, *self.snapshots]
        episodes = {name: self.episodes[name].copy() for name in (
            "child", "stream", "birth", "source", "start", "end", "reason", "placement",
            "wait_start", "wait_end")}
        home = {name: self.home[name].copy() for name in ("child", "start", "end",
                                                            "outcome")}
        pending = self.pending_samples or [0]
        return ReplicateResult(self.replicate, list(self.model.years), records, episodes,
                               home, self.heap_events, self.transitions,
                               time.perf_counter() - start,
                               extra={"mean_pending_events": float(np.mean(pending))})

    def _poisson_cells(self, origins: int | IntArray, month: int, rows: IntArray,
                       columns: IntArray, means: Array) -> IntArray:
        """Poisson counts per cell by inversion of a per-cell keyed uniform, so a cell's
        count rises monotonically with its mean across scenarios (paired)."""
        counts = np.zeros(len(means), dtype=np.int64)
        positive = np.flatnonzero(means > 0)
        if positive.size:
            origin = np.broadcast_to(np.asarray(origins), means.shape)[positive]
            ids = child_ids(origin, month, rows[positive], columns[positive],
                            np.zeros(positive.size, dtype=np.int64))
            uniforms = rng.keyed_uniforms(self.keys[STREAM_CELL_COUNTS], ids, 0, 1)[:, 0]
            counts[positive] = poisson_quantile(uniforms, means[positive])
        return counts

    def _new_children(self, origins: int | IntArray, month: int, rows: IntArray,
                      columns: IntArray, counts: IntArray, births: IntArray,
                      ) -> tuple[IntArray, IntArray]:
        """Register ``counts[i]`` children per cell; returns (child indices, cell index)."""
        cell = np.repeat(np.arange(len(counts)), counts)
        ordinal = np.arange(cell.size) - np.repeat(np.cumsum(counts) - counts, counts)
        origin = np.broadcast_to(np.asarray(origins), counts.shape)[cell]
        ids = child_ids(origin, month, rows[cell], columns[cell], ordinal)
        zeros = np.zeros(cell.size, dtype=np.int64)
        children = self.children.append(id=ids, birth=births[cell], care_episodes=zeros,
                                        home_spells=zeros)
        self.last_start_year.extend([0] * cell.size)
        return children, cell

    def _draw_initial_state(self) -> dict[str, Array]:
        """Children in care and at home on 31 March of the base year, drawn cell by cell
        (Poisson with mean scale x expected count) from ``params.initial_state``."""
        initial = self.model.params.initial_state
        grid = np.meshgrid(np.arange(AGE_ROWS),
                           np.arange(LAYOUT.care_start, LAYOUT.counter_start), indexing="ij")
        rows, columns = grid[0].ravel(), grid[1].ravel()
        counts = self._poisson_cells(ORIGIN_INITIAL, 0, rows, columns,
                                     self.scale * initial[rows, columns])
        children, cell = self._new_children(ORIGIN_INITIAL, 0, rows, columns, counts,
                                            -rows)
        column = columns[cell]
        in_care = column < LAYOUT.home_start
        care_index = column[in_care] - LAYOUT.care_start
        per_stream = N_PLACEMENTS * N_CARE_STAGES
        self._start_episodes(
            children[in_care], np.zeros(in_care.sum()), SOURCE_INITIAL,
            streams=care_index // per_stream,
            start_stages=care_index % N_CARE_STAGES,
            placements=(care_index % per_stream) // N_CARE_STAGES)
        at_home = ~in_care
        self._start_home_spells(children[at_home], np.zeros(at_home.sum()),
                                column[at_home] - LAYOUT.home_start)
        # base-year record: the stock-flow engine's convention applied to the drawn
        # state, with placements as resolved by foster capacity (if any)
        state = np.zeros((AGE_ROWS, LAYOUT.size))
        np.add.at(state, (rows[cell][at_home], column[at_home]), 1.0 / self.scale)
        e = self.episodes
        placement_now = np.where(e["foster_from"] <= 0.0, FOSTER, e["placement"])
        stage_now = np.where(e["stage_start"] <= 0.0, np.arange(N_CARE_STAGES),
                             -1).max(axis=1)
        care_column = CARE_COLUMN[e["stream"], placement_now, stage_now]
        np.add.at(state, (-e["birth"], care_column), 1.0 / self.scale)
        for source in (LAYOUT.population, LAYOUT.uasc_source, LAYOUT.cin_pool):
            state[:, source] = initial[:, source]
        base = self.model.base_rates
        record = stockflow.snapshot(state, stockflow.instantaneous_flows(state, base), base)
        record["started_first_in_year"] = np.array(np.nan)
        self._add_capacity_record(record, 0)
        return record

    # -- episodes ----------------------------------------------------------------

    def _start_episodes(self, children: IntArray, start: Array, source: int | IntArray,
                        streams: IntArray, start_stages: IntArray | None = None,
                        placements: IntArray | None = None) -> None:
        """Draw whole care episodes for a batch of children starting care, record them
        and schedule their start (or, for the initial state, end) events."""
        n = len(children)
        if n == 0:
            return
        model = self.model
        sources = np.broadcast_to(np.asarray(source, dtype=np.int64), (n,))
        births = self.children["birth"][children]
        episode_numbers = self.children["care_episodes"][children].copy()
        self.children["care_episodes"][children] += 1
        draws = rng.keyed_uniforms(self.keys[STREAM_CARE], self.children["id"][children],
                                   episode_numbers, CARE_DRAWS)
        months = np.minimum(np.floor(start).astype(np.int64), model.n_months - 1)
        if placements is None:
            mix = model.placement_cumulative[months // MONTHS_PER_YEAR, streams]
            placements = (draws[:, :1] > mix[:, :-1]).sum(axis=1)
        stages = np.zeros(n, dtype=np.int64) if start_stages is None else start_stages
        birthday = (births + AGE_ROWS).astype(float)
        limit = np.minimum(birthday, model.n_months)
        paths = sample_paths(model.care, streams, births, start, stages, limit,
                             -np.log(draws[:, 1:1 + N_CARE_STAGES]),
                             draws[:, 1 + N_CARE_STAGES:])
        reached_limit = paths.end_choice < 0
        reason = np.where(reached_limit,
                          np.where(birthday <= model.n_months, TURNED_18, STILL_IN_CARE),
                          REASON_OF_ROUTE[np.maximum(paths.end_choice - 1, 0)])
        end = np.where(reason == STILL_IN_CARE, np.inf, paths.end_time)
        self.transitions += paths.transitions + int((reason == TURNED_18).sum()) + int(
            (sources != SOURCE_INITIAL).sum())
        episodes = self.episodes.append(
            child=children, stream=streams, birth=births, source=sources, start=start,
            placement=placements, drawn_placement=placements,
            stage_start=paths.stage_start, end=end, reason=reason,
            foster_from=np.full(n, np.inf), wait_start=np.full(n, np.nan),
            wait_end=np.full(n, np.nan))
        home = reason == RETURNED_HOME
        self._start_home_spells(children[home], end[home], np.zeros(home.sum(), np.int64))
        # events: a start event per new episode; initial episodes only end
        finite_end = np.where(np.isfinite(end), end, 0.0)
        exit_year = _year_of_time(finite_end)
        # the month an end belongs to (an end on a boundary belongs to the month before)
        exit_month = np.ceil(finite_end).astype(np.int64) - 1
        if np.all(sources == SOURCE_INITIAL):
            for episode, stream, placement, end_time, month, why, year in zip(
                    episodes.tolist(), streams.tolist(), placements.tolist(), end.tolist(),
                    exit_month.tolist(), reason.tolist(), exit_year.tolist(), strict=True):
                if self.foster is not None and placement == FOSTER:
                    self._request_foster(episode)
                if why != STILL_IN_CARE:
                    self._schedule_end(end_time, month, (episode, stream, why, year))
            return
        band = BAND_OF_AGE_ROW[np.clip(months - births, 0, AGE_ROWS - 1)]
        start_year = _year_of_time(start)
        env, now, on_start = self.env, self.env.now, self._on_start
        self.scheduled_events += n
        for start_time, payload in zip(
                start.tolist(),
                zip(episodes.tolist(), children.tolist(), start_year.tolist(), band.tolist(),
                    sources.tolist(), streams.tolist(),
                    placements.tolist(), end.tolist(), exit_month.tolist(),
                    reason.tolist(), exit_year.tolist(), strict=True), strict=True):
            _At(env, start_time - now, CHILD_EVENT, on_start, payload)

    def _start_home_spells(self, children: IntArray, start: Array,
                           start_stages: IntArray) -> None:
        """Draw the time at home after a return (or from the initial state): re-entry,
        the end of the five tracked years, or the 18th birthday."""
        n = len(children)
        if n == 0:
            return
        model = self.model
        births = self.children["birth"][children]
        spell_numbers = self.children["home_spells"][children].copy()
        self.children["home_spells"][children] += 1
        draws = rng.keyed_uniforms(self.keys[STREAM_HOME], self.children["id"][children],
                                   spell_numbers, HOME_DRAWS)
        birthday = (births + AGE_ROWS).astype(float)
        limit = np.minimum(birthday, model.n_months)
        paths = sample_paths(model.home, np.zeros(n, dtype=np.int64), births, start,
                             start_stages, limit, -np.log(draws[:, :N_HOME_STAGES]),
                             draws[:, N_HOME_STAGES:])
        outcome = np.where(paths.end_choice == 1, HOME_REENTERED,
                           np.where(paths.end_choice == 0, HOME_COMPLETED,
                                    np.where(birthday <= model.n_months, HOME_AGED_OUT,
                                             HOME_STILL_AT_HOME)))
        end = np.where(outcome == HOME_STILL_AT_HOME, np.inf, paths.end_time)
        self.transitions += paths.transitions + int((outcome == HOME_AGED_OUT).sum())
        self.home.append(child=children, start=start, end=end, outcome=outcome)
        again = np.flatnonzero(outcome == HOME_REENTERED)
        if again.size == 0:
            return
        months = np.floor(end[again]).astype(np.int64)
        now_batch = months <= self.current_month  # this month's entries are drawn already
        if now_batch.any():
            self._start_episodes(children[again[now_batch]], end[again[now_batch]],
                                 SOURCE_REENTRY, np.zeros(int(now_batch.sum()), np.int64))
        for child, month, when in zip(children[again[~now_batch]].tolist(),
                                      months[~now_batch].tolist(),
                                      end[again[~now_batch]].tolist(), strict=True):
            self.pending_reentries.setdefault(month, []).append((child, when))

    # -- event callbacks ---------------------------------------------------------

    def _on_start(self, event: _At) -> None:
        (episode, child, year, band, source, stream, placement, end, end_month, reason,
         end_year) = event.payload
        self.heap_events += 1
        self.started[year][band] += 1
        if source == SOURCE_UASC:
            self.started_uasc[year][band] += 1
        elif source == SOURCE_REENTRY:
            self.reentered[year] += 1
        if self.last_start_year[child] != year:
            self.last_start_year[child] = year
            self.first_starts[year] += 1
        if self.foster is not None and placement == FOSTER:
            self._request_foster(episode)
        if reason != STILL_IN_CARE:
            self._schedule_end(end, end_month, (episode, stream, reason, end_year))

    def _schedule_end(self, end: float, month: int,
                      payload: tuple[int, int, int, int]) -> None:
        """Put an episode's end on the heap now if its ``month`` has started, else file
        it under that month.  An end on a month boundary (an 18th birthday) belongs to
        the month that finishes there, so it comes before that 31 March's snapshot."""
        if month <= self.current_month:
            self.scheduled_events += 1
            _At(self.env, end - self.env.now, CHILD_EVENT, self._on_end, payload)
        else:
            bucket = self.calendar.get(month)
            if bucket is None:
                self.calendar[month] = [(end, payload)]
            else:
                bucket.append((end, payload))

    def _on_end(self, event: _At) -> None:
        episode, stream, reason, year = event.payload
        self.heap_events += 1
        self.ceased[year][stream][reason] += 1
        if self.foster_requests:
            self._leave_foster_queue(episode)

    def _on_month_start(self, event: _At) -> None:
        """Draw this month's entries: from the CIN pool, UASC arrivals, re-entries due,
        and (with family-help capacity) referrals followed individually."""
        self.heap_events += 1
        month: int = event.payload
        self.current_month = month
        self.pending_samples.append(self.scheduled_events - self.heap_events)
        env, now, on_end = self.env, self.env.now, self._on_end
        due_ends = self.calendar.pop(month, [])
        self.scheduled_events += len(due_ends)
        for end, payload in due_ends:
            _At(env, end - now, CHILD_EVENT, on_end, payload)
        model = self.model
        # entrants from the CIN pool and UASC arrivals, one cell per (origin, age row)
        origins = np.repeat([ORIGIN_CIN, ORIGIN_UASC], AGE_ROWS)
        rows = np.tile(np.arange(AGE_ROWS), 2)
        zeros = np.zeros(rows.size, dtype=np.int64)
        means = self.scale * np.concatenate([
            model.pool.expected_entries[month],
            model.uasc_arrivals[month] * MONTH_IN_YEARS])  # constant within the month
        counts = self._poisson_cells(origins, month, rows, zeros, means)
        children, cell = self._new_children(origins, month, rows, zeros, counts,
                                            month - rows)
        uniforms = rng.keyed_uniforms(self.keys[STREAM_ENTRY_TIMES],
                                      self.children["id"][children], 0, 1)[:, 0]
        from_pool = origins[cell] == ORIGIN_CIN
        start = month + uniforms
        start[from_pool] = model.pool.entry_times(month, rows[cell][from_pool],
                                                  uniforms[from_pool])
        # re-entries due this month (drawn when their home spell was drawn)
        due = self.pending_reentries.pop(month, [])
        again = np.array([c for c, _ in due], dtype=np.int64)
        again_start = np.array([t for _, t in due], dtype=float)
        self._start_episodes(
            np.concatenate([children, again]), np.concatenate([start, again_start]),
            np.concatenate([np.where(from_pool, SOURCE_CIN, SOURCE_UASC),
                            np.full(again.size, SOURCE_REENTRY)]),
            streams=np.concatenate([np.where(from_pool, 0, UASC),
                                    np.zeros(again.size, dtype=np.int64)]))
        self._enter_at_birth(month)
        if self.family_help is not None:
            self.family_help.referrals(month)
        if month + 1 < model.n_months:
            self.at(month + 1.0, MONTH_START, self._on_month_start, month + 1)
        self.pending_samples.append(self.scheduled_events - self.heap_events)

    def _enter_at_birth(self, month: int) -> None:
        """Babies coming into care at birth at the end of ``month``: the stock-flow
        engine puts them into the newborn cohort after the month's ageing, with this
        month's rates, and counts them in this month's flows; here they are born and
        start care at that boundary (before any 31 March snapshot there)."""
        model = self.model
        rates = model.rates[month // MONTHS_PER_YEAR]
        cell = np.zeros(1, dtype=np.int64)
        mean = np.array([self.scale * rates.birth_entry_share
                         * rates.population_by_age_month[0]])
        count = self._poisson_cells(ORIGIN_BIRTH, month, cell, cell, mean)
        if count[0] == 0:
            return
        newborns, _ = self._new_children(ORIGIN_BIRTH, month, cell, cell, count,
                                         np.array([month + 1]))
        uniforms = rng.keyed_uniforms(self.keys[STREAM_ENTRY_TIMES],
                                      self.children["id"][newborns], 0, 1)[:, 0]
        cumulative = model.placement_cumulative[month // MONTHS_PER_YEAR, 0]
        placements = (uniforms[:, None] > cumulative[None, :-1]).sum(axis=1)
        self._start_episodes(newborns, np.full(newborns.size, month + 1.0), SOURCE_BIRTH,
                             streams=np.zeros(newborns.size, dtype=np.int64),
                             placements=placements)

    def _on_year_end(self, event: _At) -> None:
        """31 March: snapshot the stocks and close the year's flows."""
        self.heap_events += 1
        year: int = event.payload
        self.snapshots.append(self._year_record(year))

    # -- foster capacity ---------------------------------------------------------

    def _request_foster(self, episode: int) -> None:
        assert self.foster is not None
        request = self.foster.request()
        self.foster_requests[episode] = request
        if not request.triggered:  # no free place: overflow placement, and wait
            self.episodes["placement"][episode] = self.overflow
            self.episodes["wait_start"][episode] = self.env.now
            request.callbacks.append(partial(self._foster_granted, episode))
        else:
            self.episodes["foster_from"][episode] = self.env.now

    def _foster_granted(self, episode: int, request: simpy.Event) -> None:
        if self.foster_requests.get(episode) is not request:
            return  # the child left care at the instant the place came free
        now = self.env.now
        self.episodes["foster_from"][episode] = now
        self._record_foster_wait(episode, now)

    def _record_foster_wait(self, episode: int, now: float) -> None:
        self.episodes["wait_end"][episode] = now
        waited = now - float(self.episodes["wait_start"][episode])
        year = max(1, math.ceil(now / MONTHS_PER_YEAR))
        self.foster_waits[year][0] += waited
        self.foster_waits[year][1] += 1

    def _leave_foster_queue(self, episode: int) -> None:
        assert self.foster is not None
        request = self.foster_requests.pop(episode, None)
        if request is None:
            return
        waiting = np.isnan(self.episodes["wait_end"][episode]) and not np.isnan(
            self.episodes["wait_start"][episode])
        if request.triggered:  # holding a place (or granted at this very instant)
            self.foster.release(request)
        else:
            request.cancel()
        if waiting:
            self._record_foster_wait(episode, self.env.now)

    # -- records -----------------------------------------------------------------

    def _year_record(self, year: int) -> dict[str, Array]:
        """The year's record in the shared schema, scaled to England."""
        model = self.model
        moment = float(MONTHS_PER_YEAR * year)
        inverse = 1.0 / self.scale
        e = self.episodes
        in_care = np.flatnonzero((e["start"] <= moment) & (moment < e["end"]))
        band = BAND_OF_AGE_ROW[int(moment) - e["birth"][in_care]]
        placement = np.where(e["foster_from"][in_care] <= moment, FOSTER,
                             e["placement"][in_care])
        stage = np.where(e["stage_start"][in_care] <= moment,
                         np.arange(N_CARE_STAGES), -1).max(axis=1)
        stream = e["stream"][in_care]
        h = self.home
        at_home = int(((h["start"] <= moment) & (moment < h["end"])).sum())
        rates = model.rates[year - 1]
        pool = float(model.pool.year_end_pool[year])
        referrals = float(model.pool.expected_referrals[
            MONTHS_PER_YEAR * (year - 1): MONTHS_PER_YEAR * year].sum())
        served = rates.effects.family_help_served
        if self.family_help is not None:
            pool += self.family_help.in_pool(moment) * inverse
            referrals += self.family_help.referred[year] * inverse
            served = self.family_help.helped[year] * inverse
        cells = np.ravel_multi_index((band, stream, placement, stage), CARE_STOCK_SHAPE)
        totals = YearTotals(
            care_stock=_counts(cells, CARE_STOCK_SIZE).reshape(CARE_STOCK_SHAPE) * inverse,
            every_start_by_band=np.array(self.started[year], dtype=float) * inverse,
            uasc_start_by_band=np.array(self.started_uasc[year], dtype=float) * inverse,
            ceased_by_stream=np.array(self.ceased[year], dtype=float) * inverse,
            reentered=self.reentered[year] * inverse,
            home_after_care=at_home * inverse,
            cin_pool=pool,
            cin_referrals=referrals,
            family_help_served=served,
            programme_cost_gbp=rates.effects.programme_cost_gbp,
            extra={"started_first_in_year": np.array(self.first_starts[year] * inverse)})
        record = year_record(totals, rates)
        self._add_capacity_record(record, year)
        return record

    def _add_capacity_record(self, record: dict[str, Array], year: int) -> None:
        inverse = 1.0 / self.scale
        if self.foster is not None:
            total, count = self.foster_waits[year]
            record["foster_waiting"] = np.array(len(self.foster.queue) * inverse)
            record["foster_wait_months"] = np.array(total / count if count else np.nan)
        if self.family_help is not None:
            total, count = self.family_help.waits[year]
            record["family_help_waiting"] = np.array(self.family_help.waiting() * inverse)
            record["family_help_wait_months"] = np.array(total / count if count else np.nan)


class _FamilyHelp:
    """Children referred for family help, followed one by one while in the CIN pool.

    Each has one Exp(1) clock for leaving the pool; when its hazard changes (help starts
    or ends) the unused part of the clock carries over (the cumulative hazard already
    used is subtracted), which keeps the exit time exact under changing hazards.
    """

    UNSERVED, HELPED = 0, 1

    def __init__(self, run: _ReplicateRun) -> None:
        self.run = run
        model = run.model
        assert model.family_help_pool is not None
        self.chain = ScalarChain.of(model.family_help_pool)
        self.resource = simpy.Resource(run.env, capacity=model.family_help_places)
        n_years = len(model.years) - 1
        self.referred = [0] * (n_years + 1)
        self.helped = [0] * (n_years + 1)
        self.waits = [[0.0, 0] for _ in range(n_years + 1)]
        self.mean_help_months = model.capacity.family_help_mean_months
        # per client (index = client number)
        self.child: list[int] = []
        self.birth: list[int] = []
        self.referred_at: list[float] = []
        self.left_at: list[float] = []
        self.group: list[int] = []
        self.clock_left: list[float] = []
        self.clock_since: list[float] = []
        self.version: list[int] = []
        self.draws: list[list[float]] = []
        self.request: list[Any] = []
        self.wait_from: list[float] = []

    def referrals(self, month: int) -> None:
        """Draw this month's referrals (a share of the CIN inflow) and schedule them."""
        run, model = self.run, self.run.model
        rows = np.arange(AGE_ROWS)
        zeros = np.zeros(AGE_ROWS, dtype=np.int64)
        share = model.capacity.family_help_referral_share
        means = (run.scale * model.population[month] * share
                 * model.referral_rate[month // MONTHS_PER_YEAR] * MONTH_IN_YEARS)
        counts = run._poisson_cells(ORIGIN_FAMILY_HELP, month, rows, zeros, means)
        children, _ = run._new_children(ORIGIN_FAMILY_HELP, month, rows, zeros, counts,
                                        month - rows)
        ids = run.children["id"][children]
        times = month + rng.keyed_uniforms(run.keys[STREAM_ENTRY_TIMES], ids, 0, 1)[:, 0]
        draws = rng.keyed_uniforms(run.keys[STREAM_FAMILY_HELP], ids, 0, 3)
        for child, when, client_draws in zip(children.tolist(), times.tolist(),
                                             draws.tolist(), strict=True):
            client = len(self.child)
            self.child.append(child)
            self.birth.append(int(run.children["birth"][child]))
            self.referred_at.append(when)
            self.left_at.append(math.inf)
            self.group.append(self.UNSERVED)
            self.clock_left.append(-math.log(client_draws[0]))
            self.clock_since.append(when)
            self.version.append(0)
            self.draws.append(client_draws)
            self.request.append(None)
            self.wait_from.append(when)
            run.at(when, CHILD_EVENT, self._on_referral, client)

    def _schedule_leaving(self, client: int) -> None:
        """(Re)draw when the client leaves the pool under its current hazard."""
        run = self.run
        now = run.env.now
        self.version[client] += 1
        row = self.group[client] * self.chain.chain.n_birth_rows + self.birth[client] + (
            AGE_ROWS - 1)
        leave_time, month = self.chain.next_time(row, now, self.clock_left[client])
        birthday = float(self.birth[client] + AGE_ROWS)
        if leave_time >= min(birthday, run.model.n_months):
            if birthday > run.model.n_months:
                return  # still in the pool at the horizon
            leave_time, month = birthday, -1
        run.at(leave_time, CHILD_EVENT, self._on_leaving,
               (client, self.version[client], month))

    def _switch(self, client: int, group: int) -> None:
        """Change the client's hazard at now, carrying over the unused clock."""
        run = self.run
        now = run.env.now
        row = self.group[client] * self.chain.chain.n_birth_rows + self.birth[client] + (
            AGE_ROWS - 1)
        used = self.chain.position(row, now) - self.chain.position(
            row, self.clock_since[client])
        self.clock_left[client] = max(self.clock_left[client] - used, 0.0)
        self.clock_since[client] = now
        self.group[client] = group
        self._schedule_leaving(client)

    def _on_referral(self, event: _At) -> None:
        run = self.run
        run.heap_events += 1
        client: int = event.payload
        now = run.env.now
        self.referred[max(1, math.ceil(now / MONTHS_PER_YEAR))] += 1
        request = self.resource.request()
        self.request[client] = request
        if request.triggered:  # a free place: no wait to record
            self.wait_from[client] = math.nan
            self._start_help(client)
        else:
            request.callbacks.append(partial(self._granted, client))
            self._schedule_leaving(client)

    def _granted(self, client: int, request: simpy.Event) -> None:
        if self.request[client] is request and self.left_at[client] == math.inf:
            self._start_help(client)

    def _start_help(self, client: int) -> None:
        run = self.run
        now = run.env.now
        year = max(1, math.ceil(now / MONTHS_PER_YEAR))
        self.helped[year] += 1
        if not math.isnan(self.wait_from[client]):
            self.waits[year][0] += now - self.wait_from[client]
            self.waits[year][1] += 1
            self.wait_from[client] = math.nan
        self._switch(client, self.HELPED)
        help_ends = now - self.mean_help_months * math.log(self.draws[client][2])
        if help_ends < run.model.n_months:
            run.at(help_ends, CHILD_EVENT, self._on_help_end,
                   (client, self.request[client]))

    def _on_help_end(self, event: _At) -> None:
        self.run.heap_events += 1
        client, request = event.payload
        if self.left_at[client] != math.inf or self.request[client] is not request:
            return
        self.resource.release(request)
        self.request[client] = None
        self._switch(client, self.UNSERVED)

    def _on_leaving(self, event: _At) -> None:
        run = self.run
        client, version, month = event.payload
        run.heap_events += 1
        if version != self.version[client]:
            return  # superseded by a change of hazard
        now = run.env.now
        self.left_at[client] = now
        request = self.request[client]
        if request is not None:
            if request.triggered:
                self.resource.release(request)
            else:
                request.cancel()
                year = max(1, math.ceil(now / MONTHS_PER_YEAR))
                self.waits[year][0] += now - self.wait_from[client]
                self.waits[year][1] += 1
            self.request[client] = None
        if month < 0:
            return  # 18th birthday: leaves the pool
        choice = self.chain.choose(self.group[client], month, self.birth[client],
                                   self.draws[client][1])
        if choice == FAMILY_HELP_ENTRY:
            child = self.child[client]
            run._start_episodes(np.array([child]), np.array([now]), SOURCE_CIN,
                                np.zeros(1, dtype=np.int64))

    def in_pool(self, moment: float) -> int:
        return sum(1 for referred, left in zip(self.referred_at, self.left_at, strict=True)
                   if referred <= moment < left)

    def waiting(self) -> int:
        return len(self.resource.queue)


# --- runs -------------------------------------------------------------------------


def simulate_replicate(model: CompiledModel, replicate: int) -> ReplicateResult:
    """Run one replicate (its random numbers depend only on the root seed and
    ``replicate``)."""
    return _ReplicateRun(model, replicate).run()


_WORKER_MODEL: CompiledModel | None = None


def _worker_init(model: CompiledModel) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _worker_records(replicate: int) -> tuple[int, list[dict[str, Array]], int, int]:
    assert _WORKER_MODEL is not None
    result = simulate_replicate(_WORKER_MODEL, replicate)
    return replicate, result.records, result.heap_events, result.transitions


def default_workers(replicates: int) -> int:
    """Worker processes: ``CICSIM_WORKERS`` if set, else one per CPU (at most one per
    replicate).  Results do not depend on it."""
    configured = os.environ.get("CICSIM_WORKERS")
    if configured:
        return max(1, int(configured))
    return max(1, min(os.cpu_count() or 1, replicates))


def run(params: ModelParameters, config: dict[str, Any],
        progress: ProgressCallback | None = None, workers: int | None = None) -> xr.Dataset:
    """Run ``config['run']['replicates']`` replicates; results along ``replicate``."""
    model = compile_model(params, config)
    workers = default_workers(model.replicates) if workers is None else max(1, workers)
    total = model.replicates
    step = max(1, total // 20)
    outputs: dict[int, list[dict[str, Array]]] = {}
    heap_events = transitions = 0

    def done(count: int) -> None:
        if progress is not None and (count % step == 0 or count == total):
            progress(count, total)

    if workers == 1 or total == 1:
        for replicate in range(total):
            result = simulate_replicate(model, replicate)
            outputs[replicate] = result.records
            heap_events += result.heap_events
            transitions += result.transitions
            done(replicate + 1)
    else:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_worker_init, initargs=(model,)) as pool:
            futures = [pool.submit(_worker_records, r) for r in range(total)]
            for count, future in enumerate(as_completed(futures), start=1):
                replicate, records, events, moves = future.result()
                outputs[replicate] = records
                heap_events += events
                transitions += moves
                done(count)
    datasets = [build_dataset(list(model.years), outputs[r]) for r in range(total)]
    ds = stack_replicates(datasets)
    ds.attrs.update({
        "des_population_scale": model.population_scale,
        "des_replicates": total,
        "des_heap_events": heap_events,
        "des_transitions": transitions,
        "capacity": json.dumps({
            **model.capacity.__dict__,
            "simulated_foster_places": model.foster_places,
            "simulated_family_help_places": model.family_help_places,
            "note": "capacity is modelled by the discrete-event engine only; the "
                    "stock-flow engine ignores the [capacity] section"}),
        "des_note": "CIN pool aggregate (expected values); children in care and returned "
                    "home simulated individually; counts scaled by 1 / population_scale. "
                    "See docs/des.md",
    })
    return ds
