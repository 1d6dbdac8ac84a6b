"""Shared fixtures and the test tiers.

Tiers are the folders: ``unit``, ``verification`` (closed forms), ``properties``
(hypothesis) and ``statistical`` (DES against stock-flow).  Every test is marked with
its folder's name automatically, and statistical tests are also marked ``slow``:
``make test-fast`` runs ``-m "not slow"`` on the first three folders, ``make test`` runs
everything.  Tests that run whole calibrations, backtests or every scenario are marked
``slow`` where they are defined.

Fixtures: ``small_params`` / ``small_config`` are a hand-set model built in code
(``tests/fixtures.py``: no data files, no scenario files); ``baseline_params`` /
``baseline_scenario`` are estimated from the shipped data through
``scenarios/baseline.toml`` (found relative to this file, not the working directory),
once per test session (per xdist worker).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from sim.estimation.estimate import estimate_parameters
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[1]
TIERS = ("unit", "verification", "properties", "statistical")

# One worker process per DES run inside a test: under pytest-xdist the test processes
# already fill the machine, and a pool per test would oversubscribe it.  Tests that are
# about the worker count pass ``workers=`` explicitly.
os.environ.setdefault("CICSIM_WORKERS", "1")
# The parameter cache (sim/estimation/cache.py) of tests lives in the temp folder, not
# the user's cache; xdist workers share it (writes are atomic).
os.environ.setdefault("CICSIM_CACHE_DIR", str(Path(tempfile.gettempdir())
                                              / "cicsim-test-parameter-cache"))

# Property tests are reproducible: the same examples on every run and every machine, no
# example database shared between xdist workers.  HYPOTHESIS_PROFILE=explore draws new
# random examples (and remembers failures) when hunting for bugs.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).resolve().parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        if tier == "statistical":
            item.add_marker(pytest.mark.slow)
    # Longest first: pytest-xdist hands out the first tests round-robin, so the
    # minute-long statistical tests start at once on different workers and the short
    # ones fill in around them (otherwise two can end up queued on one worker).
    items.sort(key=lambda item: Path(str(item.fspath)).resolve().parent.name != "statistical")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def baseline_scenario() -> Scenario:
    return load_scenario(REPO / "scenarios" / "baseline.toml")


@pytest.fixture(scope="session")
def baseline_params(baseline_scenario: Scenario) -> ModelParameters:
    return estimate_parameters(baseline_scenario.config)


@pytest.fixture(scope="session")
def small_model_session() -> tuple[ModelParameters, dict[str, Any]]:
    from fixtures import small_model

    return small_model()


@pytest.fixture
def small_params(small_model_session: tuple[ModelParameters, dict[str, Any]]
                 ) -> ModelParameters:
    return small_model_session[0]


@pytest.fixture
def small_config(small_model_session: tuple[ModelParameters, dict[str, Any]]
                 ) -> dict[str, Any]:
    """A fresh copy each test: tests may edit it."""
    import copy

    return copy.deepcopy(small_model_session[1])
