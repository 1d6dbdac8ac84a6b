"""Per-authority rates relative to England, pulled toward the region by empirical Bayes.

Method (docs/areas.md has the why):

1. For each rate (entries per CIN-pool child by age band, exits per child in care by
   route, CIN closure) and each authority, the count ``y`` and the *expected* count
   ``e`` under England's rate are summed over the last :data:`POOL_YEARS` years up to
   the base year in which both are published.  England's rate in a year is the sum of
   the authorities' counts over the sum of their exposures (so the relative rates
   average 1 by construction); exits are indirectly standardised for age (an
   authority with more teenagers is expected to have fewer adoptions).
2. Gamma-Poisson: ``y ~ Poisson(theta e)``, ``theta ~ Gamma(a, b)``.  The prior's mean
   is the pooled relative rate of the authority's ONS region (``method="regional"``,
   the default, chosen by the area backtest) or of England (``"shrinkage"``); its
   variance comes from the method of moments across authorities (Marshall 1991:
   between-area variance = weighted variance of ``y / e`` around the prior means less
   the Poisson part), and each authority's relative rate is the posterior mean
   ``(y + a) / (e + b)``: an authority with little data (``e`` small against ``b``)
   lands near its region (or England), one with much stays near its own ``y / e``.
3. Benchmarking: the posterior means are raked by one factor per rate so the
   authorities' expected counts at the shrunk rates sum to their observed counts,
   which keeps the sum of the areas on England.

``method="raw"`` uses ``y / e`` (no pooling; England's rate where nothing is published)
and ``method="national"`` uses 1 for every authority (the backtest's comparators).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.datasets import Observed
from sim.estimation import area_data
from sim.estimation.estimate import (
    BANDS,
    ROUTES,
    population_total,
    uasc_started,
    uasc_under_16_share,
)
from sim.model.parameters import Array

POOL_YEARS = 3  # years of counts pooled per rate (base year and the two before)
METHODS = ("shrinkage", "regional", "raw", "national")
HAZARD_ROUTES = ROUTES  # spec.EXIT_ROUTES minus ageing out (non-hazard)
UNDER_16_BANDS = (BANDS.index("10_to_15"), BANDS.index("16_and_over"))


@dataclass(frozen=True)
class Relative:
    """One rate's relative levels across authorities (England = 1)."""

    ratio: Array  # (areas,) the method's relative rate
    raw: Array  # (areas,) y / e (nan where e = 0)
    weight: Array  # (areas,) e / (e + b): the share of the estimate from own data
    counts: Array
    expected: Array
    prior_shape: float
    prior_rate: float


def gamma_poisson(counts: Array, expected: Array, method: str = "shrinkage",
                  groups: Sequence[str] | None = None) -> Relative:
    """Relative rates by empirical-Bayes gamma-Poisson (module docstring, steps 2-3).

    ``method="regional"`` centres each authority's prior on its group's (region's)
    pooled rate instead of England's, with one between-area variance (the spread around
    the group means, corrected for the means fitted); ``groups`` names each
    authority's group."""
    counts = np.asarray(counts, dtype=float)
    expected = np.asarray(expected, dtype=float)
    has = expected > 0
    raw = np.divide(counts, expected, out=np.full_like(counts, np.nan), where=has)
    if not has.any():
        ones = np.ones_like(counts)
        return Relative(ones, raw, np.zeros_like(counts), counts, expected, np.inf, np.inf)
    mean = counts[has].sum() / expected[has].sum()
    centre = np.full_like(counts, mean)  # each authority's prior mean
    fitted = 1  # prior means fitted
    if method == "regional":
        if groups is None or len(groups) != len(counts):
            raise ValueError("method 'regional' needs one group per authority")
        labels = np.asarray(groups)
        fitted = 0
        for label in np.unique(labels):
            member = labels == label
            if expected[member & has].sum() > 0:
                centre[member] = counts[member & has].sum() / expected[member & has].sum()
                fitted += 1
    n = int(has.sum())
    spread = (expected[has] * (raw[has] - centre[has]) ** 2).sum() / expected[has].sum()
    if fitted > 1:  # several fitted means use up degrees of freedom (about 9 of 150)
        spread *= (n - 1) / max(n - fitted, 1)
    between = spread - centre[has].sum() / expected[has].sum()
    if between <= 0:  # no variation beyond Poisson noise: complete pooling
        shape = rate = np.inf
        posterior = centre.copy()
        weight = np.zeros_like(counts)
    else:
        shape_by, rate_by = centre**2 / between, centre / between
        posterior = (counts + shape_by) / (expected + rate_by)
        weight = expected / (expected + rate_by)
        shape, rate = mean**2 / between, mean / between
    if method in ("shrinkage", "regional"):
        ratio = posterior
    elif method == "raw":
        ratio = np.where(has, raw, mean)
        weight = has.astype(float)
    elif method == "national":
        ratio = np.full_like(counts, mean)
        weight = np.zeros_like(counts)
    else:
        raise ValueError(f"unknown area method {method!r}; valid: {', '.join(METHODS)}")
    if has.any() and (ratio[has] * expected[has]).sum() > 0:
        ratio = ratio * counts[has].sum() / (ratio[has] * expected[has]).sum()
    return Relative(ratio, raw, weight, counts, expected, shape, rate)


def _usable(counts: Array, exposure: Array) -> tuple[Array, Array]:
    usable = np.isfinite(counts) & np.isfinite(exposure) & (exposure > 0)
    return np.where(usable, counts, 0.0), np.where(usable, exposure, 0.0)


def england_rates(counts: Array, exposure: Array) -> Array:
    """Per year (columns): England's rate = sum of counts / sum of exposures over the
    authorities (rows) publishing both."""
    y, x = _usable(counts, exposure)
    return np.divide(y.sum(axis=0), x.sum(axis=0), out=np.zeros(y.shape[1]),
                     where=x.sum(axis=0) > 0)


def _expected(counts: Array, exposure: Array) -> tuple[Array, Array]:
    """Summed counts and counts expected at England's rate of each year, per authority
    (years where count or exposure is missing left out of both)."""
    y, x = _usable(counts, exposure)
    return y.sum(axis=1), (x * england_rates(counts, exposure)[None, :]).sum(axis=1)


def _nan(v: float | None) -> float:
    return np.nan if v is None else float(v)


def band_shares(obs: Observed, year: int, national: Array) -> Array:
    """Stock shares by age band: the latest year <= ``year`` with a published total;
    suppressed bands share the residual (total - published bands) in proportion to
    England's shares; England's shares where nothing is published."""
    for y in range(year, year - 6, -1):
        values = [obs.get(f"looked_after_31_march__age__{b}", y) for b in BANDS]
        if all(v is None for v in values):
            continue
        known = np.array([_nan(v) for v in values])
        total = obs.get("looked_after_31_march", y)
        missing = np.isnan(known)
        if missing.any():
            if total is None:
                continue
            residual = max(total - np.nansum(known), 0.0)
            known[missing] = residual * national[missing] / national[missing].sum()
        if known.sum() > 0:
            return known / known.sum()
    return national / national.sum()


def stock_total(obs: Observed, year: int) -> tuple[float | None, str]:
    """The 31 March stock: published; else last year's plus starts less ceased (DfE
    did not publish authorities' stock for 2018); else None."""
    value = area_data.stock(obs, year)
    if value is not None:
        return value, f"looked_after_31_march ({year})"
    previous = area_data.stock(obs, year - 1)
    started = obs.get("started_during_year", year)
    ceased = obs.get("ceased_during_year", year)
    if previous is not None and started is not None and ceased is not None:
        return max(previous + started - ceased, 0.0), (
            f"looked_after_31_march ({year - 1}) + started - ceased ({year}) "
            "(ASSUMPTION: stock identity, the year's stock is not published)")
    return None, "not published"


def _residual_shares(values: list[float | None], national_total: float | None,
                     weights: Array) -> Array:
    """Shares of an England total across authorities; authorities with a suppressed or
    missing cell share the unallocated rest (England's total less the published
    cells) in proportion to ``weights`` (their child population): never zero."""
    known = np.array([_nan(v) for v in values])
    missing = np.isnan(known)
    if national_total is None or national_total <= 0:
        national_total = float(np.nansum(known))
    if missing.any():
        rest = max(national_total - np.nansum(known), 0.0)
        w = weights[missing]
        known[missing] = rest * (w / w.sum() if w.sum() > 0 else 1.0 / missing.sum())
    total = known.sum()
    return known / total if total > 0 else np.full(len(values), 1.0 / len(values))


def _populations(observed: Sequence[Observed], year: int) -> Array:
    return np.array([population_of(obs, year) or 0.0 for obs in observed])


def uasc_shares(observed: Sequence[Observed], national: Observed, year: int,
                measure: str) -> tuple[Array, int | None]:
    """Each authority's share of England's ``measure`` (UASC stock or starts) in the
    latest year <= ``year`` that authorities publish it (residual rule for cells
    suppressed there)."""
    for y in range(year, year - 8, -1):
        values = [obs.get(measure, y) for obs in observed]
        if sum(v is not None for v in values) >= len(values) // 2:
            return _residual_shares(values, national.get(measure, y),
                                    _populations(observed, y)), y
    return np.full(len(observed), 1.0 / len(observed)), None


@dataclass(frozen=True)
class AreaRates:
    """Every authority's relative rates and base-year levels (registry order)."""

    entry: list[Relative]  # one per age band
    exit: list[Relative]  # one per hazard route
    closure: Relative
    uasc_stock_share: Array
    uasc_start_share: Array
    uasc_years: tuple[int | None, int | None]
    years: tuple[int, ...]
    # Each authority's slope of log(entry rate / England's) over ``years``, shrunk
    # toward 0 (``own_slopes``); add England's entry slope to get its own.
    entry_slope: Array


def own_slopes(counts: Array, expected: Array) -> Array:
    """Relative log-linear slopes per authority (rows) over years (columns), shrunk
    toward 0 by normal-normal empirical Bayes, then centred on the exposure-weighted
    mean so England's aggregate trend is unchanged.

    Each authority's slope of ``log(y_t / e_t)`` has sampling variance
    ``mean(1 / y_t) / sum((t - mean t)^2)`` (Poisson, delta method); the between-area
    variance of the true slopes is the spread of the estimates less the mean sampling
    variance (method of moments); the posterior mean keeps the share
    ``tau^2 / (tau^2 + v)`` of an authority's slope.  Authorities with fewer than two
    usable years (or a zero count) get 0, England's slope."""
    n, n_years = counts.shape
    t = np.arange(n_years, dtype=float)
    usable = np.isfinite(counts) & np.isfinite(expected) & (counts > 0) & (expected > 0)
    slope = np.zeros(n)
    variance = np.full(n, np.inf)
    for i in range(n):
        ok = usable[i]
        if ok.sum() < 2:
            continue
        x = t[ok] - t[ok].mean()
        z = np.log(counts[i, ok] / expected[i, ok])
        slope[i] = (x * z).sum() / (x * x).sum()
        variance[i] = np.mean(1.0 / counts[i, ok]) / (x * x).sum()
    has = np.isfinite(variance)
    if has.sum() < 3:
        return np.zeros(n)
    between = np.var(slope[has]) - np.mean(variance[has])
    if between <= 0:
        return np.zeros(n)
    shrunk = np.where(has, slope * between / (between + variance), 0.0)
    weights = np.nansum(np.where(usable, expected, 0.0), axis=1)
    return shrunk - (shrunk * weights).sum() / max(weights.sum(), 1e-300)


def _uasc_starts(observed: Sequence[Observed], national: Observed, year: int) -> Array:
    """UASC starts by authority in ``year``: published (2021 on), else England's
    UASC starts times the authority's share of UASC starts or stock."""
    shares, _ = uasc_shares(observed, national, year, "started_during_year__uasc__uasc")
    published = [obs.get("started_during_year__uasc__uasc", year) for obs in observed]
    if all(v is None for v in published):
        shares, _ = uasc_shares(observed, national, year, "uasc_31_march")
    england = uasc_started(national, year)
    return np.array([_nan(v) if v is not None else england * s
                     for v, s in zip(published, shares, strict=True)])


def estimate_area_rates(observed: Sequence[Observed], national: Observed, year: int,
                        exit_profile: Array, national_band_shares: Array,
                        uasc_exit_rate: float, method: str = "shrinkage",
                        regions: Sequence[str] | None = None) -> AreaRates:
    """Relative rates for every authority (module docstring).  ``exit_profile`` is
    England's exit hazard by route x band (its age profile standardises exits)."""
    years = tuple(range(year - POOL_YEARS + 1, year + 1))
    n, n_years = len(observed), len(years)
    entry_y = np.full((len(BANDS), n, n_years), np.nan)
    entry_x = np.full_like(entry_y, np.nan)
    exit_y = np.full((len(HAZARD_ROUTES), n, n_years), np.nan)
    exit_x = np.full_like(exit_y, np.nan)
    closure_y = np.full((n, n_years), np.nan)
    closure_x = np.full_like(closure_y, np.nan)
    under_16 = {y: uasc_under_16_share(national, y) for y in years}
    stock_shares, _ = uasc_shares(observed, national, year, "uasc_31_march")
    for t, y in enumerate(years):
        uasc_starts = _uasc_starts(observed, national, y)
        uasc_stock = stock_shares * (national.get("uasc_31_march", y) or 0.0)
        for i, obs in enumerate(observed):
            stock_now, _ = stock_total(obs, y)
            stock_before, _ = stock_total(obs, y - 1)
            cin = obs.get("cin_31_march", y)
            pool = (cin - stock_now) if (cin is not None and stock_now is not None) else None
            shares = band_shares(obs, y, national_band_shares)
            if pool is not None and pool > 0:
                uasc_band = np.zeros(len(BANDS))
                if np.isfinite(uasc_starts[i]):
                    uasc_band[UNDER_16_BANDS[0]] = uasc_starts[i] * under_16[y]
                    uasc_band[UNDER_16_BANDS[1]] = uasc_starts[i] * (1 - under_16[y])
                for b, band in enumerate(BANDS):
                    started = obs.get(f"started_during_year__age__{band}", y)
                    if started is None or not np.isfinite(uasc_starts[i]):
                        continue
                    entry_y[b, i, t] = max(started - uasc_band[b], 0.0)
                    entry_x[b, i, t] = pool * national_band_shares[b]
                ended = obs.get("cin_children_ended_during_year", y)
                ceased = obs.get("ceased_during_year", y)
                if ended is not None and ceased is not None:
                    closure_y[i, t] = max(ended - ceased, 0.0)
                    closure_x[i, t] = pool
            levels = [v for v in (stock_now, stock_before) if v is not None]
            if not levels:
                continue
            at_risk = np.mean(levels) * shares
            at_risk[list(UNDER_16_BANDS)] -= uasc_stock[i] * np.array(
                [under_16[y], 1 - under_16[y]])
            at_risk = np.clip(at_risk, 0.0, None)
            counts = {r: area_data.route_count(obs, r, y) for r in area_data.AREA_ROUTE_MEASURES}
            ceased_all, turned = obs.get("ceased_during_year", y), area_data.at_18(obs, y)
            if all(v is not None for v in counts.values()) and ceased_all is not None \
                    and turned is not None:
                counts[area_data.RESIDUAL_ROUTE] = max(
                    ceased_all - turned - sum(counts.values())  # type: ignore[arg-type]
                    - uasc_exit_rate * uasc_stock[i], 0.0)
            for r, route in enumerate(HAZARD_ROUTES):
                if counts.get(route) is not None:
                    exit_y[r, i, t] = counts[route]
                    exit_x[r, i, t] = float(at_risk @ exit_profile[r])
    entry = [gamma_poisson(*_expected(entry_y[b], entry_x[b]), method, regions)
             for b in range(len(BANDS))]
    exits = [gamma_poisson(*_expected(exit_y[r], exit_x[r]), method, regions)
             for r in range(len(HAZARD_ROUTES))]
    closure = gamma_poisson(*_expected(closure_y, closure_x), method, regions)
    # All-ages entries per year for the own-slope option: counts summed over bands
    # (missing if any band is), expected at each year's England rate by band.
    entry_total = entry_y.sum(axis=0)
    entry_expected = sum(entry_x[b] * england_rates(entry_y[b], entry_x[b])[None, :]
                         for b in range(len(BANDS)))
    start_shares, start_year = uasc_shares(observed, national, year,
                                           "started_during_year__uasc__uasc")
    _, stock_year = uasc_shares(observed, national, year, "uasc_31_march")
    if start_year is None:
        start_shares = stock_shares
    return AreaRates(entry, exits, closure, stock_shares, start_shares,
                     (stock_year, start_year), years,
                     own_slopes(entry_total, entry_expected))


def population_of(obs: Observed, year: int) -> float | None:
    """The authority's 0-17 population (ONS mid-year; interpolated between published
    years as England's is), or None."""
    try:
        return population_total(obs, year)
    except ValueError:
        return None
