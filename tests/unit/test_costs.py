"""Costs: base year equals the review's £10bn, components add up, and zero funding is
the baseline exactly."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.errors import InputError
from sim.estimation.cost_data import s251_reference_costs, s251_unit_cost_growth
from sim.estimation.estimate import estimate_parameters
from sim.model.costs import COST_COMPONENTS, COST_PARAMETERS, real_rate
from sim.model.lever_parameters import LEVER_NAMES
from sim.model.parameters import ModelParameters
from sim.results.costs import add_costs
from sim.run import project_stockflow, simulate
from sim.scenarios.loader import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def baseline() -> Scenario:
    return load_scenario(ROOT / "scenarios" / "baseline.toml")


@pytest.fixture(scope="module")
def params(baseline: Scenario) -> ModelParameters:
    return estimate_parameters(baseline.config)


@pytest.fixture(scope="module")
def raw(params: ModelParameters, baseline: Scenario) -> xr.Dataset:
    return project_stockflow(params, baseline.config)


def total(ds: xr.Dataset) -> xr.DataArray:
    return ds["cost_gbp"].sum("cost_component")


def test_base_year_total_is_the_reviews_ten_billion(raw: xr.Dataset, params: ModelParameters,
                                                    baseline: Scenario) -> None:
    ds = add_costs(raw, params, baseline.config)
    assert float(total(ds).sel(year=2022)) == pytest.approx(10e9, rel=1e-12)
    assert ds.attrs["cost_base_year_total_gbp"] == pytest.approx(10e9)
    assert list(ds["cost_component"].values) == list(COST_COMPONENTS)
    assert float(ds["cost_gbp"].min()) >= 0
    # the residual "other" spend is positive and smaller than placements + CIN work
    other = ds.attrs["cost_other_spend_gbp_per_year"]
    assert 0 < other < 5e9


def test_placement_cost_is_unit_cost_times_the_years_average_stock(
        raw: xr.Dataset, params: ModelParameters, baseline: Scenario) -> None:
    ds = add_costs(raw, params, baseline.config)
    stock = raw["looked_after_by_placement"].sel(placement="residential")
    expected = (COST_PARAMETERS["residential_gbp_per_year"].value
                * (float(stock.sel(year=2024)) + float(stock.sel(year=2025))) / 2)
    assert float(ds["cost_gbp"].sel(year=2025, cost_component="residential")) == pytest.approx(
        expected, rel=1e-12)
    pool = raw["cin_pool"]
    expected_cin = (baseline.config["costs"]["cin_gbp_per_child_year"]
                    * (float(pool.sel(year=2030)) + float(pool.sel(year=2031))) / 2)
    assert float(ds["cost_gbp"].sel(year=2031, cost_component="children_in_need")) == (
        pytest.approx(expected_cin, rel=1e-12))


def test_real_growth_scales_unit_costs_by_year(raw: xr.Dataset, params: ModelParameters,
                                               baseline: Scenario) -> None:
    flat = add_costs(raw, params, baseline.config)
    config = {**baseline.config, "costs": {**baseline.config["costs"],
                                           "real_growth_per_year": 0.02}}
    growing = add_costs(raw, params, config)
    ratio = (growing["cost_gbp"].sel(year=2032, cost_component="foster")
             / flat["cost_gbp"].sel(year=2032, cost_component="foster"))
    assert float(ratio) == pytest.approx(1.02 ** 10)
    # the base year, and so the £10bn calibration, is unchanged
    assert float(total(growing).sel(year=2022)) == pytest.approx(10e9)


def test_explicit_other_spend_replaces_the_residual(raw: xr.Dataset, params: ModelParameters,
                                                    baseline: Scenario) -> None:
    config = {**baseline.config, "costs": {**baseline.config["costs"],
                                           "other_spend_gbp_per_year": 1e9}}
    ds = add_costs(raw, params, config)
    assert float(ds["cost_gbp"].sel(year=2030, cost_component="other_childrens_social_care")
                 ) == 1e9
    assert float(total(ds).sel(year=2022)) != pytest.approx(10e9)


def test_unit_costs_above_the_base_year_total_are_rejected(
        raw: xr.Dataset, params: ModelParameters, baseline: Scenario) -> None:
    config = {**baseline.config, "costs": {**baseline.config["costs"],
                                           "residential_gbp_per_year": 1e6}}
    with pytest.raises(InputError, match=r"costs: base-year placement and CIN costs "
                       r"\(£\d+\.\d\dbn\) exceed costs.base_year_total_gbp \(£10.00bn\)"):
        add_costs(raw, params, config)


def test_programme_component_is_the_lever_money(tmp_path: Path,
                                                params: ModelParameters) -> None:
    path = tmp_path / "money.toml"
    path.write_text(f'extends = "{ROOT / "scenarios" / "baseline.toml"}"\n'
                    "[levers.other_programmes]\n"
                    'funding_gbp_m = { "2024" = 100, "2026" = 50 }\n', encoding="utf-8")
    ds = simulate(load_scenario(path), params=params)
    programmes = ds["cost_gbp"].sel(cost_component="programmes")
    assert float(programmes.sel(year=2024)) == pytest.approx(100e6)
    assert float(programmes.sel(year=2025)) == 0.0
    assert float(programmes.sel(year=2026)) == pytest.approx(50e6)
    assert programmes.values == pytest.approx(ds["programme_cost_gbp"].values)


def test_zero_funding_reproduces_the_baseline_exactly(tmp_path: Path,
                                                      params: ModelParameters,
                                                      baseline: Scenario) -> None:
    """Every lever present, every parameter away from its default, no money: every
    result (and every cost) is bit-for-bit the baseline's."""
    tables = []
    extra = {"family_help": 'risk_ratio = 2.0\neffect = 0.3\n',
             "reunification_support": "reentry_effect = 0.2\n",
             "kinship_support": "placement_effect = 0.2\n",
             "foster_recruitment": "retention_per_year = 0.9\n",
             "other_programmes": ""}
    for name in LEVER_NAMES:
        common = ("" if name == "other_programmes" else
                  "unit_cost_gbp = 123.0\nlag_years = 0.5\nramp_up_years = 1.0\n")
        tables.append(f"[levers.{name}]\n"
                      'funding_gbp_m = { "2024" = 0, "2025" = 0.0 }\n'
                      f"area_share = 0.5\n{common}{extra[name]}")
    path = tmp_path / "zero.toml"
    path.write_text(f'extends = "{ROOT / "scenarios" / "baseline.toml"}"\n'
                    + "\n".join(tables), encoding="utf-8")
    zero = simulate(load_scenario(path), params=params)
    reference = simulate(baseline, params=params)
    assert set(zero.data_vars) == set(reference.data_vars)
    for name in reference.data_vars:
        np.testing.assert_array_equal(zero[name].values, reference[name].values, err_msg=name)


def test_costs_work_with_replicates(raw: xr.Dataset, params: ModelParameters,
                                    baseline: Scenario) -> None:
    """The discrete-event engine adds a replicate dimension; costs follow it."""
    stacked = xr.concat([raw, raw * 1.01], dim="replicate")
    ds = add_costs(stacked, params, baseline.config)
    assert ds["cost_gbp"].dims == ("replicate", "year", "cost_component")
    first, second = (total(ds).isel(replicate=i).sel(year=2030) for i in (0, 1))
    assert float(second) > float(first)


def test_documented_section_251_derivations_match_the_data() -> None:
    """The unit-cost sources quote figures computed from the shipped s251 data."""
    reference = s251_reference_costs()
    assert reference["foster_gbp_per_child_2014"] == pytest.approx(29_500, rel=0.01)
    assert reference["cin_gbp_per_pool_child_2014"] == pytest.approx(9_400, rel=0.01)
    residential_low = COST_PARAMETERS["residential_gbp_per_year"].low
    assert reference["residential_gbp_per_child_2014"] * 1.15 == pytest.approx(
        residential_low, rel=0.01)
    cin = COST_PARAMETERS["cin_gbp_per_child_year"].value
    assert reference["cin_gbp_per_pool_child_2014"] * 1.15 == pytest.approx(cin, rel=0.01)


def test_every_cost_parameter_has_a_source_and_a_range() -> None:
    for key, parameter in COST_PARAMETERS.items():
        assert parameter.source, key
        assert parameter.low <= parameter.value <= parameter.high, key


def test_real_growth_keeps_the_base_year_total_and_cash_exceeds_constant_prices(
        raw: xr.Dataset, params: ModelParameters, baseline: Scenario) -> None:
    """Growth starts after the base year (still £10.0bn); with a rising price index,
    cash >= 2021-22 prices every year, equal in the base year."""
    config = copy.deepcopy(baseline.config)
    config["costs"].update({"real_growth_per_year": 0.02,
                            "residential_real_growth_per_year": 0.05,
                            "cin_real_growth_per_year": -0.02,
                            "other_spend_real_growth_per_year": 0.01,
                            "inflation_per_year": 0.03})
    grown = add_costs(raw, params, config)
    flat = add_costs(raw, params, baseline.config)
    assert float(total(grown).isel(year=0)) == pytest.approx(10e9)
    assert float(total(grown).isel(year=0)) == pytest.approx(float(total(flat).isel(year=0)))
    assert float(total(grown).sel(year=2032)) > float(total(flat).sel(year=2032))
    cash = grown["cost_gbp_cash"].sum("cost_component")
    assert float(cash.isel(year=0)) == pytest.approx(float(total(grown).isel(year=0)))
    assert bool((cash >= total(grown)).all())
    assert float(cash.sel(year=2032)) == pytest.approx(
        float(total(grown).sel(year=2032)) * 1.03 ** 10)
    residential = grown["cost_gbp"].sel(cost_component="residential") / flat[
        "cost_gbp"].sel(cost_component="residential")
    assert float(residential.sel(year=2030)) == pytest.approx((1.02 * 1.05) ** 8)


def test_default_costs_are_constant_real_with_a_two_percent_price_index(
        raw: xr.Dataset, params: ModelParameters, baseline: Scenario) -> None:
    ds = add_costs(raw, params, baseline.config)
    assert ds["price_index"].sel(year=2032).item() == pytest.approx(1.02 ** 10)
    np.testing.assert_allclose(ds["cost_gbp_cash"].values,
                               ds["cost_gbp"].values * ds["price_index"].values[:, None])


def test_documented_growth_derivations_match_the_data() -> None:
    """The real-growth ranges quote rates recomputed from the shipped s251 / CMA data."""
    rates = {k: real_rate(v) for k, v in s251_unit_cost_growth().items()}
    assert COST_PARAMETERS["foster_real_growth_per_year"].high == pytest.approx(
        rates["foster_cash_2011_2014"], abs=5e-4)
    assert COST_PARAMETERS["residential_real_growth_per_year"].low == pytest.approx(
        rates["residential_cash_2011_2014"], abs=5e-4)
    assert COST_PARAMETERS["residential_real_growth_per_year"].high == pytest.approx(
        rates["residential_cash_2014_cma_2021"], abs=5e-4)
    assert COST_PARAMETERS["other_placement_real_growth_per_year"].high == pytest.approx(
        rates["all_looked_after_cash_2010_2014"], abs=5e-4)
    assert COST_PARAMETERS["cin_real_growth_per_year"].low == pytest.approx(
        rates["cin_cash_2013_2014"], abs=5e-4)
