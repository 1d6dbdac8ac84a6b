"""Discrete-event engine: compiled tables, reproducibility, common random numbers,
capacity and outputs.  Small populations and short horizons keep these fast; the
statistical agreement with the stock-flow engine is in tests/statistical."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from sim.cli import main as cli_main
from sim.engines import des, stockflow
from sim.errors import InputError
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.results.summary import QUANTILES, quantile_bands, write_quantiles
from sim.run import run_to_file
from sim.scenarios.loader import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[2]

SMALL = ["run.population_scale=0.01", "run.end_year=2026", "run.replicates=2"]
CAPACITY_VARIABLES = {"foster_waiting", "foster_wait_months", "family_help_waiting",
                      "family_help_wait_months"}


def scenario(*overrides: str) -> Scenario:
    return load_scenario(REPO / "scenarios/baseline.toml", [*SMALL, *overrides])


def run_des(params: ModelParameters, *overrides: str, workers: int = 1) -> xr.Dataset:
    return des.run(params, scenario(*overrides).config, workers=workers)


# --- compiled model -------------------------------------------------------------


def test_child_ids_are_distinct_for_distinct_origins() -> None:
    ordinal = np.arange(3)
    ids = np.concatenate([des.child_ids(origin, 7, 215, 56, ordinal)
                          for origin in (des.ORIGIN_INITIAL, des.ORIGIN_CIN,
                                         des.ORIGIN_UASC, des.ORIGIN_FAMILY_HELP)])
    assert len(set(ids.tolist())) == ids.size
    again = des.child_ids(des.ORIGIN_CIN, 7, 215, 56, ordinal)
    assert np.array_equal(again, ids[3:6])
    assert int(des.child_ids(3, 4095, 255, 127, np.array([2**24 - 1]))[0]) < 2**53


def test_a_constant_hazard_gives_an_exponential_stage() -> None:
    """One stage with constant hazards 1.2 + 0.6 per year: the stage ends after
    E / 1.8 years for an Exp(1) draw E, and the routes split 2:1."""
    n_months = 24
    hazards = np.zeros((2, 1, len(spec.AGE_BANDS), 1, 3))
    hazards[..., 1], hazards[..., 2] = 1.2, 0.6
    chain = des.PhaseChain.compile(hazards, n_months)
    clock = np.array([0.1, 0.5, 1.0, 2.0, 2.5])
    births = np.full(clock.size, -60)
    rows = chain.rows(np.zeros(clock.size, dtype=np.int64), births)
    start = np.full(clock.size, 3.25)
    times, months = chain.next_times(0, rows, start, clock)
    expected = start + clock / 1.8 * 12
    assert np.allclose(times, np.where(expected < n_months, expected, np.inf), rtol=1e-12)
    assert np.array_equal(months[expected < n_months],
                          np.floor(expected[expected < n_months]).astype(int))
    picked = chain.choose(0, np.zeros(3, dtype=np.int64), np.array([4, 4, 4]),
                          np.array([-60] * 3), np.array([0.1, 0.66, 0.67]))
    assert picked.tolist() == [1, 1, 2]


def test_hazards_stop_at_the_18th_birthday() -> None:
    hazards = np.ones((1, 1, len(spec.AGE_BANDS), 1, 2))
    chain = des.PhaseChain.compile(hazards, 12)
    births = np.array([-210])  # 18 at month 6
    times, _ = chain.next_times(0, chain.rows(np.zeros(1, dtype=np.int64), births),
                                np.zeros(1), np.array([5.0]))
    assert np.isinf(times[0])  # 5 expected events need 30 months; only 6 are left


def test_the_aggregate_pool_is_the_stockflow_pool(baseline_scenario: Scenario,
                                                  baseline_params: ModelParameters) -> None:
    """The DES pool and its expected entries equal the stock-flow engine's, year by
    year and age band by age band, to rounding error."""
    model = des.compile_model(baseline_params, baseline_scenario.config)
    reference = stockflow.project(baseline_params, baseline_scenario.config)
    pools = np.array([float(r["cin_pool"]) for r in reference["records"]])
    assert np.allclose(model.pool.year_end_pool, pools, rtol=1e-12)
    x = baseline_params.initial_state.copy()
    for year, rates in enumerate(model.rates, start=1):
        tally = stockflow.advance_year(x, rates)
        expected = tally.counters_by_band[:, spec.COUNTERS.index("started_from_cin")]
        months = model.pool.expected_entries[12 * (year - 1): 12 * year].sum(axis=0)
        by_band = np.bincount(des.BAND_OF_AGE_ROW, weights=months, minlength=5)
        assert np.allclose(by_band, expected, rtol=1e-12)


def test_entry_times_invert_the_pool_distribution(baseline_scenario: Scenario,
                                                  baseline_params: ModelParameters) -> None:
    model = des.compile_model(baseline_params, baseline_scenario.config)
    pool = model.pool
    month = 13
    rows = np.array([0, 0, 1, 50, 150, 215, 215])  # row 0: a pool that starts empty
    u = np.array([1e-9, 0.3, 0.5, 0.2, 0.999999, 0.5, 0.7])
    times = pool.entry_times(month, rows, u)
    assert np.all((times > month) & (times < month + 1))
    tau = (times - month) / 12
    start, inflow = pool.start[month, rows], pool.inflow[month, rows]
    leave = pool.leave_rate[month, rows]
    share = des._pool_time(start, inflow, leave, tau) / des._pool_time(
        start, inflow, leave, np.full(rows.size, 1 / 12))
    assert np.allclose(share, u, rtol=1e-9, atol=1e-12)


def test_poisson_quantile_matches_scipy() -> None:
    generator = np.random.default_rng(3)
    u = generator.random(50_000)
    means = np.concatenate([generator.random(49_990) * 300, [0.0, 1e-9, 200.0, 200.5,
                                                             800.0, 5000.0, 1.0, 2.0,
                                                             3.0, 1e4]])
    assert np.array_equal(des.poisson_quantile(u, means), scipy.stats.poisson.ppf(u, means))


# --- whole runs -----------------------------------------------------------------


def test_stock_changes_by_starts_minus_ends(baseline_params: ModelParameters) -> None:
    """Every child is counted: stock(t) - stock(t-1) = started - ceased, exactly."""
    ds = run_des(baseline_params)
    stock = ds["looked_after"]
    change = stock.diff("year")
    flows = (ds["started_every_episode"] - ds["ceased"].sum("reason")).isel(
        year=slice(1, None))
    assert np.allclose(change.values, flows.values, rtol=0, atol=1e-6)
    by_parts = ds["looked_after_by_placement"].sum("placement")
    assert np.allclose(by_parts, stock) and np.allclose(ds["looked_after_by_age"].sum(
        "age_group"), stock) and np.allclose(ds["looked_after_by_stage"].sum("care_stage"),
                                            stock)
    assert (ds["started_first_in_year"].isel(year=slice(1, None))
            <= ds["started_every_episode"].isel(year=slice(1, None))).all()
    assert np.isnan(ds["started_first_in_year"].isel(year=0)).all()


def test_base_year_is_the_drawn_initial_state(baseline_params: ModelParameters) -> None:
    config = copy.deepcopy(scenario().config)
    result = des.simulate_replicate(des.compile_model(baseline_params, config), 0)
    initial = (result.episodes["source"] == des.SOURCE_INITIAL).sum()
    assert float(result.records[0]["looked_after"]) == pytest.approx(initial / 0.01)
    assert result.heap_events > 0 and result.transitions > result.heap_events / 2


def test_same_seed_gives_identical_files_and_another_seed_does_not(
        tmp_path: Path, baseline_params: ModelParameters) -> None:
    def write(name: str, seed: int) -> tuple[Path, Path]:
        _, nc, csv = run_to_file(scenario(), out=tmp_path / f"{name}.nc", engine="des",
                                 seed=seed, params=baseline_params)
        return nc, csv

    first, second, other = write("a", 11), write("b", 11), write("c", 12)
    assert first[1].read_bytes() == second[1].read_bytes()
    assert first[1].read_bytes() != other[1].read_bytes()
    volatile = ("created_utc", "wall_time_s")
    with xr.open_dataset(first[0]) as a, xr.open_dataset(second[0]) as b:
        a.attrs = {k: v for k, v in a.attrs.items() if k not in volatile}
        b.attrs = {k: v for k, v in b.attrs.items() if k not in volatile}
        xr.testing.assert_identical(a.load(), b.load())


def test_worker_count_does_not_change_results(baseline_params: ModelParameters) -> None:
    one = run_des(baseline_params, "run.replicates=3", workers=1)
    two = run_des(baseline_params, "run.replicates=3", workers=2)
    xr.testing.assert_identical(one, two)
    assert not np.array_equal(one["looked_after"].isel(replicate=0),
                              one["looked_after"].isel(replicate=1))


def test_common_random_numbers_pair_scenarios(baseline_params: ModelParameters) -> None:
    """Fewer entries change nothing for the children already in care: the same child
    draws the same numbers, so its episode is identical in both scenarios."""
    model_a = des.compile_model(baseline_params, scenario().config)
    model_b = des.compile_model(baseline_params, scenario("rates.entry_multiplier=0.8").config)
    a, b = des.simulate_replicate(model_a, 0), des.simulate_replicate(model_b, 0)
    initial_a = a.episodes["source"] == des.SOURCE_INITIAL
    initial_b = b.episodes["source"] == des.SOURCE_INITIAL
    for name in ("child", "start", "end", "reason", "placement"):
        assert np.array_equal(a.episodes[name][initial_a], b.episodes[name][initial_b]), name
    assert a.episodes["source"].size > b.episodes["source"].size


def _without_capacity(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_vars([v for v in CAPACITY_VARIABLES if v in ds]).drop_attrs()


def test_foster_capacity_that_never_binds_changes_nothing(
        baseline_params: ModelParameters) -> None:
    free = run_des(baseline_params)
    roomy = run_des(baseline_params, "capacity.foster_places=1000000")
    assert float(roomy["foster_waiting"].max()) == 0.0
    xr.testing.assert_identical(_without_capacity(free), _without_capacity(roomy))


def test_binding_foster_capacity_moves_placements_only(
        baseline_params: ModelParameters) -> None:
    free = run_des(baseline_params)
    tight = run_des(baseline_params, "capacity.foster_places=30000")
    foster = tight["looked_after_by_placement"].sel(placement="foster")
    assert float(foster.max()) <= 30000
    assert float(tight["foster_waiting"].isel(year=slice(1, None)).min()) > 0
    assert float(tight["foster_wait_months"].isel(year=slice(1, None)).min()) > 0
    # placement does not change any hazard: the same children, in other placements
    # (equal to rounding: the base year's flows are sums taken in placement order)
    for name in ("looked_after", "started", "ceased", "looked_after_by_age"):
        xr.testing.assert_allclose(free[name], tight[name], rtol=1e-12, atol=0)
    kinship = tight["looked_after_by_placement"].sel(placement="kinship_foster")
    assert (kinship >= free["looked_after_by_placement"].sel(placement="kinship_foster")).all()


def test_family_help_capacity_forms_a_queue(baseline_params: ModelParameters) -> None:
    ds = run_des(baseline_params, "capacity.family_help_places=5000",
                 "capacity.family_help_entry_effect=0.5")
    projected = ds.isel(year=slice(1, None))
    assert float(projected["family_help_waiting"].min()) > 0
    assert float(projected["family_help_wait_months"].min()) > 0
    assert float(projected["family_help_served"].min()) > 0
    reference = stockflow.project(baseline_params, scenario().config)["records"]
    pool = np.array([float(r["cin_pool"]) for r in reference])
    # the pool is the same flow, partly followed child by child: within 3 %
    assert np.allclose(ds["cin_pool"].mean("replicate"), pool, rtol=0.03)


# --- scenario keys and errors -----------------------------------------------------


@pytest.mark.parametrize(("override", "message"), [
    ("capacity.foster_places=-1", r"key 'capacity.foster_places' = -1 is negative"),
    ("capacity.foster_places=1.5", r"key 'capacity.foster_places' must be an integer"),
    ("capacity.foster_places=2000000",
     r"key 'capacity.foster_places' = 2000000 is above the maximum"),
    ("capacity.family_help_places=-5", r"'capacity.family_help_places' = -5 is negative"),
    ("capacity.foster_overflow_placement=foster",
     r"'capacity.foster_overflow_placement' = 'foster' is not allowed; must be one of "
     r"'kinship_foster', 'residential', 'other'"),
    ("capacity.family_help_referral_share=1.5",
     r"'capacity.family_help_referral_share' = 1.5 is a probability"),
    ("capacity.family_help_entry_effect=-0.1",
     r"'capacity.family_help_entry_effect' = -0.1 is a probability"),
    ("capacity.family_help_mean_months=0.1",
     r"'capacity.family_help_mean_months' = 0.1 is below the minimum; must be >= 0.25"),
    ("capacity.foster_place=10", r"unknown key 'capacity.foster_place'; valid keys in "
                                 r"\[capacity\]: family_help_entry_effect"),
])
def test_capacity_keys_are_validated(override: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        scenario(override)


def test_places_that_round_to_zero_are_an_error(baseline_params: ModelParameters) -> None:
    with pytest.raises(InputError, match=r"capacity.foster_places = 10 x "
                                         r"run.population_scale = 0.01 rounds to 0 places"):
        des.compile_model(baseline_params, scenario("capacity.foster_places=10").config)


def test_family_help_capacity_and_lever_together_are_an_error(
        baseline_params: ModelParameters) -> None:
    config: dict[str, Any] = copy.deepcopy(scenario("capacity.family_help_places=1000").config)
    config["levers"] = {"family_help": {}}
    with pytest.raises(InputError, match=r"capacity.family_help_places and "
                                         r"\[levers.family_help\] both model family help"):
        des.compile_model(baseline_params, config)


# --- outputs ----------------------------------------------------------------------


def test_quantile_bands_are_written_beside_the_output(
        tmp_path: Path, baseline_params: ModelParameters) -> None:
    ds = run_des(baseline_params, "run.replicates=5")
    nc, csv = write_quantiles(ds, tmp_path / "run.nc")
    assert nc.name == "run_quantiles.nc" and csv.name == "run_quantiles.csv"
    with xr.open_dataset(nc) as bands:
        assert bands["quantile"].values.tolist() == list(QUANTILES)
        assert "replicate" not in bands.dims
        low, middle, high = (bands["looked_after"].sel(quantile=q) for q in QUANTILES)
        assert (low <= middle).all() and (middle <= high).all()
    assert "quantile" in csv.read_text().splitlines()[0]


def test_quantile_bands_need_replicates(baseline_params: ModelParameters) -> None:
    single = run_des(baseline_params).isel(replicate=0)
    with pytest.raises(ValueError, match="need a dataset with a 'replicate' dimension"):
        quantile_bands(single)


def test_progress_is_reported(baseline_params: ModelParameters) -> None:
    calls: list[tuple[int, int]] = []
    des.run(baseline_params, scenario("run.replicates=3").config,
            progress=lambda done, total: calls.append((done, total)), workers=1)
    assert calls[-1] == (3, 3) and calls == sorted(calls)


def test_cli_runs_the_des_with_quantiles(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "small.nc"
    code = cli_main(["run", str(REPO / "scenarios/baseline.toml"), "--engine", "des",
                     "--replicates", "2", "--seed", "5", "--set",
                     "run.population_scale=0.005", "--set", "run.end_year=2024",
                     "--out", str(out), "--quantiles"])
    assert code == 0
    assert out.exists() and (tmp_path / "small_quantiles.nc").exists()
    assert (tmp_path / "small_quantiles.csv").exists()
    captured = capsys.readouterr()
    assert "looked after in 2024" in captured.out
    assert captured.err == ""  # stderr is not a terminal: no progress bar, nothing extra
    assert captured.out.strip().splitlines()[-1].startswith(f"wrote {out}, ")
    with xr.open_dataset(out) as ds:
        assert ds.attrs["engine"] == "des" and ds.attrs["root_seed"] == 5
        assert ds.sizes["replicate"] == 2
