"""The stock-flow engine's fast paths equal the plain ones they replace.

``year_rates_stack`` (every year at once) and ``year_rates_batch`` (every year of many
runs at once) must give exactly what ``year_rates`` gives year by year, and the
precompiled scatter map exactly what the per-flow ``build`` loop gives, for every
shipped scenario and for drawn trend slopes.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sim.calibration import sample_parameter_sets
from sim.engines import flow_compiler as fc
from sim.estimation.cache import cached_parameters
from sim.model.parameters import ModelParameters
from sim.model.rates import year_rates, year_rates_batch, year_rates_stack
from sim.scenarios.loader import Scenario, load_scenario

SCENARIOS = sorted(Path("scenarios").glob("*.toml"))


def _assert_stack_equals_year_rates(params: ModelParameters, config: dict,
                                    stacked: dict[str, np.ndarray] | None = None) -> None:
    years = list(range(params.base_year, config["run"]["end_year"] + 1))
    if stacked is None:
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
    _assert_stack_equals_year_rates(cached_parameters(config), config)


def test_year_rates_stack_equals_year_rates_for_draws(baseline_scenario: Scenario,
                                                      baseline_params: ModelParameters
                                                      ) -> None:
    for overrides in sample_parameter_sets(20, seed=5):
        config = copy.deepcopy(baseline_scenario.config)
        for key, value in overrides.items():
            section, name = key.split(".")
            config[section][name] = value
        _assert_stack_equals_year_rates(baseline_params, config)


def test_year_rates_batch_equals_year_rates_run_by_run(baseline_scenario: Scenario,
                                                       baseline_params: ModelParameters
                                                       ) -> None:
    """One batch mixing two parameter sets, drawn trends and a scenario with levers:
    each run's slice equals its own year-by-year rates."""
    levers = load_scenario("scenarios/review-full.toml").config
    other = dataclasses.replace(
        baseline_params, uasc_arrivals_per_year=5400.0, births_per_year=550_000.0,
        entry_rate_per_year=baseline_params.entry_rate_per_year * 1.1,
        population_by_age=baseline_params.population_by_age[::-1].copy(),
        exit_trend_per_year=-0.02)
    runs = [(baseline_params, levers), (other, baseline_scenario.config)]
    for overrides in sample_parameter_sets(3, seed=7):
        config = copy.deepcopy(baseline_scenario.config)
        for key, value in overrides.items():
            section, name = key.split(".")
            config[section][name] = value
        runs.append((baseline_params, config))
    years = list(range(baseline_params.base_year, levers["run"]["end_year"] + 1))
    assert all(c["run"]["end_year"] == years[-1] for _, c in runs)
    batch = year_rates_batch([p for p, _ in runs], [c for _, c in runs], years)
    for r, (params, config) in enumerate(runs):
        _assert_stack_equals_year_rates(params, config, {k: v[r] for k, v in batch.items()})
