"""Fit the free parameters with ``scipy.optimize.least_squares`` and estimate their
uncertainty from the Jacobian.

The objective is a Gaussian negative log-likelihood: every target point contributes
``weight * (standardised error)**2 / 2`` and every free parameter a weak Gaussian prior
centred on "no trend" (it keeps short backtest windows well posed).  Bounds come from
``problem.FREE_PARAMETERS`` (overridable in the targets file).

Uncertainty: ``cov = (J'J)^-1 * dispersion`` at the optimum, the Gauss-Newton (Laplace)
approximation.  ``dispersion = max(1, chi2 / (n - p))`` inflates it when the model misses
the data by more than the declared standard deviations (structural misfit), which is the
honest case here.  Residuals of annual series are autocorrelated, so even this is a lower
bound on the real uncertainty (docs/calibration.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.optimize

from sim.calibration.free_parameters import CARRIED_KEYS
from sim.calibration.problem import CalibrationProblem, Record, TargetEvaluation
from sim.calibration.targets import DEFAULT_TARGETS, TargetSet, load_targets
from sim.model.parameters import Array
from sim.scenarios.loader import load_scenario

DEFAULT_SCENARIO = Path("scenarios/uncalibrated.toml")


@dataclass
class CalibrationResult:
    """Fitted values, their covariance, and every evaluated target."""

    problem: CalibrationProblem
    names: list[str]
    values: Array
    covariance: Array
    carried_keys: list[str]
    carried_values: Array
    carried_covariance: Array
    evaluations: list[TargetEvaluation]
    history_records: list[Record]
    projection_records: list[Record]
    cost: float
    dispersion: float
    evaluations_used: int
    success: bool
    message: str
    at_bound: list[str]
    wall_time_s: float  # calibrate(): set-up (estimation, targets) + fit
    fit_time_s: float  # the least-squares fit and final evaluation only

    @property
    def standard_errors(self) -> Array:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    @property
    def carried(self) -> dict[str, float]:
        return dict(zip(self.carried_keys, self.carried_values.tolist(), strict=True))

    def projected(self, variable: str, year: int) -> float:
        index = self.problem.projection_years.index(year)
        return float(np.asarray(self.projection_records[index][variable]).sum())


def covariance_from_jacobian(jacobian: Array, cost: float, n_points: int) -> tuple[Array,
                                                                                     float]:
    """Gauss-Newton covariance, inflated by the reduced chi-square when above 1."""
    p = jacobian.shape[1]
    information = jacobian.T @ jacobian
    covariance = np.linalg.pinv(information)
    dispersion = max(1.0, 2.0 * cost / max(n_points - p, 1))
    return covariance * dispersion, dispersion


def fit(problem: CalibrationProblem,
        progress: Callable[[], None] | None = None) -> CalibrationResult:
    """Run the bounded least-squares fit and collect the result; ``progress()`` is
    called after every model evaluation (the optimiser cannot say how many it needs)."""
    start = time.perf_counter()
    settings = problem.target_set.settings
    scale = np.where(problem.prior_sd > 0, problem.prior_sd, 0.01)

    def residuals(x: np.ndarray) -> np.ndarray:
        out = problem.residuals(x)
        if progress is not None:
            progress()
        return out

    solution = scipy.optimize.least_squares(
        residuals, problem.start, bounds=(problem.low, problem.high),
        x_scale=scale, diff_step=1e-3, max_nfev=settings.max_evaluations, method="trf")
    values = problem.values(solution.x)
    evaluations = problem.evaluate(values, with_projection=True)
    n_points = int(sum(len(e.years) for e in evaluations if e.target.weight > 0
                       and not e.skipped))
    covariance, dispersion = covariance_from_jacobian(np.atleast_2d(solution.jac),
                                                      float(solution.cost), n_points)
    matrix = problem.carried_matrix()
    carried = problem.carried(values)
    at_bound = [n for n, active in zip(problem.names, solution.active_mask, strict=True)
                if active != 0]
    return CalibrationResult(
        problem=problem, names=list(problem.names), values=np.asarray(solution.x),
        covariance=covariance, carried_keys=list(CARRIED_KEYS),
        carried_values=np.array([carried[k] for k in CARRIED_KEYS]),
        carried_covariance=matrix @ covariance @ matrix.T, evaluations=evaluations,
        history_records=problem.history_records(values),
        projection_records=problem.projection_records(values),
        cost=float(solution.cost), dispersion=dispersion,
        evaluations_used=int(solution.nfev), success=bool(solution.success),
        message=str(solution.message), at_bound=at_bound,
        wall_time_s=time.perf_counter() - start, fit_time_s=time.perf_counter() - start)


def calibrate(scenario_path: str | Path | None = None,
              targets: str | Path | TargetSet | None = None,
              base_year: int | None = None, data_dir: Path | None = None,
              groups: tuple[str, ...] | None = None,
              end_year: int | None = None,
              progress: Callable[[], None] | None = None) -> CalibrationResult:
    """Load the scenario and targets, build the problem (estimates) and fit it.

    ``base_year`` defaults to the scenario's; only data up to it are read.  ``groups``
    overrides the targets file's ``settings.groups`` (backtests drop "review").
    """
    start = time.perf_counter()
    scenario = load_scenario(scenario_path if scenario_path is not None
                             else DEFAULT_SCENARIO)
    target_set = targets if isinstance(targets, TargetSet) else load_targets(
        targets if targets is not None else DEFAULT_TARGETS, data_dir)
    if groups is not None:
        target_set = target_set.with_groups(groups)
    problem = CalibrationProblem(scenario, target_set, base_year=base_year,
                                 data_dir=data_dir, end_year=end_year)
    result = fit(problem, progress)
    result.wall_time_s = time.perf_counter() - start
    return result
