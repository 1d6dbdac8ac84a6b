"""The DES's batch path (no capacity) against its event paths.

Without ``[capacity]`` no event changes anything, so the batch path draws the same
children with the same numbers and counts the flows from the episode table.  It must
agree bit for bit (records, episode tables, event counts) with the capacity path
("events", which shares the batch path's round-based draws) and, the independent check,
with the simpy reference, which draws month by month on a heap.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sim.engines import des
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import load_scenario

SMALL = ["run.population_scale=0.02", "run.replicates=2"]


def _config(*overrides: str) -> dict:
    return load_scenario("scenarios/baseline.toml", [*SMALL, *overrides]).config


def test_no_capacity_runs_on_the_batch_path_and_capacity_on_events(
        baseline_params: ModelParameters) -> None:
    free = des.compile_model(baseline_params, _config())
    limited = des.compile_model(baseline_params, _config("capacity.foster_places=30000"))
    assert des.chosen_path(free) == "batch" and des.chosen_path(limited) == "events"
    assert des.chosen_path(free, "events") == "events"
    with pytest.raises(ValueError, match="the batch path has no queues"):
        des.simulate_replicate(limited, 0, "batch")
    with pytest.raises(ValueError, match="path must be one of"):
        des.chosen_path(free, "heap")  # type: ignore[arg-type]


@pytest.mark.parametrize(("replicate", "other"), [(0, "events"), (1, "events"),
                                                   (0, "simpy"), (1, "simpy")])
def test_batch_and_event_paths_give_identical_replicates(
        baseline_params: ModelParameters, replicate: int, other: str) -> None:
    model = des.compile_model(baseline_params, _config("run.end_year=2027"))
    batch = des.simulate_replicate(model, replicate, "batch")
    events = des.simulate_replicate(model, replicate, other)  # type: ignore[arg-type]
    assert batch.extra["path"] == "batch"
    assert len(batch.records) == len(events.records) == len(model.years)
    for year, (a, b) in enumerate(zip(batch.records, events.records, strict=True)):
        assert a.keys() == b.keys()
        for name in a:
            assert np.array_equal(np.asarray(a[name]), np.asarray(b[name]),
                                  equal_nan=True), (year, name)
    for table in ("episodes", "home_spells"):
        a, b = getattr(batch, table), getattr(events, table)
        assert a.keys() == b.keys()
        for name in a:
            assert np.array_equal(a[name], b[name], equal_nan=True), (table, name)
    assert batch.heap_events == events.heap_events
    assert batch.transitions == events.transitions


def test_batch_and_event_runs_give_identical_datasets(
        baseline_params: ModelParameters) -> None:
    config = _config("run.end_year=2026")
    batch = des.run(baseline_params, config, workers=1)
    events = des.run(baseline_params, config, workers=1, path="events")
    xr.testing.assert_identical(batch, events)
