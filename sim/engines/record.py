"""The one year-record builder both engines use.

An engine reduces its own state to :class:`YearTotals` (stock by cell at 31 March and
the year's flows) and :func:`year_record` turns that into the results schema's record.
Every derived quantity (DfE-basis starts, totals, stream splits, ``cin``) is computed
here once, so the engines cannot disagree on a definition, and a variable added to the
record reaches both engines at once.

Totals may carry leading batch dimensions (parameter draws, areas): every array below
is written with ``...`` in front of its own dimensions, and the record's arrays keep
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.model import spec
from sim.model.parameters import Array
from sim.model.rates import YearRates, dfe_basis_starts

_UASC = spec.STREAMS.index("uasc")
_NON_UASC = spec.STREAMS.index("non_uasc")
_RETURNED_HOME = spec.CEASED_REASONS.index("returned_home")


@dataclass(frozen=True)
class YearTotals:
    """What an engine knows about one year, before any definition is applied.

    ``care_stock`` is the 31 March stock by (bands, streams, placements, stages);
    ``every_start_by_band`` counts every start in the year (entries from the pool, UASC
    arrivals, re-entries, entries at birth) by age band at start, ``uasc_start_by_band``
    the UASC arrivals among them; ``ceased_by_stream`` is (streams, reasons).
    ``extra`` holds engine-specific variables already in the schema (the DES's
    ``started_first_in_year`` and capacity queues).
    """

    care_stock: Array
    every_start_by_band: Array
    uasc_start_by_band: Array
    ceased_by_stream: Array
    reentered: Array | float
    home_after_care: Array | float
    cin_pool: Array | float
    cin_referrals: Array | float
    family_help_served: Array | float
    programme_cost_gbp: Array | float
    extra: dict[str, Array] = field(default_factory=dict)


def year_record(totals: YearTotals, rates: YearRates | None = None,
                repeat_start_share: Array | float | None = None) -> dict[str, Array]:
    """The schema record (:mod:`sim.engines.schema`) for one year.

    ``repeat_start_share`` overrides ``rates.repeat_start_share`` (a batch of runs
    passes one value per run, shaped to broadcast against ``(..., bands)``)."""
    if repeat_start_share is None:
        assert rates is not None, "year_record needs rates or repeat_start_share"
        repeat_start_share = rates.repeat_start_share
    stock = np.asarray(totals.care_stock, dtype=float)
    every_start = np.asarray(totals.every_start_by_band, dtype=float)
    uasc_start = np.asarray(totals.uasc_start_by_band, dtype=float)
    # DfE basis: a child's first start in the year only (ModelParameters.repeat_start_share)
    started_by_band = dfe_basis_starts(every_start, uasc_start,
                                       repeat_start_share)  # type: ignore[arg-type]
    started = started_by_band.sum(axis=-1)
    ceased_by_stream = np.asarray(totals.ceased_by_stream, dtype=float)
    ceased = ceased_by_stream.sum(axis=-2)
    # small reductions in steps (each over a smaller array than the stock): the
    # multi-axis sums over the whole stock took a third of a national run's record
    by_age = stock.sum(axis=(-3, -2, -1))
    over_bands = stock.sum(axis=-4)  # (..., streams, placements, stages)
    by_stream_placement = over_bands.sum(axis=-1)
    by_stream = by_stream_placement.sum(axis=-1)
    looked_after = by_age.sum(axis=-1)
    pool = np.asarray(totals.cin_pool, dtype=float)
    record: dict[str, Array] = {
        "looked_after": looked_after,
        "looked_after_by_age": by_age,
        "looked_after_by_placement": by_stream_placement.sum(axis=-2),
        "looked_after_by_stage": over_bands.sum(axis=-2).sum(axis=-2),
        "looked_after_uasc": by_stream[..., _UASC],
        "looked_after_by_stream": by_stream,
        "started": started,
        "started_by_age": started_by_band,
        "started_every_episode": every_start.sum(axis=-1),
        "started_uasc": uasc_start.sum(axis=-1),
        # the UASC stream's only inflow is arrivals (re-entries and entries at birth
        # join the non-UASC stream); DfE basis, as started
        "started_by_stream": _stack_streams(started, uasc_start.sum(axis=-1)),
        "ceased": ceased,
        "ceased_by_stream": ceased_by_stream,
        "returned_home": ceased[..., _RETURNED_HOME],
        "reentered": np.asarray(totals.reentered, dtype=float),
        "home_after_care": np.asarray(totals.home_after_care, dtype=float),
        "cin_pool": pool,
        "cin": pool + looked_after,
        "cin_referrals": np.asarray(totals.cin_referrals, dtype=float),
        "family_help_served": np.asarray(totals.family_help_served, dtype=float),
        "programme_cost_gbp": np.asarray(totals.programme_cost_gbp, dtype=float),
    }
    record.update(totals.extra)
    return record


def _stack_streams(total: Array, uasc: Array) -> Array:
    """(..., streams) from a total and its UASC part."""
    uasc = np.asarray(uasc, dtype=float)
    out = np.empty((*uasc.shape, len(spec.STREAMS)))
    out[..., _UASC] = uasc
    out[..., _NON_UASC] = np.asarray(total, dtype=float) - uasc
    return out


def ceased_by_stream_from(ceased: Array, ceased_uasc: Array) -> Array:
    """(..., streams, reasons) from ceased by reason (both streams) and the UASC part."""
    ceased = np.asarray(ceased, dtype=float)
    uasc = np.asarray(ceased_uasc, dtype=float)
    out = np.empty((*uasc.shape[:-1], len(spec.STREAMS), uasc.shape[-1]))
    out[..., _UASC, :] = uasc
    out[..., _NON_UASC, :] = ceased - uasc
    return out
