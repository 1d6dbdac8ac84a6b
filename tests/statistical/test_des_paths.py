"""The DES path sampler against the stock-flow propagator, for one cohort at a time.

A point mass of children in one cell is advanced two years by the stock-flow engine
(exact expectations) and, independently, 400,000 children from the same cell are drawn
by :func:`sim.engines.des.sample_paths`.  The share of children in each state at month
24, and the share leaving by each route, must agree within sampling error.  This
checks the compiled cumulative hazards, the inversion, the route choice, age-band and
1 April rate changes and the 18th birthday directly, without the noise of a whole
projection.  Re-entry is switched off so that a child's first episode is all there is.

Tolerance: each share p is tested with z = (p_des - p) / sqrt(p (1 - p) / n);
|z| < 4 for every one of the ~16 shares per cohort (a false alarm has probability
about 1e-3 for the whole test; the seed is fixed, so the test is deterministic).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim.engines import des, stockflow
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[2]

CHILDREN = 400_000
MONTHS = 24
Z_LIMIT = 4.0
L = spec.LAYOUT


@pytest.fixture(scope="module")
def no_reentry(baseline_scenario: Scenario) -> Scenario:
    return load_scenario(REPO / "scenarios/baseline.toml", ["rates.reentry_multiplier=0"])


def _reference(model: des.CompiledModel, row: int, stage: int) -> dict[str, np.ndarray]:
    """Stock-flow shares after MONTHS for a unit mass in (non-UASC, foster, stage)."""
    x = np.zeros((spec.MAX_AGE_MONTHS, L.size))
    x[row, L.care(0, 0, stage)] = 1.0
    ceased = np.zeros(len(spec.EXIT_ROUTES))
    turned_18 = 0.0
    for rates in model.rates[: MONTHS // spec.MONTHS_PER_YEAR]:
        silent = replace(rates, population_by_age_month=np.zeros(spec.MAX_AGE_MONTHS),
                         uasc_arrivals_by_age_month=np.zeros(spec.MAX_AGE_MONTHS))
        tally = stockflow.advance_year(x, silent)
        for r, route in enumerate(spec.EXIT_ROUTES):
            ceased[r] += tally.counters_by_band[:, spec.COUNTERS.index(f"ceased_{route}")].sum()
        turned_18 += tally.turned_18_by_stream.sum()
    return {"care_stage": stockflow.care_stock(x).sum(axis=(0, 1, 2)),
            "home_stage": x[:, L.home_start:L.counter_start].sum(axis=0),
            "ceased": ceased, "turned_18": np.array([turned_18])}


def _sampled(model: des.CompiledModel, row: int, stage: int, seed: int,
             ) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    n = CHILDREN
    births = np.full(n, -row)
    groups = np.zeros(n, dtype=np.int64)
    limit = np.minimum(births + spec.MAX_AGE_MONTHS, model.n_months).astype(float)
    u = generator.random((n, 2 * len(spec.CARE_STAGES)))
    care = des.sample_paths(model.care, groups, births, np.zeros(n),
                            np.full(n, stage), limit, -np.log(u[:, :5]), u[:, 5:])
    moment = float(MONTHS)
    in_care = care.end_time > moment
    stage_now = np.where(care.stage_start <= moment, np.arange(5), -1).max(axis=1)
    ended = (care.end_choice >= 1) & (care.end_time <= moment)
    ceased = np.array([(ended & (care.end_choice == r + 1)).mean()
                       for r in range(len(spec.EXIT_ROUTES))])
    turned_18 = ((care.end_choice < 0) & (limit <= moment)).mean()
    home = np.flatnonzero(ended & (care.end_choice == 1))
    v = generator.random((home.size, 2 * len(spec.HOME_STAGES)))
    spells = des.sample_paths(model.home, groups[home], births[home], care.end_time[home],
                              np.zeros(home.size, dtype=np.int64), limit[home],
                              -np.log(v[:, :5]), v[:, 5:])
    at_home = spells.end_time > moment
    home_stage = np.where(spells.stage_start[at_home] <= moment, np.arange(5),
                          -1).max(axis=1)
    return {"care_stage": np.bincount(stage_now[in_care], minlength=5) / n,
            "home_stage": np.bincount(home_stage, minlength=5) / n,
            "ceased": ceased, "turned_18": np.array([turned_18])}


@pytest.mark.parametrize(("row", "stage", "seed"), [
    (6, 0, 1),     # a baby: moves from under_1 to 1_to_4 in month 6
    (118, 2, 2),   # nearly 10, starting in the third stage
    (200, 0, 3),   # 16 years 8 months: leaves care at 18 in month 16
])
def test_sampled_paths_match_stockflow_shares(no_reentry: Scenario,
                                              baseline_params: ModelParameters,
                                              row: int, stage: int, seed: int) -> None:
    model = des.compile_model(baseline_params, no_reentry.config)
    expected = _reference(model, row, stage)
    observed = _sampled(model, row, stage, seed)
    for name, p in expected.items():
        q = observed[name]
        se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / CHILDREN)
        z = (q - p) / se
        assert np.all(np.abs(z) < Z_LIMIT), (
            f"{name}: DES {np.round(q, 5)} vs stock-flow {np.round(p, 5)} (z {np.round(z, 1)})")
        # shares that are exactly zero in stock-flow must be zero in the DES too
        assert np.all(q[p == 0] == 0), name
