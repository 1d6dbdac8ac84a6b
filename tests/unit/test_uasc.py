"""UASC as an explicit exogenous path (issue 8, part 4).

The default arrivals are the mean of the last three years' UASC starts to the base
year, read from nothing later; the uasc-high / uasc-low pair brackets it with the range
of the last ten years; and every engine reports looked after, started and ceased by
stream, summing to the unchanged totals.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.datasets import Observed, load_observed
from sim.engines import des, stockflow
from sim.engines.schema import build_dataset
from sim.errors import InputError
from sim.estimation.estimate import (
    ASSUMED_UASC_STARTS_PER_STOCK,
    estimate_parameters,
    uasc_arrivals_default,
)
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.model.rates import year_rates
from sim.scenarios.loader import load_scenario

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = "started_during_year__uasc__uasc"
SENSITIVITY_YEARS = 10  # uasc-high / uasc-low: the range of the last ten years


def published_or_assumed_starts(obs: Observed, year: int) -> float:
    """UASC starts as DfE published them; before 2019 (not published) the named
    assumption, a share of the 31 March UASC stock.  Written out here rather than
    calling the estimator's own helper, so the test does not check the code against
    itself."""
    value = obs.get(PUBLISHED, year)
    if value is not None:
        return value
    return ASSUMED_UASC_STARTS_PER_STOCK * obs.require("uasc_31_march", year)


def _config(*overrides: str) -> dict:
    return load_scenario(REPO / "scenarios/baseline.toml", list(overrides)).config


# --- the default ----------------------------------------------------------------


@pytest.mark.parametrize("base_year", [2020, 2022])
def test_default_is_the_mean_of_the_last_three_years(base_year: int) -> None:
    obs = load_observed(base_year)
    expected = np.mean([published_or_assumed_starts(obs, y)
                        for y in range(base_year - 2, base_year + 1)])
    params = estimate_parameters(_config(f"run.base_year={base_year}"), observed=obs)
    assert params.uasc_arrivals_per_year == pytest.approx(expected, rel=1e-12)
    source = params.sources["uasc_arrivals_per_year"]
    assert f"{base_year - 2}-{base_year}" in source  # the years used are stated
    # the base year itself stays history: its own published starts
    assert params.uasc_arrivals_base_year == obs.require(PUBLISHED, base_year)
    assert year_rates(params, _config(f"run.base_year={base_year}"), base_year
                      ).uasc_arrivals_by_age_month.sum() == pytest.approx(
                          obs.require(PUBLISHED, base_year))


def test_base_year_method_keeps_the_old_behaviour() -> None:
    obs = load_observed(2022)
    value, source = uasc_arrivals_default(obs, 2022, "base_year")
    assert value == obs.require(PUBLISHED, 2022)
    assert "UASC starts 2022" in source


def test_an_assumed_year_is_named_in_the_source() -> None:
    _, source = uasc_arrivals_default(load_observed(2020), 2020, "mean_last_3")
    assert "2018" in source and "ASSUMPTION" in source  # 2018 starts not published


def test_unknown_method_is_an_input_error() -> None:
    with pytest.raises(InputError, match="arrivals_method"):
        load_scenario(REPO / "scenarios/baseline.toml", ["uasc.arrivals_method=median"])


def _corrupt_after(obs: Observed, year: int) -> Observed:
    """The same figures with every value dated after ``year`` changed to 3 x value + 7."""
    corrupted = copy.deepcopy(obs)
    for values in corrupted.series.values():
        for y in values:
            if y > year:
                values[y] = 3 * values[y] + 7
    return corrupted


@pytest.mark.parametrize("method", ["mean_last_3", "base_year"])
def test_default_reads_nothing_after_the_base_year(method: str) -> None:
    """Even handed every later year (load_observed would drop them), the default does
    not move when they are corrupted."""
    clean = load_observed(2020)
    everything = _corrupt_after(load_observed(2022), 2020)
    assert everything.get(PUBLISHED, 2022) != load_observed(2022).get(PUBLISHED, 2022)
    assert uasc_arrivals_default(everything, 2020, method) == uasc_arrivals_default(
        clean, 2020, method)


# --- the sensitivity pair ----------------------------------------------------------


def _scenario_arrivals(name: str) -> float:
    return float(load_scenario(REPO / f"scenarios/{name}.toml").config["uasc"]["arrivals_per_year"])


def test_high_low_pair_is_the_ten_year_range() -> None:
    obs = load_observed(2022)
    starts = {y: published_or_assumed_starts(obs, y)
              for y in range(2022 - SENSITIVITY_YEARS + 1, 2023)}
    assert _scenario_arrivals("uasc-high") == pytest.approx(max(starts.values()), abs=0.5)
    assert _scenario_arrivals("uasc-low") == pytest.approx(min(starts.values()), abs=0.5)


@pytest.fixture(scope="module")
def projections() -> dict[str, xr.Dataset]:
    out = {}
    for name in ("baseline", "uasc-high", "uasc-low"):
        config = load_scenario(REPO / f"scenarios/{name}.toml").config
        result = stockflow.project(estimate_parameters(config), config)
        out[name] = build_dataset(result["years"], result["records"])
    return out


def test_uasc_high_above_baseline_above_low(projections: dict[str, xr.Dataset]) -> None:
    at_2032 = {name: float(ds.looked_after.sel(year=2032)) for name, ds in projections.items()}
    assert at_2032["uasc-high"] > at_2032["baseline"] > at_2032["uasc-low"]
    # only the UASC stream moves: the non-UASC stream is the same in all three
    non_uasc = [float(ds.looked_after_by_stream.sel(year=2032, stream="non_uasc"))
                for ds in projections.values()]
    assert non_uasc == pytest.approx([non_uasc[0]] * 3, rel=1e-12)


# --- results by stream -------------------------------------------------------------


def _close(actual: xr.DataArray, desired: xr.DataArray, rtol: float,
           atol: float = 0.0) -> None:
    """assert_allclose on xarray values matched by dimension name, not position."""
    np.testing.assert_allclose(actual.values, desired.transpose(*actual.dims).values,
                               rtol=rtol, atol=atol)


def _check_streams(ds: xr.Dataset, rtol: float) -> None:
    """Streams sum to the totals, each stream keeps its own stock identity, and UASC
    leave before 18 only by the routes the model gives them."""
    for by_stream, total in (("looked_after_by_stream", "looked_after"),
                             ("started_by_stream", "started"),
                             ("ceased_by_stream", "ceased")):
        _close(ds[by_stream].sum("stream"), ds[total], rtol=rtol, atol=1e-9)
    _close(ds.looked_after_by_stream.sel(stream="uasc"), ds.looked_after_uasc, rtol=rtol)
    # every start in the UASC stream is an arrival, a first start on DfE's basis too:
    # the repeat starts DfE does not count are all in the non-UASC stream
    every_start = xr.concat([ds.started_every_episode - ds.started_uasc, ds.started_uasc],
                            dim="stream").assign_coords(stream=list(spec.STREAMS))
    _close(ds.started_by_stream.sel(stream="uasc"), ds.started_uasc, rtol=rtol)
    assert bool((ds.started_by_stream <= every_start * (1 + 1e-12)).all())
    stock = ds.looked_after_by_stream
    flows = (every_start - ds.ceased_by_stream.sum("reason")).isel(year=slice(1, None))
    _close(stock.diff("year"), flows, rtol=0, atol=1e-6 * float(stock.max()))
    no_route = [r for r in spec.CEASED_REASONS
                if r not in (*spec.UASC_EXIT_ROUTES, "turned_18")]
    assert float(abs(ds.ceased_by_stream.sel(stream="uasc", reason=no_route)).max()) == 0


@pytest.mark.parametrize("scenario", ["baseline", "review-full"])
def test_stockflow_streams_sum_to_totals(scenario: str,
                                         baseline_params: ModelParameters) -> None:
    config = load_scenario(REPO / f"scenarios/{scenario}.toml").config
    result = stockflow.project(baseline_params, config)
    _check_streams(build_dataset(result["years"], result["records"]), rtol=1e-12)


def test_des_streams_sum_to_totals_in_every_replicate(
        baseline_params: ModelParameters) -> None:
    config = _config("run.population_scale=0.01", "run.replicates=3", "run.end_year=2026")
    ds = des.run(baseline_params, config)
    for replicate in ds.replicate.values:
        _check_streams(ds.sel(replicate=replicate), rtol=1e-12)


def test_a_uasc_hazard_without_a_counter_is_refused(baseline_params: ModelParameters) -> None:
    rates = year_rates(baseline_params, _config(), 2023)
    exit_rate = rates.exit_rate.copy()
    exit_rate[spec.STREAMS.index("uasc"), :, :, spec.EXIT_ROUTES.index("adoption")] = 0.01
    with pytest.raises(ValueError, match="UASC_EXIT_ROUTES"):
        stockflow.build_generators(replace(rates, exit_rate=exit_rate))
