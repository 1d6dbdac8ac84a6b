"""Runs with an ``area`` dimension: England as the sum of its authorities, totals for
the comparison table, and the report's area section (a ranked table of every area and
small multiples of up to :data:`MAX_PANELS` areas, each scenario against its own
baseline run over the same areas).

Why a separate module: a run over areas is read the same way as a national one
everywhere else (:func:`area_total` collapses it for the comparison table and the
national charts); only this section looks inside it.  It imports nothing from the
report or the comparison, so both can call it.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

AREA_DIM = "area"
# England as the sum of the areas of an `--area all` run: England's ONS code, so a
# reader selecting ``area="E92000001"`` finds it, and a name that says how it was made.
ENGLAND_SUM_CODE = "E92000001"
ENGLAND_SUM_NAME = "England (sum of areas)"
AREA_COORDS = ("area_name", "region", "child_population")
MAX_PANELS = 12
PER_CHILDREN = 10_000


def has_areas(ds: xr.Dataset) -> bool:
    return AREA_DIM in ds.dims


def _real_areas(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without the England-sum entry, if it has one."""
    codes = [str(c) for c in ds[AREA_DIM].values]
    if ENGLAND_SUM_CODE in codes and len(codes) > 1:
        return ds.sel({AREA_DIM: [c for c in codes if c != ENGLAND_SUM_CODE]})
    return ds


def add_england_sum(ds: xr.Dataset) -> xr.Dataset:
    """Append England as the sum of every area (code :data:`ENGLAND_SUM_CODE`, name
    :data:`ENGLAND_SUM_NAME`): each variable with an area dimension summed over it
    (numpy's sum of the stored values, so the entry equals the sum exactly); variables
    without one are left as they are.  Quantiles are not summed (a sum of quantiles is
    not a quantile): add bands after this."""
    codes = [str(c) for c in ds[AREA_DIM].values]
    out = ds.drop_vars([c for c in AREA_COORDS if c in ds.coords]).reindex(
        {AREA_DIM: [*codes, ENGLAND_SUM_CODE]})
    for name, variable in ds.data_vars.items():
        if AREA_DIM in variable.dims and not name.endswith("_quantiles"):
            # summed row by row over a C-ordered copy: what summing the areas read
            # back from the file gives, to the last bit
            ordered = variable.transpose(AREA_DIM, ...)
            out[name].loc[{AREA_DIM: ENGLAND_SUM_CODE}] = xr.DataArray(
                np.ascontiguousarray(ordered.values).sum(axis=0), dims=ordered.dims[1:])
        out[name].attrs = variable.attrs
    return out.assign_coords(
        area_name=(AREA_DIM, [*(str(n) for n in ds["area_name"].values), ENGLAND_SUM_NAME]),
        region=(AREA_DIM, [*(str(r) for r in ds["region"].values), "England"]),
        child_population=(AREA_DIM, [*ds["child_population"].values.tolist(),
                                     float(ds["child_population"].sum())]))


def area_total(ds: xr.Dataset) -> xr.Dataset:
    """The run as one total: its England-sum entry when it has one, else the sum over
    its areas (prediction bands dropped then: quantiles do not add up)."""
    if not has_areas(ds):
        return ds
    codes = [str(c) for c in ds[AREA_DIM].values]
    if ENGLAND_SUM_CODE in codes:
        out = ds.sel({AREA_DIM: ENGLAND_SUM_CODE}, drop=True)
    else:
        keep = [n for n in ds.data_vars if not n.endswith("_quantiles")]
        out = ds[keep].sum(AREA_DIM, keep_attrs=True)
    out = out.drop_vars([c for c in AREA_COORDS if c in out.coords])
    out.attrs = dict(ds.attrs)
    return out


def _stock(ds: xr.Dataset) -> xr.DataArray:
    values = _real_areas(ds)["looked_after"]
    return values.mean("replicate") if "replicate" in values.dims else values


def area_table(pairs: Sequence[tuple[str, xr.Dataset, str, xr.Dataset | None]],
               year: int) -> pd.DataFrame:
    """One row per (scenario, area), ranked by children in care per 10,000 in ``year``
    within each scenario: ``pairs`` are (scenario, its run, baseline name, the baseline
    run over the same areas or None)."""
    rows = []
    for name, ds, baseline_name, baseline in pairs:
        if not has_areas(ds) or year not in ds["year"].values:
            continue
        real = _real_areas(ds)
        stock = _stock(ds).sel(year=year)
        base_stock = (_stock(baseline).sel(year=year) if baseline is not None
                      and year in baseline["year"].values else None)
        first = _stock(ds).isel(year=0)
        for code in [str(c) for c in real[AREA_DIM].values]:
            value = float(stock.sel({AREA_DIM: code}))
            population = float(real["child_population"].sel({AREA_DIM: code}))
            row: dict[str, Any] = {
                "scenario": name, "area": code,
                "area_name": str(real["area_name"].sel({AREA_DIM: code}).values),
                "region": str(real["region"].sel({AREA_DIM: code}).values),
                f"looked_after_{int(ds['year'].values[0])}": float(first.sel({AREA_DIM: code})),
                f"looked_after_{year}": value,
                f"per_10000_{year}": value / population * PER_CHILDREN,
            }
            has_base = base_stock is not None and code in base_stock[AREA_DIM].values
            row["compared_with"] = baseline_name if has_base else ""
            row[f"change_vs_baseline_{year}"] = (
                value - float(base_stock.sel({AREA_DIM: code})) if has_base  # type: ignore[union-attr]
                else np.nan)
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(["scenario", f"per_10000_{year}"], ascending=[True, False],
                              kind="stable")
    table.insert(2, "rank", table.groupby("scenario").cumcount() + 1)
    return table.reset_index(drop=True)


def small_multiples(pairs: Sequence[tuple[str, xr.Dataset, str, xr.Dataset | None]],
                    path: Path) -> Path | None:
    """One panel per area (the first :data:`MAX_PANELS` of the first run with areas):
    children in care over the years, each scenario solid and its baseline dashed.
    None when no run has areas."""
    with_areas = [p for p in pairs if has_areas(p[1])]
    if not with_areas:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codes = [str(c) for c in _real_areas(with_areas[0][1])[AREA_DIM].values][:MAX_PANELS]
    columns = min(4, len(codes))
    rows = -(-len(codes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows),
                             squeeze=False, sharex=True)
    names = with_areas[0][1]["area_name"]
    for ax, code in zip(axes.flat, codes, strict=False):
        shown: set[str] = set()
        for name, ds, baseline_name, baseline in with_areas:
            for label, run, style in ((name, ds, "-"), (baseline_name, baseline, "--")):
                if run is None or label in shown or code not in run[AREA_DIM].values:
                    continue
                shown.add(label)
                stock = _stock(run).sel({AREA_DIM: code})
                ax.plot(stock["year"].values, stock.values, style, label=label)
        ax.set_title(str(names.sel({AREA_DIM: code}).values), fontsize=9)
        ax.tick_params(labelsize=7, labelbottom=True)
    for ax in list(axes.flat)[len(codes):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Children looked after at 31 March, by area")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def area_pairs(results: Sequence[Any], references: Sequence[Any]
               ) -> list[tuple[str, xr.Dataset, str, xr.Dataset | None]]:
    """(scenario, its run by area, baseline name, baseline run by area) for every
    result with an area dimension (``ScenarioResult``s from :mod:`sim.results.compare`,
    whose ``area_ds`` keeps the areas), each with its reference."""
    pairs = []
    for result, reference in zip(results, references, strict=True):
        if getattr(result, "area_ds", None) is None:
            continue
        ref_ds = getattr(reference, "area_ds", None) if reference is not None else None
        pairs.append((result.name, result.area_ds, reference.name if ref_ds is not None
                      else "", ref_ds))
    return pairs


def last_common_year(pairs: Sequence[tuple[str, xr.Dataset, str, xr.Dataset | None]]
                     ) -> int:
    return min(int(ds["year"].values[-1]) for _, ds, _, _ in pairs)


def report_section(results: Sequence[Any], references: Sequence[Any]) -> str:
    """The report's "By area" section for ``results`` against ``references`` (one each,
    None where there is none): small multiples and the ranked table; "" when no run has
    an area dimension.  The chart is embedded, so nothing is written."""
    pairs = area_pairs(results, references)
    if not pairs:
        return ""
    with tempfile.TemporaryDirectory() as folder:
        chart = small_multiples(pairs, Path(folder) / "areas.png")
        src = ("data:image/png;base64," + base64.b64encode(chart.read_bytes()).decode("ascii")
               if chart is not None else "")
    return area_section_html(pairs, last_common_year(pairs), chart, src)


def area_section_html(pairs: Sequence[tuple[str, xr.Dataset, str, xr.Dataset | None]],
                      year: int, chart: Path | None, chart_src: str = "") -> str:
    """The report's "By area" section (empty when no run has an area dimension):
    the small multiples (``chart_src``: the embedded image) and the ranked table."""
    table = area_table(pairs, year)
    if table.empty:
        return ""
    # The HTML keeps what fits 1,000 px (region and the reference are in areas.csv).
    shown = table.drop(columns=["region", "compared_with"], errors="ignore")
    for column in shown.columns:
        if column.startswith(("looked_after_", "change_vs_")):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}")
        elif column.startswith("per_"):
            shown[column] = shown[column].map(lambda v: f"{v:,.1f}")
    parts = ["<h2 id=\"areas\">By area</h2>",
             f"<p class=\"note\">Runs with an area dimension (<code>cicsim run --area</code>), "
             f"each against the baseline run over the same areas.  Ranked by children in "
             f"care per {PER_CHILDREN:,} children aged 0-17 in {year} (base-year "
             "population).  Change = scenario minus its baseline.</p>"]
    if chart is not None and chart_src:
        parts.append(f"<figure id=\"area-multiples\"><img alt=\"by area\" src=\"{chart_src}\">"
                     f"<figcaption>Children looked after, first {MAX_PANELS} areas at most: "
                     "scenario solid, its baseline dashed.</figcaption></figure>")
    shown.columns = [str(c).replace("per_10000", f"per {PER_CHILDREN:,}")
                     .replace("area_name", "authority").replace("_", " ")
                     for c in shown.columns]
    parts.append(shown.to_html(index=False, table_id="area-table", escape=True,
                               border=0).replace("<table", "<table class=\"areas\"", 1))
    return "\n".join(parts)
