"""The results schema every engine writes (DESIGN §4): names, dimensions, units.

Engines return one record per year (a dict of arrays keyed by the names below);
:func:`build_dataset` stacks them into an ``xarray.Dataset``.  Calibration, comparison
and reports read only this layout, so they never branch on the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

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

# name -> (dimensions after "year", unit, definition)
VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "looked_after": ((), "children", "children looked after at 31 March"),
    "looked_after_by_age": (("age_group",), "children", "looked after at 31 March by age"),
    "looked_after_by_placement": (("placement",), "children",
                                  "looked after at 31 March by placement type"),
    "looked_after_by_stage": (("care_stage",), "children",
                              "looked after at 31 March by time-in-care stage"),
    "looked_after_uasc": ((), "children", "unaccompanied asylum-seeking children looked "
                          "after at 31 March"),
    "looked_after_by_stream": (("stream",), "children", "looked after at 31 March by "
                               "stream: unaccompanied asylum-seeking children (uasc) and "
                               "all others (non_uasc); sums to looked_after"),
    "started": ((), "children per year", "starts of care during the year ending 31 March "
                "on DfE's basis (a child's first start in the year only): every start "
                "less the share DfE's count leaves out (ModelParameters.repeat_start_share, "
                "from the published stock identity)"),
    "started_every_episode": ((), "children per year", "every start of care during the "
                              "year (entries from the CIN pool, UASC arrivals, re-entries, "
                              "at birth): looked_after(t) - looked_after(t-1) = this - "
                              "ceased"),
    "started_by_age": (("age_group",), "children per year", "starts by age at start (DfE "
                       "basis, as started)"),
    "started_uasc": ((), "children per year", "UASC starting care"),
    "started_by_stream": (("stream",), "children per year", "starts by stream on DfE's "
                          "basis, as started (every start in the stream x (1 - "
                          "repeat_start_share)); re-entries and entries at birth are "
                          "non_uasc; sums to started"),
    "ceased": (("reason",), "children per year", "children who ceased to be looked after, "
               "by reason (turned_18 = on the 18th birthday)"),
    "ceased_by_stream": (("stream", "reason"), "children per year", "ceased by stream "
                         "and reason; sums over stream to ceased"),
    "returned_home": ((), "children per year", "children who ceased care by returning "
                      "home (reunification)"),
    "reentered": ((), "children per year", "children who came back into care after "
                  "returning home (within the tracked five years)"),
    "home_after_care": ((), "children", "children at home within five years of returning "
                        "from care, at 31 March"),
    "cin_pool": ((), "children", "children in need not looked after, at 31 March"),
    "cin": ((), "children", "children in need at 31 March, DfE definition (includes "
            "looked-after children)"),
    "cin_referrals": ((), "children per year", "children entering the CIN pool"),
    "family_help_served": ((), "children per year", "children served by funded family "
                           "help"),
    "programme_cost_gbp": ((), "GBP per year", "spending on funded programmes (levers)"),
    # discrete-event engine only (sim/engines/des/; docs/des.md)
    "started_first_in_year": ((), "children per year", "children who started care during "
                              "the year, each counted once (DfE definition: a child's "
                              "first start in the year); NaN in the base year"),
    "foster_waiting": ((), "children", "children in care waiting for a foster place at 31 "
                       "March, placed meanwhile in capacity.foster_overflow_placement "
                       "(only with capacity.foster_places)"),
    "foster_wait_months": ((), "months", "mean wait of the children who had to wait for "
                           "a foster place and whose wait ended during the year (place "
                           "found, or left care while waiting); NaN if none"),
    "family_help_waiting": ((), "children", "children referred for family help and still "
                            "waiting for a place at 31 March (only with "
                            "capacity.family_help_places)"),
    "family_help_wait_months": ((), "months", "mean wait of the children who had to wait "
                                "for family help and whose wait ended during the year (help "
                                "started, or left the CIN pool while waiting); NaN if none"),
    # added after the run by sim.model.costs.add_costs (engine-independent)
    "cost_gbp": (("cost_component",), f"GBP per year ({PRICE_BASE})",
                 "children's social care cost in the year by component: placements "
                 "(average of the bounding 31 March stocks x unit cost), children in "
                 "need, other spend, programmes"),
    "cost_gbp_cash": (("cost_component",), "GBP per year (cash)",
                      "cost_gbp in cash (nominal) terms: cost_gbp x price_index; the "
                      "review's 'over £15bn' is a cash figure"),
    "price_index": ((), "ratio to 2021-22 prices",
                    "general price level, 1 in the base year, rising by "
                    "costs.inflation_per_year (ASSUMPTION: 2 %)"),
}


def split_by_stream(total: ArrayLike, uasc: ArrayLike) -> np.ndarray:
    """A result by stream (``spec.STREAMS`` first, then the total's own dimensions) from
    its total and its UASC part.

    The engines use it where only the UASC part is counted separately (starts: the UASC
    stream's only inflow is arrivals; stock-flow exits: UASC counters beside all-stream
    counters), so the streams sum to the total and the totals stay exactly what they
    were before streams were reported.
    """
    total_values = np.asarray(total, dtype=float)
    values = np.zeros((len(spec.STREAMS), *total_values.shape))
    values[spec.STREAMS.index("uasc")] = uasc
    values[spec.STREAMS.index("non_uasc")] = total_values - values[spec.STREAMS.index("uasc")]
    return values


def build_dataset(years: Sequence[int], records: Sequence[dict[str, Any]],
                  attrs: dict[str, Any] | None = None) -> xr.Dataset:
    """Stack per-year records into the schema; unknown names are an error (a typo in
    an engine would otherwise silently drop a result)."""
    names = set(records[0])
    unknown = names - set(VARIABLES)
    if unknown:
        raise KeyError(f"engine produced variables not in the schema: {sorted(unknown)}")
    data_vars = {}
    for name in VARIABLES:
        if name not in names:
            continue
        dims, unit, definition = VARIABLES[name]
        values = np.stack([np.asarray(r[name], dtype=float) for r in records])
        data_vars[name] = (("year", *dims), values, {"units": unit, "long_name": definition})
    coords: dict[str, Any] = {"year": np.asarray(years, dtype=int)}
    for dim, labels in COORDS.items():
        if any(dim in VARIABLES[n][0] for n in names):
            coords[dim] = list(labels)
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {}))


def stack_replicates(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Combine replicate datasets along a new ``replicate`` dimension."""
    combined = xr.concat(list(datasets), dim="replicate", combine_attrs="override")
    return combined.assign_coords(replicate=np.arange(len(datasets)))
