"""Stock-flow engine on the shipped data: base year, accounting identity, outputs."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.datasets import load_observed
from sim.estimation.estimate import estimate_parameters
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.results.io import read_results
from sim.run import project_stockflow, run_to_file
from sim.scenarios.loader import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def baseline(baseline_params: ModelParameters, baseline_scenario: Scenario) -> xr.Dataset:
    return project_stockflow(baseline_params, baseline_scenario.config)


def test_base_year_stock_is_latest_revision(baseline: xr.Dataset) -> None:
    # 82,090: DfE's latest revision for 31 March 2022 (one vintage per fit)
    assert float(baseline.looked_after.sel(year=2022)) == pytest.approx(82_090, abs=0.5)


def test_first_published_vintage_is_reachable() -> None:
    # 82,170: DfE first published figure for 31 March 2022 (outturn_to_2022.csv)
    scenario = load_scenario(None, ["initial.looked_after_vintage=first_published"])
    params = estimate_parameters(scenario.config)
    ds = project_stockflow(params, scenario.config)
    assert float(ds.looked_after.sel(year=2022)) == pytest.approx(82_170, abs=0.5)


def test_base_year_flows_within_5_percent_of_published(baseline: xr.Dataset) -> None:
    observed = load_observed(2022)
    started = observed.require("started_during_year", 2022)
    ceased = observed.require("ceased_during_year", 2022)
    assert float(baseline.started.sel(year=2022)) == pytest.approx(started, rel=0.05)
    assert float(baseline.ceased.sel(year=2022).sum()) == pytest.approx(ceased, rel=0.05)


@pytest.fixture(scope="module")
def small(small_model_session: tuple[ModelParameters, dict]) -> xr.Dataset:
    """The in-code model (tests/fixtures.py): identities hold for any parameters."""
    return project_stockflow(*small_model_session)


@pytest.mark.parametrize("which", ["small", "baseline"])
def test_stock_identity_every_year(which: str, request: pytest.FixtureRequest) -> None:
    ds = request.getfixturevalue(which)
    stock = ds.looked_after.values
    net = (ds.started_every_episode - ds.ceased.sum("reason")).values
    np.testing.assert_allclose(stock[1:], stock[:-1] + net[1:], rtol=1e-10)
    assert np.ptp(stock) > 1.0  # the stock moves, so the identity is not trivial


def test_breakdowns_add_up(small: xr.Dataset) -> None:
    total = small.looked_after
    for name in ("looked_after_by_age", "looked_after_by_placement",
                 "looked_after_by_stage", "looked_after_by_stream"):
        dim = [d for d in small[name].dims if d != "year"][0]
        np.testing.assert_allclose(small[name].sum(dim), total, rtol=1e-10)
    np.testing.assert_allclose(small.started_by_age.sum("age_group"), small.started,
                               rtol=1e-10)
    np.testing.assert_allclose(small.started_by_stream.sum("stream"), small.started,
                               rtol=1e-10)
    np.testing.assert_allclose(small.ceased_by_stream.sum("stream"), small.ceased,
                               rtol=1e-10)
    np.testing.assert_allclose(small.returned_home,
                               small.ceased.sel(reason="returned_home"), rtol=1e-12)
    np.testing.assert_allclose(small.cin, small.cin_pool + small.looked_after, rtol=1e-12)


def test_base_year_stock_by_age_matches_published(baseline: xr.Dataset) -> None:
    observed = load_observed(2022)
    published = np.array([observed.require(f"looked_after_31_march__age__{b}", 2022)
                          for b in spec.AGE_BAND_NAMES])
    published *= 82_090 / published.sum()
    np.testing.assert_allclose(baseline.looked_after_by_age.sel(year=2022), published,
                               rtol=1e-9)


def test_cin_pool_at_base_year_matches_census(baseline: xr.Dataset) -> None:
    observed = load_observed(2022)
    assert float(baseline.cin.sel(year=2022)) == pytest.approx(
        observed.require("cin_31_march", 2022), rel=1e-9)


def test_more_entries_more_children(small_params: ModelParameters) -> None:
    """A rate multiplier moves the projection the right way (and nothing else breaks)."""
    low = load_scenario(None, ["rates.entry_multiplier=0.9"])
    high = load_scenario(None, ["rates.entry_multiplier=1.1"])
    low_ds = project_stockflow(small_params, low.config)
    high_ds = project_stockflow(small_params, high.config)
    assert float(low_ds.looked_after.sel(year=2032)) < float(
        high_ds.looked_after.sel(year=2032))
    # only entries changed: the base-year stock is the same
    for ds in (low_ds, high_ds):
        assert float(ds.looked_after.sel(year=2022)) == pytest.approx(
            small_params.looked_after_base, rel=1e-12)


def test_run_writes_netcdf_and_csv_with_provenance(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios/baseline.toml")
    ds, nc_path, csv_path = run_to_file(scenario, out=tmp_path / "baseline.nc")
    again = read_results(nc_path)
    xr.testing.assert_allclose(again, ds)
    for key in ("scenario_toml", "engine", "git_commit", "data_sha256", "cicsim_version",
                "parameters", "wall_time_s"):
        assert key in again.attrs
    assert "base_year = 2022" in again.attrs["scenario_toml"]
    header = csv_path.read_text().splitlines()[0]
    # the pair's run_id first (sim/results/io.py), then the tidy frame
    assert header.startswith("run_id,scenario,variable,year") and header.endswith("value,unit")
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's thresholds")
def test_repeated_projections_reuse_memory() -> None:
    """The first projection raises glibc's adaptive thresholds (stockflow.py,
    ``_raise_allocator_thresholds``), so repeated projections in a fresh process reuse
    heap memory instead of mapping fresh pages: with glibc's defaults a national run
    took ~310 minor page faults (a fifth of its time); 457 with the call removed."""
    code = """
import resource
from sim.engines import stockflow
from sim.estimation.estimate import estimate_parameters
from sim.scenarios.loader import load_scenario
config = load_scenario("scenarios/baseline.toml").config
params = estimate_parameters(config)
for _ in range(5):
    stockflow.project(params, config)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    stockflow.project(params, config)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""
    # glibc's own defaults: a MALLOC_* variable (dask's nanny leaks one into the
    # environment of a process that started a cluster) switches adaptivity off
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env={**env, "OPENBLAS_NUM_THREADS": "1"})
    faults_per_run = float(out.stdout.strip().splitlines()[-1])
    assert faults_per_run < 30, faults_per_run
