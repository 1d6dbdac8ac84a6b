"""The calibration's free parameters: what the optimiser may move, why each is free,
and how the fitted values become scenario keys (:data:`CARRIED_KEYS`).

A registry of its own so the targets file (which may override bounds) and the problem
(which evaluates them) both read it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.model.flows import ExitRoute
from sim.model.spec import AGE_BAND_NAMES, ENTRY_BAND_TREND_KEYS, HAZARD_ROUTE_DECLS


def route_parameter(route: ExitRoute) -> str:
    """The free parameter of a route's extra trend: its [trends] key less the unit."""
    return route.trend_key.removesuffix("_per_year")


@dataclass(frozen=True)
class FreeParameter:
    """A parameter the optimiser may move, with the reason it is free."""

    description: str
    why: str
    low: float
    high: float
    prior_sd: float  # Gaussian prior centred on 0 (no trend); 0 = no prior
    start: float = 0.0
    needs_change: bool = False  # only identifiable when the knot lies inside the window


_TREND_WHY = ("a time-path parameter: estimate.py's slope is a crude OLS of a ratio of "
              "published counts, which mixes hazard change with changes in the age and "
              "duration mix of the stock; the fit finds the hazard trend that reproduces "
              "the published series through the model's own structure")
_CHANGE_WHY = ("starts and exits rose to 2016 and fell afterwards (adoptions peaked in 2015, "
               "reunifications fell every year from 2014): one constant slope cannot follow "
               "both regimes, and the projection should continue the latest one")
_AGE_WHY = ("entries moved differently by age over the decade (infant and 1-9 starts "
            "fell while 16+ starts rose): one entry trend for all ages misses the stock by "
            "age (history MAPE 1-4: 33 %, 16+: 20 %) and the children leaving at 18")
_ROUTE_WHY = ("exit routes moved in different directions over the decade (returned home "
              "-40 %, SGO/CAO +50 %, adoptions up then down), so the ceased-by-reason "
              "series identify route trends around the common exit trend")

FREE_PARAMETERS: dict[str, FreeParameter] = {
    "entry_trend": FreeParameter(
        "log change per year in entry hazards from the CIN pool, first year to the knot",
        _TREND_WHY, -0.1, 0.1, 0.05),
    "entry_trend_change": FreeParameter(
        "change in the entry trend after the knot (log change per year)",
        _CHANGE_WHY, -0.15, 0.15, 0.05, needs_change=True),
    "exit_trend": FreeParameter(
        "log change per year in all exit hazards from care, first year to the knot",
        _TREND_WHY, -0.1, 0.1, 0.05),
    "exit_trend_change": FreeParameter(
        "change in the exit trend after the knot (log change per year)",
        _CHANGE_WHY, -0.15, 0.15, 0.05, needs_change=True),
    # one per exit route, declared with the route (sim/model/flows.py)
    **{route_parameter(route): FreeParameter(
        f"extra log change per year in the {route.label} hazard", _ROUTE_WHY, -0.25, 0.25,
        0.05) for route in HAZARD_ROUTE_DECLS},
    **{f"entry_{band}_trend": FreeParameter(
        f"extra log change per year in entries aged {band}", _AGE_WHY, -0.15, 0.15, 0.03)
       for band in AGE_BAND_NAMES},
}

# Scenario keys of the do-nothing projection from the base year, as linear combinations
# of the fitted parameters: the latest regime's slopes carried forward.
CARRIED_KEYS: dict[str, dict[str, float]] = {
    "trends.entry_trend_per_year": {"entry_trend": 1.0, "entry_trend_change": 1.0},
    "trends.exit_trend_per_year": {"exit_trend": 1.0, "exit_trend_change": 1.0},
}
ROUTE_PARAMETERS = {**{route_parameter(route): route.trend_key for route in HAZARD_ROUTE_DECLS},
    **{f"entry_{band}_trend": key for band, key in
                       zip(AGE_BAND_NAMES, ENTRY_BAND_TREND_KEYS, strict=True)}}
CARRIED_KEYS.update({f"trends.{key}": {name: 1.0} for name, key in ROUTE_PARAMETERS.items()})
