"""Runs with an area dimension (sim/run.py ``simulate_areas``, ``--area``) and
area-targeted levers, on the small in-code model: three fake authorities of different
sizes stand in for the area registry (``sim.estimation.areas``), so these tests need no
data files and check the plumbing, not the per-area estimates."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fixtures import raw_params, small_config, with_initial_state

import sim.run as run
from sim.errors import InputError
from sim.model.levers import lever_effects, resolve_levers, with_lever_areas
from sim.results.areas import ENGLAND_SUM_CODE, add_england_sum, area_total
from sim.results.io import tidy_frame
from sim.scenarios.loader import Scenario, freeze, load_scenario


@dataclass(frozen=True)
class FakeArea:
    code: str
    name: str
    region: str
    scale: float


AREAS = (FakeArea("E06000059", "Dorset", "South West", 0.8),
         FakeArea("E10000019", "Lincolnshire", "East Midlands", 1.3),
         FakeArea("E08000031", "Wolverhampton", "West Midlands", 0.6),
         # more areas than numpy's pairwise-summation block (8), so "the England sum
         # is the sum of the areas exactly" is tested where summation order matters
         *(FakeArea(f"E0900{k:04d}", f"Borough {k}", "London", 0.1 + 0.07 * k)
           for k in range(10)))


def fake_resolve(selector: str) -> list[FakeArea]:
    out: list[FakeArea] = []
    for part in selector.split(","):
        key = part.strip().lower()
        if key == "all":
            out += AREAS
            continue
        match = [a for a in AREAS if key in (a.code.lower(), a.name.lower(),
                                             a.region.lower())]
        if not match:
            raise InputError(f"unknown area {part.strip()!r}")
        out += match
    return out


_SCALED: dict[str, Any] = {}


def scaled(area: FakeArea, config: dict[str, Any]):
    """The small model scaled to an authority ``scale`` times its size (built once per
    area: the base-year state depends only on base-year rates, the same in every test
    here)."""
    if area.code not in _SCALED:
        _SCALED[area.code] = _scaled(area, config)
    return _SCALED[area.code]


def _scaled(area: FakeArea, config: dict[str, Any]):
    base = raw_params()
    k = area.scale
    params = replace(base, population_by_age=base.population_by_age * k,
                     births_per_year=base.births_per_year * k,
                     cin_pool_base=base.cin_pool_base * k,
                     looked_after_base=base.looked_after_base * k,
                     looked_after_base_by_band=base.looked_after_base_by_band * k,
                     uasc_base_by_band=base.uasc_base_by_band * k,
                     uasc_arrivals_per_year=base.uasc_arrivals_per_year * k,
                     uasc_arrivals_base_year=base.uasc_arrivals_base_year * k,
                     turned_18_base=base.turned_18_base * k)
    return with_initial_state(params, config)


@pytest.fixture
def fake_areas(monkeypatch):
    api = SimpleNamespace(resolve_areas=fake_resolve,
                          area_parameters=lambda config, areas: [scaled(a, config)
                                                                  for a in areas])
    monkeypatch.setattr(run, "_areas_api", lambda: api)
    return api


def scenario(overrides: list[str] | None = None) -> Scenario:
    config = small_config(overrides=overrides)
    return Scenario(name="test", path=None, config=freeze(config))


def national_params(config):
    return with_initial_state(raw_params(), config)


FAMILY_HELP = ["levers.family_help.funding_gbp_m={2024 = 2.0, 2025 = 2.0}"]


def area_run(selector: str, overrides: list[str] | None = None, **kwargs: Any):
    sc = scenario(overrides)
    return run.simulate_areas(sc, selector, national=national_params(sc.config), **kwargs)


def test_default_run_has_no_area_dimension_and_is_unchanged(fake_areas):
    """``area=None`` and ``area="england"`` take the national path: bit for bit the
    dataset of a plain run (provenance times aside)."""
    sc = scenario()
    params = national_params(sc.config)
    plain = run.simulate(sc, params=params)
    for area in (None, "england", "England"):
        ds = run.simulate(sc, params=params, area=area)
        assert "area" not in ds.dims
        for name in plain.data_vars:
            np.testing.assert_array_equal(ds[name].values, plain[name].values)


def test_area_coordinate_single_list_and_all(fake_areas):
    one = area_run("Dorset")
    assert list(one["area"].values) == ["E06000059"]
    assert list(one["area_name"].values) == ["Dorset"]
    assert list(one["region"].values) == ["South West"]
    listed = area_run("E08000031, lincolnshire")
    assert list(listed["area"].values) == ["E08000031", "E10000019"]
    everything = area_run("all")
    assert list(everything["area"].values) == [a.code for a in AREAS] + [ENGLAND_SUM_CODE]
    assert everything["area_name"].values[-1] == "England (sum of areas)"
    assert json.loads(everything.attrs["areas"])[0] == ["E06000059", "Dorset", "South West"]
    assert everything.attrs["area_selector"] == "all"
    for name, variable in everything.data_vars.items():
        if name != "price_index":  # a price level, the same everywhere
            assert "area" in variable.dims, name


def test_england_sum_is_the_sum_of_the_areas_exactly(fake_areas, tmp_path):
    """In the output as written: the file's England entry equals the sum of the
    file's areas, bit for bit."""
    from sim.results.io import read_results, write_results

    ds = read_results(write_results(area_run("all", FAMILY_HELP), tmp_path / "a.nc")[0])
    real = ds.sel(area=[a.code for a in AREAS])
    for name in [n for n in ds.data_vars if "area" in ds[n].dims]:
        np.testing.assert_array_equal(ds[name].sel(area=ENGLAND_SUM_CODE).values,
                                      real[name].sum("area").values)
    total = area_total(ds)
    assert "area" not in total.dims
    np.testing.assert_array_equal(total["looked_after"].values,
                                  ds["looked_after"].sel(area=ENGLAND_SUM_CODE).values)


def test_each_area_matches_its_own_single_run(fake_areas):
    """The batch gives each area what a run of that area alone gives (no mixing)."""
    both = area_run("Dorset,Wolverhampton")
    alone = area_run("Wolverhampton")
    np.testing.assert_allclose(both["looked_after"].sel(area="E08000031").values,
                               alone["looked_after"].sel(area="E08000031").values,
                               rtol=1e-12)


def test_tidy_csv_has_an_area_column(fake_areas):
    frame = tidy_frame(area_run("Dorset,Lincolnshire"))
    assert {"area", "area_name"} <= set(frame.columns)
    assert set(frame.loc[frame.variable == "looked_after", "area"]) == {"E06000059",
                                                                       "E10000019"}


def test_exports_carry_the_area_column(fake_areas, tmp_path):
    """The wide CSV and the workbook export a run by area by area (issue 11 item 5),
    with the area's name, not only the total the comparison table uses."""
    from openpyxl import load_workbook

    from sim.results.compare import load_results
    from sim.results.export import write_csv_wide, write_xlsx
    from sim.results.io import write_results

    nc, _ = write_results(area_run("Dorset,Lincolnshire"), tmp_path / "a.nc")
    results = load_results([str(nc)])
    wide = pd.read_csv(write_csv_wide(results, tmp_path / "w.csv"))
    stock = wide[wide.variable == "looked_after"]
    assert list(stock["area"]) == ["E06000059", "E10000019"]
    assert list(stock["area_name"]) == ["Dorset", "Lincolnshire"]
    sheet = load_workbook(write_xlsx(results, tmp_path / "x.xlsx"))["looked_after"]
    assert [c.value for c in sheet[1]][:4] == ["scenario", "area", "area_name", "unit"]


def test_lever_with_areas_affects_only_those_areas(fake_areas):
    """Money for Dorset only: Dorset's stock moves, the others' are identical to the
    no-lever run; all the money is spent in Dorset."""
    base = area_run("all")
    funded = area_run("all", [*FAMILY_HELP, 'levers.family_help.areas=["Dorset"]'])
    for code in ("E10000019", "E08000031"):
        np.testing.assert_array_equal(funded["looked_after"].sel(area=code).values,
                                      base["looked_after"].sel(area=code).values)
        assert float(funded["programme_cost_gbp"].sel(area=code).sum()) == 0.0
    dorset = "E06000059"
    assert float(funded["looked_after"].sel(area=dorset, year=2028)) < float(
        base["looked_after"].sel(area=dorset, year=2028))
    assert float(funded["programme_cost_gbp"].sel(area=dorset).sum()) == pytest.approx(4e6)


def test_lever_money_split_by_pool_gives_equal_coverage(fake_areas):
    """Two funded areas: money split in proportion to their CIN pools, so coverage (and
    the relative effect on entries) is the same in both."""
    ds = area_run("all", [*FAMILY_HELP,
                          'levers.family_help.areas=["Dorset", "Wolverhampton"]'])
    money = ds["programme_cost_gbp"].sel(year=2024)
    assert float(money.sel(area="E06000059")) / float(money.sel(area="E08000031")) == \
        pytest.approx(0.8 / 0.6)
    served = ds["family_help_served"].sel(year=2025)
    assert float(served.sel(area="E06000059")) / float(served.sel(area="E08000031")) == \
        pytest.approx(0.8 / 0.6)


def test_areas_by_year_funds_each_wave_from_its_year(fake_areas):
    ds = area_run("all", [*FAMILY_HELP, 'levers.family_help.areas_by_year={2024 = '
                          '["Dorset"], 2025 = ["Dorset", "Lincolnshire"]}'])
    money = ds["programme_cost_gbp"]
    assert float(money.sel(area="E10000019", year=2024)) == 0.0
    assert float(money.sel(area="E10000019", year=2025)) > 0.0
    assert float(money.sel(area="E06000059", year=2024)) == pytest.approx(2e6)


def test_national_run_areas_equal_area_share(fake_areas):
    """In a national run ``areas`` is ``area_share`` = the listed areas' share of
    England's eligible pool: the same effects as that area_share set by hand."""
    config = small_config(overrides=[*FAMILY_HELP, 'levers.family_help.areas=["Dorset"]'])
    params = national_params(config)
    variant, shares = run.national_lever_areas(config, params, "test.toml")
    share = shares["family_help"][0]
    assert share == pytest.approx(0.8 * 1600 / 1600)  # Dorset's pool is 0.8 x England's
    by_hand = small_config(overrides=[*FAMILY_HELP, f"levers.family_help.area_share={share!r}"])
    for year in (2024, 2026):
        assert lever_effects(variant, params, year) == lever_effects(by_hand, params, year)


def test_area_share_and_areas_together_is_bad_input():
    with pytest.raises(InputError, match="areas.*area_share"):
        load_scenario(None, [*FAMILY_HELP, 'levers.family_help.areas=["Dorset"]',
                             "levers.family_help.area_share=0.5"])


def test_unknown_area_in_a_lever_names_file_and_key(fake_areas):
    with pytest.raises(InputError, match=r"key 'levers.family_help.areas'.*Dorsett"):
        area_run("all", [*FAMILY_HELP, 'levers.family_help.areas=["Dorsett"]'])
    config = small_config(overrides=[*FAMILY_HELP, 'levers.family_help.areas=["Dorsett"]'])
    with pytest.raises(InputError, match=r"x.toml: key 'levers.family_help.areas'"):
        run.national_lever_areas(config, national_params(config), "x.toml")


def test_unknown_area_selector_is_bad_input(fake_areas):
    with pytest.raises(InputError, match="--area"):
        area_run("Atlantis")


def test_with_lever_areas_leaves_untouched_levers_alone():
    config = small_config(overrides=FAMILY_HELP)
    assert resolve_levers(with_lever_areas(config, {}, {})) == resolve_levers(config)


def test_add_england_sum_keeps_attributes(fake_areas):
    ds = area_run("Dorset,Lincolnshire")
    summed = add_england_sum(ds)
    assert summed["looked_after"].attrs == ds["looked_after"].attrs
    assert float(summed["child_population"].sel(area=ENGLAND_SUM_CODE)) == pytest.approx(
        float(ds["child_population"].sum()))


def test_des_area_seeds_depend_on_root_and_code_only():
    assert run.area_seed(1, "E06000059") == run.area_seed(1, "E06000059")
    assert run.area_seed(1, "E06000059") != run.area_seed(2, "E06000059")
    assert run.area_seed(1, "E06000059") != run.area_seed(1, "E08000031")


def test_bands_by_area_and_for_the_england_sum(fake_areas):
    ds = area_run("all", ["bands.looked_after_log_sd=[0.02, 0.04]"])
    bands = ds["looked_after_quantiles"]
    assert bands.dims == ("area", "year", "quantile")
    england = ds["looked_after"].sel(area=ENGLAND_SUM_CODE)
    np.testing.assert_allclose(bands.sel(area=ENGLAND_SUM_CODE, quantile=0.5).values,
                               england.values, rtol=1e-12)
    upper = bands.sel(area="E06000059", quantile=0.975, year=2024)
    assert float(upper) == pytest.approx(
        float(ds["looked_after"].sel(area="E06000059", year=2024)) * np.exp(1.959964 * 0.04),
        rel=1e-6)


def test_des_by_area_is_independent_of_the_other_areas(fake_areas):
    """Each area's replicates are seeded from (root seed, area code, replicate): an
    area gives the same children whatever else is in the run."""
    both = area_run("Dorset,Wolverhampton", ["run.end_year=2023"], engine="des",
                    replicates=2, workers=1)
    alone = area_run("Wolverhampton", ["run.end_year=2023"], engine="des", replicates=2,
                     workers=1)
    assert both["looked_after"].dims[:2] == ("area", "replicate")
    np.testing.assert_array_equal(both["looked_after"].sel(area="E08000031").values,
                                  alone["looked_after"].sel(area="E08000031").values)
    assert not np.array_equal(both["looked_after"].sel(area="E06000059").values[:, -1],
                              both["looked_after"].sel(area="E08000031").values[:, -1])


def test_area_table_compares_each_area_with_its_own_baseline(fake_areas):
    from sim.results.areas import area_pairs, area_table
    from sim.results.compare import from_dataset, reference_for

    base = area_run("Dorset,Wolverhampton")
    base.attrs["scenario"] = "baseline"
    funded = area_run("Dorset,Wolverhampton",
                      [*FAMILY_HELP, 'levers.family_help.areas=["Dorset"]'])
    funded.attrs["scenario"] = "dorset-help"
    national = run.simulate(scenario(), params=national_params(scenario().config))
    national.attrs["scenario"] = "baseline"
    results = [from_dataset(national), from_dataset(base), from_dataset(funded)]
    assert [r.name for r in results] == ["baseline", "baseline@Dorset,Wolverhampton",
                                         "dorset-help@Dorset,Wolverhampton"]
    assert reference_for(results[2], results, "baseline") is results[1]
    np.testing.assert_array_equal(results[2].ds["looked_after"].values,
                                  funded["looked_after"].sum("area").values)
    table = area_table(area_pairs(results, [reference_for(r, results, "baseline")
                                            for r in results]), 2030)
    rows = table[table.scenario == "dorset-help@Dorset,Wolverhampton"].set_index("area")
    assert rows.loc["E06000059", "change_vs_baseline_2030"] < 0
    assert rows.loc["E08000031", "change_vs_baseline_2030"] == 0.0
    assert list(rows["rank"]) == [1, 2]
    assert rows["per_10000_2030"].is_monotonic_decreasing


@pytest.mark.slow
def test_compare_and_report_facet_by_area(fake_areas, tmp_path):
    """Two runs over the same areas: compare names them scenario@selector, compares the
    scenario with the baseline over the same areas, writes areas.csv and a report
    with the area section."""
    from sim.cli import main
    from sim.results.io import write_results

    base = area_run("all")
    base.attrs["scenario"] = "baseline"
    funded = area_run("all", [*FAMILY_HELP, 'levers.family_help.areas=["Dorset"]'])
    funded.attrs["scenario"] = "dorset-help"
    paths = [write_results(base, tmp_path / "b.nc")[0],
             write_results(funded, tmp_path / "f.nc")[0]]
    assert main(["compare", *map(str, paths), "--out", str(tmp_path / "cmp"),
                 "--years", "2025", "2030"]) == 0
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("scenario")
    assert table.loc["dorset-help@all", "compared_with"] == "baseline@all"
    areas = __import__("pandas").read_csv(tmp_path / "cmp" / "areas.csv")
    assert len(areas) == 2 * len(AREAS)
    row = areas[(areas.scenario == "dorset-help@all") & (areas.area == "E06000059")]
    assert float(row["change_vs_baseline_2030"].iloc[0]) < 0
    untouched = areas[(areas.scenario == "dorset-help@all") & (areas.area == "E08000031")]
    assert float(untouched["change_vs_baseline_2030"].iloc[0]) == 0.0
    report = (tmp_path / "cmp" / "report.html").read_text()
    assert 'id="areas"' in report and 'id="area-multiples"' in report


# --- with the shipped area registry (sim/data/areas.csv, pathfinders.csv); the
# per-area parameters are still the scaled small model, so no estimation runs.


@pytest.fixture
def registry_areas(monkeypatch):
    from sim.estimation.areas import resolve_areas

    def parameters(config, areas):
        return [scaled(FakeArea(a.code, a.name, a.region, 0.5 + (i % 5) * 0.2), config)
                for i, a in enumerate(areas)]

    api = SimpleNamespace(resolve_areas=resolve_areas, area_parameters=parameters)
    monkeypatch.setattr(run, "_areas_api", lambda: api)
    return api


def test_registry_selectors_give_the_right_area_coordinate(registry_areas):
    assert list(area_run("E08000031")["area"].values) == ["E08000031"]
    listed = area_run("Dorset, 336")
    assert list(listed["area"].values) == ["E06000059", "E08000031"]
    assert list(listed["area_name"].values) == ["Dorset", "Wolverhampton"]
    pathfinders = area_run("pathfinders")
    assert list(pathfinders["area_name"].values) == [
        "Dorset", "Lincolnshire", "Wolverhampton", "Wirral", "Warwickshire"]


def test_pathfinders_scenario_funds_each_wave_from_its_year(registry_areas):
    """The shipped scenario: wave 1 money from 2023-24, Wirral and Warwickshire from
    2024-25 only, nothing elsewhere; all its money lands in the named five."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scenarios" / "families-first-pathfinders.toml"
    sc = load_scenario(path, ["run.end_year=2026"])
    ds = run.simulate_areas(sc, "pathfinders,Bolton", national=national_params(sc.config))
    money = ds["programme_cost_gbp"]
    assert float(money.sel(area="E08000015", year=2024)) == 0.0  # Wirral, wave 2
    assert float(money.sel(area="E08000015", year=2025)) > 0.0
    assert float(money.sel(area="E06000059", year=2024)) > 0.0  # Dorset, wave 1
    assert float(money.sel(area="E08000001").sum()) == 0.0  # Bolton: not a pathfinder
    assert float(money.sum()) == pytest.approx((8.27 + 18.37) * 1e6)


def test_cli_unknown_area_in_a_lever_is_exit_2_one_line(tmp_path, capsys):
    from pathlib import Path

    from sim.cli import main

    baseline = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{baseline}"\n[levers.family_help]\n'
                   'funding_gbp_m = { "2024" = 5.0 }\nareas = ["Dorset", "Dorsett"]\n')
    for extra in ([], ["--area", "pathfinders"]):
        assert main(["run", str(bad), "--out", str(tmp_path / "x.nc"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert "bad.toml" in err[0] and "levers.family_help.areas" in err[0]
        assert "Dorsett" in err[0]
    assert not list(tmp_path.glob("x.*"))


def test_des_capacity_is_shared_between_areas():
    config = small_config(overrides=["capacity.foster_places=1000",
                                     "capacity.family_help_places=3"])
    national = national_params(config)
    small = scaled(FakeArea("X", "x", "r", 0.1), config)
    local = run.local_capacity(config, small, national)
    assert local["capacity"]["foster_places"] == 100
    assert local["capacity"]["family_help_places"] == 1  # never 0 (= no limit)
    assert run.local_capacity(small_config(), small, national) == small_config()


def test_national_lever_in_an_area_run_adds_up_and_covers_evenly(fake_areas):
    """A lever without ``areas``: each authority gets money in proportion to its pool
    over every authority's pool, so the money adds up to the scenario's and coverage
    (served / pool) is the same everywhere, also in a run of some areas only."""
    ds = area_run("all", FAMILY_HELP)
    money = ds["programme_cost_gbp"].sel(area=[a.code for a in AREAS]).sum("area")
    assert float(money.sel(year=2024)) == pytest.approx(2e6, rel=1e-12)
    served = ds["family_help_served"].sel(year=2025, area=[a.code for a in AREAS])
    coverage = served.values / np.array([a.scale for a in AREAS])
    np.testing.assert_allclose(coverage, coverage[0], rtol=1e-12)
    some = area_run("Dorset,Wolverhampton", FAMILY_HELP)
    np.testing.assert_allclose(
        some["programme_cost_gbp"].values,
        ds["programme_cost_gbp"].sel(area=["E06000059", "E08000031"]).values, rtol=1e-12)
