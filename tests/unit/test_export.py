"""``cicsim export``: an Excel workbook (README sheet + one sheet per variable, years as
columns) and a wide CSV, checked cell by cell on small synthetic runs with known values;
and the tidy CSV's scenario / unit columns and rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from openpyxl import load_workbook
from test_compare import YEARS, synthetic, write

from sim.cli import main
from sim.results.io import tidy_frame


def with_breakdown(ds: xr.Dataset) -> xr.Dataset:
    """Add a by-reason variable with known values and the schema's units."""
    reasons = ["adopted", "turned_18"]
    values = np.array([[1_000.04 + y, 2_000.06 + y] for y in range(len(YEARS))])
    ds = ds.assign(ceased=(("year", "reason"), values)).assign_coords(reason=reasons)
    ds["ceased"].attrs["units"] = "children per year"
    ds["looked_after"].attrs["units"] = "children"
    return ds


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    base = with_breakdown(synthetic("baseline", looked_after=73_451.23456,
                                    description="do nothing"))
    des = with_breakdown(synthetic("des-demo", replicates=3))  # noise -100, 0, +100
    return [write(tmp_path, base), write(tmp_path, des)]


def test_workbook_has_a_readme_and_one_sheet_per_variable(runs: list[Path],
                                                          tmp_path: Path) -> None:
    target = tmp_path / "x.xlsx"
    assert main(["export", *map(str, runs), "--xlsx", str(target)]) == 0
    book = load_workbook(target, read_only=True)
    variables = ["looked_after", "started", "ceased", "family_help_served",
                 "programme_cost_gbp", "cost_gbp"]
    assert book.sheetnames[0] == "README"
    assert sorted(book.sheetnames[1:]) == sorted(variables)
    readme = [row for row in book["README"].iter_rows(values_only=True)]
    cells = {str(c) for row in readme for c in row if c is not None}
    assert {"baseline", "des-demo", "do nothing", "stockflow"} <= cells
    # units and definitions: one row per variable (sheet, variable, unit, definition)
    rows = {row[1]: row for row in readme if row[0] in variables}
    assert rows["looked_after"][2] == "children"
    assert rows["looked_after"][3].startswith("children looked after at 31 March")
    assert 'name = "baseline"' in cells  # the scenario text (provenance)
    sheet = [row for row in book["looked_after"].iter_rows(values_only=True)]
    assert sheet[0][:2] == ("scenario", "unit")
    assert [int(y) for y in sheet[0][2:]] == list(YEARS)  # years as columns
    values = {row[0]: row[2:] for row in sheet[1:]}
    assert values["baseline"][0] == pytest.approx(73_451.2)  # children: 0.1
    assert values["des-demo"][0] == pytest.approx(80_000.0)  # mean of the replicates
    ceased = [row for row in book["ceased"].iter_rows(values_only=True)]
    assert ceased[0][:3] == ("scenario", "reason", "unit")
    by = {(row[0], row[1]): row[3:] for row in ceased[1:]}
    assert by[("baseline", "turned_18")][2] == pytest.approx(2_002.1)


def test_wide_csv(runs: list[Path], tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "wide.csv"
    assert main(["export", *map(str, runs), "--csv-wide", str(target)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {target}"
    frame = pd.read_csv(target)
    assert list(frame.columns[:2]) == ["scenario", "variable"]
    assert [int(c) for c in frame.columns[-len(YEARS):]] == list(YEARS)
    row = frame[(frame.scenario == "baseline") & (frame.variable == "ceased")
                & (frame.reason == "adopted")]
    assert row["2022"].item() == pytest.approx(1_000.0)
    assert row["unit"].item() == "children per year"


@pytest.mark.parametrize("args, message", [
    (["--xlsx", "x.nc"], "this command cannot write '.nc' files; the file name must end "
                         "in .xlsx"),
    (["--csv-wide", "x.xlsx"], "this command cannot write '.xlsx' files; the file name "
                               "must end in .csv"),
    ([], "export: say what to write"),
])
def test_bad_export_targets_write_nothing(runs: list[Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    before = sorted(tmp_path.iterdir())
    assert main(["export", *map(str, runs), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert err.startswith(f"error: {args[0]} " if args else "error: export:")
    assert sorted(tmp_path.iterdir()) == before


def test_tidy_csv_has_scenario_and_unit_and_sane_decimals() -> None:
    ds = with_breakdown(synthetic("fewer-entries", looked_after=73_451.23456789))
    ds["cost_gbp"].attrs["units"] = "GBP per year (2021-22 prices)"
    frame = tidy_frame(ds)
    assert list(frame.columns[:3]) == ["scenario", "variable", "year"]
    assert list(frame.columns[-2:]) == ["value", "unit"]
    assert set(frame["scenario"]) == {"fewer-entries"}
    stock = frame[frame.variable == "looked_after"]
    assert set(stock["unit"]) == {"children"} and set(stock["value"]) == {73_451.2}
    money = frame[frame.variable == "cost_gbp"]["value"]
    assert (money == money.round(0)).all()
    text = frame.to_csv(index=False)
    assert "73451.2," in text and "73451.23" not in text
