"""``cicsim batch`` and ``cicsim deps`` on the command line (:mod:`sim.batch`)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sim.errors import InputError


def _default_out(scenarios: list[Any], area: str | None) -> Path:
    """``outputs/<scenario>-batch.nc`` (``batch.nc`` for several scenarios); by area
    the selector goes in too, as ``cicsim run --area`` names its file
    (``outputs/baseline-pathfinders-batch.nc``)."""
    from sim.run import default_out

    stem = default_out(scenarios[0], area).stem  # <scenario>[-<selector>]
    if len(scenarios) > 1:
        stem = "batch" + stem.removeprefix(scenarios[0].name)
        return Path("outputs") / f"{stem}.nc"
    return Path("outputs") / f"{stem}-batch.nc"


def _cmd_batch(args: Any) -> int:
    from sim.batch.cluster import check_cluster_options
    from sim.batch.runner import run_batch
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
    check_cluster_options(args.workers, args.scheduler)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    out = Path(args.out) if args.out else _default_out(scenarios, args.area)
    start = time.perf_counter()
    result = run_batch(scenarios, engine, count, out, workers=workers,
                       scheduler=args.scheduler, seed=args.seed, chunk=args.chunk,
                       quiet=args.quiet, area=args.area)
    what = "replicates" if engine == "des" else "draws"
    areas = ""
    if "area" in result.dataset.dims:
        areas = f" x {result.dataset.sizes['area']} areas ({args.area})"
    print(f"batch: {len(scenarios)} scenario(s) x {count} {what}{areas}, {result.tasks} "
          f"tasks ({result.skipped} already done); wrote {result.nc_path} "
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
                       help="replicates or draws per task (default 1 and 250; by area, "
                       "all of an area's replicates and 250 draws)")
    batch.add_argument("--area", default=None, metavar="SELECTOR",
                       help="by local authority, as cicsim run --area: a code or name, a "
                       "list, a region, 'pathfinders' or 'all' (adds an area dimension; "
                       "'all' adds England as the sum)")
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
