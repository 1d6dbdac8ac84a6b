"""The calibration problem: free parameters, the historical fit run, and the residuals.

Design (docs/calibration.md has the full argument):

* **Levels come from data, change comes from the fit.**  Every rate *level* is
  estimated from the published data for a base year (``sim/estimation/estimate.py``) and is
  never touched by the optimiser.  The free parameters are *time-path* parameters
  (log-linear trends, a change in trend, route-specific exit trends): they describe how
  hazards moved over the decade, which is what the crude OLS slopes in ``estimate.py``
  measure badly (they ignore the model's CIN pool, re-entries, and the changing age and
  duration mix of the stock).
* **History run**: the stock-flow engine starts from ``settings.first_year`` (2012,
  the first year every series needed for estimation is published; parameters estimated
  from data up to 2012 only) and runs to the base year, with the published UASC starts
  of each year as exogenous arrivals (migration, not a care hazard), and piecewise-linear
  trends with a knot at ``settings.trend_change_year``.
* **Carry forward**: the projection from the base year uses the slopes of the latest
  regime (after the knot) as constant trends; those are the values written to
  ``scenarios/calibrated.toml``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sim.calibration.free_parameters import (
    CARRIED_KEYS,
    FREE_PARAMETERS,
    ROUTE_PARAMETERS,
    FreeParameter,
)
from sim.calibration.targets import COORDINATE_LABELS, OPTIONAL_VARIABLES, Target, TargetSet
from sim.datasets import Observed, load_observed
from sim.engines import stockflow
from sim.engines.schema import VARIABLES
from sim.errors import InputError
from sim.estimation.estimate import estimate_parameters, reentry_cdf, uasc_started
from sim.model.parameters import Array, ModelParameters
from sim.scenarios.loader import Scenario, load_scenario
from sim.scenarios.schema import LAST_END_YEAR, SECTIONS

Record = dict[str, Any]


def apply_settings(config: dict[str, Any], settings: dict[str, int]) -> None:
    """Put dotted scenario keys (e.g. ``trends.continue_until``) into a config, in place."""
    for key, value in settings.items():
        section, name = key.split(".")
        config[section][name] = value


def apply_carried(params: ModelParameters, config: dict[str, Any],
                  carried: dict[str, float]) -> ModelParameters:
    """Put carried-forward trend values into a config (in place) and the parameters.

    Equivalent to writing them in a scenario file and re-estimating: estimation copies
    ``trends.entry/exit_trend_per_year`` into the parameters and uses no trend at the
    base year itself.
    """
    for key, value in carried.items():
        section, name = key.split(".")
        config[section][name] = value
    return replace(params, entry_trend_per_year=carried["trends.entry_trend_per_year"],
                   exit_trend_per_year=carried["trends.exit_trend_per_year"])


@dataclass
class TargetEvaluation:
    """One target's model and observed values (per year for history targets)."""

    target: Target
    years: list[int] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)
    model: list[float] = field(default_factory=list)
    skipped: str = ""  # reason, when the target could not be evaluated

    def residuals(self) -> Array:
        """Scaled residuals: sqrt(weight) * (standardised error) per point."""
        if self.skipped or not self.years:
            return np.zeros(0)
        target = self.target
        model = np.asarray(self.model, dtype=float)
        observed = np.asarray(self.observed, dtype=float)
        if target.loss == "lognormal":
            assert target.sd_relative is not None
            error = np.log(np.maximum(model, 1e-9) / observed) / target.sd_relative
        elif target.sd_relative is not None:
            error = (model - observed) / (target.sd_relative * np.abs(observed))
        else:
            assert target.sd is not None
            error = (model - observed) / target.sd
        return np.sqrt(target.weight) * error

    def mape(self) -> float:
        """Mean absolute percentage error over the evaluated points (nan if none)."""
        if self.skipped or not self.years:
            return float("nan")
        model, observed = np.asarray(self.model), np.asarray(self.observed)
        return float(np.mean(np.abs(model / observed - 1.0)) * 100.0)


def observed_value(obs: Observed, alternatives: tuple[tuple[str, ...], ...],
                   year: int) -> float | None:
    """The first alternative whose measures are all published for ``year``, summed."""
    for measures in alternatives:
        values = [obs.get(m, year) for m in measures]
        if all(v is not None for v in values):
            return float(sum(v for v in values if v is not None))
    return None


def add_post_processed(records: list[Record], years: list[int], params: ModelParameters,
                       config: dict[str, Any]) -> None:
    """Add variables computed after a run (``cost_gbp`` by sim.model.costs) to the
    records, in place, when that post-processing exists; otherwise leave them out so
    the targets that need them are skipped."""
    try:
        from sim.results.costs import add_costs
    except ImportError:
        return
    from sim.engines.schema import build_dataset

    dataset = add_costs(build_dataset(years, records), params, config)
    if "cost_gbp" not in dataset:
        return
    cost = dataset["cost_gbp"]
    totals = cost.sum([d for d in cost.dims if d != "year"]).values
    for record, total in zip(records, totals, strict=True):
        record["cost_gbp"] = np.asarray(float(total))


def model_value(record: Record, target: Target) -> float | None:
    """The target's variable from one year's record (None if the engine lacks it)."""
    if target.model not in record:
        return None
    values = np.asarray(record[target.model], dtype=float)
    if target.select is None:
        return float(values.sum())
    if values.ndim == 0 or target.model not in VARIABLES:
        return float(values.sum())
    dimension = VARIABLES[target.model][0][0]
    return float(values[COORDINATE_LABELS[dimension].index(target.select)])


class CalibrationProblem:
    """Everything the optimiser needs, built once: estimates, configs, observed data.

    Reads data only through ``load_observed(base_year, data_dir)`` and
    ``estimate_parameters(..., data_dir=data_dir)``, so nothing after the base year is
    read (tests/unit/test_backtest_cutoff.py checks it).
    """

    def __init__(self, scenario: Scenario, target_set: TargetSet,
                 base_year: int | None = None, data_dir: Path | None = None,
                 end_year: int | None = None) -> None:
        settings = target_set.settings
        self.target_set = target_set
        self.scenario = scenario
        self.data_dir = data_dir
        self.base_year = base_year if base_year is not None else scenario.config["run"][
            "base_year"]
        self.first_year = settings.first_year
        if self.base_year <= self.first_year:
            raise InputError(f"{target_set.path}: key 'settings.first_year' = "
                             f"{self.first_year} must be before the base year "
                             f"{self.base_year}")
        self.change_year = (settings.trend_change_year
                            if settings.knot_years_before_base is None
                            else self.base_year - settings.knot_years_before_base)
        self.observed = load_observed(self.base_year, data_dir)
        self.history_years = list(range(self.first_year, self.base_year + 1))

        history = copy.deepcopy(scenario.config)
        history["run"].update(base_year=self.first_year, end_year=self.base_year)
        history["initial"]["looked_after_vintage"] = settings.history_vintage
        # Published UASC starts as exogenous arrivals (before 2019: the named
        # assumption in estimate.uasc_started, a share of the 31 March UASC stock).
        history["uasc"]["arrivals_by_year"] = {
            **history["uasc"]["arrivals_by_year"],
            **{str(y): uasc_started(self.observed, y) for y in self.history_years[1:]}}
        history["trends"]["trend_change_year"] = self.change_year
        history["trends"]["continue_until"] = LAST_END_YEAR
        # The history run is the piecewise-linear fit itself, whatever trend treatment
        # the scenario carries forward (a scenario extending the forecast layer is
        # damped and bounded; its history must not be).
        history["trends"].update(method="linear", floor=0.0,
                                 ceiling=SECTIONS["trends"]["ceiling"].default)
        self.history_config = history
        self.history_params = estimate_parameters(history, data_dir=data_dir)

        projection = copy.deepcopy(scenario.config)
        end = end_year if end_year is not None else max(settings.projection_end_year,
                                                        self.base_year + 1)
        projection["run"].update(base_year=self.base_year, end_year=end)
        self.uncalibrated_config = copy.deepcopy(projection)
        # Scenario keys written to the layer besides the fitted trends.
        self.layer_settings: dict[str, int] = {}
        if settings.trend_years_after_base is not None:
            self.layer_settings["trends.continue_until"] = min(
                self.base_year + settings.trend_years_after_base, LAST_END_YEAR)
        apply_settings(projection, self.layer_settings)
        self.projection_config = projection
        self.projection_params = estimate_parameters(projection, data_dir=data_dir)
        self.projection_years = list(range(self.base_year, end + 1))

        self.names = [name for name, p in FREE_PARAMETERS.items()
                      if self._is_free(name, p, target_set)]
        self.fixed = {name: self._override(name, "start", p.start)
                      for name, p in FREE_PARAMETERS.items() if name not in self.names}
        self.low = np.array([self._override(n, "low", FREE_PARAMETERS[n].low)
                             for n in self.names])
        self.high = np.array([self._override(n, "high", FREE_PARAMETERS[n].high)
                              for n in self.names])
        self.prior_sd = np.array([self._override(n, "prior_sd", FREE_PARAMETERS[n].prior_sd)
                                  for n in self.names])
        self.start = np.clip([self._override(n, "start", FREE_PARAMETERS[n].start)
                              for n in self.names], self.low, self.high)
        if np.any(self.low >= self.high):
            raise InputError(f"{target_set.path}: key 'parameters': every low must be "
                             "below its high")

        self.targets = target_set.active()
        self.objective_evaluations = 0  # residual-vector evaluations (incl. Jacobian)
        self._wants_costs = any(t.model in OPTIONAL_VARIABLES and t.kind != "history"
                                for t in self.targets)
        self.skipped: dict[str, str] = {}
        self.reforms: dict[str, tuple[dict[str, Any], ModelParameters]] = {}
        self._prepare_targets()

    # --- set-up ---------------------------------------------------------------------
    def _override(self, name: str, key: str, default: float) -> float:
        override = self.target_set.parameters.get(name)
        value = getattr(override, key) if override is not None else None
        return default if value is None else float(value)

    def _is_free(self, name: str, parameter: FreeParameter, target_set: TargetSet) -> bool:
        override = target_set.parameters.get(name)
        if override is not None and override.free is not None and not override.free:
            return False
        if parameter.needs_change:
            # identifiable only with history on both sides of the knot
            return self.first_year < self.change_year < self.base_year
        return True

    def _prepare_targets(self) -> None:
        self._history_points: dict[str, tuple[list[int], list[float]]] = {}
        for target in self.targets:
            if target.kind == "history":
                first, last = target.years or (self.first_year + 1, self.base_year)
                years, values = [], []
                for year in range(max(first, self.first_year + 1),
                                  min(last, self.base_year) + 1):
                    value = observed_value(self.observed, target.observed, year)
                    if value is not None:
                        years.append(year)
                        values.append(value)
                if not years:
                    self.skipped[target.name] = "no published values in the fit window"
                self._history_points[target.name] = (years, values)
            elif target.kind in ("projection", "reform"):
                assert target.year is not None
                if target.year not in self.projection_years:
                    self.skipped[target.name] = (
                        f"year {target.year} outside the projection "
                        f"{self.projection_years[0]}-{self.projection_years[-1]}")
        if any(t.kind in ("projection", "reform") for t in self.targets):
            record = self.projection_records(self.values(self.start))[-1]
            for target in self.targets:
                if (target.kind in ("projection", "reform") and target.name not in
                        self.skipped and model_value(record, target) is None):
                    self.skipped[target.name] = (f"the engine does not produce "
                                                 f"'{target.model}' yet")
        for target in self.targets:
            if target.kind != "reform" or target.name in self.skipped:
                continue
            assert target.scenario is not None
            if not target.scenario.exists():
                self.skipped[target.name] = (f"reform scenario {target.scenario.name} "
                                             "not found (levers not built yet)")
                continue
            reform = load_scenario(target.scenario)
            if not reform.config.get("levers"):
                self.skipped[target.name] = (f"{target.scenario.name} configures no "
                                             "levers")
                continue
            config = copy.deepcopy(reform.config)
            apply_settings(config, self.layer_settings)
            config["run"].update(base_year=self.base_year,
                                 end_year=self.projection_years[-1])
            self.reforms[target.name] = (config, estimate_parameters(
                config, data_dir=self.data_dir))

    # --- parameter vectors ------------------------------------------------------------
    def values(self, theta: Array) -> dict[str, float]:
        """Every free-parameter name -> value (fixed ones at their start)."""
        return {**self.fixed, **{n: float(v) for n, v in zip(self.names, theta,
                                                              strict=True)}}

    def carried(self, values: dict[str, float]) -> dict[str, float]:
        """Scenario keys of the projection from the base year (the latest regime)."""
        change_applies = self.change_year < self.base_year
        out = {}
        for key, weights in CARRIED_KEYS.items():
            out[key] = sum(w * values[n] for n, w in weights.items()
                           if change_applies or not n.endswith("_change"))
        return out

    def carried_matrix(self) -> Array:
        """d(carried keys) / d(free parameters), shape (keys, free)."""
        change_applies = self.change_year < self.base_year
        matrix = np.zeros((len(CARRIED_KEYS), len(self.names)))
        for i, weights in enumerate(CARRIED_KEYS.values()):
            for name, weight in weights.items():
                if name in self.names and (change_applies or not name.endswith("_change")):
                    matrix[i, self.names.index(name)] = weight
        return matrix

    # --- model runs -----------------------------------------------------------------
    def history_records(self, values: dict[str, float]) -> list[Record]:
        """Fitted history: one record per year, first_year (initial state) to base."""
        trends = self.history_config["trends"]
        trends["entry_trend_change_per_year"] = values["entry_trend_change"]
        trends["exit_trend_change_per_year"] = values["exit_trend_change"]
        for name, key in ROUTE_PARAMETERS.items():
            trends[key] = values[name]
        params = replace(self.history_params, entry_trend_per_year=values["entry_trend"],
                         exit_trend_per_year=values["exit_trend"])
        return list(stockflow.project(params, self.history_config)["records"])

    def projection_records(self, values: dict[str, float],
                           reform: str | None = None) -> list[Record]:
        """Do-nothing (or a reform scenario's) projection from the base year."""
        if reform is None:
            config, params = self.projection_config, self.projection_params
        else:
            config, params = self.reforms[reform]
        params = apply_carried(params, config, self.carried(values))
        records = list(stockflow.project(params, config)["records"])
        if self._wants_costs:
            add_post_processed(records, self.projection_years, params, config)
        return records

    def uncalibrated_records(self) -> list[Record]:
        """Projection with estimate.py's own trends (the benchmark for calibration)."""
        return list(stockflow.project(self.projection_params,
                                      self.uncalibrated_config)["records"])

    # --- objective ------------------------------------------------------------------
    def needs_projection(self) -> bool:
        return any(t.kind in ("projection", "reform") and t.name not in self.skipped
                   and t.weight > 0 for t in self.targets)

    def evaluate(self, values: dict[str, float], with_projection: bool | None = None
                 ) -> list[TargetEvaluation]:
        """Model vs observed for every active target."""
        history = dict(zip(self.history_years, self.history_records(values), strict=True))
        project = self.needs_projection() if with_projection is None else with_projection
        projection: dict[int, Record] = {}
        if project:
            projection = dict(zip(self.projection_years, self.projection_records(values),
                                  strict=True))
        out = []
        for target in self.targets:
            evaluation = TargetEvaluation(target, skipped=self.skipped.get(target.name, ""))
            out.append(evaluation)
            if evaluation.skipped:
                continue
            if target.kind == "history":
                years, observed = self._history_points[target.name]
                evaluation.years, evaluation.observed = list(years), list(observed)
                evaluation.model = [model_value(history[y], target) or 0.0 for y in years]
            elif target.kind == "reentry":
                assert target.within_years is not None and target.value is not None
                rates = (self.projection_params.reentry_rate_per_year
                         * self.projection_config["rates"]["reentry_multiplier"])
                evaluation.years = [self.base_year]
                evaluation.observed = [target.value]
                evaluation.model = [float(reentry_cdf(rates, np.array(
                    [target.within_years]))[0])]
            elif project:
                assert target.year is not None and target.value is not None
                value = model_value(projection[target.year], target) or 0.0
                if target.kind == "reform":
                    reform = self.projection_records(values, reform=target.name)
                    value -= model_value(reform[self.projection_years.index(target.year)],
                                         target) or 0.0
                evaluation.years, evaluation.observed = [target.year], [target.value]
                evaluation.model = [value]
        return out

    def residuals(self, theta: Array) -> Array:
        """Scaled residual vector for scipy.optimize.least_squares (targets + priors)."""
        self.objective_evaluations += 1
        values = self.values(theta)
        parts = [e.residuals() for e in self.evaluate(values)]
        with np.errstate(divide="ignore"):
            prior = np.where(self.prior_sd > 0, np.asarray(theta) / np.where(
                self.prior_sd > 0, self.prior_sd, 1.0), 0.0)
        parts.append(prior[self.prior_sd > 0])
        return np.concatenate(parts)
