"""The backtest by area (sim.calibration.area_backtest): scoring, report, CLI errors,
a tiny real run, and the data cut-off (nothing after the origin is read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.calibration.area_backtest import (
    Scored,
    best_combo,
    origin_config,
    per_area_mape,
    pooled,
    run_area_backtest,
    write_report,
)
from sim.cli import main


def _rows() -> list[dict]:
    rows = []
    for method, error in (("shrinkage", 2.0), ("raw", -4.0), ("national", 8.0)):
        for code, observed in (("E1", 100.0), ("E2", 1000.0)):
            for horizon in (1, 2):
                e = error * horizon * (2 if code == "E1" else 1)
                rows.append({"method": method, "trend": "hold", "area_code": code,
                             "area_name": code, "origin": 2019, "horizon": horizon,
                             "year": 2019 + horizon, "observed": observed,
                             "projected": observed * (1 + e / 100), "error_pct": e})
    return rows


def test_pooled_scores_and_report(tmp_path: Path) -> None:
    rows = _rows()
    p = pooled(rows, "shrinkage", "hold")
    # |errors| 4, 8 (E1) and 2, 4 (E2)
    assert p["n"] == 4 and p["mape"] == pytest.approx(4.5)
    assert p["wape"] == pytest.approx((4 * 100 + 8 * 100 + 2 * 1000 + 4 * 1000) / 2200)
    assert pooled(rows, "raw", "hold")["bias"] == pytest.approx(-9.0)
    assert pooled(rows, "raw", "hold", [1])["mape"] == pytest.approx(6.0)
    assert per_area_mape(rows, "national", "hold") == {"E1": 24.0, "E2": 12.0}
    assert best_combo(rows) == ("shrinkage", "hold")
    paths = write_report(Scored(rows, (2019,), 2, 2), tmp_path)
    text = paths["report"].read_text()
    assert "| **shrinkage** | hold | 4 | 4.50 |" in text
    assert "| hold | 100 % | 0 % | 0 % |" in text  # the methods scored: shrinkage raw national
    assert len(paths["csv"].read_text().splitlines()) == 1 + len(rows)


@pytest.mark.parametrize("argv, message", [
    (["--origins", "20x6"], "--origins"),
    (["--origins", "2016:2020", "--methods", "median"], "unknown method 'median'"),
    (["--origins", "2022"], "origin 2022 outside"),
    (["--horizon", "0"], "--horizon 0"),
    (["--scenario", "nowhere.toml"], "nowhere.toml"),
    (["--area", "Atlantis"], "Atlantis"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, argv: list[str],
                                                 message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["backtest-areas", *argv, "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_tiny_real_backtest(tmp_path: Path) -> None:
    from sim.estimation.areas import resolve_areas

    areas = resolve_areas("Kent,Wolverhampton")
    scored = run_area_backtest([2019], 1, "scenarios/baseline.toml", trends=("hold",),
                               areas=areas)
    methods = {(r["method"], r["area_name"]) for r in scored.rows}
    assert len(scored.rows) == 10 and len(methods) == 10  # 4 methods + no change, 2 areas
    for r in scored.rows:
        assert r["year"] == 2020 and np.isfinite(r["projected"]) and r["observed"] > 0
    # the projection starts from the published 2019 stock, so a year on it is close
    assert all(abs(r["error_pct"]) < 30 for r in scored.rows)


@pytest.mark.slow
def test_area_parameters_read_nothing_after_the_origin(tmp_path: Path) -> None:
    """Corrupt every row after 2019 in a copy of sim/data: the 2019 parameters of every
    method do not move (only scoring reads later years)."""
    from sim.estimation.areas import area_parameters, resolve_areas
    from sim.estimation.estimate import estimate_parameters
    from sim.scenarios.loader import load_scenario
    from tests.unit.test_backtest_cutoff import corrupted_copy

    base = load_scenario("scenarios/baseline.toml").config
    corrupt = corrupted_copy(tmp_path, 2019)
    areas = resolve_areas("Kent,Wolverhampton,City of London")
    for method in ("regional", "shrinkage", "raw"):
        made = []
        for data_dir in (None, corrupt):
            config = origin_config(dict(base), 2019, 1, "national", data_dir)
            national = estimate_parameters(config, data_dir=data_dir)
            made.append(area_parameters(config, areas, method=method, national=national,
                                        data_dir=data_dir))
        for clean, dirty in zip(*made, strict=True):
            assert np.array_equal(clean.initial_state, dirty.initial_state)
            assert np.array_equal(clean.entry_rate_per_year, dirty.entry_rate_per_year)
            assert np.array_equal(clean.exit_rate_per_year, dirty.exit_rate_per_year)
