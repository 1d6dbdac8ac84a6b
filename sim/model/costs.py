"""What the system costs each year, in 2021-22 prices: a post-processing step on a
results dataset, so it works the same for both engines.

Why post-processing: costs are linear in stocks that every engine already reports
(children looked after by placement, the CIN pool) plus programme money that depends
only on the scenario.  Computing them after the run keeps the engines free of prices
and lets ``cicsim sensitivity`` re-price a run without re-running it.

Cost in the year ending 31 March Y (components, :data:`COST_COMPONENTS`):

- placements: unit cost per child per year x children in that placement, averaged over
  31 March Y-1 and Y (the base year: its own 31 March stock);
- children in need: cost per CIN-pool child per year x the pool, averaged the same way
  (social work, child protection and family support for children not in care);
- other children's social care (leaving care, adoption and SGO support, UASC, legal,
  overheads): a fixed amount, by default the residual that makes the **base year total
  equal the review's "£10 billion now"** (review.csv), held flat in real terms;
- programmes: lever money in the year (from :mod:`sim.model.levers`), ASSUMPTION: the
  announced cash amounts are treated as 2021-22 prices.

Price base: 2021-22 (the base year).  Unit costs can grow in real terms
(``costs.real_growth_per_year``, default 0: constant prices).  Savings are discounted at
``costs.discount_rate`` (3.5 %, HM Treasury Green Book) to the base year by
:mod:`sim.results.compare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from sim.errors import InputError
from sim.model import spec
from sim.scenarios.fields import Field

if TYPE_CHECKING:
    from sim.model.parameters import ModelParameters

PRICE_BASE = "2021-22 prices"
COST_COMPONENTS: tuple[str, ...] = ("foster", "kinship_foster", "residential",
                                    "other_placement", "children_in_need",
                                    "other_childrens_social_care", "programmes")
# placement (spec.PLACEMENTS order) -> [costs] key
PLACEMENT_COST_KEYS: tuple[str, ...] = ("foster_gbp_per_year", "kinship_foster_gbp_per_year",
                                        "residential_gbp_per_year",
                                        "other_placement_gbp_per_year")

# ASSUMPTION: prices rose by about 15 % from 2013-14 to 2021-22 (roughly the GDP
# deflator; no price index is shipped).  Used only to uprate the section 251 reference
# unit costs below, which are 2013-14 figures.
PRICE_UPLIFT_2014_TO_2022 = 1.15
WEEKS_PER_YEAR = 52.14


@dataclass(frozen=True)
class CostParameter:
    """A unit cost or cost assumption with its plausible range and source."""

    unit: str
    value: float
    low: float
    high: float
    source: str


COST_PARAMETERS: dict[str, CostParameter] = {
    "foster_gbp_per_year": CostParameter(
        "GBP per child per year", 36_000.0, 29_500.0, 42_800.0,
        "ASSUMPTION between section 251 2013-14 fostering services £1.515bn / 51,340 "
        "foster children = £29,500 (all foster incl. kinship, 2013-14 prices; "
        "la_spending_s251.csv.gz) and the CMA 2021 independent fostering agency price "
        "£820 a week = £42,800 (unit_cost_or_spend.csv)"),
    "kinship_foster_gbp_per_year": CostParameter(
        "GBP per child per year", 20_000.0, 10_000.0, 29_500.0,
        "ASSUMPTION: allowances and support for family and friends foster carers, below "
        "the average foster cost (section 251 2013-14 average £29,500 is the high end)"),
    "residential_gbp_per_year": CostParameter(
        "GBP per child per year", 3_830 * WEEKS_PER_YEAR, 142_000.0, 318_400.0,
        "CMA 2021: largest providers' children's homes £3,830 a week "
        "(unit_cost_or_spend.csv); low: section 251 2013-14 residential care £1.021bn / "
        "8,250 children x 1.15 price uplift; high: NAO 2023-24 £318,400 (later prices)"),
    "other_placement_gbp_per_year": CostParameter(
        "GBP per child per year", 30_000.0, 15_000.0, 60_000.0,
        "ASSUMPTION: placed with parents (cheap), semi-independent accommodation "
        "(expensive), placed for adoption, independent living"),
    "cin_gbp_per_child_year": CostParameter(
        "GBP per CIN-pool child per year", 10_800.0, 8_000.0, 14_000.0,
        "section 251 2013-14 safeguarding £2.026bn + family support £1.044bn / CIN pool "
        "at 31 March 2014 (395,480 - 68,790) = £9,400, x 1.15 price uplift (ASSUMPTION); "
        "high: the review's £14,000 social cost per child needing a social worker"),
    "real_growth_per_year": CostParameter(
        "per year", 0.0, 0.0, 0.03,
        "ASSUMPTION: unit costs of placements and CIN work constant in real terms "
        "(residential prices rose faster than inflation in 2014-2024)"),
}

COST_FIELDS: dict[str, Field] = {
    **{key: Field(float, parameter.value, f"{parameter.unit}, {PRICE_BASE}: "
                  f"{parameter.source}", 0, 1e7)
       for key, parameter in COST_PARAMETERS.items() if key != "real_growth_per_year"},
    "real_growth_per_year": Field(float, 0.0, "real growth of placement and CIN unit "
                                  "costs per year (0 = constant 2021-22 prices)", -0.1, 0.2),
    "base_year_total_gbp": Field(float, 10e9, "total children's social care spend in the "
                                 "base year, £ (review.csv: '£10 billion now')", 0, 1e12),
    "other_spend_gbp_per_year": Field(
        float, "estimate", "other children's social care spend per year, £; estimate = "
        "base_year_total_gbp minus base-year placement and CIN costs", 0, 1e12,
        estimate_ok=True),
    "discount_rate": Field(float, 0.035, "discount rate for present values (HM Treasury "
                           "Green Book 3.5 %)", 0, 0.2),
}


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
    from sim.model.levers import lever_effects  # levers imports this module

    return [lever_effects(config, params, year).programme_cost_gbp for year in years]


def add_costs(ds: xr.Dataset, params: ModelParameters, config: dict[str, Any]) -> xr.Dataset:
    """Return ``ds`` with ``cost_gbp`` (year x cost_component, £ per year, 2021-22
    prices) and cost attributes; replaces an existing ``cost_gbp`` (re-pricing)."""
    costs = config["costs"]
    years = [int(y) for y in ds["year"].values]
    growth = xr.DataArray((1 + float(costs["real_growth_per_year"]))
                          ** (np.array(years) - params.base_year),
                          dims="year", coords={"year": ds["year"]})
    stock = _year_average(ds["looked_after_by_placement"])
    placements = stock * placement_unit_costs(costs) * growth
    children_in_need = (_year_average(ds["cin_pool"]) * float(costs["cin_gbp_per_child_year"])
                        * growth)
    other = other_spend(ds, costs)
    programmes = xr.DataArray(programme_costs(config, params, years), dims="year",
                              coords={"year": ds["year"]})
    parts = [placements.sel(placement=p, drop=True) for p in spec.PLACEMENTS]
    parts += [children_in_need, xr.full_like(children_in_need, other),
              programmes.broadcast_like(children_in_need)]  # over replicates, if any
    cost = xr.concat(parts, dim=xr.DataArray(list(COST_COMPONENTS), dims="cost_component",
                                             name="cost_component"))
    dims = [d for d in ("replicate", "year", "cost_component") if d in cost.dims]
    cost = cost.transpose(*dims, ...)
    out = ds.drop_vars("cost_gbp", errors="ignore")
    out["cost_gbp"] = cost
    from sim.results.schema import VARIABLES  # results imports the model package

    _, unit, definition = VARIABLES["cost_gbp"]
    out["cost_gbp"].attrs = {"units": f"{unit}", "long_name": definition,
                             "price_base": PRICE_BASE}
    out.attrs.update({
        "cost_price_base": PRICE_BASE,
        "cost_discount_rate": float(costs["discount_rate"]),
        "cost_other_spend_gbp_per_year": other,
        "cost_base_year_total_gbp": float(cost.isel(year=0).sum("cost_component").mean()),
    })
    return out


def s251_reference_costs(data_dir: Path | None = None) -> dict[str, float]:
    """The 2013-14 section 251 figures the unit-cost defaults cite, recomputed from the
    shipped data (so the documented derivations can be checked, not just trusted)."""
    import pandas as pd

    from sim.datasets import DATA_DIR, load_observed

    directory = data_dir or DATA_DIR
    frame = pd.read_csv(directory / "la_spending_s251.csv.gz", low_memory=False)
    frame = frame[(frame["year"] == 2014) & (frame["geography_level"] == "local_authority")]
    spend = pd.to_numeric(frame["value"], errors="coerce").groupby(frame["measure"]).sum()
    prefix = "s251_outturn_gross__"
    observed = load_observed(2014, directory)
    pool = observed.require("cin_31_march", 2014) - observed.require(
        "looked_after_31_march", 2014)
    foster = observed.require("looked_after_31_march__placement__foster_total", 2014)
    residential = sum(observed.require(f"looked_after_31_march__placement__{m}", 2014) for m in (
        "secure_units_childrens_homes_and_hostels_sfr", "other_residential_settings",
        "residential_schools"))
    return {
        "foster_gbp_per_child_2014": float(spend[prefix + "fostering_services"] / foster),
        "residential_gbp_per_child_2014": float(spend[prefix + "residential_care"]
                                                / residential),
        "cin_gbp_per_pool_child_2014": float(
            (spend[prefix + "total_safeguarding_children_and_young_peoples_services"]
             + spend[prefix + "total_family_support_services"]) / pool),
    }
