"""Run one scenario end to end: resolve, estimate, project, write.  Used by the CLI,
the Makefile, calibration and comparison, so every caller produces the same files."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import xarray as xr

from sim.engines import stockflow
from sim.engines.schema import build_dataset
from sim.errors import InputError
from sim.estimation.cache import cached_parameters
from sim.model.parameters import ModelParameters
from sim.provenance import provenance_attrs
from sim.reinvestment import reinvested_paths, with_reinvestment
from sim.results.bands import add_bands
from sim.results.costs import add_costs
from sim.results.io import write_results
from sim.scenarios.loader import Scenario, freeze

BASE_YEAR_NOTE = ("base-year stock is the published 31 March figure; base-year flows are "
                  "the model's annualised rates at that state")


def stderr_progress(label: str) -> stockflow.ProgressCallback:
    """Progress lines on stderr (one per step), so long runs show they are alive."""
    def report(done: int, total: int) -> None:
        print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)
    return report


def project_stockflow(params: ModelParameters, config: dict[str, Any]) -> xr.Dataset:
    """Stock-flow projection; savings reinvested by sustained levers are resolved first
    (:mod:`sim.reinvestment`) and their money saved in the ``reinvested_gbp_m`` attribute."""
    run_config = with_reinvestment(params, config)
    result = stockflow.project(params, run_config)
    ds = build_dataset(result["years"], result["records"], engine="stockflow")
    if run_config is not config:
        ds.attrs["reinvested_gbp_m"] = json.dumps(reinvested_paths(run_config))
    return ds


def variant(scenario: Scenario, replicates: int | None = None,
            seed: int | None = None) -> Scenario:
    """The scenario with ``run.replicates`` / ``run.seed`` replaced (a new scenario: the
    given one stays as it is), so the provenance records what ran."""
    if replicates is None and seed is None:
        return scenario
    changed = copy.deepcopy(scenario.config)
    if replicates is not None:
        changed["run"]["replicates"] = replicates
    if seed is not None:
        changed["run"]["seed"] = seed
    return dataclasses.replace(scenario, config=freeze(changed))


def simulate(scenario: Scenario, engine: str | None = None, replicates: int | None = None,
             seed: int | None = None, progress: bool = False,
             params: ModelParameters | None = None,
             workers: int | None = None) -> xr.Dataset:
    """Run a resolved scenario and return its dataset with provenance (nothing written).

    ``workers``: DES worker processes (default ``CICSIM_WORKERS``, else one per CPU); the
    results do not depend on it, so it is not part of the provenance.
    """
    if workers is not None and workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    scenario = variant(scenario, replicates, seed)
    config = scenario.config
    engine = engine or config["run"]["engine"]
    start = time.perf_counter()
    params = params if params is not None else cached_parameters(config)
    if engine == "stockflow":
        ds = project_stockflow(params, config)
        used_seed = None
        if config["capacity"]["foster_places"] or config["capacity"]["family_help_places"]:
            ds.attrs["capacity"] = ("ignored: the stock-flow engine has no queues; run "
                                    "with --engine des to apply [capacity]")
    elif engine == "des":
        # Deferred: the DES engine imports simpy, which a stock-flow run (the common,
        # start-up-bound case) never needs; no import cycle.
        from sim.engines import des

        run_config = with_reinvestment(params, config)  # stock-flow expected savings
        ds = des.run(params, run_config,
                     progress=stderr_progress(f"{scenario.name} replicates") if progress
                     else None, workers=workers)
        used_seed = config["run"]["seed"]
        if run_config is not config:
            ds.attrs["reinvested_gbp_m"] = json.dumps(reinvested_paths(run_config))
    else:
        raise InputError(f"--engine: unknown engine '{engine}'; valid: stockflow, des")
    return finish(ds, scenario, params, engine, used_seed, time.perf_counter() - start)


def finish(ds: xr.Dataset, scenario: Scenario, params: ModelParameters, engine: str,
           seed: int | None, wall_time_s: float, bands: bool = True) -> xr.Dataset:
    """Post-processing, the same for both engines and for ``cicsim batch``: costs,
    bands (not for parameter draws: the bands' backtest errors already contain
    parameter uncertainty, :mod:`sim.results.bands`), provenance."""
    config = scenario.config
    ds = add_costs(ds, params, config)
    if bands:
        ds = add_bands(ds, config)
    ds.attrs.update(provenance_attrs(
        scenario.to_toml(), engine, seed, wall_time_s,
        extra={"scenario": scenario.name, "base_year_note": BASE_YEAR_NOTE,
               "scenario_layers": json.dumps(scenario.layers),
               "parameters": json.dumps([list(r) for r in params.describe()])}))
    return ds


def run_to_file(scenario: Scenario, out: str | Path | None = None,
                **kwargs: Any) -> tuple[xr.Dataset, Path, Path]:
    """Simulate then write ``outputs/<scenario>.nc`` (+ .csv) atomically."""
    ds = simulate(scenario, **kwargs)
    out_path = Path(out) if out is not None else Path("outputs") / f"{scenario.name}.nc"
    nc_path, csv_path = write_results(ds, out_path)
    return ds, nc_path, csv_path
