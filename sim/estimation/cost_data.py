"""Unit-cost derivations recomputed from the shipped section 251 spending data, so
the figures :data:`sim.model.costs.COST_PARAMETERS` cites can be checked, not trusted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim.datasets import DATA_DIR, load_observed
from sim.model.costs import WEEKS_PER_YEAR


def s251_reference_costs(data_dir: Path | None = None) -> dict[str, float]:
    """The 2013-14 section 251 figures the unit-cost defaults cite, recomputed from the
    shipped data (so the documented derivations can be checked, not just trusted)."""
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
