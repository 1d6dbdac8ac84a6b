"""A batch's tasks, their hashes, and what a worker does with one (:mod:`sim.batch`).

Everything here runs on a worker too, so it reads no path given by the client: a task
carries its resolved config, and a worker estimates (from the parameter cache, as
``cicsim run`` does) or receives everything else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

Axis = Literal["replicate", "draw"]
TASK_FORMAT = 2  # bump when a task file's content changes meaning (2: areas)
DEFAULT_CHUNK: dict[str, int] = {"replicate": 1, "draw": 250}


@dataclass(frozen=True)
class Task:
    """One unit of work: a chunk ``[start, stop)`` of replicates or draws of one
    scenario, in one area (ONS code) or, with ``area=None``, England as a whole."""

    scenario: str
    axis: Axis
    start: int
    stop: int
    area: str | None = None

    @property
    def name(self) -> str:
        area = f".{self.area}" if self.area is not None else ""
        return f"{self.scenario}{area}.{self.axis}-{self.start:06d}-{self.stop:06d}"


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs (picklable; no file paths): the task, the resolved
    config (an area task: that area's, with its lever money, capacity and seed), the
    engine, for draws the drawn ``--set``-style values, and for an area task the
    ``--area`` selector whose areas were estimated together (the worker estimates the
    same set, so an area gets the parameters ``cicsim run --area SELECTOR`` gives it)."""

    task: Task
    config: dict[str, Any]
    engine: str
    draws: tuple[dict[str, float], ...] = ()
    area_selector: str | None = None


def plan(names: Sequence[str], axis: Axis, count: int, chunk: int,
         areas: Sequence[str | None] = (None,)) -> list[Task]:
    """Tasks for every scenario, area and chunk of ``chunk`` replicates/draws, in that
    order (an area's chunks together: a worker compiles an area's model once)."""
    return [Task(name, axis, lo, min(count, lo + chunk), area)
            for name in names for area in areas for lo in range(0, count, chunk)]


def canonical(value: Any) -> str:
    """Sorted-key JSON: the text hashes and cache keys are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


@functools.lru_cache(maxsize=1)
def _code_and_data() -> str:
    """Hash of the code and the shipped data (read once per process: hashing the data
    for each of 1,000 tasks would cost seconds)."""
    from sim.datasets import data_hashes
    from sim.estimation.cache import code_hash

    return canonical({"code": code_hash(), "data": data_hashes()})


def task_hash(spec: TaskSpec) -> str:
    """What a task's result depends on: its spec (area and selector included), the code
    and the data."""
    return hashlib.sha256(canonical({
        "format": TASK_FORMAT, "task": spec.task.__dict__, "config": spec.config,
        "engine": spec.engine, "draws": spec.draws, "area_selector": spec.area_selector,
        "code_and_data": _code_and_data()}).encode()).hexdigest()


# --- worker side -------------------------------------------------------------------

_MODELS: dict[str, Any] = {}  # per worker process: compiled DES model by area and config
_AREA_PARAMETERS: dict[str, tuple[list[str], list[Any]]] = {}  # by selector and inputs


def forget() -> None:
    """Drop this process's compiled model and area parameters (a library caller that
    runs batches in its own process, ``workers=0``, gets nothing from an earlier one)."""
    _MODELS.clear()
    _AREA_PARAMETERS.clear()


def _parameters(spec: TaskSpec) -> Any:
    """The task's parameters: England's (cached estimation), or its area's, estimated
    with the other areas of its selector exactly as ``cicsim run --area`` does (held
    for the process: every task of a batch by area asks for the same set)."""
    from sim.estimation.cache import cached_parameters, estimation_inputs
    from sim.run import area_fields, selector_parameters

    if spec.task.area is None:
        return cached_parameters(spec.config)
    assert spec.area_selector is not None, "an area task names its selector"
    key = canonical([spec.area_selector, estimation_inputs(spec.config)])
    if key not in _AREA_PARAMETERS:
        _AREA_PARAMETERS.clear()  # one selector at a time: 'all' holds 152 areas
        areas, params = selector_parameters(spec.config, spec.area_selector)
        _AREA_PARAMETERS[key] = ([area_fields(a)[0] for a in areas], params)
    codes, params = _AREA_PARAMETERS[key]
    return params[codes.index(spec.task.area)]


def run_task(spec: TaskSpec) -> xr.Dataset:
    """Run one task (on a worker): the raw engine dataset along ``replicate``/``draw``.
    Pure: the result depends only on ``spec`` (plus the code and data)."""
    from sim.engines.des.model import compile_model
    from sim.engines.des.runner import assemble, run_replicates
    from sim.reinvestment import with_reinvestment

    task, config = spec.task, spec.config
    params = _parameters(spec)
    if task.axis == "replicate":
        key = canonical([task.area, config])
        if key not in _MODELS:
            _MODELS.clear()  # one model at a time: a national one is large
            _MODELS[key] = compile_model(params, with_reinvestment(params, config))
        model = _MODELS[key]
        return assemble(model, run_replicates(model, range(task.start, task.stop)))
    return _draw_datasets(params, config, spec.draws, task.start)


def run_task_file(item: tuple[TaskSpec, str]) -> bytes:
    """Run one task (on a worker) and return its task file's bytes: the NetCDF of
    :func:`run_task` with the ``task_hash`` the client expects (``item[1]``).

    Why bytes and not the dataset: encoding the NetCDF here, in parallel on the
    workers, takes it off the client, which otherwise spent ~40 ms of CPU per task
    writing it (4 s of 100 replicates) while sharing the cores with the workers; the
    client only writes the bytes.  A temporary file because the netCDF4 library writes
    to a path.  The ``synchronous`` scheduler while writing: on a dask worker xarray
    would otherwise find the worker's client and take a distributed lock through the
    scheduler for the write (measured: the batch got slower, not faster)."""
    import dask

    spec, expected_hash = item
    ds = run_task(spec).assign_attrs(task_hash=expected_hash)
    handle, name = tempfile.mkstemp(suffix=".nc", prefix="cicsim-task-")
    os.close(handle)
    try:
        with dask.config.set(scheduler="synchronous"):
            ds.to_netcdf(name)
        return Path(name).read_bytes()
    finally:
        os.unlink(name)


def _draw_datasets(params: Any, config: dict[str, Any], draws: Sequence[dict[str, float]],
                   start: int) -> xr.Dataset:
    """Stock-flow projections of parameter draws, batched (``project_batch``).  Each
    draw's trend values go into the config and the parameters with the calibration's
    ``apply_carried`` (equivalent to setting them in the scenario and re-estimating; a
    test checks draw 0 against ``cicsim run --set ...``, nationally and by area: an
    authority's trends are England's, ``sim.estimation.areas``)."""
    from sim.calibration.problem import apply_carried
    from sim.engines import stockflow
    from sim.engines.schema import build_dataset
    from sim.reinvestment import with_reinvestment

    configs, params_seq = [], []
    for values in draws:
        changed = json.loads(json.dumps(config))  # a mutable copy of the frozen config
        params_seq.append(apply_carried(params, changed, values))
        configs.append(changed)
    run_configs = [with_reinvestment(p, c) for p, c in zip(params_seq, configs, strict=True)]
    # one thread: the cluster already runs one worker per core
    result = stockflow.project_batch(params_seq, run_configs, threads=1)
    ds = build_dataset(result["years"], result["records"], engine="stockflow",
                       batch_dim="draw")
    return ds.assign_coords(draw=np.arange(start, start + len(configs)))
