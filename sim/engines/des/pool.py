"""The aggregate children-in-need (CIN) pool: its expected trajectory in closed form.

The pool (about 320,000 children) does not depend on who is in care, so it is not
followed child by child: its expected trajectory is integrated exactly per monthly
cohort, and entries to care are a Poisson process with intensity ``entry_rate x P(t)``
(docs/des.md, "What is simulated").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.engines.des.common import (
    AGE_ROWS,
    BAND_OF_AGE_ROW,
    MONTH_IN_YEARS,
    MONTHS_PER_YEAR,
    IntArray,
)
from sim.model.parameters import Array
from sim.model.rates import YearRates


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

    def entry_times(self, month: int | IntArray, rows: IntArray, uniforms: Array) -> Array:
        """Entry times (months) inside ``month`` (one, or one per entrant) with density
        proportional to the pool of each entrant's cohort: the closed-form distribution
        inverted by Newton's method (the density varies by a few per cent within a
        month, so a handful of steps reach machine precision), with bisection for any
        that do not settle.  Element-wise, so batching entrants changes no time."""
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

