"""The client side of ``cicsim batch``: plan the tasks, skip finished ones, run the rest
on dask, gather the task files into one dataset (:mod:`sim.batch`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from sim.batch.cluster import check_reachable, execute
from sim.batch.tasks import (
    DEFAULT_CHUNK,
    Axis,
    Task,
    TaskSpec,
    canonical,
    forget,
    plan,
    run_task,
    run_task_file,
    task_hash,
)
from sim.errors import InputError
from sim.progress import bar
from sim.results.paths import check_output_path
from sim.scenarios.loader import Scenario


@dataclass
class BatchResult:
    dataset: xr.Dataset
    nc_path: Path
    csv_path: Path
    data_hash: str
    tasks: int
    skipped: int


def _task_folder(out: Path) -> Path:
    return out.parent / ".batch" / out.stem


def _done(path: Path, expected: str) -> bool:
    """True if ``path`` holds a finished task with provenance hash ``expected``."""
    if not path.is_file():
        return False
    try:
        with xr.open_dataset(path) as ds:
            return ds.attrs.get("task_hash") == expected
    except (OSError, ValueError):  # unreadable: redo it
        return False


def _make_task_folder(out: Path) -> Path:
    folder = _task_folder(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out: cannot create {folder}: "
                         f"{exc.strerror or type(exc).__name__}") from None
    return folder


def _des_counts(parts: Sequence[xr.Dataset]) -> dict[str, int]:
    """The DES counts of a run made of task chunks: replicates, events, transitions."""
    return {"des_replicates": sum(int(p.sizes["replicate"]) for p in parts),
            "des_heap_events": sum(int(p.attrs["des_heap_events"]) for p in parts),
            "des_transitions": sum(int(p.attrs["des_transitions"]) for p in parts)}


def _finish_scenario(scenario: Scenario, engine: str, axis: Axis,
                     parts: list[xr.Dataset], wall_time_s: float) -> xr.Dataset:
    """One scenario's tasks -> its dataset, post-processed as ``cicsim run`` does."""
    from sim.estimation.cache import cached_parameters
    from sim.reinvestment import reinvested_paths, with_reinvestment
    from sim.run import finish

    params = cached_parameters(scenario.config)
    ds = xr.concat(parts, dim=axis, combine_attrs="override")
    if axis == "replicate":
        ds.attrs.update(_des_counts(parts))
        run_config = with_reinvestment(params, scenario.config)
        if run_config is not scenario.config:
            ds.attrs["reinvested_gbp_m"] = json.dumps(reinvested_paths(run_config))
    ds.attrs.pop("task_hash", None)
    seed = int(scenario.config["run"]["seed"])
    return finish(ds, scenario, params, engine, seed, wall_time_s,
                  bands=axis == "replicate")


def _finish_areas(setup: Any, engine: str, axis: Axis, parts: list[tuple[Task, xr.Dataset]],
                  wall_time_s: float) -> xr.Dataset:
    """One scenario's tasks by area -> its dataset with an ``area`` dimension,
    post-processed as ``cicsim run --area`` does (:func:`sim.run.finish_areas`)."""
    from sim.results.areas import AREA_DIM
    from sim.run import finish_areas

    by_area = [xr.concat([ds for task, ds in parts if task.area == code], dim=axis,
                         combine_attrs="override") for code in setup.codes]
    ds = xr.concat(by_area, dim=AREA_DIM, combine_attrs="override")
    ds.attrs.pop("task_hash", None)
    extra = _des_counts([ds for _, ds in parts]) if axis == "replicate" else {}
    return finish_areas(ds, setup, engine, int(setup.scenario.config["run"]["seed"]),
                        wall_time_s, bands=axis == "replicate", extra=extra)


def gather(scenarios: Sequence[Scenario], engine: str, axis: Axis,
           files: dict[str, list[tuple[Task, Path]]], wall_time_s: float,
           setups: dict[str, Any] | None = None) -> xr.Dataset:
    """Every scenario's task files -> one Dataset along ``scenario`` x ``axis`` (x
    ``area`` with ``setups``: each scenario's :class:`sim.run.AreaSetup`).
    Per-scenario provenance (its resolved TOML, parameters...) is kept as JSON in the
    ``scenario_attrs`` attribute; the top level describes the batch."""
    import pandas as pd

    from sim.provenance import provenance_attrs

    finished = []
    for scenario in scenarios:
        parts = []
        for task, path in files[scenario.name]:
            with xr.open_dataset(path) as part:
                parts.append((task, part.load()))
        if setups:
            finished.append(_finish_areas(setups[scenario.name], engine, axis, parts,
                                          wall_time_s))
        else:
            finished.append(_finish_scenario(scenario, engine, axis,
                                             [ds for _, ds in parts], wall_time_s))
    per_scenario = {s.name: ds.attrs for s, ds in zip(scenarios, finished, strict=True)}
    bare = [ds.copy() for ds in finished]
    for ds in bare:
        ds.attrs = {}  # the variables keep theirs (units, definitions)
    combined = xr.concat(bare,
                         dim=pd.Index([s.name for s in scenarios], name="scenario"),
                         join="outer", combine_attrs="override")
    tomls = "\n".join(f"# --- scenario '{s.name}' ---\n{s.to_toml()}" for s in scenarios)
    extra = {"batch_axis": axis, "scenarios": json.dumps([s.name for s in scenarios]),
             "scenario_attrs": canonical(per_scenario)}
    if setups:
        extra["area_selector"] = next(iter(setups.values())).selector
    combined.attrs.update(provenance_attrs(
        tomls, engine, int(scenarios[0].config["run"]["seed"]), wall_time_s, extra=extra))
    return combined


def _specs(scenarios: Sequence[Scenario], engine: str, axis: Axis, count: int,
           chunk: int, draws: tuple[dict[str, float], ...],
           setups: dict[str, Any]) -> list[TaskSpec]:
    """Every task with what its worker needs: England's config, or each area's own
    (its lever money; for the DES its capacity and root seed, ``AreaSetup.des_config``)."""
    if not setups:
        configs = {s.name: s.config for s in scenarios}
        return [TaskSpec(t, configs[t.scenario], engine, draws[t.start:t.stop])
                for t in plan(list(configs), axis, count, chunk)]
    specs = []
    for scenario in scenarios:
        setup = setups[scenario.name]
        for i, code in enumerate(setup.codes):
            config = setup.des_config(i) if axis == "replicate" else setup.configs[i]
            specs += [TaskSpec(t, config, engine, draws[t.start:t.stop], setup.selector)
                      for t in plan([scenario.name], axis, count, chunk, [code])]
    return specs


def run_batch(scenarios: Sequence[Scenario], engine: str, count: int, out: str | Path,
              workers: int = 1, scheduler: str | None = None, seed: int | None = None,
              chunk: int | None = None, quiet: bool = True,
              area: str | None = None) -> BatchResult:
    """Run every scenario's ``count`` replicates (``engine="des"``) or parameter draws
    (``"stockflow"``) as tasks, resume from finished task files, gather and write
    ``out`` (+ CSV).  ``workers=0``: in this process, no cluster.  ``area``: an
    ``--area`` selector (None or ``england``: England as a whole, no area dimension);
    by area, the default chunk is all of an area's replicates or 250 draws."""
    from sim.results.io import data_hash, member_means, save_atomically, write_results
    from sim.run import area_setup, is_national, resolve, variant

    if engine not in ("des", "stockflow"):
        raise InputError(f"--engine: unknown engine '{engine}'; valid: des, stockflow")
    if count < 1:
        raise InputError(f"--{'replicates' if engine == 'des' else 'draws'}: must be at "
                         f"least 1, got {count}")
    if workers < 0 or (chunk is not None and chunk < 1):
        raise InputError("--workers must be >= 1 and --chunk >= 1")
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise InputError(f"batch: scenario names must differ, got {names}")
    selector = None if is_national(area) else str(area)
    if selector is not None:
        resolve(selector, "--area")  # an unknown area is bad input before anything
    if scheduler is not None:
        check_reachable(scheduler)
    out = check_output_path(out)  # nothing created before any work
    check_output_path(out.with_suffix(".csv"), suffixes=(".csv",))
    axis: Axis = "replicate" if engine == "des" else "draw"
    scenarios = [variant(s, count if axis == "replicate" else None, seed) for s in scenarios]
    setups = {s.name: area_setup(s, selector) for s in scenarios} if selector else {}
    draws: tuple[dict[str, float], ...] = ()
    if axis == "draw":
        from sim.calibration import sample_parameter_sets

        draws = tuple(sample_parameter_sets(count, int(scenarios[0].config["run"]["seed"])))
    default_chunk = count if setups and axis == "replicate" else DEFAULT_CHUNK[axis]
    specs = _specs(scenarios, engine, axis, count, chunk or default_chunk, draws, setups)
    folder = _make_task_folder(out)
    hashes = {spec.task: task_hash(spec) for spec in specs}
    paths = {spec.task: folder / f"{spec.task.name}.nc" for spec in specs}
    todo = [spec for spec in specs if not _done(paths[spec.task], hashes[spec.task])]
    start = time.perf_counter()
    if workers == 0 and scheduler is None:
        forget()  # in this process: nothing held from an earlier batch
    with bar(len(specs), "batch", quiet=quiet, unit="task") as progress:
        progress.update(len(specs) - len(todo))  # already done: resumed

        def save(item: tuple[TaskSpec, str], data: bytes) -> None:
            save_atomically(paths[item[0].task], lambda tmp: tmp.write_bytes(data))
            progress.update(1)

        execute({f"cicsim-{spec.task.name}-{hashes[spec.task][:12]}":
                 (spec, hashes[spec.task]) for spec in todo},
                run_task_file, workers, scheduler, save)
    files = {name: [(s.task, paths[s.task]) for s in specs if s.task.scenario == name]
             for name in names}
    ds = gather(scenarios, engine, axis, files, time.perf_counter() - start, setups)
    # the CSV: means over the members and the bands; every member is in the NetCDF
    nc_path, csv_path = write_results(ds, out, csv_source=member_means(ds, axis))
    return BatchResult(ds, nc_path, csv_path, data_hash(ds), len(specs),
                       len(specs) - len(todo))


def simulate_distributed(scenario: Scenario, scheduler: str, replicates: int | None = None,
                         seed: int | None = None, chunk: int = 1) -> xr.Dataset:
    """``cicsim run --engine des --scheduler ADDRESS``: the replicates as batch tasks on
    an existing cluster, returned as exactly the dataset :func:`sim.run.simulate` makes
    (no ``scenario`` dimension, nothing saved per task)."""
    from sim.run import variant

    check_reachable(scheduler)
    scenario = variant(scenario, replicates, seed)
    count = int(scenario.config["run"]["replicates"])
    run = uuid.uuid4().hex[:12]  # this run's keys: a shared scheduler may hold others
    specs = {f"cicsim-{t.name}-{run}": TaskSpec(t, scenario.config, "des")
             for t in plan([scenario.name], "replicate", count, chunk)}
    results: dict[int, xr.Dataset] = {}
    start = time.perf_counter()
    execute(specs, run_task, 0, scheduler,
            lambda spec, ds: results.__setitem__(spec.task.start, ds))
    parts = [results[key] for key in sorted(results)]
    return _finish_scenario(scenario, "des", "replicate", parts, time.perf_counter() - start)


def run_distributed_to_file(scenario: Scenario, scheduler: str, out: str | None = None,
                            engine: str | None = None, replicates: int | None = None,
                            seed: int | None = None, workers: int | None = None,
                            ) -> tuple[xr.Dataset, Path, Path]:
    """:func:`simulate_distributed` then write ``outputs/<scenario>.nc`` (+ .csv), as
    ``cicsim run`` does."""
    from sim.results.io import write_results

    if (engine or scenario.config["run"]["engine"]) != "des":
        raise InputError("--scheduler: runs DES replicates; add --engine des")
    if workers is not None:
        raise InputError("--scheduler: the cluster's workers are used; drop --workers")
    path = check_output_path(out if out is not None
                             else Path("outputs") / f"{scenario.name}.nc")
    check_output_path(path.with_suffix(".csv"), suffixes=(".csv",))
    ds = simulate_distributed(scenario, scheduler, replicates, seed)
    nc_path, csv_path = write_results(ds, path)
    return ds, nc_path, csv_path
