"""The results schema every engine writes (DESIGN §4): names, dimensions, units, and
which engines must produce each variable.

It sits with the engines because it is their output contract: the engines assemble
their records into it, and everything above (results, calibration, reports) reads it.

Engines return one record per year (a dict of arrays keyed by the names below);
:func:`build_dataset` stacks them into an ``xarray.Dataset``.  Calibration, comparison
and reports read only this layout, so they never branch on the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from sim.model import spec
from sim.model.costs import COST_COMPONENTS, PRICE_BASE

COORDS: dict[str, tuple[str, ...]] = {
    "age_group": spec.AGE_BAND_NAMES,
    "stream": spec.STREAMS,
    "placement": spec.PLACEMENTS,
    "reason": spec.CEASED_REASONS,
    "care_stage": spec.CARE_STAGES,
    "cost_component": COST_COMPONENTS,
}

ENGINES: tuple[str, ...] = ("stockflow", "des")
BOTH = ENGINES  # every engine must produce the variable
POST = ()  # added after the run (costs), or only under a setting (capacity queues)


class Variable(NamedTuple):
    """One results variable: its dimensions after ``year``, unit, definition, and the
    engines that must produce it (:func:`build_dataset` refuses a record without it)."""

    dims: tuple[str, ...]
    unit: str
    definition: str
    engines: tuple[str, ...] = BOTH


# name -> Variable(dimensions after "year", unit, definition, engines that must produce it)
VARIABLES: dict[str, Variable] = {
    "looked_after": Variable((), "children", "children looked after at 31 March"),
    "looked_after_by_age": Variable(("age_group",), "children", "looked after at 31 March by age"),
    "looked_after_by_placement": Variable(("placement",), "children",
                                  "looked after at 31 March by placement type"),
    "looked_after_by_stage": Variable(("care_stage",), "children",
                              "looked after at 31 March by time-in-care stage"),
    "looked_after_uasc": Variable((), "children", "unaccompanied asylum-seeking children looked "
                          "after at 31 March"),
    "looked_after_by_stream": Variable(("stream",), "children", "looked after at 31 March by "
                               "stream: unaccompanied asylum-seeking children (uasc) and "
                               "all others (non_uasc); sums to looked_after"),
    "started": Variable((), "children per year", "starts of care during the year ending 31 March "
                "on DfE's basis (a child's first start in the year only): every start "
                "less the share DfE's count leaves out (ModelParameters.repeat_start_share, "
                "from the published stock identity)"),
    "started_every_episode": Variable((), "children per year", "every start of care during the "
                              "year (entries from the CIN pool, UASC arrivals, re-entries, "
                              "at birth): looked_after(t) - looked_after(t-1) = this - "
                              "ceased"),
    "started_by_age": Variable(("age_group",), "children per year", "starts by age at start (DfE "
                       "basis, as started)"),
    "started_uasc": Variable((), "children per year", "UASC starting care"),
    "started_by_stream": Variable(("stream",), "children per year", "starts by stream on DfE's "
                          "basis, as started (every start in the stream x (1 - "
                          "repeat_start_share)); re-entries and entries at birth are "
                          "non_uasc; sums to started"),
    "ceased": Variable(("reason",), "children per year", "children who ceased to be looked after, "
               "by reason (turned_18 = on the 18th birthday)"),
    "ceased_by_stream": Variable(("stream", "reason"), "children per year", "ceased by stream "
                         "and reason; sums over stream to ceased"),
    "returned_home": Variable((), "children per year", "children who ceased care by returning "
                      "home (reunification)"),
    "reentered": Variable((), "children per year", "children who came back into care after "
                  "returning home (within the tracked five years)"),
    "home_after_care": Variable((), "children", "children at home within five years of returning "
                        "from care, at 31 March"),
    "cin_pool": Variable((), "children", "children in need not looked after, at 31 March"),
    "cin": Variable((), "children", "children in need at 31 March, DfE definition (includes "
            "looked-after children)"),
    "cin_referrals": Variable((), "children per year", "children entering the CIN pool"),
    "family_help_served": Variable((), "children per year", "children served by funded family "
                           "help"),
    "programme_cost_gbp": Variable((), "GBP per year", "spending on funded programmes (levers)"),
    # discrete-event engine only (sim/engines/des/; docs/des.md)
    "started_first_in_year": Variable((), "children per year", "children who started care during "
                              "the year, each counted once (DfE definition: a child's "
                              "first start in the year); NaN in the base year", ("des",)),
    "foster_waiting": Variable((), "children", "children in care waiting for a foster place at 31 "
                       "March, placed meanwhile in capacity.foster_overflow_placement "
                       "(only with capacity.foster_places)", POST),
    "foster_wait_months": Variable((), "months", "mean wait of the children who had to wait for "
                           "a foster place and whose wait ended during the year (place "
                           "found, or left care while waiting); NaN if none", POST),
    "family_help_waiting": Variable((), "children", "children referred for family help and still "
                            "waiting for a place at 31 March (only with "
                            "capacity.family_help_places)", POST),
    "family_help_wait_months": Variable((), "months", "mean wait of the children who had to wait "
                                "for family help and whose wait ended during the year (help "
                                "started, or left the CIN pool while waiting); NaN if none", POST),
    # added after the run by sim.results.costs.add_costs (engine-independent)
    "cost_gbp": Variable(("cost_component",), f"GBP per year ({PRICE_BASE})",
                 "children's social care cost in the year by component: placements "
                 "(average of the bounding 31 March stocks x unit cost), children in "
                 "need, other spend, programmes", POST),
    "cost_gbp_cash": Variable(("cost_component",), "GBP per year (cash)",
                      "cost_gbp in cash (nominal) terms: cost_gbp x price_index; the "
                      "review's 'over £15bn' is a cash figure", POST),
    "price_index": Variable((), "ratio to 2021-22 prices",
                    "general price level, 1 in the base year, rising by "
                    "costs.inflation_per_year (ASSUMPTION: 2 %)", POST),
}


# The optional leading dimension of an area run (sim/run.py): ONS codes, with the
# non-index coordinates area_name, region and child_population along it.
AREA_DIM = "area"


def build_dataset(years: Sequence[int], records: Sequence[dict[str, Any]],
                  attrs: dict[str, Any] | None = None, engine: str | None = None,
                  batch_dim: str | None = None) -> xr.Dataset:
    """Stack per-year records into the schema.

    A name outside the schema is an error (a typo in an engine would otherwise
    silently drop a result), and so is a variable the ``engine`` must produce but did
    not (with ``engine=None``: the variables every engine must produce).
    ``batch_dim``: the records carry a leading batch axis (a batched stock-flow run),
    which becomes this first dimension (e.g. :data:`AREA_DIM`; no coordinate set)."""
    names = set(records[0])
    unknown = names - set(VARIABLES)
    if unknown:
        raise KeyError(f"engine produced variables not in the schema: {sorted(unknown)}")
    if engine is not None and engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    required = {name for name, v in VARIABLES.items()
                if (engine in v.engines if engine else set(v.engines) == set(ENGINES))}
    for year, record in zip(years, records, strict=True):
        missing = required - set(record)
        if missing:
            raise KeyError(f"{engine or 'engine'} record for {year} lacks required "
                           f"variables: {sorted(missing)}")
    data_vars = {}
    for name, variable in VARIABLES.items():
        if name not in names:
            continue
        values = np.stack([np.asarray(r[name], dtype=float) for r in records])
        dims: tuple[str, ...] = ("year", *variable.dims)
        if batch_dim is not None:
            values, dims = np.ascontiguousarray(np.moveaxis(values, 1, 0)), (batch_dim, *dims)
        data_vars[name] = (dims, values,
                           {"units": variable.unit, "long_name": variable.definition})
    coords: dict[str, Any] = {"year": np.asarray(years, dtype=int)}
    for dim, labels in COORDS.items():
        if any(dim in VARIABLES[n].dims for n in names):
            coords[dim] = list(labels)
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {}))


def stack_replicates(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Combine replicate datasets along a new ``replicate`` dimension."""
    combined = xr.concat(list(datasets), dim="replicate", combine_attrs="override")
    return combined.assign_coords(replicate=np.arange(len(datasets)))
