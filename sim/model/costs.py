"""What the system costs: components, unit costs and their sources (pure data).

The pricing itself is a post-processing step on a results dataset
(:func:`sim.results.costs.add_costs`), so it works the same for both engines; the
derivations from the shipped spending data are in :mod:`sim.estimation.cost_data`.

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
``unit_cost_or_spend.csv`` by
:func:`sim.estimation.cost_data.s251_unit_cost_growth`).  ``cost_gbp_cash`` is the
same cost in **cash** (nominal) terms: ``cost_gbp`` x ``price_index``, the index being
1 in the base year and rising by ``costs.inflation_per_year`` (ASSUMPTION: 2 %, the
Bank of England's inflation target; no price index is shipped).  The review's "over
£15bn" is a cash figure.  Savings are discounted at ``costs.discount_rate`` (3.5 %, HM
Treasury Green Book) to the base year by :mod:`sim.results.compare`, in 2021-22 prices.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.model.fields import Field

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


def real_rate(cash_rate: float) -> float:
    """Cash growth per year -> real growth, at the ASSUMPTION historical price rise."""
    return (1 + cash_rate) / (1 + HISTORICAL_INFLATION_PER_YEAR) - 1
