"""Model parameters: values plus unit, bounds and source for every one.  Pure data.

``ModelParameters`` is what both engines consume (through :mod:`sim.model.rates`).
It is produced by :func:`sim.estimation.estimate.estimate_parameters` from the shipped data
for a base year; every field's provenance is in :data:`PARAMETER_INFO` and in
``ModelParameters.sources`` (which names the measures and year actually used).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class ParameterInfo:
    unit: str
    low: float
    high: float
    source: str  # a data measure, or "ASSUMPTION: ..."


PARAMETER_INFO: dict[str, ParameterInfo] = {
    "population_by_age": ParameterInfo(
        "children", 0, 2e6, "ONS mid-2020 single-year structure (population_by_single_age.csv)"
        " scaled to the base year's 0-17 total (population_0_17.csv)"),
    "births_per_year": ParameterInfo(
        "children per year", 0, 2e6, "base-year population aged 0, held flat (ASSUMPTION; scenario "
        "population.births_per_year overrides)"),
    "referral_rate_per_child_year": ParameterInfo(
        "per child per year", 0, 1, "set so the CIN pool is stationary in the base year "
        "(ASSUMPTION) given closure and entries; cin_cpp_by_area.csv"),
    "cin_closure_rate_per_year": ParameterInfo(
        "per child per year", 0, 20, "cin_children_ended_during_year / cin_31_march"),
    "cin_pool_base": ParameterInfo(
        "children", 0, 1e6, "cin_31_march - looked_after_31_march (DfE counts looked-after "
        "children as in need)"),
    "entry_rate_per_year": ParameterInfo(
        "per CIN-pool child per year, by age band", 0, 5,
        "(started_during_year__age__* - UASC starts - modelled re-entries) / CIN pool in band;"
        " pool split by age in proportion to the child population (ASSUMPTION)"),
    "repeat_start_share": ParameterInfo(
        "share of non-UASC starts", 0, 0.2,
        "mean over the last 3 years to the base year of the stock-identity gap "
        "(change in the 31 March stock - (started - ceased)), as a share of non-UASC "
        "starts: "
        "starts DfE does not count because it counts a child's first start in the year "
        "only (ASSUMPTION: the whole gap is uncounted repeat starts)"),
    "birth_entry_share": ParameterInfo(
        "share of births", 0, 0.05,
        "set so the model's equilibrium under-1 stock, given started_during_year__age__"
        "under_1, equals looked_after_31_march__age__under_1: babies who come into care "
        "at birth (pre-birth proceedings)"),
    "exit_rate_per_year": ParameterInfo(
        "per child in care per year, by route x age band", 0, 20,
        "ceased_during_year__reason__* and __age__* combined by iterative proportional "
        "fitting; adoption only under 10 (ASSUMPTION); divided by duration-weighted stock"),
    "stage_exit_multiplier": ParameterInfo(
        "relative hazard by time-in-care stage", 0, 20,
        "ceased_during_year__duration_of_last_period_of_care__* (latest year <= base; "
        "steady-state stage solve, ASSUMPTION); 1 where not published"),
    "reentry_rate_per_year": ParameterInfo(
        "per child returned home per year, by year since return", 0, 10,
        "fitted to reentry.within_1_year and within_5_years (evidence.csv)"),
    "placement_mix": ParameterInfo(
        "share of entries by stream x placement", 0, 1,
        "looked_after_31_march__placement__* and uasc_31_march__placement__* (entry mix = "
        "stock mix, ASSUMPTION: hazards do not depend on placement)"),
    "uasc_arrivals_per_year": ParameterInfo(
        "children per year", 0, 1e5, "exogenous: mean of started_during_year__uasc__uasc "
        "over the base year and the two before (uasc.arrivals_method), held flat"),
    "uasc_arrivals_base_year": ParameterInfo(
        "children per year", 0, 1e5, "started_during_year__uasc__uasc in the base year "
        "(before 2019 ASSUMPTION: 0.75 x uasc_31_march); the base year's flows only"),
    "uasc_age_share": ParameterInfo(
        "share of UASC arrivals by year of age", 0, 1,
        "uasc_31_march__age__under_16 / 16_and_over; arrivals at 14-15 and 16-17 "
        "(ASSUMPTION)"),
    "uasc_exit_rate_per_year": ParameterInfo(
        "per UASC child per year before 18", 0, 10, "ASSUMPTION (uasc.exit_rate_per_year)"),
    "entry_trend_per_year": ParameterInfo(
        "log change per year", -0.2, 0.2,
        "slope of log(started_during_year / population 0-17) over the trend window"),
    "exit_trend_per_year": ParameterInfo(
        "log change per year", -0.2, 0.2,
        "slope of log(ceased_during_year / looked_after_31_march previous year) over the "
        "trend window"),
}


@dataclass(frozen=True)
class ModelParameters:
    """Every number the engines use, for one base year.

    Shapes: bands = 5 DfE age bands, routes = 4 hazard exit routes, stages = 5
    time-in-care stages, home stages = 5, streams = 2, placements = 4.
    """

    base_year: int
    population_by_age: Array  # (18,) children by single year of age, base year
    births_per_year: float
    referral_rate_per_child_year: float
    cin_closure_rate_per_year: float
    cin_pool_base: float
    entry_rate_per_year: Array  # (bands,)
    birth_entry_share: float  # share of births entering care at birth
    exit_rate_per_year: Array  # (routes, bands), non-UASC, duration-weighted
    stage_exit_multiplier: Array  # (stages,)
    reentry_rate_per_year: Array  # (home stages,)
    placement_mix: Array  # (streams, placements), rows sum to 1
    uasc_arrivals_per_year: float  # projected years
    uasc_arrivals_base_year: float  # the base year's own (history, not the path)
    uasc_age_share: Array  # (18,) sums to 1
    uasc_exit_rate_per_year: float
    entry_trend_per_year: float
    exit_trend_per_year: float
    trend_until_year: int
    # observed base-year stock used to initialise the engines
    looked_after_base: float
    looked_after_base_by_band: Array  # (bands,) non-UASC + UASC, sums to looked_after_base
    uasc_base_by_band: Array  # (bands,)
    sources: dict[str, str] = field(default_factory=dict)
    # Published children ceasing care aged 18 in the base year (nan = no constraint):
    # the initial state's age profile within the 16+ band is shaped so the base year's
    # flow through the 18th birthday equals it (stockflow.scale_to_observed).
    turned_18_base: float = float("nan")
    # Share of the model's starts (every episode) that DfE's first-start-in-year count
    # leaves out; see PARAMETER_INFO.
    repeat_start_share: float = 0.0
    # Base-year state (month of age x model state, sim.model.spec.LAYOUT): the
    # equilibrium age x duration structure of the base-year rates scaled to the
    # published stock.  Both engines start from it.
    initial_state: Array = field(default_factory=lambda: np.zeros((0, 0)))

    def describe(self) -> list[tuple[str, str, str, str, str]]:
        """(name, value, unit, bounds, source) rows for docs and reports."""
        rows = []
        for name, info in PARAMETER_INFO.items():
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                shown = np.array2string(np.asarray(value), precision=4, separator=", ",
                                        max_line_width=10_000)
            else:
                shown = f"{value:.6g}"
            rows.append((name, shown, info.unit, f"[{info.low:g}, {info.high:g}]",
                         self.sources.get(name, info.source)))
        return rows

    def check_bounds(self) -> None:
        """Raise if an estimate falls outside its declared bounds (a data or code bug)."""
        for name, info in PARAMETER_INFO.items():
            value = np.asarray(getattr(self, name), dtype=float)
            if np.any(value < info.low) or np.any(value > info.high) or np.any(
                    ~np.isfinite(value)):
                raise ValueError(f"parameter {name} = {value} outside [{info.low}, "
                                 f"{info.high}] ({info.unit})")
