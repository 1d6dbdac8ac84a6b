"""Discrete-event engine: one national replicate (population_scale 1), 2022 -> 2032.

Figures (each printed beside its target):

* ``des_replicate_s``: the baseline without capacity (batch path), compile + simulate,
  median of REPEATS runs; target <= 1.5 s;
* ``des_replicate_simpy_s``: the same replicate forced onto the simpy event path, for
  context: what the batch path saves;
* ``des_replicate_capacity_s``: ``scenarios/capacity-example.toml``'s ``[capacity]``
  (40,000 foster places, 20,000 family-help places) at population_scale 1, one
  replicate, on the capacity path (queues replayed without a heap, :mod:`.replay`),
  median of REPEATS runs; target <= 3 s.  Set ``CICSIM_BENCH_CAPACITY=0`` to skip
  it.  (The simpy path takes minutes on it: 152 s CPU and 902 MB at load 1.4-2, 353 s
  wall at load 6.);
* ``des_peak_mb``: peak resident memory of the process running a no-capacity replicate
  (each replicate runs in a freshly *spawned* child, so it is measured on its own: a
  forked child would count whatever the benchmark process held from the benchmarks
  before it, e.g. 152 authorities' parameters); target <= 400.

Wall times include CPU contention on a shared machine; CPU seconds are printed beside
them, and the load average (``uptime``'s one-minute figure) before each measurement.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import time
from typing import Any

from sim.engines import des
from sim.estimation.estimate import estimate_parameters
from sim.scenarios.loader import load_scenario

REPEATS = 3
TARGET_SECONDS = 1.5
TARGET_CAPACITY_SECONDS = 3.0
TARGET_MEMORY_MB = 400.0


def _replicate(connection: Any, scenario_path: str, path: str) -> None:
    """In a child process: build and run one national replicate, send the figures."""
    scenario = load_scenario(scenario_path, ["run.population_scale=1.0",
                                             "run.replicates=1"])
    params = estimate_parameters(scenario.config)
    wall, cpu = time.perf_counter(), time.process_time()
    model = des.compile_model(params, scenario.config)
    result = des.simulate_replicate(model, 0, path)  # type: ignore[arg-type]
    connection.send({
        "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
        "path": result.extra["path"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "looked_after_2032": float(result.records[-1]["looked_after"]),
        "places": (model.foster_places, model.family_help_places),
    })
    connection.close()


def load() -> float:
    """The one-minute load average (as ``uptime`` prints it)."""
    return os.getloadavg()[0]


def run_replicate(scenario_path: str = "scenarios/baseline.toml",
                  path: str = "auto") -> dict[str, Any]:
    load_before = load()
    context = multiprocessing.get_context("spawn")  # a clean process (docstring)
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_replicate, args=(sender, scenario_path, path))
    process.start()
    figures: dict[str, Any] = receiver.recv()
    process.join()
    figures["load"] = load_before
    return figures


def main() -> dict[str, float]:
    runs = [run_replicate() for _ in range(REPEATS)]
    wall = statistics.median(r["wall_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)
    simpy = run_replicate(path="simpy")
    print("one national replicate (population_scale 1), baseline 2022 -> 2032 "
          f"(looked after in 2032: {runs[0]['looked_after_2032']:,.0f})")
    print(f"  des_replicate_s           {wall:6.2f} s  (cpu {cpu:.2f} s; {runs[0]['path']} "
          f"path; median of {REPEATS}; load {runs[0]['load']:.2f}; target <= "
          f"{TARGET_SECONDS:g} s)")
    print(f"  des_replicate_simpy_s     {simpy['wall_s']:6.2f} s  (cpu "
          f"{simpy['cpu_s']:.2f} s; the same replicate on the simpy path, for context; "
          f"load {simpy['load']:.2f})")
    print(f"  des_peak_mb               {peak:6.0f} MB (whole child process; target <= "
          f"{TARGET_MEMORY_MB:g} MB)")
    figures = {"des_replicate_s": wall, "des_replicate_target_s": TARGET_SECONDS,
               "des_replicate_cpu_s": cpu, "des_replicate_simpy_s": simpy["wall_s"],
               "des_peak_mb": peak, "des_peak_target_mb": TARGET_MEMORY_MB}
    if os.environ.get("CICSIM_BENCH_CAPACITY", "1") != "0":
        capacity_runs = [run_replicate("scenarios/capacity-example.toml")
                         for _ in range(REPEATS)]
        capacity = capacity_runs[0]
        capacity_wall = statistics.median(r["wall_s"] for r in capacity_runs)
        capacity_cpu = statistics.median(r["cpu_s"] for r in capacity_runs)
        capacity_peak = max(r["peak_mb"] for r in capacity_runs)
        foster, family_help = capacity["places"]
        print(f"  des_replicate_capacity_s  {capacity_wall:6.2f} s  (cpu "
              f"{capacity_cpu:.2f} s; capacity-example's [capacity] at "
              f"population_scale 1 ({foster:,} foster, {family_help:,} family-help "
              f"places), one replicate, {capacity['path']} path; median of {REPEATS}; "
              f"load {capacity['load']:.2f}; target <= {TARGET_CAPACITY_SECONDS:g} s)")
        print(f"  des_capacity_peak_mb      {capacity_peak:6.0f} MB (target <= "
              f"{TARGET_MEMORY_MB:g} MB)")
        figures.update({"des_replicate_capacity_s": capacity_wall,
                        "des_replicate_capacity_cpu_s": capacity_cpu,
                        "des_replicate_capacity_target_s": TARGET_CAPACITY_SECONDS,
                        "des_capacity_peak_mb": capacity_peak})
    return figures


if __name__ == "__main__":
    main()
