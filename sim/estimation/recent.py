"""Recent slopes of the published rates: the slope source that wins the backtests.

Log-linear slopes over the last few published years of the entry rate (overall and
by age band) and of each exit route's rate, read only up to the base year.  Kept
beside :mod:`sim.estimation.estimate` (whose measures it reuses) rather than in it: the
estimation of a base year's levels does not need them.
"""

from __future__ import annotations

import numpy as np

from sim.datasets import Observed
from sim.errors import InputError
from sim.estimation.estimate import (
    BANDS,
    ROUTES,
    ceased_by_route,
    log_linear_slope,
    population_total,
    route_counts,
    uasc_by_band,
    uasc_started,
    uasc_under_16_share,
)

RECENT_SLOPE_KEYS: tuple[str, ...] = ("entry", *ROUTES, *(f"entry_{b}" for b in BANDS))


def recent_slopes(obs: Observed, year: int, window: int = 3) -> dict[str, float]:
    """Log-linear slopes over the last ``window`` published years (to ``year``) of the
    entry rate (non-UASC starts per child; also by age band as ``entry_<band>``) and of
    each exit route's rate (ceased by route per child in care at the previous 31
    March; "other" = ceased - at 18 - the named routes).  Years without the needed
    series are skipped.

    Why: the backtests show the *recent* direction of each hazard forecasts better
    than slopes fitted over the decade, which carry the 2012-16 rise in exits into
    years when exits were falling; and entries moved differently by age (infant and
    1-9 starts fell while 16+ starts rose)."""
    rates: dict[str, dict[int, float]] = {key: {} for key in RECENT_SLOPE_KEYS}
    for y in range(year - window + 1, year + 1):
        previous = obs.get("looked_after_31_march", y - 1)
        started = obs.get("started_during_year", y)
        try:
            ceased = ceased_by_route(obs, y)
            population = population_total(obs, y)
            uasc = uasc_started(obs, y)
        except (InputError, ValueError):
            continue
        if not (previous and started):
            continue
        rates["entry"][y] = (started - uasc) / population
        by_band = [obs.get(f"started_during_year__age__{b}", y) for b in BANDS]
        if all(v is not None for v in by_band):
            non_uasc = np.array(by_band, dtype=float) - uasc_by_band(
                uasc, uasc_under_16_share(obs, y))
            for band, value in zip(BANDS, non_uasc, strict=True):
                if value > 0:
                    rates[f"entry_{band}"][y] = value / population
        for route, value in zip(ROUTES, route_counts(ceased), strict=True):
            if value > 0:
                rates[route][y] = value / previous
    return {key: log_linear_slope(sorted(values), [values[y] for y in sorted(values)])
            for key, values in rates.items()}
