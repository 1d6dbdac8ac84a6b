"""CLI subcommands ``compare``, ``export``, ``sensitivity`` and ``sweep`` (registered by
sim.cli).

Imports of the heavy modules happen inside the commands, so ``cicsim --help`` and the
other subcommands stay fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.progress import wrote_line


def _read_csv_table(path: Path, what: str, required: tuple[str, ...]) -> Any:
    import pandas as pd

    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a {what} table ({exc})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"{path}: not a {what} table (missing columns: {', '.join(missing)})")
    return table


SENSITIVITY_COLUMNS = ("scenario", "parameter", "metric", "central", "value_low",
                       "value_high", "result_low", "result_high", "swing")
SWEEP_COLUMNS = ("scenario", "value", "label", "key", "net_saving_discounted_gbp_m")


def _cmd_compare(args: argparse.Namespace) -> int:
    import sys

    from sim.reconciliation import reconciliation_html
    from sim.results.areas import area_pairs, area_table, last_common_year
    from sim.results.compare import (
        comparison_table,
        load_results,
        no_baseline_note,
        reference_for,
        to_markdown,
    )
    from sim.results.io import atomic_write_text
    from sim.results.report import ReportInputs, write_report

    out = Path(args.out)
    # Read and check every input before writing anything (bad input writes nothing).
    results = load_results(args.results)
    sensitivity_paths = [Path(p) for p in args.sensitivity] if args.sensitivity is not None \
        else sorted((out / "sensitivity").glob("*.csv"))
    sweep_paths = [Path(p) for p in args.sweep] if args.sweep is not None \
        else sorted((out / "sweeps").glob("*.csv"))
    sensitivity_tables = [_read_csv_table(p, "sensitivity", SENSITIVITY_COLUMNS)
                          for p in sensitivity_paths]
    sweep_tables = [_read_csv_table(p, "sweep", SWEEP_COLUMNS) for p in sweep_paths]
    table = comparison_table(results, baseline=args.baseline, years=args.years)
    note = no_baseline_note(results, args.baseline)
    if note:
        print(f"note: {note}", file=sys.stderr)
    written = [atomic_write_text(out / "comparison.csv", table.to_csv(index=False)),
               atomic_write_text(out / "comparison.md", to_markdown(table))]
    pairs = area_pairs(results, [reference_for(r, results, args.baseline) for r in results])
    if pairs:  # runs by area: every area ranked (the report's area section shows it too)
        written.append(atomic_write_text(
            out / "areas.csv", area_table(pairs, last_common_year(pairs)).to_csv(index=False)))
    # National charts leave out runs by area (their ~3,000 children would sit flat under
    # the ~80,000 national lines); those have their own section (sim/results/areas.py).
    charted = [r for r in results if r.area_ds is None] or results
    figures = _figures(charted, args.baseline, out, sensitivity_paths, sensitivity_tables,
                       sweep_paths)
    written += [f.path for f in figures]
    written.append(write_report(ReportInputs(
        results, table, args.baseline, figures, sensitivity_tables, sweep_tables,
        reconciliation_html(results), notes=[note] if note else [], out_dir=out),
        out / "report.html"))
    print(f"compared {len(results)} runs ({len(figures)} charts)")
    print(wrote_line(written))
    return 0


def _figures(results: Any, baseline: str, out: Path, sensitivity_paths: list[Path],
             sensitivity_tables: list[Any], sweep_paths: list[Path]) -> list[Any]:
    """The report's charts, by section: each kind of scenario gets its own history
    chart (so a variant or a demo never squeezes the policy lines), then its kept-at-home
    and cost charts; demos get the replicate fan charts."""
    from sim.results import plots
    from sim.results.compare import KINDS, column_title
    from sim.results.report import Figure
    from sim.sensitivity import tornado_pngs

    figures: list[Figure] = []
    colors = plots.scenario_colors(results)  # one colour per scenario in every chart
    for kind, heading in KINDS.items():
        group = [r for r in results if r.kind == kind]
        if not group:
            continue
        suffix = "" if kind == "policy" else f"-{kind}"
        shown = group if kind == "policy" or any(r.name == baseline for r in group) else \
            [r for r in results if r.name == baseline] + group  # the baseline for scale
        history = plots.history_and_projection(
            shown, baseline, out / f"history_projection{suffix}.png",
            title=f"{heading}: published history and projections", colors=colors)
        if history is not None:
            figures.append(Figure(
                f"{heading}: children looked after, published and projected", history,
                "Black dots: DfE's published stock at 31 March 2012-2022 (latest revision); "
                "lines: each run's projection (dashed: replicate mean of a discrete-event "
                "run); shaded: prediction bands.", f"history{suffix}", kind))
        kept = None if kind == "demo" else plots.kept_at_home(  # demos: fan charts
            group, baseline, out / f"kept_at_home{suffix}.png", everything=results,
            title=f"{heading}: children kept at home", colors=colors)
        if kept is not None:
            figures.append(Figure(
                f"{heading}: children kept at home", kept,
                f"The reference ('{baseline}', or the scenario family's own *-baseline, "
                "named in brackets) minus the scenario's children looked after at 31 "
                "March.", f"kept-at-home{suffix}", kind))
        if kind != "demo":
            costs = plots.costs(group, out / f"costs{suffix}.png",
                                title=f"{heading}: cost, 2021-22 prices", colors=colors)
            if costs is not None:
                figures.append(Figure(
                    f"{heading}: cost per year", costs,
                    "Children's social care cost per year, programme money included: left "
                    "2021-22 prices, right cash (x the price index, "
                    "costs.inflation_per_year).  The review's £10bn now and over £15bn by "
                    "2032 are cash figures: marked on the cash panel when within its range, "
                    "else noted at its edge.", f"costs{suffix}", kind))
    fans = plots.fan_charts(results, out / "fan_charts.png")
    if fans is not None:
        first = next(r for r in results if r.has_replicates)
        figures.append(Figure("Discrete-event replicates (fan charts)", fans,
                              "Median and 25-75 % / 5-95 % bands over replicates.", "fans",
                              first.kind))
    for path, table_s in zip(sensitivity_paths, sensitivity_tables, strict=True):
        for png in tornado_pngs(table_s, out, f"tornado-{path.stem}"):
            metric = png.stem.removeprefix(f"tornado-{path.stem}-")
            figures.append(Figure(
                f"Sensitivity of {path.stem}: {column_title(metric)}", png,
                "One assumption at a time at the ends of its plausible range, everything "
                "else central; widest bars matter most.", png.stem, "sensitivity"))
    for path in sweep_paths:
        png = plots.sweep_chart(path, out / f"sweep-{path.stem}.png")
        figures.append(Figure(f"Funding sweep: {path.stem}", png,
                              "Children kept at home in the last year (left axis) and net "
                              "discounted saving vs baseline (right axis) against the swept "
                              "amount.", f"sweep-{path.stem}", "sensitivity"))
    return figures


def _cmd_export(args: argparse.Namespace) -> int:
    from sim.results.compare import load_results
    from sim.results.export import write_csv_wide, write_xlsx
    from sim.results.paths import check_output_path

    if args.xlsx is None and args.csv_wide is None:
        raise InputError("export: say what to write: --xlsx FILE and/or --csv-wide FILE")
    # Read and check everything before writing anything.
    targets = [(check_output_path(args.xlsx, key="--xlsx", suffixes=(".xlsx",)), write_xlsx)
               if args.xlsx is not None else None,
               (check_output_path(args.csv_wide, key="--csv-wide", suffixes=(".csv",)),
                write_csv_wide) if args.csv_wide is not None else None]
    results = load_results(args.results)
    written = [write(results, path) for path, write in filter(None, targets)]
    print(f"exported {len(results)} runs")
    print(wrote_line(written))
    return 0


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    from sim.scenarios.loader import load_scenario
    from sim.sensitivity import run_sensitivity

    scenario = load_scenario(args.scenario, args.set)
    baseline_path = Path(args.baseline) if args.baseline else (
        Path(args.scenario).parent / "baseline.toml")
    baseline = load_scenario(baseline_path, args.set)
    csv_path, pngs, table = run_sensitivity(scenario, baseline, Path(args.out_dir),
                                            year=args.year, quiet=args.quiet)
    if table.empty:
        print(f"{scenario.name}: no lever has money, so only costs were varied")
    else:
        top = table.iloc[0]
        print(f"{scenario.name}: {len(table)} rows; widest swing on {top['metric']}: "
              f"{top['parameter']} ({top['result_low']:,.0f} to {top['result_high']:,.0f})")
    print(wrote_line([csv_path, *pngs]))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from sim.sweep import load_sweep, run_sweep

    if args.workers is not None or args.scheduler is not None:
        from sim.batch.cluster import check_cluster_options

        check_cluster_options(args.workers, args.scheduler)  # before any work
    sweep = load_sweep(args.sweep)
    out_dir = Path(args.out_dir)
    summary, table = run_sweep(sweep, out_dir, quiet=args.quiet, workers=args.workers,
                               scheduler=args.scheduler)
    print(f"sweep {sweep.name}: {len(table)} runs of {sweep.key}")
    print(wrote_line([summary, out_dir / f"{sweep.name}.png",
                      f"{len(table) + 1} runs (.nc, .csv) in {out_dir / sweep.name}"]))
    return 0


def register(subparsers: Any) -> None:
    """Add ``compare``, ``export``, ``sensitivity`` and ``sweep`` to ``cicsim``."""
    compare = subparsers.add_parser(
        "compare", help="compare runs: table (CSV, Markdown), charts and report.html")
    compare.add_argument("results", nargs="+", help="result files, e.g. outputs/*.nc")
    compare.add_argument("--out", default="outputs", help="output folder (default outputs)")
    compare.add_argument("--baseline", default="baseline",
                         help="scenario name to compare against (default baseline)")
    compare.add_argument("--years", type=int, nargs="+", default=[2025, 2027, 2032],
                         help="years for the looked-after columns; the last is used for "
                         "children kept at home (default 2025 2027 2032)")
    compare.add_argument("--sensitivity", action="append", default=None, metavar="CSV",
                         help="cicsim sensitivity table(s) to chart (default: OUT/sensitivity"
                         "/*.csv)")
    compare.add_argument("--sweep", action="append", default=None, metavar="CSV",
                         help="cicsim sweep summaries to chart (default: OUT/sweeps/*.csv)")
    compare.set_defaults(func=_cmd_compare)

    export = subparsers.add_parser(
        "export", help="write runs as an Excel workbook (README sheet + one sheet per "
        "variable, years as columns) and/or a wide CSV")
    export.add_argument("results", nargs="+", help="result files, e.g. outputs/baseline.nc")
    export.add_argument("--xlsx", metavar="FILE", help="Excel workbook to write (.xlsx)")
    export.add_argument("--csv-wide", metavar="FILE",
                        help="wide CSV to write: scenario, variable, breakdown, unit, one "
                        "column per year")
    export.set_defaults(func=_cmd_export)

    sensitivity = subparsers.add_parser(
        "sensitivity", help="one-at-a-time (tornado) sensitivity of a scenario to every "
        "lever parameter and unit cost")
    sensitivity.add_argument("scenario", help="scenario TOML file")
    sensitivity.add_argument("--baseline", default=None,
                             help="baseline scenario (default: baseline.toml beside SCENARIO)")
    sensitivity.add_argument("--year", type=int, default=2032,
                             help="year for children kept at home (default 2032)")
    sensitivity.add_argument("--out-dir", default="outputs/sensitivity")
    sensitivity.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="override a key in both the scenario and the baseline")
    sensitivity.add_argument("--quiet", action="store_true", help="no progress lines")
    sensitivity.set_defaults(func=_cmd_sensitivity)

    sweep = subparsers.add_parser("sweep", help="run a sweep file (scenarios/sweeps/*.toml)")
    sweep.add_argument("sweep", help="sweep TOML file")
    sweep.add_argument("--out-dir", default="outputs/sweeps")
    sweep.add_argument("--workers", type=int, default=None,
                       help="run the runs as tasks on a local dask cluster of N processes "
                       "(default: one after another in this process); same files")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the runs on an existing dask cluster (docs/batch.md)")
    sweep.add_argument("--quiet", action="store_true", help="no progress lines")
    sweep.set_defaults(func=_cmd_sweep)
