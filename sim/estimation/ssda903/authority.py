"""An authority's ``ModelParameters`` from its SSDA903 extract.

Start from the national parameters for the scenario's base year and replace what the
extract identifies; everything else is borrowed, and its source says so (ASSUMPTION).

Replaced from the extract: exit hazards by route x age band and their time-in-care
profile, entry rates by age band and at birth, re-entry hazards, the placement mix of
entries (the end-date stock's mix), the share of repeat starts, and the base-year stock
by age band.  Scaled: the child population, births and CIN pool are England's times
``scale`` = the extract's end-date stock / England's non-UASC stock (ASSUMPTION: the
authority has England's children-in-care rate), or ``population`` / England's 0-17
population when the authority's population is given.  Borrowed: CIN closure rate,
trends, UASC exit rate.  UASC: the header and episodes files do not identify
unaccompanied children, so the run has no UASC stream (arrivals 0): every child of the
extract is in the one stream, at the extract's own hazards (ASSUMPTION).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from sim.errors import InputError
from sim.estimation.cache import cached_parameters
from sim.estimation.estimate import fit_reentry
from sim.estimation.ssda903.estimator import ExtractRates, estimate_rates
from sim.estimation.ssda903.reader import Extract
from sim.model import spec
from sim.model.parameters import Array, ModelParameters

# Ages (years) in each DfE band, for band shares of the population by single year.
BAND_AGES = tuple(range(start // 12, stop // 12) for _, start, stop in spec.AGE_BANDS)
MIN_REENTRY_EVENTS = 5  # fewer re-entries than this: borrow the scenario's [reentry]


def band_totals(by_age: Array) -> Array:
    return np.array([by_age[list(ages)].sum() for ages in BAND_AGES])


def authority_parameters(extract: Extract, config: dict[str, Any],
                         population: float | None = None,
                         national: ModelParameters | None = None
                         ) -> tuple[ModelParameters, ExtractRates]:
    """The authority's parameters for ``config['run']['base_year']`` and the rates
    behind them.  The extract must end on 31 March of the base year."""
    from sim.engines import stockflow  # the initial state is the engine's equilibrium

    year = int(config["run"]["base_year"])
    where = f"SSDA903 extract {extract.directory}"
    if extract.end_date.year != year:
        raise InputError(f"{where}: ends {extract.end_date:%d/%m/%Y} but run.base_year is "
                         f"{year} (set --set run.base_year={extract.end_date.year})")
    rates = estimate_rates(extract)
    national = national if national is not None else cached_parameters(config)
    stock = float(rates.stock_by_band.sum())
    if stock <= 0:
        raise InputError(f"{where}: no child in care on {extract.end_date:%d/%m/%Y}")
    label = (f"SSDA903 extract {extract.directory.name} ({rates.n_children} children, "
             f"{extract.start_date:%d/%m/%Y}-{extract.end_date:%d/%m/%Y})")
    england_stock = national.looked_after_base - national.uasc_base_by_band.sum()
    if population is None:
        scale = stock / england_stock
        scale_note = (f"England's x {scale:.5g} = extract stock {stock:.0f} / England's "
                      f"non-UASC stock {england_stock:.0f} (ASSUMPTION: England's rate "
                      "in care per child)")
    else:
        if not population > 0:
            raise InputError(f"{where}: population must be positive, got {population}")
        scale = population / national.population_by_age.sum()
        scale_note = f"England's x {scale:.5g} = given population {population:.0f} / England's"
    sources = dict(national.sources)
    borrowed = "national estimate borrowed (ASSUMPTION: the extract does not identify it)"
    for name in ("cin_closure_rate_per_year", "entry_trend_per_year", "exit_trend_per_year",
                 "uasc_exit_rate_per_year"):
        sources[name] = f"{borrowed}: {sources.get(name, 'see PARAMETER_INFO')}"
    population_by_age = national.population_by_age * scale
    births = national.births_per_year * scale
    pool = national.cin_pool_base * scale
    for name in ("population_by_age", "births_per_year", "cin_pool_base"):
        sources[name] = scale_note

    exit_rate, stage_multiplier, exit_note = _exit_hazards(rates, national)
    sources["exit_rate_per_year"] = f"{label}: exits / child-years by route x band{exit_note}"
    sources["stage_exit_multiplier"] = (f"{label}: occurrence/exposure by time-in-care band, "
                                        "separable Poisson fit")
    from_pool = np.clip(rates.starts_per_year - rates.reentries_per_year, 0.0, None)
    from_pool[0] = max(from_pool[0] - rates.at_birth_per_year, 0.0)
    pool_by_band = pool * band_totals(population_by_age) / population_by_age.sum()
    entry_rate = from_pool / pool_by_band
    sources["entry_rate_per_year"] = (f"{label}: starts (RNE = S) per year by age band, less "
                                      "re-entries after a return home and starts at birth, "
                                      "per CIN-pool child (pool split by population)")
    sources["birth_entry_share"] = f"{label}: starts within a week of birth / births"
    closure = national.cin_closure_rate_per_year
    sources["referral_rate_per_child_year"] = ("set so the scaled CIN pool is stationary "
                                               "given the extract's entries (ASSUMPTION)")
    reentry, sources["reentry_rate_per_year"] = _reentry(rates, config, label)
    mix = national.placement_mix.copy()
    if rates.stock_by_placement.sum() > 0:
        mix[0] = rates.stock_by_placement / rates.stock_by_placement.sum()
        sources["placement_mix"] = (f"{label}: PLACE of the children in care at the end "
                                    "date (entry mix = stock mix, ASSUMPTION)")
    sources["repeat_start_share"] = f"{label}: starts that are a child's second or later in a year"
    sources["looked_after_base"] = f"{label}: in care on {extract.end_date:%d/%m/%Y}"
    sources["uasc_arrivals_per_year"] = sources["uasc_arrivals_base_year"] = (
        "ASSUMPTION: UASC are not identified in the header and episodes files; no UASC "
        "stream (the extract's children are all in the one stream)")
    params = replace(
        national,
        population_by_age=population_by_age,
        births_per_year=births,
        referral_rate_per_child_year=(closure * pool + from_pool.sum()) / population_by_age.sum(),
        cin_pool_base=pool,
        entry_rate_per_year=entry_rate,
        birth_entry_share=rates.at_birth_per_year / births,
        exit_rate_per_year=exit_rate,
        stage_exit_multiplier=stage_multiplier,
        reentry_rate_per_year=reentry,
        placement_mix=mix,
        uasc_arrivals_per_year=0.0,
        uasc_arrivals_base_year=0.0,
        looked_after_base=stock,
        looked_after_base_by_band=rates.stock_by_band.astype(float),
        uasc_base_by_band=np.zeros(len(spec.AGE_BANDS)),
        turned_18_base=float("nan"),
        repeat_start_share=rates.repeat_start_share,
        sources=sources,
        initial_state=np.zeros((0, 0)),
    )
    year_rates = stockflow.year_rates(params, config, year)
    params = replace(params, initial_state=stockflow.scale_to_observed(
        stockflow.equilibrium_state(year_rates), params))
    try:
        params.check_bounds()
    except ValueError as exc:
        raise InputError(f"{where}: estimated {exc}") from None
    return params, rates


def _exit_hazards(rates: ExtractRates, national: ModelParameters) -> tuple[Array, Array, str]:
    """The extract's hazards; bands or stages without exposure borrow the national
    value (named in the source)."""
    exit_rate = rates.exit_rate.copy()
    multiplier = rates.stage_multiplier.copy()
    notes = []
    empty_bands = np.isnan(exit_rate).any(axis=0)
    if empty_bands.any():
        exit_rate[:, empty_bands] = national.exit_rate_per_year[:, empty_bands]
        notes.append("bands without time in care ("
                     + ", ".join(b for b, e in zip(spec.AGE_BAND_NAMES, empty_bands,
                                                   strict=True) if e)
                     + ") borrow the national rate (ASSUMPTION)")
    empty_stages = np.isnan(multiplier)
    if empty_stages.any():
        multiplier[empty_stages] = national.stage_exit_multiplier[empty_stages]
        notes.append("stages without time in care borrow the national multiplier "
                     "(ASSUMPTION)")
    return exit_rate, multiplier, "".join(f"; {n}" for n in notes)


def _reentry(rates: ExtractRates, config: dict[str, Any], label: str) -> tuple[Array, str]:
    """Re-entry hazards fitted to the extract's Kaplan-Meier probabilities; where
    follow-up is too short or events too few, the scenario's [reentry] values."""
    within_1, within_5 = rates.reentry.probability
    notes = []
    if rates.reentry.events < MIN_REENTRY_EVENTS or not np.isfinite(within_1):
        within_1 = config["reentry"]["within_1_year"]
        notes.append("within 1 year")
    if rates.reentry.events < MIN_REENTRY_EVENTS or not np.isfinite(within_5):
        within_5 = config["reentry"]["within_5_years"]
        notes.append("within 5 years")
    source = (f"{label}: Kaplan-Meier re-entry within 1 and 5 years of a return home "
              f"({rates.reentry.events} re-entries of {rates.reentry.at_risk} returns), "
              "fitted by fit_reentry")
    if notes:
        source += (f"; {' and '.join(notes)} from the scenario's [reentry] (ASSUMPTION: "
                   "the extract is too short or has too few re-entries)")
    return fit_reentry(float(within_1), float(within_5)), source
