"""Turn parameters + scenario + year into the hazards both engines use for that year.

This is the single place where trends, scenario multipliers and funding-lever effects
are applied, so the stock-flow and discrete-event engines cannot drift apart: each
engine asks :func:`year_rates` and never computes a rate itself.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.model import flows, spec
from sim.model.levers import LeverEffects, ResolvedLever, lever_effects, resolve_levers
from sim.model.parameters import Array, ModelParameters


@dataclass(frozen=True)
class YearRates:
    """Hazards (per year) and exogenous inputs for one projection year."""

    year: int
    population_by_age_month: Array  # (216,) children in each one-month age cohort
    uasc_arrivals_by_age_month: Array  # (216,) arrivals per year into each cohort
    referral_rate: float  # pool entries per child in the population per year
    cin_closure_rate: float
    entry_rate: Array  # (bands,) per pool child per year
    birth_entry_share: float  # share of each newborn cohort entering care at birth
    exit_rate: Array  # (streams, bands, stages, routes)
    stage_progress_rate: Array  # (stages,) 1 / mean stage length; 0 for the last
    home_stage_rate: Array  # (home stages,)
    reentry_rate: Array  # (home stages,)
    placement_mix: Array  # (streams, placements) entry mix
    effects: LeverEffects
    repeat_start_share: float = 0.0  # share of non-UASC starts DfE's count leaves out


def dfe_basis_starts(every_start_by_band: Array, uasc_by_band: Array,
                     repeat_start_share: float) -> Array:
    """Starts on DfE's basis (a child's first start in the year) from every start the
    model makes: the repeat starts DfE does not count are a share of the non-UASC
    starts (UASC arrivals are first starts by definition).  Both engines report
    ``started`` through this one rule."""
    return every_start_by_band - repeat_start_share * (every_start_by_band - uasc_by_band)


def population_in_year(params: ModelParameters, year: int) -> Array:
    """Children by single year of age 0-17: the base year aged forward year by year,
    with ``births_per_year`` entering age 0 (ASSUMPTION: no mortality or migration
    under 18, which ONS estimates put well under 1 % a year)."""
    population = params.population_by_age.copy()
    for _ in range(max(0, year - params.base_year)):
        population = np.concatenate([[params.births_per_year], population[:-1]])
    return population


def _per_month(by_year_of_age: Array) -> Array:
    return np.repeat(by_year_of_age / spec.MONTHS_PER_YEAR, spec.MONTHS_PER_YEAR)


def effective_years(years: float, trends: dict[str, Any], hazard: str = "entry") -> float:
    """How many years of a slope have accumulated ``years`` after the base year, under
    the scenario's trend treatment (``[trends] method``):

    * ``linear``: all of them (the slope compounds for ever, the old behaviour);
    * ``damped``: ``phi + phi**2 + ... + phi**years`` (Gardner-McKenzie damped trend:
      the slope fades geometrically; phi = 1 is linear, phi = 0 is hold), with
      ``phi = entry_damping`` for entry hazards and ``exit_damping`` for exits (the
      backtests show exit-route declines persisted longer than entry trends did);
    * ``hold``: none (rates stay at the base year's level);
    * ``stop_after``: ``min(years, stop_after_years)``.

    Why damped by default: rolling-origin backtests (``cicsim backtest``) show that
    carrying a decade-old slope forward for ten years loses to damped and flat
    treatments out of sample (README, outputs/backtest/skill.md).
    """
    if years <= 0:
        return 0.0
    method = trends.get("method", "linear")
    if method == "linear":
        return float(years)
    if method == "hold":
        return 0.0
    if method == "stop_after":
        return float(min(years, trends.get("stop_after_years", 1)))
    phi = float(trends.get(f"{hazard}_damping", 1.0))
    if phi >= 1.0:
        return float(years)
    return phi * (1.0 - phi ** years) / (1.0 - phi)


def _years_since_base(params: ModelParameters, year: int) -> int:
    return max(0, min(year, params.trend_until_year) - params.base_year)


def trend_log_factor(trend_per_year: float, params: ModelParameters, year: int,
                     trends: dict[str, Any] | None = None,
                     change_per_year: float = 0.0, change_year: int | None = None,
                     hazard: str = "entry") -> float:
    """Log multiplier of a hazard's trend in ``year``: the slope times its effective
    years, plus a change in slope after ``change_year`` (piecewise-linear trends, used
    by the calibration's history run) on the same effective time scale."""
    trends = trends or {}
    total = effective_years(_years_since_base(params, year), trends, hazard)
    log_factor = trend_per_year * total
    if change_per_year and change_year is not None:
        before = _years_before_change(params, change_year, trends, hazard)
        log_factor += change_per_year * max(0.0, total - before)
    return log_factor


def _years_before_change(params: ModelParameters, change_year: int,
                         trends: dict[str, Any], hazard: str) -> float:
    """Effective years of the slope accumulated when it changes (``change_year``)."""
    return effective_years(max(0, min(change_year, params.trend_until_year)
                               - params.base_year), trends, hazard)


def _trend_bounds(trends: dict[str, Any]) -> tuple[float, float]:
    """The log floor and ceiling of a trend factor (``[trends] floor``, ``ceiling``)."""
    return (np.log(max(float(trends.get("floor", 0.0)), 1e-300)),
            np.log(float(trends.get("ceiling", np.inf))))


def bounded(log_factor: Array | float, trends: dict[str, Any]) -> Array:
    """exp(log_factor) kept within [floor, ceiling] of the base year's hazard: no
    trend may take a hazard further than the scenario allows (``[trends] floor`` and
    ``ceiling``, ratios to the base-year value)."""
    low, high = _trend_bounds(trends)
    return np.exp(np.clip(log_factor, low, high))


# [trends] keys of the route-specific exit trends, in spec.EXIT_ROUTES order (declared
# with each route in sim/model/flows.py).
_HAZARD_ROUTES = tuple(r for r in flows.EXIT_ROUTE_DECLS if r.hazard)
ROUTE_TREND_KEYS: tuple[str, ...] = tuple(r.trend_key for r in _HAZARD_ROUTES)


# Every [rates] multiplier key (the schema declares their ranges): the CIN and entry
# hazards, one per exit route (declared with the route in sim/model/flows.py), re-entry.
MULTIPLIER_KEYS: tuple[str, ...] = ("entry_multiplier", "referral_multiplier",
                                    "cin_closure_multiplier",
                                    *(r.multiplier_key for r in _HAZARD_ROUTES),
                                    "reentry_multiplier")
NEUTRAL_MULTIPLIERS: dict[str, float] = {key: 1.0 for key in MULTIPLIER_KEYS}


def multipliers_in(config: dict[str, Any], params: ModelParameters,
                   year: int) -> dict[str, float]:
    """The scenario's ``[rates]`` multipliers in ``year``: from the first projection
    year on, and neutral in and before the base year, like the levers
    (:func:`sim.model.levers.lever_effects`).

    Why: the base year is history.  Its rates are fitted to the published data and its
    record is the data's year; a scenario's multipliers are a change *from* it.  Applied
    to the base year, ``entry_multiplier = 0`` or ``10`` made the fit impossible, and a
    reunification multiplier changed the base-year starts it had itself been fitted to
    (issue 13: "starts avoided" in 2022)."""
    return config["rates"] if year > params.base_year else NEUTRAL_MULTIPLIERS


def base_year_config(config: dict[str, Any]) -> Any:
    """``config`` as the estimation sees it: ``[rates]`` multipliers 1 and no levers.

    Why: the base year is fitted to the data alone; a scenario's multipliers and levers
    act from the first projection year (:func:`multipliers_in`,
    :func:`sim.model.levers.lever_effects`), so no scenario can move the base-year
    estimate, and every scenario shares its baseline's (and its cache entry).  A
    read-through overlay, not a copy: the scenario's other keys are read where they
    are, as before."""
    return ChainMap({"rates": dict(NEUTRAL_MULTIPLIERS), "levers": {}}, config)


def year_rates(params: ModelParameters, config: dict[str, Any], year: int) -> YearRates:
    multipliers = multipliers_in(config, params, year)
    effects = lever_effects(config, params, year)

    trends = config["trends"]
    change_year = trends["trend_change_year"]
    entry_log = (trend_log_factor(params.entry_trend_per_year, params, year, trends,
                                  trends["entry_trend_change_per_year"], change_year)
                 + np.array([trend_log_factor(slope, params, year, trends)
                             for slope in (trends[k] for k in spec.ENTRY_BAND_TREND_KEYS)]))
    entry_trend = bounded(entry_log, trends)  # (bands,)
    entry_scale = multipliers["entry_multiplier"] * effects.entry_multiplier
    entry = params.entry_rate_per_year * entry_trend * entry_scale

    exit_log = trend_log_factor(params.exit_trend_per_year, params, year, trends,
                                trends["exit_trend_change_per_year"], change_year, "exit")
    route_trend = bounded(exit_log + np.array([
        trend_log_factor(trends[key], params, year, trends, hazard="exit")
        for key in ROUTE_TREND_KEYS]), trends)
    route_multiplier = np.array([
        multipliers[r.multiplier_key] * (getattr(effects, r.lever) if r.lever else 1.0)
        for r in _HAZARD_ROUTES]) * route_trend
    n_streams, n_bands = len(spec.STREAMS), len(spec.AGE_BANDS)
    n_stages, n_routes = len(spec.CARE_STAGES), len(spec.EXIT_ROUTES)
    exit_rate = np.zeros((n_streams, n_bands, n_stages, n_routes))
    # non-UASC: route x band hazard x duration profile x trend x multipliers
    exit_rate[0] = (params.exit_rate_per_year.T[:, None, :]
                    * params.stage_exit_multiplier[None, :, None]
                    * route_multiplier[None, None, :])
    # UASC: one hazard per route that declares one (most leave at 18, by ageing)
    for r, route in enumerate(_HAZARD_ROUTES):
        if route.uasc_rate is not None:
            exit_rate[1, :, :, r] = getattr(params, route.uasc_rate)

    stage_progress, home_rate = _STAGE_PROGRESS, _HOME_STAGE_RATE
    reentry = (params.reentry_rate_per_year * multipliers["reentry_multiplier"]
               * effects.reentry_multiplier)

    mix = params.placement_mix.copy()
    if effects.placement_shift is not None:
        mix[0] = effects.placement_shift(mix[0])

    # The base year is history (its flows are reported, its rates shape the initial
    # state): its own UASC starts, whatever path the scenario sets for later years.
    path = (params.uasc_arrivals_base_year if year == params.base_year
            else params.uasc_arrivals_per_year)
    arrivals = config["uasc"]["arrivals_by_year"].get(str(year), path)
    uasc = arrivals * params.uasc_age_share
    return YearRates(
        year=year,
        population_by_age_month=_per_month(population_in_year(params, year)),
        uasc_arrivals_by_age_month=_per_month(uasc),
        referral_rate=params.referral_rate_per_child_year * multipliers["referral_multiplier"],
        cin_closure_rate=(params.cin_closure_rate_per_year
                          * multipliers["cin_closure_multiplier"]),
        entry_rate=entry,
        birth_entry_share=min(params.birth_entry_share * entry_trend[0] * entry_scale,
                              1.0),
        exit_rate=exit_rate,
        stage_progress_rate=stage_progress,
        home_stage_rate=home_rate,
        reentry_rate=reentry,
        placement_mix=mix,
        effects=effects,
        repeat_start_share=params.repeat_start_share,
    )


def year_rates_stack(params: ModelParameters, config: dict[str, Any],
                     years: list[int]) -> dict[str, Array]:
    """What :func:`year_rates` gives for each of ``years``, stacked on a leading years
    axis: :func:`year_rates_batch` for one run."""
    return {k: v[0] for k, v in year_rates_batch([params], [config], years).items()}


# stage progression and home-stage rates (per year): fixed by the declarations
_STAGE_PROGRESS = np.array([0.0 if np.isinf(m) else 1.0 / m for m in spec.CARE_STAGE_MEAN_YEARS])
_HOME_STAGE_RATE = 1.0 / np.array(spec.HOME_STAGE_MEAN_YEARS)


def _stacked(params_seq: Sequence[ModelParameters], name: str) -> Array:
    """One parameter of every run stacked on a leading runs axis; a leading axis of one
    (which broadcasts) when every run shares one parameter set, as a batch of draws
    does."""
    first = params_seq[0]
    if all(p is first for p in params_seq):
        return np.asarray(getattr(first, name), dtype=float)[None]
    return np.stack([np.asarray(getattr(p, name), dtype=float) for p in params_seq])


def year_rates_batch(params_seq: Sequence[ModelParameters],
                     configs: Sequence[dict[str, Any]], years: list[int],
                     levers_seq: Sequence[dict[str, ResolvedLever]] | None = None
                     ) -> dict[str, Array]:
    """What :func:`year_rates` gives for each run (one parameter set and config each)
    and each of ``years``, stacked (runs, years, ...): the generator fields
    (``sim.engines.flow_compiler.RATE_FIELDS``), ``sources`` (runs, years, 216, 2:
    population and UASC arrivals by month of age), ``family_help_served`` and
    ``programme_cost_gbp`` (runs, years).  ``levers_seq``: each config's
    :func:`resolve_levers`, if already done.

    Why: the batched engine needs every year of every run, and :func:`year_rates` is
    mostly per-call Python (22 scalar trend factors a year).  Here what is genuinely
    per run (levers, multipliers, effective trend years, the scenario's scalars) is
    gathered in Python once per run and year, and every hazard is one array expression
    over (runs, years), with the same floating-point operations in the same order, so
    the values equal :func:`year_rates`'s exactly (tests/verification/test_fast_paths.py);
    a batch of 1,000 draws built its rates 4x faster than run by run."""
    n_runs, n_years = len(configs), len(years)
    if levers_seq is None:
        levers_seq = [resolve_levers(c, where=f"scenario '{c.get('name', '?')}'")
                      for c in configs]
    effects = [[lever_effects(c, p, y, lv) for y in years]
               for p, c, lv in zip(params_seq, configs, levers_seq, strict=True)]
    by_year = [[multipliers_in(c, p, y) for y in years]
               for p, c in zip(params_seq, configs, strict=True)]

    def multiplier(key: str) -> Array:
        return np.array([[m[key] for m in run] for run in by_year])

    def per_run(values: list[Any]) -> Array:  # (runs, 1): broadcasts against years
        return np.array(values, dtype=float)[:, None]

    trends = [c["trends"] for c in configs]
    since = [[_years_since_base(p, y) for y in years] for p in params_seq]
    totals = {hazard: np.array([[effective_years(s, t, hazard) for s in run]
                                for run, t in zip(since, trends, strict=True)])
              for hazard in ("entry", "exit")}

    def log_factor(slope: Array, hazard: str, change: list[float]) -> Array:
        total = totals[hazard]
        out = slope * total
        befores = [(_years_before_change(p, t["trend_change_year"], t, hazard)
                    if ch and t["trend_change_year"] is not None else None)
                   for p, t, ch in zip(params_seq, trends, change, strict=True)]
        if any(b is not None for b in befores):
            rows = [r for r, b in enumerate(befores) if b is not None]
            before = np.array([befores[r] for r in rows])[:, None]
            out = out.copy()
            out[rows] = out[rows] + per_run([change[r] for r in rows]) * np.maximum(
                0.0, total[rows] - before)
        return out

    def bounded_by_run(log: Array) -> Array:  # bounded() with each run's floor, ceiling
        shape = (n_runs,) + (1,) * (log.ndim - 1)
        low, high = (np.array(b) for b in zip(*map(_trend_bounds, trends), strict=True))
        return np.exp(np.clip(log, low.reshape(shape), high.reshape(shape)))

    band_slopes = np.array([[t[k] for k in spec.ENTRY_BAND_TREND_KEYS] for t in trends])
    entry_total = totals["entry"]
    entry_log = (log_factor(per_run([p.entry_trend_per_year for p in params_seq]), "entry",
                            [t["entry_trend_change_per_year"] for t in trends])[..., None]
                 + band_slopes[:, None, :] * entry_total[..., None])
    entry_trend = bounded_by_run(entry_log)  # (runs, years, bands)
    entry_scale = np.array([[m["entry_multiplier"] * e.entry_multiplier
                             for m, e in zip(ms, es, strict=True)]
                            for ms, es in zip(by_year, effects, strict=True)])
    entry = (_stacked(params_seq, "entry_rate_per_year")[:, None] * entry_trend
             * entry_scale[..., None])

    exit_total = totals["exit"]
    exit_log = log_factor(per_run([p.exit_trend_per_year for p in params_seq]), "exit",
                          [t["exit_trend_change_per_year"] for t in trends])
    route_slopes = np.array([[t[key] for key in ROUTE_TREND_KEYS] for t in trends])
    route_trend = bounded_by_run(exit_log[..., None]
                                 + route_slopes[:, None, :] * exit_total[..., None])
    route_multiplier = np.array([[[
        m[r.multiplier_key] * (getattr(e, r.lever) if r.lever else 1.0)
        for r in _HAZARD_ROUTES] for m, e in zip(ms, es, strict=True)]
        for ms, es in zip(by_year, effects, strict=True)]) * route_trend
    n_streams = len(spec.STREAMS)
    exit_rate = np.zeros((n_runs, n_years, n_streams, len(spec.AGE_BANDS),
                          len(spec.CARE_STAGES), len(spec.EXIT_ROUTES)))
    profile = (np.swapaxes(_stacked(params_seq, "exit_rate_per_year"), -1, -2)[:, :, None, :]
               * _stacked(params_seq, "stage_exit_multiplier")[:, None, :, None])
    exit_rate[:, :, 0] = profile[:, None] * route_multiplier[:, :, None, None, :]
    for r, route in enumerate(_HAZARD_ROUTES):
        if route.uasc_rate is not None:
            exit_rate[:, :, 1, :, :, r] = per_run([getattr(p, route.uasc_rate)
                                                   for p in params_seq])[..., None, None]

    stage_progress, home_rate = _STAGE_PROGRESS, _HOME_STAGE_RATE
    reentry = ((_stacked(params_seq, "reentry_rate_per_year")[:, None]
                * multiplier("reentry_multiplier")[..., None])
               * np.array([[e.reentry_multiplier for e in es] for es in effects])[..., None])
    mixes = np.empty((n_runs, n_years, *params_seq[0].placement_mix.shape))
    for r, (p, es) in enumerate(zip(params_seq, effects, strict=True)):
        mixes[r] = p.placement_mix
        for i, e in enumerate(es):
            if e.placement_shift is not None:
                mixes[r, i, 0] = e.placement_shift(p.placement_mix[0].copy())
    arrivals = np.array([[c["uasc"]["arrivals_by_year"].get(
        str(y), p.uasc_arrivals_base_year if y == p.base_year
        else p.uasc_arrivals_per_year) for y in years]
        for p, c in zip(params_seq, configs, strict=True)], dtype=float)
    uasc = arrivals[..., None] * _stacked(params_seq, "uasc_age_share")[:, None]
    n_ages = len(params_seq[0].population_by_age)
    # the base year's population aged forward: year offset k has k years of births
    # below the base year's ages (population_in_year, as one gather)
    offset = np.array([[min(max(0, y - p.base_year), n_ages) for y in years]
                       for p in params_seq])
    ages = np.arange(n_ages)
    pick = np.where(ages < offset[..., None], 0, 1 + ages - offset[..., None])
    births = per_run([p.births_per_year for p in params_seq])
    ladder = np.concatenate([births, np.broadcast_to(
        _stacked(params_seq, "population_by_age"), (n_runs, n_ages))], axis=1)
    population = np.take_along_axis(ladder, pick.reshape(n_runs, -1), axis=1)
    population = population.reshape(n_runs, n_years, n_ages)
    months = spec.MONTHS_PER_YEAR
    sources = np.empty((n_runs, n_years, n_ages, months, 2))  # by month of age
    sources[..., 0] = (population / months)[..., None]
    sources[..., 1] = (uasc / months)[..., None]
    sources = sources.reshape(n_runs, n_years, n_ages * months, 2)
    return {
        "referral_rate": (per_run([p.referral_rate_per_child_year for p in params_seq])
                          * multiplier("referral_multiplier")),
        "cin_closure_rate": (per_run([p.cin_closure_rate_per_year for p in params_seq])
                             * multiplier("cin_closure_multiplier")),
        "entry_rate": entry,
        "birth_entry_share": np.minimum(per_run([p.birth_entry_share for p in params_seq])
                                        * entry_trend[..., 0] * entry_scale, 1.0),
        "exit_rate": exit_rate,
        "stage_progress_rate": np.broadcast_to(stage_progress,
                                               (n_runs, n_years, len(stage_progress))),
        "home_stage_rate": np.broadcast_to(home_rate, (n_runs, n_years, len(home_rate))),
        "reentry_rate": reentry,
        "placement_mix": mixes,
        "sources": sources,
        "family_help_served": np.array([[float(e.family_help_served) for e in es]
                                        for es in effects]),
        "programme_cost_gbp": np.array([[float(e.programme_cost_gbp) for e in es]
                                        for es in effects]),
    }
