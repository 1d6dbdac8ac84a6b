"""Fit report: fitted vs observed per target (markdown + CSV), parameter table, PNG plots,
and the do-nothing projection with its parameter-uncertainty band.

Why a band from parameter samples: the DES engine's Monte Carlo spread covers only
demographic noise; the uncertainty in the fitted trends is much larger over ten years,
and the report shows it with the same draws the DES engineer gets from
:func:`sim.calibration.layer.sample_parameter_sets`.
"""

from __future__ import annotations

import copy
import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sim.calibration.fit import CalibrationResult  # noqa: E402
from sim.calibration.free_parameters import FREE_PARAMETERS  # noqa: E402
from sim.calibration.layer import _key_bounds, draw  # noqa: E402
from sim.calibration.problem import (  # noqa: E402
    TargetEvaluation,
    apply_carried,
    model_value,
    observed_value,
)
from sim.datasets import curated_value  # noqa: E402
from sim.engines import stockflow  # noqa: E402
from sim.model import spec  # noqa: E402
from sim.model.parameters import Array  # noqa: E402

HEADLINE = ("stock", "starts", "ceased")
BAND_SAMPLES = 100
BAND_SEED = 20220331


@dataclass
class ProjectionSummary:
    """Do-nothing projection at the last year: calibrated, its band, uncalibrated."""

    year: int
    calibrated: float
    low: float  # 5th percentile over parameter draws
    high: float  # 95th percentile
    uncalibrated: float
    band_years: list[int]
    band_low: Array
    band_high: Array


def projection_summary(result: CalibrationResult, samples: int = BAND_SAMPLES,
                       seed: int = BAND_SEED) -> ProjectionSummary:
    """Run the do-nothing projection for parameter draws (stock-flow, cheap)."""
    problem = result.problem
    bounds = [_key_bounds(k) for k in result.carried_keys]
    draws = draw(result.carried_values, result.carried_covariance, bounds, samples, seed)
    stocks = []
    for row in draws:
        carried = dict(zip(result.carried_keys, row.tolist(), strict=True))
        params = problem.projection_params
        config = problem.projection_config
        run_params = apply_carried(params, config, carried)
        records = stockflow.project(run_params, config)["records"]
        stocks.append([float(r["looked_after"]) for r in records])
    # restore the central values in the shared config
    apply_carried(problem.projection_params, problem.projection_config, result.carried)
    array = np.array(stocks)
    low, high = np.percentile(array, [5, 95], axis=0)
    last = problem.projection_years[-1]
    uncalibrated = float(problem.uncalibrated_records()[-1]["looked_after"])
    return ProjectionSummary(last, result.projected("looked_after", last), float(low[-1]),
                             float(high[-1]), uncalibrated, list(problem.projection_years),
                             low, high)


PERSISTENCE_YEARS = (0, 2, 5)


def persistence_sensitivity(result: CalibrationResult) -> list[tuple[str, float]]:
    """Last-year stock when the fitted trends stop after N years (rates then hold):
    the backtests show trend persistence is the largest uncertainty of a projection."""
    problem = result.problem
    out = []
    for years in PERSISTENCE_YEARS:
        config = copy.deepcopy(problem.projection_config)
        params = replace(apply_carried(problem.projection_params, config, result.carried),
                         trend_until_year=problem.base_year + years)
        records = stockflow.project(params, config)["records"]
        out.append((f"trends stop after {years} years" if years else
                     "no trend (base-year rates held)", float(records[-1]["looked_after"])))
    out.append(("as calibrated (layer setting)", result.projected(
        "looked_after", problem.projection_years[-1])))
    return out


def _format(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"


def fit_table_markdown(result: CalibrationResult) -> str:
    """Per-year fitted vs observed for stock, starts and ceased (the headline table)."""
    by_name = {e.target.name: e for e in result.evaluations}
    problem = result.problem
    header = ["year"]
    for name in HEADLINE:
        header += [f"{name} observed", f"{name} fitted", "error %"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    initial = result.history_records[0]
    row = [f"{problem.first_year} (initial)"]
    for name in HEADLINE:
        evaluation = by_name.get(name)
        if evaluation is None:
            row += ["-", "-", "-"]
            continue
        observed = observed_value(problem.observed, evaluation.target.observed,
                                  problem.first_year)
        fitted = model_value(initial, evaluation.target) or float("nan")
        error = (fitted / observed - 1) * 100 if observed else float("nan")
        row += [_format(observed or float("nan")), _format(fitted), f"{error:+.1f}"]
    lines.append("| " + " | ".join(row) + " |")
    for year in problem.history_years[1:]:
        row = [str(year)]
        for name in HEADLINE:
            evaluation = by_name.get(name)
            if evaluation is None or year not in evaluation.years:
                row += ["-", "-", "-"]
                continue
            i = evaluation.years.index(year)
            observed, fitted = evaluation.observed[i], evaluation.model[i]
            row += [_format(observed), _format(fitted), f"{(fitted / observed - 1) * 100:+.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    mape = ["MAPE"]
    for name in HEADLINE:
        evaluation = by_name.get(name)
        mape += ["", "", f"{evaluation.mape():.2f}" if evaluation else "-"]
    lines.append("| " + " | ".join(mape) + " |")
    return "\n".join(lines)


def target_table_markdown(evaluations: list[TargetEvaluation]) -> str:
    lines = ["| target | group | kind | loss (scale) | weight | points | MAPE % / value | "
             "status |", "|---|---|---|---|---|---|---|---|"]
    for e in evaluations:
        t = e.target
        scale = (f"sd {t.sd_relative:.0%} rel." if t.sd_relative is not None
                 else f"sd {t.sd:g}")
        if e.skipped:
            shown, status = "-", f"skipped: {e.skipped}"
        elif t.kind == "history":
            shown, status = f"{e.mape():.2f}", "fitted" if t.weight > 0 else "reported only"
        else:
            shown = f"model {_format(e.model[0])} vs {_format(e.observed[0])}"
            status = "fitted" if t.weight > 0 else "reported only"
        lines.append(f"| {t.name} | {t.group} | {t.kind} | {t.loss} ({scale}) | {t.weight:g} "
                     f"| {len(e.years)} | {shown} | {status} |")
    return "\n".join(lines)


def parameter_table_markdown(result: CalibrationResult) -> str:
    problem = result.problem
    lines = ["| parameter | value | s.e. | bounds | prior sd | meaning |",
             "|---|---|---|---|---|---|"]
    for i, name in enumerate(result.names):
        info = FREE_PARAMETERS[name]
        flag = " (at bound)" if name in result.at_bound else ""
        lines.append(f"| {name} | {result.values[i]:+.4f}{flag} | "
                     f"{result.standard_errors[i]:.4f} | [{problem.low[i]:g}, "
                     f"{problem.high[i]:g}] | {problem.prior_sd[i]:g} | {info.description} |")
    for name, value in problem.fixed.items():
        lines.append(f"| {name} | {value:+.4f} (fixed) | - | - | - | "
                     f"{FREE_PARAMETERS[name].description} |")
    return "\n".join(lines)


def carried_table_markdown(result: CalibrationResult) -> str:
    lines = ["| scenario key | value | s.e. |", "|---|---|---|"]
    errors = np.sqrt(np.clip(np.diag(result.carried_covariance), 0, None))
    for key, value, error in zip(result.carried_keys, result.carried_values, errors,
                                 strict=True):
        lines.append(f"| {key} | {value:+.5f} | {error:.5f} |")
    return "\n".join(lines)


def write_fit_csv(result: CalibrationResult, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["target", "group", "kind", "year", "observed", "model",
                         "error_percent", "weight", "skipped"])
        for e in result.evaluations:
            if e.skipped:
                writer.writerow([e.target.name, e.target.group, e.target.kind, "", "", "",
                                 "", e.target.weight, e.skipped])
            for year, observed, model in zip(e.years, e.observed, e.model, strict=True):
                writer.writerow([e.target.name, e.target.group, e.target.kind, year,
                                 observed, round(model, 6),
                                 round((model / observed - 1) * 100, 3) if observed else "",
                                 e.target.weight, ""])


def _panel(axis: plt.Axes, evaluation: TargetEvaluation | None, title: str,
           history_years: list[int], fitted: list[float]) -> None:
    axis.plot(history_years, fitted, color="tab:blue", label="fitted (stock-flow)")
    if evaluation is not None and evaluation.years:
        axis.plot(evaluation.years, evaluation.observed, "o", color="black", ms=4,
                  label="published (DfE)")
    axis.set_title(title, fontsize=9)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.tick_params(labelsize=7)
    axis.grid(alpha=0.3)


def _series(result: CalibrationResult, name: str) -> tuple[TargetEvaluation | None,
                                                            list[float]]:
    evaluation = next((e for e in result.evaluations if e.target.name == name), None)
    if evaluation is None:
        return None, []
    return evaluation, [model_value(r, evaluation.target) or 0.0
                        for r in result.history_records]


def plot_panels(result: CalibrationResult, names: list[str], path: Path,
                columns: int, title: str) -> Path:
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows),
                                squeeze=False)
    years = result.problem.history_years
    for axis, name in zip(axes.ravel(), names, strict=False):
        evaluation, fitted = _series(result, name)
        _panel(axis, evaluation, name.replace("_", " "), years, fitted)
    for axis in axes.ravel()[len(names):]:
        axis.set_visible(False)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_projection(result: CalibrationResult, summary: ProjectionSummary, path: Path,
                    review_value: float | None) -> Path:
    problem = result.problem
    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    evaluation, fitted = _series(result, "stock")
    if evaluation is not None:
        axis.plot(evaluation.years, evaluation.observed, "o", color="black", ms=4,
                  label="published stock (DfE)")
    axis.plot(problem.history_years, fitted, color="tab:blue",
              label=f"fitted history from {problem.first_year}")
    axis.fill_between(summary.band_years, summary.band_low, summary.band_high,
                      color="tab:orange", alpha=0.25,
                      label="5-95 % over parameter uncertainty")
    axis.plot(problem.projection_years,
              [float(r["looked_after"]) for r in result.projection_records],
              color="tab:orange", label="do nothing, calibrated trends")
    axis.plot(problem.projection_years,
              [float(r["looked_after"]) for r in problem.uncalibrated_records()],
              color="grey", ls="--", label="do nothing, estimate.py trends (uncalibrated)")
    if review_value is not None:
        axis.plot([summary.year], [review_value], "D", color="tab:red",
                  label="Independent Review: approaching 100,000")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("children looked after at 31 March")
    axis.set_xlabel("year ending 31 March")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")
    groups = ", ".join(problem.target_set.settings.groups)
    axis.set_title(f"Calibrated do-nothing projection (targets: {groups})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(result: CalibrationResult, out_dir: str | Path,
                 layer_path: Path | None = None) -> dict[str, Path]:
    """Write report.md, fit.csv and the PNGs under ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    problem = result.problem
    summary = projection_summary(result)
    paths = {"csv": out_dir / "fit.csv", "report": out_dir / "report.md"}
    write_fit_csv(result, paths["csv"])
    paths["history_png"] = plot_panels(result, list(HEADLINE), out_dir / "history_fit.png",
                                       3, "Fitted history vs published series")
    targeted = {e.target.name for e in result.evaluations}
    reasons = [name for name in (f"ceased_{r}" for r in spec.CEASED_REASONS)
               if name in targeted]  # the reasons the targets file fits
    paths["reasons_png"] = plot_panels(
        result, [*reasons, "uasc_stock"], out_dir / "ceased_by_reason.png",
        len(reasons) + 1, "Ceased by reason and UASC")
    bands = list(spec.AGE_BAND_NAMES)
    paths["age_png"] = plot_panels(
        result, [f"stock_{b}" for b in bands] + [f"starts_{b}" for b in bands],
        out_dir / "by_age.png", 5, "Stock and starts by age group")
    review = curated_value("review.csv", "approaching 100000", str(summary.year),
                           problem.data_dir) if summary.year == 2032 else None
    paths["projection_png"] = plot_projection(result, summary, out_dir / "projection.png",
                                              review)
    window = f"{problem.first_year + 1}-{problem.base_year}"
    text = [
        f"# Calibration report (base year {problem.base_year})",
        "",
        f"Targets: `{problem.target_set.path}` (groups: "
        f"{', '.join(problem.target_set.settings.groups)}).  Scenario: "
        f"`{problem.scenario.path}`.  Fit window {window}: the stock-flow engine starts "
        f"from {problem.first_year} (parameters estimated from data up to "
        f"{problem.first_year}) with piecewise-linear trends, knot at "
        f"{problem.change_year}.  Method: docs/calibration.md.",
        "",
        f"Objective {result.cost:.3f} after {result.evaluations_used} evaluations "
        f"({result.message}); dispersion {result.dispersion:.2f}; wall time "
        f"{result.wall_time_s:.1f} s." + (f"  Parameters at a bound: "
                                         f"{', '.join(result.at_bound)}."
                                         if result.at_bound else ""),
        "",
        "## Fitted vs observed (headline series)",
        "",
        fit_table_markdown(result),
        "",
        f"The {problem.first_year} row is the initial state: its stock is the published "
        "one by construction and its flows are annualised rates; it is not in the MAPE.",
        "",
        "![history](history_fit.png)",
        "",
        "## Every target",
        "",
        target_table_markdown(result.evaluations),
        "",
        "![reasons](ceased_by_reason.png)",
        "",
        "![age](by_age.png)",
        "",
        "## Free parameters",
        "",
        parameter_table_markdown(result),
        "",
        "## Carried into the projection (the calibrated layer)",
        "",
        carried_table_markdown(result),
        "",
        f"Layer: `{layer_path}`." if layer_path else "",
        "",
        f"## Do-nothing projection to {summary.year}",
        "",
        f"| | looked after {summary.year} |",
        "|---|---|",
        f"| calibrated (central) | {summary.calibrated:,.0f} |",
        f"| 5-95 % over parameter uncertainty | {summary.low:,.0f} - {summary.high:,.0f} |",
        f"| uncalibrated (estimate.py trends) | {summary.uncalibrated:,.0f} |",
    ]
    if review is not None:
        text.append(f"| Independent Review (May 2022) | approaching {review:,.0f} |")
    text += ["", "Sensitivity to how long the fitted trends persist (central values):", "",
             f"| trend persistence | looked after {summary.year} |", "|---|---|"]
    text += [f"| {label} | {value:,.0f} |" for label, value in
             persistence_sensitivity(result)]
    text += ["", "![projection](projection.png)", ""]
    paths["report"].write_text("\n".join(text), encoding="utf-8")
    return paths
