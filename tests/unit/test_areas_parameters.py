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
