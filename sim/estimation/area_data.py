"""Each authority's published series, on 2022 boundaries, with suppression kept apart.

Why a module of its own: joining the authorities' rows is data knowledge (boundary
changes, DfE column names that differ from the national ones, suppressed cells) and
the shrinkage in :mod:`sim.estimation.area_rates` should only see clean
``(count, exposure)`` pairs.

Rules (docs/areas.md):

- **Suppressed cells** (``x``, ``c``, ``z``, ``u``, ``[x]``, ``low``) are missing,
  never zero: :func:`value` returns None for them, and a sum with a missing part is
  missing.  A year whose count or exposure is missing is left out of that rate.
- **Boundary changes**: a successor authority (Dorset and BCP from 2020;
  North and West Northamptonshire from 2022, the first years each publishes) takes,
  for every year before its first own year, the sum of its predecessors' values times
  its share of the successors' total of the same measure family in its first published
  year (``stem_share``).  Its rates before the split are therefore the predecessors'
  pooled rates; its levels are its own share.  A year any predecessor suppresses is
  missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.datasets import Observed
from sim.errors import InputError
from sim.estimation.area_registry import AreaRecord
from sim.estimation.estimate import ASSUMED_AT_18_SHARE_OF_16_PLUS

_CEASED = "ceased_during_year__reason__"
RESIDUAL_ROUTE = "other"
# DfE "ceased by reason" measures behind each hazard route at authority level: the
# national mapping (sim.estimation.estimate.ROUTE_MEASURES) plus the column names the
# authority tables use where the national series has a total they lack (adoption
# before 2018 is only published split by consent).  Per route: parts summed; per part
# the first alternative whose measures are all published wins.  Parts marked optional
# may be absent from a year's table (a reason not collected that year); a *suppressed*
# optional part still makes the year missing.


@dataclass(frozen=True)
class Part:
    """Part of a route's count: the first alternative (measures summed) published."""

    alternatives: tuple[tuple[str, ...], ...]
    optional: bool = False


AREA_ROUTE_MEASURES: dict[str, tuple[Part, ...]] = {
    "returned_home": (Part(((f"{_CEASED}returned_home",),
                            (f"{_CEASED}returned_home_planned",
                             f"{_CEASED}returned_home_not_planned"))),),
    "adoption": (Part(((f"{_CEASED}adopted",),
                       (f"{_CEASED}adopted_consent_dispensed",
                        f"{_CEASED}adopted_unopposed"))),),
    "sgo_cao": (Part(((f"{_CEASED}sgo",),
                      (f"{_CEASED}sgo_former_foster_carers", f"{_CEASED}sgo_other_carers"))),
                Part(((f"{_CEASED}residence_or_child_arrangements_order",),),
                     optional=True)),
}


def value(obs: Observed, measure: str, year: int) -> float | None:
    """The published number, or None (not published, or suppressed)."""
    return obs.get(measure, year)


def total(obs: Observed, measures: Sequence[str], year: int) -> float | None:
    """Sum of ``measures``, or None if any is missing or suppressed."""
    values = [obs.get(m, year) for m in measures]
    if any(v is None for v in values):
        return None
    return float(sum(values))  # type: ignore[arg-type]


def route_count(obs: Observed, route: str, year: int) -> float | None:
    """Ceased in ``year`` by a named hazard route, or None when a needed cell is
    suppressed or unpublished (never read as 0)."""
    count = 0.0
    for part in AREA_ROUTE_MEASURES[route]:
        alternatives = part.alternatives
        for measures in alternatives:
            published = total(obs, measures, year)
            if published is not None:
                count += published
                break
        else:
            suppressed = any(obs.is_suppressed(m, year) for ms in alternatives for m in ms)
            if suppressed or not part.optional:
                return None
    return count


def at_18(obs: Observed, year: int) -> float | None:
    """Ceased aged 18 (published from 2016; before, the national 16+ split applies)."""
    direct = value(obs, "ceased_during_year__age__18_and_over", year)
    if direct is not None:
        return direct
    older = value(obs, "ceased_during_year__age__16_and_over", year)
    if older is None:
        return None
    return ASSUMED_AT_18_SHARE_OF_16_PLUS * older


def stock(obs: Observed, year: int) -> float | None:
    return value(obs, "looked_after_31_march", year)


def latest(obs: Observed, measure: str, year: int, back: int = 6) -> tuple[float, int] | None:
    """The latest published value at or before ``year`` (within ``back`` years)."""
    for y in range(year, year - back, -1):
        v = value(obs, measure, y)
        if v is not None:
            return v, y
    return None


def stem(measure: str) -> str:
    return measure.split("__")[0]


def stem_share(own: Observed, successors: Sequence[Observed], measure_stem: str,
               first_year: int, max_year: int) -> float | None:
    """This successor's share of the successors' total of ``measure_stem`` in the first
    year from ``first_year`` (to ``max_year``) where every successor publishes it."""
    for year in range(first_year, max_year + 1):
        values = [obs.get(measure_stem, year) for obs in successors]
        mine = own.get(measure_stem, year)
        if mine is not None and all(v is not None for v in values) and sum(values) > 0:
            return mine / float(sum(values))  # type: ignore[arg-type]
    return None


# Measure families whose share splits a predecessor's values, in order of preference
# when a family has no total of its own published for the successors.
SHARE_FALLBACK = ("looked_after_31_march", "population_0_17_ons_mid_year")


def successor_observed(record: AreaRecord, by_code: dict[str, Observed],
                       siblings: Sequence[AreaRecord]) -> Observed:
    """The series of a successor authority on its own boundary (module docstring)."""
    first = record.first_own_year
    assert first is not None
    own = by_code.get(record.area.dfe_code) or Observed(max_year=next(
        iter(by_code.values())).max_year)
    max_year = own.max_year
    if max_year < first:
        raise InputError(
            f"sim/data/areas.csv: {record.area.name} ({record.area.code}) publishes its "
            f"own figures from {first}; a base year before that cannot split its "
            f"predecessors ({', '.join(record.predecessors)}) without later data")
    predecessors = [by_code[c] for c in record.predecessors if c in by_code]
    sibling_obs = [by_code.get(s.area.dfe_code, Observed(max_year=max_year))
                   for s in siblings]
    out = Observed(max_year=max_year, files_read=dict(own.files_read),
                   single_age_population=dict(own.single_age_population),
                   single_age_year=own.single_age_year)
    for measure, series in own.series.items():
        out.series[measure] = {y: v for y, v in series.items() if y >= first}
    for measure, years in own.suppressed.items():
        out.suppressed[measure] = {y for y in years if y >= first}
    shares: dict[str, float | None] = {}
    measures = {m for obs in predecessors for m in obs.series} | {
        m for obs in predecessors for m in obs.suppressed}
    for measure in sorted(measures):
        family = stem(measure)
        if family not in shares:
            share = stem_share(own, sibling_obs, family, first, max_year)
            for fallback in SHARE_FALLBACK:
                if share is None:
                    share = stem_share(own, sibling_obs, fallback, first, max_year)
            shares[family] = share
        share = shares[family]
        years = {y for obs in predecessors for y in obs.series.get(measure, {})}
        for year in sorted(y for y in years if y < first):
            parts = [obs.get(measure, year) for obs in predecessors]
            if share is None or any(p is None for p in parts):
                out.suppressed.setdefault(measure, set()).add(year)
                continue
            out.series.setdefault(measure, {})[year] = share * float(sum(parts))  # type: ignore[arg-type]
        for obs in predecessors:
            for year in obs.suppressed.get(measure, ()):
                if year < first and year not in out.series.get(measure, {}):
                    out.suppressed.setdefault(measure, set()).add(year)
    return out


def area_observed(records: Sequence[AreaRecord], by_code: dict[str, Observed]
                  ) -> dict[str, Observed]:
    """Series by DfE code for every registry authority, on 2022 boundaries; a successor
    authority is left out while the data end before its first own year."""
    out = {}
    empty_max = max((obs.max_year for obs in by_code.values()), default=0)
    for record in records:
        code = record.area.dfe_code
        if record.predecessors and record.first_own_year is not None \
                and empty_max < record.first_own_year:
            continue
        if record.predecessors:
            siblings = [r for r in records if r.predecessors == record.predecessors]
            out[code] = successor_observed(record, by_code, siblings)
        else:
            out[code] = by_code.get(code, Observed(max_year=empty_max))
    return out
