"""Estimate every model parameter from the shipped data, for a base year.

Nothing here is tuned to an answer: each rate is a published count divided by the
population at risk, combined with named assumptions where the data are silent.  The
estimation re-runs whenever the data or the base year change, and reads only years up
to the base year (through :func:`sim.datasets.load_observed`).

Steps (all for base year Y unless stated):
1. child population by single year of age (ONS shape x DfE/ONS total);
2. CIN pool = CIN at 31 March - looked after; closure = (CIN ended - ceased) / pool;
3. exits: ceased by reason and by age band -> route x band table (iterative proportional
   fitting with adoption only under 10), divided by the duration-weighted stock;
4. duration profile: ceased by duration of the last period of care -> relative hazard by
   time-in-care stage (steady-state solve);
5. re-entry hazards fitted to the evidence (1 in 5 within a year, 30 % within 5 years);
6. entries: starts by age band - UASC starts - modelled re-entries, per pool child;
7. referral rate holding the pool stationary in the base year;
8. trends: log-linear slopes of entry and exit rates over a trailing window.
Steps 3, 6 and 7 depend on the model's own age x duration structure, so they are
iterated a few times with the equilibrium state of the stock-flow engine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize

from sim.datasets import Observed, curated_value, load_observed
from sim.estimation.options import UASC_ARRIVALS_METHODS
from sim.model import spec
from sim.model.parameters import Array, ModelParameters
from sim.model.rates import base_year_config

BANDS = spec.AGE_BAND_NAMES
ROUTES = spec.EXIT_ROUTES

# --- named assumptions (used only where the data for the base year are silent) ------
# UASC starts per UASC in care at 31 March, for years before DfE published UASC starts
# (2019); 2019-2022 published ratios were 0.67-0.95.
ASSUMED_UASC_STARTS_PER_STOCK = 0.75
# Share of UASC aged under 16, before DfE published UASC by age (2019: 15 %).
ASSUMED_UASC_UNDER_16_SHARE = 0.15
# Share of ceased aged 16+ who left on or after their 18th birthday, before DfE
# published single ages of ceasing (2016: 0.70).
ASSUMED_AT_18_SHARE_OF_16_PLUS = 0.70
# CIN pool per child and closure rate before the CIN census series starts (2013).
ASSUMED_CIN_POOL_PER_CHILD = 0.026
ASSUMED_CIN_CLOSURE_RATE = 0.95
# Kinship share of foster placements before DfE published it nationally (2019).
ASSUMED_KINSHIP_SHARE_OF_FOSTER = 0.19
# Bands in which adoption happens (DfE: mean age at adoption about 3 years).
ADOPTION_BANDS = ("under_1", "1_to_4", "5_to_9")
FIXED_POINT_ITERATIONS = 4


def _first(obs: Observed, year: int, *measures: str) -> float | None:
    for measure in measures:
        value = obs.get(measure, year)
        if value is not None:
            return value
    return None


def population_total(obs: Observed, year: int) -> float:
    """ONS mid-year 0-17 total; linear interpolation for unpublished years in between."""
    measure = "population_0_17_ons_mid_year"
    value = obs.get(measure, year)
    if value is not None:
        return value
    years = obs.years(measure)
    before = [y for y in years if y < year]
    after = [y for y in years if y > year]
    if before and after:
        y0, y1 = before[-1], after[0]
        v0, v1 = obs.require(measure, y0), obs.require(measure, y1)
        return v0 + (v1 - v0) * (year - y0) / (y1 - y0)
    if before:
        return obs.require(measure, before[-1])
    raise ValueError(f"no child population published at or before {year}")


def uasc_started(obs: Observed, year: int) -> float:
    value = obs.get("started_during_year__uasc__uasc", year)
    if value is not None:
        return value
    return ASSUMED_UASC_STARTS_PER_STOCK * obs.require("uasc_31_march", year)


# UASC arrivals in projected years (issue 8).  UASC come into care because they arrive
# in England unaccompanied: migration sets the number, not a hazard on a population the
# model follows, so arrivals are an exogenous path chosen by the scenario.  One year is
# a poor guide to it (published starts swung from 2,800 in 2021 to 5,400 in 2022), so
# the default is the mean of the last UASC_MEAN_YEARS years up to the base year.  The
# method names, UASC_ARRIVALS_METHODS, live in sim.estimation.options (the schema reads them).
UASC_MEAN_YEARS = 3


def uasc_arrivals_default(obs: Observed, year: int, method: str) -> tuple[float, str]:
    """UASC arrivals per year held flat in projected years, and where they come from.

    ``mean_last_3``: the mean of UASC starts in the base year and the two years before;
    ``base_year``: the base year's starts alone.  Each year's starts are
    :func:`uasc_started` (published from 2019, before that the named assumption), and
    only years up to the base year are read.
    """
    if method not in UASC_ARRIVALS_METHODS:
        raise ValueError(f"unknown UASC arrivals method {method!r}; "
                         f"valid: {', '.join(UASC_ARRIVALS_METHODS)}")
    first = year - UASC_MEAN_YEARS + 1 if method == "mean_last_3" else year
    years = range(first, year + 1)
    values = [uasc_started(obs, y) for y in years]
    parts = []
    for y, value in zip(years, values, strict=True):
        published = obs.get("started_during_year__uasc__uasc", y) is not None
        parts.append(f"{y}: {value:,.0f}" + ("" if published else
                                             f" = {ASSUMED_UASC_STARTS_PER_STOCK:g} x "
                                             "uasc_31_march, ASSUMPTION"))
    label = (f"mean of UASC starts {first}-{year}" if len(values) > 1
             else f"UASC starts {year}")
    source = (f"{label} ({'; '.join(parts)}; started_during_year__uasc__uasc), held flat "
              f"(uasc.arrivals_method = {method})")
    return float(np.mean(values)), source


def uasc_under_16_share(obs: Observed, year: int) -> float:
    under = obs.get("uasc_31_march__age__under_16", year)
    total = obs.get("uasc_31_march", year)
    if under is not None and total:
        return under / total
    return ASSUMED_UASC_UNDER_16_SHARE


def uasc_by_band(total: float, under_16_share: float) -> Array:
    out = np.zeros(len(BANDS))
    out[BANDS.index("10_to_15")] = total * under_16_share
    out[BANDS.index("16_and_over")] = total * (1 - under_16_share)
    return out


def stock_by_band(obs: Observed, year: int, total: float) -> Array:
    """Published stock by age band scaled to ``total``; where the year's breakdown is
    missing (2018), the latest earlier breakdown's shares are used."""
    for y in range(year, year - 5, -1):
        values = [obs.get(f"looked_after_31_march__age__{b}", y) for b in BANDS]
        if all(v is not None for v in values):
            shares = np.array(values, dtype=float)
            return total * shares / shares.sum()
    raise ValueError(f"no stock by age band published at or before {year}")


@dataclass(frozen=True)
class Measures:
    """Part of a route's count: the first of ``alternatives`` (each a tuple of DfE
    measures summed) that is published for the year; the last one is required unless
    ``optional`` (then missing counts as 0)."""

    alternatives: tuple[tuple[str, ...], ...]
    optional: bool = False

    def value(self, obs: Observed, year: int) -> float:
        for measures in self.alternatives[:-1]:
            values = [obs.get(m, year) for m in measures]
            if all(v is not None for v in values):
                return float(sum(values))  # type: ignore[arg-type]
        last = self.alternatives[-1]
        if self.optional:
            return float(sum(obs.get(m, year) or 0.0 for m in last))
        return float(sum(obs.require(m, year) for m in last))


_CEASED = "ceased_during_year__reason__"
# The estimation mapping: DfE "ceased by reason" measures behind each exit route
# (sim/model/flows.py).  Every hazard route but RESIDUAL_ROUTE is listed; the residual
# is what the others and leaving at 18 leave of the total.  A new route is one entry
# here (and its declaration), e.g. residence orders split out of "sgo_cao".
RESIDUAL_ROUTE = "other"
ROUTE_MEASURES: dict[str, tuple[Measures, ...]] = {
    "returned_home": (Measures(((f"{_CEASED}returned_home",),
                                (f"{_CEASED}returned_home_planned",
                                 f"{_CEASED}returned_home_not_planned"))),),
    "adoption": (Measures(((f"{_CEASED}adopted",), ("adopted_during_year",)),
                          optional=True),),
    "sgo_cao": (Measures(((f"{_CEASED}sgo",), (f"{_CEASED}sgo_former_foster_carers",
                                                f"{_CEASED}sgo_other_carers"))),
                Measures(((f"{_CEASED}residence_or_child_arrangements_order",),),
                         optional=True)),
}
assert set(ROUTE_MEASURES) | {RESIDUAL_ROUTE} == set(spec.EXIT_ROUTES), \
    "every exit route needs DfE measures in ROUTE_MEASURES (or is the residual)"


def ceased_by_route(obs: Observed, year: int) -> dict[str, float]:
    """Ceased in the year by model route (all ages; the residual route is the rest of
    ``total`` after the other routes and ``at_18``), plus ``total`` and those leaving
    at 18 (``at_18``)."""
    counts = {route: sum(part.value(obs, year) for part in parts)
              for route, parts in ROUTE_MEASURES.items()}
    at_18 = obs.get("ceased_during_year__age__18_and_over", year)
    if at_18 is None:
        at_18 = ASSUMED_AT_18_SHARE_OF_16_PLUS * obs.require(
            "ceased_during_year__age__16_and_over", year)
    total = obs.require("ceased_during_year", year)
    return {"total": total, **counts, "at_18": at_18}


def route_counts(ceased: dict[str, float], other_exits: float = 0.0) -> Array:
    """Counts by hazard route in ``spec.EXIT_ROUTES`` order; the residual route is the
    total less leaving at 18, the listed routes and ``other_exits`` (never below 0)."""
    residual = ceased["total"] - ceased["at_18"]
    for route in ROUTE_MEASURES:
        residual -= ceased[route]
    residual = max(residual - other_exits, 0.0)
    return np.array([residual if r == RESIDUAL_ROUTE else ceased[r] for r in ROUTES])


def ceased_under_18_by_band(obs: Observed, year: int, at_18: float) -> Array:
    values = [obs.require(f"ceased_during_year__age__{b}", year) for b in BANDS[:-1]]
    sixteen = obs.get("ceased_during_year__age__16", year)
    seventeen = obs.get("ceased_during_year__age__17", year)
    if sixteen is not None and seventeen is not None:
        values.append(sixteen + seventeen)
    else:
        values.append(max(obs.require("ceased_during_year__age__16_and_over", year)
                          - at_18, 0.0))
    return np.array(values, dtype=float)


def iterative_proportional_fit(row_totals: Array, col_totals: Array, seed: Array,
                               iterations: int = 200) -> Array:
    """Table with the given margins closest (in KL) to ``seed``; zeros stay zero."""
    table = seed.astype(float).copy()
    col_totals = col_totals * row_totals.sum() / col_totals.sum()
    for _ in range(iterations):
        rows = table.sum(axis=1, keepdims=True)
        table *= np.divide(row_totals[:, None], rows, out=np.zeros_like(rows),
                           where=rows > 0)
        cols = table.sum(axis=0, keepdims=True)
        table *= np.divide(col_totals[None, :], cols, out=np.zeros_like(cols),
                           where=cols > 0)
    return table


DURATION_GROUPS: tuple[tuple[str, ...], ...] = (
    ("1_under_2_weeks", "2_from_2_weeks_to_under_8_weeks",
     "3_from_8_weeks_to_under_6_months"),
    ("4_from_6_months_to_under_1_year",),
    ("5_from_1_year_to_under_2_years",),
    ("6_from_2_years_to_under_3_years", "7_from_3_years_to_under_5_years"),
    ("8_from_5_years_to_under_10_years", "9_10_years_and_over"),
)


def stage_multipliers(obs: Observed, year: int, stock: float) -> tuple[Array, str]:
    """Relative exit hazard by time-in-care stage from ceased by duration.

    Steady state (ASSUMPTION): entries = exits = S.  Stage k is entered by
    S - (exits in earlier stages); with mean stage length m_k its stock is
    (entering - exiting) * m_k, and its hazard exits / stock.  The last stage holds
    the rest of the stock.  Returns multipliers normalised to stock-weighted mean 1.
    """
    prefix = "ceased_during_year__duration_of_last_period_of_care__"
    source_year = obs.latest_year_at_or_before(prefix + DURATION_GROUPS[0][0], year)
    if source_year is None:
        return np.ones(len(spec.CARE_STAGES)), (
            "ASSUMPTION: no duration data at or before the base year; multipliers 1")
    exits = np.array([sum(obs.require(prefix + m, source_year) for m in group)
                      for group in DURATION_GROUPS])
    entering = exits.sum()
    stage_stock = np.zeros(len(exits))
    for k, mean in enumerate(spec.CARE_STAGE_MEAN_YEARS[:-1]):
        stage_stock[k] = (entering - exits[k]) * mean
        entering -= exits[k]
    stage_stock[-1] = max(stock - stage_stock[:-1].sum(), exits[-1])
    hazard = exits / stage_stock
    mean_hazard = (hazard * stage_stock).sum() / stage_stock.sum()
    return hazard / mean_hazard, (
        f"{prefix}* ({source_year}); steady-state stage solve (ASSUMPTION)")


def reentry_cdf(rates: Array, times: Array) -> Array:
    """P(re-entered by t) for a child just returned home, with home stages of one year."""
    n = len(spec.HOME_STAGES)
    q = np.zeros((n + 1, n + 1))
    stage_rate = 1.0 / np.array(spec.HOME_STAGE_MEAN_YEARS)
    for j in range(n):
        if j + 1 < n:
            q[j, j + 1] = stage_rate[j]
        q[j, n] = rates[j]
        q[j, j] = -(rates[j] + stage_rate[j])
    return np.array([scipy.linalg.expm(q * t)[0, n] for t in times])


def fit_reentry(within_1_year: float, within_5_years: float) -> Array:
    """Hazard in year 1 and a common hazard in years 2-5 matching both probabilities."""
    n = len(spec.HOME_STAGES)
    if within_1_year <= 0 and within_5_years <= 0:
        return np.zeros(n)

    def expand(log_rates: Array) -> Array:
        return np.concatenate([[np.exp(log_rates[0])], np.full(n - 1, np.exp(log_rates[1]))])

    def residual(log_rates: Array) -> Array:
        cdf = reentry_cdf(expand(log_rates), np.array([1.0, 5.0]))
        return cdf - np.array([within_1_year, within_5_years])

    solution = scipy.optimize.least_squares(residual, x0=np.log([0.2, 0.03]),
                                            bounds=(np.log(1e-6), np.log(10.0)))
    return expand(solution.x)


def placement_mix(obs: Observed, year: int) -> tuple[Array, str]:
    """Entry mix = 31 March stock mix by stream (latest year <= base with placements)."""
    p = "looked_after_31_march__placement__"
    y = obs.latest_year_at_or_before(p + "foster_total", year)
    if y is None:
        raise ValueError(f"no placement breakdown published at or before {year}")
    total = obs.require("looked_after_31_march", y)
    foster_total = obs.require(p + "foster_total", y)
    kin_in = obs.get(p + "foster_relative_or_friend_inside_boundary", y)
    kin_out = obs.get(p + "foster_relative_or_friend_outside_boundary", y)
    if kin_in is not None and kin_out is not None:
        kinship = kin_in + kin_out
        note = ""
    else:
        kinship = ASSUMED_KINSHIP_SHARE_OF_FOSTER * foster_total
        note = "; kinship share ASSUMPTION"
    homes = _first(obs, y, p + "secure_homes_and_childrens_homes",
                   p + "secure_units_childrens_homes_and_hostels_sfr") or 0.0
    residential = (homes + (obs.get(p + "other_residential_settings", y) or 0.0)
                   + (obs.get(p + "residential_schools", y) or 0.0))
    u = "uasc_31_march__placement__"
    uasc_total = obs.get("uasc_31_march", y) or 0.0
    uasc_foster = obs.get(u + "foster_total", y)
    if uasc_foster is not None and uasc_total > 0:
        uasc_res = _first(obs, y, u + "secure_homes_and_childrens_homes",
                          u + "secure_units_and_childrens_homes") or 0.0
        uasc = np.array([uasc_foster, 0.0, uasc_res, uasc_total - uasc_foster - uasc_res])
    else:  # ASSUMPTION: 2019 UASC mix (foster 50 %, other 49 %, residential 1 %)
        uasc = np.array([0.50, 0.0, 0.01, 0.49]) * uasc_total
        note += "; UASC mix ASSUMPTION"
    all_children = np.array([foster_total - kinship, kinship, residential,
                             total - foster_total - residential])
    non_uasc = np.clip(all_children - uasc, 0.0, None)
    mix = np.stack([non_uasc / non_uasc.sum(),
                    uasc / uasc.sum() if uasc.sum() > 0 else np.array([1.0, 0, 0, 0])])
    return mix, f"{p}* and {u}* ({y}){note}"


REPEAT_START_YEARS = 3  # years averaged for the stock-identity gap


def uncounted_starts(obs: Observed, year: int) -> tuple[float, str]:
    """Starts per year DfE's counts leave out, from the stock identity.

    DfE counts a child's first start and last ceasing in the year only, so
    ``stock(t) - stock(t-1)`` exceeds ``started - ceased`` (by 430-760 a year, 2010-2022,
    remarkably stable).  A model whose flows matched the published counts exactly
    would lose that many children a year.  The gap, averaged over the last
    ``REPEAT_START_YEARS`` years up to ``year``, is treated as uncounted repeat starts
    (ASSUMPTION: it cannot be split between repeat starts and repeat ceasings from the
    aggregates; repeat starts after a return home are the common case)."""
    gaps = []
    for y in range(year - REPEAT_START_YEARS + 1, year + 1):
        values = [obs.get("looked_after_31_march", y), obs.get("looked_after_31_march", y - 1),
                  obs.get("started_during_year", y), obs.get("ceased_during_year", y)]
        if all(v is not None for v in values):
            stock, previous, started, ceased = (float(v) for v in values)  # type: ignore[arg-type]
            gaps.append((stock - previous) - (started - ceased))
    if not gaps:
        return 0.0, "ASSUMPTION: no stock identity available; no uncounted starts"
    return max(float(np.mean(gaps)), 0.0), (
        f"stock identity gap, mean of {len(gaps)} years to {year}")


def log_linear_slope(years: list[int], values: list[float]) -> float:
    if len(years) < 2:
        return 0.0
    slope, _ = np.polyfit(np.array(years, float), np.log(np.array(values, float)), 1)
    return float(slope)


def estimate_trends(obs: Observed, year: int, window: int) -> tuple[float, float, str]:
    years = [y for y in range(year - window, year + 1)]
    entry_years, entry_values, exit_years, exit_values = [], [], [], []
    population_years = obs.years("population_0_17_ons_mid_year")
    first_population = population_years[0] if population_years else year
    for y in years:
        started = obs.get("started_during_year", y)
        # Years before the first published child population (2009) have no rate
        # denominator: they are left out of the window rather than extrapolated.
        if (started is not None and obs.get("uasc_31_march", y) is not None
                and y >= first_population):
            entry_years.append(y)
            entry_values.append((started - uasc_started(obs, y)) / population_total(obs, y))
        ceased, previous = obs.get("ceased_during_year", y), obs.get(
            "looked_after_31_march", y - 1)
        if ceased is not None and previous is not None:
            exit_years.append(y)
            exit_values.append(ceased / previous)
    return (log_linear_slope(entry_years, entry_values),
            log_linear_slope(exit_years, exit_values),
            f"{entry_years[0] if entry_years else '-'}-{year}")


def estimate_parameters(config: dict[str, Any], observed: Observed | None = None,
                        data_dir: Path | None = None) -> ModelParameters:
    """All parameters for ``config['run']['base_year']``, scenario values applied."""
    # Imported here: the engine's equilibrium is part of estimation, and the engine
    # imports the model package.
    from sim.engines import stockflow

    config = base_year_config(config)
    year = config["run"]["base_year"]
    obs = observed if observed is not None else load_observed(year, data_dir)
    sources: dict[str, str] = {}

    shape = np.array([obs.single_age_population[a] for a in range(18)])
    population = shape / shape.sum() * population_total(obs, year)

    latest_stock = obs.require("looked_after_31_march", year)
    first_published = curated_value("outturn_to_2022.csv", "(first published)", year,
                                    data_dir)
    use_first = config["initial"]["looked_after_vintage"] == "first_published"
    looked_after = first_published if (use_first and first_published) else latest_stock
    sources["looked_after_base"] = ("outturn_to_2022.csv (first published)"
                                    if looked_after == first_published
                                    else "cla_national_timeseries.csv looked_after_31_march")
    by_band = stock_by_band(obs, year, looked_after)
    under_16 = uasc_under_16_share(obs, year)
    uasc_stock = uasc_by_band(obs.require("uasc_31_march", year), under_16)

    cin = obs.get("cin_31_march", year)
    ceased = ceased_by_route(obs, year)
    if cin is not None:
        pool = cin - latest_stock
        closure = (obs.require("cin_children_ended_during_year", year)
                   - ceased["total"]) / pool
    else:
        pool = ASSUMED_CIN_POOL_PER_CHILD * population.sum()
        closure = ASSUMED_CIN_CLOSURE_RATE
        sources["cin_pool_base"] = sources["cin_closure_rate_per_year"] = (
            "ASSUMPTION: CIN census not published for the base year")

    multipliers, sources["stage_exit_multiplier"] = stage_multipliers(obs, year,
                                                                      latest_stock)
    reentry_settings = config["reentry"]
    reentry = fit_reentry(reentry_settings["within_1_year"],
                          reentry_settings["within_5_years"])
    mix, sources["placement_mix"] = placement_mix(obs, year)

    arrivals = config["uasc"]["arrivals_per_year"]
    if arrivals == "estimate":
        arrivals, sources["uasc_arrivals_per_year"] = uasc_arrivals_default(
            obs, year, config["uasc"]["arrivals_method"])
    else:
        sources["uasc_arrivals_per_year"] = "scenario uasc.arrivals_per_year"
    age_share = np.zeros(18)
    age_share[[14, 15]] = under_16 / 2
    age_share[[16, 17]] = (1 - under_16) / 2

    entry_trend, exit_trend, window = estimate_trends(obs, year,
                                                      config["trends"]["window_years"])
    sources["entry_trend_per_year"] = sources["exit_trend_per_year"] = (
        f"log-linear slope over {window}")
    if config["trends"]["entry_trend_per_year"] != "estimate":
        entry_trend = config["trends"]["entry_trend_per_year"]
        sources["entry_trend_per_year"] = "scenario trends.entry_trend_per_year"
    if config["trends"]["exit_trend_per_year"] != "estimate":
        exit_trend = config["trends"]["exit_trend_per_year"]
        sources["exit_trend_per_year"] = "scenario trends.exit_trend_per_year"

    # Targets for the base year's flows.
    uasc_exit_rate = config["uasc"]["exit_rate_per_year"]
    uasc_under_18_exits = uasc_exit_rate * uasc_stock.sum()
    route_totals = route_counts(ceased, uasc_under_18_exits)
    band_totals = ceased_under_18_by_band(obs, year, ceased["at_18"])
    band_totals = np.clip(band_totals - uasc_exit_rate * uasc_stock, 0.0, None)
    seed = np.ones((len(ROUTES), len(BANDS)))
    seed[ROUTES.index("adoption"), [BANDS.index(b) for b in BANDS
                                    if b not in ADOPTION_BANDS]] = 0.0
    exits_route_band = iterative_proportional_fit(route_totals, band_totals, seed)
    starts_by_band = np.array([obs.require(f"started_during_year__age__{b}", year)
                               for b in BANDS])
    starts_non_uasc = np.clip(
        starts_by_band - uasc_by_band(uasc_started(obs, year), under_16), 0.0, None)
    # Every start the model makes, including the repeat starts DfE does not count
    # (non-UASC: UASC arrivals are first starts by definition).
    repeat, sources["repeat_start_share"] = uncounted_starts(obs, year)
    published_non_uasc = float(starts_non_uasc.sum())
    repeat_share = (repeat / (published_non_uasc + repeat) if published_non_uasc > 0
                    else 0.0)
    starts_non_uasc = starts_non_uasc / (1.0 - repeat_share)

    non_uasc_stock = by_band - uasc_stock
    params = ModelParameters(
        base_year=year,
        population_by_age=population,
        births_per_year=(population[0] if config["population"]["births_per_year"]
                         == "estimate" else config["population"]["births_per_year"]),
        referral_rate_per_child_year=(closure * pool + starts_non_uasc.sum()) / population.sum(),
        cin_closure_rate_per_year=closure,
        cin_pool_base=pool,
        entry_rate_per_year=starts_non_uasc / (pool * _band_shares(population)),
        birth_entry_share=0.0,
        exit_rate_per_year=exits_route_band / non_uasc_stock[None, :],
        stage_exit_multiplier=multipliers,
        reentry_rate_per_year=reentry,
        placement_mix=mix,
        uasc_arrivals_per_year=arrivals,
        uasc_arrivals_base_year=uasc_started(obs, year),
        uasc_age_share=age_share,
        uasc_exit_rate_per_year=uasc_exit_rate,
        entry_trend_per_year=entry_trend,
        exit_trend_per_year=exit_trend,
        trend_until_year=config["trends"]["continue_until"],
        looked_after_base=looked_after,
        looked_after_base_by_band=by_band,
        uasc_base_by_band=uasc_stock,
        sources=sources,
        turned_18_base=ceased["at_18"],
        repeat_start_share=repeat_share,
    )
    # Entries at birth: the share of births entering care at birth is the one value
    # for which the model's equilibrium under-1 stock, given the published under-1
    # starts, equals the published under-1 stock.  Found by root-finding; each trial runs the fixed
    # point below.
    births = population[0]
    largest_share = 0.98 * starts_non_uasc[0] / births

    def mismatch(share: float) -> float:
        return _fit_structure(params, config, share, exits_route_band, starts_non_uasc,
                              pool)[1]

    low, high = mismatch(0.0), mismatch(largest_share)
    if low * high < 0:
        share = float(scipy.optimize.brentq(mismatch, 0.0, largest_share,
                                            xtol=1e-7, rtol=1e-6))
    else:  # no exact match: the end that comes closest
        share = 0.0 if abs(low) <= abs(high) else largest_share
    params = _fit_structure(params, config, share, exits_route_band, starts_non_uasc,
                            pool)[0]
    rates = stockflow.year_rates(params, config, year)
    params = replace(params, initial_state=stockflow.scale_to_observed(
        stockflow.equilibrium_state(rates), params))
    params.check_bounds()
    return params


def _fit_structure(params: ModelParameters, config: dict[str, Any], birth_share: float,
                   exits_route_band: Array, starts_non_uasc: Array,
                   pool: float) -> tuple[ModelParameters, float]:
    """Fixed point for a given share of births entering care at birth.

    Hazards are per duration-weighted stock, entries are net of modelled re-entries
    and entries at birth, and the referral rate makes the equilibrium pool equal the
    published one: all three depend on the model's own age x stage structure, so they
    are iterated with the engine's equilibrium state.  Returns the parameters and the
    log mismatch between the under-1 band's scaling factor and the all-ages factor
    (zero when the model's infant share of the stock is right).
    """
    from sim.engines import stockflow

    params = replace(params, birth_entry_share=birth_share)
    at_birth = np.zeros(len(BANDS))
    at_birth[0] = birth_share * params.population_by_age[0]
    targets = params.looked_after_base_by_band - params.uasc_base_by_band
    equilibrium_stock = targets
    for _ in range(FIXED_POINT_ITERATIONS):
        rates = stockflow.year_rates(params, config, params.base_year)
        x = stockflow.equilibrium_state(rates)
        equilibrium_stock = stockflow.care_stock(x)[:, 0].sum(axis=(1, 2))
        # The equilibrium pool is proportional to the referral rate.
        referral = (params.referral_rate_per_child_year * pool
                    / x[:, spec.LAYOUT.cin_pool].sum())
        x = stockflow.scale_to_observed(x, params)
        stock = stockflow.care_stock(x)[:, 0]  # (bands, placements, stages), non-UASC
        weighted = (stock.sum(axis=1) * params.stage_exit_multiplier[None, :]).sum(axis=1)
        flows = stockflow.instantaneous_flows(x, rates).counters_by_band
        reentries = flows[:, spec.COUNTERS.index("reentered")]
        pool_by_band = stockflow.band_sums(x)[:, spec.LAYOUT.cin_pool]
        from_pool = np.clip(starts_non_uasc - reentries - at_birth, 0.0, None)
        params = replace(params,
                         exit_rate_per_year=exits_route_band / weighted[None, :],
                         entry_rate_per_year=from_pool / pool_by_band,
                         referral_rate_per_child_year=referral)
    # Infants turn over within months, so their stock is at equilibrium with the
    # base year's flows: match it absolutely (older bands relax over years).
    mismatch = np.log(targets[0] / equilibrium_stock[0])
    return params, float(mismatch)


def _band_shares(population: Array) -> Array:
    per_month = np.repeat(population / 12, 12)
    sums = np.add.reduceat(per_month, [s for _, s, _ in spec.AGE_BANDS])
    return sums / sums.sum()
