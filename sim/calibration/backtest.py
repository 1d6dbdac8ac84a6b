"""Rolling-origin backtests: how wrong has a projection made with this model been?

For each origin year, the whole pipeline is re-run as if it were that year: parameters
re-estimated and trends re-calibrated from data up to the origin only
(``load_observed(origin)``), then projected under every trend treatment and scored
against what DfE published later.  Naive benchmarks are computed in the same run from
the same data: *no change* (the origin's value), a *linear trend* over the last five
years, and a *random walk with drift* (the mean annual change over the last ten years).

Why this shape: a fit to history says little about forecast skill, and the choice of
trend treatment moves the 2032 figure by more than any policy.  So the treatment is
chosen here, out of sample, by one stated rule (:func:`choose_default`), and the errors
made at each horizon become the projection's prediction intervals (:mod:`sim.results.
bands`).  The review's targets are never used (they were published in 2022).  UASC
arrivals follow the scenario's own default path from the origin's data.

Every point is a row of ``skill.csv`` (method, variable, horizon, origin, error_pct);
the pooled tables in ``skill.md`` are derived from it (:mod:`sim.calibration.
skill_report` writes them, the charts and the forecast layer).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.calibration.fit import CalibrationResult, calibrate
from sim.calibration.problem import apply_carried, model_value, observed_value
from sim.calibration.targets import Target, TargetSet, load_targets
from sim.datasets import Observed, load_observed
from sim.engines import stockflow
from sim.errors import InputError
from sim.estimation.recent import recent_slopes
from sim.model import spec
from sim.model.rates import ROUTE_TREND_KEYS
from sim.model.spec import AGE_BAND_NAMES, ENTRY_BAND_TREND_KEYS
from sim.scenarios.schema import FIRST_BASE_YEAR, LAST_DATA_YEAR

# Trend treatments scored for the model.  Each is: where the slopes come from
# ("calibrated": the history fit's latest regime; "recent": log-linear slopes of the
# published rates over the last RECENT_WINDOW years, sim.estimation.recent.recent_slopes), which
# exit routes keep their slope (the others are held at the base year's level), and
# the scenario [trends] keys that carry the slopes forward.  Floors/ceilings
# (ASSUMPTION: no trend more than halves or doubles a hazard) go with every treatment
# but "linear", kept exactly as the old behaviour.
BOUNDS = {"floor": 0.5, "ceiling": 2.0}
RECENT_WINDOW = 3
ALL_ROUTES: tuple[str, ...] = spec.EXIT_ROUTES
# The two routes whose published counts fell in every year 2016-2021 (returned home,
# adoption); SGO/CAO and other exits moved without a sustained direction.
DECLINING_ROUTES: tuple[str, ...] = ("returned_home", "adoption")
assert set(DECLINING_ROUTES) <= set(ALL_ROUTES), "DECLINING_ROUTES names an unknown route"


@dataclass(frozen=True)
class Treatment:
    """How slopes are made and carried forward from an origin."""

    slopes: str  # "calibrated" | "recent"
    trends: dict[str, Any]  # [trends] keys: method, dampings, bounds
    routes: tuple[str, ...] = ALL_ROUTES  # exit routes that keep their slope
    entry_by_age: bool = False  # recent entry slopes by age band, not one for all


GRID: tuple[float, ...] = (0.5, 0.7, 0.9, 1.0)
TREATMENTS: dict[str, Treatment] = {
    "linear": Treatment("calibrated", {"method": "linear"}),
    "hold": Treatment("calibrated", {"method": "hold", **BOUNDS}),
    "stop_after_1": Treatment("calibrated", {"method": "stop_after",
                                             "stop_after_years": 1, **BOUNDS}),
}
for _entry in GRID:
    for _exit in GRID:
        _damped = {"method": "damped", "entry_damping": _entry, "exit_damping": _exit,
                   **BOUNDS}
        TREATMENTS[f"calibrated_damped_{_entry:g}_{_exit:g}"] = Treatment("calibrated",
                                                                          _damped)
        TREATMENTS[f"recent_damped_{_entry:g}_{_exit:g}"] = Treatment("recent", _damped)
        TREATMENTS[f"recent_declining_damped_{_entry:g}_{_exit:g}"] = Treatment(
            "recent", _damped, DECLINING_ROUTES)
        TREATMENTS[f"recent_declining_byage_damped_{_entry:g}_{_exit:g}"] = Treatment(
            "recent", _damped, DECLINING_ROUTES, entry_by_age=True)
BENCHMARKS: tuple[str, ...] = ("no_change", "linear_trend_5y", "random_walk_drift")
METHODS: tuple[str, ...] = (*TREATMENTS, *BENCHMARKS)
# The variables that choose the default treatment (equal weight) and must beat the
# benchmarks: the stock and both flows that drive it.
HEADLINE: tuple[str, ...] = ("stock", "starts", "ceased")
BAND_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)
# Treatments always shown in the wide tables besides the default and the benchmarks.
SHOWN: tuple[str, ...] = ("linear", "hold", "calibrated_damped_0.7_0.7",
                          "recent_damped_0.9_1", "recent_declining_damped_0.7_1")
TREND_WINDOW_YEARS = 5  # linear-trend benchmark: OLS over the origin and 4 years before
DRIFT_WINDOW_YEARS = 10  # random walk with drift: mean change over the last 10 years

Row = dict[str, Any]


@dataclass
class OriginResult:
    """Every method's projection from one origin, and the published values."""

    origin: int
    horizon: int
    calibration: CalibrationResult
    observed: dict[str, dict[int, float]]  # variable -> year -> published (latest)
    projected: dict[str, dict[str, dict[int, float]]]  # method -> variable -> year -> value
    carried: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[Row]:
        out = []
        for method, by_variable in self.projected.items():
            for variable, values in by_variable.items():
                for year, value in sorted(values.items()):
                    observed = self.observed[variable].get(year)
                    if observed is None or year <= self.origin or not observed:
                        continue
                    out.append({"method": method, "variable": variable,
                                "horizon": year - self.origin, "origin": self.origin,
                                "year": year, "observed": observed, "projected": value,
                                "error_pct": (value / observed - 1.0) * 100.0})
        return out


def scored_targets(target_set: TargetSet) -> list[Target]:
    """The variables scored: every history target of the targets file (stock, starts,
    ceased, ceased by reason, stock and starts by age group, UASC stock)."""
    return [t for t in target_set.targets if t.kind == "history"]


def _series(obs: Observed, target: Target, years: Sequence[int]) -> dict[int, float]:
    out = {}
    for year in years:
        value = observed_value(obs, target.observed, year)
        if value is not None:
            out[year] = value
    return out


def benchmark_projections(history: dict[int, float], origin: int, horizon: int
                          ) -> dict[str, dict[int, float]]:
    """The naive benchmarks from a published series known up to ``origin``."""
    years = [y for y in sorted(history) if y <= origin]
    if origin not in history:
        return {name: {} for name in BENCHMARKS}
    last = history[origin]
    ahead = range(origin + 1, origin + horizon + 1)
    out: dict[str, dict[int, float]] = {"no_change": {y: last for y in ahead}}
    window = [y for y in years if y > origin - TREND_WINDOW_YEARS]
    if len(window) >= 2:
        slope, intercept = np.polyfit(window, [history[y] for y in window], 1)
        out["linear_trend_5y"] = {y: float(intercept + slope * y) for y in ahead}
    else:
        out["linear_trend_5y"] = {}
    drift_years = [y for y in years if y >= origin - DRIFT_WINDOW_YEARS]
    if len(drift_years) >= 2:
        drift = (last - history[drift_years[0]]) / (origin - drift_years[0])
        out["random_walk_drift"] = {y: last + drift * (y - origin) for y in ahead}
    else:
        out["random_walk_drift"] = {}
    return out


def recent_trend_keys(observed: Observed, base_year: int, treatment: Treatment
                      ) -> dict[str, float]:
    """[trends] slope keys from the recent published rates (routes not in
    ``treatment.routes`` held at their base-year level)."""
    slopes = recent_slopes(observed, base_year, RECENT_WINDOW)
    keys = dict(zip(ALL_ROUTES, ROUTE_TREND_KEYS, strict=True))
    return {"trends.entry_trend_per_year": 0.0 if treatment.entry_by_age
            else slopes["entry"],
            **{f"trends.{key}": slopes[f"entry_{band}"] if treatment.entry_by_age else 0.0
               for key, band in zip(ENTRY_BAND_TREND_KEYS, AGE_BAND_NAMES, strict=True)},
            "trends.exit_trend_per_year": 0.0,
            **{f"trends.{keys[route]}": (slopes[route] if route in treatment.routes
                                         else 0.0) for route in ALL_ROUTES}}


def treatment_slopes(result: CalibrationResult, treatment: Treatment) -> dict[str, float]:
    """The [trends] slope keys a treatment carries forward from the origin."""
    if treatment.slopes == "calibrated":
        return dict(result.carried)
    return recent_trend_keys(result.problem.observed, result.problem.base_year,
                             treatment)


def treatment_records(result: CalibrationResult, treatment: Treatment,
                      end_year: int) -> dict[int, dict[str, Any]]:
    """The projection from the origin under one trend treatment."""
    problem = result.problem
    config = copy.deepcopy(problem.projection_config)
    config["run"]["end_year"] = end_year
    config["trends"].update(treatment.trends)
    params = apply_carried(problem.projection_params, config,
                           treatment_slopes(result, treatment))
    run = stockflow.project(params, config)
    return dict(zip(run["years"], run["records"], strict=True))


def run_origin(origin: int, horizon: int, target_set: TargetSet,
               scenario_path: str | Path | None = None, data_dir: Path | None = None,
               methods: Sequence[str] = METHODS) -> OriginResult:
    """Calibrate on data up to ``origin``, project ``horizon`` years by every method."""
    if not FIRST_BASE_YEAR < origin < LAST_DATA_YEAR:
        raise InputError(f"backtest: origin {origin} must lie in {FIRST_BASE_YEAR + 1}-"
                         f"{LAST_DATA_YEAR - 1} (there must be published data after it)")
    groups = tuple(g for g in target_set.settings.groups if g != "review")
    end_year = origin + horizon
    result = calibrate(scenario_path, target_set, base_year=origin, data_dir=data_dir,
                       groups=groups, end_year=end_year)
    known = result.problem.observed  # data up to the origin only
    targets = scored_targets(target_set)
    projected: dict[str, dict[str, dict[int, float]]] = {}
    for method in methods:
        if method in TREATMENTS:
            records = treatment_records(result, TREATMENTS[method], end_year)
            projected[method] = {
                t.name: {y: v for y, r in records.items() if y > origin
                         and (v := model_value(r, t)) is not None} for t in targets}
    history_years = range(FIRST_BASE_YEAR - DRIFT_WINDOW_YEARS, origin + 1)
    for target in targets:
        history = _series(known, target, history_years)
        for name, values in benchmark_projections(history, origin, horizon).items():
            if name in methods:
                projected.setdefault(name, {})[target.name] = values
    # Scoring reads the later data; nothing above this line did.
    later = load_observed(LAST_DATA_YEAR, data_dir)
    observed = {t.name: _series(later, t, range(origin, end_year + 1)) for t in targets}
    return OriginResult(origin, horizon, result, observed, projected, result.carried)


def run_backtests(origins: Sequence[int], horizon: int = 3,
                  targets: str | Path | TargetSet | None = None,
                  scenario_path: str | Path | None = None, data_dir: Path | None = None,
                  methods: Sequence[str] = METHODS,
                  progress: Any = None) -> list[OriginResult]:
    if horizon < 1:
        raise InputError(f"backtest: --horizon {horizon} must be at least 1")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"backtest: unknown method '{unknown[0]}'; valid: "
                         f"{', '.join(METHODS)}")
    for origin in origins:
        if not FIRST_BASE_YEAR < origin < LAST_DATA_YEAR:
            raise InputError(f"backtest: origin {origin} must lie in "
                             f"{FIRST_BASE_YEAR + 1}-{LAST_DATA_YEAR - 1} (there must be "
                             "published data after it)")
    target_set = targets if isinstance(targets, TargetSet) else load_targets(targets,
                                                                             data_dir)
    out = []
    for origin in origins:
        out.append(run_origin(origin, horizon, target_set, scenario_path, data_dir,
                              methods))
        if progress is not None:
            progress(out[-1])
    return out


# --- summaries derived from the rows ---------------------------------------------------
def all_rows(results: Sequence[OriginResult]) -> list[Row]:
    return [row for r in results for row in r.rows()]


def _select(rows: Sequence[Row], **where: Any) -> list[Row]:
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def mape(rows: Sequence[Row]) -> float:
    return float(np.mean([abs(r["error_pct"]) for r in rows])) if rows else float("nan")


def bias(rows: Sequence[Row]) -> float:
    return float(np.mean([r["error_pct"] for r in rows])) if rows else float("nan")


def pooled_mape(rows: Sequence[Row], method: str, variable: str,
                horizons: Sequence[int] | None = None) -> float:
    chosen = [r for r in _select(rows, method=method, variable=variable)
              if horizons is None or r["horizon"] in horizons]
    return mape(chosen)


def choose_default(rows: Sequence[Row], horizons: Sequence[int] = (1, 2, 3)) -> str:
    """The rule: the model treatment with the lowest mean of its pooled MAPEs on stock,
    starts and ceased (origins and horizons pooled, each variable weighted equally)."""
    scores = {m: float(np.mean([pooled_mape(rows, m, v, horizons) for v in HEADLINE]))
              for m in TREATMENTS if _select(rows, method=m)}
    return min(scores, key=scores.__getitem__)


def nested_selection(rows: Sequence[Row], horizons: Sequence[int]
                     ) -> list[tuple[int, str, dict[str, float]]]:
    """An honest check on choosing the treatment from these same backtests: for each
    origin, choose by the rule using only the points already published at that
    origin (scored years <= origin), then score the choice from that origin.  The
    gap between this and the pooled skill of the chosen default is the optimism of
    picking from a menu."""
    out = []
    for origin in sorted({r["origin"] for r in rows}):
        known = [r for r in rows if r["year"] <= origin]
        if not any(r["method"] in TREATMENTS for r in known):
            continue
        chosen = choose_default(known, [h for h in horizons
                                        if any(r["horizon"] == h for r in known)])
        scores = {v: mape([r for r in _select(rows, method=chosen, variable=v,
                                              origin=origin) if r["horizon"] in horizons])
                  for v in HEADLINE}
        out.append((origin, chosen, scores))
    return out


def log_errors(rows: Sequence[Row]) -> list[float]:
    """log(observed / projected): the multiplicative error a band must cover."""
    return [math.log(r["observed"] / r["projected"]) for r in rows if r["projected"] > 0]


def rms(values: Sequence[float]) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else float("nan")


def error_scale(rows: Sequence[Row], method: str, variable: str, horizons: Sequence[int],
                leave_out: int | None = None) -> list[float]:
    """Root-mean-square log error at each horizon (bias included), optionally leaving
    one origin out (for honest coverage: a band is never scored on its own errors)."""
    out = []
    for h in horizons:
        chosen = [r for r in _select(rows, method=method, variable=variable, horizon=h)
                  if r["origin"] != leave_out]
        out.append(rms(log_errors(chosen)))
    return out


def z_value(level: float) -> float:
    """Two-sided normal quantile for a central interval of probability ``level``."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2.0))


def coverage(rows: Sequence[Row], method: str, variables: Sequence[str],
             horizons: Sequence[int], level: float) -> tuple[float, int]:
    """Share of backtest points inside the ``level`` band built, leave-one-origin-out,
    from the other origins' errors at the same horizon (pooled over ``variables``)."""
    z = z_value(level)
    inside, total = 0, 0
    for variable in variables:
        for row in _select(rows, method=method, variable=variable):
            if row["horizon"] not in horizons or row["projected"] <= 0:
                continue
            scale = error_scale(rows, method, variable, [row["horizon"]],
                                leave_out=row["origin"])[0]
            if not np.isfinite(scale):
                continue
            error = math.log(row["observed"] / row["projected"])
            inside += abs(error) <= z * scale
            total += 1
    return (inside / total if total else float("nan")), total


def growth_exponent(scales: Sequence[float]) -> float:
    """Exponent b of scale_h = scale_1 * h**b fitted on the tested horizons, kept in
    [0.5, 1] (between random-walk and trend-error growth): how bands are extrapolated
    beyond the tested horizons."""
    h = np.arange(1, len(scales) + 1, dtype=float)
    good = np.isfinite(scales) & (np.asarray(scales) > 0)
    if good.sum() < 2:
        return 1.0
    slope = np.polyfit(np.log(h[good]), np.log(np.asarray(scales)[good]), 1)[0]
    return float(np.clip(slope, 0.5, 1.0))


# --- outputs ------------------------------------------------------------------------------
BAND_VARIABLES = {"stock": "looked_after", "starts": "started", "ceased": "ceased"}


def band_settings(rows: Sequence[Row], method: str, horizon: int) -> dict[str, Any]:
    """The [bands] section of the forecast layer: log-error scales by horizon."""
    horizons = list(range(1, horizon + 1))
    out: dict[str, Any] = {}
    exponents = []
    for name, variable in BAND_VARIABLES.items():
        scales = error_scale(rows, method, name, horizons)
        out[f"{variable}_log_sd"] = [round(s, 6) for s in scales]
        exponents.append(growth_exponent(scales))
    out["growth_exponent"] = round(float(np.mean(exponents)), 4)
    return out


def outlook(methods: Sequence[str], layer: str | Path = "scenarios/layers/calibrated.toml",
            year: int = 2032, data_dir: Path | None = None) -> dict[str, float]:
    """Looked after in ``year`` projected from the base year (all shipped data) under
    each treatment: how much the choice matters where the backtests cannot see."""
    from sim.estimation.estimate import estimate_parameters
    from sim.scenarios.loader import load_scenario

    scenario = load_scenario(layer)
    out = {}
    for method in methods:
        config = copy.deepcopy(scenario.config)
        config["run"]["end_year"] = year
        config["trends"].update(TREATMENTS[method].trends)
        slopes = base_year_slopes(method, layer, data_dir)
        if slopes:
            config["trends"].update(entry_trend_change_per_year=0.0,
                                    exit_trend_change_per_year=0.0)
            config["trends"].update({k.split(".", 1)[1]: v for k, v in slopes.items()})
        params = estimate_parameters(config, data_dir=data_dir)
        run = stockflow.project(params, config)
        out[method] = float(np.sum(run["records"][-1]["looked_after"]))
    return out


def base_year_slopes(method: str, scenario_path: str | Path | None = None,
                     data_dir: Path | None = None) -> dict[str, float]:
    """The slopes a "recent" treatment carries from the scenario's own base year (all
    shipped data); empty for calibrated treatments (their slopes are the calibrated
    layer's)."""
    from sim.scenarios.loader import load_scenario

    treatment = TREATMENTS[method]
    if treatment.slopes != "recent":
        return {}
    scenario = load_scenario(scenario_path or "scenarios/uncalibrated.toml")
    base_year = int(scenario.config["run"]["base_year"])
    return recent_trend_keys(load_observed(base_year, data_dir), base_year, treatment)


def parse_origins(text: str) -> list[int]:
    """``--origins``: ``2014:2020`` (a range, ends included) or ``2014,2016``."""
    try:
        if ":" in text:
            first, last = (int(p) for p in text.split(":"))
            return list(range(first, last + 1))
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise InputError(f"--origins {text!r} must be FIRST:LAST or a comma "
                         "list of years") from None
