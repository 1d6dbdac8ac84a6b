"""Per-area base-year parameters on the shipped data (sim.estimation.areas)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engines import stockflow
from sim.estimation.areas import ENGLAND, area_parameters, resolve_areas
from sim.estimation.cache import cached_parameters
from sim.scenarios.loader import load_scenario


@pytest.fixture(scope="module")
def config() -> dict:
    return load_scenario("scenarios/baseline.toml").config


@pytest.mark.slow
def test_area_parameters_have_england_shapes_and_run_in_one_batch(config: dict) -> None:
    national = cached_parameters(config)
    areas = resolve_areas("england,Wolverhampton,Kent,Dorset,Isles of Scilly")
    params = area_parameters(config, areas, national=national)
    assert params[0] is national
    for area, p in zip(areas[1:], params[1:], strict=True):
        for name in ("entry_rate_per_year", "exit_rate_per_year", "placement_mix",
                     "population_by_age", "initial_state", "looked_after_base_by_band"):
            assert np.shape(getattr(p, name)) == np.shape(getattr(national, name)), name
        p.check_bounds()
        assert p.base_year == national.base_year
        assert p.population_by_age.sum() < national.population_by_age.sum() / 20, area
    # own published stock and pool: Wolverhampton, 31 March 2022
    wolverhampton = params[1]
    assert wolverhampton.looked_after_base == pytest.approx(
        float(wolverhampton.looked_after_base_by_band.sum()))
    result = stockflow.project_batch(params, [config] * len(params))
    first = result["records"][0]["looked_after"]
    assert first[1:] == pytest.approx([p.looked_after_base for p in params[1:]], rel=1e-9)
    assert np.all(np.isfinite(result["records"][-1]["looked_after"]))
    assert ENGLAND in areas


def test_equilibrium_sweep_equals_the_engine_equilibrium(config: dict) -> None:
    """The batched sweep down the ages (areas.equilibria) is the state the engine's
    19-year iteration reaches: same flows, rounding only."""
    from dataclasses import replace

    from sim.estimation.areas import equilibria

    national = cached_parameters(config)
    other = replace(national, entry_rate_per_year=national.entry_rate_per_year * 1.7,
                    exit_rate_per_year=national.exit_rate_per_year * 0.6,
                    birth_entry_share=national.birth_entry_share * 2)
    rates = [stockflow.year_rates(p, config, p.base_year) for p in (national, other)]
    swept = equilibria(rates)
    for state, r in zip(swept, rates, strict=True):
        reference = stockflow.equilibrium_state(r)
        assert np.max(np.abs(state - reference)) <= 1e-11 * np.max(np.abs(reference))


@pytest.mark.slow
def test_load_observed_by_geography_reads_the_authority_and_keeps_suppression() -> None:
    from sim.datasets import load_observed

    wolverhampton = load_observed(2022, geography="336")
    assert wolverhampton.get("looked_after_31_march", 2022) == 512.0
    city = load_observed(2016, geography="201")
    assert city.get("started_during_year", 2015) is None  # published as 'x'
    assert city.is_suppressed("started_during_year", 2015)
    assert city.get("looked_after_31_march", 2015) == 8.0
    assert city.max_year == 2016 and not city.years("looked_after_31_march")[-1] > 2016
    england = load_observed(2022)
    assert england.get("looked_after_31_march", 2022) == 82090.0 and not england.suppressed


@pytest.mark.slow
def test_england_is_the_sum_of_the_areas_within_2_percent(config: dict) -> None:
    """Every authority (2022 boundaries) projected in one batch, 2022-2032: the sum of
    children looked after is within 2 % of the national run in every year."""
    national = cached_parameters(config)
    areas = resolve_areas("all")
    params = area_parameters(config, areas, national=national)
    batch = stockflow.project_batch(params, [config] * len(params))
    alone = stockflow.project(national, config)
    assert batch["years"] == alone["years"] and batch["years"][-1] >= 2032
    for mine, theirs in zip(batch["records"], alone["records"], strict=True):
        total, england = mine["looked_after"].sum(), float(theirs["looked_after"])
        assert abs(total / england - 1) < 0.02


def test_area_parameters_are_cached_by_config_areas_and_method(
        config: dict, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default path (shipped data) is cached: a second call with the same config,
    areas and method does not estimate; another area list or method does."""
    from sim.estimation import areas as module

    national = cached_parameters(config)  # the default cache, shared with other tests
    monkeypatch.setenv("CICSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CICSIM_CACHE", "1")
    monkeypatch.setattr(module.cache, "cached_parameters", lambda _config: national)
    calls: list[tuple[str, ...]] = []

    def fake(config, records, national_, method, data_dir, trends):  # noqa: ANN001, ANN202
        calls.append((method, *(r.area.code for r in records)))
        return [national_ for _ in records]

    monkeypatch.setattr(module, "_estimate", fake)
    kent = resolve_areas("Kent")
    first = area_parameters(config, kent)
    again = area_parameters(config, kent)
    assert len(calls) == 1 and np.array_equal(first[0].initial_state,
                                              again[0].initial_state)
    area_parameters(config, kent, method="raw")
    area_parameters(config, resolve_areas("Kent,Wolverhampton"))
    assert len(calls) == 3
    # England alone needs no area estimate, and parameters passed in bypass the cache
    assert area_parameters(config, resolve_areas("england"))[0].base_year == \
        national.base_year
    area_parameters(config, kent, national=national)
    assert len(calls) == 4
    key = module._cache_key(config, kent, "shrinkage")
    assert key != module._cache_key(config, kent, "raw")
    assert key != module._cache_key(config, resolve_areas("Medway"), "shrinkage")
