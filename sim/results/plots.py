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
from matplotlib.ticker import (  # noqa: E402
    MaxNLocator,
    MultipleLocator,
    StrMethodFormatter,
)

from sim.datasets import LAST_DATA_YEAR, curated_value, load_observed  # noqa: E402
from sim.results.compare import (  # noqa: E402
    KINDS,
    ScenarioResult,
    column_title,
    find_baseline,
    mean_over_replicates,
    parameter_label,
    reference_for,
    series,
    variable_label,
)

DPI = 110
THOUSANDS = StrMethodFormatter("{x:,.0f}")
# Published reference points for context (sim/data/review.csv), not calibration targets.
REVIEW_LOOKED_AFTER = ((2022, 80_000, "review: about 80,000 now"),
                       (2032, 100_000, "review: 'approaching 100,000' by 2032"))
REVIEW_COST_BN = ((2022, 10.0, "review: £10bn now"), (2032, 15.0, "review: over £15bn by 2032"))


def _save(figure: Figure, path: Path,
          rect: tuple[float, float, float, float] | None = None) -> Path:
    """Lay out (``rect``: the part of the figure the axes may use, leaving room for a
    figure legend) and write the PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout(rect=rect)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def reference_point(axis: plt.Axes, year: int, value: float, text: str) -> None:
    """A published reference figure: a marker when it lies within the data's range,
    else a note under the x label saying where it is (a marker far off the data would
    squeeze every line into a sliver of the chart).  Call after ``set_xlabel``."""
    low, high = axis.get_ylim()
    margin = 0.1 * (high - low)
    if low - margin <= value <= high + margin:
        axis.scatter([year], [value], marker="x", color="black", zorder=3)
        axis.set_ylim(min(low, value - margin / 2), max(high, value + margin / 2))
        axis.annotate(text, (year, value), textcoords="offset points",
                      xytext=(-8, 0) if year > 2025 else (8, 0), va="center",
                      ha="right" if year > 2025 else "left", fontsize=7)
        return
    where = "above" if value > high else "below"
    axis.set_xlabel(f"{axis.get_xlabel()}\n{text}: {where} this scale",
                    fontsize=8)  # under the plot: it can never cover a line


def scenario_colors(results: Sequence[ScenarioResult]) -> dict[str, str]:
    """One colour per scenario: computed once from every run of a report and passed to
    each chart, so a scenario has the same colour in all of them.  Policies take the
    first colours; blue (the bands) and grey (the zero lines) come last."""
    palette = [f"C{i}" for i in (1, 2, 3, 4, 5, 6, 8, 9, 0, 7)]
    ordered = sorted(results, key=lambda r: list(KINDS).index(r.kind))
    return {r.name: palette[i % len(palette)] for i, r in enumerate(ordered)}


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
                           path: Path, title: str = "",
                           colors: dict[str, str] | None = None) -> Path | None:
    """Published history 2012-2022 joined to each run's projection (replicate means),
    with prediction bands where a run has them.

    The reference run (``baseline``) is drawn last, on top, in black.  When it is the
    only reference for the others (a policy chart) it carries its 50 / 80 / 95 % bands
    and the others none (theirs are the same width, and overlapping bands would hide
    every line); otherwise (variants, whose levels differ) each run shows its own 80 %
    band, lightly, and the reference is a plain line for scale."""
    if not results:
        return None
    reference = find_baseline(results, baseline)
    own_bands = reference is None or any(r.kind != reference.kind for r in results)
    figure, axis = plt.subplots(figsize=(9, 5.4))
    history = published_looked_after()
    years = sorted(history)
    axis.plot(years, [history[y] for y in years], "o-", color="black", ms=3.5, lw=1.6,
              label="published (DfE, latest revision)", zorder=4)
    first = curated_value("outturn_to_2022.csv", "(first published)", years[-1])
    if first:
        axis.plot([years[-1]], [first], "x", color="black", ms=6,
                  label=f"{years[-1]} as first published ({first:,.0f})")
    colors = colors or scenario_colors(results)
    for result in sorted(results, key=lambda r: r is reference):  # reference on top
        is_reference = result is reference
        color = "black" if is_reference else colors[result.name]
        if is_reference and not own_bands:
            levels = (((0.025, 0.975), 0.10), ((0.1, 0.9), 0.16), ((0.25, 0.75), 0.22))
        elif not is_reference and own_bands:
            levels = (((0.1, 0.9), 0.09),)
        else:
            levels = ()
        banded = _bands(axis, result, levels, "tab:blue" if is_reference else color,
                        labelled=is_reference)
        values = mean_over_replicates(series(result, "looked_after"))
        axis.plot(values["year"].values, values.values, color=color,
                  lw=2.6 if is_reference else 1.4, zorder=5 if is_reference else 3,
                  ls="--" if result.has_replicates else "-",
                  label=result.name + (" (shaded: 80 % band)" if banded and not is_reference
                                       else ""))
    axis.xaxis.set_major_locator(MultipleLocator(2))
    axis.yaxis.set_major_formatter(THOUSANDS)
    axis.set_ylabel(variable_label("looked_after"))
    axis.set_xlabel("year ending 31 March")
    for year, value, label in REVIEW_LOOKED_AFTER[1:]:
        reference_point(axis, year, value, label)
    axis.set_title(title or "Published history and projections", fontsize=10)
    axis.grid(alpha=0.3)
    return _legend_below(figure, axis, columns=3, path=path)


def _legend_below(figure: Figure, axis: plt.Axes, columns: int, path: Path) -> Path:
    """The legend under the plot, outside it (it can hide no line), then save."""
    handles, labels = axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), columns),
                  fontsize=7.5, frameon=False)
    rows = -(-len(labels) // columns)
    return _save(figure, path, rect=(0, min(0.036 * rows + 0.025, 0.4), 1, 1))


def _bands(axis: plt.Axes, result: ScenarioResult,
           levels: Sequence[tuple[tuple[float, float], float]], color: str,
           labelled: bool) -> bool:
    """Shade ``result``'s prediction bands at ``levels`` ((low, high) quantiles, alpha);
    True if any was drawn (a run without ``looked_after_quantiles`` has none)."""
    if "looked_after_quantiles" not in result.ds or not levels:
        return False
    bands = result.ds["looked_after_quantiles"]
    quantiles = [round(float(q), 3) for q in bands["quantile"].values]
    drawn = False
    for (low, high), alpha in levels:
        if low not in quantiles or high not in quantiles:
            continue
        axis.fill_between(bands["year"].values, bands.sel(quantile=low).values,
                          bands.sel(quantile=high).values, alpha=alpha, color=color,
                          linewidth=0, label=(f"{result.name}: {round((high - low) * 100)} "
                                              "% band") if labelled else None)
        drawn = True
    return drawn


def kept_at_home(results: Sequence[ScenarioResult], baseline: str, path: Path,
                 everything: Sequence[ScenarioResult] | None = None,
                 title: str = "", colors: dict[str, str] | None = None) -> Path | None:
    """Reference minus scenario looked after, by year, for each run in ``results``
    compared with its reference (:func:`reference_for`, looked up in ``everything``,
    default ``results``); None when nothing has a reference to compare with."""
    everything = list(everything if everything is not None else results)
    pairs = [(r, reference_for(r, everything, baseline)) for r in results]
    pairs = [(r, own) for r, own in pairs
             if own is not None and own is not r and not r.name.endswith("baseline")]
    if not pairs:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.2))
    colors = colors or scenario_colors(everything)
    for result, own in pairs:
        _line(axis, result, "looked_after", baseline=own, color=colors[result.name])
        axis.lines[-1].set_label(result.name if own.name == baseline
                                 else f"{result.name} (vs {own.name})")
    axis.axhline(0, color="grey", lw=0.8)
    axis.yaxis.set_major_formatter(THOUSANDS)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("children kept at home\n(reference minus scenario)")
    axis.set_xlabel("year ending 31 March")
    axis.set_title(title or f"Children kept at home compared with '{baseline}'", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7.5)
    return _save(figure, path)


def costs(results: Sequence[ScenarioResult], path: Path, title: str = "",
          colors: dict[str, str] | None = None) -> Path | None:
    """Total cost per year (£bn) in both price bases: 2021-22 prices (left) and cash
    (right, when the runs have ``cost_gbp_cash``), with the review's £10bn / £15bn
    (cash figures) on the cash panel: marked when within the data's range, else noted
    at the panel's edge."""
    with_costs = [r for r in results if "cost_gbp" in r.ds]
    if not with_costs:
        return None
    with_cash = [r for r in with_costs if "cost_gbp_cash" in r.ds]
    panels = [("cost_gbp_total", with_costs, "£bn per year (2021-22 prices)")]
    if with_cash:
        panels.append(("cost_gbp_cash_total", with_cash, "£bn per year (cash)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(9 if len(panels) == 1 else 12, 5.0),
                                squeeze=False)
    colors = colors or scenario_colors(results)
    for axis, (name, runs, label) in zip(axes[0], panels, strict=True):
        for result in runs:
            _line(axis, result, name, scale=1e9, color=colors[result.name])
        axis.set_ylabel(label)
        axis.set_xlabel("year ending 31 March")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    if len(panels) == 2:
        for year, value, text in REVIEW_COST_BN:
            reference_point(axes[0][1], year, value, text)
    axes[0][0].set_title(title or "Cost by scenario, 2021-22 prices (programmes included)",
                         fontsize=10)
    if len(panels) == 2:
        axes[0][1].set_title("Cost by scenario, cash (x price index)", fontsize=10)
    return _legend_below(figure, axes[0][0], columns=5, path=path)


def fan_charts(results: Sequence[ScenarioResult], path: Path) -> Path | None:
    """One panel per scenario with replicates: median and 5-95 % / 25-75 % bands."""
    with_replicates = [r for r in results if r.has_replicates]
    if not with_replicates:
        return None
    columns = min(3, len(with_replicates))
    rows = int(np.ceil(len(with_replicates) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns + 1, 3.4 * rows),
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
        axis.set_xlabel("year ending 31 March")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        axis.yaxis.set_major_formatter(THOUSANDS)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(with_replicates):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    axes.flat[0].set_ylabel(variable_label("looked_after"))
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
            axis.annotate(f"{value:,g}", (result, position), fontsize=6.5, va="center",
                          ha="left" if result >= central else "right",
                          xytext=(3 if result >= central else -3, 0),
                          textcoords="offset points")
    axis.axvline(central, color="black", lw=1)
    axis.set_yticks(positions, [parameter_label(k) for k in rows["parameter"]],
                    fontsize=7.5)
    axis.set_xlabel(f"{column_title(metric)} (line: central {central:,.0f}; blue: low end "
                    "of range, orange: high end)", fontsize=8)
    axis.xaxis.set_major_formatter(THOUSANDS)
    axis.set_title(title, fontsize=10)
    axis.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def sweep_chart(summary_csv: Path, path: Path) -> Path:
    """Children kept at home and net discounted saving against the swept value."""
    rows = pd.read_csv(summary_csv)
    values = rows["value"].to_numpy(dtype=float)
    label = str(rows["label"].iloc[0]) if len(rows) else "swept value"
    kept_columns = [c for c in rows.columns  # not the "low to high" band column
                    if c.startswith("kept_at_home_") and not c.endswith("_band")]
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
    left.yaxis.set_major_formatter(THOUSANDS)
    right.yaxis.set_major_formatter(THOUSANDS)
    left.xaxis.set_major_formatter(StrMethodFormatter("{x:,g}"))
    left.set_title(f"Sweep: {label}", fontsize=10)
    left.grid(alpha=0.3)
    return _save(figure, path)
