"""Skill summaries and bands derived from backtest rows (sim/calibration/backtest.py,
sim/results/bands.py), on synthetic rows with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from sim.calibration.backtest import (
    benchmark_projections,
    choose_default,
    coverage,
    error_scale,
    growth_exponent,
    pooled_mape,
)
from sim.results.bands import QUANTILES, add_bands, log_scale


def test_benchmarks_closed_forms() -> None:
    linear = {y: 100.0 + 10 * (y - 2010) for y in range(2010, 2017)}
    out = benchmark_projections(linear, 2016, 3)
    assert out["no_change"] == {2017: 160.0, 2018: 160.0, 2019: 160.0}
    assert out["linear_trend_5y"][2019] == pytest.approx(190.0)
    assert out["random_walk_drift"][2018] == pytest.approx(180.0)
    # the origin's own value is required; later values are never used
    assert benchmark_projections({2015: 1.0}, 2016, 2)["no_change"] == {}


def _row(method: str, variable: str, origin: int, horizon: int, error: float) -> dict:
    observed = 100.0
    projected = observed * math.exp(-error)
    return {"method": method, "variable": variable, "origin": origin, "horizon": horizon,
            "year": origin + horizon, "observed": observed, "projected": projected,
            "error_pct": (projected / observed - 1) * 100}


def test_pooled_mape_and_choice() -> None:
    rows = [_row(m, v, o, h, e) for m, e in (("linear", 0.10), ("hold", 0.02))
            for v in ("stock", "starts", "ceased") for o in (2014, 2015) for h in (1, 2)]
    assert pooled_mape(rows, "hold", "stock") == pytest.approx(
        (1 - math.exp(-0.02)) * 100)
    assert choose_default(rows) == "hold"


def test_error_scale_and_leave_one_out_coverage() -> None:
    errors = {2014: 0.01, 2015: -0.02, 2016: 0.03, 2017: -0.04}
    rows = [_row("hold", "stock", o, 1, e) for o, e in errors.items()]
    assert error_scale(rows, "hold", "stock", [1])[0] == pytest.approx(
        np.sqrt(np.mean(np.square(list(errors.values())))))
    # leave-one-out: 2017's band comes from the other three origins only
    others = np.sqrt(np.mean(np.square([0.01, -0.02, 0.03])))
    assert error_scale(rows, "hold", "stock", [1], leave_out=2017)[0] == pytest.approx(others)
    share, n = coverage(rows, "hold", ["stock"], [1], 0.8)
    assert n == 4 and 0 <= share <= 1


def test_growth_exponent_is_bounded() -> None:
    assert growth_exponent([0.01, 0.02, 0.03]) == pytest.approx(1.0)
    assert growth_exponent([0.01, 0.01, 0.01]) == 0.5
    assert 0.5 < growth_exponent([0.01, 0.016, 0.021]) < 1.0


def test_bands_from_scales() -> None:
    years = np.arange(2022, 2027)
    ds = xr.Dataset({"looked_after": ("year", np.full(5, 1000.0))},
                    coords={"year": years})
    config = {"run": {"base_year": 2022},
              "bands": {"looked_after_log_sd": [0.01, 0.02], "growth_exponent": 1.0}}
    out = add_bands(ds, config)
    q = out["looked_after_quantiles"]
    assert list(q["quantile"].values) == list(QUANTILES)
    assert np.allclose(q.sel(year=2022).values, 1000.0)  # the published base year
    assert float(q.sel(year=2023, quantile=0.5)) == pytest.approx(1000.0)
    from scipy.stats import norm
    assert float(q.sel(year=2024, quantile=0.9)) == pytest.approx(
        1000 * math.exp(norm.ppf(0.9) * 0.02))
    assert log_scale([0.01, 0.02], 4, 1.0) == pytest.approx(0.04)  # extrapolated
    assert "looked_after_quantiles" not in add_bands(ds, {"run": {"base_year": 2022}})
