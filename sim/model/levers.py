"""Funding levers: money -> capacity -> coverage -> effect on a hazard.

This module is the hook the rate builder (:mod:`sim.model.rates`) calls every year.
With no levers configured (or zero money) every effect is exactly neutral
(multiplier 1.0, no placement shift), so a scenario with zero funding reproduces the
baseline bit for bit.

Every lever is the same chain (DESIGN §3), each step a named parameter with a source or
an ASSUMPTION tag and a plausible range (:data:`LEVER_PARAMETERS`, used by
``cicsim sensitivity``):

1. **money** ``funding_gbp_m``: £m by year ending 31 March ("2024" = 2023-24), moved
   ``delay_years`` later as a whole (``review-delayed`` = ``review-full`` + 2 years).
   The programme starts in the first year with money.
2. **capacity** = money / ``unit_cost_gbp`` (children served, or foster places added).
3. **coverage** = capacity / eligible pool in the funded areas, capped at 1, times
   ``area_share`` (the share of England's children living in the funded areas: 1 for a
   national programme, about 12/152 for the Families First pathfinders).  The eligible
   pool is a base-year figure from ``params`` (the CIN pool, the children in care, the
   children in residential care), not the live state: simpler, identical for both
   engines, and the pools move by under 5 % to 2032 in the baseline.
4. **effect**: a relative change in one hazard, reached ``lag_years`` after the money
   (fractional lags interpolate between years) and ramping up linearly over
   ``ramp_up_years`` from the programme start (new services take time to work well).

Levers and the hazard each moves (details in ``docs/levers.md``):

- ``family_help``: entry to care from the CIN pool.  Multiplier
  ``1 - effect * maturity * min(coverage_in_area * risk_ratio, 1) * area_share``.
- ``reunification_support``: the returned-home hazard (x ``1 + effect * coverage``)
  and re-entry after going home (x ``1 - reentry_effect * share of returns supported``).
- ``kinship_support``: SGO / child-arrangements exits (x ``1 + effect * coverage``) and
  the share of non-kin foster entries placed with kin (``placement_effect * coverage``).
- ``foster_recruitment``: added foster places (kept with ``retention_per_year``), a
  share ``effect`` of which take a child who would otherwise enter residential care:
  moves entries from residential to foster (placement mix -> cost; numbers in care
  unchanged).
- ``other_programmes``: money with no modelled effect (workforce, care leavers,
  family finding...), counted in programme costs only, so totals like the review's
  £2.6bn are complete.

Money is programme spending in the year it is spent (unlagged), in the scenario's
pounds; :mod:`sim.model.costs` treats it as 2021-22 prices (ASSUMPTION).

**Persistence** (service levers: family help, reunification and kinship support).  By
default a lever's service stops with its money.  ``sustain`` keeps it going after the
last year with programme money (the *end year*, after ``delay_years``, so a delay moves
the sustained service too):

- ``"fixed"``: the service continues at ``sustained_share`` of its end-year capacity,
  paid for at its unit cost (counted as programme cost every year);
- ``"reinvest_savings"``: the same ceiling, but funded only from what the scenario
  saves: money in year t = min(ceiling, share of the savings made in year
  t - ``reinvest_lag_years``), savings = baseline minus scenario cost (placements, CIN
  work, other spend; programme money excluded) from :mod:`sim.model.costs`, the
  baseline being the same scenario without levers.  The funding path is found by
  :mod:`sim.reinvestment` (fixed point over whole stock-flow runs; exact because of
  the lag) and handed to this module in the run's configuration;
- ``decay_per_year``: the effect of help already given fades by this share a year
  instead of stopping at once: a lever's reach (maturity x share of the pool affected)
  in year t is at least last year's reach x (1 - decay).  1 (the default) = today's
  behaviour, the effect lasts only while help is given.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from sim.errors import InputError
from sim.model import spec
from sim.model.lever_parameters import (
    AT_MOST_ONE,
    ESTIMATE,
    LEVER_PARAMETERS,
    LEVER_SPECIFIC_KEYS,
    REINVESTED_KEY,
)

if TYPE_CHECKING:
    from sim.model.parameters import ModelParameters


@dataclass(frozen=True)
class PlacementShift:
    """Move shares of the non-UASC entry mix between placements (order-free: each move
    takes a share of the *original* mix).  Picklable, unlike a closure, so an engine
    can ship ``YearRates`` to worker processes."""

    foster_to_kinship: float = 0.0  # share of non-kin foster entries placed with kin
    residential_to_foster: float = 0.0  # share of residential entries fostered instead

    def __call__(self, mix: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.array(mix, dtype=float, copy=True)
        foster = spec.PLACEMENTS.index("foster")
        kinship = spec.PLACEMENTS.index("kinship_foster")
        residential = spec.PLACEMENTS.index("residential")
        to_kin = mix[foster] * self.foster_to_kinship
        to_foster = mix[residential] * self.residential_to_foster
        out[foster] += to_foster - to_kin
        out[kinship] += to_kin
        out[residential] -= to_foster
        return out


@dataclass(frozen=True)
class LeverEffects:
    """Relative changes to hazards in one year (1.0 = no change)."""

    entry_multiplier: float = 1.0
    reunification_multiplier: float = 1.0
    reentry_multiplier: float = 1.0
    sgo_cao_multiplier: float = 1.0
    # maps the non-UASC entry placement mix to a new mix (None = unchanged)
    placement_shift: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None
    family_help_served: float = 0.0  # children served by family help in the year
    programme_cost_gbp: float = 0.0
    # national coverage of each funded lever in the year (share of its eligible pool)
    coverage: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedLever:
    """One lever table with the delay applied and every "estimate" replaced."""

    name: str
    funding_gbp_m: dict[int, float]  # by year, after delay_years
    area_share: float
    area_share_by_year: dict[int, float]  # after delay_years
    values: dict[str, float]  # lever-specific parameters (LEVER_PARAMETERS keys)
    sustain: str = "none"
    # money reinvested from savings by year (sustain = "reinvest_savings"), £m, after
    # delay_years: computed by sim.reinvestment, empty before it has run
    reinvested_gbp_m: dict[int, float] = field(default_factory=dict)

    @property
    def start_year(self) -> int | None:
        """First year with money (the programme start; ramp-up counts from here)."""
        funded = [year for year, money in self.funding_gbp_m.items() if money > 0]
        return min(funded) if funded else None

    @property
    def end_year(self) -> int | None:
        """Last year with programme money: the sustained service starts the year after."""
        funded = [year for year, money in self.funding_gbp_m.items() if money > 0]
        return max(funded) if funded else None

    @property
    def sustained_ceiling_gbp_m(self) -> float:
        """Yearly money that keeps ``sustained_share`` of the end year's capacity (0
        without ``sustain``): the most a sustained service can spend in a year."""
        end = self.end_year
        if self.sustain == "none" or end is None:
            return 0.0
        return self.values["sustained_share"] * self.funding_gbp_m[end]

    def sustained_gbp_m(self, year: int) -> float:
        """Money for the sustained service in ``year`` (after the programme money)."""
        end = self.end_year
        if self.sustain == "none" or end is None or year <= end:
            return 0.0
        if self.sustain == "fixed":
            return self.sustained_ceiling_gbp_m
        return self.reinvested_gbp_m.get(year, 0.0)

    def money_gbp_m(self, year: int) -> float:
        """Programme money plus any sustained service money in ``year``."""
        if self.sustain == "none":
            return self.funding_gbp_m.get(year, 0.0)
        return self.funding_gbp_m.get(year, 0.0) + self.sustained_gbp_m(year)

    def area(self, year: int) -> float:
        """Area share in ``year``: the latest ``area_share_by_year`` entry at or before
        it, else ``area_share``."""
        listed = [y for y in self.area_share_by_year if y <= year]
        return self.area_share_by_year[max(listed)] if listed else self.area_share

    def maturity(self, year: int) -> float:
        """Share of full effectiveness reached in ``year`` (0 before the effect starts)."""
        start = self.start_year
        if start is None:
            return 0.0
        elapsed = year - start + 1 - self.values.get("lag_years", 0.0)
        ramp = self.values.get("ramp_up_years", 0.0)
        if ramp <= 0:
            return 1.0 if elapsed > 0 else 0.0
        return float(min(max(elapsed / ramp, 0.0), 1.0))


def check_lever_config(where: str, config: dict[str, Any]) -> None:
    """Checks the per-key validator cannot make (every lever table shares one field
    set): keys a lever does not read, effects that must be at most 1, and money in or
    before the base year (the base year's data already contain it).  Raises a one-line
    :class:`InputError`; called by :func:`resolve_levers` (so by every run) and usable
    as a scenario ``CROSS_CHECKS`` entry."""
    base_year = config["run"]["base_year"]
    for name, table in config.get("levers", {}).items():
        applicable = LEVER_PARAMETERS[name]
        for key in LEVER_SPECIFIC_KEYS:
            if key not in applicable and table.get(key, ESTIMATE) != ESTIMATE:
                used_by = [n for n, p in LEVER_PARAMETERS.items() if key in p]
                raise InputError(
                    f"{where}: key 'levers.{name}.{key}' does not apply to {name}; it is "
                    f"read by: {', '.join(used_by)}")
        sustain = table.get("sustain", "none")
        if sustain != "none" and "sustained_share" not in applicable:
            raise InputError(
                f"{where}: key 'levers.{name}.sustain' = {sustain!r} does not apply to "
                f"{name} (foster places already persist with retention_per_year); it is "
                "read by: " + ", ".join(n for n, p in LEVER_PARAMETERS.items()
                                        if "sustained_share" in p))
        if (table.get("areas") or table.get("areas_by_year")) and (
                float(table.get("area_share", 1.0)) != 1.0 or table.get("area_share_by_year")):
            raise InputError(
                f"{where}: keys 'levers.{name}.areas' and 'levers.{name}.area_share' "
                "together: areas replaces area_share (set one, leave area_share and "
                "area_share_by_year at their defaults)")
        lag = table.get("reinvest_lag_years", ESTIMATE)
        if lag != ESTIMATE and float(lag) != int(lag):
            raise InputError(f"{where}: key 'levers.{name}.reinvest_lag_years' = {lag} "
                             "must be a whole number of years (1 or more)")
        for key in AT_MOST_ONE.get(name, ()):
            value = table.get(key, ESTIMATE)
            if value != ESTIMATE and value > 1:
                raise InputError(f"{where}: key 'levers.{name}.{key}' = {value} is a share "
                                 "or relative reduction: it must be at most 1")
        for year, money in table.get("funding_gbp_m", {}).items():
            if int(year) <= base_year and money != 0:
                raise InputError(
                    f"{where}: key 'levers.{name}.funding_gbp_m.{year}': money must come "
                    f"after the base year {base_year} (its effect is already in the data)")


def resolve_levers(config: dict[str, Any], where: str = "scenario") -> dict[str, ResolvedLever]:
    """Every configured lever with defaults filled in (after :func:`check_lever_config`)."""
    check_lever_config(where, config)
    resolved = {}
    for name, table in config.get("levers", {}).items():
        delay = int(table.get("delay_years", 0))
        values = {}
        for key, parameter in LEVER_PARAMETERS[name].items():
            value = table.get(key, ESTIMATE)
            values[key] = parameter.value if value == ESTIMATE else float(value)
        resolved[name] = ResolvedLever(
            name=name,
            funding_gbp_m={int(y) + delay: float(m)
                           for y, m in table.get("funding_gbp_m", {}).items()},
            area_share=float(table.get("area_share", 1.0)),
            area_share_by_year={int(y) + delay: float(a)
                                for y, a in table.get("area_share_by_year", {}).items()},
            values=values,
            sustain=str(table.get("sustain", "none")),
            reinvested_gbp_m={int(y): float(m)  # already after delay_years
                              for y, m in table.get(REINVESTED_KEY, {}).items()},
        )
    return resolved


def _lagged(series: Callable[[int], float], year: int, lag: float) -> float:
    """Value of a yearly series ``lag`` years before ``year``, linear between years."""
    whole = math.floor(lag)
    fraction = lag - whole
    now = series(year - whole)
    if fraction == 0:
        return now
    return (1 - fraction) * now + fraction * series(year - whole - 1)


def coverage_share(capacity: float, pool: float, area: float) -> float:
    """National share of a pool covered: capacity / (pool in the funded areas), capped at
    1 (money beyond saturation buys nothing more), times the area share."""
    if capacity <= 0 or pool <= 0 or area <= 0:
        return 0.0
    return min(capacity / (pool * area), 1.0) * area


def _children_in_care_non_uasc(params: ModelParameters) -> float:
    return float(params.looked_after_base - np.sum(params.uasc_base_by_band))


def eligible_pool(name: str, params: ModelParameters) -> float:
    """A lever's eligible pool in the base year (the coverage denominator): the CIN pool
    (family help), non-UASC children in care (reunification and kinship support, and
    other_programmes, which has no pool: ASSUMPTION, its money is shared out like the
    care services'), non-UASC children in residential care (foster recruitment)."""
    if name == "family_help":
        return float(params.cin_pool_base)
    if name == "foster_recruitment":
        return float(params.placement_mix[0, spec.PLACEMENTS.index("residential")]
                     * _children_in_care_non_uasc(params))
    return _children_in_care_non_uasc(params)


def area_selectors(table: dict[str, Any]) -> dict[int, list[str]]:
    """A lever's area selectors by the year they apply from (scenario years, before
    ``delay_years``): ``areas`` from year 0, each ``areas_by_year`` entry from its year.
    Empty for a lever without either (a national lever)."""
    out: dict[int, list[str]] = {}
    if table.get("areas"):
        out[0] = [str(s) for s in table["areas"]]
    for year, selectors in table.get("areas_by_year", {}).items():
        out[int(year)] = [str(s) for s in selectors]
    return dict(sorted(out.items()))


def selectors_in(by_year: dict[int, list[str]], year: int) -> list[str]:
    """The selectors of :func:`area_selectors` that apply in ``year`` (none before the
    first listed year)."""
    listed = [y for y in by_year if y <= year]
    return by_year[max(listed)] if listed else []


def with_lever_areas(config: dict[str, Any], money_share: dict[str, dict[int, float]],
                     national_share: dict[str, dict[int, float]]) -> dict[str, Any]:
    """A variant of ``config`` with area-targeted levers resolved (pure arithmetic; the
    shares come from the data layer, see ``sim.run``):

    * ``money_share[lever][year]``: the share of the lever's money in ``year`` that goes
      to the run's area (an area run): the money is scaled by it and ``area_share`` set
      to 1 for a targeted lever (coverage = that area's money / unit cost / its own
      pool); a national lever keeps its ``area_share``.
    * ``national_share[lever][year]``: the funded areas' share of England's eligible
      pool from ``year`` on (a national run): becomes ``area_share_by_year``.

    Levers in neither mapping are unchanged; ``areas`` keys are dropped once used.
    Nothing to change (no levers): ``config`` itself, not a copy."""
    if not money_share and not national_share:
        return config
    out = copy.deepcopy(config)
    for name, table in out.get("levers", {}).items():
        targeted = bool(table.get("areas") or table.get("areas_by_year"))
        if name in money_share:
            shares = money_share[name]
            table["funding_gbp_m"] = {y: float(m) * shares.get(int(y), 0.0)
                                      for y, m in table.get("funding_gbp_m", {}).items()}
            if targeted:
                table["area_share"], table["area_share_by_year"] = 1.0, {}
        elif name in national_share:
            table["area_share"] = 0.0
            table["area_share_by_year"] = {str(y): float(a)
                                           for y, a in national_share[name].items()}
        if name in money_share or name in national_share:
            table["areas"], table["areas_by_year"] = [], {}
    return out


def _capacity(lever: ResolvedLever, year: int) -> float:
    """Children served (or places added) with the year's money."""
    return lever.money_gbp_m(year) * 1e6 / lever.values["unit_cost_gbp"]


def foster_places(lever: ResolvedLever, year: int) -> float:
    """Added foster places available in ``year``: every year's recruits so far, each
    cohort kept with ``retention_per_year`` (places outlast the money)."""
    retention = lever.values["retention_per_year"]
    return float(sum(_capacity(lever, recruited) * retention ** (year - recruited)
                     for recruited in lever.funding_gbp_m if recruited <= year))


@dataclass
class _Combined:
    """Accumulates several levers' effects on the same year."""

    entry: float = 1.0
    reunification: float = 1.0
    reentry: float = 1.0
    sgo_cao: float = 1.0
    foster_to_kinship: float = 0.0
    residential_to_foster: float = 0.0
    served: float = 0.0
    cost: float = 0.0
    coverage: dict[str, float] = field(default_factory=dict)


def _family_help_coverage(lever: ResolvedLever, params: ModelParameters,
                          year: int) -> tuple[float, float]:
    """(coverage in the funded areas, national share of the pool's entry hazard
    affected: coverage x risk_ratio, capped at 1, x area share)."""
    pool = params.cin_pool_base
    area = lever.area(year)
    capacity = _lagged(lambda y: _capacity(lever, y), year, lever.values["lag_years"])
    in_area = min(capacity / (pool * area), 1.0) if pool * area > 0 else 0.0
    return in_area, min(in_area * lever.values["risk_ratio"], 1.0) * area


def _service_reach(lever: ResolvedLever, params: ModelParameters, year: int) -> float:
    """National share of a service lever's pool reached in ``year`` (no maturity)."""
    if lever.name == "family_help":
        return _family_help_coverage(lever, params, year)[1]
    capacity = _lagged(lambda y: _capacity(lever, y), year, lever.values["lag_years"])
    return coverage_share(capacity, _children_in_care_non_uasc(params), lever.area(year))


def _remembered(lever: ResolvedLever, params: ModelParameters, year: int,
                maturity: float, reach: float) -> tuple[float, float]:
    """(maturity, reach) after the memory of help already given: the effective reach
    maturity x reach is at least last year's effective reach x (1 - decay_per_year).
    Returned unchanged (bit for bit) with decay 1, the default."""
    decay = lever.values.get("decay_per_year", 1.0)
    start = lever.start_year
    if decay >= 1.0 or start is None:
        return maturity, reach
    remembered = 0.0
    for earlier in range(start, year):
        remembered = max(lever.maturity(earlier) * _service_reach(lever, params, earlier),
                         remembered * (1.0 - decay))
    remembered *= 1.0 - decay
    if remembered > maturity * reach:
        return 1.0, remembered
    return maturity, reach


def _apply(lever: ResolvedLever, params: ModelParameters, year: int, out: _Combined) -> None:
    """Add one lever's chain for ``year`` to ``out``."""
    out.cost += lever.money_gbp_m(year) * 1e6
    if lever.name == "other_programmes":
        return
    values = lever.values
    lag = values["lag_years"]
    maturity = lever.maturity(year)
    area = lever.area(year)
    if lever.name == "family_help":
        pool = params.cin_pool_base
        in_area, affected = _family_help_coverage(lever, params, year)
        out.served += in_area * pool * area
        out.coverage[lever.name] = in_area * area
        maturity, affected = _remembered(lever, params, year, maturity, affected)
        out.entry *= 1.0 - values["effect"] * maturity * affected
    elif lever.name in ("reunification_support", "kinship_support"):
        capacity = _lagged(lambda y: _capacity(lever, y), year, lag)
        covered = coverage_share(capacity, _children_in_care_non_uasc(params), area)
        out.coverage[lever.name] = covered
        maturity, covered = _remembered(lever, params, year, maturity, covered)
        uplift = values["effect"] * maturity
        if lever.name == "reunification_support":
            out.reunification *= 1.0 + uplift * covered
            # supported children return home faster, so they are a larger share of
            # returns than of children in care
            supported_returns = covered * (1 + uplift) / (1 + covered * uplift)
            out.reentry *= 1.0 - values["reentry_effect"] * maturity * supported_returns
        else:
            out.sgo_cao *= 1.0 + uplift * covered
            out.foster_to_kinship = min(
                out.foster_to_kinship + values["placement_effect"] * maturity * covered, 1.0)
    elif lever.name == "foster_recruitment":
        residential = (params.placement_mix[0, spec.PLACEMENTS.index("residential")]
                       * _children_in_care_non_uasc(params))
        places = _lagged(lambda y: foster_places(lever, y), year, lag)
        shift = coverage_share(values["effect"] * places, residential, area) * maturity
        out.coverage[lever.name] = shift
        out.residential_to_foster = min(out.residential_to_foster + shift, 1.0)


def lever_effects(config: dict[str, Any], params: ModelParameters, year: int,
                  levers: dict[str, ResolvedLever] | None = None) -> LeverEffects:
    """Combined effect of every configured lever in ``year`` (neutral when none, and in
    and before the base year: the base year's data already contain past programmes).
    ``levers``: ``resolve_levers(config)`` already done (once per run, not per year)."""
    if levers is None:
        levers = resolve_levers(config, where=f"scenario '{config.get('name', '?')}'")
    if not levers or year <= params.base_year:
        return LeverEffects()
    combined = _Combined()
    for lever in levers.values():
        _apply(lever, params, year, combined)
    shift = None
    if combined.foster_to_kinship > 0 or combined.residential_to_foster > 0:
        shift = PlacementShift(combined.foster_to_kinship, combined.residential_to_foster)
    return LeverEffects(
        entry_multiplier=combined.entry,
        reunification_multiplier=combined.reunification,
        reentry_multiplier=combined.reentry,
        sgo_cao_multiplier=combined.sgo_cao,
        placement_shift=shift,
        family_help_served=combined.served,
        programme_cost_gbp=combined.cost,
        coverage=combined.coverage,
    )


def describe_levers(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (lever, parameter, value, low, high, unit, source) for every funded lever of a
    scenario, with the values actually used: for reports and provenance."""
    rows = []
    for name, lever in resolve_levers(config).items():
        total = sum(lever.funding_gbp_m.values())
        rows.append({"lever": name, "parameter": "funding_gbp_m (total)", "value": total,
                     "low": None, "high": None, "unit": "GBP m",
                     "source": "scenario file; years " + ", ".join(
                         str(y) for y in sorted(lever.funding_gbp_m))})
        if lever.sustain != "none":
            rows.append({"lever": name, "parameter": "sustain", "value": lever.sustain,
                         "low": None, "high": None, "unit": "",
                         "source": "scenario file (service after the programme money)"})
        for key, parameter in LEVER_PARAMETERS[name].items():
            rows.append({"lever": name, "parameter": key, "value": lever.values[key],
                         "low": parameter.low, "high": parameter.high,
                         "unit": parameter.unit, "source": parameter.source})
    return rows
