"""Rates from an SSDA903 extract, and an authority's ``ModelParameters`` built on them.

Time in care is a survival problem with right censoring (periods still open at the
extract's end date).  The estimator is the **piecewise-constant hazard** (occurrence /
exposure, the maximum-likelihood estimator under censoring) on the model's own grid:
age band x time-in-care band, the bands standing for the model's stages with their
nominal widths (0-6 m, 6-12 m, 1-2 y, 2-5 y, 5 y+).  Why not Kaplan-Meier: the engines
consume hazards by route x age band x stage, not a survival curve, and KM would need a
further fit to reach them; occurrence/exposure gives those hazards directly, with a
Poisson standard error from each count.  Routes are competing risks: each route's
hazard is its exits over the same time at risk.  The hazard is fitted in the model's
separable form, ``exit_rate[route, band] x stage_multiplier[stage]``, by alternating
Poisson maximum likelihood (the multipliers normalised to an exposure-weighted mean 1).
ASSUMPTION (as in the national estimation from "ceased by duration"): the model's stage
k, an exponential phase of that mean, stands for the time-in-care band k.

Re-entry after a return home is a single event with censoring (the end date, the 18th
birthday), so there Kaplan-Meier is the estimator: the probabilities of re-entering
within 1 and 5 years, to which :func:`sim.estimation.estimate.fit_reentry` fits the
model's re-entry hazards (the same fit the national estimation makes to the evidence).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from sim.estimation.ssda903.periods import (
    DAYS_PER_YEAR,
    Period,
    Tables,
    add_years,
    age_band,
    build_periods,
    lexis_tables,
)
from sim.estimation.ssda903.reader import Extract, collection_year_end
from sim.model import flows, spec
from sim.model.parameters import Array

RETURNED_HOME = next(r.name for r in flows.EXIT_ROUTE_DECLS if r.to_home)
AT_BIRTH_DAYS = 7  # a start within a week of birth counts as "at birth" (ASSUMPTION)
FIT_ITERATIONS = 500


@dataclass(frozen=True)
class KaplanMeier:
    """P(event by t) with its Greenwood standard error, at the times asked for."""

    times: tuple[float, ...]
    probability: tuple[float, ...]  # nan where follow-up does not reach t
    standard_error: tuple[float, ...]
    at_risk: int
    events: int


def kaplan_meier(durations: Array, observed: Array, at: tuple[float, ...]) -> KaplanMeier:
    """Kaplan-Meier cumulative incidence ``1 - S(t)`` and Greenwood SE at each of ``at``."""
    durations, observed = np.asarray(durations, float), np.asarray(observed, bool)
    event_times = np.unique(durations[observed])
    survival, variance_sum = 1.0, 0.0
    curve = []
    for t in event_times:
        at_risk = int((durations >= t).sum())
        deaths = int((observed & (durations == t)).sum())
        survival *= 1.0 - deaths / at_risk
        if at_risk > deaths:
            variance_sum += deaths / (at_risk * (at_risk - deaths))
        curve.append((t, survival, variance_sum))
    longest = float(durations.max()) if len(durations) else 0.0
    probability, error = [], []
    for t in at:
        if t > longest:
            probability.append(float("nan"))
            error.append(float("nan"))
            continue
        s, v = 1.0, 0.0
        for time, value, var in curve:
            if time > t:
                break
            s, v = value, var
        probability.append(1.0 - s)
        error.append(s * np.sqrt(v))
    return KaplanMeier(tuple(at), tuple(probability), tuple(error), len(durations),
                       int(observed.sum()))


def fit_separable(exposure: Array, exits: Array) -> tuple[Array, Array]:
    """``rate[route, band] x multiplier[stage]`` maximising the Poisson likelihood of
    ``exits`` (routes, bands, stages) given ``exposure`` (bands, stages), by alternating
    closed-form updates (each one is the exact maximiser given the other factor).
    Multipliers have exposure-weighted mean 1; stages without exposure get nan."""
    by_route_band = exits.sum(axis=2)
    by_stage = exits.sum(axis=(0, 1))
    stage_exposure = exposure.sum(axis=0)
    multiplier = np.where(stage_exposure > 0, 1.0, np.nan)
    rate = np.zeros(by_route_band.shape)
    for _ in range(FIT_ITERATIONS):
        weighted = np.nansum(exposure * multiplier[None, :], axis=1)  # (bands,)
        rate = np.divide(by_route_band, weighted[None, :],
                         out=np.full(by_route_band.shape, np.nan), where=weighted > 0)
        total = np.nan_to_num(rate).sum(axis=0)  # (bands,)
        at_risk = (exposure * total[:, None]).sum(axis=0)  # (stages,)
        updated = np.divide(by_stage, at_risk, out=np.full(by_stage.shape, np.nan),
                            where=at_risk > 0)
        updated /= np.nansum(stage_exposure * updated) / stage_exposure.sum()
        converged = np.allclose(updated, multiplier, rtol=1e-12, atol=0, equal_nan=True)
        multiplier = updated
        if converged:
            break
    weighted = np.nansum(exposure * multiplier[None, :], axis=1)
    rate = np.divide(by_route_band, weighted[None, :], out=np.full(by_route_band.shape,
                                                                   np.nan), where=weighted > 0)
    return rate, multiplier


@dataclass(frozen=True)
class ExtractRates:
    """Everything the extract identifies, with the counts behind each rate."""

    n_children: int
    n_periods: int
    left_truncated: int  # periods whose first episode is not RNE = S
    short_breaks: int  # periods under short-break legal status only (left out)
    start_date: dt.date
    end_date: dt.date
    years: float
    tables: Tables
    exit_rate: Array  # (routes, bands) per child-year, nan where no exposure
    stage_multiplier: Array  # (stages,)
    starts_per_year: Array  # (bands,) every new period (RNE = S)
    starts: Array  # (bands,) counts behind starts_per_year
    reentries_per_year: Array  # (bands,) new periods after a return home
    at_birth_per_year: float
    repeat_start_share: float  # starts that are a child's second+ in a collection year
    reentry: KaplanMeier  # within 1 and 5 years of a return home
    stock_by_band: Array  # (bands,) in care at the end date, under 18
    stock_by_placement: Array  # (placements,)


def estimate_rates(extract: Extract) -> ExtractRates:
    """Occurrence/exposure exit hazards, starts, re-entry and the end-date stock."""
    periods, short_breaks = build_periods(extract)
    tables = lexis_tables(periods, extract)
    rate, multiplier = fit_separable(tables.exposure, tables.exits)
    n_bands = len(spec.AGE_BANDS)
    starts, reentries = np.zeros(n_bands), np.zeros(n_bands)
    at_birth, repeats = 0, 0
    seen_years: set[tuple[str, int]] = set()
    by_child: dict[str, list[Period]] = {}
    for period in periods:
        by_child.setdefault(period.child, []).append(period)
    durations, observed = [], []
    for child, own in by_child.items():
        dob = extract.dob[child]
        for previous, period in zip([None, *own[:-1]], own, strict=True):
            if period.first_rne == "S" and period.start >= extract.start_date:
                band = age_band(dob, period.start)
                starts[band] += 1
                key = (child, collection_year_end(period.start).year)
                repeats += key in seen_years
                seen_years.add(key)
                if (period.start - dob).days <= AT_BIRTH_DAYS:
                    at_birth += 1
                if previous is not None and previous.route == RETURNED_HOME:
                    reentries[band] += 1
        for index, period in enumerate(own):
            if (period.route != RETURNED_HOME or period.end is None
                    or period.end < extract.start_date):
                continue
            following = own[index + 1] if index + 1 < len(own) else None
            censor = min(extract.end_date, add_years(dob, 18))
            if following is not None:
                durations.append((following.start - period.end).days / DAYS_PER_YEAR)
                observed.append(True)
            else:
                durations.append(max((censor - period.end).days, 0) / DAYS_PER_YEAR)
                observed.append(False)
    stock_band, stock_place = np.zeros(n_bands), np.zeros(len(spec.PLACEMENTS))
    for period in periods:
        dob = extract.dob[period.child]
        if period.end is None and extract.end_date < add_years(dob, 18):
            stock_band[age_band(dob, extract.end_date)] += 1
            place = extract.codes.place[period.episodes[-1].place]
            stock_place[spec.PLACEMENTS.index(place)] += 1
    years = extract.years
    total_starts = starts.sum()
    return ExtractRates(
        n_children=len(by_child), n_periods=len(periods),
        left_truncated=sum(p.first_rne != "S" for p in periods), short_breaks=short_breaks,
        start_date=extract.start_date, end_date=extract.end_date, years=years,
        tables=tables, exit_rate=rate, stage_multiplier=multiplier,
        starts_per_year=starts / years, starts=starts,
        reentries_per_year=reentries / years, at_birth_per_year=at_birth / years,
        repeat_start_share=repeats / total_starts if total_starts else 0.0,
        reentry=kaplan_meier(np.array(durations), np.array(observed, bool), (1.0, 5.0)),
        stock_by_band=stock_band, stock_by_placement=stock_place)
