"""Fit named scenario keys to projection targets: the review-assumptions layer.

``cicsim calibrate --targets sim/calibration/targets_review_reform.toml`` lands here
(the targets file says ``kind = "scenario_fit"``).  Unlike the history calibration
(:mod:`sim.calibration.fit`), which fits trend slopes to published series, this asks:
*which values of a few named assumptions make the model say what a publication says?*
For the Independent Review: do nothing "approaching 100,000" in 2032, the reform
"30,000 more children living safely with their families", a cost "over £15bn".

The targets file names (paths relative to it):

- ``[settings]``: ``base`` (the scenario the layer extends), ``reform`` (a scenario
  whose *own* ``[levers]`` tables are the reform's money), ``layer`` (the file
  written), ``name``;
- ``[fixed]``: keys set to stated values, each ``{ value = ..., source = "..." }``;
- ``[parameters."KEY"]``: the fitted keys: ``low``/``high`` (the range the fit may
  use, with ``range_source``), ``prior`` (the evidence's central value, which the fit
  stays as close to as the targets allow), ``evidence_low``/``evidence_high`` (the
  evidence range: a second fit inside it reports the closest the evidence gets and
  which bound binds);
- ``[[targets]]``: ``metric`` (``looked_after``, ``kept_at_home``, ``cost_gbp``,
  ``cost_gbp_cash``) of the ``scenario`` (``baseline`` or ``reform``) in ``year``,
  ``low``/``high`` (either may be absent), ``aim`` (the value aimed at, default the
  midpoint or the one bound), ``scale`` and ``source``.

Objective: least squares over (value - aim) / scale for two-sided targets and the
shortfall beyond a one-sided bound, plus 0.01 x (key - prior) / (high - low) for each
key (a tie-breaker: among the values meeting the targets, the closest to the
evidence).  The stock-flow engine runs each evaluation (one projection is ~15 ms; the
reform with reinvested savings is a fixed point of a few projections).  Parameters are
estimated once; keys the estimation reads (the entry and exit trends, how long trends
continue) are applied to the parameters directly, as calibration does.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize

import sim
from sim.errors import InputError
from sim.estimation.cache import cached_parameters
from sim.model.parameters import ModelParameters
from sim.provenance import git_commit
from sim.results.costs import add_costs
from sim.run import project_stockflow
from sim.scenarios.loader import Scenario, load_scenario, read_toml, toml_value

METRICS: tuple[str, ...] = ("looked_after", "kept_at_home", "cost_gbp", "cost_gbp_cash")
SCENARIOS: tuple[str, ...] = ("baseline", "reform")
PRIOR_WEIGHT = 0.01
# Keys estimation reads: set on the parameters directly (no re-estimation per trial).
PARAMETER_KEYS: dict[str, str] = {"trends.entry_trend_per_year": "entry_trend_per_year",
                                  "trends.exit_trend_per_year": "exit_trend_per_year",
                                  "trends.continue_until": "trend_until_year"}


def is_scenario_fit(path: str | Path) -> bool:
    """Is this targets file a scenario fit (``kind = "scenario_fit"``)?"""
    path = Path(path)
    return path.exists() and read_toml(path, "targets").get("kind") == "scenario_fit"


@dataclass(frozen=True)
class FittedKey:
    key: str
    low: float
    high: float
    prior: float
    range_source: str
    evidence_low: float
    evidence_high: float
    evidence_source: str


@dataclass(frozen=True)
class ProjectionTarget:
    name: str
    metric: str
    scenario: str
    year: int
    low: float
    high: float
    aim: float
    scale: float
    source: str

    def residual(self, value: float) -> float:
        if math.isfinite(self.low) and math.isfinite(self.high):
            return (value - self.aim) / self.scale
        if math.isfinite(self.low):
            return min(value - self.aim, 0.0) / self.scale
        return max(value - self.aim, 0.0) / self.scale

    def met(self, value: float) -> bool:
        return self.low <= value <= self.high

    def describe(self) -> str:
        if math.isfinite(self.low) and math.isfinite(self.high):
            return f"{self.low:,.0f} to {self.high:,.0f}"
        return f">= {self.low:,.0f}" if math.isfinite(self.low) else f"<= {self.high:,.0f}"


@dataclass
class FitSpec:
    """A validated scenario-fit targets file."""

    path: Path
    base: Path
    reform: Path
    layer: Path
    name: str
    description: str
    fixed: dict[str, tuple[Any, str]]  # key -> (value, source)
    keys: list[FittedKey]
    targets: list[ProjectionTarget]


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InputError(f"{where}: key '{key}' must be a number, got {value!r}")
    return float(value)


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: key '{key}' must be a non-empty string")
    return value


def _file(where: str, key: str, root: Path, value: Any, must_exist: bool = True) -> Path:
    path = (root / _text(where, key, value)).resolve()
    if must_exist and not path.exists():
        raise InputError(f"{where}: key '{key}': file '{value}' not found")
    return path


def load_fit_spec(path: str | Path) -> FitSpec:
    """Read and check a scenario-fit targets file; every problem is one line naming
    the file and the key."""
    path = Path(path)
    where = str(path)
    data = read_toml(path, "targets")
    allowed = {"kind", "description", "settings", "fixed", "parameters", "targets"}
    for key in data:
        if key not in allowed:
            raise InputError(f"{where}: unknown key '{key}'; valid keys: "
                             f"{', '.join(sorted(allowed))}")
    settings = data.get("settings", {})
    for key in settings:
        if key not in ("base", "reform", "layer", "name"):
            raise InputError(f"{where}: unknown key 'settings.{key}'; valid keys: base, "
                             "layer, name, reform")
    for key in ("base", "reform", "layer", "name"):
        if key not in settings:
            raise InputError(f"{where}: key 'settings.{key}' is missing")
    root = path.parent
    fixed: dict[str, tuple[Any, str]] = {}
    for key, entry in data.get("fixed", {}).items():
        if not isinstance(entry, dict) or set(entry) != {"value", "source"}:
            raise InputError(f"{where}: key 'fixed.{key}' must be {{ value = ..., source = "
                             "\"...\" }}")
        fixed[key] = (entry["value"], _text(where, f"fixed.{key}.source", entry["source"]))
    keys = []
    fields = ("low", "high", "prior", "range_source", "evidence_low", "evidence_high",
              "evidence_source")
    for key, entry in data.get("parameters", {}).items():
        if not isinstance(entry, dict):
            raise InputError(f"{where}: key 'parameters.{key}' must be a table")
        for field_name in entry:
            if field_name not in fields:
                raise InputError(f"{where}: unknown key 'parameters.{key}.{field_name}'; "
                                 f"valid keys: {', '.join(fields)}")
        for field_name in fields:
            if field_name not in entry:
                raise InputError(f"{where}: key 'parameters.{key}.{field_name}' is missing")
        values = {f: (_text(where, f"parameters.{key}.{f}", entry[f]) if f.endswith("source")
                      else _number(where, f"parameters.{key}.{f}", entry[f])) for f in fields}
        fitted = FittedKey(key=key, **values)  # type: ignore[arg-type]
        if not fitted.low < fitted.high or not fitted.low <= fitted.prior <= fitted.high:
            raise InputError(f"{where}: key 'parameters.{key}': need low < high and low <= "
                             "prior <= high")
        if not fitted.low <= fitted.evidence_low <= fitted.evidence_high <= fitted.high:
            raise InputError(f"{where}: key 'parameters.{key}': the evidence range must lie "
                             "within low-high")
        keys.append(fitted)
    if not keys:
        raise InputError(f"{where}: key 'parameters': no fitted keys declared")
    targets = []
    for index, entry in enumerate(data.get("targets", [])):
        label = f"targets[{index}]"
        for field_name in entry:
            if field_name not in ("name", "metric", "scenario", "year", "low", "high", "aim",
                                  "scale", "source"):
                raise InputError(f"{where}: unknown key '{label}.{field_name}'")
        metric = entry.get("metric")
        if metric not in METRICS:
            raise InputError(f"{where}: key '{label}.metric' = {metric!r}; must be one of "
                             f"{', '.join(METRICS)}")
        scenario = entry.get("scenario")
        if scenario not in SCENARIOS:
            raise InputError(f"{where}: key '{label}.scenario' = {scenario!r}; must be one "
                             f"of {', '.join(SCENARIOS)}")
        low = _number(where, f"{label}.low", entry["low"]) if "low" in entry else -math.inf
        high = _number(where, f"{label}.high", entry["high"]) if "high" in entry else math.inf
        if not low < high or (math.isinf(low) and math.isinf(high)):
            raise InputError(f"{where}: key '{label}': need low < high (one may be absent)")
        default_aim = (low + high) / 2 if math.isfinite(low + high) else (
            low if math.isfinite(low) else high)
        aim = _number(where, f"{label}.aim", entry["aim"]) if "aim" in entry else default_aim
        targets.append(ProjectionTarget(
            name=_text(where, f"{label}.name", entry.get("name")), metric=metric,
            scenario=scenario, year=int(_number(where, f"{label}.year", entry.get("year"))),
            low=low, high=high, aim=aim,
            scale=_number(where, f"{label}.scale", entry.get("scale", 1.0)),
            source=_text(where, f"{label}.source", entry.get("source"))))
    if not targets:
        raise InputError(f"{where}: key 'targets': no targets declared")
    return FitSpec(path=path, base=_file(where, "settings.base", root, settings["base"]),
                   reform=_file(where, "settings.reform", root, settings["reform"]),
                   layer=_file(where, "settings.layer", root, settings["layer"], False),
                   name=_text(where, "settings.name", settings["name"]),
                   description=str(data.get("description", "")), fixed=fixed, keys=keys,
                   targets=targets)


def _set_item(key: str, value: Any) -> str:
    return f"{key}={toml_value(value)}"


def reform_lever_items(reform: Path) -> list[str]:
    """``--set`` items for the reform scenario's own lever tables (its money)."""
    levers = read_toml(reform, "scenario").get("levers", {})
    return [_set_item(f"levers.{name}.{key}", value)
            for name, table in levers.items() for key, value in table.items()]


def set_key(config: dict[str, Any], key: str, value: Any) -> None:
    node = config
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


class ScenarioFitProblem:
    """Evaluates the targets for a vector of fitted values (stock-flow engine)."""

    def __init__(self, spec: FitSpec) -> None:
        self.spec = spec
        fixed = [_set_item(k, v) for k, (v, _) in spec.fixed.items()]
        start = [_set_item(k.key, k.prior) for k in spec.keys]
        where = str(spec.path)
        try:
            self.baseline = load_scenario(spec.base, fixed + start)
            self.reform = load_scenario(spec.base, fixed + start
                                        + reform_lever_items(spec.reform))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        self.params = cached_parameters(self.baseline.config)
        self.evaluations = 0

    def configs(self, values: np.ndarray) -> dict[str, dict[str, Any]]:
        out = {}
        for label, scenario in (("baseline", self.baseline), ("reform", self.reform)):
            config = copy.deepcopy(scenario.config)
            for fitted, value in zip(self.spec.keys, values, strict=True):
                kind = type(scenario.get(fitted.key)) if _has(scenario, fitted.key) else float
                set_key(config, fitted.key, int(round(value)) if kind is int else float(value))
            out[label] = config
        return out

    def params_for(self, config: dict[str, Any]) -> ModelParameters:
        changes = {name: config["trends"][key.split(".")[1]]
                   for key, name in PARAMETER_KEYS.items()
                   if config["trends"][key.split(".")[1]] != "estimate"}
        return replace(self.params, **changes)

    def metrics(self, values: np.ndarray) -> dict[tuple[str, str, int], float]:
        """Every target's metric for these fitted values."""
        self.evaluations += 1
        runs = {}
        for label, config in self.configs(values).items():
            params = self.params_for(config)
            runs[label] = add_costs(project_stockflow(params, config), params, config)
        out = {}
        for target in self.spec.targets:
            ds = runs[target.scenario]
            if target.metric == "kept_at_home":
                value = float(runs["baseline"]["looked_after"].sel(year=target.year)
                              - ds["looked_after"].sel(year=target.year))
            elif target.metric.startswith("cost"):
                value = float(ds[target.metric].sel(year=target.year).sum())
            else:
                value = float(ds[target.metric].sel(year=target.year))
            out[(target.metric, target.scenario, target.year)] = value
        return out

    def residuals(self, values: np.ndarray) -> np.ndarray:
        metrics = self.metrics(values)
        fit = [t.residual(metrics[(t.metric, t.scenario, t.year)]) for t in self.spec.targets]
        prior = [PRIOR_WEIGHT * (v - k.prior) / (k.high - k.low)
                 for k, v in zip(self.spec.keys, values, strict=True)]
        return np.array(fit + prior)


def _has(scenario: Scenario, key: str) -> bool:
    try:
        scenario.get(key)
    except KeyError:
        return False
    return True


@dataclass
class FitResult:
    values: np.ndarray
    metrics: dict[tuple[str, str, int], float]
    bounds: list[tuple[float, float]]
    binding: list[str]  # "key at its low/high bound"
    all_met: bool


def fit(problem: ScenarioFitProblem, evidence_only: bool = False) -> FitResult:
    """Least squares within the keys' ranges (or within their evidence ranges)."""
    keys = problem.spec.keys
    bounds = [(k.evidence_low, k.evidence_high) if evidence_only else (k.low, k.high)
              for k in keys]
    low = np.array([b[0] for b in bounds])
    high = np.array([b[1] for b in bounds])
    start = np.clip([k.prior for k in keys], low, high)
    result = scipy.optimize.least_squares(problem.residuals, start, bounds=(low, high),
                                          x_scale=high - low, diff_step=1e-3, xtol=1e-6,
                                          ftol=1e-8, max_nfev=200)
    values = np.asarray(result.x)
    metrics = problem.metrics(values)
    binding = []
    for key, value, (lo, hi) in zip(keys, values, bounds, strict=True):
        tolerance = 1e-4 * (hi - lo)
        if value <= lo + tolerance:
            binding.append(f"{key.key} at its low bound {lo:g}")
        elif value >= hi - tolerance:
            binding.append(f"{key.key} at its high bound {hi:g}")
    met = all(t.met(metrics[(t.metric, t.scenario, t.year)]) for t in problem.spec.targets)
    return FitResult(values, metrics, bounds, binding, met)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _format(metric: str, value: float) -> str:
    return f"£{value / 1e9:,.2f}bn" if metric.startswith("cost") else f"{value:,.0f}"


def summary_lines(spec: FitSpec, result: FitResult, evidence: FitResult) -> list[str]:
    """The fit in words: fitted values with ranges, targets achieved, and the closest
    fit inside the evidence ranges (printed and written into the layer header)."""
    lines = ["fitted values (fit range; evidence range; evidence central):"]
    for key, value in zip(spec.keys, result.values, strict=True):
        lines.append(f"  {key.key} = {value:.6g}  (range {key.low:g} to {key.high:g}: "
                     f"{key.range_source}; evidence {key.evidence_low:g} to "
                     f"{key.evidence_high:g}, central {key.prior:g}: {key.evidence_source})")
    lines.append("targets (achieved; wanted):")
    for target in spec.targets:
        value = result.metrics[(target.metric, target.scenario, target.year)]
        lines.append(f"  {target.name}: {target.metric} {target.scenario} {target.year} = "
                     f"{_format(target.metric, value)}; wanted {target.describe()} "
                     f"({'met' if target.met(value) else 'NOT MET'}; {target.source})")
    lines.append("bounds binding: " + ("; ".join(result.binding) or "none"))
    lines.append("closest fit inside the evidence ranges: " + ", ".join(
        f"{k.key} = {v:.4g}" for k, v in zip(spec.keys, evidence.values, strict=True)))
    for target in spec.targets:
        value = evidence.metrics[(target.metric, target.scenario, target.year)]
        lines.append(f"  {target.name}: {_format(target.metric, value)} (wanted "
                     f"{target.describe()}: {'met' if target.met(value) else 'NOT MET'})")
    lines.append("  bounds binding: " + ("; ".join(evidence.binding) or "none"))
    return lines


def layer_text(spec: FitSpec, result: FitResult, evidence: FitResult,
               wall_time_s: float) -> str:
    """The generated layer: provenance header, then the fixed and fitted keys."""
    extends = os.path.relpath(spec.base, spec.layer.parent)
    header = [
        "# GENERATED by `cicsim calibrate --targets "
        f"{os.path.relpath(spec.path, Path.cwd())}` - do not edit by hand.",
        f"# {spec.description}",
        f"# created {datetime.now(UTC).isoformat(timespec='seconds')}; cicsim "
        f"{sim.__version__}; git {git_commit()}",
        f"# targets: {spec.path.name} sha256:{_sha256(spec.path)[:12]}; reform money from "
        f"{spec.reform.name} sha256:{_sha256(spec.reform)[:12]}",
        f"# stock-flow engine, least squares ({wall_time_s:.1f} s); all targets met: "
        f"{result.all_met}",
        *[f"# {line}" for line in summary_lines(spec, result, evidence)],
        "# fixed review assumptions:",
        *[f"#   {key} = {toml_value(value)}: {source}"
          for key, (value, source) in spec.fixed.items()],
        f'name = "{spec.name}"',
        'description = "Do nothing under the Independent Review\'s assumptions '
        '(fitted to its published claims; not a forecast)"',
        f'extends = "{extends}"',
    ]
    tables: dict[str, dict[str, Any]] = {}
    items = [(k, v) for k, (v, _) in spec.fixed.items()]
    items += [(k.key, float(v)) for k, v in zip(spec.keys, result.values, strict=True)]
    for key, value in items:
        *table, name = key.split(".")
        tables.setdefault(".".join(table), {})[name] = value
    body = []
    for table, entries in tables.items():
        body += ["", f"[{table}]"] + [f"{name} = {toml_value(value)}"
                                      for name, value in entries.items()]
    return "\n".join(header + body) + "\n"


def run_scenario_fit(targets: str | Path, out: str | Path | None = None) -> int:
    """``cicsim calibrate --targets FILE`` for a scenario fit: fit, print, write."""
    from sim.results.io import atomic_write_text

    spec = load_fit_spec(targets)
    if out is not None:
        spec.layer = Path(out).resolve()
    started = time.perf_counter()
    problem = ScenarioFitProblem(spec)
    result = fit(problem)
    evidence = fit(problem, evidence_only=True)
    elapsed = time.perf_counter() - started
    atomic_write_text(spec.layer, layer_text(spec, result, evidence, elapsed))
    for line in summary_lines(spec, result, evidence):
        print(line)
    print(f"fitted {len(spec.keys)} keys in {elapsed:.1f} s ({problem.evaluations} "
          f"evaluations); all targets met: {result.all_met}; wrote {spec.layer}")
    return 0
