"""Every key a scenario file may set: type, default, allowed range and meaning.

Defaults live here, next to their documentation; ``"estimate"`` means the value is
estimated from the shipped data for the run's base year (``sim/estimation/estimate.py``).
Sections added by other parts of the model (levers, costs, capacity) register their
fields in :data:`SECTIONS` so there is one validator for everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.datasets import FIRST_BASE_YEAR, LAST_DATA_YEAR  # noqa: F401  (re-exported)
from sim.estimation.options import UASC_ARRIVALS_METHODS
from sim.model.capacity import CAPACITY_FIELDS
from sim.model.costs import COST_FIELDS
from sim.model.fields import Field
from sim.model.lever_parameters import LEVER_NAMES, LEVER_TABLE_FIELDS
from sim.model.levers import check_lever_config
from sim.model.spec import AGE_BAND_NAMES, ENTRY_BAND_TREND_KEYS, HAZARD_ROUTE_DECLS

LAST_END_YEAR = 2060


def _run_fields() -> dict[str, Field]:
    return {
        "base_year": Field(int, LAST_DATA_YEAR, "year (ending 31 March) the projection starts "
                           "from; parameters are estimated from data up to it (the "
                           "loader checks it lies within the data)"),
        "end_year": Field(int, 2032, "last projected year (ending 31 March)",
                          FIRST_BASE_YEAR + 1, LAST_END_YEAR),
        "engine": Field(("stockflow", "des"), "stockflow", "which engine runs the model"),
        "seed": Field(int, 20220331, "root seed for the discrete-event engine", 0, 2**63 - 1),
        "replicates": Field(int, 1, "number of DES replicates", 1, 100_000),
        "population_scale": Field(float, 1.0, "DES only: simulate this fraction of England "
                                  "(results are scaled back up)", 1e-4, 1.0),
    }


SECTIONS: dict[str, dict[str, Field]] = {
    "run": _run_fields(),
    "initial": {
        "looked_after_vintage": Field(
            ("first_published", "latest"), "latest",
            "which published 31 March stock initialises the base year: DfE's latest "
            "revision (82,090 for 2022; the vintage every fit and backtest uses, so the "
            "bands apply to it) or the figure first published (82,170, the review's "
            "starting point)"),
    },
    "population": {
        "births_per_year": Field(
            float, "estimate", "births per year entering age 0 in projected years; "
            "estimate = the base year's population aged 0, held flat (ASSUMPTION; ONS "
            "mid-2019 to mid-2020 births were 600,708, sim/data/SOURCES.md)", 0, 2e6,
            estimate_ok=True),
    },
    "trends": {
        "entry_trend_per_year": Field(
            float, "estimate", "log-linear trend in the entry rate per child, per year "
            "(estimated over the trend window)", -0.2, 0.2, estimate_ok=True),
        "exit_trend_per_year": Field(
            float, "estimate", "log-linear trend in exit hazards from care, per year "
            "(estimated over the trend window)", -0.2, 0.2, estimate_ok=True),
        "window_years": Field(int, 7, "years of history (ending at the base year) used to "
                              "estimate trends", 2, 10),
        "continue_until": Field(int, LAST_END_YEAR, "trends stop changing after this year "
                                "(ASSUMPTION: by default they continue)", FIRST_BASE_YEAR,
                                LAST_END_YEAR),
        # Trend treatment (sim/model/rates.py effective_years; chosen by rolling-origin
        # skill, `cicsim backtest`).  The default keeps the old compounding behaviour;
        # the generated forecast layer sets the chosen treatment for baseline.
        "method": Field(("linear", "damped", "hold", "stop_after"), "linear",
                        "how trend slopes carry forward from the base year: linear "
                        "(compound for ever), damped (slope fades by `damping` a year), "
                        "hold (base-year rates), stop_after (`stop_after_years` then flat)"),
        "entry_damping": Field(float, 1.0, "damped trend factor phi per year for entry "
                               "hazards (1 = linear, 0 = hold)", 0.0, 1.0),
        "exit_damping": Field(float, 1.0, "damped trend factor phi per year for exit "
                              "hazards (1 = linear, 0 = hold)", 0.0, 1.0),
        "stop_after_years": Field(int, 1, "years a trend continues under method = "
                                  "stop_after", 0, 50),
        "floor": Field(float, 0.0, "no trend takes a hazard below this share of its "
                       "base-year value (0 = no floor)", 0.0, 1.0),
        "ceiling": Field(float, 1000.0, "no trend takes a hazard above this multiple of "
                         "its base-year value", 1.0, 1000.0),
        # Entry trends by age band (extra to entry_trend_per_year): entries moved
        # differently by age (infant and 1-9 starts fell while 16+ starts rose).
        **{key: Field(float, 0.0, f"extra log-linear trend in entries aged {band} (added "
                      "to entry_trend_per_year)", -0.3, 0.3)
           for key, band in zip(ENTRY_BAND_TREND_KEYS, AGE_BAND_NAMES, strict=True)},
        # Piecewise-linear trends and route-specific exit trends: set by calibration
        # (sim/calibration, docs/calibration.md); the defaults change nothing.
        "trend_change_year": Field(int, LAST_END_YEAR, "year after which the entry and exit "
                                   "trends change by the *_trend_change_per_year values",
                                   FIRST_BASE_YEAR - 10, LAST_END_YEAR),
        "entry_trend_change_per_year": Field(float, 0.0, "change in the entry trend after "
                                             "trend_change_year (log change per year)",
                                             -0.4, 0.4),
        "exit_trend_change_per_year": Field(float, 0.0, "change in the exit trend after "
                                            "trend_change_year (log change per year)",
                                            -0.4, 0.4),
        # one per exit route, declared with the route (sim/model/flows.py)
        **{route.trend_key: Field(float, 0.0, f"extra log-linear trend in the {route.label} "
                                  "hazard (added to the exit trend)", -0.3, 0.3)
           for route in HAZARD_ROUTE_DECLS},
    },
    "rates": {
        "entry_multiplier": Field(float, 1.0, "multiplies entry hazards from the CIN pool",
                                  0, 10),
        "referral_multiplier": Field(float, 1.0, "multiplies referrals into the CIN pool",
                                     0, 10),
        "cin_closure_multiplier": Field(float, 1.0, "multiplies CIN closure", 0, 10),
        # one per exit route, declared with the route (sim/model/flows.py)
        **{route.multiplier_key: Field(float, 1.0, f"multiplies the {route.label} hazard",
                                       0, 10) for route in HAZARD_ROUTE_DECLS},
        "reentry_multiplier": Field(float, 1.0, "multiplies re-entry hazards", 0, 10),
    },
    "reentry": {
        "within_1_year": Field("prob", 0.20, "share of children returned home who are back "
                               "in care within a year (Goldacre/Hood et al. BJSW 2022, "
                               "evidence.csv)", 0, 1),
        "within_5_years": Field("prob", 0.30, "share back in care within five years (DfE "
                                "analysis via NSPCC, evidence.csv)", 0, 1),
    },
    "uasc": {
        "arrivals_per_year": Field(
            float, "estimate", "UASC starting care per year in projected years, an "
            "exogenous path (migration-driven, not a care hazard); estimate = the "
            "default set by arrivals_method, held flat", 0, 1e5, estimate_ok=True),
        "arrivals_method": Field(
            UASC_ARRIVALS_METHODS, "mean_last_3", "how arrivals_per_year = \"estimate\" is "
            "set: mean_last_3 = mean of UASC starts in the base year and the two before "
            "(published from 2019; earlier years 0.75 x the 31 March UASC stock, "
            "ASSUMPTION); base_year = the base year's UASC starts alone (the default "
            "before issue 8)"),
        "exit_rate_per_year": Field(
            float, 0.10, "ASSUMPTION: hazard of a UASC leaving care before 18", 0, 10),
        "arrivals_by_year": Field(
            "year_table", {}, "UASC starting care in given years (overrides "
            "arrivals_per_year in those years; calibration feeds the published history)",
            0, 1e5),
    },
    "capacity": CAPACITY_FIELDS,  # sim/model/capacity.py (DES engine)
    "costs": COST_FIELDS,  # sim/model/costs.py
    # Prediction intervals (sim/results/bands.py): written by `cicsim backtest` into
    # scenarios/layers/forecast.toml; empty lists mean no bands.
    "bands": {
        "looked_after_log_sd": Field(float, [], "root-mean-square log error of backtest "
                                     "projections of the stock at horizons 1, 2, ...",
                                     0.0, 2.0, is_list=True),
        "started_log_sd": Field(float, [], "the same for starts", 0.0, 2.0, is_list=True),
        "ceased_log_sd": Field(float, [], "the same for ceased", 0.0, 2.0, is_list=True),
        "growth_exponent": Field(float, 1.0, "beyond the tested horizons the scale grows "
                                 "as horizon ** this", 0.0, 2.0),
        "source": Field(str, "", "where the scales came from (backtest origins, method)"),
    },
}

TOP_LEVEL: dict[str, Field] = {
    "name": Field(str, "", "scenario name (defaults to the file name)"),
    "description": Field(str, "", "one line shown in reports"),
    "kind": Field(("policy", "variant", "demo"), "policy", "what the scenario is, so reports "
                  "keep them apart: a funding policy (or its do-nothing baseline), a "
                  "modelling variant (other assumptions), or a demonstration of a feature"),
    "extends": Field(str, "", "path of the scenario this one builds on (relative to this "
                     "file)"),
}

# Sections whose keys are user-named tables (e.g. [levers.family_help]) register a
# validator for each table here: name -> fields.
TABLE_SECTIONS: dict[str, dict[str, Field]] = {"levers": LEVER_TABLE_FIELDS}

# Optional: the table names allowed in a TABLE_SECTIONS section (None = any name).
TABLE_NAMES: dict[str, tuple[str, ...]] = {"levers": LEVER_NAMES}

# Checks across keys, run after all layers are merged: f(where, config) raises InputError.
CROSS_CHECKS: list[Callable[[str, dict[str, Any]], None]] = [check_lever_config]
