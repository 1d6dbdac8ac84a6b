"""Exports for people who work in spreadsheets: an Excel workbook and a wide CSV.

Why: a modeller or analyst reviewing a projection opens it in Excel, with years
across the top and one row per scenario, and wants to know what each number means
and where it came from without opening a NetCDF file.  So the workbook has

- a README sheet: every run (scenario, kind, engine, replicates, description, file,
  commit, creation time), every variable's unit and definition (the results schema),
  how values are rounded, and each run's resolved scenario text (its provenance);
- one sheet per variable: one row per scenario and breakdown (age band, reason, ...),
  years as columns.

The wide CSV is the same rows as the variable sheets stacked, with ``variable`` and
``unit`` columns.  Runs of the discrete-event engine are exported as replicate means
(the spread is in the NetCDF and in ``--quantiles`` files); prediction bands stay as
their ``quantile`` breakdown.  Values are rounded by unit (:mod:`sim.results.precision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sim.engines.schema import VARIABLES
from sim.results.compare import ScenarioResult, mean_over_replicates
from sim.results.io import save_atomically
from sim.results.precision import DECIMALS, DEFAULT_DECIMALS, rounded

EXCEL_SHEET_NAME_LIMIT = 31  # Excel refuses longer sheet names


def _unit(result: ScenarioResult, name: str) -> str:
    unit = result.ds[name].attrs.get("units")
    return str(unit if unit is not None else (VARIABLES[name].unit if name in VARIABLES
                                              else ""))


def variable_names(results: Sequence[ScenarioResult]) -> list[str]:
    """Every variable any run has, in the results schema's order, then the rest."""
    present = {n for r in results for n in r.ds.data_vars if "year" in r.ds[n].dims}
    return [n for n in VARIABLES if n in present] + sorted(present - set(VARIABLES))


def variable_frame(results: Sequence[ScenarioResult], name: str) -> pd.DataFrame:
    """One row per scenario x breakdown, one column per year (rounded by unit)."""
    frames = []
    for result in results:
        if name not in result.ds:
            continue
        # A run by area is exported by area (its `area` column; England's sum included
        # when the run has it), not as the total the comparison table uses.
        source = result.area_ds if result.area_ds is not None else result.ds
        values = mean_over_replicates(source[name])
        unit = _unit(result, name)
        breakdown = [d for d in values.dims if d != "year"]
        frame = values.to_dataframe(name="value").reset_index()
        frame["value"] = rounded(frame["value"].to_numpy(), unit)
        wide = frame.pivot_table(index=breakdown or None, columns="year", values="value",
                                 sort=False, dropna=False) if breakdown else \
            frame.set_index("year")[["value"]].T
        wide = wide.reset_index(drop=not breakdown)
        wide.columns = [int(c) if str(c).isdigit() else c for c in wide.columns]
        if "area" in breakdown and "area_name" in source.coords:
            names = dict(zip(source["area"].values.tolist(),
                             source["area_name"].values.tolist(), strict=True))
            wide.insert(breakdown.index("area") + 1, "area_name", wide["area"].map(names))
        wide.insert(0, "scenario", result.name)
        wide.insert(sum(not str(c).isdigit() for c in wide.columns), "unit", unit)
        frames.append(wide)
    table = pd.concat(frames, ignore_index=True, sort=False)
    years = sorted(c for c in table.columns if isinstance(c, int))
    others = [c for c in table.columns if not isinstance(c, int)]
    table.columns.name = None
    return table[others + years]


def wide_frame(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """Every variable's rows stacked, with a ``variable`` column (the wide CSV)."""
    frames = [variable_frame(results, name).assign(variable=name)
              for name in variable_names(results)]
    table = pd.concat(frames, ignore_index=True, sort=False)
    years = sorted(c for c in table.columns if isinstance(c, int))
    first = ["scenario", "variable"]
    breakdown = [c for c in table.columns
                 if not isinstance(c, int) and c not in (*first, "unit")]
    return table[[*first, *breakdown, "unit", *years]]


def run_rows(results: Sequence[ScenarioResult]) -> list[dict[str, object]]:
    """What each exported run is: the README sheet's first table."""
    rows = []
    for result in results:
        attrs = result.ds.attrs
        rows.append({"scenario": result.name, "kind": result.kind,
                     "engine": str(attrs.get("engine", "")),
                     "replicates": int(result.ds.sizes.get("replicate", 1)),
                     "description": result.description,
                     "file": result.path.name if result.path else "",
                     "git commit": str(attrs.get("git_commit", "")),
                     "created (UTC)": str(attrs.get("created_utc", ""))})
    return rows


def _sheet_names(names: Sequence[str]) -> dict[str, str]:
    """Variable -> a unique sheet name within Excel's 31 characters."""
    out: dict[str, str] = {}
    for name in names:
        sheet = name[:EXCEL_SHEET_NAME_LIMIT]
        suffix = 2
        while sheet in out.values() or sheet == "README":
            tail = f"~{suffix}"
            sheet = name[:EXCEL_SHEET_NAME_LIMIT - len(tail)] + tail
            suffix += 1
        out[name] = sheet
    return out


def write_xlsx(results: Sequence[ScenarioResult], path: Path) -> Path:
    """The workbook (README sheet + one sheet per variable), written atomically."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    names = variable_names(results)
    sheets = _sheet_names(names)
    book = Workbook()
    readme = book.active
    readme.title = "README"
    bold = Font(bold=True)

    def row(*cells: object, strong: bool = False) -> None:
        readme.append(list(cells))
        if strong:
            for cell in readme[readme.max_row]:
                cell.font = bold

    row("cicsim projection: children looked after in England", strong=True)
    row("Years end 31 March; stocks at 31 March, flows over the year.  Money in the unit "
        "shown (2021-22 prices unless 'cash').  Discrete-event runs: means over "
        "replicates.  Decimal places by unit: " + ", ".join(
            f"{unit} {places}" for unit, places in DECIMALS)
        + f", other units {DEFAULT_DECIMALS} (the NetCDF files keep every digit).")
    row()
    row("Runs", strong=True)
    runs = run_rows(results)
    row(*runs[0].keys(), strong=True)
    for run in runs:
        row(*run.values())
    row()
    row("Variables (one sheet each)", strong=True)
    row("sheet", "variable", "unit", "definition", strong=True)
    for name in names:
        unit = next(_unit(r, name) for r in results if name in r.ds)
        definition = VARIABLES[name].definition if name in VARIABLES else str(
            next(r.ds[name].attrs.get("long_name", "") for r in results if name in r.ds))
        row(sheets[name], name, unit, definition)
    row()
    row("Scenario text (the resolved scenario each run was made from)", strong=True)
    for result in results:
        row(result.name, strong=True)
        for line in str(result.ds.attrs.get("scenario_toml", "")).splitlines():
            row("", line)
    readme.column_dimensions["A"].width = 28
    readme.column_dimensions["B"].width = 30
    readme.column_dimensions["D"].width = 60
    for cells in readme.iter_rows():
        for cell in cells:
            cell.alignment = Alignment(vertical="top")

    for name in names:
        table = variable_frame(results, name)
        sheet = book.create_sheet(sheets[name])
        sheet.append([c if isinstance(c, int) else str(c) for c in table.columns])
        for cell in sheet[1]:
            cell.font = bold
        for values in table.itertuples(index=False):
            sheet.append([None if isinstance(v, float) and v != v else v for v in values])
        sheet.freeze_panes = sheet.cell(row=2, column=1 + sum(
            not isinstance(c, int) for c in table.columns))
        sheet.column_dimensions["A"].width = 26
    return save_atomically(path, book.save)


def write_csv_wide(results: Sequence[ScenarioResult], path: Path) -> Path:
    """The wide CSV: scenario, variable, breakdowns, unit, one column per year."""
    return save_atomically(path, lambda tmp: wide_frame(results).to_csv(tmp, index=False))
