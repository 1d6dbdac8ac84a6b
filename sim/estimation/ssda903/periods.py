"""Periods of care from episodes, and the occurrence/exposure tables behind the rates.

A *period* of care is a run of one child's episodes joined by ``X1`` (a change of
placement or legal status: RNE is not ``S``); a new period starts with RNE = ``S``.
Its exit is the last episode's REC, mapped to a model route by the code list; a period
still open at the extract's end date is censored there, and one that reaches the 18th
birthday leaves by ageing (``turned_18``) whatever the code says.

Times are in years of 365.25 days, counted in whole days (the extract's resolution).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from sim.estimation.ssda903.codes import SHORT_BREAK
from sim.estimation.ssda903.reader import Episode, Extract
from sim.model import spec
from sim.model.parameters import Array

DAYS_PER_YEAR = 365.25
BAND_EDGES_YEARS = tuple(start // 12 for _, start, _ in spec.AGE_BANDS[1:]) + (18,)
# Time-in-care band edges standing for the model's stages (their nominal widths).
STAGE_EDGES_YEARS = tuple(np.cumsum(spec.CARE_STAGE_MEAN_YEARS[:-1]))


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` ``years`` later (29 February -> 1 March)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, month=3, day=1)


@dataclass(frozen=True)
class Period:
    child: str
    start: dt.date
    end: dt.date | None  # None: open at the extract's end date
    route: str | None  # model exit route (turned_18 on or after the 18th birthday)
    first_rne: str  # not S: the period began before the extract (left-truncated)
    episodes: tuple[Episode, ...]


def build_periods(extract: Extract) -> tuple[list[Period], int]:
    """Every child's periods in start order, and the number of short-break periods left
    out (periods whose episodes are all under a short-break legal status)."""
    codes = extract.codes
    periods: list[Period] = []
    short_breaks = 0
    for child, episodes in extract.episodes.items():
        current: list[Episode] = []
        for episode in episodes:
            current.append(episode)
            if episode.dec is None or codes.rec[episode.rec] != "continues":
                if all(codes.ls[e.ls] == SHORT_BREAK for e in current):
                    short_breaks += 1
                else:
                    periods.append(_period(extract, child, current))
                current = []
    return periods, short_breaks


def _period(extract: Extract, child: str, episodes: list[Episode]) -> Period:
    last = episodes[-1]
    route = None
    if last.dec is not None:
        adult = add_years(extract.dob[child], 18)
        route = (spec.AGEING_REASON if last.dec >= adult
                 else extract.codes.rec[last.rec])
    return Period(child, episodes[0].decom, last.dec, route, episodes[0].rne,
                  tuple(episodes))


def age_band(dob: dt.date, day: dt.date) -> int:
    """DfE age band of a child born ``dob`` on ``day`` (exact birthdays)."""
    for index, edge in enumerate(BAND_EDGES_YEARS):
        if day < add_years(dob, edge):
            return index
    return len(spec.AGE_BANDS) - 1


@dataclass(frozen=True)
class Tables:
    """Exposure (child-years in care) by age band x stage, exits by route x band x
    stage (hazard routes, before the 18th birthday)."""

    exposure: Array  # (bands, stages)
    exits: Array  # (routes, bands, stages)


def lexis_tables(periods: list[Period], extract: Extract) -> Tables:
    """Split each period's time in care at the age-band birthdays and the stage edges
    (Lexis diagram), from the later of its start and the extract's start date (delayed
    entry: time before it is not observed for children who left then) to the earliest
    of its exit, the 18th birthday and the end date.  Time in care (the stage) counts
    from the period's own start."""
    n_bands, n_stages = len(spec.AGE_BANDS), len(spec.CARE_STAGES)
    exposure = np.zeros((n_bands, n_stages))
    exits = np.zeros((len(spec.EXIT_ROUTES), n_bands, n_stages))
    end = extract.end_date.toordinal()
    window = extract.start_date.toordinal()
    for period in periods:
        dob = extract.dob[period.child]
        t0 = period.start.toordinal()
        age_edges = [add_years(dob, e).toordinal() for e in BAND_EDGES_YEARS]
        adult = age_edges[-1]
        t1 = min(period.end.toordinal() if period.end is not None else end, end, adult)
        observed_from = max(t0, window)
        if t1 < observed_from or (t1 == observed_from
                                  and period.route not in spec.EXIT_ROUTES):
            continue
        stage_edges = [t0 + e * DAYS_PER_YEAR for e in STAGE_EDGES_YEARS]
        cuts = sorted({observed_from, t1,
                       *(c for c in age_edges + stage_edges if observed_from < c < t1)})
        for a, b in zip(cuts, cuts[1:], strict=False):
            mid = (a + b) / 2
            band = int(np.searchsorted(age_edges, mid, side="right"))
            stage = int(np.searchsorted(stage_edges, mid, side="right"))
            exposure[band, stage] += (b - a) / DAYS_PER_YEAR
        if period.route in spec.EXIT_ROUTES and period.end is not None \
                and period.end.toordinal() == t1 < adult:
            at = t1 - 0.5  # the day before the exit: the band and stage it left from
            band = min(int(np.searchsorted(age_edges, at, side="right")), n_bands - 1)
            stage = int(np.searchsorted(stage_edges, max(at, t0), side="right"))
            exits[spec.EXIT_ROUTES.index(period.route), band, stage] += 1
    return Tables(exposure, exits)
