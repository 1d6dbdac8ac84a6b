"""The funding levers' parameters: names, evidence-based defaults and ranges with their
sources, and the scenario table each lever takes.  Pure data.

Kept apart from :mod:`sim.model.levers` (which turns money into effects on hazards) so
the evidence tables can be read, documented and checked on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.model.costs import COST_PARAMETERS, PRICE_BASE
from sim.model.fields import Field

LEVER_NAMES: tuple[str, ...] = ("family_help", "reunification_support", "kinship_support",
                                "foster_recruitment", "other_programmes")

ESTIMATE = "estimate"  # in a lever table: use this lever's documented default


@dataclass(frozen=True)
class LeverParameter:
    """One step of a lever chain: central value, plausible range, unit and source."""

    unit: str
    value: float
    low: float  # plausible range, varied one at a time by ``cicsim sensitivity``
    high: float
    source: str  # evidence / data row, or "ASSUMPTION: ..."
    caveat: str = ""


_LAG = "ASSUMPTION: commissioning and recruiting staff before families are served"
_RAMP = "ASSUMPTION: new services reach full effectiveness gradually (linear ramp)"

# Persistence after the programme money (service levers only; docs/levers.md).
SUSTAIN_MODES: tuple[str, ...] = ("none", "reinvest_savings", "fixed")
PERSISTENCE_PARAMETERS: dict[str, LeverParameter] = {
    "sustained_share": LeverParameter(
        "share of the programme's last-year capacity kept after its money ends", 1.0, 0.0,
        1.0,
        "ASSUMPTION (read only when sustain is not 'none'): 1 = the whole last-year "
        "service is kept; the review's Family Help money is a 'temporary injection over "
        "five years' (review.csv) after which, by its stated intent (not in the shipped "
        "data), the service continues; 0 = it closes with the money"),
    "decay_per_year": LeverParameter(
        "share of the effect of help already given lost each year", 1.0, 0.3, 1.0,
        "ASSUMPTION: 1 = the effect lasts only while help is given (the model without "
        "persistence); the trials saw effects last about two years (FGC: 19 % fewer "
        "looked after at 12 months, 17 % fewer proceedings at 21 months; Supporting "
        "Families: 32 % lower at 19-24 months; evidence.csv), i.e. about 0.5 a year",
        "follow-up ends at two years: nothing in the evidence shows effects lasting "
        "longer (a decay below 0.3 is beyond it)"),
    "reinvest_lag_years": LeverParameter(
        "years from savings made to savings reinvested (whole years)", 1.0, 1.0, 2.0,
        "ASSUMPTION (read only when sustain = 'reinvest_savings'): savings are known "
        "at the year-end outturn and fund the next year's budget"),
}

LEVER_PARAMETERS: dict[str, dict[str, LeverParameter]] = {
    "family_help": {
        "unit_cost_gbp": LeverParameter(
            "GBP per child served per year", 4_000.0, 2_000.0, 8_000.0,
            "DERIVED from review.csv: about £2bn of Family Help for about 500,000 children "
            "over five years = £4,000 per child (ASSUMPTION: one year of help each)"),
        "effect": LeverParameter(
            "relative reduction in the entry hazard of children served", 0.19, 0.05, 0.32,
            "evidence.csv: family group conferencing RCT (Taylor et al. 2024), 36.2 % vs "
            "44.8 % looked after at 12 months = 19 % relative reduction; high end: "
            "Supporting Families evaluation, 32 % lower likelihood of being looked after",
            "FGC: one trial, families already at the pre-proceedings stage; Supporting "
            "Families: matched comparison (not randomised) of lower-risk families (2.5 % vs "
            "1.7 % looked after over 19-24 months); effects at national scale are usually "
            "smaller than in trials"),
        "risk_ratio": LeverParameter(
            "entry hazard of children served / CIN-pool average", 1.0, 0.5, 2.0,
            "ASSUMPTION: help reaches children at the pool's average risk; >1 = targeted "
            "at the edge of care (FGC trial controls: 44.8 % in care within a year, vs "
            "about 10 % a year for the CIN pool), <1 = broad early help (Supporting "
            "Families: 2.5 % over two years)"),
        "lag_years": LeverParameter("years from money to help", 0.5, 0.0, 1.5, _LAG),
        "ramp_up_years": LeverParameter("years to full effectiveness", 2.0, 0.0, 4.0, _RAMP),
        **PERSISTENCE_PARAMETERS,
    },
    "reunification_support": {
        "unit_cost_gbp": LeverParameter(
            "GBP per child in care supported per year", 10_000.0, 5_000.0, 20_000.0,
            "ASSUMPTION: intensive court-based family support (FDAC-like); no unit cost "
            "in the shipped data"),
        "effect": LeverParameter(
            "relative increase in the returned-home hazard of children supported", 0.48,
            0.10, 0.60,
            "evidence.csv: FDAC (Harwin et al. 2016), reunification at the end of "
            "proceedings 37 % vs 25 % = 37/25 - 1",
            "non-randomised comparison; parents misusing substances, in care "
            "proceedings; an end-of-proceedings share applied here as a hazard ratio"),
        "reentry_effect": LeverParameter(
            "relative reduction in re-entry after a supported return", 0.37, 0.10, 0.50,
            "evidence.csv: FDAC, reunified with no family disruption over 3 years 51 % "
            "vs 22 %, read as disruption 49 % vs 78 % = 1 - 49/78",
            "small non-randomised samples; disruption is not the same as re-entry"),
        "lag_years": LeverParameter("years from money to support", 0.5, 0.0, 1.5, _LAG),
        "ramp_up_years": LeverParameter("years to full effectiveness", 1.0, 0.0, 3.0, _RAMP),
        **PERSISTENCE_PARAMETERS,
    },
    "kinship_support": {
        "unit_cost_gbp": LeverParameter(
            "GBP per kinship child supported per year", 12_600.0, 8_000.0, 25_000.0,
            "DERIVED from policy_funding.csv: kinship allowance pilot, £126m over two "
            "years for 5,000 children"),
        "effect": LeverParameter(
            "relative increase in the SGO / child-arrangements exit hazard", 0.25, 0.0,
            0.60,
            "ASSUMPTION: no effect size in the shipped evidence (the Kinship charity's "
            "£4m a year saved per 100 children in kinship rather than council care is a "
            "cost, not an effect)"),
        "placement_effect": LeverParameter(
            "share of covered children's non-kin foster entries placed with kin", 0.10,
            0.0, 0.30, "ASSUMPTION"),
        "lag_years": LeverParameter("years from money to support", 0.5, 0.0, 1.5, _LAG),
        "ramp_up_years": LeverParameter("years to full effectiveness", 1.0, 0.0, 3.0, _RAMP),
        **PERSISTENCE_PARAMETERS,
    },
    "foster_recruitment": {
        "unit_cost_gbp": LeverParameter(
            "GBP per additional foster place recruited", 9_100.0, 5_000.0, 30_000.0,
            "DERIVED from review.csv: £82m foster-carer support for 9,000 additional "
            "foster carers (ASSUMPTION: one place per carer)"),
        "effect": LeverParameter(
            "share of added places taking a child who would otherwise be in residential "
            "care", 0.10, 0.02, 0.30,
            "ASSUMPTION: most new places absorb foster demand or replace agency places "
            "(a cost saving not modelled)"),
        "retention_per_year": LeverParameter(
            "share of added places still available a year later", 0.87, 0.75, 0.95,
            "ASSUMPTION: about one in eight fostering households leaves each year"),
        "lag_years": LeverParameter(
            "years from money to approved carers", 1.0, 0.5, 2.0,
            "ASSUMPTION: assessment and approval of new carers take six to eight months"),
        "ramp_up_years": LeverParameter("years to full effectiveness", 0.0, 0.0, 2.0, _RAMP),
    },
    "other_programmes": {},
}

# Which keys each lever reads (beyond the money and area keys every lever has).
LEVER_SPECIFIC_KEYS: tuple[str, ...] = ("unit_cost_gbp", "effect", "risk_ratio",
                                        "reentry_effect", "placement_effect",
                                        "retention_per_year", "lag_years", "ramp_up_years",
                                        *PERSISTENCE_PARAMETERS)
# Set by sim.reinvestment on the run's copy of the configuration (never in a file):
# money reinvested from savings, £m by year, per lever with sustain = "reinvest_savings".
REINVESTED_KEY = "_reinvested_gbp_m"

LEVER_DESCRIPTIONS: dict[str, str] = {
    "family_help": "entry to care from the children-in-need pool (eligible pool: CIN "
                   "pool, base year)",
    "reunification_support": "returned-home hazard and re-entry (eligible pool: non-UASC "
                             "children in care, base year)",
    "kinship_support": "SGO / child-arrangements exits and kinship placements (eligible "
                       "pool: non-UASC children in care, base year)",
    "foster_recruitment": "placement mix, residential -> foster (eligible pool: non-UASC "
                          "children in residential care, base year)",
    "other_programmes": "no modelled effect: programme cost only",
}

LEVER_TABLE_FIELDS: dict[str, Field] = {
    "funding_gbp_m": Field(
        "year_table", {}, "money by year ending 31 March, £m (\"2024\" = 2023-24)", 0, 1e5),
    "delay_years": Field(int, 0, "move the whole programme this many years later", 0, 30),
    "area_share": Field(
        "prob", 1.0, "share of England's children living in the funded areas (1 = "
        "national; Families First pathfinders about 12/152)"),
    "area_share_by_year": Field(
        "year_table", {}, "area_share from a year onwards (overrides area_share from the "
        "first listed year; e.g. pathfinders then national)", 0, 1),
    "areas": Field(
        str, [], "local authorities funded (any area selectors: ONS or DfE code, name, "
        "region, pathfinders); in a run with an area dimension the money goes to these "
        "areas only, split in proportion to their eligible pools; in a national run it "
        "sets area_share to their share of England's eligible pool (docs/areas-runs.md); "
        "not with area_share", is_list=True),
    "areas_by_year": Field(
        "year_lists", {}, "areas from a year onwards (overrides areas from the first "
        "listed year; e.g. pathfinder waves); not with area_share"),
    "unit_cost_gbp": Field(float, ESTIMATE, "cost of serving one child (or adding one "
                           "foster place) for a year; estimate = the lever's default",
                           1.0, 1e7, estimate_ok=True),
    "effect": Field(float, ESTIMATE, "relative change in the lever's hazard for children "
                    "covered; estimate = the lever's evidence-based default", 0, 10,
                    estimate_ok=True),
    "risk_ratio": Field(float, ESTIMATE, "family_help only: entry hazard of children "
                        "served relative to the CIN-pool average", 0, 100, estimate_ok=True),
    "reentry_effect": Field("prob", ESTIMATE, "reunification_support only: relative "
                            "reduction in re-entry after a supported return",
                            estimate_ok=True),
    "placement_effect": Field("prob", ESTIMATE, "kinship_support only: share of covered "
                              "non-kin foster entries placed with kin", estimate_ok=True),
    "retention_per_year": Field("prob", ESTIMATE, "foster_recruitment only: share of added "
                                "places still available a year later", estimate_ok=True),
    "lag_years": Field(float, ESTIMATE, "years from money to effect", 0, 10,
                       estimate_ok=True),
    "ramp_up_years": Field(float, ESTIMATE, "years from the programme start to full "
                           "effectiveness (0 = at once)", 0, 20, estimate_ok=True),
    "sustain": Field(SUSTAIN_MODES, "none", "family_help, reunification_support, "
                     "kinship_support: does the service continue after its last year of "
                     "programme money? none (default: it stops), fixed (continues at "
                     "sustained_share of its last-year capacity, paid for), "
                     "reinvest_savings (the same, funded only from the savings it makes, "
                     "reinvest_lag_years later)"),
    "sustained_share": Field("prob", ESTIMATE, "share of the programme's last-year "
                             "capacity kept after the money ends (with sustain)",
                             estimate_ok=True),
    "decay_per_year": Field("prob", ESTIMATE, "share of the effect of help already given "
                            "lost each year (1 = the effect stops with the help)",
                            estimate_ok=True),
    "reinvest_lag_years": Field(float, ESTIMATE, "whole years from savings made to "
                                "savings reinvested (sustain = reinvest_savings)", 1, 10,
                                estimate_ok=True),
}

# Effects that are relative reductions or shares: above 1 they would make a hazard
# negative or move more than every child.
AT_MOST_ONE: dict[str, tuple[str, ...]] = {
    "family_help": ("effect",),
    "foster_recruitment": ("effect",),
}


def parameter_tables_markdown() -> str:
    """The lever and unit-cost assumption tables as Markdown (pasted into
    ``docs/levers.md``; a test keeps the two identical)."""


    lines: list[str] = []
    for name, parameters in LEVER_PARAMETERS.items():
        if not parameters:
            continue
        lines += ["", f"#### `{name}`", "",
                  "| parameter | central | range | unit | source |", "|---|---:|---|---|---|"]
        for key, p in parameters.items():
            caveat = f" Caveat: {p.caveat}" if p.caveat else ""
            lines.append(f"| `{key}` | {p.value:g} | {p.low:g} – {p.high:g} | {p.unit} | "
                         f"{p.source}{caveat} |")
    lines += ["", f"#### Unit costs ({PRICE_BASE})", "",
              "| key | central | range | unit | source |", "|---|---:|---|---|---|"]
    for key, c in COST_PARAMETERS.items():
        lines.append(f"| `costs.{key}` | {c.value:,.6g} | {c.low:,.6g} – {c.high:,.6g} | "
                     f"{c.unit} | {c.source} |")
    return "\n".join(lines).strip() + "\n"
