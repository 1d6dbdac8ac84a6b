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

Price bases.  ``cost_gbp`` is in **2021-22 prices** (the base year).  Unit costs can
grow in real terms: ``costs.real_growth_per_year`` for every placement and CIN work,
times a component's own ``costs.<component>_real_growth_per_year`` (all default 0:
constant real unit costs, as before; the evidence-derived rates and ranges are in
:data:`COST_PARAMETERS`, recomputed from ``la_spending_s251.csv.gz`` and
``unit_cost_or_spend.csv`` by :func:`s251_unit_cost_growth`).  ``cost_gbp_cash`` is the
same cost in **cash** (nominal) terms: ``cost_gbp`` x ``price_index``, the index being
1 in the base year and rising by ``costs.inflation_per_year`` (ASSUMPTION: 2 %, the
Bank of England's inflation target; no price index is shipped).  The review's "over
£15bn" is a cash figure.  Savings are discounted at ``costs.discount_rate`` (3.5 %, HM
Treasury Green Book) to the base year by :mod:`sim.results.compare`, in 2021-22 prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from sim.errors import InputError
from sim.model import spec
from sim.model.fields import Field

if TYPE_CHECKING:
    from sim.model.parameters import ModelParameters

PRICE_BASE = "2021-22 prices"
CASH = "cash (2021-22 prices x price_index)"
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


# ASSUMPTION: general price rise per year over 2010-2014, the section 251 years: the
# same 15 % over eight years as PRICE_UPLIFT_2014_TO_2022 (no deflator is shipped).
HISTORICAL_INFLATION_PER_YEAR = PRICE_UPLIFT_2014_TO_2022 ** (1 / 8) - 1

# cost component -> its own real-growth key ([costs]); placements follow spec.PLACEMENTS.
COMPONENT_GROWTH_KEYS: dict[str, str] = {
    "foster": "foster_real_growth_per_year",
    "kinship_foster": "kinship_foster_real_growth_per_year",
    "residential": "residential_real_growth_per_year",
    "other_placement": "other_placement_real_growth_per_year",
    "children_in_need": "cin_real_growth_per_year",
    "other_childrens_social_care": "other_spend_real_growth_per_year",
}
_REAL = (" Real = cash growth less the ASSUMPTION price rise of 1.76 % a year (15 % over "
         "2014-2022).  Default 0 (constant real unit costs)")

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
    "foster_real_growth_per_year": CostParameter(
        "per year", 0.0, 0.0, 0.017,
        "high: DERIVED from la_spending_s251.csv.gz, fostering services per foster child "
        "£26,658 (2010-11) -> £29,516 (2013-14) = +3.4 % a year cash, +1.7 % real." + _REAL),
    "kinship_foster_real_growth_per_year": CostParameter(
        "per year", 0.0, 0.0, 0.017,
        "ASSUMPTION: as foster care (no national kinship-foster count before 2019 to "
        "divide section 251 'children placed with family and friends' by)." + _REAL),
    "residential_real_growth_per_year": CostParameter(
        "per year", 0.0, -0.033, 0.052,
        "DERIVED: low, la_spending_s251.csv.gz residential care per child in residential "
        "care £129,962 (2010-11) -> £123,758 (2013-14) = -1.6 % a year cash, -3.3 % real; "
        "high, section 251 2013-14 -> CMA 2021 largest providers' price £3,830 a week "
        "(unit_cost_or_spend.csv, £199,700 a year) = +7.1 % a year cash, +5.2 % real "
        "(different sources: an upper end)." + _REAL),
    "other_placement_real_growth_per_year": CostParameter(
        "per year", 0.0, 0.0, 0.015,
        "high: DERIVED from la_spending_s251.csv.gz, all looked-after-children spend per "
        "child looked after £46,753 (2009-10) -> £53,225 (2013-14) = +3.3 % a year cash, "
        "+1.5 % real." + _REAL),
    "cin_real_growth_per_year": CostParameter(
        "per year", 0.0, -0.026, 0.015,
        "low: DERIVED from la_spending_s251.csv.gz, safeguarding + family support per "
        "CIN-pool child £9,480 (2012-13) -> £9,398 (2013-14) = -0.9 % cash, -2.6 % real "
        "(one year: the only years with both series); high: the all looked-after "
        "spend per child, +1.5 % real." + _REAL),
    "other_spend_real_growth_per_year": CostParameter(
        "per year", 0.0, 0.0, 0.015,
        "ASSUMPTION: leaving care, adoption and SGO support, UASC, legal and overheads "
        "held flat in real terms; high: as all looked-after spend per child (+1.5 % "
        "real, la_spending_s251.csv.gz 2009-10 -> 2013-14)"),
    "inflation_per_year": CostParameter(
        "per year", 0.02, 0.01, 0.03,
        "ASSUMPTION: the Bank of England's 2 % inflation target as the general price "
        "rise after 2021-22 (cash = 2021-22 prices x (1 + rate)^(year - 2022)); no price "
        "index or later outturn is shipped"),
}

# Keys that change only cash figures (not 2021-22 prices): sensitivity skips them.
CASH_ONLY_KEYS: tuple[str, ...] = ("inflation_per_year",)
_GROWTH_FIELD_KEYS = ("real_growth_per_year", "inflation_per_year",
                      *COMPONENT_GROWTH_KEYS.values())

COST_FIELDS: dict[str, Field] = {
    **{key: Field(float, parameter.value, f"{parameter.unit}, {PRICE_BASE}: "
                  f"{parameter.source}", 0, 1e7)
       for key, parameter in COST_PARAMETERS.items() if key not in _GROWTH_FIELD_KEYS},
    "real_growth_per_year": Field(float, 0.0, "real growth of placement and CIN unit "
                                  "costs per year (0 = constant 2021-22 prices)", -0.1, 0.2),
    **{key: Field(float, 0.0, f"real growth per year of this component's unit cost, "
                  f"on top of real_growth_per_year (0 = none); evidence range "
                  f"{COST_PARAMETERS[key].low:g} to {COST_PARAMETERS[key].high:g}",
                  -0.1, 0.2)
       for key in COMPONENT_GROWTH_KEYS.values()},
    "inflation_per_year": Field(float, 0.02, "general price rise per year after the base "
                                "year: cost_gbp_cash = cost_gbp x (1 + rate)^(year - base "
                                "year) (ASSUMPTION: Bank of England 2 % target)", -0.05, 0.2),
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


def add_costs(ds: xr.Dataset, params: ModelParameters, config: dict[str, Any]) -> xr.Dataset:
    """Return ``ds`` with ``cost_gbp`` (year x cost_component, £ per year, 2021-22
    prices), ``cost_gbp_cash`` (the same in cash), ``price_index`` and cost
    attributes; replaces existing ones (re-pricing).

    Programme money is the run's own ``programme_cost_gbp`` when the dataset has it
    (so money the run decided, such as savings reinvested by :mod:`sim.reinvestment`,
    is priced exactly as it was spent), else recomputed from the scenario's levers."""
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
    other = other_spend(ds, costs)
    if "programme_cost_gbp" in ds:
        programmes = ds["programme_cost_gbp"].astype(float)
        if "replicate" in programmes.dims:
            programmes = programmes.mean("replicate")
        programmes = programmes.drop_vars([c for c in programmes.coords if c != "year"])
    else:
        programmes = xr.DataArray(programme_costs(config, params, years), dims="year",
                                  coords={"year": ds["year"]})
    other_by_year = (xr.full_like(children_in_need, other)
                     * growth_factor(costs, "other_childrens_social_care", ds["year"], base))
    parts = [placements.sel(placement=p, drop=True) for p in spec.PLACEMENTS]
    parts += [children_in_need, other_by_year,
              programmes.broadcast_like(children_in_need)]  # over replicates, if any
    cost = xr.concat(parts, dim=xr.DataArray(list(COST_COMPONENTS), dims="cost_component",
                                             name="cost_component"))
    dims = [d for d in ("replicate", "year", "cost_component") if d in cost.dims]
    cost = cost.transpose(*dims, ...)
    out = ds.drop_vars(["cost_gbp", "cost_gbp_cash", "price_index"], errors="ignore")
    index = price_index(costs, ds["year"], base)
    out["cost_gbp"] = cost
    out["cost_gbp_cash"] = (cost * index).transpose(*dims)
    out["price_index"] = index
    from sim.results.schema import VARIABLES  # results imports the model package

    for name, price_base in (("cost_gbp", PRICE_BASE), ("cost_gbp_cash", CASH),
                             ("price_index", None)):
        _, unit, definition = VARIABLES[name]
        out[name].attrs = {"units": unit, "long_name": definition}
        if price_base:
            out[name].attrs["price_base"] = price_base
    out.attrs.update({
        "cost_price_base": PRICE_BASE,
        "cost_inflation_per_year": float(costs["inflation_per_year"]),
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


def s251_unit_cost_growth(data_dir: Path | None = None) -> dict[str, float]:
    """The cash growth rates per year the real-growth ranges above cite, recomputed from
    the shipped spending and unit-cost data (history to 2022 only), so the documented
    derivations can be checked.  Real = (1 + cash) / (1 + HISTORICAL_INFLATION) - 1."""
    import pandas as pd

    from sim.datasets import DATA_DIR, load_observed

    directory = data_dir or DATA_DIR
    frame = pd.read_csv(directory / "la_spending_s251.csv.gz", low_memory=False)
    frame = frame[frame["geography_level"] == "local_authority"]
    values = pd.to_numeric(frame["value"], errors="coerce")
    spend = values.groupby([frame["year"], frame["measure"]]).sum()
    prefix = "s251_outturn_gross__"
    observed = load_observed(2014, directory)

    def stock(measure: str, year: int) -> float:
        return observed.require(measure, year)

    def residential(year: int) -> float:
        return sum(stock(f"looked_after_31_march__placement__{m}", year) for m in (
            "secure_units_childrens_homes_and_hostels_sfr", "other_residential_settings",
            "residential_schools"))

    def per_year(first: float, last: float, years: int) -> float:
        return float((last / first) ** (1 / years) - 1)

    foster = {y: spend[(y, prefix + "fostering_services")]
              / stock("looked_after_31_march__placement__foster_total", y) for y in (2011, 2014)}
    homes = {y: spend[(y, prefix + "residential_care")] / residential(y) for y in (2011, 2014)}
    all_care = {y: spend[(y, prefix + "total_children_looked_after")]
                / stock("looked_after_31_march", y) for y in (2010, 2014)}
    cin = {y: (spend[(y, prefix + "total_safeguarding_children_and_young_peoples_services")]
               + spend[(y, prefix + "total_family_support_services")])
           / (stock("cin_31_march", y) - stock("looked_after_31_march", y)) for y in (2013, 2014)}
    cma = pd.read_csv(directory / "unit_cost_or_spend.csv")
    weekly = float(cma.loc[cma["measure"] == "largest private children's home providers "
                           "average price", "value"].iloc[0])
    return {
        "foster_cash_2011_2014": per_year(foster[2011], foster[2014], 3),
        "residential_cash_2011_2014": per_year(homes[2011], homes[2014], 3),
        "residential_cash_2014_cma_2021": per_year(homes[2014], weekly * WEEKS_PER_YEAR, 7),
        "all_looked_after_cash_2010_2014": per_year(all_care[2010], all_care[2014], 4),
        "cin_cash_2013_2014": per_year(cin[2013], cin[2014], 1),
    }


def real_rate(cash_rate: float) -> float:
    """Cash growth per year -> real growth, at the ASSUMPTION historical price rise."""
    return (1 + cash_rate) / (1 + HISTORICAL_INFLATION_PER_YEAR) - 1
