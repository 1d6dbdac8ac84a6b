"""The batched reduced-state engine equals the dense reference engine.

Both compile their generators from the same flow declarations, but the batched engine
carries placement as a deviation from the year's mix, sources as an affine term and
counters outside the row shift (sim/engines/stockflow.py).  Those are exact
rewritings, so every record field of every year must agree to float precision, for
every shipped scenario (the DES scenario run with the stock-flow engine), and a batch
of different runs must equal each run alone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.calibration.layer import draw
from sim.engines import stockflow, stockflow_reference
from sim.estimation.cache import cached_parameters
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import Scenario, load_scenario

SCENARIOS = sorted(Path("scenarios").glob("*.toml"))
TOLERANCE = 1e-12
FLOOR = 1e-6  # absolute floor (children) for fields that are exactly zero


def max_relative_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """Largest |a - b| / max(|a|, |b|, FLOOR) over every field of every year."""
    worst = 0.0
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert set(ra) == set(rb)
        for key in ra:
            x, y = np.asarray(ra[key], dtype=float), np.asarray(rb[key], dtype=float)
            assert x.shape == y.shape, key
            scale = np.maximum(np.maximum(np.abs(x), np.abs(y)), FLOOR)
            worst = max(worst, float((np.abs(x - y) / scale).max(initial=0.0)))
    return worst


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_batched_engine_equals_reference(path: Path) -> None:
    config = copy.deepcopy(load_scenario(path).config)  # resolved configs are immutable
    config["run"]["engine"] = "stockflow"
    params = cached_parameters(config)
    reference = stockflow_reference.project(params, config)
    batched = stockflow.project(params, config)
    assert batched["years"] == reference["years"]
    assert max_relative_difference(reference["records"], batched["records"]) <= TOLERANCE


def _draw_configs(scenario: Scenario, n: int) -> list[dict[str, Any]]:
    """``n`` configs whose trend slopes differ (normal draws around the scenario's)."""
    keys = ["entry_trend_per_year", "returned_home_trend_per_year",
            "adoption_trend_per_year", "entry_10_to_15_trend_per_year"]
    mean = np.array([scenario.config["trends"][k] for k in keys])
    samples = draw(mean, np.eye(len(keys)) * 0.02 ** 2, [(-0.5, 0.5)] * len(keys), n, 7)
    configs = []
    for row in samples:
        config = {section: dict(table) if isinstance(table, dict) else table
                  for section, table in scenario.config.items()}
        config["trends"] = {**config["trends"], **dict(zip(keys, row, strict=True))}
        configs.append(config)
    return configs


def test_a_batch_equals_each_run_alone(baseline_scenario: Scenario,
                                       baseline_params: ModelParameters) -> None:
    configs = _draw_configs(baseline_scenario, 4)
    batch = stockflow.project_batch([baseline_params] * len(configs), configs)
    for b, config in enumerate(configs):
        alone = stockflow.project(baseline_params, config)["records"]
        member = [{k: v[b] for k, v in record.items()} for record in batch["records"]]
        assert max_relative_difference(alone, member) <= TOLERANCE
        reference = stockflow_reference.project(baseline_params, config)["records"]
        assert max_relative_difference(reference, member) <= TOLERANCE
    looked_after = [r["looked_after"] for r in batch["records"]][-1]
    assert np.ptp(looked_after) > 1.0  # the draws really differ


def test_a_batch_mixes_parameter_sets(baseline_scenario: Scenario,
                                      baseline_params: ModelParameters) -> None:
    """Different parameter sets (not just configs) in one batch: each initial state is
    reduced on its own."""
    config = baseline_scenario.config
    other = ModelParameters(**{**baseline_params.__dict__,
                               "initial_state": baseline_params.initial_state * 1.1})
    batch = stockflow.project_batch([baseline_params, other], [config, config])
    for b, params in enumerate((baseline_params, other)):
        reference = stockflow_reference.project(params, config)["records"]
        member = [{k: v[b] for k, v in record.items()} for record in batch["records"]]
        assert max_relative_difference(reference, member) <= TOLERANCE


def _placements_off_the_mix(params: ModelParameters) -> ModelParameters:
    """The parameters with a tenth of the first placement's children moved to the
    second, so the initial placements no longer follow the mix."""
    state = params.initial_state.copy()
    layout = spec.LAYOUT
    care = state[:, layout.care_start:layout.home_start].reshape(
        state.shape[0], len(spec.STREAMS), -1, len(spec.CARE_STAGES))
    moved = 0.1 * care[:, :, 0]
    care[:, :, 0] -= moved
    care[:, :, 1] += moved
    return ModelParameters(**{**params.__dict__, "initial_state": state})


def test_initial_placements_off_the_mix(baseline_scenario: Scenario,
                                        baseline_params: ModelParameters) -> None:
    """The deviation is skipped while it is zero (initial placements split by the mix,
    no change of mix yet); a state whose placements differ from the mix carries it from
    the start, alone and in a batch beside runs that skip it."""
    config = baseline_scenario.config
    off = _placements_off_the_mix(baseline_params)
    reference = stockflow_reference.project(off, config)["records"]
    alone = stockflow.project(off, config)["records"]
    assert max_relative_difference(reference, alone) <= TOLERANCE
    on_mix = stockflow.project(baseline_params, config)["records"]
    # no hazard depends on placement: the same children in care, placed differently
    assert np.isclose(alone[-1]["looked_after"], on_mix[-1]["looked_after"], rtol=TOLERANCE)
    assert np.abs(alone[-1]["looked_after_by_placement"]
                  - on_mix[-1]["looked_after_by_placement"]).max() > 10.0
    batch = stockflow.project_batch([baseline_params, off], [config, config])["records"]
    for b, expected in enumerate((on_mix, alone)):
        member = [{k: v[b] for k, v in record.items()} for record in batch]
        assert max_relative_difference(expected, member) <= TOLERANCE


def test_a_large_batch_equals_each_run_alone(baseline_scenario: Scenario,
                                             baseline_params: ModelParameters) -> None:
    """A batch large enough to be cut into chunks and stepped band by band (the path
    the 1,000-draw and 152-area batches take) equals each run alone, which is stepped
    by year of age; parameter sets mixed in so runs of one chunk start differently."""
    n = stockflow.CHUNK + 3
    assert n > stockflow.BANDWISE_FROM
    configs = _draw_configs(baseline_scenario, n)
    other = ModelParameters(**{**baseline_params.__dict__,
                               "initial_state": baseline_params.initial_state * 0.9})
    params = [other if b % 3 == 0 else baseline_params for b in range(n)]
    batch = stockflow.project_batch(params, configs)
    for b in (0, 1, stockflow.CHUNK - 1, stockflow.CHUNK, n - 1):
        alone = stockflow.project(params[b], configs[b])["records"]
        member = [{k: v[b] for k, v in record.items()} for record in batch["records"]]
        assert max_relative_difference(alone, member) <= TOLERANCE


def test_threads_give_bit_identical_batches(baseline_scenario: Scenario,
                                            baseline_params: ModelParameters) -> None:
    """Chunks of a batch on several threads (the default outside tests) give exactly
    the record of one thread: each chunk's arithmetic does not depend on the thread."""
    n = 2 * stockflow.CHUNK + 5  # three chunks, the last one short
    configs = _draw_configs(baseline_scenario, n)
    one = stockflow.project_batch([baseline_params] * n, configs, threads=1)["records"]
    three = stockflow.project_batch([baseline_params] * n, configs, threads=3)["records"]
    for first, other in zip(one, three, strict=True):
        assert first.keys() == other.keys()
        for key in first:
            assert np.array_equal(first[key], other[key]), key
