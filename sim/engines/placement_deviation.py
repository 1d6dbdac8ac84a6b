"""The placement deviation of the batched stock-flow engine: how it moves a year at once.

Care by placement is ``w T + D`` (:mod:`sim.engines.reduced_state`).  No hazard depends
on placement and every flow into care is split by the year's mix ``w``, so ``D`` has
no inflow: it evolves by the care block of the generator alone (``F = expm(A_TT dt)``,
two 5 x 5 blocks as streams never exchange children).  On 1 April, when the mix
changes, ``D`` absorbs the change (``D += (w_old - w_new) T``).  It is only needed on
31 March, and bands are whole years, so a cohort at month offset ``k`` of a year of age
ends the year at ``D F[b1]^(12-k) F[b2]^k``: one product a year per run of staying
years of a band, and one per band edge.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from sim.engines.reduced_state import (
    BAND_OF_YEAR,
    MONTHS,
    N_AGE,
    N_G,
    N_K,
    N_P,
    N_YEARS_OF_AGE,
    NON_UASC_CARE,
    T_IN_STATE,
    U_IN_STATE,
)
from sim.engines.series import expm_series, identity
from sim.model.parameters import Array

# Years of age whose cohorts cross an age-band edge during a year (the yearly
# propagator then mixes two bands' powers) and those that stay in one band.
_STAYS = np.flatnonzero(BAND_OF_YEAR[:-1] == BAND_OF_YEAR[1:])
CROSSES = np.flatnonzero(BAND_OF_YEAR[:-1] != BAND_OF_YEAR[1:])
# The staying years as contiguous runs (band, first, stop): one product per run, written
# straight into its place, instead of gathering and scattering rows.
_ROWS_PER_YEAR = MONTHS * N_P  # deviation rows (month of age x placement) per year
_STAY_RUNS = tuple((int(BAND_OF_YEAR[ys[0]]), int(ys[0]), int(ys[-1]) + 1)
                   for ys in np.split(_STAYS, np.flatnonzero(np.diff(_STAYS) > 1) + 1))


def monthly_step(g: Array, dt: float, prop: Array) -> Array:
    """``dd = expm(A_TT dt)``, the deviation's monthly propagator, as (..., streams,
    stages, stages) diagonal blocks, for generators ``g`` (..., S, S) whose monthly
    ``prop`` (:func:`sim.engines.stockflow.step_matrices`) is given: the UASC block *is*
    the UASC care block of ``prop``, so only the other stream needs a series."""
    block = g[..., NON_UASC_CARE, NON_UASC_CARE] * dt
    dd = np.empty((*g.shape[:-2], N_G, N_K, N_K))
    try:
        dd[..., 0, :, :] = expm_series(block)
    except OverflowError:
        dd[..., 0, :, :] = scipy.linalg.expm(block)
    dd[..., 1, :, :] = prop[..., U_IN_STATE, U_IN_STATE]
    return dd


def yearly_propagators(dd: Array) -> tuple[Array, Array]:
    """Yearly propagators from the monthly ``dd`` (..., bands, streams, K, K), per
    stream: ``dd^12`` (..., streams, bands, K, K), and for each band edge and month
    offset ``k`` of a crossing cohort ``dd[b1]^(12-k) dd[b2]^k`` (..., streams, edges,
    12, K, K)."""
    dd = np.swapaxes(dd, -3, -4)  # (..., streams, bands, K, K)
    powers = np.empty((*dd.shape[:-2], MONTHS + 1, N_K, N_K))  # (..., G, bands, 13, K, K)
    powers[..., 0, :, :] = identity(N_K)
    powers[..., 1, :, :] = dd
    for k in range(2, MONTHS + 1):
        np.matmul(powers[..., k - 1, :, :], dd, out=powers[..., k, :, :])
    cross = np.empty((*dd.shape[:-3], len(CROSSES), MONTHS, N_K, N_K))
    for e, y in enumerate(CROSSES):
        b1, b2 = BAND_OF_YEAR[y], BAND_OF_YEAR[y + 1]
        np.matmul(powers[..., b1, MONTHS:0:-1, :, :], powers[..., b2, :MONTHS, :, :],
                  out=cross[..., e, :, :, :])
    return powers[..., MONTHS, :, :], cross


def move(d: Array, d_next: Array, x: Array, change: Array | None, full: Array,
         cross: Array) -> tuple[Array, Array]:
    """A year of the deviation ``d`` (b, streams, 216, P, K) from 1 April: it absorbs
    the change of weights ``change`` (b, streams, P; None: no change) against the care
    totals of the state ``x`` (b, 216, 16), then moves a year at once into ``d_next``
    by that year's ``full`` (b, streams, bands, K, K) and ``cross`` (b, streams, edges,
    12, K, K) propagators; returns the pair swapped (a ping-pong buffer)."""
    n = d.shape[0]
    if change is not None:  # (adding a zero change would leave d as it is)
        t_now = x[..., T_IN_STATE].reshape(n, N_AGE, N_G, N_K).transpose(0, 2, 1, 3)
        d += change[:, :, None, :, None] * t_now[:, :, :, None, :]
    d18 = d.reshape(n, N_G, N_YEARS_OF_AGE, MONTHS * N_P, N_K)
    d_next[:, :, 0] = 0.0  # the newborn cohorts
    # a run of staying years is one (rows x K) block per run and stream: one product
    # each, with no broadcast matrix axis (which numpy's matmul runs slowly)
    rows, next_rows = (a.reshape(n, N_G, N_AGE * N_P, N_K) for a in (d18, d_next))
    for b, lo, hi in _STAY_RUNS:
        np.matmul(rows[:, :, lo * _ROWS_PER_YEAR:hi * _ROWS_PER_YEAR], full[:, :, b],
                  out=next_rows[:, :, (lo + 1) * _ROWS_PER_YEAR:(hi + 1) * _ROWS_PER_YEAR])
    by_month = d.reshape(n, N_G, N_YEARS_OF_AGE, MONTHS, N_P, N_K)
    next_by_month = d_next.reshape(n, N_G, N_YEARS_OF_AGE, MONTHS, N_P, N_K)
    for e, y in enumerate(CROSSES):
        np.matmul(by_month[:, :, y], cross[:, :, e], out=next_by_month[:, :, y + 1])
    return d_next.reshape(d.shape), d18.reshape(d18.shape)
