"""Reports of the rolling-origin backtests: ``skill.csv``, ``skill.md``, the charts,
and the generated forecast layer (``scenarios/layers/forecast.toml``).

Kept apart from :mod:`sim.calibration.backtest`, which runs the backtests and derives
the skill summaries: this module only writes what those summaries say.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim.calibration.backtest import (  # noqa: E402
    BAND_LEVELS,
    BENCHMARKS,
    HEADLINE,
    METHODS,
    RECENT_WINDOW,
    SHOWN,
    TREATMENTS,
    OriginResult,
    Row,
    _select,
    all_rows,
    band_settings,
    bias,
    choose_default,
    coverage,
    error_scale,
    mape,
    nested_selection,
    pooled_mape,
    z_value,
)


def write_csv(rows: Sequence[Row], path: Path) -> Path:
    columns = ["method", "variable", "horizon", "origin", "year", "observed", "projected",
               "error_pct"]
    lines = [",".join(columns)]
    for r in rows:
        lines.append(f"{r['method']},{r['variable']},{r['horizon']},{r['origin']},"
                     f"{r['year']},{r['observed']:.6g},{r['projected']:.6f},"
                     f"{r['error_pct']:.6f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if not np.isfinite(value) else f"{value:.{digits}f}"


def skill_markdown(results: Sequence[OriginResult], rows: Sequence[Row], default: str,
                   horizon: int) -> str:
    horizons = list(range(1, horizon + 1))
    methods = [m for m in METHODS if _select(rows, method=m)]
    shown = [m for m in dict.fromkeys((default, *SHOWN, *BENCHMARKS)) if m in methods]
    variables = list(dict.fromkeys(r["variable"] for r in rows))
    origins = [r.origin for r in results]
    text = [
        "# Forecast skill: rolling-origin backtests", "",
        f"Origins {origins[0]}-{origins[-1]} ({len(origins)}), horizons 1-{horizon}.  At "
        "each origin the model is re-estimated and re-calibrated with data up to the "
        "origin only, then projected under each trend treatment; the naive benchmarks "
        "use the same data.  Errors: projected / published - 1 (DfE latest vintage).  "
        "One row per point in `skill.csv`; every table here is derived from it.", "",
        f"**Default treatment: `{default}`**, chosen by the rule: lowest mean of the "
        "pooled MAPEs on stock, starts and ceased (origins and horizons 1-"
        f"{horizon} pooled, equal weights), among the model treatments.", "",
        "## Pooled MAPE % (bias %) on the headline series", "",
        "| method | " + " | ".join(HEADLINE) + " | mean |", "|---|" + "---:|" * 4]
    for m in methods:
        cells = []
        for v in HEADLINE:
            chosen = [r for r in _select(rows, method=m, variable=v)
                      if r["horizon"] in horizons]
            cells.append(f"{_fmt(mape(chosen))} ({_fmt(bias(chosen), 1)})")
        mean = np.mean([pooled_mape(rows, m, v, horizons) for v in HEADLINE])
        flag = " **default**" if m == default else ""
        text.append(f"| {m}{flag} | " + " | ".join(cells) + f" | {_fmt(mean)} |")
    text += ["", "## Pooled MAPE % by variable (every scored series)", "",
             "| variable | " + " | ".join(shown) + " |", "|---|" + "---:|" * len(shown)]
    for v in variables:
        text.append(f"| {v} | " + " | ".join(_fmt(pooled_mape(rows, m, v, horizons))
                                             for m in shown) + " |")
    text += ["", f"## MAPE % (bias %) by horizon, default (`{default}`) and benchmarks", "",
             "| variable | method | " + " | ".join(f"h={h}" for h in horizons) + " |",
             "|---|---|" + "---:|" * len(horizons)]
    for v in HEADLINE:
        for m in (default, *BENCHMARKS):
            cells = []
            for h in horizons:
                chosen = [r for r in _select(rows, method=m, variable=v, horizon=h)]
                cells.append(f"{_fmt(mape(chosen))} ({_fmt(bias(chosen), 1)})")
            text.append(f"| {v} | {m} | " + " | ".join(cells) + " |")
    text += ["", f"## Per origin, default (`{default}`): MAPE % over h = 1-{horizon}", "",
             "| origin | " + " | ".join(HEADLINE) + " |", "|---|" + "---:|" * len(HEADLINE)]
    for o in origins:
        text.append(f"| {o} | " + " | ".join(
            _fmt(mape([r for r in _select(rows, method=default, variable=v, origin=o)
                       if r["horizon"] in horizons])) for v in HEADLINE) + " |")
    text += ["", "## Interval coverage (leave-one-origin-out)", "",
             "Bands: projected x exp(+-z x s_h), s_h the root-mean-square log error at "
             "horizon h over the *other* origins (bias included), z the normal quantile.  "
             "Share of points inside, pooled over stock, starts and ceased:", "",
             "| method | " + " | ".join(f"{int(level * 100)} % band" for level in BAND_LEVELS)
             + " | points |", "|---|" + "---:|" * (len(BAND_LEVELS) + 1)]
    for m in (s for s in shown if s in TREATMENTS):
        cells, n = [], 0
        for level in BAND_LEVELS:
            share, n = coverage(rows, m, HEADLINE, horizons, level)
            cells.append(_fmt(share * 100, 0))
        text.append(f"| {m} | " + " | ".join(cells) + f" | {n} |")
    text += ["", f"80 % band coverage of the default by horizon (pooled over "
             f"{', '.join(HEADLINE)}): " + ", ".join(
                 f"h={h} {_fmt(coverage(rows, default, HEADLINE, [h], 0.8)[0] * 100, 0)} %"
                 for h in horizons) + "."]
    nested = nested_selection(rows, horizons)
    text += ["", "## Choosing from the menu, honestly (nested)", "",
             "The default is picked from a menu of treatments using these same backtests, "
             "which flatters it.  Here each origin's treatment is picked by the same rule "
             "from the points already published at that origin only, then scored from "
             "that origin:", "",
             "| origin | chosen then | " + " | ".join(HEADLINE) + " |",
             "|---|---|" + "---:|" * len(HEADLINE)]
    for origin, chosen, scores in nested:
        text.append(f"| {origin} | {chosen} | " + " | ".join(_fmt(scores[v])
                                                             for v in HEADLINE) + " |")
    if nested:
        text.append("| mean | | " + " | ".join(
            _fmt(float(np.nanmean([sc[v] for _, _, sc in nested]))) for v in HEADLINE)
                    + " |")
        same = {v: float(np.nanmean([
            mape([r for r in _select(rows, method=default, variable=v, origin=o)
                  if r["horizon"] in horizons]) for o, _, _ in nested])) for v in HEADLINE}
        text += ["", "Same origins, the default: "
                 + ", ".join(f"{v} {_fmt(same[v])}" for v in HEADLINE) + "."]
    text += ["", "## Calibrated slopes carried forward from each origin", "",
             "| origin | " + " | ".join(k.split(".")[1] for k in results[0].carried) + " |",
             "|---|" + "---:|" * len(results[0].carried)]
    for r in results:
        text.append(f"| {r.origin} | " + " | ".join(f"{v:+.4f}" for v in r.carried.values())
                    + " |")
    text += ["", "![skill](skill.png)", "", "![fans](backtest.png)", ""]
    return "\n".join(text)


def plot_skill(rows: Sequence[Row], default: str, horizon: int, path: Path) -> Path:
    horizons = list(range(1, horizon + 1))
    methods = [m for m in METHODS if _select(rows, method=m)]
    figure, axes = plt.subplots(1, len(HEADLINE), figsize=(13, 4), sharey=False)
    for axis, variable in zip(axes, HEADLINE, strict=True):
        values = [pooled_mape(rows, m, variable, horizons) for m in methods]
        colours = ["tab:red" if m == default else ("tab:grey" if m in BENCHMARKS
                                                   else "tab:blue") for m in methods]
        axis.barh(methods, values, color=colours)
        axis.set_title(f"{variable}: pooled MAPE %, h=1-{horizon}", fontsize=9)
        axis.invert_yaxis()
        axis.tick_params(labelsize=7)
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle(f"Out-of-sample skill (red: default {default}; grey: naive benchmarks)",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_fans(results: Sequence[OriginResult], rows: Sequence[Row], default: str,
              horizon: int, path: Path) -> Path:
    """Published series and the default's projection from each origin, with the 80 %
    leave-one-origin-out band."""
    z = z_value(0.8)
    figure, axes = plt.subplots(1, len(HEADLINE), figsize=(13, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, variable in zip(axes, HEADLINE, strict=True):
        published: dict[int, float] = {}
        for r in results:
            published.update(r.observed[variable])
        years = sorted(published)
        axis.plot(years, [published[y] for y in years], "o-", color="black", ms=3,
                  label="published (DfE)")
        for colour, r in zip(colours, results, strict=False):
            values = r.projected[default][variable]
            ys = sorted(values)
            base = r.observed[variable].get(r.origin)
            scales = error_scale(rows, default, variable, list(range(1, horizon + 1)),
                                 leave_out=r.origin)
            centre = np.array([values[y] for y in ys])
            width = np.array([scales[y - r.origin - 1] for y in ys])
            axis.plot([r.origin, *ys], [base or np.nan, *centre], color=colour, lw=1.2,
                      label=f"from {r.origin}")
            axis.fill_between(ys, centre * np.exp(-z * width), centre * np.exp(z * width),
                              color=colour, alpha=0.15)
        axis.set_title(variable)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    figure.suptitle(f"Backtests of the default ({default}) with 80 % bands "
                    "(leave-one-origin-out)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_backtest_report(results: Sequence[OriginResult], out_dir: str | Path,
                          horizon: int, outlook_2032: dict[str, float] | None = None
                          ) -> dict[str, Any]:
    """skill.csv, skill.md, skill.png, backtest.png; returns paths and the default."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = all_rows(results)
    default = choose_default(rows, list(range(1, horizon + 1)))
    if outlook_2032 is None:
        outlook_2032 = {}
    paths: dict[str, Any] = {
        "csv": write_csv(rows, out_dir / "skill.csv"),
        "png": plot_skill(rows, default, horizon, out_dir / "skill.png"),
        "fans": plot_fans(results, rows, default, horizon, out_dir / "backtest.png"),
        "report": out_dir / "skill.md",
    }
    text = skill_markdown(results, rows, default, horizon)
    if outlook_2032:
        horizons = list(range(1, horizon + 1))
        lines = ["", "## What the choice means for 2032", "",
                 "Looked after at 31 March 2032 projected from 2022 (all shipped data) under "
                 "each treatment, beside its backtest skill.  The backtests score horizons "
                 f"1-{horizon} only: how long a slope lasts beyond them (the damping) is "
                 "weakly identified, and moves 2032 by thousands.", "",
                 "| treatment | 2032 | mean pooled MAPE % (stock, starts, ceased) |",
                 "|---|---:|---:|"]
        for method, value in outlook_2032.items():
            mean = np.mean([pooled_mape(rows, method, v, horizons) for v in HEADLINE])
            mark = " **default**" if method == default else ""
            lines.append(f"| {method}{mark} | {value:,.0f} | {_fmt(float(mean))} |")
        text = text.replace("\n![skill](skill.png)",
                            "\n".join(lines) + "\n\n![skill](skill.png)")
    paths["report"].write_text(text, encoding="utf-8")
    paths["default"] = default
    paths["rows"] = rows
    return paths


def write_forecast_layer(rows: Sequence[Row], default: str, horizon: int,
                         origins: Sequence[int], out_path: str | Path,
                         slopes: dict[str, float], extends: str = "calibrated.toml"
                         ) -> Path:
    """``scenarios/layers/forecast.toml``: the chosen trend treatment and the band
    scales, extending the calibrated layer (``baseline.toml`` extends this file).

    Generated, like the calibrated layer, so that the choice is reproducible from
    ``make backtest`` and its evidence sits in the file's header."""
    from datetime import UTC, datetime

    import sim
    from sim.provenance import git_commit
    from sim.results.io import atomic_write_text
    from sim.scenarios.loader import dump_toml

    horizons = list(range(1, horizon + 1))
    bands = band_settings(rows, default, horizon)
    bands["source"] = (f"cicsim backtest, origins {origins[0]}-{origins[-1]}, "
                       f"method {default}, horizons 1-{horizon}")
    header = [
        "# GENERATED by `cicsim backtest` - do not edit by hand; re-run `make backtest`.",
        "# Trend treatment for do-nothing projections, chosen out of sample: the model",
        "# treatment with the lowest mean pooled MAPE on stock, starts and ceased over",
        f"# rolling origins {origins[0]}-{origins[-1]}, horizons 1-{horizon} "
        "(outputs/backtest/skill.md).",
        f"# created {datetime.now(UTC).isoformat(timespec='seconds')}; cicsim "
        f"{sim.__version__}; git {git_commit()}",
        "# pooled MAPE % (stock / starts / ceased):"]
    for method in METHODS:
        if _select(rows, method=method):
            values = " / ".join(_fmt(pooled_mape(rows, method, v, horizons))
                                for v in HEADLINE)
            mark = "   <- chosen" if method == default else ""
            header.append(f"#   {method:18s} {values}{mark}")
    share, n = coverage(rows, default, HEADLINE, horizons, 0.8)
    header.append(f"# 80 % band coverage (leave-one-origin-out): {share * 100:.0f} % of "
                  f"{n} points")
    treatment = TREATMENTS[default]
    trends: dict[str, Any] = dict(treatment.trends)
    if treatment.slopes == "recent":
        header.append(f"# slopes: log-linear over the {RECENT_WINDOW} published years to "
                      "the base year (sim.estimation.recent.recent_slopes); exit routes keeping a "
                      f"slope: {', '.join(treatment.routes)}")
        trends.update({key.split(".", 1)[1]: round(value, 6) for key, value in
                       slopes.items()})
        trends.update(entry_trend_change_per_year=0.0, exit_trend_change_per_year=0.0)
    config = {"name": "forecast",
              "description": f"Do nothing: trend treatment {default} (best out of sample)",
              "extends": extends,
              "trends": trends,
              "bands": bands}
    path = Path(out_path)
    atomic_write_text(path, "\n".join(header) + "\n" + dump_toml(config))
    return path


