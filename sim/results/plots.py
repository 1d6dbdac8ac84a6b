"""PNG charts for the comparison report (matplotlib, headless).

Each function writes one PNG and returns its path, so the report can embed it and a
test can check it exists.  Charts read only the results schema (either engine):
replicate runs are drawn as a median line with a 5-95 % band (fan chart).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built by make, often without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, StrMethodFormatter  # noqa: E402

from sim.datasets import LAST_DATA_YEAR, curated_value, load_observed  # noqa: E402
from sim.results.compare import (  # noqa: E402
    ScenarioResult,
    find_baseline,
    mean_over_replicates,
    reference_for,
    series,
)

DPI = 110
# Published reference points for context (sim/data/review.csv), not calibration targets.
REVIEW_LOOKED_AFTER = ((2022, 80_000, "review: about 80,000 now"),
                       (2032, 100_000, "review: 'approaching 100,000' by 2032"))
REVIEW_COST_BN = ((2022, 10.0, "review: £10bn now"), (2032, 15.0, "review: over £15bn by 2032"))


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def scenario_colors(results: Sequence[ScenarioResult]) -> dict[str, str]:
    """One colour per scenario, the same in every chart of a report."""
    return {r.name: f"C{i % 10}" for i, r in enumerate(results)}


def _line(axis: plt.Axes, result: ScenarioResult, name: str, scale: float = 1.0,
          baseline: ScenarioResult | None = None, color: str | None = None) -> None:
    values = (result.ds[name] if not name.endswith("_total") else
              result.ds[name.removesuffix("_total")].sum("cost_component"))
    if baseline is not None:  # difference from the baseline, per replicate
        reference = mean_over_replicates(series(baseline, name))
        values = reference - values
    years = values["year"].values
    if "replicate" in values.dims:
        low, median, high = (values.quantile(q, dim="replicate").values / scale
                             for q in (0.05, 0.5, 0.95))
        lines = axis.plot(years, median, label=result.name, color=color)
        axis.fill_between(years, low, high, alpha=0.2, color=lines[0].get_color())
    else:
        axis.plot(years, values.values / scale, label=result.name, color=color,
                  marker="o", markersize=2.5)


def published_looked_after(first: int = 2012) -> dict[int, float]:
    """DfE's published 31 March stock (latest vintage), ``first`` to the last data year."""
    observed = load_observed(LAST_DATA_YEAR)
    values = {y: observed.get("looked_after_31_march", y)
              for y in range(first, LAST_DATA_YEAR + 1)}
    return {y: v for y, v in values.items() if v is not None}


def history_and_projection(results: Sequence[ScenarioResult], baseline: str,
                           path: Path) -> Path | None:
    """Published history 2012-2022 joined to the baseline projection with its 50 / 80
    / 95 % prediction bands (from backtest errors), other scenarios as lines."""
    reference = find_baseline(results, baseline)
    if reference is None:
        return None
    figure, axis = plt.subplots(figsize=(8.5, 4.8))
    history = published_looked_after()
    years = sorted(history)
    axis.plot(years, [history[y] / 1e3 for y in years], "o-", color="black", ms=3.5,
              label="published (DfE, latest revision)")
    first = curated_value("outturn_to_2022.csv", "(first published)", years[-1])
    if first:
        axis.plot([years[-1]], [first / 1e3], "x", color="black", ms=6,
                  label=f"{years[-1]} as first published ({first:,.0f})")
    colors = scenario_colors(results)
    if "looked_after_quantiles" in reference.ds:
        bands = reference.ds["looked_after_quantiles"]
        band_years = bands["year"].values
        for (low, high), alpha in (((0.025, 0.975), 0.12), ((0.1, 0.9), 0.2),
                                   ((0.25, 0.75), 0.3)):
            axis.fill_between(band_years, bands.sel(quantile=low).values / 1e3,
                              bands.sel(quantile=high).values / 1e3, alpha=alpha,
                              color="tab:blue", linewidth=0,
                              label=f"{reference.name}: {round((high - low) * 100)} % band")
    for result in sorted(results, key=lambda r: r is reference):  # baseline on top
        values = mean_over_replicates(series(result, "looked_after"))
        is_reference = result is reference
        axis.plot(values["year"].values, values.values / 1e3,
                  color="navy" if is_reference else colors[result.name],
                  lw=2.4 if is_reference else 0.9, alpha=1.0 if is_reference else 0.75,
                  label=result.name)
    for year, value, label in REVIEW_LOOKED_AFTER[1:]:
        axis.plot([year], [value / 1e3], "P", color="tab:red", ms=9, label=label)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("children looked after at 31 March (thousands)")
    axis.set_title("Published history and projections, with prediction bands from "
                   "out-of-sample backtest errors", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6.5, loc="upper left", ncol=2)
    return _save(figure, path)


def trajectories(results: Sequence[ScenarioResult], path: Path) -> Path:
    """Children looked after at 31 March by scenario, with the review's reference points."""
    figure, axis = plt.subplots(figsize=(8, 4.6))
    colors = scenario_colors(results)
    for result in results:
        _line(axis, result, "looked_after", color=colors[result.name])
    for year, value, label in REVIEW_LOOKED_AFTER:
        axis.scatter([year], [value], marker="x", color="black", zorder=3)
        axis.annotate(label, (year, value), textcoords="offset points", xytext=(-6, 6),
                      ha="right" if year > 2025 else "left", fontsize=7)
    axis.set_ylabel("children looked after at 31 March")
    axis.set_xlabel("year ending 31 March")
    axis.set_title("Children looked after by scenario (bands: 5-95 % of replicates)"
                   if any(r.has_replicates for r in results) else
                   "Children looked after by scenario")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    return _save(figure, path)


def kept_at_home(results: Sequence[ScenarioResult], baseline: str, path: Path) -> Path | None:
    """Baseline minus scenario looked after, by year (None without a baseline or
    without anything to compare with it)."""
    reference = find_baseline(results, baseline)
    if reference is None or len(results) < 2:
        return None
    figure, axis = plt.subplots(figsize=(8, 4.2))
    colors = scenario_colors(results)
    for result in results:
        own = reference_for(result, results, baseline)
        if own is not None and own is not result and not result.name.endswith("baseline"):
            _line(axis, result, "looked_after", baseline=own, color=colors[result.name])
    axis.axhline(0, color="grey", lw=0.8)
    axis.set_ylabel("children (baseline - scenario)")
    axis.set_xlabel("year ending 31 March")
    axis.set_title(f"Children kept at home compared with '{baseline}' (or the scenario "
                   "family's own *-baseline)", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def costs(results: Sequence[ScenarioResult], path: Path) -> Path | None:
    """Total cost per year (£bn) in both price bases: 2021-22 prices (left) and cash
    (right, when the runs have ``cost_gbp_cash``), with the review's £10bn / £15bn
    (cash figures) on the cash panel."""
    with_costs = [r for r in results if "cost_gbp" in r.ds]
    if not with_costs:
        return None
    with_cash = [r for r in with_costs if "cost_gbp_cash" in r.ds]
    panels = [("cost_gbp_total", with_costs, "£bn per year (2021-22 prices)")]
    if with_cash:
        panels.append(("cost_gbp_cash_total", with_cash, "£bn per year (cash)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(8 if len(panels) == 1 else 12, 4.2),
                                sharey=True, squeeze=False)
    colors = scenario_colors(results)
    for axis, (name, runs, label) in zip(axes[0], panels, strict=True):
        for result in runs:
            _line(axis, result, name, scale=1e9, color=colors[result.name])
        if name == panels[-1][0]:
            for year, value, text in REVIEW_COST_BN:
                axis.scatter([year], [value], marker="x", color="black", zorder=3)
                axis.annotate(text, (year, value), textcoords="offset points",
                              xytext=(-6, -12), ha="right" if year > 2025 else "left",
                              fontsize=7)
        axis.set_ylabel(label)
        axis.set_xlabel("year ending 31 March")
        axis.grid(alpha=0.3)
    axes[0][0].set_title("Cost by scenario, 2021-22 prices (programmes included)")
    if len(panels) == 2:
        axes[0][1].set_title("Cost by scenario, cash (x price index)")
    axes[0][-1].legend(fontsize=7)
    return _save(figure, path)


def fan_charts(results: Sequence[ScenarioResult], path: Path) -> Path | None:
    """One panel per scenario with replicates: median and 5-95 % / 25-75 % bands."""
    with_replicates = [r for r in results if r.has_replicates]
    if not with_replicates:
        return None
    columns = min(3, len(with_replicates))
    rows = int(np.ceil(len(with_replicates) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows),
                                squeeze=False, sharey=True)
    for axis, result in zip(axes.flat, with_replicates, strict=False):
        values = result.ds["looked_after"]
        years = values["year"].values
        quantiles = {q: values.quantile(q, dim="replicate").values
                     for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
        axis.fill_between(years, quantiles[0.05], quantiles[0.95], alpha=0.2, label="5-95 %")
        axis.fill_between(years, quantiles[0.25], quantiles[0.75], alpha=0.35,
                          label="25-75 %")
        axis.plot(years, quantiles[0.5], label="median")
        axis.set_title(f"{result.name} ({values.sizes['replicate']} replicates)", fontsize=9)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(with_replicates):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    axes.flat[0].set_ylabel("children looked after")
    return _save(figure, path)


def tornado(table: pd.DataFrame, metric: str, path: Path, title: str,
            top: int = 15) -> Path:
    """Bars from the low to the high end of each parameter's range, widest at the top.

    ``table`` is a ``cicsim sensitivity`` table (columns parameter, metric, central,
    result_low, result_high, value_low, value_high).  Rows with no swing are left out."""
    rows = table[table["metric"] == metric].copy()
    central = float(rows["central"].iloc[0]) if len(rows) else 0.0
    rows["swing"] = (rows["result_high"] - rows["result_low"]).abs()
    # assumptions that cannot move this metric (e.g. foster places and the number in
    # care) stay in the CSV but would only clutter the chart
    rows = rows[rows["swing"] > 1e-9 * max(abs(central), 1.0)]
    rows = rows.sort_values("swing", ascending=True).tail(top)
    figure, axis = plt.subplots(figsize=(8.5, 0.42 * max(len(rows), 3) + 1.4))
    positions = np.arange(len(rows))
    for position, (_, row) in zip(positions, rows.iterrows(), strict=True):
        for value, result, color in ((row["value_low"], row["result_low"], "tab:blue"),
                                     (row["value_high"], row["result_high"], "tab:orange")):
            axis.barh(position, result - central, left=central, color=color, alpha=0.8)
            axis.annotate(f"{value:g}", (result, position), fontsize=6.5, va="center",
                          ha="left" if result >= central else "right",
                          xytext=(3 if result >= central else -3, 0),
                          textcoords="offset points")
    axis.axvline(central, color="black", lw=1)
    axis.set_yticks(positions, list(rows["parameter"]), fontsize=7.5)
    axis.set_xlabel(f"{metric} (line: central {central:,.0f}; blue: low end of range, "
                    "orange: high end)", fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def sweep_chart(summary_csv: Path, path: Path) -> Path:
    """Children kept at home and net discounted saving against the swept value."""
    rows = pd.read_csv(summary_csv)
    values = rows["value"].to_numpy(dtype=float)
    label = str(rows["label"].iloc[0]) if len(rows) else "swept value"
    kept_columns = [c for c in rows.columns if c.startswith("kept_at_home_")]
    figure, left = plt.subplots(figsize=(8, 4.2))
    if kept_columns:
        left.plot(values, pd.to_numeric(rows[kept_columns[-1]], errors="coerce"),
                  marker="o", color="tab:blue")
    left.set_xlabel(label)
    left.set_ylabel(f"children kept at home vs baseline ({kept_columns[-1][13:]})"
                    if kept_columns else "children kept at home", color="tab:blue")
    right = left.twinx()
    right.plot(values, pd.to_numeric(rows["net_saving_discounted_gbp_m"], errors="coerce"),
               marker="s", color="tab:red")
    right.axhline(0, color="tab:red", lw=0.6, ls=":")
    right.set_ylabel("net saving vs baseline, £m discounted", color="tab:red")
    left.set_title(f"Sweep: {summary_csv.stem}")
    left.grid(alpha=0.3)
    return _save(figure, path)
