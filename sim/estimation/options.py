"""Scenario choices the estimation understands, importable without the numerical stack.

Why a module of its own: the scenario schema validates ``uasc.arrivals_method`` against
these names, and a cached run (:mod:`sim.estimation.cache`) loads the schema but never
estimates; keeping the names here lets it skip importing :mod:`sim.estimation.estimate`
and scipy.optimize behind it.
"""

from __future__ import annotations

# How UASC arrivals in projected years are set when ``uasc.arrivals_per_year`` is
# "estimate" (see sim.estimation.estimate.uasc_arrivals_default).
UASC_ARRIVALS_METHODS: tuple[str, ...] = ("mean_last_3", "base_year")
