"""The stock-flow engine's fast paths equal the plain ones they replace.

``year_rates_stack`` (every year at once) must give exactly what ``year_rates`` gives
year by year, and the precompiled scatter map exactly what the per-flow ``build``
loop gives, for every shipped scenario and for drawn trend slopes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from sim.calibration import sample_parameter_sets
from sim.engines import flow_compiler as fc
from sim.estimation.estimate import estimate_parameters
from sim.model.parameters import ModelParameters
from sim.model.rates import year_rates, year_rates_stack
from sim.scenarios.loader import Scenario, load_scenario

SCENARIOS = sorted(Path("scenarios").glob("*.toml"))


def _assert_stack_equals_year_rates(params: ModelParameters, config: dict) -> None:
    years = list(range(params.base_year, config["run"]["end_year"] + 1))
    stacked = year_rates_stack(params, config, years)
    rates = [year_rates(params, config, y) for y in years]
    for name, value in fc.stack_rates(rates).items():
        assert np.array_equal(stacked[name], value), name
    sources = np.stack([np.stack([r.population_by_age_month, r.uasc_arrivals_by_age_month],
                                 axis=-1) for r in rates])
    assert np.array_equal(stacked["sources"], sources)
    for name in ("family_help_served", "programme_cost_gbp"):
        assert np.array_equal(stacked[name],
                              [float(getattr(r.effects, name)) for r in rates]), name
    fields = fc.stack_rates(rates)
    assert np.array_equal(fc.reduced_generators(fields),
                          fc.build(fc.REDUCED_TERMS, fc.REDUCED, fields))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_year_rates_stack_equals_year_rates(path: Path) -> None:
    config = load_scenario(path).config
    _assert_stack_equals_year_rates(estimate_parameters(config), config)


def test_year_rates_stack_equals_year_rates_for_draws(baseline_scenario: Scenario,
                                                      baseline_params: ModelParameters
                                                      ) -> None:
    for overrides in sample_parameter_sets(20, seed=5):
        config = copy.deepcopy(baseline_scenario.config)
        for key, value in overrides.items():
            section, name = key.split(".")
            config[section][name] = value
        _assert_stack_equals_year_rates(baseline_params, config)
