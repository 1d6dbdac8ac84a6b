"""``cicsim batch``: scenarios x replicates (DES) or parameter draws (stock-flow) as
tasks on dask.distributed, gathered into one Dataset (docs/batch.md).

Why tasks: modellers run scenarios x replicates x parameter draws (and soon x areas);
one process per run wastes the machine and a crash loses everything.  A task is
``(scenario, replicate chunk | draw chunk[, area])``:

* **Seeds come from the task, never the worker.**  A DES replicate ``r`` draws from
  :mod:`sim.rng`'s streams keyed by (root seed, ``r``, stream name) exactly as
  ``cicsim run --engine des`` does (both call :func:`sim.engines.des.runner.run_replicates`
  -> ``simulate_replicate``), so batch replicate ``r`` equals run replicate ``r`` and
  the file is identical whatever the worker count or chunking.  Parameter draw ``d`` is
  row ``d`` of :func:`sim.calibration.sample_parameter_sets` with the root seed, drawn
  on the client (workers read no files): the same draw in every scenario, so scenario
  differences are paired.
* **Resumable.**  Each finished task is written (atomically) to
  ``<out folder>/.batch/<out stem>/<task>.nc`` with its ``task_hash``: the SHA-256 of the
  resolved scenario, the engine, the task, the code and the data.  A rerun skips every
  task whose file carries the hash it would have; the gathered file is always built from
  the task files, so a resumed batch writes the same bytes as an uninterrupted one.
* **Clusters.**  By default a ``LocalCluster`` of ``--workers`` processes with one
  thread each (BLAS on one thread: the matrices are small); ``--scheduler ADDRESS``
  uses an existing cluster, whose workers need cicsim installed.  Local workers die
  with the process that started them (dask's nanny watches its parent; see
  ``docs/batch.md`` for the kill test).
* **Areas.**  :class:`Task` has an ``area`` field (None: England); the area axis of
  ``cicsim run --area`` slots in as one more loop in :func:`plan` and one more
  dimension in :func:`gather`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from sim.errors import InputError
from sim.progress import bar
from sim.scenarios.loader import Scenario

Axis = Literal["replicate", "draw"]
TASK_FORMAT = 1  # bump when a task file's content changes meaning
DEFAULT_CHUNK: dict[str, int] = {"replicate": 1, "draw": 250}


@dataclass(frozen=True)
class Task:
    """One unit of work: a chunk ``[start, stop)`` of replicates or draws of one
    scenario (and, later, one area)."""

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
    config, the engine and, for draws, the drawn ``--set``-style values."""

    task: Task
    config: dict[str, Any]
    engine: str
    draws: tuple[dict[str, float], ...] = ()


def plan(names: Sequence[str], axis: Axis, count: int, chunk: int) -> list[Task]:
    """Tasks for every scenario, chunks of ``chunk`` replicates/draws, in order."""
    return [Task(name, axis, lo, min(count, lo + chunk))
            for name in names for lo in range(0, count, chunk)]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


@functools.lru_cache(maxsize=1)
def _code_and_data() -> str:
    """Hash of the code and the shipped data (read once per process: hashing the data
    for each of 1,000 tasks would cost seconds)."""
    from sim.datasets import data_hashes
    from sim.estimation.cache import code_hash

    return _canonical({"code": code_hash(), "data": data_hashes()})


def task_hash(spec: TaskSpec) -> str:
    """What a task's result depends on: its spec, the code and the data."""
    return hashlib.sha256(_canonical({
        "format": TASK_FORMAT, "task": spec.task.__dict__, "config": spec.config,
        "engine": spec.engine, "draws": spec.draws,
        "code_and_data": _code_and_data()}).encode()).hexdigest()


# --- worker side -------------------------------------------------------------------

_MODELS: dict[str, Any] = {}  # per worker process: compiled DES model by config


def run_task(spec: TaskSpec) -> xr.Dataset:
    """Run one task (on a worker): the raw engine dataset along ``replicate``/``draw``.
    Pure: the result depends only on ``spec`` (plus the code and data)."""
    from sim.engines.des.model import compile_model
    from sim.engines.des.runner import assemble, run_replicates
    from sim.estimation.cache import cached_parameters
    from sim.reinvestment import with_reinvestment

    task, config = spec.task, spec.config
    params = cached_parameters(config)
    if task.axis == "replicate":
        key = _canonical(config)
        if key not in _MODELS:
            _MODELS.clear()  # one scenario's model at a time: a national one is large
            _MODELS[key] = compile_model(params, with_reinvestment(params, config))
        model = _MODELS[key]
        return assemble(model, run_replicates(model, range(task.start, task.stop)))
    return _draw_datasets(params, config, spec.draws, task.start)


def _draw_datasets(params: Any, config: dict[str, Any], draws: Sequence[dict[str, float]],
                   start: int) -> xr.Dataset:
    """Stock-flow projections of parameter draws, batched (``project_batch``).  Each
    draw's trend values go into the config and the parameters with the calibration's
    ``apply_carried`` (equivalent to setting them in the scenario and re-estimating; a
    test checks draw 0 against ``cicsim run --set ...``)."""
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
    result = stockflow.project_batch(params_seq, run_configs)
    datasets = [build_dataset(result["years"], [{k: v[j] for k, v in rec.items()}
                                                for rec in result["records"]],
                              engine="stockflow") for j in range(len(configs))]
    ds = xr.concat(datasets, dim="draw", combine_attrs="drop_conflicts")
    return ds.assign_coords(draw=np.arange(start, start + len(configs)))


# --- client side -------------------------------------------------------------------


def _check_reachable(address: str) -> None:
    """A refused or unroutable ``tcp://host:port`` is bad input at once (dask itself
    would retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # other transports: leave it to dask
    try:
        port = parts.port
        socket.create_connection((parts.hostname or "", port or 8786), timeout=3).close()
    except (OSError, ValueError) as exc:
        raise InputError(f"--scheduler: cannot connect to '{address}': "
                         f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` on ``scheduler``, or on a ``LocalCluster`` of
    ``workers`` one-thread processes, closed (with its cluster) on exit.

    Local workers start without dask's default ``MALLOC_TRIM_THRESHOLD_=65536``: setting
    any glibc malloc threshold turns off glibc's adaptive mmap threshold, so every numpy
    array over 128 KiB is mmap'ed and unmapped again.  Measured on a national DES
    replicate: ~500,000 page faults and 1.8 s of CPU with it, ~9,000 and 0.6 s without.
    A worker holds one scenario's model and returns small datasets, so handing memory
    back to the OS eagerly buys nothing.  (Workers of a cluster started elsewhere,
    ``--scheduler``, get their environment from whoever starts them: docs/batch.md.)

    The client is not made dask's default: xarray would then take a *distributed* lock
    (round trips through the scheduler) for every NetCDF file this process writes, and
    the client writes one per task.  Measured: 0.87 s of wall time per task file with
    a default client, 0.08 s without."""
    import logging

    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler: cannot connect to '{scheduler}': "
                             f"{type(exc).__name__}") from None
        try:
            yield client
        finally:
            client.close()
        return
    defaults = dask.config.get("distributed.nanny.pre-spawn-environ", {})
    malloc = [k for k in defaults if k.startswith("MALLOC_")]
    # The nanny also copies its pre-spawn variables into *this* process's environment
    # (os.environ.update), so a cluster started earlier in this process (a test, a
    # notebook) would hand them on; they are removed while ours runs.
    leaked = {k: os.environ.pop(k) for k in malloc if k in os.environ}
    environ = {k: v for k, v in defaults.items() if k not in malloc}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             dashboard_address=":0", memory_limit=0,
                             silence_logs=logging.ERROR) as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        os.environ.update(leaked)


def _execute(specs: dict[str, TaskSpec], workers: int, scheduler: str | None,
             on_done: Callable[[TaskSpec, xr.Dataset], None]) -> None:
    """Run ``specs`` (by task key); call ``on_done`` in the calling process as each
    finishes.  ``workers=0`` runs them here, one after another (the library's and
    tests' path)."""
    if not specs:
        return
    if workers == 0 and scheduler is None:
        for spec in specs.values():
            on_done(spec, run_task(spec))
        return
    from dask.distributed import as_completed

    with dask_client(workers, scheduler) as client:
        futures = [client.submit(run_task, spec, key=key, pure=False)
                   for key, spec in specs.items()]
        for future in as_completed(futures, loop=client.loop):
            on_done(specs[future.key], future.result())
            future.release()


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


def _check_out(out: Path) -> None:
    """Refuse an output that cannot be written, before any work."""
    if out.suffix != ".nc":
        raise InputError(f"--out: '{out}' must end in .nc")
    if out.is_dir():
        raise InputError(f"--out: '{out}' is a directory")
    try:
        _task_folder(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out: cannot create {_task_folder(out)}: "
                         f"{exc.strerror or type(exc).__name__}") from None
    if not os.access(out.parent, os.W_OK):
        raise InputError(f"--out: folder '{out.parent}' is not writable")


def _finish_scenario(scenario: Scenario, engine: str, axis: Axis,
                     parts: list[xr.Dataset], wall_time_s: float) -> xr.Dataset:
    """One scenario's tasks -> its dataset, post-processed as ``cicsim run`` does."""
    from sim.estimation.cache import cached_parameters
    from sim.reinvestment import reinvested_paths, with_reinvestment
    from sim.run import finish

    params = cached_parameters(scenario.config)
    ds = xr.concat(parts, dim=axis, combine_attrs="override")
    if axis == "replicate":
        ds.attrs.update({
            "des_replicates": int(ds.sizes["replicate"]),
            "des_heap_events": sum(int(p.attrs["des_heap_events"]) for p in parts),
            "des_transitions": sum(int(p.attrs["des_transitions"]) for p in parts)})
        run_config = with_reinvestment(params, scenario.config)
        if run_config is not scenario.config:
            ds.attrs["reinvested_gbp_m"] = json.dumps(reinvested_paths(run_config))
    ds.attrs.pop("task_hash", None)
    seed = int(scenario.config["run"]["seed"])
    return finish(ds, scenario, params, engine, seed, wall_time_s,
                  bands=axis == "replicate")


def gather(scenarios: Sequence[Scenario], engine: str, axis: Axis,
           paths: dict[str, list[Path]], wall_time_s: float) -> xr.Dataset:
    """Every scenario's task files -> one Dataset along ``scenario`` x ``axis``.
    Per-scenario provenance (its resolved TOML, parameters...) is kept as JSON in the
    ``scenario_attrs`` attribute; the top level describes the batch."""
    import pandas as pd

    from sim.provenance import provenance_attrs

    finished = []
    for scenario in scenarios:
        parts = []
        for path in paths[scenario.name]:
            with xr.open_dataset(path) as part:
                parts.append(part.load())
        finished.append(_finish_scenario(scenario, engine, axis, parts, wall_time_s))
    per_scenario = {s.name: ds.attrs for s, ds in zip(scenarios, finished, strict=True)}
    bare = [ds.copy() for ds in finished]
    for ds in bare:
        ds.attrs = {}  # the variables keep theirs (units, definitions)
    combined = xr.concat(bare,
                         dim=pd.Index([s.name for s in scenarios], name="scenario"),
                         join="outer", combine_attrs="override")
    tomls = "\n".join(f"# --- scenario '{s.name}' ---\n{s.to_toml()}" for s in scenarios)
    combined.attrs.update(provenance_attrs(
        tomls, engine, int(scenarios[0].config["run"]["seed"]), wall_time_s,
        extra={"batch_axis": axis, "scenarios": json.dumps([s.name for s in scenarios]),
               "scenario_attrs": _canonical(per_scenario)}))
    return combined


def run_batch(scenarios: Sequence[Scenario], engine: str, count: int, out: str | Path,
              workers: int = 1, scheduler: str | None = None, seed: int | None = None,
              chunk: int | None = None, quiet: bool = True) -> BatchResult:
    """Run every scenario's ``count`` replicates (``engine="des"``) or parameter draws
    (``"stockflow"``) as tasks, resume from finished task files, gather and write
    ``out`` (+ CSV).  ``workers=0``: in this process, no cluster."""
    from sim.results.io import data_hash, write_atomic_netcdf, write_results
    from sim.run import variant

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
    out = Path(out)
    if scheduler is not None:
        _check_reachable(scheduler)
    _check_out(out)
    axis: Axis = "replicate" if engine == "des" else "draw"
    scenarios = [variant(s, count if axis == "replicate" else None, seed) for s in scenarios]
    draws: tuple[dict[str, float], ...] = ()
    if axis == "draw":
        from sim.calibration import sample_parameter_sets

        draws = tuple(sample_parameter_sets(count, int(scenarios[0].config["run"]["seed"])))
    configs = {s.name: s.config for s in scenarios}
    tasks = plan(names, axis, count, chunk or DEFAULT_CHUNK[axis])
    specs = [TaskSpec(t, configs[t.scenario], engine, draws[t.start:t.stop]) for t in tasks]
    folder = _task_folder(out)
    hashes = {spec.task: task_hash(spec) for spec in specs}
    paths = {spec.task: folder / f"{spec.task.name}.nc" for spec in specs}
    todo = [spec for spec in specs if not _done(paths[spec.task], hashes[spec.task])]
    start = time.perf_counter()
    with bar(len(specs), "batch", quiet=quiet, unit="task") as progress:
        progress.update(len(specs) - len(todo))  # already done: resumed

        def save(spec: TaskSpec, ds: xr.Dataset) -> None:
            write_atomic_netcdf(ds.assign_attrs(task_hash=hashes[spec.task]),
                                paths[spec.task])
            progress.update(1)

        _execute({f"cicsim-{spec.task.name}-{hashes[spec.task][:12]}": spec
                  for spec in todo}, workers, scheduler, save)
    by_scenario = {name: [paths[s.task] for s in specs if s.task.scenario == name]
                   for name in names}
    ds = gather(scenarios, engine, axis, by_scenario, time.perf_counter() - start)
    nc_path, csv_path = write_results(ds, out)
    return BatchResult(ds, nc_path, csv_path, data_hash(ds), len(specs),
                       len(specs) - len(todo))


def simulate_distributed(scenario: Scenario, scheduler: str, replicates: int | None = None,
                         seed: int | None = None, chunk: int = 1) -> xr.Dataset:
    """``cicsim run --engine des --scheduler ADDRESS``: the replicates as batch tasks on
    an existing cluster, returned as exactly the dataset :func:`sim.run.simulate` makes
    (no ``scenario`` dimension, nothing saved per task)."""
    from sim.run import variant

    _check_reachable(scheduler)
    scenario = variant(scenario, replicates, seed)
    count = int(scenario.config["run"]["replicates"])
    run = uuid.uuid4().hex[:12]  # this run's keys: a shared scheduler may hold others
    specs = {f"cicsim-{t.name}-{run}": TaskSpec(t, scenario.config, "des")
             for t in plan([scenario.name], "replicate", count, chunk)}
    results: dict[int, xr.Dataset] = {}
    start = time.perf_counter()
    _execute(specs, 0, scheduler, lambda spec, ds: results.__setitem__(spec.task.start, ds))
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
    path = Path(out) if out is not None else Path("outputs") / f"{scenario.name}.nc"
    if path.is_dir() or not os.access(_existing_parent(path), os.W_OK):
        raise InputError(f"--out: cannot write '{path}'")
    ds = simulate_distributed(scenario, scheduler, replicates, seed)
    nc_path, csv_path = write_results(ds, path)
    return ds, nc_path, csv_path


def _existing_parent(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


# --- command line ------------------------------------------------------------------

def _cmd_batch(args: Any) -> int:
    from sim.scenarios.loader import load_scenario

    scenarios = [load_scenario(path, args.set) for path in args.scenario]
    if args.replicates is not None and args.draws is not None:
        raise InputError("batch: give --replicates (DES) or --draws (stock-flow), not both")
    engine = args.engine or ("stockflow" if args.draws is not None else "des")
    if engine == "des" and args.draws is not None:
        raise InputError("batch: --draws needs --engine stockflow")
    if engine == "stockflow" and args.replicates is not None:
        raise InputError("batch: --replicates needs --engine des")
    if engine == "stockflow" and args.draws is None:
        raise InputError("batch: --engine stockflow needs --draws N")
    count = args.draws if engine == "stockflow" else (
        args.replicates if args.replicates is not None
        else int(scenarios[0].config["run"]["replicates"]))
    if args.scheduler is not None and args.workers is not None:
        raise InputError("batch: --workers starts a local cluster; with --scheduler the "
                         "cluster's own workers are used")
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    default = (f"{scenarios[0].name}-batch.nc" if len(scenarios) == 1 else "batch.nc")
    out = Path(args.out) if args.out else Path("outputs") / default
    start = time.perf_counter()
    result = run_batch(scenarios, engine, count, out, workers=workers,
                       scheduler=args.scheduler, seed=args.seed, chunk=args.chunk,
                       quiet=args.quiet)
    what = "replicates" if engine == "des" else "draws"
    print(f"batch: {len(scenarios)} scenario(s) x {count} {what}, {result.tasks} tasks "
          f"({result.skipped} already done); wrote {result.nc_path} "
          f"and {result.csv_path} ({time.perf_counter() - start:.1f} s); "
          f"data sha256 {result.data_hash}")
    return 0


def _extended(path: Path, seen: set[Path]) -> list[Path]:
    """Every file ``path`` builds on: its ``extends`` chain and, for a sweep file, the
    ``[sweep] baseline`` scenario and its chain (read with the loader's TOML reader, so a
    bad file is the usual one-line error)."""
    from sim.scenarios.loader import read_toml

    data = read_toml(path, "scenario")
    parents = [data.get("extends")]
    sweep = data.get("sweep")
    if isinstance(sweep, dict):
        parents.append(sweep.get("baseline"))
    found = []
    for parent in parents:
        if not isinstance(parent, str) or not parent:
            continue
        parent_path = (path.parent / parent).resolve()
        if parent_path in seen:
            continue
        seen.add(parent_path)
        found += [parent_path, *_extended(parent_path, seen)]
    return found


def dependency_rules(paths: Iterable[str | Path], target: str = "outputs/%.nc",
                     rule_file: str | None = None) -> str:
    """Make rules: ``target`` (``%`` = the file's stem) depends on every file the
    scenario or sweep builds on, so ``make`` re-runs exactly what a change reaches.
    ``rule_file`` is a target too, so it is remade when a layer changes what it
    extends."""
    lines = []
    cwd = Path.cwd().resolve()
    for path in map(Path, paths):
        layers = _extended(path, {path.resolve()})
        names = sorted({str(p.relative_to(cwd)) if p.is_relative_to(cwd) else str(p)
                        for p in layers})
        targets = target.replace("%", path.stem) + (f" {rule_file}" if rule_file else "")
        lines.append(f"{targets}: {' '.join(names)}".rstrip())
    return "\n".join(lines) + "\n"


def _cmd_deps(args: Any) -> int:
    text = dependency_rules(args.scenario, args.target, args.out)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    else:
        print(text, end="")
    return 0


def register(sub: Any) -> None:
    batch = sub.add_parser("batch", help="scenarios x replicates or parameter draws on "
                           "dask.distributed, gathered into one file (docs/batch.md)")
    batch.add_argument("scenario", nargs="+", help="scenario TOML file(s)")
    batch.add_argument("--engine", choices=["des", "stockflow"], default=None,
                       help="des: replicates; stockflow: parameter draws")
    batch.add_argument("--replicates", type=int, default=None, help="DES replicates")
    batch.add_argument("--draws", type=int, default=None,
                       help="stock-flow parameter draws from the calibrated uncertainty")
    batch.add_argument("--workers", type=int, default=None,
                       help="local cluster worker processes (default: one per CPU)")
    batch.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="an existing dask scheduler, e.g. tcp://10.0.0.5:8786")
    batch.add_argument("--chunk", type=int, default=None,
                       help="replicates or draws per task (default 1 and 250)")
    batch.add_argument("--out", default=None,
                       help="output NetCDF (default outputs/<scenario>-batch.nc)")
    batch.add_argument("--seed", type=int, default=None, help="root seed")
    batch.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key in every scenario")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(func=_cmd_batch)

    deps = sub.add_parser("deps", help="make rules: each scenario's output depends on the "
                          "files it extends (the Makefile includes them)")
    deps.add_argument("scenario", nargs="+")
    deps.add_argument("--target", default="outputs/%.nc",
                      help="the output each file makes; %% is its stem")
    deps.add_argument("--out", default=None, help="write the rules here (atomically)")
    deps.set_defaults(func=_cmd_deps)
