"""Stock-flow engine: national projection 2022 -> 2032.

Prints the median wall time of ``stockflow.project`` (parameters estimated once,
outside the timing: estimation is reported separately) and its ratio to a bare numpy
loop doing the same array work (the same number of (rows x S) @ (S x S) products per
month and the same matrix exponentials per year) with no model code around it.

Also: ``stockflow_national_10y_s`` (median of 100 national 2022 -> 2032 projections
with the batched reduced-state engine, after 10 untimed ones; target <= 0.003 s) and
``stockflow_1000_draws_s`` (1,000 draws of the calibrated trend keys applied to the
baseline, run as one batch, year rates included, its chunks on the default threads: one
per CPU; target <= 2 s), with the same on one thread, the year-rate building alone and
the loop-of-1,000 for the ratio.  Both are also reported as process CPU time
(``..._cpu_s``), which other processes on a shared machine do not inflate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from sim.calibration import sample_parameter_sets
from sim.engines import stockflow, stockflow_reference
from sim.engines.parallel import default_workers
from sim.estimation.estimate import estimate_parameters
from sim.model.rates import year_rates_batch
from sim.scenarios.loader import load_scenario

REPEATS = 30
NATIONAL_REPEATS = 100  # the national run: 0.3 s in all, so a steadier median
WARM_UP = 10


def median_ms(function: object, repeats: int = REPEATS,
              clock: Callable[[], float] = time.perf_counter) -> float:
    """Median of ``repeats`` calls, in milliseconds of ``clock`` (wall time by default)."""
    times = []
    for _ in range(repeats):
        start = clock()
        function()  # type: ignore[operator]
        times.append((clock() - start) * 1e3)
    return statistics.median(times)


def median_cpu_ms(function: object, repeats: int = REPEATS) -> float:
    """Median process CPU time: on a shared machine wall time also counts the time other
    processes hold the core, CPU time does not (both are reported)."""
    return median_ms(function, repeats, clock=time.process_time)


def bare_loop(x0: np.ndarray, generators: np.ndarray, years: int) -> np.ndarray:
    """Same array sizes and operation count as the engine, nothing else."""
    x = x0.copy()
    buffer = np.empty_like(x)
    rows = stockflow.BAND_ROWS
    for _ in range(years):
        matrices = scipy.linalg.expm(generators / 12.0)
        for _ in range(12):
            for b, (start, stop) in enumerate(rows):
                np.matmul(x[start:stop], matrices[b], out=buffer[start:stop])
            x, buffer = buffer, x
            x[1:] = x[:-1]
    return x


N_DRAWS = 1000
BATCH_REPEATS = 3  # the 1,000-draw batch: median of three (the machine is noisy)


def draw_configs(config: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """``n`` copies of ``config`` with the calibrated keys drawn from their uncertainty
    (what ``load_scenario(path, as_set_arguments(d))`` would set, without re-reading
    TOML 1,000 times)."""
    out = []
    for overrides in sample_parameter_sets(n, seed=2022):
        copy = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
        for key, value in overrides.items():
            section, name = key.split(".")
            copy[section][name] = value
        out.append(copy)
    return out


def main() -> dict[str, float]:
    scenario = load_scenario("scenarios/baseline.toml")
    start = time.perf_counter()
    params = estimate_parameters(scenario.config)
    estimate_s = time.perf_counter() - start
    years = scenario.config["run"]["end_year"] - scenario.config["run"]["base_year"]
    for _ in range(WARM_UP):  # (first calls: code, caches and memory first touched)
        stockflow.project(params, scenario.config)
    engine_ms = median_ms(lambda: stockflow.project(params, scenario.config),
                          NATIONAL_REPEATS)
    rates = stockflow.year_rates(params, scenario.config, 2023)
    generators = stockflow.build_generators(rates)
    bare_ms = median_ms(lambda: bare_loop(params.initial_state, generators, years))
    rows, size = params.initial_state.shape
    print(f"state: {rows} age-month rows x {size} states; {years} years, monthly steps")
    print(f"parameter estimation (once per base year): {estimate_s * 1e3:8.1f} ms")
    print(f"stock-flow projection 2022->2032 median:  {engine_ms:8.2f} ms")
    print(f"bare numpy loop, same arrays, median:     {bare_ms:8.2f} ms")
    print(f"ratio engine / bare loop:                 {engine_ms / bare_ms:8.2f}")
    draws = draw_configs(scenario.config, N_DRAWS)
    national_s = engine_ms / 1e3
    reference_s = median_ms(lambda: stockflow_reference.project(params, scenario.config),
                            10) / 1e3
    batch_s = median_ms(lambda: stockflow.project_batch([params] * N_DRAWS, draws),
                        BATCH_REPEATS) / 1e3
    national_cpu_s = median_cpu_ms(lambda: stockflow.project(params, scenario.config),
                                   10 * REPEATS) / 1e3
    batch_cpu_s = median_cpu_ms(lambda: stockflow.project_batch([params] * N_DRAWS, draws),
                                BATCH_REPEATS) / 1e3
    threads = default_workers(N_DRAWS // stockflow.CHUNK)
    one_thread_s = median_ms(lambda: stockflow.project_batch([params] * N_DRAWS, draws,
                                                             threads=1),
                             BATCH_REPEATS) / 1e3
    start = time.perf_counter()
    run_years = list(range(params.base_year, scenario.config["run"]["end_year"] + 1))
    for lo in range(0, N_DRAWS, stockflow.CHUNK):  # the engine's path: a chunk at a time
        year_rates_batch([params] * len(draws[lo:lo + stockflow.CHUNK]),
                         draws[lo:lo + stockflow.CHUNK], run_years)
    rates_s = time.perf_counter() - start
    start = time.perf_counter()
    for config in draws:
        stockflow.project(params, config)
    loop_s = time.perf_counter() - start
    print(f"stockflow_national_10y_s (median):        {national_s:8.4f} s  (target <= 0.003, "
          "goal 0.002)")
    print(f"  CPU time (median of {10 * REPEATS}):                {national_cpu_s:8.4f} s")
    print(f"dense reference engine, median:           {reference_s:8.4f} s")
    print(f"stockflow_1000_draws_s (batched, w/ rates, median of {BATCH_REPEATS}): "
          f"{batch_s:8.3f} s  (target <= 2, goal 1.5)")
    print(f"  on {threads} thread(s), chunks of {stockflow.CHUNK} runs; CPU time (median of "
          f"{BATCH_REPEATS}): {batch_cpu_s:8.3f} s")
    print(f"  on one thread (median of {BATCH_REPEATS}):            {one_thread_s:8.3f} s")
    print(f"  of which year rates for the draws:      {rates_s:8.3f} s  "
          f"(engine alone {batch_s - rates_s:.3f} s)")
    print(f"loop of 1,000 single runs:                {loop_s:8.3f} s  "
          f"(ratio loop / batch {loop_s / batch_s:.2f})")
    return {"stockflow_national_10y_s": national_s, "stockflow_national_10y_target_s": 0.003,
            "stockflow_national_10y_cpu_s": national_cpu_s,
            "stockflow_1000_draws_cpu_s": batch_cpu_s,
            "stockflow_1000_draws_threads": float(threads),
            "stockflow_1000_draws_one_thread_s": one_thread_s,
            "stockflow_reference_10y_s": reference_s,
            "stockflow_1000_draws_s": batch_s, "stockflow_1000_draws_target_s": 2.0,
            "stockflow_1000_draws_year_rates_s": rates_s,
            "stockflow_1000_loop_s": loop_s,
            "estimation_ms": estimate_s * 1e3, "projection_median_ms": engine_ms,
            "projection_target_ms": 5.0, "bare_loop_median_ms": bare_ms,
            "ratio_to_bare_loop": engine_ms / bare_ms}


if __name__ == "__main__":
    main()
