"""Every local authority in one stock-flow batch (``cicsim run --area all``).

``stockflow_all_areas_s`` (target <= 1 s): the in-process projection of every
authority 2022 -> 2032, parameters already estimated (``area_parameters`` is timed
apart, once, because the parameter cache makes it a start-up cost): the per-area lever
configs, ``stockflow.project_batch`` over all areas (year rates included) and the
dataset with its area dimension.  Also the whole ``simulate_areas`` with those
parameters (costs, England sum, bands, provenance) as ``area_run_all_s``.  Medians.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from sim import run
from sim.engines import stockflow
from sim.engines.schema import AREA_DIM, build_dataset
from sim.estimation import areas as area_api
from sim.estimation.cache import cached_parameters
from sim.scenarios.loader import load_scenario

REPEATS = 5


def median_s(function: Any, repeats: int = REPEATS) -> tuple[float, float]:
    """Median wall and CPU seconds (CPU: what the run itself used, whatever else the
    shared machine is doing)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> dict[str, float]:
    scenario = load_scenario("scenarios/baseline.toml")
    config = scenario.config
    national = cached_parameters(config)
    start = time.perf_counter()
    areas = area_api.resolve_areas("all")
    params = area_api.area_parameters(config, areas)
    estimate_s = time.perf_counter() - start
    codes = [run.area_fields(a)[0] for a in areas]
    pools = run._pools(config, areas, params)

    def projection() -> None:
        configs = [run.with_lever_areas(config, run._money_shares(
            config, code, {}, pools, {}), {}) for code in codes]
        result = stockflow.project_batch(params, configs)
        build_dataset(result["years"], result["records"], engine="stockflow",
                      batch_dim=AREA_DIM)

    def whole() -> None:
        run.simulate_areas(scenario, "all", parameters=(areas, params), national=national)

    projection_s, projection_cpu_s = median_s(projection)
    whole_s, whole_cpu_s = median_s(whole, 3)
    figures = {"areas": float(len(areas)), "area_parameters_first_call_s": estimate_s,
               "stockflow_all_areas_s": projection_s,
               "stockflow_all_areas_cpu_s": projection_cpu_s,
               "area_run_all_s": whole_s, "area_run_all_cpu_s": whole_cpu_s}
    print(f"{len(areas)} areas; area_parameters (first call, cache as it is) "
          f"{estimate_s:.2f} s")
    print(f"stockflow_all_areas_s {projection_s:.3f} s (CPU {projection_cpu_s:.3f} s; "
          f"target <= 1 s); whole simulate_areas {whole_s:.3f} s (CPU {whole_cpu_s:.3f} s)")
    return figures
