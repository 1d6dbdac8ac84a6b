"""Shared fixtures: the baseline parameters are estimated once per test session."""

from __future__ import annotations

import pytest

from sim.estimation.estimate import estimate_parameters
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import Scenario, load_scenario


@pytest.fixture(scope="session")
def baseline_scenario() -> Scenario:
    return load_scenario("scenarios/baseline.toml")


@pytest.fixture(scope="session")
def baseline_params(baseline_scenario: Scenario) -> ModelParameters:
    return estimate_parameters(baseline_scenario.config)
