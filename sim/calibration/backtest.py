"""Backtests: re-estimate and re-calibrate with data up to a base year only, project
forward, and score the projection against the published years after it.

Why: a fit to history says little about projection skill.  The backtest repeats the
whole pipeline as if it were run in the base year (estimation and calibration read
only ``load_observed(base_year)``), then compares with what happened.  The review's
targets are never used (they were published in 2022), and UASC arrivals are held at the
base year's value (future arrivals are unknown at the base year).  Two benchmarks are
scored alongside: the uncalibrated model (estimate.py's trends) and "no change" (the
base year's published value carried forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sim.calibration.fit import CalibrationResult, calibrate  # noqa: E402
from sim.calibration.problem import FREE_PARAMETERS  # noqa: E402
from sim.calibration.targets import TargetSet, load_targets  # noqa: E402
from sim.datasets import load_observed  # noqa: E402
from sim.errors import InputError  # noqa: E402
from sim.scenarios.schema import FIRST_BASE_YEAR, LAST_DATA_YEAR  # noqa: E402

# series scored: name -> (results variable, published measure)
SERIES: dict[str, tuple[str, str]] = {
    "stock": ("looked_after", "looked_after_31_march"),
    "starts": ("started", "started_during_year"),
    "ceased": ("ceased", "ceased_during_year"),
}
METHODS = ("calibrated", "calibrated_no_trend", "uncalibrated", "no_change")


@dataclass
class BacktestResult:
    """Projections from one base year and their errors against later published data."""

    base_year: int
    years: list[int]  # projected years with published data (base + 1 ...)
    observed: dict[str, list[float]]
    projected: dict[str, dict[str, list[float]]]  # method -> series -> values
    calibration: CalibrationResult
    carried: dict[str, float] = field(default_factory=dict)

    def errors(self, method: str, series: str) -> list[float]:
        """Percentage error per projected year."""
        return [(p / o - 1.0) * 100.0 for p, o in zip(self.projected[method][series],
                                                       self.observed[series], strict=True)]

    def mape(self, method: str, series: str) -> float:
        errors = self.errors(method, series)
        return float(np.mean(np.abs(errors))) if errors else float("nan")


def run_backtest(base_year: int, horizon: int | None = None,
                 targets: str | Path | TargetSet | None = None,
                 scenario_path: str | Path | None = None,
                 data_dir: Path | None = None) -> BacktestResult:
    """Calibrate on data up to ``base_year``, project ``horizon`` years, score it."""
    if not FIRST_BASE_YEAR < base_year < LAST_DATA_YEAR:
        raise InputError(f"backtest: --base-year {base_year} must lie in "
                         f"{FIRST_BASE_YEAR + 1}-{LAST_DATA_YEAR - 1} (there must be "
                         "published data after it)")
    horizon = horizon if horizon is not None else LAST_DATA_YEAR - base_year
    if horizon < 1:
        raise InputError(f"backtest: --horizon {horizon} must be at least 1")
    target_set = targets if isinstance(targets, TargetSet) else load_targets(targets,
                                                                             data_dir)
    groups = tuple(g for g in target_set.settings.groups if g != "review")
    end_year = base_year + horizon
    result = calibrate(scenario_path, target_set, base_year=base_year, data_dir=data_dir,
                       groups=groups, end_year=end_year)
    # Scoring reads the later data; nothing above this line did.
    later = load_observed(LAST_DATA_YEAR, data_dir)
    problem = result.problem
    years = [y for y in range(base_year + 1, min(end_year, LAST_DATA_YEAR) + 1)]
    calibrated = dict(zip(problem.projection_years, result.projection_records, strict=True))
    uncalibrated = dict(zip(problem.projection_years, problem.uncalibrated_records(),
                            strict=True))
    no_trend = dict(zip(problem.projection_years, problem.projection_records(
        {name: 0.0 for name in FREE_PARAMETERS}), strict=True))
    observed: dict[str, list[float]] = {}
    projected: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    for name, (variable, measure) in SERIES.items():
        values = [later.get(measure, y) for y in years]
        kept = [y for y, v in zip(years, values, strict=True) if v is not None]
        observed[name] = [v for v in values if v is not None]
        projected["calibrated"][name] = [float(np.sum(calibrated[y][variable])) for y in kept]
        projected["uncalibrated"][name] = [float(np.sum(uncalibrated[y][variable]))
                                           for y in kept]
        projected["calibrated_no_trend"][name] = [float(np.sum(no_trend[y][variable]))
                                                  for y in kept]
        base_value = problem.observed.get(measure, base_year)
        projected["no_change"][name] = [float(base_value or np.nan)] * len(kept)
    return BacktestResult(base_year, years, observed, projected, result, result.carried)


def mape_by_horizon_markdown(results: list[BacktestResult], series: str = "stock") -> str:
    """Absolute % error of ``series`` by horizon (rows: base year x method)."""
    longest = max(len(r.years) for r in results)
    header = ["base year", "method", *[f"h={h}" for h in range(1, longest + 1)], "MAPE"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        for method in METHODS:
            errors = r.errors(method, series)
            cells = [f"{abs(e):.1f}" for e in errors] + ["-"] * (longest - len(errors))
            lines.append(f"| {r.base_year} | {method} | " + " | ".join(cells)
                         + f" | {r.mape(method, series):.2f} |")
    # mean over base years at each horizon
    for method in METHODS:
        cells = []
        for h in range(longest):
            values = [abs(r.errors(method, series)[h]) for r in results
                      if len(r.errors(method, series)) > h]
            cells.append(f"{np.mean(values):.1f}" if values else "-")
        overall = np.mean([r.mape(method, series) for r in results])
        lines.append(f"| mean | {method} | " + " | ".join(cells) + f" | {overall:.2f} |")
    return "\n".join(lines)


def plot_backtests(results: list[BacktestResult], path: Path) -> Path:
    figure, axes = plt.subplots(1, len(SERIES), figsize=(13, 4))
    later = load_observed(LAST_DATA_YEAR, results[0].calibration.problem.data_dir)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    first = min(r.calibration.problem.first_year for r in results)
    for axis, (name, (_, measure)) in zip(axes, SERIES.items(), strict=True):
        years = [y for y in range(first, LAST_DATA_YEAR + 1) if later.get(measure, y)]
        axis.plot(years, [later.get(measure, y) for y in years], "o-", color="black",
                  ms=3, label="published (DfE)")
        for colour, r in zip(colours, results, strict=False):
            problem = r.calibration.problem
            axis.plot([r.base_year, *r.years],
                      [problem.observed.get(measure, r.base_year) or np.nan,
                       *r.projected["calibrated"][name]], color=colour,
                      label=f"calibrated from {r.base_year}")
            axis.plot([r.base_year, *r.years],
                      [problem.observed.get(measure, r.base_year) or np.nan,
                       *r.projected["uncalibrated"][name]], color=colour, ls=":",
                      label=f"uncalibrated from {r.base_year}")
        axis.set_title(name)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    figure.suptitle("Backtests: projections using only data up to each base year "
                    "(dotted: estimate.py trends)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_backtest_report(results: list[BacktestResult], out_dir: str | Path
                          ) -> dict[str, Path]:
    """report.md (MAPE by horizon per series), errors.csv and backtest.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report": out_dir / "report.md", "csv": out_dir / "errors.csv",
             "png": plot_backtests(results, out_dir / "backtest.png")}
    with open(paths["csv"], "w", encoding="utf-8") as handle:
        handle.write("base_year,method,series,year,horizon,observed,projected,"
                     "error_percent\n")
        for r in results:
            for method in METHODS:
                for name in SERIES:
                    for year, observed, value, error in zip(
                            r.years, r.observed[name], r.projected[method][name],
                            r.errors(method, name), strict=False):
                        handle.write(f"{r.base_year},{method},{name},{year},"
                                     f"{year - r.base_year},{observed},{value:.3f},"
                                     f"{error:.4f}\n")
    text = ["# Backtests", "",
            "Each base year: parameters re-estimated and trends re-calibrated using only "
            "data up to that year (the review's targets excluded), projected forward, then "
            "scored against DfE's published series (latest vintage).  Methods: "
            "`calibrated` (this package), `calibrated_no_trend` (the same model with every "
            "trend set to zero: rates held at the base year's level, which separates "
            "structural error from trend error), `uncalibrated` (estimate.py's OLS "
            "trends), `no_change` (the base year's published value).  Cells: absolute % error at "
            "horizon h years.", ""]
    for name in SERIES:
        text += [f"## {name}", "", mape_by_horizon_markdown(results, name), ""]
    text += ["## Calibrated trends carried forward from each base year", "",
             "| base year | " + " | ".join(k.split(".")[1] for k in results[0].carried)
             + " |", "|---|" + "---|" * len(results[0].carried)]
    for r in results:
        text.append(f"| {r.base_year} | " + " | ".join(f"{v:+.4f}" for v in r.carried.values())
                    + " |")
    text += ["", "![backtests](backtest.png)", ""]
    paths["report"].write_text("\n".join(text), encoding="utf-8")
    return paths
