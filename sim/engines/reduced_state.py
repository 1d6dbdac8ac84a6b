"""The batched stock-flow engine's reduced state: its layout and the reduction of a
dense state to it (:mod:`sim.engines.stockflow`, whose docstring says why it is exact).

A row (one month of age) carries the CIN pool, the care totals by stream x stage
(``T``), the returned-home stages and, for the monthly step, the two sources; care by
placement is ``w T + D`` with ``w`` the year's placement weights and ``D`` the
placement deviation (:mod:`sim.engines.placement_deviation`).
"""

from __future__ import annotations

import numpy as np

from sim.engines import flow_compiler as fc
from sim.model import spec
from sim.model.parameters import Array

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
N_AUG = N_STATE + len(SRC)  # a row of the monthly step: the state, then its sources
BAND_OF_ROW = np.array([spec.band_of_age_month(a) for a in range(N_AGE)])
BAND_OF_YEAR = BAND_OF_ROW[::MONTHS]
assert all(s % MONTHS == 0 for _, s, _ in spec.AGE_BANDS), "band edges must be whole years"

# The state block is block-diagonal: non-UASC (pool, care stages, home) and UASC care
# stages never exchange children (checked against the compiled scatter below), so the
# UASC care block of expm(A dt) *is* the UASC part of the deviation's propagator, and
# only the non-UASC care block needs a series of its own.
U_IN_STATE = slice(T_IN_STATE.start + N_K, T_IN_STATE.stop)
NON_UASC_CARE = slice(R.care_start, R.care_start + N_K)  # in the generator's indices


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

_DL = spec.LAYOUT
# A deviation this small against the largest care cell is the rounding of a split by the
# mix itself (8.5e-14 against 1.7e3 for the national state, 5e-17), not a difference.
ROUNDING = 1e-13


def placement_weights(mix: Array) -> Array:
    """Placement weights (..., streams, placements): the mix normalised per stream."""
    total = mix.sum(axis=-1, keepdims=True)
    return np.divide(mix, total, out=np.zeros_like(mix), where=total > 0)


def reduce_state(x: Array, mix: Array) -> tuple[Array, Array, Array]:
    """Dense state (216, LAYOUT.size) -> (sources (216, 2), state (216, 16),
    deviation (streams, 216, placements, stages)) relative to weights of ``mix``.

    A deviation that is only the rounding of placements split by the mix itself
    (:data:`ROUNDING`; every shipped scenario's initial state) is returned as exact
    zeros, so the engine can skip it until the mix changes."""
    care = x[:, _DL.care_start:_DL.home_start].reshape(N_AGE, N_G, N_P, N_K)
    total = care[:, :, 0].copy()  # (sums over the short placement axis by hand: numpy's
    for p in range(1, N_P):       # reduction over a middle axis took 55 us, this 5 us)
        total += care[:, :, p]
    w = placement_weights(mix)
    deviation = (care.transpose(1, 0, 2, 3)
                 - w[:, None, :, None] * total.transpose(1, 0, 2)[:, :, None, :])
    bound = ROUNDING * care.max()  # (children: never negative)
    if deviation.max() <= bound and deviation.min() >= -bound:
        deviation[...] = 0.0
    state = np.concatenate([x[:, [_DL.cin_pool]], total.reshape(N_AGE, N_T),
                            x[:, _DL.home_start:_DL.counter_start]], axis=1)
    sources = x[:, [_DL.population, _DL.uasc_source]]
    return sources, state, deviation
