"""``cicsim calibrate`` and ``cicsim backtest`` (registered by :mod:`sim.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sim.calibration.targets import DEFAULT_TARGETS


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from sim.calibration.fit import calibrate
    from sim.calibration.layer import write_layer
    from sim.calibration.report import write_report

    result = calibrate(args.scenario, args.targets, base_year=args.base_year,
                       data_dir=args.data_dir)
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
    print(f"wrote {layer}, {uncertainty}, {paths['report']} and plots in {args.report_dir}")
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from sim.calibration.backtest import run_backtest, write_backtest_report

    results = []
    for year in args.base_year:
        result = run_backtest(year, args.horizon, args.targets, args.scenario,
                              data_dir=args.data_dir)
        errors = ", ".join(f"{e:+.1f}" for e in result.errors("calibrated", "stock"))
        print(f"backtest from {year}: stock MAPE calibrated "
              f"{result.mape('calibrated', 'stock'):.2f} %, uncalibrated "
              f"{result.mape('uncalibrated', 'stock'):.2f} %, no change "
              f"{result.mape('no_change', 'stock'):.2f} % (calibrated errors by year: "
              f"{errors})")
        results.append(result)
    paths = write_backtest_report(results, args.out_dir)
    print(f"wrote {paths['report']}, {paths['csv']} and {paths['png']}")
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
    calibrate.add_argument("--out", default="scenarios/layers/calibrated.toml",
                           help="calibrated scenario layer to write")
    calibrate.add_argument("--name", default="calibrated", help="scenario name in the layer")
    calibrate.add_argument("--report-dir", default="outputs/calibration",
                           help="folder for report.md, fit.csv and PNGs")
    calibrate.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    calibrate.set_defaults(func=_cmd_calibrate)

    backtest = subparsers.add_parser(
        "backtest", help="re-estimate and re-calibrate with data up to a base year, "
        "project forward and score against later data")
    backtest.add_argument("--base-year", type=int, action="append", required=True,
                          help="base year (repeat for several)")
    backtest.add_argument("--horizon", type=int, default=None,
                          help="years to project (default: to the last data year)")
    backtest.add_argument("--targets", default=str(DEFAULT_TARGETS))
    backtest.add_argument("--scenario", default="scenarios/uncalibrated.toml")
    backtest.add_argument("--out-dir", default="outputs/backtest")
    backtest.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    backtest.set_defaults(func=_cmd_backtest)
