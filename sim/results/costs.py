"""Prices a results dataset: ``cost_gbp`` by component, in 2021-22 prices and cash.

A post-processing step (see :mod:`sim.model.costs` for the components, unit costs and
their sources): costs are linear in stocks every engine reports plus programme money
that depends only on the scenario, so pricing after the run keeps the engines free of
prices and lets ``cicsim sensitivity`` re-price a run without re-running it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from sim.engines.schema import VARIABLES
from sim.errors import InputError
from sim.model import spec
from sim.model.costs import (
    CASH,
    COMPONENT_GROWTH_KEYS,
    COST_COMPONENTS,
    PLACEMENT_COST_KEYS,
    PRICE_BASE,
)
from sim.model.levers import lever_effects
from sim.model.parameters import ModelParameters


def _year_average(stock: xr.DataArray) -> xr.DataArray:
    """Mean of the 31 March stocks that bound each year (first year: its own stock)."""
    previous = stock.shift(year=1)
    return xr.where(previous.notnull(), (stock + previous) / 2, stock)


def placement_unit_costs(costs: dict[str, Any]) -> xr.DataArray:
    return xr.DataArray([float(costs[key]) for key in PLACEMENT_COST_KEYS],
                        dims="placement", coords={"placement": list(spec.PLACEMENTS)})


def base_year_costs(looked_after_by_placement: xr.DataArray, cin_pool: xr.DataArray,
                    costs: dict[str, Any]) -> float:
    """Placement + CIN cost of the base year (the first year in the data)."""
    placement = (placement_unit_costs(costs) * looked_after_by_placement).sum("placement")
    total = placement + float(costs["cin_gbp_per_child_year"]) * cin_pool
    return float(total.mean())  # mean over replicates, if any


def other_spend(ds: xr.Dataset, costs: dict[str, Any]) -> float:
    """The fixed "other children's social care" amount (set, or the base-year residual)."""
    if costs["other_spend_gbp_per_year"] != "estimate":
        return float(costs["other_spend_gbp_per_year"])
    first = ds.isel(year=0)
    bottom_up = base_year_costs(first["looked_after_by_placement"], first["cin_pool"], costs)
    residual = float(costs["base_year_total_gbp"]) - bottom_up
    if residual < 0:
        raise InputError(
            f"costs: base-year placement and CIN costs (£{bottom_up / 1e9:.2f}bn) exceed "
            f"costs.base_year_total_gbp (£{float(costs['base_year_total_gbp']) / 1e9:.2f}bn)"
            "; lower the unit costs or set costs.other_spend_gbp_per_year")
    return residual


def programme_costs(config: dict[str, Any], params: ModelParameters,
                    years: list[int]) -> list[float]:
    return [lever_effects(config, params, year).programme_cost_gbp for year in years]


def growth_factor(costs: dict[str, Any], component: str, years: xr.DataArray,
                  base_year: int) -> xr.DataArray:
    """Real unit-cost factor by year for one cost component (1 in the base year):
    ((1 + common) x (1 + component rate))^(year - base year), the common rate
    applying to placements and CIN work only."""
    common = 0.0 if component == "other_childrens_social_care" else float(
        costs["real_growth_per_year"])
    rate = (1 + common) * (1 + float(costs[COMPONENT_GROWTH_KEYS[component]]))
    return xr.DataArray(rate ** (years.values - base_year), dims="year",
                        coords={"year": years})


def price_index(costs: dict[str, Any], years: xr.DataArray, base_year: int) -> xr.DataArray:
    """Cash / 2021-22 prices by year: (1 + inflation_per_year)^(year - base year)."""
    return xr.DataArray((1 + float(costs["inflation_per_year"]))
                        ** (years.values - base_year), dims="year", coords={"year": years})


def area_other_spend(area_ds: xr.Dataset, national_ds: xr.Dataset,
                     costs: dict[str, Any]) -> xr.DataArray:
    """Each area's share of England's "other children's social care" amount, in
    proportion to its base-year placement + CIN cost (ASSUMPTION: other spend scales
    with the children an authority looks after and works with; the amount is national,
    ``costs.base_year_total_gbp`` being England's).  ``national_ds``: the national
    run's base year is enough."""
    first, national = area_ds.isel(year=0, drop=True), national_ds.isel(year=0)
    placements = (placement_unit_costs(costs) * first["looked_after_by_placement"]
                  ).sum("placement")
    bottom_up = placements + float(costs["cin_gbp_per_child_year"]) * first["cin_pool"]
    if "replicate" in bottom_up.dims:
        bottom_up = bottom_up.mean("replicate")
    national_bottom_up = base_year_costs(national["looked_after_by_placement"],
                                         national["cin_pool"], costs)
    return other_spend(national_ds, costs) * bottom_up / national_bottom_up


def add_costs(ds: xr.Dataset, params: ModelParameters, config: dict[str, Any],
              other: float | xr.DataArray | None = None) -> xr.Dataset:
    """Return ``ds`` with ``cost_gbp`` (year x cost_component, £ per year, 2021-22
    prices), ``cost_gbp_cash`` (the same in cash), ``price_index`` and cost
    attributes; replaces existing ones (re-pricing).

    Programme money is the run's own ``programme_cost_gbp`` when the dataset has it
    (so money the run decided, such as savings reinvested by :mod:`sim.reinvestment`,
    is priced exactly as it was spent), else recomputed from the scenario's levers.
    ``other``: the "other spend" amount (by area in an area run:
    :func:`area_other_spend`), else :func:`other_spend` of ``ds``."""
    costs = config["costs"]
    years = [int(y) for y in ds["year"].values]
    base = params.base_year
    placement_growth = xr.concat(
        [growth_factor(costs, c, ds["year"], base)
         for c in COST_COMPONENTS[:len(spec.PLACEMENTS)]],
        dim=xr.DataArray(list(spec.PLACEMENTS), dims="placement", name="placement"))
    stock = _year_average(ds["looked_after_by_placement"])
    placements = stock * placement_unit_costs(costs) * placement_growth
    children_in_need = (_year_average(ds["cin_pool"]) * float(costs["cin_gbp_per_child_year"])
                        * growth_factor(costs, "children_in_need", ds["year"], base))
    other = other_spend(ds, costs) if other is None else other
    if "programme_cost_gbp" in ds:
        programmes = ds["programme_cost_gbp"].astype(float)
        if "replicate" in programmes.dims:
            programmes = programmes.mean("replicate")
        programmes = programmes.drop_vars([c for c in programmes.coords if c != "year"
                                           and "area" not in programmes[c].dims])
    else:
        programmes = xr.DataArray(programme_costs(config, params, years), dims="year",
                                  coords={"year": ds["year"]})
    other_by_year = ((xr.zeros_like(children_in_need) + other)
                     if isinstance(other, xr.DataArray) else xr.full_like(children_in_need, other))
    other_by_year = (other_by_year
                     * growth_factor(costs, "other_childrens_social_care", ds["year"], base))
    parts = [placements.sel(placement=p, drop=True) for p in spec.PLACEMENTS]
    parts += [children_in_need, other_by_year,
              programmes.broadcast_like(children_in_need)]  # over replicates, if any
    cost = xr.concat(parts, dim=xr.DataArray(list(COST_COMPONENTS), dims="cost_component",
                                             name="cost_component"))
    dims = [d for d in ("area", "draw", "replicate", "year", "cost_component")
            if d in cost.dims]
    cost = cost.transpose(*dims, ...)
    out = ds.drop_vars(["cost_gbp", "cost_gbp_cash", "price_index"], errors="ignore")
    index = price_index(costs, ds["year"], base)
    out["cost_gbp"] = cost
    out["cost_gbp_cash"] = (cost * index).transpose(*dims, ...)
    out["price_index"] = index
    for name, price_base in (("cost_gbp", PRICE_BASE), ("cost_gbp_cash", CASH),
                             ("price_index", None)):
        unit, definition = VARIABLES[name].unit, VARIABLES[name].definition
        out[name].attrs = {"units": unit, "long_name": definition}
        if price_base:
            out[name].attrs["price_base"] = price_base
    out.attrs.update({
        "cost_price_base": PRICE_BASE,
        "cost_inflation_per_year": float(costs["inflation_per_year"]),
        "cost_discount_rate": float(costs["discount_rate"]),
        "cost_other_spend_gbp_per_year": float(np.sum(other)),  # all areas, if any
        "cost_base_year_total_gbp": float(cost.isel(year=0).sum(
            [d for d in ("area", "cost_component") if d in cost.dims]).mean()),
    })
    return out
