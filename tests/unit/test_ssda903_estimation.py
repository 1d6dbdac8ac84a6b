"""SSDA903 estimation pieces on hand-checked cases, and synth-903 determinism."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from fixtures import copy_config, small_model
from test_ssda903 import EPISODES, HEADER, write

from sim.errors import InputError
from sim.estimation.ssda903 import periods, synth
from sim.estimation.ssda903.authority import authority_parameters
from sim.estimation.ssda903.estimator import estimate_rates, fit_separable, kaplan_meier
from sim.estimation.ssda903.reader import read_extract
from sim.model import spec


def test_lexis_split_of_one_period(tmp_path: Path) -> None:
    """A2 (born 15/02/2015) in care 03/03/2019-20/12/2020, adopted: 1 to 4 until
    15/02/2020, then 5 to 9; stage edges at 6 months (+182.6 d), 1 year and 2 years.
    The extract's window opens on 01/04/2019, so March 2019 is not counted."""
    extract = read_extract(write(tmp_path))
    own = [p for p in periods.build_periods(extract)[0] if p.child == "A2"]
    tables = periods.lexis_tables(own, extract)
    start = dt.date(2019, 3, 3).toordinal()
    fifth = dt.date(2020, 2, 15).toordinal()
    end = dt.date(2020, 12, 20).toordinal()
    year = periods.DAYS_PER_YEAR
    expected = np.zeros((5, 5))
    expected[1, 0] = 0.5 - (dt.date(2019, 4, 1).toordinal() - start) / year
    expected[1, 1] = (fifth - start) / year - 0.5
    expected[2, 1] = 1.0 - (fifth - start) / year
    expected[2, 2] = (end - start) / year - 1.0
    np.testing.assert_allclose(tables.exposure, expected, atol=1e-12)
    assert tables.exits.sum() == 1
    assert tables.exits[spec.EXIT_ROUTES.index("adoption"), 2, 2] == 1


def test_periods_join_x1_episodes_and_route_returned_home(tmp_path: Path) -> None:
    extract = read_extract(write(tmp_path))
    found = [(p.child, p.start, p.end, p.route, len(p.episodes))
             for p in periods.build_periods(extract)[0]]
    assert ("A1", dt.date(2019, 5, 1), dt.date(2020, 1, 10), "returned_home", 2) in found
    assert ("A1", dt.date(2020, 7, 1), None, None, 1) in found
    rates = estimate_rates(extract)
    assert rates.reentry.events == 1 and rates.reentry.at_risk == 1
    assert rates.stock_by_band.sum() == 2  # A1 and A3 open at 31/03/2021
    # A2's start (03/03/2019) is before the window
    assert rates.starts.sum() == 3 and rates.reentries_per_year.sum() * rates.years == 1


def test_fit_separable_recovers_an_exact_product() -> None:
    """Counts equal to their expectation under rate x multiplier: the fit returns them
    exactly (multipliers normalised to exposure-weighted mean 1)."""
    rng = np.random.default_rng(0)
    exposure = rng.uniform(10, 100, (5, 5))
    rate = rng.uniform(0.01, 0.5, (4, 5))
    multiplier = np.array([2.0, 1.5, 1.0, 0.7, 0.4])
    exits = rate[:, :, None] * multiplier[None, None, :] * exposure[None]
    fitted_rate, fitted_multiplier = fit_separable(exposure, exits)
    scale = (exposure.sum(0) @ multiplier) / exposure.sum()
    np.testing.assert_allclose(fitted_multiplier, multiplier / scale, rtol=1e-9)
    np.testing.assert_allclose(fitted_rate, rate * scale, rtol=1e-9)


def test_kaplan_meier_by_hand() -> None:
    """Times 0.5 (event), 0.8 (censored), 2 (event), 3 (event), 6 (censored):
    S(1) = 4/5, S(5) = 4/5 x 2/3 x 1/2; Greenwood at 1: S^2 x 1/(5 x 4)."""
    km = kaplan_meier(np.array([0.5, 0.8, 2.0, 3.0, 6.0]),
                      np.array([True, False, True, True, False]), (1.0, 5.0, 7.0))
    assert km.probability[0] == pytest.approx(0.2)
    assert km.probability[1] == pytest.approx(1 - 0.8 * 2 / 3 * 0.5)
    assert np.isnan(km.probability[2])
    assert km.standard_error[0] == pytest.approx(0.8 * np.sqrt(1 / 20))


def test_synth_same_seed_same_files_other_seed_differs(tmp_path: Path) -> None:
    settings = synth.parse_settings(["start_year=2019", "returned_home_rate=0.5"])
    first = synth.write_extract(tmp_path / "a", 200, 3, settings)
    again = synth.write_extract(tmp_path / "b", 200, 3, settings)
    other = synth.write_extract(tmp_path / "c", 200, 4, settings)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[1].read_bytes() != other[1].read_bytes()
    extract = read_extract(tmp_path / "a")  # the reader's rules accept every row
    assert extract.issues == ()
    assert extract.end_date == dt.date(2022, 3, 31)
    rnes = {e.rne for eps in extract.episodes.values() for e in eps}
    assert {"S", "P"} <= rnes  # placement changes


@pytest.mark.parametrize("pair, message", [("entry_rat=1", "unknown key 'entry_rat'"),
                                           ("adoption_rate=abc", "adoption_rate must be"),
                                           ("other_rate=-1", "out of range"),
                                           ("start_year=2030", "start_year 2030")])
def test_synth_settings_errors_name_the_key(pair: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        synth.parse_settings([pair])


def test_authority_parameters_replace_what_the_extract_identifies(tmp_path: Path) -> None:
    """On the small in-code national model: the extract's stock and hazards replace
    England's, the population scales by the stock ratio, sources name the extract."""
    national, config = small_model()  # base year 2022
    synth.write_extract(tmp_path, 400, 1)
    extract = read_extract(tmp_path)
    params, rates = authority_parameters(extract, config, national=national)
    assert params.looked_after_base == rates.stock_by_band.sum() > 0
    np.testing.assert_allclose(params.looked_after_base_by_band, rates.stock_by_band)
    scale = params.looked_after_base / (national.looked_after_base
                                        - national.uasc_base_by_band.sum())
    np.testing.assert_allclose(params.population_by_age, national.population_by_age * scale)
    assert params.uasc_arrivals_per_year == 0 and params.uasc_base_by_band.sum() == 0
    assert "SSDA903 extract" in params.sources["exit_rate_per_year"]
    assert "ASSUMPTION" in params.sources["cin_closure_rate_per_year"]
    assert params.initial_state.shape == national.initial_state.shape
    variant = copy_config(config)
    variant["run"]["base_year"] = 2021
    with pytest.raises(InputError, match="run.base_year=2022"):
        authority_parameters(extract, variant, national=national)


def test_synth_18th_birthday_the_day_after_the_extract_stays_open() -> None:
    """A child turning 18 on 1 April (the day after the extract ends) is still in care
    on 31 March: the period is open, not ended at 18 with a date after the extract
    (the bug the recovery test caught)."""
    quiet = synth.SynthSettings(returned_home_rate=0, adoption_rate=0, sgo_cao_rate=0,
                                other_rate=0, placement_change_rate=0)
    window_end = float(dt.date(2022, 4, 1).toordinal())  # exclusive
    dob = float(dt.date(2004, 4, 1).toordinal())
    child = synth._Child(np.random.default_rng(0), quiet, "X", window_end - 400, dob,
                         window_end)
    assert [(e[7], e[8]) for e in child.episodes] == [("", "")]  # open: no DEC, no REC
    earlier = synth._Child(np.random.default_rng(0), quiet, "Y", window_end - 400,
                           dob - 1, window_end)
    assert [(e[7], e[8][:1]) for e in earlier.episodes] == [("31/03/2022", "E")]


def test_a_given_population_sets_the_scale(tmp_path: Path) -> None:
    national, config = small_model()
    synth.write_extract(tmp_path, 300, 2)
    params, _ = authority_parameters(read_extract(tmp_path), config, population=12_345.0,
                                     national=national)
    assert params.population_by_age.sum() == pytest.approx(12_345.0)
    assert "given population" in params.sources["cin_pool_base"]
    with pytest.raises(InputError, match="population must be positive"):
        authority_parameters(read_extract(tmp_path), config, population=-1.0,
                             national=national)


def test_left_truncated_period_counts_only_time_in_the_window(tmp_path: Path) -> None:
    """A child in care since 2008 (its old episodes are not in the extract, RNE P)
    still in care in the window: no time before 01/04/2019 is counted (children who left
    before then are absent), its time is in the 5-years-plus stage, and it is not a
    start."""
    header = HEADER + ["L1,1,01/01/2006,WBRI,UN1,,"]
    episodes = EPISODES + ["L1,01/06/2008,P,C2,N1,U4,PR1,,,,,,"]
    extract = read_extract(write(tmp_path, header=header, episodes=episodes))
    own = [p for p in periods.build_periods(extract)[0] if p.child == "L1"]
    assert own[0].first_rne == "P"
    tables = periods.lexis_tables(own, extract)
    years = (dt.date(2021, 3, 31) - dt.date(2019, 4, 1)).days / periods.DAYS_PER_YEAR
    assert tables.exposure.sum() == pytest.approx(years)
    assert tables.exposure[3, 4] == pytest.approx(years)  # aged 13-15, 5 years+
    rates = estimate_rates(extract)
    assert rates.left_truncated == 1 and rates.starts.sum() == 3
