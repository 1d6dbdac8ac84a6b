"""Dense reference stock-flow engine: exact expectations, monthly step.

The batched engine (:mod:`sim.engines.stockflow`) must reproduce this one to float
precision (tests/verification/test_batched_stockflow.py); both compile their
generators from the same flow declarations.  Estimation, the DES and the calibration
use its state-level functions (equilibrium, scaling to the published stock, the base
year's instantaneous flows).

The state is a matrix ``X`` with one row per month of age (0-215) and one column per
model state (:data:`sim.model.spec.LAYOUT`).  Within a month, rates are constant, so
the exact propagator for an age band is ``expm(Q_band * dt)`` (``Q`` is the generator
built from :class:`~sim.model.rates.YearRates`); advancing every cohort is one small
matrix product per band.  Ageing is exact: at each month end every row shifts down by
one; the last row's children in care leave on their 18th birthday.

Flow counters are absorbing columns of ``X``, so started / ceased / re-entered are the
exact integrals of the flows, and stock(t) = stock(t-1) + started - ceased to float
precision.  No Python loop runs over children; the loop runs over months and bands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from sim.engines import flow_compiler
from sim.engines.record import YearTotals, ceased_by_stream_from, year_record
from sim.model import spec
from sim.model.parameters import Array, ModelParameters
from sim.model.rates import YearRates, year_rates

L = spec.LAYOUT
N_AGE = spec.MAX_AGE_MONTHS
BAND_ROWS: tuple[tuple[int, int], ...] = tuple((s, e) for _, s, e in spec.AGE_BANDS)
BAND_STARTS = np.array([s for s, _ in BAND_ROWS])
CARE = slice(L.care_start, L.home_start)
HOME = slice(L.home_start, L.counter_start)
COUNTERS = slice(L.counter_start, L.size)
N_PLACEMENTS, N_STAGES = len(spec.PLACEMENTS), len(spec.CARE_STAGES)


_CARE_INDEX = np.array([[[L.care(g, p, k) for k in range(N_STAGES)]
                         for p in range(N_PLACEMENTS)] for g in range(len(spec.STREAMS))])
_HOME_INDEX = np.array([L.home(j) for j in range(len(spec.HOME_STAGES))])
_UASC = spec.STREAMS.index("uasc")

def build_generators(rates: YearRates) -> Array:
    """Generators ``Q`` (bands, S, S): row = from, column = to, rates per year, compiled
    from the flow declarations (:mod:`sim.engines.flow_compiler`).

    Sources (population, UASC arrivals) have a zero diagonal: they feed flows without
    being depleted.  Counter columns receive a copy of the flows they count.
    """
    return flow_compiler.dense_generators(rates)


def propagators(rates: YearRates, dt_years: float) -> Array:
    """Exact one-step transition matrices, shape (bands, S, S)."""
    return np.asarray(scipy.linalg.expm(build_generators(rates) * dt_years))


@dataclass
class YearTally:
    """Flows accumulated over one year (and the 31 March snapshot)."""

    counters_by_band: Array  # (bands, counters)
    turned_18_by_stream: Array  # (streams,)


_BIRTH_COUNTER = spec.COUNTERS.index("started_at_birth")
_TURNED_18 = spec.CEASED_REASONS.index(spec.AGEING_REASON)
_COUNTER = {name: i for i, name in enumerate(spec.COUNTERS)}
# the counter of each ceased reason (the ageing route's is a placeholder: it comes from
# the turned-18 tally), and of each UASC hazard route
_CEASED_COUNTER = np.array([0 if r == spec.AGEING_REASON else _COUNTER[f"ceased_{r}"]
                            for r in spec.CEASED_REASONS])
_UASC_ROUTES = np.array([spec.CEASED_REASONS.index(r) for r in spec.UASC_EXIT_ROUTES])
_UASC_COUNTERS = np.array([_COUNTER[name] for name in spec.UASC_CEASED_COUNTERS])


def _exogenous(x: Array, rates: YearRates) -> None:
    x[:, L.population] = rates.population_by_age_month
    x[:, L.uasc_source] = rates.uasc_arrivals_by_age_month


def _enter_at_birth(x: Array, rates: YearRates) -> float:
    """Put the newborn cohort's entries at birth into care (row 0); return how many."""
    entering = rates.birth_entry_share * x[0, L.population]
    x[0, _CARE_INDEX[0, :, 0]] = entering * rates.placement_mix[0]
    return float(entering)


def advance_year(x: Array, rates: YearRates, steps_per_month: int = 1,
                 ageing: bool = True, matrices: Array | None = None) -> YearTally:
    """Advance ``x`` in place through one year (12 months) and return its flows."""
    if matrices is None:
        matrices = propagators(rates, 1.0 / (spec.MONTHS_PER_YEAR * steps_per_month))
    counters = np.zeros((len(BAND_ROWS), L.size - L.counter_start))
    turned_18 = np.zeros(len(spec.STREAMS))
    buffer = np.empty_like(x)
    n_care_per_stream = N_PLACEMENTS * N_STAGES
    for _ in range(spec.MONTHS_PER_YEAR):
        for _ in range(steps_per_month):
            for b, (start, stop) in enumerate(BAND_ROWS):
                np.matmul(x[start:stop], matrices[b], out=buffer[start:stop])
            x, buffer = buffer, x
        counters += np.add.reduceat(x[:, COUNTERS], BAND_STARTS, axis=0)
        x[:, COUNTERS] = 0.0
        if ageing:
            turned_18 += x[-1, CARE].reshape(len(spec.STREAMS), n_care_per_stream).sum(1)
            x[1:] = x[:-1]
            x[0] = 0.0
            _exogenous(x, rates)
            # counted in this month's flows, so the stock identity holds every year
            counters[0, _BIRTH_COUNTER] += _enter_at_birth(x, rates)
        else:
            _exogenous(x, rates)
    # 12 * steps_per_month swaps is even, so the caller's array holds the result.
    return YearTally(counters, turned_18)


def equilibrium_state(rates: YearRates) -> Array:
    """State reached by holding ``rates`` (and the population) fixed until every cohort
    has aged through 0-17: the model's own age x duration structure for those rates."""
    x = np.zeros((N_AGE, L.size))
    _exogenous(x, rates)
    matrices = propagators(rates, 1.0 / spec.MONTHS_PER_YEAR)
    for _ in range(18 + 1):
        advance_year(x, rates, matrices=matrices)
    return x


def band_sums(x: Array) -> Array:
    """Sum rows within each DfE age band, shape (bands, S)."""
    return np.add.reduceat(x, BAND_STARTS, axis=0)


def care_stock(x: Array) -> Array:
    """In-care stock by (band, stream, placement, stage)."""
    shape = (len(BAND_ROWS), len(spec.STREAMS), N_PLACEMENTS, N_STAGES)
    return band_sums(x[:, CARE]).reshape(shape)


def _hat_basis(end_knot: bool = False) -> Array:
    """Piecewise-linear hat functions in age with knots at the band midpoints (flat
    beyond the first and last knot), plus one at the last month of age when
    ``end_knot``: (rows, knots), rows sum to 1."""
    knots = [(s + e - 1) / 2 for s, e in BAND_ROWS]
    if end_knot:
        knots.append(float(N_AGE - 1))
    ages = np.arange(N_AGE, dtype=float)
    basis = np.zeros((N_AGE, len(knots)))
    for j in range(len(knots)):
        unit = np.zeros(len(knots))
        unit[j] = 1.0
        basis[:, j] = np.interp(ages, knots, unit)
    return basis


_HAT_BASIS = _hat_basis()
_HAT_BASIS_END = _hat_basis(end_knot=True)


def smooth_band_factors(by_row: Array, targets: Array,
                        last_row_target: float | None = None) -> Array | None:
    """Scaling factor per month of age, piecewise-linear between band midpoints, such
    that each band's scaled total equals its target (and, with ``last_row_target``,
    the last month of age equals it too).  Smooth factors avoid steps in the
    age profile at band edges (a step would travel up the ages and show three years
    later as a dip in children leaving at 18).  None if no positive solution exists."""
    present = band_sums(by_row[:, None])[:, 0] > 0
    if not present.all():
        return None
    basis = _HAT_BASIS if last_row_target is None else _HAT_BASIS_END
    design = band_sums(basis * by_row[:, None])  # (bands, knots)
    rhs = np.asarray(targets, dtype=float)
    if last_row_target is not None:
        design = np.vstack([design, basis[-1] * by_row[-1]])
        rhs = np.append(rhs, last_row_target)
    try:
        knot_values = np.linalg.solve(design, rhs)
    except np.linalg.LinAlgError:
        return None
    row_factor = basis @ knot_values
    return row_factor if np.all(row_factor > 0) else None


def _tilt_oldest_band(by_row: Array, row_factor: Array, last_row_target: float
                      ) -> Array | None:
    """Row factors with a linear tilt within the oldest band that keeps the band's
    total and makes the last month of age equal ``last_row_target`` (for a stream
    whose young bands are empty, e.g. UASC); None if a factor would not be positive."""
    start, stop = BAND_ROWS[-1]
    scaled = by_row[start:stop] * row_factor[start:stop]
    if scaled.sum() <= 0 or scaled[-1] <= 0:
        return None
    ages = np.arange(stop - start, dtype=float)
    centre = (scaled * ages).sum() / scaled.sum()
    slope = (last_row_target / scaled[-1] - 1.0) / (ages[-1] - centre)
    tilt = 1.0 + slope * (ages - centre)
    if np.any(tilt <= 0):
        return None
    out = row_factor.copy()
    out[start:stop] *= tilt
    return out


def scale_to_observed(x: Array, params: ModelParameters) -> Array:
    """Scale an equilibrium state so the stock by age band and stream, the CIN pool
    and the totals equal the published 31 March figures (in place; returns ``x``).

    With ``params.turned_18_base`` known, the profile within the oldest band is also
    shaped so the flow through the 18th birthday (12 x the last month of age) equals
    the published count of children ceasing aged 18: the equilibrium of the base
    year's rates puts too many children in the months before 18 (it overstated
    leaving at 18 by 6-12 % in every base year 2016-2021), and that surplus would be
    counted as ceased in every early projected year.  Both streams get the same
    relative correction (DfE does not split ceasing at 18 by stream before 2021)."""
    stock = care_stock(x)  # (bands, streams, placements, stages)
    targets = np.stack([params.looked_after_base_by_band - params.uasc_base_by_band,
                        params.uasc_base_by_band], axis=1)  # (bands, streams)
    modelled = stock.sum(axis=(2, 3))
    factor = np.divide(targets, modelled, out=np.zeros_like(targets), where=modelled > 0)
    per_stream = N_PLACEMENTS * N_STAGES
    row_factors = []
    for g in range(len(spec.STREAMS)):
        cols = slice(L.care_start + g * per_stream, L.care_start + (g + 1) * per_stream)
        by_row = x[:, cols].sum(axis=1)
        row_factor = smooth_band_factors(by_row, targets[:, g])
        if row_factor is None:  # fall back to one factor per band
            row_factor = np.repeat(factor[:, g], [e - s for s, e in BAND_ROWS])
        row_factors.append((cols, by_row, targets[:, g], row_factor))
    turned_18 = sum(float(by_row[-1] * f[-1]) for _, by_row, _, f in row_factors) * 12
    ratio = params.turned_18_base / turned_18 if turned_18 > 0 else float("nan")
    for cols, by_row, band_targets, row_factor in row_factors:
        if np.isfinite(ratio):
            last = ratio * by_row[-1] * row_factor[-1]
            aligned = smooth_band_factors(by_row, band_targets, last_row_target=last)
            if aligned is None:
                aligned = _tilt_oldest_band(by_row, row_factor, last)
            if aligned is not None:
                row_factor = aligned
        x[:, cols] *= row_factor[:, None]
    non_uasc_factor = targets[:, 0].sum() / max(modelled[:, 0].sum(), 1e-300)
    x[:, HOME] *= non_uasc_factor  # ASSUMPTION: returned-home stock scales with care
    pool = x[:, L.cin_pool].sum()
    if pool > 0:
        x[:, L.cin_pool] *= params.cin_pool_base / pool
    x[:, COUNTERS] = 0.0
    return x


def instantaneous_flows(x: Array, rates: YearRates) -> YearTally:
    """Annualised flow rates at state ``x`` (used to report the base year's flows,
    which happened before the projection starts)."""
    counters = np.zeros((len(BAND_ROWS), L.size - L.counter_start))
    generators = build_generators(rates)
    for b, (start, stop) in enumerate(BAND_ROWS):
        counters[b] = (x[start:stop] @ generators[b])[:, COUNTERS].sum(0)
    counters[0, _BIRTH_COUNTER] = (rates.birth_entry_share * rates.population_by_age_month[0]
                                   * spec.MONTHS_PER_YEAR)
    n_care_per_stream = N_PLACEMENTS * N_STAGES
    turned_18 = (x[-1, CARE].reshape(len(spec.STREAMS), n_care_per_stream).sum(1)
                 * spec.MONTHS_PER_YEAR)
    return YearTally(counters, turned_18)


def snapshot(x: Array, tally: YearTally, rates: YearRates) -> dict[str, Array]:
    """Annual record in the shared results layout (:func:`sim.engines.record.year_record`)."""
    return record_from_totals(
        care_stock(x), tally.counters_by_band, tally.turned_18_by_stream,
        home=x[:, HOME].sum(), pool=x[:, L.cin_pool].sum(),
        family_help_served=rates.effects.family_help_served,
        programme_cost_gbp=rates.effects.programme_cost_gbp,
        repeat_start_share=rates.repeat_start_share)


def record_from_totals(stock: Array, counters: Array, turned_18_by_stream: Array, *,
                       home: Array | float, pool: Array | float,
                       family_help_served: Array | float, programme_cost_gbp: Array | float,
                       repeat_start_share: Array | float) -> dict[str, Array]:
    """The year record from counters by band (..., bands, counters), the turned-18 tally
    (..., streams) and the care stock; any leading batch dims (both engines use it).

    Ceased by reason comes from the declared exit routes: each hazard route from its
    ``ceased_<route>`` counter, the ageing route from the turned-18 tally."""
    c = {name: counters[..., i] for i, name in enumerate(spec.COUNTERS)}
    in_year = counters.sum(axis=-2)  # (..., counters): every band at once
    turned_18 = np.asarray(turned_18_by_stream)
    ceased = in_year[..., _CEASED_COUNTER]  # the ageing route's column is filled next
    ceased[..., _TURNED_18] = turned_18.sum(axis=-1)
    ceased_uasc = np.zeros_like(ceased)
    ceased_uasc[..., _UASC_ROUTES] = in_year[..., _UASC_COUNTERS]
    ceased_uasc[..., _TURNED_18] = turned_18[..., _UASC]
    every_start = (c["started_from_cin"] + c["started_uasc"] + c["reentered"]
                   + c["started_at_birth"])
    totals = YearTotals(
        care_stock=stock,
        every_start_by_band=every_start,
        uasc_start_by_band=c["started_uasc"],
        ceased_by_stream=ceased_by_stream_from(ceased, ceased_uasc),
        reentered=in_year[..., _COUNTER["reentered"]],
        home_after_care=home,
        cin_pool=pool,
        cin_referrals=in_year[..., _COUNTER["cin_referrals"]],
        family_help_served=family_help_served,
        programme_cost_gbp=programme_cost_gbp)
    return year_record(totals, repeat_start_share=repeat_start_share)


ProgressCallback = Callable[[int, int], None]


def project(params: ModelParameters, config: dict[str, Any],
            steps_per_month: int = 1,
            progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Project from the base year to ``config['run']['end_year']``.

    Returns ``{"years": [...], "records": [per-year dict], "wall_time_s": float}``.
    The base year's stock is the published one; its flows are the model's annualised
    rates at that state (the projection starts on 31 March of the base year).
    """
    start_time = time.perf_counter()
    base, end = params.base_year, config["run"]["end_year"]
    x = params.initial_state.copy()
    base_rates = year_rates(params, config, base)
    records = [snapshot(x, instantaneous_flows(x, base_rates), base_rates)]
    years = list(range(base, end + 1))
    for i, year in enumerate(years[1:], start=1):
        rates = year_rates(params, config, year)
        tally = advance_year(x, rates, steps_per_month=steps_per_month)
        records.append(snapshot(x, tally, rates))
        if progress is not None:
            progress(i, len(years) - 1)
    return {"years": years, "records": records,
            "wall_time_s": time.perf_counter() - start_time}
