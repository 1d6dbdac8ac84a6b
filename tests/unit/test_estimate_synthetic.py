"""sim/estimation/estimate.py on a small synthetic ``Observed`` built in code (a town of
about 60,000 children): what the estimation promises for any data, not for the shipped
files.  Checks: the base-year stock by band and stream and the CIN pool are reproduced
exactly, the base year's exits by route come back from the hazards, every hazard is
non-negative and within its bounds, and missing or suppressed figures fall back to the
documented assumptions."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from sim.datasets import Observed, load_observed
from sim.engines import stockflow
from sim.estimation import estimate
from sim.estimation.estimate import estimate_parameters
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.run import project_stockflow
from sim.scenarios.loader import load_scenario

YEAR = 2022
BANDS = spec.AGE_BAND_NAMES
STOCK = 400.0
STOCK_SHARES = np.array([0.05, 0.14, 0.18, 0.39, 0.24])
STARTS_BY_BAND = np.array([28.0, 26.0, 22.0, 44.0, 30.0])  # 150 in all, 12 UASC
UASC_STOCK, UASC_UNDER_16, UASC_STARTS = 24.0, 4.0, 12.0
CEASED = {"returned_home": 38.0, "adopted": 10.0, "sgo": 18.0,
          "residence_or_child_arrangements_order": 4.0}
CEASED_TOTAL = 140.0
CEASED_BY_AGE = {"under_1": 12.0, "1_to_4": 30.0, "5_to_9": 22.0, "10_to_15": 28.0,
                 "16": 6.0, "17": 6.0, "18_and_over": 36.0}


def synthetic_observed(year: int = YEAR) -> Observed:
    """Every measure the estimation reads for ``year``, and three earlier years of the
    headline series (trends, the stock identity, UASC means)."""
    s: dict[str, dict[int, float]] = {}

    def put(measure: str, value: float, y: int = year) -> None:
        s.setdefault(measure, {})[y] = float(value)

    for back in range(4):
        y = year - back
        put("population_0_17_ons_mid_year", 60_000 - 300 * back, y)
        put("looked_after_31_march", STOCK - 16 * back, y)
        put("started_during_year", 150 - 2 * back, y)
        put("ceased_during_year", CEASED_TOTAL - 2 * back, y)
        put("uasc_31_march", UASC_STOCK, y)
        put("started_during_year__uasc__uasc", UASC_STARTS, y)
    for band, share in zip(BANDS, STOCK_SHARES, strict=True):
        put(f"looked_after_31_march__age__{band}", STOCK * share)
    for band, value in zip(BANDS, STARTS_BY_BAND, strict=True):
        put(f"started_during_year__age__{band}", value)
    put("uasc_31_march__age__under_16", UASC_UNDER_16)
    put("cin_31_march", 2_000.0)
    put("cin_children_ended_during_year", 1_700.0)
    for reason, value in CEASED.items():
        put(f"ceased_during_year__reason__{reason}", value)
    for age, value in CEASED_BY_AGE.items():
        put(f"ceased_during_year__age__{age}", value)
    put("ceased_during_year__age__16_and_over", 48.0)
    p = "looked_after_31_march__placement__"
    for name, value in (("foster_total", 280.0),
                        ("foster_relative_or_friend_inside_boundary", 40.0),
                        ("foster_relative_or_friend_outside_boundary", 10.0),
                        ("secure_homes_and_childrens_homes", 40.0),
                        ("other_residential_settings", 4.0), ("residential_schools", 1.0)):
        put(p + name, value)
    put("uasc_31_march__placement__foster_total", 10.0)
    put("uasc_31_march__placement__secure_homes_and_childrens_homes", 1.0)
    d = "ceased_during_year__duration_of_last_period_of_care__"
    for group, value in zip(estimate.DURATION_GROUPS, (30.0, 15.0, 25.0, 35.0, 35.0),
                            strict=True):
        for measure in group:
            put(d + measure, value / len(group))
    population = {a: 3_150.0 + 20.0 * a for a in range(18)}
    return Observed(max_year=year, series=s, single_age_population=population,
                    single_age_year=2020)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with only the curated file the estimation reads, and no first-
    published figure for the base year: nothing comes from sim/data."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "outturn_to_2022.csv").write_text("source,measure,year,value,unit,url\n")
    return folder


def _config(*overrides: str) -> dict:
    return load_scenario(None, ["run.end_year=2025", *overrides]).config


@pytest.fixture(scope="module")
def estimated(data_dir: Path) -> tuple[ModelParameters, dict]:
    config = _config()
    return estimate_parameters(config, observed=synthetic_observed(), data_dir=data_dir), config


def test_base_year_stock_by_band_and_stream_is_reproduced(estimated: tuple) -> None:
    params, config = estimated
    np.testing.assert_allclose(params.looked_after_base_by_band, STOCK * STOCK_SHARES,
                               rtol=1e-12)
    ds = project_stockflow(params, config)
    np.testing.assert_allclose(ds.looked_after_by_age.sel(year=YEAR), STOCK * STOCK_SHARES,
                               rtol=1e-9)
    uasc = float(ds.looked_after_by_stream.sel(year=YEAR, stream="uasc"))
    assert uasc == pytest.approx(UASC_STOCK, rel=1e-9)
    # the CIN pool is the CIN census less the children looked after
    assert float(ds.cin_pool.sel(year=YEAR)) == pytest.approx(2_000 - STOCK, rel=1e-9)
    assert params.cin_closure_rate_per_year == pytest.approx((1_700 - CEASED_TOTAL) / 1_600)


def test_hazards_are_non_negative_and_within_bounds(estimated: tuple) -> None:
    params, _ = estimated
    params.check_bounds()  # raises outside PARAMETER_INFO's bounds
    assert np.all(params.exit_rate_per_year >= 0) and np.all(params.entry_rate_per_year >= 0)
    assert np.all(params.exit_rate_per_year.sum(axis=0) > 0)
    # adoption only under 10 (ASSUMPTION in estimate.ADOPTION_BANDS)
    adoption = params.exit_rate_per_year[spec.EXIT_ROUTES.index("adoption")]
    assert np.all(adoption[3:] == 0) and np.all(adoption[:3] > 0)
    np.testing.assert_allclose(params.placement_mix.sum(axis=1), 1.0, rtol=1e-12)
    assert params.uasc_age_share.sum() == pytest.approx(1.0)


def test_base_year_exits_by_route_come_back(estimated: tuple) -> None:
    """Hazards are published exits / duration-weighted stock (iterated with the
    engine's structure): at the base-year state they give back the published exits."""
    params, config = estimated
    ds = project_stockflow(params, config)
    ceased = ds.ceased.sel(year=YEAR)
    # the fixed point runs a few iterations (estimate.FIXED_POINT_ITERATIONS): exact to
    # about 1e-6 here, so 1e-4 leaves room without hiding a wrong denominator
    assert float(ceased.sel(reason="returned_home")) == pytest.approx(38.0, rel=1e-4)
    assert float(ceased.sel(reason="adoption")) == pytest.approx(10.0, rel=1e-4)
    assert float(ceased.sel(reason="sgo_cao")) == pytest.approx(22.0, rel=1e-4)
    # leaving at 18: the initial state's oldest months are shaped to the published count
    assert float(ceased.sel(reason="turned_18")) == pytest.approx(36.0, rel=1e-9)
    assert float(ceased.sum("reason")) == pytest.approx(CEASED_TOTAL, rel=1e-4)
    assert float(ds.started.sel(year=YEAR)) == pytest.approx(150.0, rel=1e-4)


def test_uasc_arrivals_are_the_mean_of_three_years_and_age_shares(estimated: tuple) -> None:
    params, _ = estimated
    assert params.uasc_arrivals_per_year == pytest.approx(UASC_STARTS)
    assert params.uasc_arrivals_base_year == UASC_STARTS
    share = UASC_UNDER_16 / UASC_STOCK
    np.testing.assert_allclose(params.uasc_base_by_band,
                               [0, 0, 0, UASC_STOCK * share, UASC_STOCK * (1 - share)])


def test_repeat_start_share_from_the_stock_identity(estimated: tuple) -> None:
    params, _ = estimated
    # the stock rose 16 a year while started - ceased was 10: 6 uncounted starts a
    # year, a share of the 138 published non-UASC starts plus themselves
    assert params.repeat_start_share == pytest.approx(6.0 / (138.0 + 6.0), rel=1e-12)
    assert "3 years" in params.sources["repeat_start_share"]


def test_a_negative_identity_gap_means_no_uncounted_starts() -> None:
    obs = synthetic_observed()
    for back in range(4):  # stock now rises 4 a year, started - ceased still 10
        obs.series["looked_after_31_march"][YEAR - back] = STOCK - 4 * back
    assert estimate.uncounted_starts(obs, YEAR)[0] == 0.0


def test_missing_cin_census_uses_the_named_assumptions(data_dir: Path) -> None:
    obs = synthetic_observed()
    del obs.series["cin_31_march"]
    params = estimate_parameters(_config(), observed=obs, data_dir=data_dir)
    assert params.cin_pool_base == pytest.approx(
        estimate.ASSUMED_CIN_POOL_PER_CHILD * params.population_by_age.sum())
    assert params.cin_closure_rate_per_year == estimate.ASSUMED_CIN_CLOSURE_RATE
    assert params.sources["cin_pool_base"].startswith("ASSUMPTION")


def test_missing_duration_data_gives_multipliers_of_one(data_dir: Path) -> None:
    obs = synthetic_observed()
    for measure in list(obs.series):
        if "duration_of_last_period_of_care" in measure:
            del obs.series[measure]
    params = estimate_parameters(_config(), observed=obs, data_dir=data_dir)
    np.testing.assert_array_equal(params.stage_exit_multiplier, np.ones(5))
    assert "ASSUMPTION" in params.sources["stage_exit_multiplier"]


def test_missing_uasc_starts_and_age_use_the_assumed_ratios() -> None:
    obs = synthetic_observed()
    del obs.series["started_during_year__uasc__uasc"]
    del obs.series["uasc_31_march__age__under_16"]
    assert estimate.uasc_started(obs, YEAR) == pytest.approx(
        estimate.ASSUMED_UASC_STARTS_PER_STOCK * UASC_STOCK)
    assert estimate.uasc_under_16_share(obs, YEAR) == estimate.ASSUMED_UASC_UNDER_16_SHARE
    value, source = estimate.uasc_arrivals_default(obs, YEAR, "mean_last_3")
    assert value == pytest.approx(estimate.ASSUMED_UASC_STARTS_PER_STOCK * UASC_STOCK)
    assert "ASSUMPTION" in source


def test_missing_stock_by_age_uses_the_latest_earlier_shares() -> None:
    obs = synthetic_observed()
    for band in BANDS:  # publish 2021's breakdown only, with other shares
        measure = f"looked_after_31_march__age__{band}"
        obs.series[measure] = {YEAR - 1: 10.0}
    np.testing.assert_allclose(estimate.stock_by_band(obs, YEAR, 500.0), np.full(5, 100.0))
    obs.series = {k: v for k, v in obs.series.items() if "__age__" not in k
                  or not k.startswith("looked_after")}
    with pytest.raises(ValueError, match="no stock by age band"):
        estimate.stock_by_band(obs, YEAR, 500.0)


def test_later_rows_and_suppressed_values_are_not_read(tmp_path: Path) -> None:
    """load_observed keeps rows up to the base year only and reads suppression codes
    (x, c, z, [x]) as missing, which the estimation then treats as unpublished."""
    header = "geography_level,year,measure,value\n"
    rows = ["national,2021,cin_31_march,1900", "national,2022,cin_31_march,x",
            "national,2023,cin_31_march,2100", "national,2022,looked_after_31_march,[c]",
            "regional,2022,looked_after_31_march,5", "national,2022,started_during_year,150"]
    from sim.datasets import NATIONAL_FILES, SINGLE_AGE_FILE

    (tmp_path / NATIONAL_FILES[0]).write_text(header + "\n".join(rows) + "\n")
    for name in NATIONAL_FILES[1:]:
        if name.endswith(".gz"):
            import gzip

            with gzip.open(tmp_path / name, "wt", encoding="utf-8") as handle:
                handle.write(header)
        else:
            (tmp_path / name).write_text(header)
    (tmp_path / SINGLE_AGE_FILE).write_text(
        "year,sex,age,value\n" + "".join(f"2020,persons,{a},100\n" for a in range(20)))
    obs = load_observed(2022, tmp_path)
    assert obs.get("cin_31_march", 2021) == 1900
    assert obs.get("cin_31_march", 2022) is None  # suppressed
    assert obs.get("cin_31_march", 2023) is None  # after the base year
    assert obs.get("looked_after_31_march", 2022) is None  # suppressed, regional ignored
    assert obs.get("started_during_year", 2022) == 150
    assert sorted(obs.single_age_population) == list(range(18))


def test_estimation_does_not_change_the_observed_data(data_dir: Path) -> None:
    obs = synthetic_observed()
    before = copy.deepcopy(obs.series)
    estimate_parameters(_config(), observed=obs, data_dir=data_dir)
    assert obs.series == before


def test_initial_state_is_the_scaled_equilibrium(estimated: tuple) -> None:
    params, config = estimated
    from sim.model.rates import year_rates

    expected = stockflow.scale_to_observed(
        stockflow.equilibrium_state(year_rates(params, config, YEAR)), params)
    np.testing.assert_allclose(params.initial_state, expected, rtol=1e-9, atol=1e-12)
