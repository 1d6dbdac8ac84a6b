"""Running replicates: pick the path, spread replicates over worker processes, stack.

Path: a scenario without ``[capacity]`` runs on the batch path (:mod:`.batch`), one
with capacity on the event path (:mod:`.replay`: the queues replayed without a heap).
``path="simpy"`` runs the reference event path on a simpy heap (:mod:`.replicate`),
which is far slower at national scale.  All give identical records for the same seed
(tests compare them); ``path`` forces one.

Workers: replicates are independent streams and are combined in replicate order, so
the output is identical for any number of worker processes.  A worker process dies with
its parent (:func:`die_with_parent`), whatever killed the parent, so a ``kill -9`` of a
run never leaves orphans holding a national replicate's memory.  ``cicsim batch``
(:mod:`sim.batch`) runs chunks of replicates through :func:`run_replicates` on
dask.distributed; :func:`assemble` turns the chunks into the same dataset.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Literal

import xarray as xr

from sim.engines.des.batch import BatchReplicate
from sim.engines.des.common import ProgressCallback
from sim.engines.des.model import CompiledModel, compile_model
from sim.engines.des.replay import QueueReplicate
from sim.engines.des.replicate import EventReplicate
from sim.engines.des.state import ReplicateResult
from sim.engines.parallel import default_workers
from sim.engines.schema import build_dataset, stack_replicates
from sim.model.parameters import Array, ModelParameters

DesPath = Literal["auto", "batch", "events", "simpy"]
PATHS: tuple[str, ...] = ("auto", "batch", "events", "simpy")


def chosen_path(model: CompiledModel, path: DesPath = "auto",
                ) -> Literal["batch", "events", "simpy"]:
    """``auto``: batch unless the scenario limits places (queues need events)."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if path == "auto":
        return "events" if model.foster_places or model.family_help_places else "batch"
    return path


def simulate_replicate(model: CompiledModel, replicate: int,
                       path: DesPath = "auto") -> ReplicateResult:
    """Run one replicate (its random numbers depend only on the root seed and
    ``replicate``, not on the path)."""
    chosen = chosen_path(model, path)
    if chosen == "batch":
        return BatchReplicate(model, replicate).run()
    if chosen == "simpy":
        return EventReplicate(model, replicate).run()
    return QueueReplicate(model, replicate).run()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit when ``parent_pid`` does, however it died.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill us when the parent
    exits, even by SIGKILL; then, since the parent may have died before the call, check
    it is still our parent.  Elsewhere (or if prctl is unavailable): a daemon thread
    polls the parent pid once a second.
    """
    if os.getppid() != parent_pid:
        os._exit(1)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # died between the check and the call
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


_WORKER_MODEL: CompiledModel | None = None
_WORKER_PATH: DesPath = "auto"


def _worker_init(model: CompiledModel, path: DesPath, parent_pid: int) -> None:
    global _WORKER_MODEL, _WORKER_PATH
    die_with_parent(parent_pid)
    _WORKER_MODEL, _WORKER_PATH = model, path


def _worker_records(replicate: int) -> tuple[int, list[dict[str, Array]], int, int]:
    assert _WORKER_MODEL is not None
    result = simulate_replicate(_WORKER_MODEL, replicate, _WORKER_PATH)
    return replicate, result.records, result.heap_events, result.transitions


def run_replicates(model: CompiledModel, replicates: Sequence[int], path: DesPath = "auto",
                   ) -> xr.Dataset:
    """Replicates ``replicates`` (any subset, e.g. one batch task's chunk), stacked along
    ``replicate`` with their own indices; the event and transition counts summed in the
    ``des_heap_events`` / ``des_transitions`` attributes.  Each replicate depends only on
    the root seed and its index, so chunks combine into exactly the dataset of one run."""
    datasets, heap_events, transitions = [], 0, 0
    for replicate in replicates:
        result = simulate_replicate(model, replicate, path)
        datasets.append(build_dataset(list(model.years), result.records))
        heap_events += result.heap_events
        transitions += result.transitions
    ds = stack_replicates(datasets).assign_coords(replicate=list(replicates))
    ds.attrs.update({"des_heap_events": heap_events, "des_transitions": transitions})
    return ds


def run(params: ModelParameters, config: dict[str, Any],
        progress: ProgressCallback | None = None, workers: int | None = None,
        path: DesPath = "auto") -> xr.Dataset:
    """Run ``config['run']['replicates']`` replicates; results along ``replicate``.

    ``workers``: processes (default :func:`default_workers`); ``path``: see
    :func:`chosen_path`.  Neither changes the results.
    """
    model = compile_model(params, config)
    chosen_path(model, path)  # reject a bad path before any work
    workers = default_workers(model.replicates) if workers is None else max(1, workers)
    total = model.replicates
    step = max(1, total // 20)
    outputs: dict[int, list[dict[str, Array]]] = {}
    heap_events = transitions = 0

    def done(count: int) -> None:
        if progress is not None and (count % step == 0 or count == total):
            progress(count, total)

    if workers == 1 or total == 1:
        for replicate in range(total):
            result = simulate_replicate(model, replicate, path)
            outputs[replicate] = result.records
            heap_events += result.heap_events
            transitions += result.transitions
            done(replicate + 1)
    else:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_worker_init,
                                 initargs=(model, path, os.getpid())) as pool:
            futures = [pool.submit(_worker_records, r) for r in range(total)]
            for count, future in enumerate(as_completed(futures), start=1):
                replicate, records, events, moves = future.result()
                outputs[replicate] = records
                heap_events += events
                transitions += moves
                done(count)
    datasets = [build_dataset(list(model.years), outputs[r]) for r in range(total)]
    ds = stack_replicates(datasets)
    ds.attrs.update({"des_heap_events": heap_events, "des_transitions": transitions})
    return assemble(model, ds)


def assemble(model: CompiledModel, ds: xr.Dataset) -> xr.Dataset:
    """The run's attributes on replicates stacked in order (``run`` and ``cicsim batch``
    both end here, so their files carry the same description)."""
    ds = ds.copy()
    ds.attrs.update({
        "des_population_scale": model.population_scale,
        "des_replicates": int(ds.sizes["replicate"]),
        "capacity": json.dumps({
            **model.capacity.__dict__,
            "simulated_foster_places": model.foster_places,
            "simulated_family_help_places": model.family_help_places,
            "note": "capacity is modelled by the discrete-event engine only; the "
                    "stock-flow engine ignores the [capacity] section"}),
        "des_note": "CIN pool aggregate (expected values); children in care and returned "
                    "home simulated individually; counts scaled by 1 / population_scale. "
                    "See docs/des.md",
    })
    return ds
