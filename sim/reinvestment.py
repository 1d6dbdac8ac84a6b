"""Savings reinvested in a sustained service: the funding path, found by fixed point.

A lever with ``sustain = "reinvest_savings"`` keeps its service going after the
programme money ends, funded only from what the scenario saves (docs/levers.md):

    money(t) = min(ceiling, share x savings(t - lag))        for t after the end year
    savings(t) = baseline cost(t) - scenario cost(t)          (2021-22 prices)

where the costs are :func:`sim.results.costs.add_costs` without the programme
component (placements, CIN work, other spend), the baseline is the same scenario with
no levers, ``ceiling`` = ``sustained_share`` x the end year's money and ``share`` =
the lever's ceiling / the sum of the ceilings of every reinvesting lever (so all the
reinvestment together never exceeds the savings made: ``tests/properties``).
Negative savings fund nothing.

Why a fixed point over whole runs: savings depend on the run, which depends on the
money.  With ``reinvest_lag_years`` >= 1, year t's money depends only on years up to
t - 1, so iterating "run, price, reallocate" from zero money fixes at least one more
year per pass: the path is exact after at most (projected years / lag) + 1 passes,
each a stock-flow run (about 15 ms).  Both engines then run with that path (the DES
engine uses the stock-flow expectation of the savings, not its own noisy ones).
"""

from __future__ import annotations

import copy
from typing import Any

from sim.engines import stockflow
from sim.engines.schema import build_dataset
from sim.model.lever_parameters import REINVESTED_KEY
from sim.model.levers import ResolvedLever, resolve_levers
from sim.model.parameters import ModelParameters
from sim.results.costs import add_costs

Config = dict[str, Any]


def reinvesting(config: Config) -> list[str]:
    """Names of the levers whose sustained service is funded from savings."""
    return [name for name, table in config.get("levers", {}).items()
            if table.get("sustain", "none") == "reinvest_savings"]


def costs_before_programmes(params: ModelParameters, config: Config) -> dict[int, float]:
    """Stock-flow cost by year, £ (2021-22 prices), without programme money."""
    result = stockflow.project(params, config)
    ds = add_costs(build_dataset(result["years"], result["records"]), params, config)
    total = ds["cost_gbp"].drop_sel(cost_component="programmes").sum("cost_component")
    return {int(y): float(v) for y, v in zip(ds["year"].values, total.values, strict=True)}


def allocate(levers: dict[str, ResolvedLever], savings_gbp_m: dict[int, float],
             years: list[int]) -> dict[str, dict[int, float]]:
    """Money reinvested per lever and year (£m) given the savings by year (£m).

    Lever n receives in year t: min(ceiling_n, max(savings(t - lag_n), 0) x
    ceiling_n / sum of all ceilings), after its end year only."""
    ceilings = {name: lever.sustained_ceiling_gbp_m for name, lever in levers.items()}
    total = sum(ceilings.values())
    out: dict[str, dict[int, float]] = {name: {} for name in levers}
    if total <= 0:
        return out
    for name, lever in levers.items():
        end = lever.end_year
        if end is None or ceilings[name] <= 0:
            continue
        lag = int(lever.values["reinvest_lag_years"])
        for year in years:
            if year <= end:
                continue
            available = max(savings_gbp_m.get(year - lag, 0.0), 0.0) * ceilings[name] / total
            out[name][year] = min(ceilings[name], available)
    return out


def with_paths(config: Config, paths: dict[str, dict[int, float]]) -> Config:
    """A copy of ``config`` carrying the reinvested money by year (after
    ``delay_years``, like the resolved programme money); levers read it from there."""
    out = copy.deepcopy(config)
    for name, path in paths.items():
        out["levers"][name][REINVESTED_KEY] = {str(year): money
                                               for year, money in path.items()}
    return out


def reinvested_paths(config: Config) -> dict[str, dict[str, float]]:
    """The reinvested money a run used, by lever and year (for provenance)."""
    return {name: dict(table.get(REINVESTED_KEY, {}))
            for name, table in config.get("levers", {}).items() if REINVESTED_KEY in table}


def with_reinvestment(params: ModelParameters, config: Config) -> Config:
    """``config`` itself when no lever reinvests; else a copy carrying the exact
    reinvestment path (see the module docstring)."""
    names = reinvesting(config)
    if not names:
        return config
    levers = {name: lever for name, lever in resolve_levers(config).items() if name in names}
    if not any(lever.sustained_ceiling_gbp_m > 0 for lever in levers.values()):
        return config  # nothing to sustain (e.g. a do-nothing layer setting sustain)
    years = list(range(params.base_year + 1, config["run"]["end_year"] + 1))
    baseline = copy.deepcopy(config)
    baseline["levers"] = {}
    base_cost = costs_before_programmes(params, baseline)
    paths: dict[str, dict[int, float]] = {name: {} for name in names}
    lag = min(int(lever.values["reinvest_lag_years"]) for lever in levers.values())
    for _ in range(len(years) // lag + 2):
        candidate = with_paths(config, paths)
        cost = costs_before_programmes(params, candidate)
        savings = {year: (base_cost[year] - cost[year]) / 1e6 for year in years}
        new = allocate(levers, savings, years)
        if new == paths:
            return candidate
        paths = new
    raise RuntimeError("reinvestment did not converge: a lag below one year?")
