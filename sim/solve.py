"""``cicsim solve``: what value of one scenario key makes a result hit a target.

Why: the scenarios answer "what does this funding path do"; a modeller also needs the
inverse, "what would it take" -- e.g. how large a family-help effect keeps 30,000 more
children at home by 2032.  Without it the implied value is found by hand with ``--set``
runs, and nobody can tell how far it sits from the evidence.

How (docs/solve.md):

- Every evaluation is ``cicsim run SCENARIO --set <overrides> --set KEY=<value>`` on the
  stock-flow engine (deterministic expectations, no sampling noise), through the same
  loader, :func:`sim.run.simulate` and cost model, so re-running the scenario with the
  printed value reproduces the printed result.  Estimated parameters are shared between
  evaluations whose estimation inputs are equal (levers and unit costs never change
  them), which makes one evaluation about 0.05 s.
- The bracket ``[LO, HI]`` is scanned at :data:`SCAN_POINTS` evenly spaced values first,
  so a metric that is not monotone in the key still has its crossing found; the crossing
  nearest LO is solved with Brent's method (:func:`scipy.optimize.brentq`) to a relative
  width of :data:`XTOL_RELATIVE` of the bracket.  No crossing: an interior best scan
  point is refined (bounded minimisation of the distance to the target), and if that
  still misses, the target is unreachable and the closest achievable value is reported.
- Metrics come from the saved-results helpers in :mod:`sim.results.compare`, as the
  comparison table computes them; ``kept_at_home`` is the baseline's looked-after count
  minus the scenario's, where the baseline is the nearest file named ``baseline.toml``
  in the scenario's ``extends`` chain (the scenario itself included), run once with the
  same ``--set`` overrides (never the varied key).

Heavy modules are imported inside functions so ``cicsim --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import InputError

if TYPE_CHECKING:
    from sim.model.parameters import ModelParameters
    from sim.scenarios.loader import Scenario

# metric name -> the series name sim.results.compare.value_in reads (None: derived)
METRICS: dict[str, str | None] = {
    "looked_after": "looked_after",  # children looked after at 31 March YEAR
    "started": "started",  # children starting to be looked after in the year to YEAR
    "cost_gbp": "cost_gbp_total",  # total cost in YEAR, all components, programmes too
    "kept_at_home": None,  # baseline looked_after - scenario looked_after in YEAR
}
BASELINE_FILE = "baseline.toml"
SCAN_POINTS = 9  # values scanned across the bracket (ends included) before Brent
XTOL_RELATIVE = 1e-9  # Brent stops when the root is pinned to this share of HI - LO
SIGNIFICANT_DIGITS = 10  # the solution is printed (and re-checked) at this precision
# A solved value must reproduce its target to this share of max(|target|, 1); a bigger
# miss means the metric jumps across the target (a step), which is reported, not solved.
ACHIEVED_RTOL = 1e-4

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """``METRIC@YEAR=VALUE``."""

    metric: str
    year: int
    value: float

    @property
    def label(self) -> str:
        return f"{self.metric}@{self.year}"


@dataclass(frozen=True)
class Evaluation:
    """One run: the key's value and the metric it gave."""

    value: float
    metric: float


@dataclass
class Problem:
    """A validated solve: everything checked, nothing run yet."""

    scenario_path: Path
    key: str
    low: float
    high: float
    target: Target
    overrides: list[str]
    scenario: Scenario  # resolved with the overrides (the key at its own value)
    baseline: Scenario | None  # kept_at_home only


@dataclass
class Solution:
    """A solved key value, the metric it achieves and how it was found."""

    problem: Problem
    value: float
    achieved: float
    evaluations: list[Evaluation]
    crossings: int  # scanned intervals in which the metric crosses the target
    resolved_toml: str  # the scenario resolved at the solution (as `cicsim run` saves)

    @property
    def line(self) -> str:
        """The last line of ``cicsim solve``'s output."""
        target = self.problem.target
        return (f"solved: {self.problem.key} = {_plain(self.value)} "
                f"({target.label} = {_metric_text(target.metric, self.achieved)})")


class UnreachableTarget(InputError):
    """The target lies outside what the bracket can reach (exit 2); carries the closest
    evaluation so callers can use it."""

    def __init__(self, message: str, closest: Evaluation,
                 evaluations: list[Evaluation]) -> None:
        super().__init__(message)
        self.closest = closest
        self.evaluations = evaluations


# --- parsing and validation (nothing is simulated here) -------------------------------

def _number(text: str, where: str, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InputError(f"{where}: {what} '{text.strip()}' is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {what} '{text.strip()}' must be a finite number")
    return value


def parse_vary(text: str) -> tuple[str, float, float]:
    """``KEY=LO:HI`` -> (key, lo, hi), LO < HI."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*=\s*([^:]+):([^:]+)", text)
    if match is None:
        raise InputError(f"--vary: '{text}' must look like KEY=LO:HI, e.g. "
                         "levers.family_help.effect=0:1")
    key = match.group(1)
    low = _number(match.group(2), "--vary", f"'{key}' LO")
    high = _number(match.group(3), "--vary", f"'{key}' HI")
    if not low < high:
        raise InputError(f"--vary: key '{key}': LO = {_plain(low)} must be below "
                         f"HI = {_plain(high)}")
    return key, low, high


def parse_target(text: str) -> Target:
    """``METRIC@YEAR=VALUE`` -> :class:`Target` (the metric must be known)."""
    match = re.fullmatch(r"\s*([A-Za-z_]+)\s*@\s*(\d{4})\s*=\s*(.+)", text)
    if match is None:
        raise InputError(f"--target: '{text}' must look like METRIC@YEAR=VALUE, e.g. "
                         "kept_at_home@2032=5000")
    metric = match.group(1)
    if metric not in METRICS:
        raise InputError(f"--target: unknown metric '{metric}'; valid: "
                         f"{', '.join(METRICS)}")
    return Target(metric, int(match.group(2)),
                  _number(match.group(3), "--target", f"'{metric}' VALUE"))


def _check_key_kind(key: str) -> None:
    """Solve moves a key continuously: refuse integer, text and year-table keys with a
    reason.  Keys the schema does not know fall through to the loader's usual error."""
    from sim.scenarios import schema

    parts = key.split(".")
    spec, depth = None, len(parts)
    if len(parts) >= 2 and parts[0] in schema.SECTIONS:
        spec, depth = schema.SECTIONS[parts[0]].get(parts[1]), 2
    elif len(parts) >= 3 and parts[0] in schema.TABLE_SECTIONS:
        spec, depth = schema.TABLE_SECTIONS[parts[0]].get(parts[2]), 3
    elif len(parts) == 1:
        spec, depth = schema.TOP_LEVEL.get(parts[0]), 1
    if spec is None:
        return
    if spec.kind == "year_table":
        raise InputError(f"--vary: key '{key}' is {'in ' if len(parts) > depth else ''}a "
                         "year table; --set replaces a whole table, so solve cannot vary "
                         "it (vary a number key, e.g. a lever's effect or unit_cost_gbp)")
    if len(parts) > depth:
        return  # e.g. 'rates.entry_multiplier.x': the loader names the problem
    if spec.kind is int:
        raise InputError(f"--vary: key '{key}' takes whole numbers only; solve varies a "
                         "key that takes any number in a range")
    if spec.kind not in (float, "prob") or spec.is_list:
        raise InputError(f"--vary: key '{key}' is not a number; solve varies a key that "
                         "takes any number in a range")


def _override(key: str, value: float) -> str:
    from sim.scenarios.loader import toml_value

    return f"{key}={toml_value(float(value))}"


def _load_varied(path: Path, overrides: list[str], key: str, value: float) -> Scenario:
    """The scenario with KEY set; the loader's error, relabelled as --vary's."""
    from sim.scenarios.loader import load_scenario

    try:
        return load_scenario(path, [*overrides, _override(key, value)])
    except InputError as exc:
        message = str(exc).removeprefix("--set: ")
        raise InputError(f"--vary: {message}") from None


def find_baseline(scenario: Scenario) -> Path:
    """The nearest file named ``baseline.toml`` down the scenario's ``extends`` chain
    (the scenario itself first): what "kept at home" is measured against."""
    for label in reversed(scenario.layers):
        if label != "--set" and Path(label).name == BASELINE_FILE:
            path = Path(label)
            # the loader resolves parents to absolute paths; show them as typed
            with contextlib.suppress(ValueError):
                path = path.relative_to(Path.cwd())
            return path
    chain = " < ".join(Path(label).name for label in reversed(scenario.layers)
                       if label != "--set")
    raise InputError(f"{scenario.path}: metric 'kept_at_home' needs a baseline, but no "
                     f"file named {BASELINE_FILE} is in its extends chain ({chain})")


def prepare(scenario_path: str | Path, key: str, low: float, high: float, target: Target,
            overrides: Sequence[str] = ()) -> Problem:
    """Check every input before any simulation; each problem is one InputError line."""
    from sim.scenarios.loader import load_scenario

    path = Path(scenario_path)
    overrides = list(overrides)
    if target.metric not in METRICS:
        raise InputError(f"--target: unknown metric '{target.metric}'; valid: "
                         f"{', '.join(METRICS)}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"--vary: key '{key}': need finite LO < HI, got "
                         f"{_plain(low)}:{_plain(high)}")
    if not math.isfinite(target.value):
        raise InputError(f"--target: '{target.label}' VALUE must be a finite number")
    for item in overrides:
        if item.split("=", 1)[0].strip() == key:
            raise InputError(f"--set: key '{key}' is the key --vary solves for; drop "
                             "one of them")
    plain = load_scenario(path, overrides)  # the file's and --set's own errors first
    _check_key_kind(key)
    _load_varied(path, overrides, key, low)
    _load_varied(path, overrides, key, high)
    run = plain.config["run"]
    if not run["base_year"] <= target.year <= run["end_year"]:
        raise InputError(f"--target: year {target.year} is outside the run's years "
                         f"{run['base_year']}-{run['end_year']} (set run.end_year to "
                         "go further)")
    baseline = None
    if target.metric == "kept_at_home":
        baseline = load_scenario(find_baseline(plain), overrides)
        b_run = baseline.config["run"]
        if not b_run["base_year"] <= target.year <= b_run["end_year"]:
            raise InputError(f"{baseline.path}: baseline years {b_run['base_year']}-"
                             f"{b_run['end_year']} do not include --target year "
                             f"{target.year}")
    return Problem(path, key, float(low), float(high), target, overrides, plain, baseline)


# --- evaluation ------------------------------------------------------------------------

# Estimated parameters by estimation inputs: estimation takes ~1.6 s and one evaluation
# ~0.05 s, and levers and unit costs never change the estimate (sim.sensitivity), so
# every evaluation of a lever or cost key -- and repeated solves in one process, e.g. a
# table of implied effects -- share one.  Bounded: keys that change estimation add one
# entry per evaluation.
_PARAMETERS: dict[str, ModelParameters] = {}
_PARAMETERS_KEPT = 4


def _parameters(scenario: Scenario) -> ModelParameters:
    from sim.estimation.cache import cached_parameters
    from sim.sensitivity import _estimation_inputs

    cache_key = json.dumps(_estimation_inputs(scenario.config), sort_keys=True, default=str)
    if cache_key not in _PARAMETERS:
        while len(_PARAMETERS) >= _PARAMETERS_KEPT:
            del _PARAMETERS[next(iter(_PARAMETERS))]  # the oldest
        _PARAMETERS[cache_key] = cached_parameters(scenario.config)
    return _PARAMETERS[cache_key]


class _Evaluator:
    """Metric at a key value, each value run once; estimation shared where it can be."""

    def __init__(self, problem: Problem, progress: Progress | None) -> None:
        self.problem = problem
        self.progress = progress
        self.evaluations: list[Evaluation] = []
        self._by_value: dict[float, float] = {}
        self._baseline_value: float | None = None
        if problem.baseline is not None:
            ds = self._simulate(problem.baseline)
            self._baseline_value = self._read(ds, "looked_after")
            self._say(f"solve: baseline {problem.baseline.path}: looked_after@"
                      f"{problem.target.year} = {self._baseline_value:,.2f}")

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def _simulate(self, scenario: Scenario) -> Any:
        from sim.run import simulate

        return simulate(scenario, engine="stockflow", params=_parameters(scenario))

    def _read(self, ds: Any, name: str) -> float:
        from sim.results.compare import from_dataset, value_in

        return value_in(from_dataset(ds), name, self.problem.target.year)

    def scenario_at(self, value: float) -> Scenario:
        problem = self.problem
        return _load_varied(problem.scenario_path, problem.overrides, problem.key, value)

    def metric(self, value: float) -> float:
        value = float(value)
        if value in self._by_value:
            return self._by_value[value]
        ds = self._simulate(self.scenario_at(value))
        target = self.problem.target
        series = METRICS[target.metric]
        if series is None:  # kept_at_home
            assert self._baseline_value is not None
            result = self._baseline_value - self._read(ds, "looked_after")
        else:
            result = self._read(ds, series)
        if math.isnan(result):
            raise RuntimeError(f"{target.label}: no value in the run (years "
                               f"{int(ds.year[0])}-{int(ds.year[-1])})")
        self._by_value[value] = result
        self.evaluations.append(Evaluation(value, result))
        self._say(f"solve: {self.problem.key} = {_plain(value)} -> {target.label} = "
                  f"{_metric_text(target.metric, result)}")
        return result

    def gap(self, value: float) -> float:
        """Metric minus target: the function whose root is the solution."""
        return self.metric(value) - self.problem.target.value


def _bracket(evaluator: _Evaluator, problem: Problem,
             scan_points: int) -> tuple[float, float, int] | None:
    """A sub-interval of [LO, HI] where the metric crosses the target (the one nearest
    LO), and the number of scanned intervals with a crossing; None if none is found."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    # 12 significant digits: 0.075, not linspace's 0.07500000000000001, in the log
    grid = [float(f"{x:.12g}")
            for x in np.linspace(problem.low, problem.high, max(scan_points, 2))]
    grid[0], grid[-1] = problem.low, problem.high  # exactly the given ends
    gaps = [evaluator.gap(x) for x in grid]
    crossings = [i for i in range(len(grid) - 1)
                 if gaps[i] == 0 or gaps[i] * gaps[i + 1] < 0]
    if gaps[-1] == 0:
        crossings.append(len(grid) - 1)
    if crossings:
        first = crossings[0]
        upper = grid[min(first + 1, len(grid) - 1)]
        return grid[first], upper, len(crossings)
    # No crossing on the grid.  A best scan point inside the bracket means the metric
    # turns there: push it towards the target (maximise it if below, minimise it if
    # above); the turning point may still cross the target between scan points.
    best = min(range(len(grid)), key=lambda i: abs(gaps[i]))
    if 0 < best < len(grid) - 1:
        towards = 1.0 if gaps[best] > 0 else -1.0
        refined = minimize_scalar(
            lambda x: towards * evaluator.gap(x), bounds=(grid[best - 1], grid[best + 1]),
            method="bounded",
            options={"xatol": XTOL_RELATIVE * (problem.high - problem.low)})
        x = float(refined.x)
        gap = evaluator.gap(x)
        if gap == 0:
            return x, x, 1
        if gap * gaps[best] < 0:  # the turn crosses twice: keep the crossing nearer LO
            return grid[best - 1], x, 2
    return None


def _unreachable(problem: Problem, evaluator: _Evaluator, reason: str = "") -> None:
    target = problem.target
    evaluations = evaluator.evaluations
    closest = min(evaluations, key=lambda e: abs(e.metric - target.value))
    if not reason and len({e.metric for e in evaluations}) == 1:
        reason = " (the metric does not move with it)"
    raise UnreachableTarget(
        f"solve: {target.label} = {_plain(target.value)} is not reachable with "
        f"{problem.key} in [{_plain(problem.low)}, {_plain(problem.high)}]{reason}; "
        f"closest: {_metric_text(target.metric, closest.metric, short=True)} at "
        f"{problem.key} = {_plain(float(f'{closest.value:.6g}'))}", closest,
        list(evaluations))


def run_solve(problem: Problem, progress: Progress | None = None,
              scan_points: int = SCAN_POINTS) -> Solution:
    """Solve a prepared problem (raises :class:`UnreachableTarget` if it cannot)."""
    from scipy.optimize import brentq

    # The scan's progress lines are held until it finds a crossing: an unreachable
    # target is then one line on stderr, not a screenful followed by the error.
    held: list[str] = []
    evaluator = _Evaluator(problem, held.append if progress is not None else None)
    found = _bracket(evaluator, problem, scan_points)
    if found is None:
        _unreachable(problem, evaluator)
    assert found is not None
    if progress is not None:
        for line in held:
            progress(line)
        evaluator.progress = progress
    low, high, crossings = found
    if crossings > 1 and progress is not None:
        progress(f"solve: note: {problem.target.label} crosses the target in {crossings} "
                 f"of the scanned intervals; solving the one nearest LO "
                 f"[{_plain(low)}, {_plain(high)}]")
    if evaluator.gap(low) == 0:
        root = low
    elif evaluator.gap(high) == 0:
        root = high
    else:
        root = float(brentq(evaluator.gap, low, high,
                            xtol=XTOL_RELATIVE * (problem.high - problem.low),
                            rtol=XTOL_RELATIVE, maxiter=200))
    # Print a value that re-runs exactly: round, keep inside the bracket, re-evaluate.
    value = min(max(float(f"{root:.{SIGNIFICANT_DIGITS}g}"), problem.low), problem.high)
    achieved = evaluator.metric(value)
    target = problem.target
    if abs(achieved - target.value) > ACHIEVED_RTOL * max(abs(target.value), 1.0):
        _unreachable(problem, evaluator, reason=(
            f" (the metric jumps across it near {problem.key} = {_plain(value)})"))
    return Solution(problem, value, achieved, list(evaluator.evaluations), crossings,
                    evaluator.scenario_at(value).to_toml())


def solve(scenario_path: str | Path, key: str, low: float, high: float,
          target: Target | str, overrides: Sequence[str] = (),
          progress: Progress | None = None, scan_points: int = SCAN_POINTS) -> Solution:
    """Python API: the value of ``key`` in ``[low, high]`` at which ``target`` is met."""
    if isinstance(target, str):
        target = parse_target(target)
    return run_solve(prepare(scenario_path, key, low, high, target, overrides),
                     progress, scan_points)


# --- output ----------------------------------------------------------------------------

def _plain(value: float) -> str:
    """A number as short as it can be while re-reading to the same float."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _metric_text(metric: str, value: float, short: bool = False) -> str:
    digits = 0 if metric == "cost_gbp" or short else 2
    if round(value, digits) == 0:
        value = 0.0  # not "-0.00" for float noise in a difference of equal runs
    return f"{value:,.{digits}f}"


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def solution_record(solution: Solution) -> dict[str, Any]:
    """What ``--out`` writes: enough to re-run and check the answer."""
    from sim.provenance import git_commit

    problem = solution.problem
    target = problem.target
    baseline = problem.baseline
    return {
        "command": "cicsim solve",
        "scenario": str(problem.scenario_path),
        "scenario_file_sha256": _sha256_file(problem.scenario_path),
        "scenario_layers": problem.scenario.layers,
        "resolved_toml_sha256": hashlib.sha256(
            solution.resolved_toml.encode("utf-8")).hexdigest(),
        "baseline": str(baseline.path) if baseline is not None else None,
        "baseline_file_sha256": (_sha256_file(Path(baseline.path))
                                 if baseline is not None and baseline.path else None),
        "overrides": problem.overrides,
        "key": problem.key,
        "bracket": [problem.low, problem.high],
        "target": {"metric": target.metric, "year": target.year, "value": target.value},
        "solution": {"value": solution.value, "achieved": solution.achieved,
                     "difference": solution.achieved - target.value,
                     "relative_difference": ((solution.achieved - target.value)
                                             / abs(target.value) if target.value else None)},
        "crossings_in_scan": solution.crossings,
        "evaluations": [{"value": e.value, "metric": e.metric}
                        for e in solution.evaluations],
        "method": {"engine": "stockflow", "scan_points": SCAN_POINTS,
                   "root_finder": "scipy.optimize.brentq",
                   "xtol_relative_to_bracket": XTOL_RELATIVE,
                   "significant_digits": SIGNIFICANT_DIGITS},
        "rerun": f"cicsim run {problem.scenario_path} "
                 + " ".join(f"--set {item}" for item in
                            [*problem.overrides, _override(problem.key, solution.value)])
                 + " --engine stockflow",
        "git_commit": git_commit(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# --- command line ----------------------------------------------------------------------

def _cmd_solve(args: argparse.Namespace) -> int:
    target = parse_target(args.target)
    key, low, high = parse_vary(args.vary)
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise InputError(f"--out: '{out}' is a directory; give a file name, e.g. "
                         "solve.json")
    problem = prepare(args.scenario, key, low, high, target, args.set)

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    solution = run_solve(problem, progress=None if args.quiet else report)
    if out is not None:
        from sim.results.io import atomic_write_text

        atomic_write_text(out, json.dumps(solution_record(solution), indent=2) + "\n")
        print(f"wrote {out}")
    print(solution.line)
    return 0


def register(subparsers: Any) -> None:
    """Add ``solve`` to ``cicsim`` (listed in :data:`sim.cli.EXTENSIONS`)."""
    parser = subparsers.add_parser(
        "solve", help="what would it take: the value of one scenario key that makes a "
        "metric hit a target (stock-flow engine)")
    parser.add_argument("scenario", help="scenario TOML file")
    parser.add_argument("--vary", required=True, metavar="KEY=LO:HI",
                        help="the number key to solve for and the bracket to search, e.g. "
                        "levers.family_help.effect=0:1")
    parser.add_argument("--target", required=True, metavar="METRIC@YEAR=VALUE",
                        help=f"metric ({', '.join(METRICS)}), year and value, e.g. "
                        "kept_at_home@2032=5000")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a scenario key (also applied to the baseline of "
                        "kept_at_home)")
    parser.add_argument("--out", metavar="FILE.json", help="write the solution, bracket, "
                        "evaluations and scenario hashes here (only on success)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=_cmd_solve)
