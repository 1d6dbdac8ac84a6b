"""Command line: ``cicsim`` (or ``python -m sim``).

Exit codes: 0 ok, 2 bad input (one line on stderr naming the file and key), 1 internal
error.  Subcommands owned by other packages register themselves through
:data:`EXTENSIONS` (each module has ``register(subparsers)``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from sim.errors import InputError, shown
from sim.progress import wrote_line

EXTENSIONS = (
    "sim.calibration.cli",
    "sim.calibration.area_backtest",
    "sim.compare_cli",
    "sim.solve",
    "sim.ssda903_cli",
    "sim.batch",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are bad input (exit 2, one line)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {shown(message, 300)}")


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.run import run_to_file
    from sim.scenarios.loader import load_scenario

    scenario = load_scenario(args.scenario, args.set)
    if args.out is not None:  # a bad path is reported as such, before the name rule
        from sim.results.paths import check_output_path

        check_output_path(args.out)
    name = run_name(args.name, args.out)
    if name is not None and name != scenario.name:  # recorded as a --set layer
        scenario = load_scenario(args.scenario, [*args.set, f"name={name!r}"])
    options = dict(engine=args.engine, replicates=args.replicates, seed=args.seed,
                   progress=not args.quiet, workers=args.workers)
    if args.scheduler is not None:  # DES replicates as tasks on a dask cluster
        from sim.batch import run_distributed_to_file

        if args.area is not None or args.ssda903:
            raise InputError("--scheduler: not with --area or --ssda903 (use cicsim batch)")
        ds, nc_path, csv_path = run_distributed_to_file(
            scenario, args.scheduler, out=args.out, engine=args.engine,
            replicates=args.replicates, seed=args.seed, workers=args.workers)
    elif args.ssda903:  # an authority's own extract (docs/ssda903.md)
        from sim.ssda903_cli import run_with_extract

        if args.area is not None:
            raise InputError("--area: not with --ssda903 (the extract is one authority)")
        ds, nc_path, csv_path = run_with_extract(scenario, args.ssda903, out=args.out,
                                                 population=args.ssda903_population,
                                                 **options)
    else:
        if args.ssda903_population is not None:
            raise InputError("--ssda903-population: needs --ssda903 DIR")
        ds, nc_path, csv_path = run_to_file(scenario, out=args.out, area=args.area,
                                            **options)
    if str(ds.attrs.get("capacity", "")).startswith("ignored"):
        print(f"warning: {scenario.name}: [capacity] {ds.attrs['capacity']}", file=sys.stderr)
    written = [nc_path, csv_path]
    if args.quantiles and "replicate" in ds.dims:
        from sim.results.summary import write_quantiles

        written += write_quantiles(ds, nc_path)
    last = int(ds.year[-1])
    where = ""
    if "area" in ds.dims:
        from sim.results.areas import area_total

        where = f" in {ds.sizes['area']} areas ({args.area})"
        ds = area_total(ds)
    value = ds["looked_after"].sel(year=last)
    value = float(value.mean()) if "replicate" in value.dims else float(value)
    print(f"{scenario.name}: looked after{where} in {last} = {value:,.0f} "
          f"({ds.attrs['wall_time_s']:.2f} s)")
    print(wrote_line(written))
    return 0


NAME_CHARACTERS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def run_name(name: str | None, out: str | None) -> str | None:
    """The scenario name a run is saved under, by ONE rule: ``--name`` if given, else
    the stem of ``--out`` if given (``--out outputs/fewer-entries.nc`` names the run
    ``fewer-entries``), else the scenario's own name (None here).

    Why: ``compare`` tells runs apart by name, so a variant written to its own file
    must not keep the name of the scenario it came from."""
    chosen = name if name is not None else (Path(out).stem if out else None)
    if chosen is not None and not NAME_CHARACTERS.fullmatch(chosen):
        where = "--name" if name is not None else f"--out {out}"
        raise InputError(f"{where}: scenario name {chosen!r} must be letters, digits, '.', "
                         "'_' or '-', starting with a letter or digit")
    return chosen


def _cmd_validate(args: argparse.Namespace) -> int:
    from sim.scenarios.loader import load_scenario

    scenario = load_scenario(args.scenario, args.set)
    print(f"{args.scenario}: ok (scenario '{scenario.name}', layers: "
          f"{' < '.join(['defaults', *scenario.layers])})")
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from sim.estimation.cache import cached_parameters
    from sim.scenarios.loader import load_scenario

    scenario = load_scenario(args.scenario, args.set)
    if args.scenario is None:  # the built-in defaults are not the do-nothing forecast
        print("note: no scenario given, so these are the built-in defaults (uncalibrated "
              "trends); for the calibrated do-nothing: cicsim params scenarios/baseline.toml",
              file=sys.stderr)
    params = cached_parameters(scenario.config)
    print("| parameter | value | unit | bounds | source |")
    print("|---|---|---|---|---|")
    for row in params.describe():
        print("| " + " | ".join(str(c).replace("\n", " ") for c in row) + " |")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from sim.estimation import cache

    if args.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} cached parameter file(s) from {cache.cache_dir()}")
    else:
        state = "on" if cache.enabled() else "off: CICSIM_CACHE=0"
        print(f"{cache.cache_dir()} (cache {state})")
    return 0


CORE_COMMANDS = ("run", "validate", "params", "cache")


def _without_dask() -> None:
    """Hide dask from this process (``sys.modules["dask"] = None``, Python's documented
    way to block an import).  Why: xarray imports dask.array (~0.5 s) and, when writing
    NetCDF, dask.distributed (~0.3 s) whenever they are installed, though a local run
    uses neither; installed for ``cicsim batch``, they doubled a stock-flow run's time.
    Only for the core commands run as a whole process (an in-process caller may import
    dask later), and never with ``--scheduler``."""
    for name in ("dask", "distributed"):
        sys.modules.setdefault(name, None)  # type: ignore[assignment]


def build_parser(extensions: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``extensions=False`` leaves out the commands other
    modules register (:data:`EXTENSIONS`), whose imports (calibration, dask...) a
    ``cicsim run`` does not need: start-up is most of a stock-flow run's time."""
    parser = _Parser(prog="cicsim", description="Children in care in England: "
                     "projections under funding scenarios")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                title="commands", metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario and write outputs/<name>.nc + .csv")
    run.add_argument("scenario", help="scenario TOML file")
    run.add_argument("--out", help="output NetCDF path (default outputs/<name>.nc); "
                     "without --name its stem becomes the scenario name")
    run.add_argument("--name", default=None,
                     help="scenario name saved in the run (default: the --out stem, else "
                     "the scenario's own); compare and the report show runs by name")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario key, e.g. --set run.end_year=2035")
    run.add_argument("--engine", choices=["stockflow", "des"], default=None)
    run.add_argument("--replicates", type=int, default=None, help="DES replicates")
    run.add_argument("--seed", type=int, default=None, help="DES root seed")
    run.add_argument("--workers", type=int, default=None,
                     help="DES worker processes (default: CICSIM_WORKERS, else one per "
                          "CPU); the results do not depend on it")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="DES: run the replicates on this dask cluster (docs/batch.md)")
    run.add_argument("--quantiles", action="store_true",
                     help="DES: also write 5/50/95 %% bands (<name>_quantiles.nc/.csv)")
    run.add_argument("--area", default=None, metavar="SELECTOR",
                     help="run by local authority: an ONS or DfE code or a name, a "
                          "comma-separated list, a region, 'pathfinders' or 'all' "
                          "(adds an area dimension; default: England as a whole)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--ssda903", metavar="DIR", default=None,
                     help="estimate the rates from an authority's SSDA903 header and "
                          "episodes files in DIR (docs/ssda903.md)")
    run.add_argument("--ssda903-population", type=float, default=None, metavar="N",
                     help="the authority's population aged 0-17 (default: scaled from "
                          "England's by the extract's stock)")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="check a scenario file without running it")
    validate.add_argument("scenario")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    validate.set_defaults(func=_cmd_validate)

    params = sub.add_parser("params", help="print every parameter with its source")
    params.add_argument("scenario", nargs="?", default=None,
                        help="scenario file (default: the built-in, uncalibrated defaults)")
    params.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    params.set_defaults(func=_cmd_params)

    cache = sub.add_parser("cache", help="where estimated parameters are cached, or clear "
                           "them (docs/cache.md)")
    cache.add_argument("action", choices=["dir", "clear"],
                       help="dir: print the cache directory; clear: delete every entry")
    cache.set_defaults(func=_cmd_cache)

    for module_name in EXTENSIONS if extensions else ():
        importlib.import_module(module_name).register(sub)
    return parser


# The engines multiply many small matrices (59 x 59 per age band and month).  Threaded
# BLAS only adds overhead at that size and, on a shared 2-core machine, made runs up to
# 7x slower; one thread is the default unless the user sets otherwise.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """Default every BLAS to one thread.  Called by :func:`main` before any command
    imports numpy (BLAS reads these once, when it loads); a library user's process is
    left alone, and the Makefile sets them for its own targets."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: the reader has gone (``cicsim params | head``), and
    Python's own flush at exit would otherwise print a BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file
        pass


# Exit status when the reader of our output went away: what a shell reports for a
# process ended by SIGPIPE (128 + 13), as `yes | head` does.
BROKEN_PIPE_EXIT = 141


def main(argv: Sequence[str] | None = None) -> int:
    one_blas_thread()
    whole_process = argv is None  # not called in-process (tests, notebooks)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        core = bool(argv) and argv[0] in CORE_COMMANDS
        if whole_process and core and "--scheduler" not in argv \
                and "dask" not in sys.modules:
            _without_dask()
        parser = build_parser(extensions=not core)
        if not argv:  # no command: the usage and every command with what it does
            print(parser.format_help(), end="", file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, quietly
        return code
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return BROKEN_PIPE_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("CICSIM_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {shown(str(exc), 200)} (set "
              "CICSIM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
