"""Run one scenario end to end: resolve, estimate, project, write.  Used by the CLI,
the Makefile, calibration and comparison, so every caller produces the same files."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sim.engines import stockflow
from sim.engines.schema import build_dataset
from sim.errors import InputError
from sim.estimation.cache import cached_parameters
from sim.model.levers import area_selectors, eligible_pool, selectors_in, with_lever_areas
from sim.model.parameters import ModelParameters
from sim.progress import callback as progress_callback
from sim.provenance import provenance_attrs
from sim.reinvestment import reinvested_paths, with_reinvestment
from sim.results.areas import AREA_DIM, ENGLAND_SUM_CODE, add_england_sum
from sim.results.bands import add_bands
from sim.results.costs import add_costs, area_other_spend
from sim.results.io import write_results
from sim.results.paths import check_output_path
from sim.rng import area_seed
from sim.scenarios.loader import Scenario, check_key, freeze

BASE_YEAR_NOTE = ("base-year stock is the published 31 March figure; base-year flows are "
                  "the model's annualised rates at that state")

AREA_NOTE = ("area run: each authority's parameters estimated from its own series and "
             "shrunk toward England's (sim/estimation/areas.py); lever money split between "
             "the funded areas in proportion to their eligible pools; other spend shared "
             "in proportion to base-year placement + CIN cost (docs/areas-runs.md)")


def stderr_progress(label: str) -> stockflow.ProgressCallback | None:
    """A progress bar with ETA on stderr (:mod:`sim.progress`), so long runs show they
    are alive; None when stderr is not a terminal (make, CI, a pipe: nothing extra)."""
    return progress_callback(label, unit="replicate")


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
    if replicates is not None:
        check_key("--replicates", "run.replicates", replicates)
    if seed is not None:
        check_key("--seed", "run.seed", seed)
    changed = copy.deepcopy(scenario.config)
    if replicates is not None:
        changed["run"]["replicates"] = replicates
    if seed is not None:
        changed["run"]["seed"] = seed
    return dataclasses.replace(scenario, config=freeze(changed))


def simulate(scenario: Scenario, engine: str | None = None, replicates: int | None = None,
             seed: int | None = None, progress: bool = False,
             params: ModelParameters | None = None,
             workers: int | None = None, area: str | None = None) -> xr.Dataset:
    """Run a resolved scenario and return its dataset with provenance (nothing written).

    ``workers``: DES worker processes (default ``CICSIM_WORKERS``, else one per CPU); the
    results do not depend on it, so it is not part of the provenance.
    ``area``: an area selector (:func:`simulate_areas`); None or ``england`` = the
    national run, without an area dimension.
    """
    lever_area_codes(scenario.config, str(scenario.path or "scenario"))  # fail fast
    if not is_national(area):
        return simulate_areas(scenario, str(area), engine=engine, replicates=replicates,
                              seed=seed, progress=progress, workers=workers,
                              national=params)
    if workers is not None and workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    scenario = variant(scenario, replicates, seed)
    config = scenario.config
    engine = engine or config["run"]["engine"]
    start = time.perf_counter()
    params = params if params is not None else cached_parameters(config)
    national_areas = national_lever_areas(config, params, str(scenario.path or "scenario"))
    extra: dict[str, str] = {}
    if national_areas is not None:  # levers with `areas` in a national run
        config, shares = national_areas
        extra["lever_area_shares"] = json.dumps(shares)
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
    return finish(ds, scenario, params, engine, used_seed, time.perf_counter() - start,
                  extra=extra)


def finish(ds: xr.Dataset, scenario: Scenario, params: ModelParameters, engine: str,
           seed: int | None, wall_time_s: float, bands: bool = True,
           extra: dict[str, str] | None = None) -> xr.Dataset:
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
               **(extra or {}),
               "scenario_layers": json.dumps(scenario.layers),
               "parameters": json.dumps([list(r) for r in params.describe()])}))
    return ds


def is_national(area: str | None) -> bool:
    """No area dimension: no selector, or England as a whole."""
    return area is None or area.strip().lower() in ("england", "e92000001")


def national_lever_areas(config: dict[str, Any], params: ModelParameters, where: str
                         ) -> tuple[dict[str, Any], dict[str, dict[int, float]]] | None:
    """In a national run, levers with ``areas`` get ``area_share`` = the listed areas'
    share of England's eligible pool (None when no lever has ``areas``)."""
    if not any(area_selectors(t) for t in config.get("levers", {}).values()):
        return None
    shares = national_shares(config, params, where)
    return with_lever_areas(config, {}, shares), shares


def default_out(scenario: Scenario, area: str | None = None) -> Path:
    """``outputs/<scenario>.nc``; an area run adds its selector
    (``outputs/baseline-pathfinders.nc``) so it never overwrites the national run."""
    if is_national(area):
        return Path("outputs") / f"{scenario.name}.nc"
    slug = "".join(c if c.isalnum() else "-" for c in str(area).strip().lower()).strip("-")
    return Path("outputs") / f"{scenario.name}-{slug}.nc"


def run_to_file(scenario: Scenario, out: str | Path | None = None,
                **kwargs: Any) -> tuple[xr.Dataset, Path, Path]:
    """Simulate then write ``outputs/<scenario>.nc`` (+ .csv) atomically.  Where it
    will write is checked first, so a bad ``out`` costs no simulation."""
    out_path = check_output_path(out if out is not None
                                 else default_out(scenario, kwargs.get("area")))
    check_output_path(out_path.with_suffix(".csv"), suffixes=(".csv",))
    ds = simulate(scenario, **kwargs)
    nc_path, csv_path = write_results(ds, out_path)
    return ds, nc_path, csv_path


# --- runs with an area dimension (docs/areas-runs.md) -----------------------------------


def _areas_api() -> Any:
    """The area registry and per-area estimation (deferred: a national run without
    area-targeted levers never reads the area data)."""
    from sim.estimation import areas

    return areas


def area_fields(area: Any) -> tuple[str, str, str]:
    """(ONS code, name, region) of an :class:`sim.estimation.areas.Area`."""
    return (str(area.code), str(area.name), str(getattr(area, "region", "") or ""))


def resolve(selector: str, where: str) -> list[Any]:
    """Areas of a selector; a bad one is one line naming ``where`` (file and key)."""
    try:
        found = list(_areas_api().resolve_areas(selector))
    except InputError as exc:
        raise InputError(f"{where}: {str(exc).removeprefix('--area: ')}") from None
    if not found:
        raise InputError(f"{where}: area selector {selector!r} matches no area")
    return found


def lever_area_codes(config: dict[str, Any], where: str
                     ) -> dict[str, dict[int, list[Any]]]:
    """Every area-targeted lever's areas by the year they apply from (validated: an
    unknown area is an :class:`InputError` naming the file and the key)."""
    out: dict[str, dict[int, list[Any]]] = {}
    for name, table in config.get("levers", {}).items():
        by_year = area_selectors(table)
        if not by_year:
            continue
        out[name] = {}
        for year, selectors in by_year.items():
            key = "areas" if year == 0 else f"areas_by_year.{year}"
            found: dict[str, Any] = {}
            for selector in selectors:
                for area in resolve(selector, f"{where}: key 'levers.{name}.{key}'"):
                    found.setdefault(area_fields(area)[0], area)
            out[name][year] = list(found.values())
        funded = [int(y) for y, m in table.get("funding_gbp_m", {}).items() if m > 0]
        unplaced = [y for y in funded if not selectors_in(out[name], y)]
        if unplaced:
            raise InputError(f"{where}: key 'levers.{name}.areas_by_year': money in "
                             f"{unplaced[0]} comes before the first listed year and there "
                             "is no 'areas' list for it")
    return out


def _pools(config: dict[str, Any], areas: Sequence[Any],
           params: Sequence[ModelParameters] | None = None) -> dict[str, dict[str, float]]:
    """lever -> area code -> eligible pool (base year), from each area's parameters."""
    params = params if params is not None else _areas_api().area_parameters(config, areas)
    return {name: {area_fields(a)[0]: eligible_pool(name, p)
                   for a, p in zip(areas, params, strict=True)}
            for name in config.get("levers", {})}


def _money_shares(config: dict[str, Any], code: str, targets: dict[str, dict[int, list[Any]]],
                  pools: dict[str, dict[str, float]], england_pools: dict[str, float]
                  ) -> dict[str, dict[int, float]]:
    """lever -> year -> share of the lever's money that goes to area ``code``: its
    eligible pool over the pools of the areas funded that year (an area-targeted
    lever), or over the pools of every authority (``england_pools``: a national lever,
    the same coverage everywhere, and its money adds up over all authorities)."""
    out: dict[str, dict[int, float]] = {}
    for name, table in config.get("levers", {}).items():
        years = [int(y) for y in table.get("funding_gbp_m", {})]
        if name not in targets:
            share = pools[name][code] / max(england_pools[name], 1e-12)
            out[name] = dict.fromkeys(years, share)
            continue
        out[name] = {}
        for year in years:
            funded = [area_fields(a)[0] for a in selectors_in(targets[name], year)]
            total = sum(pools[name][c] for c in funded)
            out[name][year] = pools[name][code] / total if code in funded and total > 0 \
                else 0.0
    return out


def _england_pools(config: dict[str, Any], targets: dict[str, Any], codes: Sequence[str],
                   pools: dict[str, dict[str, float]]) -> dict[str, float]:
    """lever -> the sum of every authority's eligible pool, for the national levers
    (those without ``areas``) of an area run; the run's own pools when it has every
    authority, else every authority's parameters (cached after the first time)."""
    national = [name for name in config.get("levers", {}) if name not in targets]
    if not national:
        return {}
    everyone = resolve("all", "--area")
    if {area_fields(a)[0] for a in everyone} <= set(codes):
        return {name: sum(pools[name][area_fields(a)[0]] for a in everyone)
                for name in national}
    every_pool = _pools(config, everyone)
    return {name: sum(every_pool[name].values()) for name in national}


def national_shares(config: dict[str, Any], national: ModelParameters, where: str
                    ) -> dict[str, dict[int, float]]:
    """lever -> year -> the funded areas' share of England's eligible pool, for the
    levers with ``areas`` in a national run (the ``area_share`` they stand for)."""
    targets = lever_area_codes(config, where)
    listed = {area_fields(a)[0]: a for by_year in targets.values()
              for areas in by_year.values() for a in areas}
    pools = _pools(config, list(listed.values()))
    return {name: {year: min(sum(pools[name][area_fields(a)[0]] for a in areas)
                             / max(eligible_pool(name, national), 1e-12), 1.0)
                   for year, areas in by_year.items()}
            for name, by_year in targets.items()}


def local_capacity(config: dict[str, Any], params: ModelParameters,
                   national: ModelParameters) -> dict[str, Any]:
    """An area's share of England's DES capacity (``[capacity]`` counts places in
    England): foster places in proportion to its non-UASC children in care, family-help
    places to its CIN pool (ASSUMPTION: places are where the children are); at least one
    place where England has any (0 would mean no limit)."""
    capacity = config["capacity"]
    changes = {}
    for key, lever in (("foster_places", "reunification_support"),
                       ("family_help_places", "family_help")):
        if capacity[key]:
            share = eligible_pool(lever, params) / max(eligible_pool(lever, national), 1e-12)
            changes[key] = max(1, round(capacity[key] * share))
    if not changes:
        return config
    out = copy.deepcopy(config)
    out["capacity"].update(changes)
    return out


@dataclasses.dataclass(frozen=True)
class AreaSetup:
    """What a run over the areas of a selector needs before any simulation: the areas,
    each one's parameters and config (its lever money), England's parameters.

    Why a separate step: ``simulate_areas`` and ``cicsim batch --area`` (which sends each
    area's replicates or draws to dask workers) must give an area the same parameters,
    money and seed, so both start here and end in :func:`finish_areas`."""

    scenario: Scenario
    selector: str
    areas: list[Any]
    codes: list[str]
    params: list[ModelParameters]
    configs: list[dict[str, Any]]  # per area: the scenario's config with its lever money
    national: ModelParameters

    def des_config(self, index: int) -> dict[str, Any]:
        """Area ``index``'s DES config: its share of England's capacity and its own root
        seed (:func:`area_seed`), so its children are the same whatever else runs."""
        local = copy.deepcopy(local_capacity(self.configs[index], self.params[index],
                                             self.national))
        local["run"]["seed"] = area_seed(int(self.scenario.config["run"]["seed"]),
                                         self.codes[index])
        return local


def selector_parameters(config: dict[str, Any], selector: str
                        ) -> tuple[list[Any], list[ModelParameters]]:
    """The areas of ``selector`` and their parameters, estimated together (cached).
    ``cicsim batch --area`` workers call it too, so an area gets the same parameters in
    a batch as in ``cicsim run --area SELECTOR``."""
    areas = resolve(selector, "--area")
    return areas, list(_areas_api().area_parameters(config, areas))


def area_setup(scenario: Scenario, selector: str,
               parameters: tuple[Sequence[Any], Sequence[ModelParameters]] | None = None,
               national: ModelParameters | None = None) -> AreaSetup:
    """Resolve ``selector``, estimate each area's parameters (cached) and place the
    lever money (:func:`_money_shares`).  Every bad input (unknown area, an unsupported
    lever setting) is an :class:`InputError` here, before any simulation."""
    config = scenario.config
    where = str(scenario.path or "scenario")
    for name, table in config.get("levers", {}).items():
        if table.get("sustain") == "reinvest_savings":
            raise InputError(f"{where}: key 'levers.{name}.sustain' = 'reinvest_savings' "
                             "is not supported with --area (savings are reinvested "
                             "nationally); use sustain = 'fixed' or a national run")
    # an unknown area before the levers' areas
    areas = list(parameters[0]) if parameters else resolve(selector, "--area")
    targets = lever_area_codes(config, where)  # before any simulation
    national = national if national is not None else cached_parameters(config)
    params = (list(parameters[1]) if parameters
              else list(_areas_api().area_parameters(config, areas)))
    codes = [area_fields(a)[0] for a in areas]
    extra = {area_fields(a)[0]: a for by_year in targets.values() for listed in
             by_year.values() for a in listed if area_fields(a)[0] not in codes}
    pools = _pools(config, areas, params)
    if extra:  # funded areas outside the run still take their share of the money
        for name, by_code in _pools(config, list(extra.values())).items():
            pools[name].update(by_code)
    england_pools = _england_pools(config, targets, codes, pools)
    configs = [with_lever_areas(config, _money_shares(config, code, targets, pools,
                                                      england_pools), {}) for code in codes]
    return AreaSetup(scenario, selector, areas, codes, params, configs, national)


def simulate_areas(scenario: Scenario, selector: str, engine: str | None = None,
                   replicates: int | None = None, seed: int | None = None,
                   progress: bool = False, workers: int | None = None,
                   parameters: tuple[Sequence[Any], Sequence[ModelParameters]] | None = None,
                   national: ModelParameters | None = None) -> xr.Dataset:
    """Run a scenario over the areas of ``selector`` (``--area``): a dataset with an
    ``area`` dimension (ONS codes; ``area_name``, ``region`` and ``child_population``
    along it), and for ``all`` England as the sum of the areas.

    The stock-flow engine runs every area in one batch; the DES loops over areas, each
    with its own root seed (:func:`area_seed`).  Levers: see :func:`_money_shares`.
    ``parameters``: (areas, their parameters) already estimated (the benchmark);
    ``national``: England's parameters (default: estimated, cached)."""
    if workers is not None and workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    start = time.perf_counter()
    scenario = variant(scenario, replicates, seed)
    config = scenario.config
    engine = engine or config["run"]["engine"]
    if engine not in ("stockflow", "des"):
        raise InputError(f"--engine: unknown engine '{engine}'; valid: stockflow, des")
    setup = area_setup(scenario, selector, parameters, national)
    if engine == "stockflow":
        result = stockflow.project_batch(setup.params, setup.configs)
        ds = build_dataset(result["years"], result["records"], engine="stockflow",
                           batch_dim=AREA_DIM)
        used_seed = None
        if config["capacity"]["foster_places"] or config["capacity"]["family_help_places"]:
            ds.attrs["capacity"] = ("ignored: the stock-flow engine has no queues; run "
                                    "with --engine des to apply [capacity]")
    else:
        from sim.engines import des  # deferred: simpy, as in simulate

        parts = []
        for i, (code, p) in enumerate(zip(setup.codes, setup.params, strict=True)):
            parts.append(des.run(p, setup.des_config(i), workers=workers,
                                 progress=stderr_progress(f"{scenario.name} {code} "
                                                          f"({i + 1}/{len(setup.codes)})")
                                 if progress else None))
        ds = xr.concat(parts, dim=AREA_DIM, combine_attrs="override")
        used_seed = config["run"]["seed"]
    return finish_areas(ds, setup, engine, used_seed, time.perf_counter() - start)


def finish_areas(ds: xr.Dataset, setup: AreaSetup, engine: str, seed: int | None,
                 wall_time_s: float, bands: bool = True,
                 extra: dict[str, Any] | None = None) -> xr.Dataset:
    """An area run's post-processing, after the engine (``simulate_areas`` and
    ``cicsim batch --area``): area coordinates, costs (other spend shared by area),
    England as the sum for ``all``, bands (not for parameter draws, as in
    :func:`finish`), provenance."""
    scenario, config, national = setup.scenario, setup.scenario.config, setup.national
    fields = [area_fields(a) for a in setup.areas]
    ds = ds.assign_coords({AREA_DIM: setup.codes,
                           "area_name": (AREA_DIM, [f[1] for f in fields]),
                           "region": (AREA_DIM, [f[2] for f in fields]),
                           "child_population": (AREA_DIM, [float(np.sum(p.population_by_age))
                                                           for p in setup.params])})
    ds["child_population"].attrs = {"units": "children", "long_name": "children aged 0-17 "
                                    "in the base year (ONS mid-year estimate)"}
    base_only = copy.deepcopy(config)
    base_only["run"]["end_year"] = config["run"]["base_year"] + 1
    national_base = project_stockflow(national, freeze(base_only))
    ds = add_costs(ds, national, config,
                   other=area_other_spend(ds, national_base, config["costs"]))
    wants_sum = "all" in [part.strip().lower() for part in setup.selector.split(",")]
    if wants_sum and ENGLAND_SUM_CODE not in setup.codes:  # not when England was asked
        ds = add_england_sum(ds)
    if bands:
        ds = add_bands(ds, config)
    ds.attrs.update(provenance_attrs(
        scenario.to_toml(), engine, seed, wall_time_s,
        extra={"scenario": scenario.name, "base_year_note": BASE_YEAR_NOTE,
               **(extra or {}),
               "scenario_layers": json.dumps(scenario.layers),
               "area_selector": setup.selector,
               "areas": json.dumps([list(f) for f in fields]),
               "area_note": AREA_NOTE,
               "parameters": json.dumps([list(r) for r in national.describe()])}))
    return ds
