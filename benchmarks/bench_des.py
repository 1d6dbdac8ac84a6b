"""Discrete-event engine: one national-scale replicate of the baseline, 2022 -> 2032.

Prints wall time (target <= 10 s), peak memory (target <= 1 GB), events per second, and
the ratio of the engine's event rate to a bare ``heapq`` event loop that processes the
same number of events, with the same mean number of pending events, in the same run
(target >= 0.5).  Two counts of "events" are reported, because the engine does not
put every model transition on the heap (docs/des.md):

* heap events: simpy events processed (starts and ends of care episodes, month starts,
  31 March snapshots);
* transitions: every change of a child's state (starts, time-in-care stage moves,
  ends, returned-home stage moves, end of the tracked time at home).

The replicate runs in a forked child process so that its peak resident memory is
measured on its own.  Timings take the best of REPEATS runs (the machine is shared).
"""

from __future__ import annotations

import heapq
import multiprocessing
import resource
import time
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL

from sim.engines import des
from sim.estimation.estimate import estimate_parameters
from sim.scenarios.loader import load_scenario

REPEATS = 3
TARGET_SECONDS = 10.0
TARGET_MEMORY_MB = 1024.0
TARGET_RATIO = 0.5


def _replicate(connection: Any) -> None:
    """In a child process: build and run one national replicate, send the figures."""
    scenario = load_scenario("scenarios/baseline.toml", ["run.population_scale=1.0"])
    params = estimate_parameters(scenario.config)
    start = time.perf_counter()
    model = des.compile_model(params, scenario.config)
    compiled = time.perf_counter()
    result = des.simulate_replicate(model, 0)
    finished = time.perf_counter()
    connection.send({
        "compile_s": compiled - start, "simulate_s": finished - compiled,
        "heap_events": result.heap_events, "transitions": result.transitions,
        "pending": result.extra["mean_pending_events"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "looked_after_2032": float(result.records[-1]["looked_after"]),
    })
    connection.close()


def run_replicate() -> dict[str, float]:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_replicate, args=(sender,))
    process.start()
    figures: dict[str, float] = receiver.recv()
    process.join()
    return figures


def bare_heapq_seconds(events: int, pending: int, seed: int = 1) -> float:
    """Time for a minimal event loop: pop the earliest (time, sequence, payload), call a
    handler that pushes one new event, ``events`` times, with ``pending`` events queued."""
    delays = np.random.default_rng(seed).exponential(float(pending), events + pending).tolist()
    heap: list[tuple[float, int, int]] = [(delays[i], i, i) for i in range(pending)]
    heapq.heapify(heap)
    push, pop = heapq.heappush, heapq.heappop
    handled = [0]

    def handler(now: float, sequence: int) -> None:
        handled[0] += 1
        push(heap, (now + delays[sequence], sequence + pending, sequence))

    start = time.perf_counter()
    for sequence in range(events):
        now, _, _ = pop(heap)
        handler(now, sequence)
    return time.perf_counter() - start


def simpy_floor_seconds(events: int, pending: int, seed: int = 1) -> float:
    """The same loop on simpy with empty callbacks (plain events, one callback each):
    the best any simpy engine can do, for context on the ratio."""
    delays = np.random.default_rng(seed).exponential(float(pending), events + pending).tolist()
    env = simpy.Environment()
    handled = [0]

    class Plain(simpy.Event):
        def __init__(self, delay: float) -> None:
            self.env = env
            self.callbacks = [handler]
            self._value = None
            self._ok = True
            env.schedule(self, NORMAL, delay)

    def handler(event: simpy.Event) -> None:
        handled[0] += 1
        Plain(delays[handled[0] + pending - 1])

    for i in range(pending):
        Plain(delays[i])
    step = env.step
    start = time.perf_counter()
    for _ in range(events):
        step()
    return time.perf_counter() - start


def main() -> dict[str, float]:
    runs = [run_replicate() for _ in range(REPEATS)]
    best = min(runs, key=lambda r: r["compile_s"] + r["simulate_s"])
    wall = best["compile_s"] + best["simulate_s"]
    heap_events, transitions = int(best["heap_events"]), int(best["transitions"])
    pending = max(1, round(best["pending"]))
    heap_loop = min(bare_heapq_seconds(heap_events, pending) for _ in range(REPEATS))
    transition_loop = min(bare_heapq_seconds(transitions, pending) for _ in range(REPEATS))
    heap_rate, transition_rate = heap_events / wall, transitions / wall
    bare_rate = heap_events / heap_loop
    bare_transition_rate = transitions / transition_loop
    simpy_loop = min(simpy_floor_seconds(heap_events, pending) for _ in range(REPEATS))
    peak = max(r["peak_mb"] for r in runs)
    print("one national-scale replicate, baseline 2022 -> 2032 "
          f"(looked after in 2032: {best['looked_after_2032']:,.0f})")
    print(f"  wall time          {wall:6.2f} s   (compile {best['compile_s']:.2f} s + "
          f"simulate {best['simulate_s']:.2f} s; best of {REPEATS}; "
          f"target <= {TARGET_SECONDS:g} s)")
    print(f"  peak memory        {peak:6.0f} MB  (whole process; target <= "
          f"{TARGET_MEMORY_MB:g} MB)")
    print(f"  heap events        {heap_events:,} -> {heap_rate:,.0f} events/s "
          f"(mean {pending:,} pending)")
    print(f"  model transitions  {transitions:,} -> {transition_rate:,.0f} transitions/s")
    print(f"  bare heapq loop    {bare_rate:,.0f} events/s ({heap_events:,} events), "
          f"{bare_transition_rate:,.0f} events/s ({transitions:,} events), "
          f"{pending:,} pending")
    print(f"  ratio, heap events to bare heapq        {heap_rate / bare_rate:5.2f} "
          f"(target >= {TARGET_RATIO:g})")
    print(f"  ratio, transitions to bare heapq doing one event per transition "
          f"{transition_rate / bare_transition_rate:5.2f} (target >= {TARGET_RATIO:g})")
    print(f"  for context: simpy with empty callbacks reaches "
          f"{heap_events / simpy_loop:,.0f} events/s, ratio {heap_loop / simpy_loop:4.2f} to "
          "bare heapq (the ceiling for any simpy engine)")
    return {"replicate_wall_s": wall, "replicate_target_s": TARGET_SECONDS,
            "peak_memory_mb": peak, "memory_target_mb": TARGET_MEMORY_MB,
            "heap_events_per_s": heap_rate, "ratio_heap_events_to_bare_heapq":
            heap_rate / bare_rate, "ratio_transitions_to_bare_heapq":
            transition_rate / bare_transition_rate, "ratio_target": TARGET_RATIO}


if __name__ == "__main__":
    main()
