"""Backtests read nothing after the origin: corrupt every later row and show that
estimation, calibration and every method's projection (model treatments and naive
benchmarks) do not move (only the scoring does)."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from sim.calibration.backtest import (
    METHODS,
    TREATMENTS,
    OriginResult,
    run_backtests,
    run_origin,
)
from sim.calibration.skill_report import write_backtest_report, write_forecast_layer
from sim.calibration.targets import load_targets
from sim.cli import main
from sim.datasets import DATA_DIR, load_observed
from sim.errors import InputError
from sim.scenarios.loader import load_scenario

BASE_YEAR = 2016


# The only single-year-of-age population shipped is mid-2020; estimation uses it for
# the *shape* of the age structure only (sim/datasets.py says why that is no leak).  It
# is scaled by 4, exactly in floating point: the shape is unchanged, counts are not, so
# any use of its counts would still show.
SHAPE_ONLY_FILES = {"population_by_single_age.csv": (4.0, 0.0)}


def _corrupt_rows(rows: list[dict[str, str]], after: int, scale: float, shift: float) -> int:
    changed = 0
    for row in rows:
        year = row.get("year", "")
        if year.isdigit() and int(year) > after:
            try:
                row["value"] = repr(float(row["value"]) * scale + shift)
            except ValueError:
                row["value"] = "999999"
            changed += 1
    return changed


def corrupted_copy(tmp_path: Path, after: int) -> Path:
    """sim/data with every row dated after ``after`` changed to 3 x value + 7."""
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    total = 0
    for path in sorted(target.iterdir()):
        if path.suffix not in (".csv", ".gz"):
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", newline="") as handle:  # type: ignore[operator]
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
        if "year" not in fields or "value" not in fields:
            continue
        total += _corrupt_rows(rows, after, *SHAPE_ONLY_FILES.get(path.name, (3.0, 7.0)))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        with opener(path, "wt", encoding="utf-8", newline="") as handle:  # type: ignore[operator]
            handle.write(buffer.getvalue())
    assert total > 1000  # the corruption touched the later years
    return target


@pytest.fixture(scope="module")
def backtests(tmp_path_factory: pytest.TempPathFactory) -> tuple[OriginResult,
                                                                  OriginResult, Path]:
    corrupted = corrupted_copy(tmp_path_factory.mktemp("cutoff"), BASE_YEAR)
    targets = load_targets()
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "uncalibrated.toml"
    return (run_origin(BASE_YEAR, 3, targets, scenario_path=scenario),
            run_origin(BASE_YEAR, 3, targets, scenario_path=scenario, data_dir=corrupted),
            corrupted)


@pytest.mark.slow  # a whole calibration / backtest / reconciliation
def test_corruption_is_visible_to_a_reader_of_later_years(
        backtests: tuple[OriginResult, OriginResult, Path]) -> None:
    corrupted = backtests[2]
    clean, dirty = load_observed(2022), load_observed(2022, corrupted)
    assert dirty.get("looked_after_31_march", 2020) != clean.get("looked_after_31_march", 2020)
    assert load_observed(BASE_YEAR, corrupted).series == load_observed(BASE_YEAR).series


@pytest.mark.slow  # a whole calibration / backtest / reconciliation
def test_nothing_after_the_origin_is_read_by_any_method(
        backtests: tuple[OriginResult, OriginResult, Path]) -> None:
    clean, dirty, _ = backtests
    a, b = clean.calibration, dirty.calibration
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.carried_values, b.carried_values)
    assert np.array_equal(a.problem.projection_params.initial_state,
                          b.problem.projection_params.initial_state)
    assert set(clean.projected) == set(METHODS)  # every model treatment and benchmark
    for method in METHODS:
        assert clean.projected[method] == dirty.projected[method], method
        assert any(clean.projected[method][v] for v in clean.projected[method]), method
    # ... while the scoring, which reads the later years on purpose, does see them
    assert clean.observed["stock"] != dirty.observed["stock"]
    assert [r["error_pct"] for r in clean.rows()] != [r["error_pct"] for r in dirty.rows()]


@pytest.mark.slow  # a whole calibration / backtest / reconciliation
def test_rows_and_report(backtests: tuple[OriginResult, OriginResult, Path],
                         tmp_path: Path) -> None:
    clean = backtests[0]
    rows = clean.rows()
    stock = [r for r in rows if r["method"] == "no_change" and r["variable"] == "stock"]
    assert [r["year"] for r in stock] == [2017, 2018, 2019]
    assert all(r["projected"] == 70_400 for r in stock)  # 2016's published stock
    assert stock[0]["error_pct"] == pytest.approx((70_400 / 72_600 - 1) * 100)
    assert {r["horizon"] for r in rows} == {1, 2, 3}
    paths = write_backtest_report([clean], tmp_path, 3)
    header = paths["csv"].read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("method,variable,horizon,origin")
    assert "error_pct" in header
    text = paths["report"].read_text(encoding="utf-8")
    assert f"**Default treatment: `{paths['default']}`**" in text
    assert paths["default"] in TREATMENTS
    for png in ("png", "fans"):
        assert paths[png].read_bytes()[:4] == b"\x89PNG"
    layer = write_forecast_layer(paths["rows"], paths["default"], 3, [BASE_YEAR],
                                 tmp_path / "forecast.toml", {},
                                 extends=str(Path(__file__).resolve().parents[2]
                                             / "scenarios/layers/calibrated.toml"))
    scenario = load_scenario(layer)  # a valid scenario (extends the calibrated layer)
    assert scenario.config["bands"]["looked_after_log_sd"]


def test_backtest_input_errors() -> None:
    targets = load_targets()
    with pytest.raises(InputError, match=r"origin 2022 must lie in 2013-2021"):
        run_backtests([2022], 3, targets)
    with pytest.raises(InputError, match=r"--horizon 0 must be at least 1"):
        run_backtests([2016], 0, targets)
    with pytest.raises(InputError, match=r"unknown method 'magic'"):
        run_backtests([2016], 3, targets, methods=["magic"])
    assert main(["backtest", "--origins", "2030:2031"]) == 2
    assert main(["backtest", "--origins", "twenty"]) == 2
    assert main(["backtest", "--step", "0"]) == 2
    assert main(["backtest", "--origins", "2020:2014"]) == 2
