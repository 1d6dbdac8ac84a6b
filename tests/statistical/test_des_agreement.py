"""The DES mean equals the stock-flow trajectory (issue #3's agreement test).

Both engines run the baseline scenario 2022 -> 2032.  The DES runs REPLICATES
replicates of a POPULATION_SCALE sample of England (scaled back up), with the project's
default root seed (the scenario schema's ``run.seed``; not chosen by looking at
results).  For every projected year and for ``looked_after``, ``started``, ``ceased``
by each reason, ``reentered`` and the UASC stream's looked after, started and ceased
(at 18 and before; issue 8) (12 x 10 = 120 comparisons, :data:`COMPARED`) the z-score is

    z = (DES mean - stock-flow) / (DES standard deviation / sqrt(REPLICATES)).

The stock-flow value is the exact expectation, so under agreement each z is close to
N(0, 1).  Issue #3 asks for |z| < 3 in every cell; over 120 cells that rule alone
rejects an exact engine about one time in four (1 - 0.9973**120 = 0.28, less with the
positive correlation between years), so the acceptance rule controls the family-wise
error at FAMILY_ERROR = 1 %:

* every |z| below the Bonferroni bound z* = Phi^-1(1 - 0.01 / (2 x 120)) = 3.93, and
* no more cells beyond 3 than chance allows: at most the 99.9 % quantile of
  Binomial(120, P(|N(0,1)| > 3) = 0.0027), which is 3.

With the fixed seed the outcome is deterministic.  At this seed one cell lies just
beyond 3 (``started`` in 2026, z = -3.0); a second seed (7, checked by hand) has max
|z| = 2.9.
The same rule rejects the DES when one hazard is 10 % off (second test), so it is
not a rule that cannot fail.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from sim.engines import des, stockflow
from sim.engines.schema import build_dataset
from sim.model import spec
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import load_scenario

REPO = Path(__file__).resolve().parents[2]

POPULATION_SCALE = 0.02
REPLICATES = 200
FAMILY_ERROR = 0.01
CELL_LIMIT = 3.0  # the per-cell rule, used for the count of excess cells
# Variable -> the cells compared (an xarray selection; {} = every cell).  In both engines
# the non-UASC stream is the total minus the UASC stream, so only the UASC cells of the
# by-stream variables are new comparisons; UASC leave before 18 only by
# spec.UASC_EXIT_ROUTES (the other reasons are structural zeros).
COMPARED: dict[str, dict[str, list[str]]] = {
    "looked_after": {},
    "started": {},
    "ceased": {},
    "reentered": {},
    "looked_after_by_stream": {"stream": ["uasc"]},
    "started_by_stream": {"stream": ["uasc"]},
    "ceased_by_stream": {"stream": ["uasc"],
                         "reason": [*spec.UASC_EXIT_ROUTES, "turned_18"]},
}


@dataclass(frozen=True)
class Agreement:
    """z-scores of the DES mean against the stock-flow value, per variable and cell."""

    z: dict[str, np.ndarray]

    @property
    def cells(self) -> int:
        return sum(v.size for v in self.z.values())

    @property
    def largest(self) -> float:
        return max(float(np.abs(v).max()) for v in self.z.values())

    @property
    def beyond_cell_limit(self) -> int:
        return sum(int((np.abs(v) > CELL_LIMIT).sum()) for v in self.z.values())

    @property
    def bound(self) -> float:
        return float(scipy.stats.norm.isf(FAMILY_ERROR / (2 * self.cells)))

    @property
    def allowed_beyond(self) -> int:
        p = 2 * scipy.stats.norm.sf(CELL_LIMIT)
        return int(scipy.stats.binom.ppf(1 - FAMILY_ERROR / 10, self.cells, p))

    @property
    def accepted(self) -> bool:
        return self.largest < self.bound and self.beyond_cell_limit <= self.allowed_beyond

    def report(self) -> str:
        lines = [f"max |z| = {self.largest:.2f} (bound {self.bound:.2f}); "
                 f"{self.beyond_cell_limit} of {self.cells} cells beyond {CELL_LIMIT:g} "
                 f"(allowed {self.allowed_beyond})"]
        lines += [f"  {name}: {np.array2string(v, precision=1, max_line_width=200)}"
                  for name, v in self.z.items()]
        return "\n".join(lines)


def compare(ds: xr.Dataset, reference: xr.Dataset) -> Agreement:
    projected = slice(1, None)  # the base year's flows are a convention, not simulated
    z: dict[str, np.ndarray] = {}
    for name, cells in COMPARED.items():
        runs = ds[name].isel(year=projected).sel(cells)
        error = runs.std("replicate", ddof=1) / np.sqrt(runs.sizes["replicate"])
        expected = reference[name].isel(year=projected).sel(cells)
        score = (runs.mean("replicate") - expected) / error
        breakdown = [d for d in score.dims if d != "year"]
        if not breakdown:
            z[name] = score.values
            continue
        # one entry per cell, e.g. "ceased[adoption]", "ceased_by_stream[uasc,other]"
        for labels in itertools.product(*(score[d].values for d in breakdown)):
            cell = score.sel(dict(zip(breakdown, labels, strict=True)))
            z[f"{name}[{','.join(str(label) for label in labels)}]"] = cell.values
    return Agreement(z)


def _overrides(*extra: str) -> list[str]:
    return [f"run.population_scale={POPULATION_SCALE}", f"run.replicates={REPLICATES}",
            *extra]


@pytest.fixture(scope="module")
def stockflow_baseline(baseline_params: ModelParameters) -> xr.Dataset:
    config = load_scenario(REPO / "scenarios/baseline.toml").config
    result = stockflow.project(baseline_params, config)
    return build_dataset(result["years"], result["records"])


@pytest.fixture(scope="module")
def des_baseline(baseline_params: ModelParameters) -> xr.Dataset:
    scenario = load_scenario(REPO / "scenarios/baseline.toml", _overrides())
    return des.run(baseline_params, scenario.config)


def test_des_mean_agrees_with_stockflow(des_baseline: xr.Dataset,
                                        stockflow_baseline: xr.Dataset) -> None:
    agreement = compare(des_baseline, stockflow_baseline)
    assert agreement.cells == 120
    assert agreement.accepted, agreement.report()


def test_a_hazard_10_percent_off_is_rejected(baseline_params: ModelParameters,
                                             stockflow_baseline: xr.Dataset) -> None:
    """The DES with the adoption hazard x 1.1 against the unperturbed stock-flow run."""
    scenario = load_scenario(REPO / "scenarios/baseline.toml",
                             _overrides("rates.adoption_multiplier=1.1"))
    agreement = compare(des.run(baseline_params, scenario.config), stockflow_baseline)
    assert not agreement.accepted, agreement.report()
    # every year's adoption cell fails the per-cell rule (|z| < 3); beyond the
    # family bound too in most years, though not all since the forecast layer damps
    # the adoption hazard down (fewer adoptions, less power: min z 3.6 in 2027)
    assert agreement.z["ceased[adoption]"].min() > CELL_LIMIT
    assert (agreement.z["ceased[adoption]"] > agreement.bound).sum() >= 8


@pytest.mark.slow
def test_children_followed_for_family_help_keep_the_pool_hazards(
        baseline_params: ModelParameters, stockflow_baseline: xr.Dataset) -> None:
    """Half the CIN referrals followed one by one (family-help capacity on, places never
    short, no effect): every child switches hazard at the start and end of help, the
    unused clock carries over, and the mean must still be the stock-flow trajectory.
    The costliest statistical test (about 15 s of CPU): the followed children are
    served one at a time in the family-help loop."""
    scenario = load_scenario(REPO / "scenarios/baseline.toml", [
        "run.population_scale=0.005", "run.replicates=100",
        "capacity.family_help_places=10000000", "capacity.family_help_entry_effect=0.0",
        "capacity.family_help_referral_share=0.5"])
    ds = des.run(baseline_params, scenario.config)
    assert float(ds["family_help_served"].isel(year=slice(1, None)).min()) > 0
    agreement = compare(ds, stockflow_baseline)
    assert agreement.accepted, agreement.report()
