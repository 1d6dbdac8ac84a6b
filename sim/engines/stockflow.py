"""Batched exact stock-flow engine on a reduced state (leading axis: runs).

The dense reference (:mod:`sim.engines.stockflow_reference`) carries 59 columns per
month of age: two exogenous sources, the CIN pool, 40 care cells (stream x placement x
stage), 5 returned-home stages and 11 counters.  This engine carries the same model in
far less, and is exact (not an approximation) for three reasons:

* **Placement is a deviation from the year's mix.**  No hazard depends on placement
  and every flow into care of stream ``g`` is split by the year's mix ``w[g]`` (the
  declared ``care_first`` target), so writing care as ``w[g, p] * T[g, k] + D[g, p, k]``
  with ``T`` the stream x stage total, ``D`` has no inflow: it evolves by the care
  sub-block of the generator alone (``F = expm(A_TT dt)``).  On 1 April, when the mix
  changes, ``D`` absorbs the change (``D += (w_old - w_new) T``).  The coupled state is
  pool + T + home: 16 columns.
* **Sources are an affine term.**  Population and UASC arrivals are constant within a
  month, so their contribution to a month's step is ``s @ E[source, state]``, one
  vector per row and year (month 0 uses last year's sources) instead of columns.
* **Counters stay out of the row shift.**  Counters only need the age band, not the
  cohort: the month's flows are ``x @ E[state, counter] + s @ E[source, counter]``, so
  summing ``x`` and ``s`` over the year's months row by row and reducing by band once a
  year gives the same integrals as the dense engine's absorbing counter columns.

The pieces of ``E = expm(G dt)`` (``G`` the reduced generator compiled from the flow
declarations by one scatter, :func:`sim.engines.flow_compiler.scatter_generators`)
come from one Paterson-Stockmeyer polynomial for ``phi2(X)`` of the 16 x 16 state
block ``X = A dt``, then ``phi1 = I + X phi2`` and ``expm = I + X phi1``
(``E[source, state] = S_T dt phi1``, ``E[state, counter] = dt phi1 R``,
``E[source, counter] = S_C dt + S_T dt^2 phi2 R``).

Why it is fast (the design, in the order the time went):

* **Everything per run is done for all years at once**: the year rates
  (:func:`sim.model.rates.year_rates_batch`, one array expression per hazard for a
  chunk of runs; levers resolved once per run, every config before any run), the
  generators, the series, each year's monthly propagators with their source rows, and the
  whole record: the year loop only collects raw band sums (state and deviation on
  31 March, the sum of the monthly states), and care by placement, counters, home,
  pool and turned 18 are each one array expression over (runs, years) at the end,
  then one :func:`record_from_totals` call.
* **A year's months in one buffer, by age.**  ``h[:, k, a]`` is age ``a`` at the
  start of month ``k`` of the year (13 months x 217 ages x 18 columns: the UASC and
  population sources, then the state).  A month is one product (18 years of age x 12
  months of rows against ``[S_T; E][band_of_year]``, or one per band for large
  batches) from month ``k`` into month ``k + 1`` one age down: the affine source term
  rides in the same product, so nothing else happens per month.  Once a year: the
  sources of every age are written (last year's in month 0; the two columns as one
  complex number per row: 9 us instead of 55 us for two strided columns), the
  newborn row of every month, and the counters' sum of monthly states is one reduction
  of the twelve months; row 216 holds the cohort that turned 18 in each month.
* **One reduced initial state per distinct start.**  A batch of draws shares one
  initial state: it is reduced once and each chunk gathers its rows (stacking 1,000
  copies cost a tenth of the batch).
* **The placement deviation moves once a year, per stream.**  ``D`` has no inflow, so
  a cohort at month offset ``k`` of a year of age ends the year at
  ``D F[b1]^(12-k) F[b2]^k`` (``F = expm(A_TT dt)``, bands being whole years a cohort
  crosses at most one edge a year).  Streams never exchange children, so ``F`` is two
  5 x 5 blocks: the UASC one *is* the UASC block of ``E`` (no series of its own) and
  ``D`` is stored stream-major (b, streams, 216, placements, stages).  Each run of
  staying years of a band is one product written in place into a ping-pong buffer,
  each band edge one more (no gathers or scatters of rows).  ``D`` is only needed on
  31 March.
* **Batches are cut into chunks** of :data:`CHUNK` runs so each chunk's state stays in
  cache for its whole projection.

Measured and rejected (numpy 2.4, OpenBLAS, one thread; see the fast2 branch log):

* Splitting the 16 x 16 state into its 11 + 5 blocks for the series or the monthly
  step: two stacked products cost more than one at these sizes (per-slice BLAS
  overhead dominates), so only the deviation, which is applied per block anyway, uses
  the blocks.
* The main state a year at a time (each cohort's remaining 11 months as one product
  with powers and power sums of an augmented 18 x 34 month, built by doubling): exact
  to 1e-15, but building the powers costs more than the 12 monthly products it
  replaces (single run 6.5 ms vs 5.0 ms, 256 runs 0.94 s vs 0.80 s).
* A lower Taylor order: Paterson-Stockmeyer needs the same number of products for
  degrees 12 to 15, so the 2^-60 truncation is kept.
* Splitting the monthly product at the youngest UASC age (below it the UASC columns
  are exactly zero, so 12 x 11 instead of 18 x 16: 42 % fewer multiply-adds): no
  faster, paired in one process (one run 6.34 vs 6.17 ms CPU, 1,000 draws 3.21 vs
  3.21 s): OpenBLAS's small kernels do not speed up with smaller K and N, and the
  split adds a product.
* The buffer transposed (columns x ages, the product as ``P^T @ X^T``): sources
  become contiguous rows, but the product of one run is twice as slow.
* The deviation's powers by doubling (4 products instead of 11): no faster (numpy's
  matmul with a broadcast matrix axis); chunks of 4, 8 or 32 runs: slower than 16.
* Element-wise products (``einsum``, broadcast multiply and sum) for the 5 x 5
  stacks: 4-10x slower than ``matmul``; ``scipy.linalg.expm`` for them (and for the
  16 x 16 blocks): 20x (3x) slower than the series.

Measured in the second round (sf-speed2 branch; CPU time, paired, shared machine):

* **Fresh memory costs more than arithmetic here.**  A national run touches ~1.7 MB
  of newly mapped pages (glibc hands the freed heap top back to the system between
  runs), ~430 minor page faults at ~2.5 us each: about a fifth of its CPU time
  (5.3 ms with them, 4.2 ms once an 8 MB allocation freed at start has raised glibc's
  adaptive mmap and trim thresholds).  Hence the year-by-year gather of the by-age
  propagators into one buffer, and the rejections below.
* Rejected: the deviation of every year in one array (no ping-pong, one reduction at
  the end): 0.6 MB more fresh memory a run, ~200 more faults, slower; the month sums
  of every year kept for one reduction at the end: 5 MB a chunk, ~100,000 faults a
  1,000-draw batch; the 16 x 16 series split into its 11 + 5 blocks for the month
  step (paired: a year of a 16-run chunk 1.85 ms vs 1.44 ms).

Agreement with the reference is tested to 1e-12 for every shipped scenario
(tests/verification/test_batched_stockflow.py) and the fast paths against the plain
ones (tests/verification/test_fast_paths.py).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.linalg

from sim.engines import flow_compiler as fc
from sim.engines.parallel import default_workers
from sim.engines.stockflow_reference import (  # noqa: F401  (the state-level API)
    BAND_ROWS,
    ProgressCallback,
    YearTally,
    advance_year,
    band_sums,
    build_generators,
    care_stock,
    equilibrium_state,
    instantaneous_flows,
    propagators,
    record_from_totals,
    scale_to_observed,
    snapshot,
)
from sim.model import spec
from sim.model.levers import resolve_levers
from sim.model.parameters import Array, ModelParameters
from sim.model.rates import YearRates, year_rates, year_rates_batch

R = fc.REDUCED
N_AGE = spec.MAX_AGE_MONTHS
MONTHS = spec.MONTHS_PER_YEAR
N_YEARS_OF_AGE = N_AGE // MONTHS
N_G, N_P, N_K = fc.N_STREAMS, fc.N_PLACEMENTS, fc.N_STAGES
N_T = N_G * N_K
SRC = np.array([R.population, R.uasc_source])
SOURCES = slice(R.population, R.uasc_source + 1)  # the same rows, as a view
assert list(range(R.size)[SOURCES]) == list(SRC)
STATE = slice(R.cin_pool, R.counter_start)  # pool, T (stream x stage), home
CTR = slice(R.counter_start, R.size)
T_IN_STATE = slice(R.care_start - R.cin_pool, R.home_start - R.cin_pool)
N_STATE = R.counter_start - R.cin_pool
BAND_OF_ROW = np.array([spec.band_of_age_month(a) for a in range(N_AGE)])
BAND_OF_YEAR = BAND_OF_ROW[::MONTHS]
BAND_STARTS = np.array([s for _, s, _ in spec.AGE_BANDS])
assert all(s % MONTHS == 0 for _, s, _ in spec.AGE_BANDS), "band edges must be whole years"
_BIRTH = fc.birth_flow()
_BIRTH_STREAM = spec.STREAMS.index(_BIRTH.target_stream)
_BIRTH_COLUMN = R.care(_BIRTH_STREAM, 0, 0) - R.cin_pool
_BIRTH_COUNTER = spec.COUNTERS.index(_BIRTH.counters[0].name)
_DL = spec.LAYOUT


def _raise_allocator_thresholds(size: int = 4 << 20) -> None:
    """Free one ``size``-byte block so glibc's adaptive thresholds rise to it: arrays
    up to ``size`` then come from the heap, and up to twice that stays mapped when
    freed.  Why: with the defaults (128 kB) a national run's few larger arrays are mapped
    fresh and the heap top handed back every run: ~310 page faults, a fifth of its time
    (3.7 ms against 3.0, in a fresh process).  Freeing a block is glibc's own trigger
    and keeps its adaptivity, unlike ``mallopt``, which turns it off (the page-fault
    storm of a dask worker, docs/batch.md); the block is never touched."""
    np.empty(size, dtype=np.uint8)


_raise_allocator_thresholds()


def _taylor_order(theta: float) -> int | None:
    """Fewest Taylor terms with truncation below 2^-60 at norm ``theta``; None if the
    norm is too large for an unscaled series."""
    if theta > 1.0:
        return None
    for n in range(1, 40):
        if theta ** (n + 1) / math.factorial(n + 1) < 2.0 ** -60:
            return n
    return None


def _polynomial(x: Array, coefficients: Sequence[float]) -> Array:
    """``sum_n c[n] x^n`` for a stack of matrices by Paterson-Stockmeyer: the powers
    ``x^0..x^(s-1)`` are combined into blocks by one matrix product with the
    coefficients, then Horner in ``x^s``.  Why: about 2 sqrt(degree) stacked matmuls
    instead of one per term plus three element-wise updates per term (the series was
    the largest cost of compiling a year)."""
    degree = len(coefficients) - 1
    s = max(2, math.isqrt(degree + 1))
    blocks = -(-(degree + 1) // s)
    powers = np.empty((s, *x.shape))
    powers[0] = _eye(x.shape[-1])
    powers[1] = x
    for j in range(2, s):
        np.matmul(powers[j - 1], x, out=powers[j])
    x_s = powers[s - 1] @ x
    c = np.zeros((blocks, s))
    c.ravel()[:degree + 1] = coefficients
    combined = (c @ powers.reshape(s, -1)).reshape(blocks, *x.shape)
    result = combined[-1]
    for i in range(blocks - 2, -1, -1):
        result = result @ x_s
        result += combined[i]
    return result


@functools.cache
def _eye(n: int) -> Array:
    """A read-only identity (made once: ``np.eye`` on every call cost 10 us)."""
    eye = np.eye(n)
    eye.flags.writeable = False
    return eye


def _norm(x: Array) -> float:
    """The largest row-sum norm of a stack of matrices (a product with ones: the sum
    over a short last axis is three times slower)."""
    return float((np.abs(x) @ np.ones(x.shape[-1])).max()) if x.size else 0.0


def _phi_series(x: Array) -> tuple[Array, Array]:
    """phi1(x), phi2(x): phi2 by its Taylor polynomial, then ``phi1 = I + x phi2``
    (``expm = I + x phi1`` is left to the caller, which folds it into another
    product)."""
    theta = _norm(x)
    order = _taylor_order(theta)
    if order is None:
        raise OverflowError
    p2 = _polynomial(x, [1.0 / math.factorial(n + 2) for n in range(order + 1)])
    p1 = x @ p2
    p1 += _eye(x.shape[-1])
    return p1, p2


def _expm_series(x: Array) -> Array:
    """expm(x) by its Taylor polynomial (small norms only)."""
    order = _taylor_order(_norm(x))
    if order is None:
        raise OverflowError
    return _polynomial(x, [1.0 / math.factorial(n) for n in range(order + 1)])


# The state block is block-diagonal: non-UASC (pool, care stages, home) and UASC care
# stages never exchange children (checked against the compiled scatter below), so the
# UASC care block of expm(A dt) *is* the UASC part of the deviation's propagator, and
# only the non-UASC care block needs a series of its own.
_U_IN_STATE = slice(T_IN_STATE.start + N_K, T_IN_STATE.stop)
_N_T_CARE = slice(R.care_start, R.care_start + N_K)  # non-UASC care, in the generator


def _check_uasc_block() -> None:
    smap = fc.REDUCED_SCATTER
    within = smap.target % (R.size * R.size)
    src, tgt = within // R.size, within % R.size
    uasc = np.arange(R.care(1, 0, 0), R.care(1, 0, N_K - 1) + 1)
    state = np.arange(STATE.start, STATE.stop)
    crossing = np.isin(src, state) & np.isin(tgt, state) & (
        np.isin(src, uasc) != np.isin(tgt, uasc))
    assert N_G == 2 and not crossing.any(), "UASC care must be its own block of the state"


_check_uasc_block()


def step_matrices(g: Array, dt: float) -> dict[str, Array]:
    """The blocks of ``expm(g dt)`` the monthly step needs, for generators ``g`` of
    shape (..., S, S) in the reduced layout: ``prop`` (..., 18, 16), a month of a row
    (state, then its two sources) to the state (``E[state, state]`` over
    ``E[source, state]``); and ``to_counters`` (..., 18, counters), the month's counter
    flows from the same row (``E[state, counter]`` over ``E[source, counter]``).

    Why stacked this way: ``prop = [I; 0] + [X; dt S_T] phi1`` and
    ``to_counters = [dt phi1; dt^2 S_T phi2] R + [0; dt S_C]`` are one product each,
    where expm, the source rows and the counters cost five."""
    lead = g.shape[:-2]
    rows = np.empty((*lead, N_AUG, N_STATE))  # [X; dt S_T], written in place
    np.multiply(g[..., STATE, STATE], dt, out=rows[..., :N_STATE, :])
    np.multiply(g[..., SOURCES, STATE], dt, out=rows[..., N_STATE:, :])
    a = rows[..., :N_STATE, :]
    try:
        p1, p2 = _phi_series(a)
        prop = rows @ p1
        prop[..., :N_STATE, :] += _eye(N_STATE)
        flows = np.empty((*lead, N_AUG, N_STATE))  # [dt phi1; dt^2 S_T phi2]
        np.multiply(p1, dt, out=flows[..., :N_STATE, :])
        np.matmul(rows[..., N_STATE:, :], p2, out=flows[..., N_STATE:, :])
        flows[..., N_STATE:, :] *= dt
        to_counters = flows @ g[..., STATE, CTR]
        to_counters[..., N_STATE:, :] += dt * g[..., SOURCES, CTR]
    except OverflowError:  # large rates: scaling and squaring on the full generator
        full = np.asarray(scipy.linalg.expm(g * dt))
        prop = np.concatenate([full[..., STATE, STATE], full[..., SRC, STATE]], axis=-2)
        to_counters = np.concatenate([full[..., STATE, CTR], full[..., SRC, CTR]], axis=-2)
    return {"prop": prop, "to_counters": to_counters}


def deviation_step(g: Array, dt: float, prop: Array) -> Array:
    """``dd = expm(A_TT dt)``, the placement deviation's monthly propagator, as
    (..., streams, stages, stages) diagonal blocks (streams never exchange children),
    for generators ``g`` (..., S, S) whose monthly ``prop`` (:func:`step_matrices`) is
    given: the UASC block *is* the UASC care block of ``prop``, so only the other
    stream needs a series of its own."""
    block = g[..., _N_T_CARE, _N_T_CARE] * dt
    dd = np.empty((*g.shape[:-2], N_G, N_K, N_K))
    try:
        dd[..., 0, :, :] = _expm_series(block)
    except OverflowError:
        dd[..., 0, :, :] = scipy.linalg.expm(block)
    dd[..., 1, :, :] = prop[..., _U_IN_STATE, _U_IN_STATE]
    return dd


def _weights(mix: Array) -> Array:
    """Placement weights (..., streams, placements): the mix normalised per stream."""
    total = mix.sum(axis=-1, keepdims=True)
    return np.divide(mix, total, out=np.zeros_like(mix), where=total > 0)


# A deviation this small against the largest care cell is the rounding of a split by the
# mix itself (8.5e-14 against 1.7e3 for the national state, 5e-17), not a difference.
_ROUNDING = 1e-13


def reduce_state(x: Array, mix: Array) -> tuple[Array, Array, Array]:
    """Dense state (216, LAYOUT.size) -> (sources (216, 2), state (216, 16),
    deviation (streams, 216, placements, stages)) relative to weights of ``mix``."""
    care = x[:, _DL.care_start:_DL.home_start].reshape(N_AGE, N_G, N_P, N_K)
    total = care[:, :, 0].copy()  # (sums over the short placement axis by hand: numpy's
    for p in range(1, N_P):       # reduction over a middle axis took 55 us, this 5 us)
        total += care[:, :, p]
    w = _weights(mix)
    deviation = (care.transpose(1, 0, 2, 3)
                 - w[:, None, :, None] * total.transpose(1, 0, 2)[:, :, None, :])
    bound = _ROUNDING * care.max()  # (children: never negative)
    if deviation.max() <= bound and deviation.min() >= -bound:
        deviation[...] = 0.0  # placements split by the mix itself: only rounding is left
    state = np.concatenate([x[:, [_DL.cin_pool]], total.reshape(N_AGE, N_T),
                            x[:, _DL.home_start:_DL.counter_start]], axis=1)
    sources = x[:, [_DL.population, _DL.uasc_source]]
    return sources, state, deviation


# Years of age whose cohorts cross an age-band edge during a year (the deviation's
# yearly propagator then mixes two bands' powers) and those that stay in one band.
_STAYS = np.flatnonzero(BAND_OF_YEAR[:-1] == BAND_OF_YEAR[1:])
_CROSSES = np.flatnonzero(BAND_OF_YEAR[:-1] != BAND_OF_YEAR[1:])
# The staying years as contiguous runs (band, first, stop): one product per run, written
# straight into its place, instead of gathering and scattering rows.
_ROWS_PER_YEAR = MONTHS * N_P  # deviation rows (month of age x placement) per year
_STAY_RUNS = tuple((int(BAND_OF_YEAR[ys[0]]), int(ys[0]), int(ys[-1]) + 1)
                   for ys in np.split(_STAYS, np.flatnonzero(np.diff(_STAYS) > 1) + 1))


def _deviation_propagators(dd: Array) -> tuple[Array, Array]:
    """Yearly propagators of the placement deviation from its monthly ``dd`` (...,
    bands, streams, K, K), per stream (5 x 5 blocks: streams never mix): ``dd^12``
    (..., streams, bands, K, K), and for each band edge and month offset ``k`` of a
    crossing cohort ``dd[b1]^(12-k) dd[b2]^k`` (..., streams, edges, 12, K, K)."""
    dd = np.swapaxes(dd, -3, -4)  # (..., streams, bands, K, K)
    powers = np.empty((*dd.shape[:-2], MONTHS + 1, N_K, N_K))  # (..., G, bands, 13, K, K)
    powers[..., 0, :, :] = np.eye(N_K)
    powers[..., 1, :, :] = dd
    for k in range(2, MONTHS + 1):
        np.matmul(powers[..., k - 1, :, :], dd, out=powers[..., k, :, :])
    cross = np.empty((*dd.shape[:-3], len(_CROSSES), MONTHS, N_K, N_K))
    for e, y in enumerate(_CROSSES):
        b1, b2 = BAND_OF_YEAR[y], BAND_OF_YEAR[y + 1]
        np.matmul(powers[..., b1, MONTHS:0:-1, :, :], powers[..., b2, :MONTHS, :, :],
                  out=cross[..., e, :, :, :])
    return powers[..., MONTHS, :, :], cross


def _inputs(params_seq: Sequence[ModelParameters],
            configs: Sequence[dict[str, Any]]) -> tuple[list[int], list[dict[str, Any]]]:
    """The batch's years and each config's resolved levers (every config checked
    before any run starts)."""
    base = params_seq[0].base_year
    end = configs[0]["run"]["end_year"]
    if any(p.base_year != base for p in params_seq) or any(
            c["run"]["end_year"] != end for c in configs):
        raise ValueError("project_batch: every run needs the same base and end year")
    levers = [resolve_levers(c, where=f"scenario '{c.get('name', '?')}'") for c in configs]
    return list(range(base, end + 1)), levers


def _initial(params_seq: Sequence[ModelParameters], mix: Array,
             reduced: dict[tuple[int, bytes], tuple[Array, Array, Array]]
             ) -> tuple[Array, Array, Array]:
    """Reduced initial states (sources, state, deviation) of the runs, each distinct
    pair of initial state and mix reduced once per batch (``reduced``, shared by the
    chunks).  Why: a batch of 1,000 draws shares one initial state."""
    parts = []
    for b, p in enumerate(params_seq):
        key = (id(p.initial_state), mix[b].tobytes())
        if key not in reduced:
            reduced[key] = reduce_state(p.initial_state, mix[b])
        parts.append(reduced[key])
    if len(parts) == 1:
        return tuple(x[None] for x in parts[0])  # type: ignore[return-value]
    s0, x0, d0 = (np.stack(x) for x in zip(*parts, strict=True))
    return s0, x0, d0


N_AUG = N_STATE + len(SRC)  # a row of the monthly step: the state, then its sources
_ONES_MONTHS = np.ones(MONTHS)

# At or above this many runs the monthly step is one matmul per band (fewer, larger
# products); below it one matmul over (18 years of age x 12 months) rows (fewest calls).
BANDWISE_FROM = 16
# Runs per chunk: each chunk's state stays in cache through its whole projection.
CHUNK = 16


def _move_deviation(d: Array, d_next: Array, x: Array, w_all: Array, i: int, d_from: int,
                    mix_changes: Array, d_full: Array, d_cross: Array) -> tuple[Array, Array]:
    """Step ``i`` (1 April) of the placement deviation ``d`` (b, streams, 216, P, K):
    it absorbs the change of mix against the care totals of the state ``x``, then moves
    a year at once into ``d_next``; returns the pair swapped (a ping-pong buffer)."""
    n = d.shape[0]
    if mix_changes[i]:  # (adding a zero change would leave d as it is)
        change = w_all[:, i] - w_all[:, i + 1]  # (b, G, P)
        t_now = x[..., T_IN_STATE].reshape(n, N_AGE, N_G, N_K).transpose(0, 2, 1, 3)
        d += change[:, :, None, :, None] * t_now[:, :, :, None, :]
    k = i - d_from  # the propagators start at the deviation's first step
    d18 = d.reshape(n, N_G, N_YEARS_OF_AGE, MONTHS * N_P, N_K)
    d_next[:, :, 0] = 0.0  # the newborn cohorts
    # a run of staying years is one (rows x K) block per run and stream: one
    # product each, with no broadcast matrix axis (which numpy's matmul runs slowly)
    rows, next_rows = (a.reshape(n, N_G, N_AGE * N_P, N_K) for a in (d18, d_next))
    for b, lo, hi in _STAY_RUNS:
        np.matmul(rows[:, :, lo * _ROWS_PER_YEAR:hi * _ROWS_PER_YEAR], d_full[:, k, :, b],
                  out=next_rows[:, :, (lo + 1) * _ROWS_PER_YEAR:(hi + 1) * _ROWS_PER_YEAR])
    by_month = d.reshape(n, N_G, N_YEARS_OF_AGE, MONTHS, N_P, N_K)
    next_by_month = d_next.reshape(n, N_G, N_YEARS_OF_AGE, MONTHS, N_P, N_K)
    for e, y in enumerate(_CROSSES):
        np.matmul(by_month[:, :, y], d_cross[:, k, :, e], out=next_by_month[:, :, y + 1])
    return d_next.reshape(d.shape), d18.reshape(d18.shape)


def _chunk(fields: dict[str, Array], sources: Array, s0: Array, x0: Array, d0: Array,
           on_year: ProgressCallback | None) -> tuple[Array, ...]:
    """Project ``b`` runs through every year; returns the year totals stacked
    (b, years, ...): care stock, counters by band, turned 18, home, pool."""
    n, n_years = sources.shape[:2]
    n_steps = n_years - 1
    n_bands = len(spec.AGE_BANDS)
    g = fc.reduced_generators(fields)  # (b, years, bands, S, S)
    w_all = _weights(fields["placement_mix"])  # (b, years, G, P)
    m = step_matrices(g[:, 1:], 1.0 / MONTHS)
    mix_changes = np.any(w_all[:, 1:] != w_all[:, :-1], axis=(0, 2, 3))
    # the deviation is zero until the first change of mix if the initial placements
    # follow the mix (every shipped scenario): it is only propagated from that step
    d_from = 0 if d0.any() else int(np.argmax(mix_changes)) if mix_changes.any() else n_steps
    if d_from < n_steps:
        d_full, d_cross = _deviation_propagators(
            deviation_step(g[:, 1 + d_from:], 1.0 / MONTHS, m["prop"][:, d_from:]))
    # a month of a row (state, sources) -> state: the affine source term rides in the
    # same product
    prop = m["prop"]  # (b, steps, bands, 18, 16)
    bandwise = n >= BANDWISE_FROM
    # few runs: one row of matrices per year of age, gathered for every year at once
    # (2 % faster than a year at a time, paired, now that 0.4 MB more stays on the heap)
    if not bandwise:  # (b, steps, 18 years of age, 18, 16)
        prop = np.take(prop, BAND_OF_YEAR, axis=2)
    entering = fields["birth_entry_share"] * sources[:, :, 0, 0]  # (b, years)
    birth = entering * fields["placement_mix"][:, :, _BIRTH_STREAM].sum(-1)

    # the year's months: h[:, k, a] is age a (0..216) at the start of month k (0..12);
    # row 216 holds the cohort that turned 18 during month k - 1
    h = np.empty((n, MONTHS + 1, N_AGE + 1, N_AUG))
    h[:, 1:, 0, :N_STATE] = 0.0
    h[:, 0, :N_AGE, :N_STATE] = x0
    x_band = np.empty((n, n_years, n_bands, N_STATE))  # state on 31 March
    d_band = np.empty((n, n_years, N_G, n_bands, N_P, N_K))  # deviation on 31 March
    turned = np.empty((n, n_years, N_G))
    x_band[:, 0] = _band_sum(x0)
    turned[:, 0] = x0[:, -1, T_IN_STATE].reshape(n, N_G, N_K).sum(-1) * MONTHS
    d_band[:, :d_from + 1] = 0.0
    if d_from < n_steps:  # (the deviation's buffers only when it moves)
        d = d0.copy()
        d_next = np.empty((n, N_G, N_YEARS_OF_AGE, MONTHS * N_P, N_K))
        if d_from == 0:
            d_band[:, 0] = np.add.reduceat(d, BAND_STARTS, axis=2)
    x = h[:, 0, :N_AGE, :N_STATE]
    # each year's sum of its monthly rows (a product with ones: twice as fast as a sum)
    months = h[:, :MONTHS].reshape(n, MONTHS, (N_AGE + 1) * N_AUG)
    month_sums = np.empty((n, n_steps, (N_AGE + 1) * N_AUG))  # reduced by band at the end
    reaching = np.empty((n, n_steps, MONTHS, N_T))  # care on turning 18, by month
    # the views each month's product reads and writes, made once (the buffer is reused)
    if bandwise:
        steps = [([h[:, k, lo:hi] for lo, hi in BAND_ROWS],
                  [h[:, k + 1, lo + 1:hi + 1, :N_STATE] for lo, hi in BAND_ROWS])
                 for k in range(MONTHS)]
    else:
        steps = [(h[:, k, :N_AGE].reshape(n, N_YEARS_OF_AGE, MONTHS, N_AUG),
                  h[:, k + 1, 1:, :N_STATE].reshape(n, N_YEARS_OF_AGE, MONTHS, N_STATE))
                 for k in range(MONTHS)]
    # the two source columns seen as one complex number: one 16-byte copy per row
    # instead of two strided 8-byte ones (six times faster)
    h_src = h[..., N_STATE:].view(np.complex128)[..., 0]
    s_pair = np.ascontiguousarray(sources).view(np.complex128)[..., 0]  # (b, years, 216)
    s_prev = np.ascontiguousarray(s0).view(np.complex128)[..., 0]
    for j in range(1, n_years):
        i = j - 1
        # 1 April: the deviation absorbs the change of mix, then a year of it at once
        if i >= d_from:
            d, d_next = _move_deviation(d, d_next, x, w_all, i, d_from, mix_changes,
                                        d_full, d_cross)
            d_band[:, j] = np.add.reduceat(d, BAND_STARTS, axis=2)

        # the sources of each age: last year's in month 0, this year's after; the
        # newborn row of every month
        h_src[:, 0, :N_AGE] = s_prev
        h_src[:, 1:MONTHS, :N_AGE] = s_pair[:, j, None]
        h[:, 1:, 0, _BIRTH_COLUMN] = birth[:, j, None]
        p = prop[:, i]
        if bandwise:
            p_band = [p[:, b] for b in range(n_bands)]
            for src, dst in steps:
                for b in range(n_bands):
                    np.matmul(src[b], p_band[b], out=dst[b])
        else:
            for src, dst in steps:
                np.matmul(src, p, out=dst)
        np.matmul(_ONES_MONTHS, months, out=month_sums[:, i])
        reaching[:, i] = h[:, 1:, N_AGE, T_IN_STATE]  # summed after the loop
        x[...] = h[:, MONTHS, :N_AGE, :N_STATE]
        x_band[:, j] = _band_sum(x)
        s_prev = s_pair[:, j]
        if on_year is not None:
            on_year(j, n_years - 1)

    turned[:, 1:] = reaching.reshape(n, n_steps, MONTHS, N_G, N_K).sum(axis=(2, 4))
    sum_band = np.add.reduceat(month_sums.reshape(n, n_steps, N_AGE + 1, N_AUG)[:, :, :N_AGE],
                               BAND_STARTS, axis=2)  # (b, steps, bands, 18)
    counters = np.empty((n, n_years, n_bands, len(spec.COUNTERS)))
    full = np.concatenate([s0, x0], axis=-1)
    counters[:, 0] = (_band_sum(full)[:, :, None, :]
                      @ g[:, 0, :, :R.counter_start, CTR])[:, :, 0]
    counters[:, 1:] = (sum_band[..., None, :] @ m["to_counters"])[..., 0, :]
    counters[:, 0, 0, _BIRTH_COUNTER] = MONTHS * entering[:, 0]
    counters[:, 1:, 0, _BIRTH_COUNTER] += MONTHS * entering[:, 1:]
    total = x_band[..., T_IN_STATE].reshape(n, n_years, n_bands, N_G, N_K)
    care = (w_all[:, :, None, :, :, None] * total[:, :, :, :, None, :]
            + d_band.transpose(0, 1, 3, 2, 4, 5))
    home = x_band[..., T_IN_STATE.stop:].sum(axis=(2, 3))
    pool = x_band[..., 0].sum(axis=2)
    return care, counters, turned, home, pool


def _band_sum(rows: Array) -> Array:
    return np.add.reduceat(rows, BAND_STARTS, axis=1)


def _project_record(params_seq: Sequence[ModelParameters],
                    configs: Sequence[dict[str, Any]],
                    progress: ProgressCallback | None,
                    threads: int | None = None) -> tuple[list[int], dict[str, Array]]:
    """The years and the record of every run, each array (runs, years, ...).

    The year rates are built a chunk at a time (:func:`year_rates_batch`, one array
    expression per hazard for the chunk's runs).  Why a chunk at a time: stacked for the
    whole batch, the sources alone are 38 MB for 1,000 runs, written once and read back
    from memory; a chunk's stay in cache (the 1,000-draw batch takes 4 % less CPU time,
    paired).

    Chunks are independent, so ``threads`` threads take them in turn (numpy releases
    the GIL inside the array work); each chunk's arithmetic is the same whatever thread
    runs it, so the record is identical bit for bit for any ``threads``.  Default:
    :func:`sim.engines.parallel.default_workers` (``CICSIM_WORKERS``, else one per CPU),
    at most one per chunk.  Measured on the 2-core development machine, 1,000 draws:
    2.6-2.8 s on one thread, 1.8-1.9 s on two (CPU time 2.5-2.8 s -> 3.2-3.4 s: the
    threads contend for the GIL in the small numpy calls)."""
    years, levers = _inputs(params_seq, configs)
    n = len(params_seq)
    reduced: dict[tuple[int, bytes], tuple[Array, Array, Array]] = {}

    def one_chunk(lo: int) -> tuple[tuple[Array, ...], Array, Array]:
        hi = min(n, lo + CHUNK)
        rates = year_rates_batch(params_seq[lo:hi], configs[lo:hi], years, levers[lo:hi])
        s0, x0, d0 = _initial(params_seq[lo:hi], rates["placement_mix"][:, 0], reduced)
        part = _chunk({k: rates[k] for k in fc.RATE_FIELDS}, rates["sources"],
                      s0, x0, d0, progress if hi == n else None)
        return part, rates["family_help_served"], rates["programme_cost_gbp"]

    starts = range(0, n, CHUNK)
    threads = default_workers(len(starts)) if threads is None else max(1, threads)
    if min(threads, len(starts)) > 1:
        with ThreadPoolExecutor(min(threads, len(starts))) as pool:
            done = list(pool.map(one_chunk, starts))
    else:
        done = [one_chunk(lo) for lo in starts]
    parts, help_served, cost = (list(column) for column in zip(*done, strict=True))
    care, counters, turned, home, pool = (
        p[0] if len(parts) == 1 else np.concatenate(p) for p in zip(*parts, strict=True))
    record = record_from_totals(
        care, counters, turned, home=home, pool=pool,
        family_help_served=np.concatenate(help_served),
        programme_cost_gbp=np.concatenate(cost),
        repeat_start_share=np.array([float(p.repeat_start_share)
                                     for p in params_seq])[:, None, None])
    return years, record


def _by_year(record: dict[str, Array]) -> list[dict[str, Array]]:
    """The record as one dict per year from arrays whose first axis is the year
    (iterating an array runs in C: a third of the time of indexing each year)."""
    keys = list(record)
    return [dict(zip(keys, values, strict=True))
            for values in zip(*(list(v) for v in record.values()), strict=True)]


def project_batch(params_seq: Sequence[ModelParameters], configs: Sequence[dict[str, Any]],
                  progress: ProgressCallback | None = None,
                  threads: int | None = None) -> dict[str, Any]:
    """Project a batch of runs (one parameter set and config each, same years).

    Returns ``{"years", "records", "wall_time_s"}`` as :func:`project`, with a leading
    batch axis on every record array.  ``threads``: chunks of :data:`CHUNK` runs in
    parallel (default one per CPU, ``CICSIM_WORKERS`` overrides); the results do not
    depend on it."""
    start_time = time.perf_counter()
    years, record = _project_record(params_seq, configs, progress, threads)
    return {"years": years, "records": _by_year({k: np.moveaxis(v, 1, 0)
                                                 for k, v in record.items()}),
            "wall_time_s": time.perf_counter() - start_time}


def project(params: ModelParameters, config: dict[str, Any], steps_per_month: int = 1,
            progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Project from the base year to ``config['run']['end_year']`` (one run).

    Returns ``{"years": [...], "records": [per-year dict], "wall_time_s": float}``;
    the base year's stock is the published one and its flows the model's annualised
    rates at that state.  ``steps_per_month`` > 1 (a check of the exact propagator)
    runs the dense reference."""
    if steps_per_month != 1:
        from sim.engines import stockflow_reference

        return stockflow_reference.project(params, config, steps_per_month, progress)
    start_time = time.perf_counter()
    years, record = _project_record([params], [config], progress)
    return {"years": years, "records": _by_year({k: v[0] for k, v in record.items()}),
            "wall_time_s": time.perf_counter() - start_time}


__all__ = ["BAND_ROWS", "ProgressCallback", "YearRates", "YearTally", "advance_year",
           "band_sums", "build_generators", "care_stock", "equilibrium_state",
           "instantaneous_flows", "project", "project_batch", "propagators",
           "scale_to_observed", "snapshot", "step_matrices", "year_rates"]
