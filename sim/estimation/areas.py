"""Local-authority areas: which areas a run names, and their base-year parameters.

Public interface (issue 11; the engines' ``area`` dimension is built on it):

- :class:`Area`, :data:`ENGLAND`, :func:`resolve_areas`, :func:`pathfinder_areas`
  (:mod:`sim.estimation.area_registry`);
- :func:`area_parameters`: a :class:`~sim.model.parameters.ModelParameters` per area,
  same fields and shapes as England's, ready for
  ``sim.engines.stockflow.project_batch(params_list, [config] * n)``.

How an authority's parameters are made (docs/areas.md): England's estimated
structure (age x duration profile of exits, stage multipliers, re-entry, the fixed
point's corrections) times the authority's *relative* rates, shrunk toward England
by empirical Bayes (:mod:`sim.estimation.area_rates`), with the authority's own
levels (child population, CIN pool, stock by age band, UASC, placement mix, leaving
at 18) from its own published figures where published, else the stated fallback.
The base-year state is the equilibrium of the authority's own rates scaled to its
own stock, as for England.  No root-finding per authority: one equilibrium each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sim.datasets import Observed, load_area_observed, load_observed
from sim.errors import InputError
from sim.estimation import area_data, cache
from sim.estimation.area_rates import (
    METHODS,
    AreaRates,
    band_shares,
    estimate_area_rates,
    population_of,
    stock_total,
)
from sim.estimation.area_registry import (
    ENGLAND,
    Area,
    AreaRecord,
    all_areas,
    pathfinder_areas,
    registry,
    resolve_areas,
)
from sim.estimation.estimate import BANDS, uasc_by_band
from sim.model import spec
from sim.model.parameters import PARAMETER_INFO, ModelParameters
from sim.model.rates import YearRates

__all__ = ["ENGLAND", "Area", "area_parameters", "all_areas", "pathfinder_areas",
           "resolve_areas"]

# Prior weight (in children) of England's placement mix in an authority's mix:
# ASSUMPTION, so a mix read from a few dozen children is not taken at face value.
PLACEMENT_PRIOR_CHILDREN = 30.0
# Trend options: every authority carries the scenario's (England's) slopes, or its
# entry slope is England's plus its own recent relative slope, shrunk
# (area_rates.own_slopes).  The backtest chose "national" (docs/areas.md).
TREND_OPTIONS = ("national", "own")
AREA_CACHE_FORMAT = 1


@dataclass(frozen=True)
class AreaParameterSet:
    """What the cache holds for one (config, areas, method): parameters in area order."""

    codes: tuple[str, ...]
    params: tuple[ModelParameters, ...]


def _placement_mix(obs: Observed, year: int, national: np.ndarray) -> tuple[np.ndarray, str]:
    """Non-UASC entry mix: the authority's 31 March stock mix (latest year <= base with
    a placement breakdown; kinship split of foster care as England's) shrunk toward
    England's with weight :data:`PLACEMENT_PRIOR_CHILDREN`; UASC mix England's."""
    p = "looked_after_31_march__placement__"
    mix = national.copy()
    for y in range(year, year - 6, -1):
        total = obs.get("looked_after_31_march", y)
        foster = obs.get(p + "foster_total", y)
        homes = (obs.get(p + "secure_homes_and_childrens_homes", y)
                 or obs.get(p + "secure_units_childrens_homes_and_hostels_sfr", y))
        if total is None or foster is None or homes is None or total <= 0:
            continue
        residential = homes + sum(obs.get(p + m, y) or 0.0 for m in (
            "other_residential_settings", "residential_schools"))
        kin_share = national[0, 1] / max(national[0, 0] + national[0, 1], 1e-12)
        counts = np.array([foster * (1 - kin_share), foster * kin_share, residential,
                           max(total - foster - residential, 0.0)])
        k = PLACEMENT_PRIOR_CHILDREN
        mix[0] = (counts + k * national[0]) / (counts.sum() + k)
        return mix, (f"{p}foster_total, children's homes ({y}) shrunk toward England "
                     f"(prior weight {k:g} children, ASSUMPTION; kinship and UASC mix "
                     "England's)")
    return mix, "England's placement mix (no breakdown published for the authority)"


def _one_area(i: int, record: AreaRecord, obs: Observed, rates: AreaRates,
              national: ModelParameters, config: Mapping[str, Any],
              trends: str = "national") -> ModelParameters:
    year = national.base_year
    name = f"{record.area.name} ({record.area.code})"
    sources = {k: f"England: {v}" for k, v in national.sources.items()}
    sources["area"] = (f"{name}, DfE {record.area.dfe_code}, {record.area.region}"
                       + (f"; successor of {'+'.join(record.predecessors)} from "
                          f"{record.first_own_year}: before, predecessors' values x its "
                          "first published share (docs/areas.md)"
                          if record.predecessors else ""))
    pop_total = population_of(obs, year)
    if pop_total is None:
        raise InputError(f"sim/data/population_0_17.csv: no 0-17 population for {name} "
                         f"at or before {year}")
    population = national.population_by_age / national.population_by_age.sum() * pop_total
    sources["population_by_age"] = ("England's single-age shape x the authority's "
                                    "population_0_17_ons_mid_year (ASSUMPTION: shape)")
    stock, sources["looked_after_base"] = stock_total(obs, year)
    if stock is None:
        latest = area_data.latest(obs, "looked_after_31_march", year, back=12)
        if latest is None:
            raise InputError(f"sim/data: no looked-after stock published for {name}")
        stock, from_year = latest
        sources["looked_after_base"] = (f"looked_after_31_march ({from_year}, the latest "
                                        "published; ASSUMPTION: unchanged since)")
    national_shares = national.looked_after_base_by_band / national.looked_after_base
    by_band = stock * band_shares(obs, year, national_shares)
    uasc_total = rates.uasc_stock_share[i] * national.uasc_base_by_band.sum()
    under_16 = national.uasc_base_by_band[BANDS.index("10_to_15")] / max(
        national.uasc_base_by_band.sum(), 1e-12)
    uasc_stock = np.minimum(uasc_by_band(uasc_total, under_16), by_band)
    cin = obs.get("cin_31_march", year)
    pool = (cin - stock) if cin is not None and cin > stock else None
    if pool is None:
        pool = national.cin_pool_base / national.population_by_age.sum() * pop_total
        sources["cin_pool_base"] = ("ASSUMPTION: England's CIN pool per child x the "
                                    "authority's population (CIN not published)")
    else:
        sources["cin_pool_base"] = f"cin_31_march - looked_after_31_march ({year})"
    entry_ratio = np.array([r.ratio[i] for r in rates.entry])
    exit_ratio = np.array([r.ratio[i] for r in rates.exit])
    closure = national.cin_closure_rate_per_year * rates.closure.ratio[i]
    entry = national.entry_rate_per_year * entry_ratio
    mix, sources["placement_mix"] = _placement_mix(obs, year, national.placement_mix)
    turned_18 = area_data.value(obs, "ceased_during_year__age__18_and_over", year)
    years = f"{rates.years[0]}-{rates.years[-1]}"
    shrunk = (f"England's value x the authority's relative rate ({years} pooled, "
              "empirical-Bayes gamma-Poisson, docs/areas.md)")
    for key in ("entry_rate_per_year", "exit_rate_per_year", "cin_closure_rate_per_year",
                "birth_entry_share"):
        sources[key] = shrunk
    entry_trend = national.entry_trend_per_year
    if trends == "own":
        # kept within the parameter's declared bounds (a 3-year slope can be extreme)
        bounds = PARAMETER_INFO["entry_trend_per_year"]
        entry_trend = float(np.clip(entry_trend + rates.entry_slope[i], bounds.low,
                                    bounds.high))
        sources["entry_trend_per_year"] = (
            f"England's + the authority's relative slope of entries {years}, shrunk "
            "(normal-normal empirical Bayes, docs/areas.md)")
    share_note = f"England's x the authority's share of UASC ({rates.uasc_years})"
    sources["uasc_arrivals_per_year"] = sources["uasc_arrivals_base_year"] = share_note
    params = replace(
        national,
        population_by_age=population,
        births_per_year=(population[0] if config["population"]["births_per_year"]
                         == "estimate" else national.births_per_year * pop_total
                         / national.population_by_age.sum()),
        cin_closure_rate_per_year=closure,
        cin_pool_base=pool,
        entry_rate_per_year=entry,
        entry_trend_per_year=entry_trend,
        birth_entry_share=national.birth_entry_share * entry_ratio[0],
        exit_rate_per_year=national.exit_rate_per_year * exit_ratio[:, None],
        placement_mix=mix,
        uasc_arrivals_per_year=national.uasc_arrivals_per_year * rates.uasc_start_share[i],
        uasc_arrivals_base_year=national.uasc_arrivals_base_year * rates.uasc_start_share[i],
        looked_after_base=float(by_band.sum()),
        looked_after_base_by_band=by_band,
        uasc_base_by_band=uasc_stock,
        turned_18_base=float("nan") if turned_18 is None else turned_18,
        sources=sources,
        # placeholder until the equilibrium below sets it
        referral_rate_per_child_year=national.referral_rate_per_child_year,
    )
    sources["referral_rate_per_child_year"] = (
        "set so the authority's CIN pool is stationary in the base year (ASSUMPTION)")
    return params


def equilibria(rates: Sequence[YearRates]) -> np.ndarray:
    """The equilibrium state of each of ``rates``, shape (runs, months of age, state).

    Same state as :func:`sim.engines.stockflow.equilibrium_state` (which iterates 19
    years of months): with rates held fixed, the state at month of age ``k`` is the
    cohort born ``k`` months ago, so one sweep down the ages, a month's propagator per
    step, gives it; for a batch, one batched product per month of age.  Why: 152
    authorities' equilibria by 19-year iteration took ~6 s, the sweep ~0.1 s
    (tests/unit/test_areas_parameters.py checks the two agree).
    """
    from sim.engines import stockflow

    layout = spec.LAYOUT
    n, months = len(rates), spec.MAX_AGE_MONTHS
    matrices = np.stack([stockflow.propagators(r, 1.0 / spec.MONTHS_PER_YEAR)
                         for r in rates])  # (runs, bands, S, S)
    x = np.zeros((n, months, layout.size))
    first_care = [layout.care(0, p, 0) for p in range(len(spec.PLACEMENTS))]
    for j, r in enumerate(rates):
        x[j, :, layout.population] = r.population_by_age_month
        x[j, :, layout.uasc_source] = r.uasc_arrivals_by_age_month
        x[j, 0, first_care] = (r.birth_entry_share * r.population_by_age_month[0]
                               * r.placement_mix[0])
    moving = np.ones(layout.size, dtype=bool)
    moving[[layout.population, layout.uasc_source]] = False
    moving[layout.counter_start:] = False
    band_of_month = np.concatenate([np.full(e - s, b) for b, (_, s, e)
                                    in enumerate(spec.AGE_BANDS)])
    for k in range(1, months):
        step = np.matmul(x[:, k - 1, None, :], matrices[:, band_of_month[k - 1]])[:, 0]
        x[:, k, moving] = step[:, moving]
    return x


def _finish(params: list[ModelParameters], config: Mapping[str, Any]
            ) -> list[ModelParameters]:
    """Referral rates that keep each pool stationary (the equilibrium pool is
    proportional to the referral rate) and the base-year state: each authority's
    equilibrium scaled to its published stock, as for England."""
    from sim.engines import stockflow

    rates = [stockflow.year_rates(p, dict(config), p.base_year) for p in params]
    states = equilibria(rates)
    out = []
    for p, x in zip(params, states, strict=True):
        modelled_pool = x[:, spec.LAYOUT.cin_pool].sum()
        if modelled_pool > 0:
            p = replace(p, referral_rate_per_child_year=(
                p.referral_rate_per_child_year * p.cin_pool_base / modelled_pool))
        p = replace(p, initial_state=stockflow.scale_to_observed(x, p))
        p.check_bounds()
        out.append(p)
    return out


def _estimate(config: Mapping[str, Any], records: Sequence[AreaRecord],
              national: ModelParameters, method: str, data_dir: Path | None,
              trends: str = "national") -> list[ModelParameters]:
    year = national.base_year
    observed = _area_series(year, data_dir)
    everyone = [r for r in registry(data_dir) if r.area.dfe_code in observed]
    for record in records:
        if record.area.dfe_code not in observed:
            raise InputError(
                f"sim/data/areas.csv: {record.area.name} ({record.area.code}) publishes "
                f"its own figures from {record.first_own_year}; base year {year} is "
                f"before that (its predecessors {', '.join(record.predecessors)} cannot "
                "be split without later data)")
    national_obs = _national_series(year, data_dir)
    ordered = [observed[r.area.dfe_code] for r in everyone]
    rates = estimate_area_rates(
        ordered, national_obs, year, national.exit_rate_per_year,
        national.looked_after_base_by_band, config["uasc"]["exit_rate_per_year"], method,
        [r.area.region for r in everyone])
    index = {r.area: k for k, r in enumerate(everyone)}
    return _finish([_one_area(index[r.area], r, observed[r.area.dfe_code], rates, national,
                              config, trends) for r in records], config)


@lru_cache(maxsize=4)
def _area_series(year: int, data_dir: Path | None) -> dict[str, Observed]:
    """Every authority's series to ``year`` (kept for the process: a backtest asks for
    the same year once per method; nothing mutates them)."""
    return area_data.area_observed(registry(data_dir), load_area_observed(year, data_dir))


@lru_cache(maxsize=4)
def _national_series(year: int, data_dir: Path | None) -> Observed:
    return load_observed(year, data_dir)


def _cache_key(config: Mapping[str, Any], areas: Sequence[Area], method: str,
               trends: str = "national") -> str:
    payload = {"format": AREA_CACHE_FORMAT, "national": cache.cache_key(dict(config)),
               "areas": [a.code for a in areas], "method": method, "trends": trends}
    return "areas-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def area_parameters(config: Mapping[str, Any], areas: Sequence[Area], *,
                    method: str = "regional", national: ModelParameters | None = None,
                    data_dir: Path | None = None, trends: str = "national"
                    ) -> list[ModelParameters]:
    """Base-year parameters for each of ``areas`` (in order); :data:`ENGLAND` gets the
    national ``cached_parameters(config)`` itself.

    ``method``: ``regional`` (default: shrunk toward the authority's region, chosen by
    the area backtest, docs/areas.md), ``shrinkage`` (toward England), ``raw`` (no
    pooling) or ``national`` (England's rates, the authority's own levels).
    ``trends``: ``national`` (default: the scenario's slopes for every authority) or
    ``own`` (entry slope = England's + the authority's shrunk relative slope).
    ``national`` and ``data_dir`` let a backtest pass parameters estimated from
    truncated data; only the default path (shipped data, parameters from the cache) is
    cached, keyed by the national cache key (base year, data hashes, estimation keys,
    code), the area codes and the method.
    """
    if method not in METHODS:
        raise InputError(f"area method '{method}' is unknown; valid: {', '.join(METHODS)}")
    if trends not in TREND_OPTIONS:
        raise InputError(f"area trends '{trends}' is unknown; valid: "
                         f"{', '.join(TREND_OPTIONS)}")
    use_cache = national is None and data_dir is None and cache.enabled()
    if national is None:
        national = cache.cached_parameters(dict(config))
    key = _cache_key(config, areas, method, trends) if use_cache else ""
    if use_cache:
        hit = cache.load(key, kind=AreaParameterSet)
        if isinstance(hit, AreaParameterSet) and hit.codes == tuple(a.code for a in areas):
            return list(hit.params)
    local = [a for a in areas if a != ENGLAND]
    records = {r.area: r for r in registry(data_dir)}
    unknown = [a for a in local if a not in records]
    if unknown:
        raise InputError(f"sim/data/areas.csv: unknown area {unknown[0].code} "
                         f"({unknown[0].name})")
    estimated = iter(_estimate(config, [records[a] for a in local], national, method,
                               data_dir, trends)) if local else iter(())
    out = [national if a == ENGLAND else next(estimated) for a in areas]
    if use_cache:
        cache.store(key, AreaParameterSet(tuple(a.code for a in areas), tuple(out)))
    return out
