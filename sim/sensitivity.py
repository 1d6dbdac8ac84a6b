"""One-at-a-time sensitivity (tornado): which assumptions move a scenario's result most.

Why one at a time: every lever step and unit cost is a named assumption with a
plausible range (``LEVER_PARAMETERS``, ``COST_PARAMETERS``).  Moving each to the ends
of its range with everything else central shows which ones the answer hangs on, and so
where better evidence would pay.  It ignores interactions (a full variance
decomposition would need thousands of runs; the stock-flow engine makes that possible
later).

Metrics, both against the baseline run with the same assumptions:

- ``kept_at_home_YEAR``: baseline - scenario children looked after at 31 March YEAR;
- ``net_saving_discounted_gbp_m``: baseline - scenario discounted cost (programmes
  included), over the projected years both runs cover.

Lever parameters are varied for every lever with money in the scenario (a lever with
no money has no effect to vary); unit costs re-price the saved runs without re-running
them.  Always the stock-flow engine: deterministic expectations, no sampling noise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from sim.estimation.cache import cached_parameters
from sim.model.costs import CASH_ONLY_KEYS, COST_PARAMETERS
from sim.model.lever_parameters import LEVER_PARAMETERS
from sim.model.levers import ResolvedLever, resolve_levers
from sim.model.parameters import ModelParameters
from sim.progress import bar as progress_bar
from sim.reinvestment import reinvesting
from sim.results.compare import common_period, cumulative_cost, from_dataset, value_in
from sim.results.costs import add_costs
from sim.run import project_stockflow
from sim.scenarios.loader import Scenario

KEPT = "kept_at_home"
NET_SAVING = "net_saving_discounted_gbp_m"


@dataclass(frozen=True)
class Assumption:
    """A scenario key to move, its central value and the ends of its plausible range."""

    key: str  # dotted scenario key, e.g. levers.family_help.effect
    central: float
    low: float
    high: float
    source: str
    reruns: bool  # True: the projection changes; False: only the costs do


def lever_assumptions(config: dict[str, Any]) -> list[Assumption]:
    """Every parameter of every lever with money, range widened to include the value
    the scenario uses (a scenario may set a value outside the default range)."""
    out = []
    for name, lever in resolve_levers(config).items():
        if not any(money > 0 for money in lever.funding_gbp_m.values()):
            continue
        for key, parameter in LEVER_PARAMETERS[name].items():
            if not _read_by(lever, key):
                continue  # e.g. sustained_share of a service that stops with its money
            value = lever.values[key]
            out.append(Assumption(f"levers.{name}.{key}", value, min(parameter.low, value),
                                  max(parameter.high, value), parameter.source, True))
    return out


def _read_by(lever: ResolvedLever, key: str) -> bool:
    """Does this lever's setting read ``key``?  The persistence keys are read only
    with ``sustain`` (the reinvestment lag only when reinvesting savings)."""
    if key == "sustained_share":
        return lever.sustain != "none"
    if key == "reinvest_lag_years":
        return lever.sustain == "reinvest_savings"
    return True


def cost_assumptions(config: dict[str, Any]) -> list[Assumption]:
    """Every unit cost and 2021-22-price growth rate (not the cash-only price index).
    Prices re-price saved runs, except when savings are reinvested: then the money, so
    the projection, depends on them and each end is re-run."""
    reruns = bool(reinvesting(config))
    out = []
    for key, parameter in COST_PARAMETERS.items():
        if key in CASH_ONLY_KEYS:
            continue
        value = float(config["costs"][key])
        out.append(Assumption(f"costs.{key}", value, min(parameter.low, value),
                              max(parameter.high, value), parameter.source, reruns))
    return out


def _with(config: dict[str, Any], key: str, value: float) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    node = changed
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


def _metrics(scenario: xr.Dataset, baseline: xr.Dataset, year: int) -> dict[str, float]:
    result, reference = from_dataset(scenario), from_dataset(baseline)
    period = common_period([result, reference])
    return {
        f"{KEPT}_{year}": (value_in(reference, "looked_after", year)
                           - value_in(result, "looked_after", year)),
        NET_SAVING: (cumulative_cost(reference, True, period)
                     - cumulative_cost(result, True, period)) / 1e6,
    }


def _estimation_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config estimation can read: levers and prices never change the
    estimated parameters (levers are neutral up to the base year), so runs that differ
    only there share one estimation."""
    return {k: v for k, v in config.items()
            if k not in ("levers", "costs", "name", "description")}


def _run(params: ModelParameters, config: dict[str, Any]) -> xr.Dataset:
    ds = project_stockflow(params, config)
    return add_costs(ds, params, config)


def one_at_a_time(scenario: Scenario, baseline: Scenario, year: int = 2032,
                  progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Tornado table: one row per (assumption, metric) with the results at the low and
    high ends of the assumption's range and at the central values."""
    scenario_params = cached_parameters(scenario.config)
    baseline_params = (scenario_params if _estimation_inputs(scenario.config)
                       == _estimation_inputs(baseline.config)
                       else cached_parameters(baseline.config))
    baseline_raw = project_stockflow(baseline_params, baseline.config)
    scenario_raw = project_stockflow(scenario_params, scenario.config)
    central = _metrics(add_costs(scenario_raw, scenario_params, scenario.config),
                       add_costs(baseline_raw, baseline_params, baseline.config), year)
    baseline_central = add_costs(baseline_raw, baseline_params, baseline.config)
    rows = []
    assumptions = lever_assumptions(scenario.config) + cost_assumptions(scenario.config)
    for assumption in assumptions:
        if progress is not None:
            progress(assumption.key)
        ends: dict[str, dict[str, float]] = {}
        for end, value in (("low", assumption.low), ("high", assumption.high)):
            config = _with(scenario.config, assumption.key, value)
            if assumption.reruns and assumption.key.startswith("costs."):
                # reinvested savings: the run changes, and the baseline is re-priced
                reference_config = _with(baseline.config, assumption.key, value)
                ends[end] = _metrics(
                    _run(scenario_params, config),
                    add_costs(baseline_raw, baseline_params, reference_config), year)
            elif assumption.reruns:
                ends[end] = _metrics(_run(scenario_params, config), baseline_central, year)
            else:  # re-price both runs with the changed unit cost
                reference_config = _with(baseline.config, assumption.key, value)
                ends[end] = _metrics(
                    add_costs(scenario_raw, scenario_params, config),
                    add_costs(baseline_raw, baseline_params, reference_config), year)
        for metric, central_value in central.items():
            if assumption.key.startswith("costs.") and metric.startswith(KEPT) and not (
                    assumption.reruns):
                continue  # prices cannot change how many children are in care
            rows.append({"scenario": scenario.name, "parameter": assumption.key,
                         "metric": metric, "central": central_value,
                         "value_central": assumption.central,
                         "value_low": assumption.low, "value_high": assumption.high,
                         "result_low": ends["low"][metric],
                         "result_high": ends["high"][metric],
                         "swing": abs(ends["high"][metric] - ends["low"][metric]),
                         "source": assumption.source})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["metric", "swing"], ascending=[True, False]).reset_index(
        drop=True)


def tornado_pngs(table: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """One tornado chart per metric (``<stem>-<metric>.png``)."""
    from sim.results.plots import tornado

    paths = []
    scenario = str(table["scenario"].iloc[0]) if len(table) else stem
    for metric in sorted(table["metric"].unique()):
        title = (f"{scenario}: children kept at home ({metric.rsplit('_', 1)[-1]}), one "
                 "assumption at a time" if metric.startswith(KEPT) else
                 f"{scenario}: net discounted saving vs baseline, one assumption at a time")
        paths.append(tornado(table, metric, out_dir / f"{stem}-{metric}.png", title))
    return paths


def run_sensitivity(scenario: Scenario, baseline: Scenario, out_dir: Path, year: int = 2032,
                    quiet: bool = False) -> tuple[Path, list[Path], pd.DataFrame]:
    """Write ``<out_dir>/<scenario>.csv`` and its tornado PNGs."""
    from sim.results.io import atomic_write_text

    total = len(lever_assumptions(scenario.config) + cost_assumptions(scenario.config))
    started: list[str] = []

    with progress_bar(total, f"sensitivity {scenario.name}", quiet=quiet,
                      unit="assumption") as bar:
        def report(key: str) -> None:  # called as each assumption starts
            if started:
                bar.update(1)
            started.append(key)
            bar.set_postfix_str(key)

        table = one_at_a_time(scenario, baseline, year, progress=report)
        bar.update(1 if started else 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{scenario.name}.csv"
    atomic_write_text(csv_path, table.to_csv(index=False))
    return csv_path, tornado_pngs(table, out_dir, scenario.name), table
