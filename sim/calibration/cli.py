"""``cicsim calibrate`` and ``cicsim backtest`` (registered by :mod:`sim.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sim.calibration.backtest import parse_origins
from sim.calibration.targets import DEFAULT_TARGETS
from sim.progress import bar as progress_bar
from sim.progress import wrote_line


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from sim.calibration.scenario_fit import is_scenario_fit, run_scenario_fit

    if is_scenario_fit(args.targets):  # fitted scenario keys (review-assumptions layer)
        return run_scenario_fit(args.targets, args.out)
    args.out = args.out or "scenarios/layers/calibrated.toml"
    from sim.calibration.fit import calibrate
    from sim.calibration.layer import write_layer
    from sim.calibration.report import write_report

    with progress_bar(None, "calibration", quiet=args.quiet, unit="evaluation") as bar:
        result = calibrate(args.scenario, args.targets, base_year=args.base_year,
                           data_dir=args.data_dir, progress=bar.update)
    layer, uncertainty = write_layer(result, args.out, name=args.name)
    paths = write_report(result, args.report_dir, layer_path=layer)
    mape = {e.target.name: e.mape() for e in result.evaluations}
    problem = result.problem
    last = problem.projection_years[-1]
    print(f"calibrated {len(result.names)} parameters in {result.wall_time_s:.1f} s "
          f"({result.evaluations_used} evaluations): MAPE {problem.first_year + 1}-"
          f"{problem.base_year} stock {mape.get('stock', float('nan')):.2f} %, starts "
          f"{mape.get('starts', float('nan')):.2f} %, ceased "
          f"{mape.get('ceased', float('nan')):.2f} %; do-nothing {last}: "
          f"{result.projected('looked_after', last):,.0f}")
    skipped = [f"{e.target.name} ({e.skipped})" for e in result.evaluations if e.skipped]
    if skipped:
        print("skipped targets: " + "; ".join(skipped))
    print(wrote_line([layer, uncertainty, paths["report"], f"plots in {args.report_dir}"]))
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:

    from sim.calibration.backtest import (
        HEADLINE,
        METHODS,
        SHOWN,
        all_rows,
        base_year_slopes,
        choose_default,
        outlook,
        pooled_mape,
        run_backtests,
    )
    from sim.calibration.skill_report import write_backtest_report, write_forecast_layer
    from sim.errors import InputError

    if args.step not in (1, 2):
        raise InputError(f"backtest: --step {args.step} must be 1 or 2")
    origins = parse_origins(args.origins)[::args.step]
    if not origins:
        raise InputError(f"backtest: --origins {args.origins!r} names no year")
    methods = args.methods.split(",") if args.methods else list(METHODS)

    bar = progress_bar(len(origins), "backtest origins", quiet=args.quiet, unit="origin")

    def progress(result: object) -> None:
        bar.set_postfix_str(f"origin {result.origin} done")  # type: ignore[attr-defined]
        bar.update(1)

    with bar:
        results = run_backtests(origins, args.horizon, args.targets, args.scenario,
                                data_dir=args.data_dir, methods=methods, progress=progress)
    rows = all_rows(results)
    default = choose_default(rows, list(range(1, args.horizon + 1)))
    shown = [m for m in dict.fromkeys((default, *SHOWN)) if m in methods]
    paths = write_backtest_report(results, args.out_dir, args.horizon,
                                  outlook(shown, data_dir=args.data_dir))
    horizons = list(range(1, args.horizon + 1))
    for method in methods:
        values = ", ".join(f"{v} {pooled_mape(rows, method, v, horizons):.2f}"
                           for v in HEADLINE)
        print(f"{method:18s} pooled MAPE %: {values}")
    print(f"default treatment: {default}")
    if args.layer:
        slopes = base_year_slopes(default, args.scenario, args.data_dir)
        layer = write_forecast_layer(rows, default, args.horizon, origins, args.layer,
                                     slopes)
    written = [paths["report"], paths["csv"], paths["png"], paths["fans"]]
    print(wrote_line([layer, *written] if args.layer else written))
    return 0


def register(subparsers: Any) -> None:
    """Add ``calibrate`` and ``backtest`` to ``cicsim``."""
    calibrate = subparsers.add_parser(
        "calibrate", help="fit trend parameters to the published history; write "
        "scenarios/layers/calibrated.toml, its uncertainty and a fit report")
    calibrate.add_argument("--targets", default=str(DEFAULT_TARGETS),
                           help="targets TOML (default: history only; "
                           "sim/calibration/targets_review.toml adds the review's figures)")
    calibrate.add_argument("--scenario", default="scenarios/uncalibrated.toml",
                           help="scenario the calibrated layer extends")
    calibrate.add_argument("--base-year", type=int, default=None,
                           help="last year of data used (default: the scenario's)")
    calibrate.add_argument("--out", default=None,
                           help="calibrated scenario layer to write (default: "
                           "scenarios/layers/calibrated.toml, or the layer a scenario-fit "
                           "targets file names)")
    calibrate.add_argument("--name", default="calibrated", help="scenario name in the layer")
    calibrate.add_argument("--report-dir", default="outputs/calibration",
                           help="folder for report.md, fit.csv and PNGs")
    calibrate.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    calibrate.add_argument("--quiet", action="store_true", help="no progress bar")
    calibrate.set_defaults(func=_cmd_calibrate)

    backtest = subparsers.add_parser(
        "backtest", help="rolling-origin evaluation: re-estimate and re-calibrate with "
        "data up to each origin, project by every trend treatment and naive benchmark, "
        "score against later data")
    backtest.add_argument("--origins", default="2014:2020",
                          help="origin years, FIRST:LAST or a comma list (default "
                          "2014:2020)")
    backtest.add_argument("--step", type=int, default=1, help="take every 1st or 2nd origin")
    backtest.add_argument("--horizon", type=int, default=3, help="years projected (default 3)")
    backtest.add_argument("--methods", default="",
                          help="comma list of methods (default: every treatment and "
                          "benchmark)")
    backtest.add_argument("--targets", default=str(DEFAULT_TARGETS))
    backtest.add_argument("--scenario", default="scenarios/uncalibrated.toml")
    backtest.add_argument("--out-dir", default="outputs/backtest")
    backtest.add_argument("--layer", default="",
                          help="also write the forecast layer (chosen treatment and band "
                          "scales) here, e.g. scenarios/layers/forecast.toml")
    backtest.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    backtest.add_argument("--quiet", action="store_true", help="no progress bar")
    backtest.set_defaults(func=_cmd_backtest)
