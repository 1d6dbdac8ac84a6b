"""Stock-flow engine: national projection 2022 -> 2032.

Prints the median wall time of ``stockflow.project`` (parameters estimated once,
outside the timing: estimation is reported separately) and its ratio to a bare numpy
loop doing the same array work (the same number of (rows x S) @ (S x S) products per
month and the same matrix exponentials per year) with no model code around it.
Target (issue #2): median <= 5 ms on the 2-core CI machine.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import scipy.linalg

from sim.engines import stockflow
from sim.estimation.estimate import estimate_parameters
from sim.scenarios.loader import load_scenario

REPEATS = 30


def median_ms(function: object, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


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


def main() -> dict[str, float]:
    scenario = load_scenario("scenarios/baseline.toml")
    start = time.perf_counter()
    params = estimate_parameters(scenario.config)
    estimate_s = time.perf_counter() - start
    years = scenario.config["run"]["end_year"] - scenario.config["run"]["base_year"]
    engine_ms = median_ms(lambda: stockflow.project(params, scenario.config))
    rates = stockflow.year_rates(params, scenario.config, 2023)
    generators = stockflow.build_generators(rates)
    bare_ms = median_ms(lambda: bare_loop(params.initial_state, generators, years))
    rows, size = params.initial_state.shape
    print(f"state: {rows} age-month rows x {size} states; {years} years, monthly steps")
    print(f"parameter estimation (once per base year): {estimate_s * 1e3:8.1f} ms")
    print(f"stock-flow projection 2022->2032 median:  {engine_ms:8.2f} ms  (target <= 5 ms)")
    print(f"bare numpy loop, same arrays, median:     {bare_ms:8.2f} ms")
    print(f"ratio engine / bare loop:                 {engine_ms / bare_ms:8.2f}")
    return {"estimation_ms": estimate_s * 1e3, "projection_median_ms": engine_ms,
            "projection_target_ms": 5.0, "bare_loop_median_ms": bare_ms,
            "ratio_to_bare_loop": engine_ms / bare_ms}


if __name__ == "__main__":
    main()
