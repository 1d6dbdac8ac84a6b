"""Backtests read nothing after the base year: corrupt every later row and show that
estimation, calibration and the projection do not move (only the scoring does)."""

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
    BacktestResult,
    mape_by_horizon_markdown,
    run_backtest,
    write_backtest_report,
)
from sim.cli import main
from sim.datasets import DATA_DIR, load_observed
from sim.errors import InputError

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
def backtests(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult,
                                                                  BacktestResult, Path]:
    corrupted = corrupted_copy(tmp_path_factory.mktemp("cutoff"), BASE_YEAR)
    return (run_backtest(BASE_YEAR, horizon=4), run_backtest(BASE_YEAR, horizon=4,
                                                             data_dir=corrupted), corrupted)


def test_corruption_is_visible_to_a_reader_of_later_years(
        backtests: tuple[BacktestResult, BacktestResult, Path]) -> None:
    corrupted = backtests[2]
    clean, dirty = load_observed(2022), load_observed(2022, corrupted)
    assert dirty.get("looked_after_31_march", 2020) != clean.get("looked_after_31_march", 2020)
    assert load_observed(BASE_YEAR, corrupted).series == load_observed(BASE_YEAR).series


def test_nothing_after_the_base_year_is_read(
        backtests: tuple[BacktestResult, BacktestResult, Path]) -> None:
    clean, dirty, _ = backtests
    a, b = clean.calibration, dirty.calibration
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.carried_values, b.carried_values)
    assert np.array_equal(a.covariance, b.covariance)
    assert np.array_equal(a.problem.projection_params.initial_state,
                          b.problem.projection_params.initial_state)
    for record_a, record_b in zip(a.projection_records, b.projection_records, strict=True):
        assert float(record_a["looked_after"]) == float(record_b["looked_after"])
    for method in METHODS:
        assert clean.projected[method] == dirty.projected[method]
    # ... while the scoring, which reads the later years on purpose, does see them
    assert clean.observed["stock"] != dirty.observed["stock"]


def test_backtest_scores_every_later_year(
        backtests: tuple[BacktestResult, BacktestResult, Path], tmp_path: Path) -> None:
    clean = backtests[0]
    assert clean.years == [2017, 2018, 2019, 2020]
    assert clean.observed["stock"][0] == 72_600
    errors = clean.errors("calibrated", "stock")
    assert errors[0] == pytest.approx(
        (clean.projected["calibrated"]["stock"][0] / 72_600 - 1) * 100)
    assert clean.mape("no_change", "stock") == pytest.approx(
        np.mean([abs(70_400 / o - 1) * 100 for o in clean.observed["stock"]]))
    table = mape_by_horizon_markdown([clean])
    assert "| 2016 | calibrated |" in table and "h=4" in table
    paths = write_backtest_report([clean], tmp_path)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert "## ceased" in paths["report"].read_text(encoding="utf-8")


def test_backtest_input_errors() -> None:
    with pytest.raises(InputError, match=r"backtest: --base-year 2022 must lie in "
                       "2013-2021"):
        run_backtest(2022)
    with pytest.raises(InputError, match=r"backtest: --horizon 0 must be at least 1"):
        run_backtest(2016, horizon=0)
    assert main(["backtest", "--base-year", "2030"]) == 2
