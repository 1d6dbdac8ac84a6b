"""Reconcile the review's claims with the evidence-based model, assumption by assumption.

Four saved runs: the evidence-based ``baseline`` and ``review-full`` and the
review-assumptions ``review-assumptions-baseline`` and ``review-assumptions-full``.
Each published claim (approaching 100,000 in care; 30,000 more children at home; over
£15bn a year, cash, all in 2032) is shown with both models' values and the assumption
that carries the gap, found by **sequential attribution**: starting from the evidence
scenarios, swap one group of assumptions at a time to the review-assumptions values,
in the order of :data:`GROUPS`, re-running the stock-flow engine after each swap; a
group's contribution is the change it makes.  The contributions add up exactly to the
gap (the last step *is* the review-assumptions model; any key not in a named group is
swapped in a final "everything else" step), but they depend on the order, which is
stated with the table.

The configurations come from the runs' own ``scenario_toml`` attributes (what produced
them), so the table is rebuilt from ``outputs/*.nc`` alone.  ``python -m
sim.reconciliation [OUTPUT_DIR]`` prints it as Markdown (docs/review-assumptions.md).
"""

from __future__ import annotations

import copy
import html
import json
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from sim.calibration.scenario_fit import PARAMETER_KEYS
from sim.estimation.cache import cached_parameters
from sim.model.parameters import ModelParameters
from sim.results.compare import ScenarioResult, find_baseline, value_in
from sim.results.costs import add_costs
from sim.run import project_stockflow
from sim.scenarios.loader import load_scenario

YEAR = 2032
EVIDENCE = ("baseline", "review-full")
REVIEW = ("review-assumptions-baseline", "review-assumptions-full")

# (label, predicate on a dotted key), in the order they are swapped.
GROUPS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("do-nothing trends (trends.*)", lambda k: k.startswith("trends.")),
    ("family help continues after the money, paid from savings (sustain, "
     "sustained_share, reinvest_lag_years)",
     lambda k: k.split(".")[-1] in ("sustain", "sustained_share", "reinvest_lag_years")),
    ("lasting effect of help given (decay_per_year)",
     lambda k: k.endswith(".decay_per_year")),
    ("family-help effect size (effect)", lambda k: k == "levers.family_help.effect"),
    ("family-help targeting (risk_ratio)", lambda k: k == "levers.family_help.risk_ratio"),
    ("real unit-cost growth (costs.*real_growth*)",
     lambda k: k.startswith("costs.") and "real_growth" in k),
)
OTHER = "everything else"
IGNORED = ("name", "description")

# (claim, what the review said, metric, unit)
CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("approaching 100,000 in care by 2032 (do nothing)", "approaching 100,000",
     "do_nothing"),
    ("30,000 more children living safely with their families by 2032", "30,000",
     "kept_at_home"),
    ("cost over £15bn a year by 2032 (do nothing, cash)", "over £15bn", "cost_cash_bn"),
)
# evidence.csv: the family-help effect sizes the evidence supports.
EVIDENCE_EFFECTS = "family group conferencing RCT 19 %, Supporting Families 32 % (evidence.csv)"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> values; year tables (digit keys) and lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not value and key == "levers":
            continue  # no levers: nothing to swap (unflatten restores the section)
        if isinstance(value, dict) and value and not all(str(k).isdigit() for k in value):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"levers": {}}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = copy.deepcopy(value)
    return out


def config_of(result: ScenarioResult) -> dict[str, Any]:
    """The resolved configuration that produced a run, validated again by the loader."""
    text = result.ds.attrs.get("scenario_toml", "")
    data = tomllib.loads(text)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{result.name}.toml"
        path.write_text(text, encoding="utf-8")
        config = copy.deepcopy(load_scenario(path).config)
    config["name"] = data.get("name", result.name)
    return config


@dataclass
class Step:
    label: str
    keys: list[str]
    do_nothing: float
    kept_at_home: float
    cost_cash_bn: float


class _Runner:
    """Stock-flow runs with parameters estimated once per distinct estimation input."""

    def __init__(self) -> None:
        self.cache: dict[str, ModelParameters] = {}

    def params(self, config: dict[str, Any]) -> ModelParameters:
        """Estimation reads only the trend window of [trends]; the trend values the
        parameters carry are set from the scenario (as calibration does), so one
        estimation serves every step that differs only in trends, levers or prices."""
        inputs = {k: v for k, v in config.items()
                  if k not in ("levers", "costs", "name", "description", "trends")}
        key = json.dumps([inputs, config["trends"]["window_years"]], sort_keys=True,
                         default=str)
        if key not in self.cache:
            estimation = copy.deepcopy(config)
            for name in ("entry_trend_per_year", "exit_trend_per_year"):
                estimation["trends"][name] = "estimate"
            self.cache[key] = cached_parameters(estimation)
        changes = {field: config["trends"][name.split(".")[1]]
                   for name, field in PARAMETER_KEYS.items()
                   if config["trends"][name.split(".")[1]] != "estimate"}
        return replace(self.cache[key], **changes)

    def run(self, config: dict[str, Any]) -> xr.Dataset:
        params = self.params(config)
        return add_costs(project_stockflow(params, config), params, config)


def _measure(runner: _Runner, baseline: dict[str, Any], reform: dict[str, Any],
             label: str, keys: list[str]) -> Step:
    base, full = runner.run(baseline), runner.run(reform)
    do_nothing = float(base["looked_after"].sel(year=YEAR))
    return Step(label, keys, do_nothing, do_nothing - float(full["looked_after"].sel(year=YEAR)),
                float(base["cost_gbp_cash"].sel(year=YEAR).sum()) / 1e9)


def attribution(evidence: tuple[dict[str, Any], dict[str, Any]],
                review: tuple[dict[str, Any], dict[str, Any]]) -> list[Step]:
    """Sequential attribution: the evidence model, then one group swapped at a time."""
    runner = _Runner()
    current = [flatten(c) for c in evidence]
    targets = [flatten(c) for c in review]
    differing = sorted({k for pair in zip(current, targets, strict=True)
                        for k in set(pair[0]) | set(pair[1])
                        if k not in IGNORED and pair[0].get(k) != pair[1].get(k)})
    steps = [_measure(runner, *(unflatten(c) for c in current), "evidence-based model", [])]
    remaining = list(differing)
    groups = [*GROUPS, (OTHER, lambda k: True)]
    for label, belongs in groups:
        keys = [k for k in remaining if belongs(k)]
        if not keys:
            continue
        remaining = [k for k in remaining if k not in keys]
        for now, target in zip(current, targets, strict=True):
            for key in keys:
                if key in target:
                    now[key] = target[key]
                else:
                    now.pop(key, None)
        steps.append(_measure(runner, *(unflatten(c) for c in current), label, keys))
    return steps


def steps_table(steps: Sequence[Step]) -> pd.DataFrame:
    """One row per swap: the values after it and its contribution."""
    rows = []
    for previous, step in zip([None, *steps[:-1]], steps, strict=True):
        row: dict[str, Any] = {"step": step.label, "do_nothing_2032": step.do_nothing,
                               "kept_at_home_2032": step.kept_at_home,
                               "cost_2032_cash_gbp_bn": step.cost_cash_bn}
        for name, value in (("do_nothing", step.do_nothing),
                            ("kept_at_home", step.kept_at_home),
                            ("cost_cash_bn", step.cost_cash_bn)):
            row[f"change_{name}"] = (value - getattr(previous, name if name != "cost_cash_bn"
                                                     else "cost_cash_bn")
                                     if previous is not None else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def claims_table(steps: Sequence[Step], review_runs: tuple[ScenarioResult, ScenarioResult],
                 evidence_runs: tuple[ScenarioResult, ScenarioResult]) -> pd.DataFrame:
    """Claim | review says | review-assumptions model | evidence model | carried by."""

    def metrics(pair: tuple[ScenarioResult, ScenarioResult]) -> dict[str, float]:
        base, full = pair
        do_nothing = value_in(base, "looked_after", YEAR)
        cash = float(base.ds["cost_gbp_cash"].sel(year=YEAR).sum()) / 1e9 \
            if "cost_gbp_cash" in base.ds else float("nan")
        return {"do_nothing": do_nothing,
                "kept_at_home": do_nothing - value_in(full, "looked_after", YEAR),
                "cost_cash_bn": cash}

    review, evidence = metrics(review_runs), metrics(evidence_runs)
    rows = []
    for claim, said, metric in CLAIMS:
        changes = [(getattr(s, metric) - getattr(p, metric), s.label)
                   for p, s in zip(steps[:-1], steps[1:], strict=True)]
        gap = getattr(steps[-1], metric) - getattr(steps[0], metric)
        largest = max(changes, key=lambda c: abs(c[0]))
        share = largest[0] / gap if gap else float("nan")
        rows.append({"claim": claim, "review": said,
                     "review_assumptions_model": review[metric],
                     "evidence_based_model": evidence[metric],
                     "carried_by": f"{largest[1]} ({largest[0]:+,.{2 if 'cost' in metric else 0}f}"
                                   f", {share:.0%} of the gap)"})
    return pd.DataFrame(rows)


def _format(value: Any, column: str) -> str:
    if isinstance(value, str):
        return value
    if value != value:
        return "–"
    if "cost" in column or column.endswith("_bn"):
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def _row_format(frame: pd.DataFrame, row: pd.Series, column: str) -> str:
    value = row[column]
    if column in ("review_assumptions_model", "evidence_based_model"):
        return (f"£{value:,.2f}bn" if "£" in str(row["review"]) else f"{value:,.0f}")
    return _format(value, column)


def to_markdown(frame: pd.DataFrame) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |",
             "|" + "|".join("---" if isinstance(frame[c].iloc[0], str) else "---:"
                            for c in columns)
             + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_row_format(frame, row, c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _html_table(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_row_format(frame, row, c))}</td>"
                         for c in frame.columns) + "</tr>" for _, row in frame.iterrows())
    return f"<table id=\"{table_id}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Reconciliation:
    claims: pd.DataFrame
    steps: pd.DataFrame
    fitted: dict[str, Any]


def reconcile(results: Sequence[ScenarioResult]) -> Reconciliation | None:
    """The reconciliation, or None without all four runs."""
    found = [find_baseline(results, name) for name in (*EVIDENCE, *REVIEW)]
    if any(r is None for r in found):
        return None
    evidence_runs = (found[0], found[1])
    review_runs = (found[2], found[3])
    evidence = tuple(config_of(r) for r in evidence_runs)  # type: ignore[arg-type]
    review = tuple(config_of(r) for r in review_runs)  # type: ignore[arg-type]
    steps = attribution(evidence, review)  # type: ignore[arg-type]
    fitted = review[1]["levers"]["family_help"]
    return Reconciliation(claims_table(steps, review_runs, evidence_runs),  # type: ignore[arg-type]
                          steps_table(steps), fitted)


ORDER_NOTE = ("Sequential attribution: from the evidence-based scenarios (baseline, "
              "review-full), swap one group of assumptions at a time to the "
              "review-assumptions values, in this order: "
              + "; ".join(f"({i}) {label}" for i, (label, _) in enumerate(GROUPS, 1))
              + f"; then {OTHER}.  Each step re-runs the stock-flow engine; a group's "
              "contribution is the change it makes, so the contributions depend on the order "
              "(interactions go to the later group) and add up to the gap exactly.")


def requirement_text(fitted: dict[str, Any]) -> str:
    """What the review's claim requires, in one paragraph."""
    effect, risk = float(fitted["effect"]), float(fitted["risk_ratio"])
    return (f"To give 30,000 more children at home in 2032, family help must cut the entry "
            f"hazard of the families it helps by {effect:.0%} (against {EVIDENCE_EFFECTS}), "
            f"reach families {risk:.1f} times as likely as the average child in need to enter "
            "care (evidence-model range 0.5-2), keep its full last-year size after the money "
            f"ends, funded from the savings it makes (sustain = {fitted['sustain']}), with "
            "its effect on families already helped fading by "
            f"{float(fitted['decay_per_year']):.0%} a year; and the do-nothing path needs "
            "entry rates per child to rise, where the data to 2022 have them falling "
            "(trailing seven-year slope -2.4 % a year).  Inside the evidence ranges the "
            "closest fit is in the layer's header (scenarios/layers/review-assumptions.toml).")


def reconciliation_html(results: Sequence[ScenarioResult]) -> str:
    """The report section (empty without the four runs)."""
    found = reconcile(results)
    if found is None:
        return ""
    return ("<h2 id=\"reconciliation\">The review's claims reconciled with the evidence</h2>"
            + _html_table(found.claims, "reconciliation-table")
            + f"<p class=\"note\">{html.escape(ORDER_NOTE)}</p>"
            + _html_table(found.steps, "reconciliation-steps")
            + f"<p><b>What the claim requires.</b> {html.escape(requirement_text(found.fitted))}"
            "  The review-assumptions rows of the comparison table are measured against the "
            "evidence baseline; their own do-nothing is review-assumptions-baseline.</p>")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reconciliation tables as Markdown from saved runs in a folder."""
    from sim.errors import InputError
    from sim.results.compare import load_results

    folder = Path((argv or sys.argv[1:] or ["outputs"])[0])
    results = load_results([folder / f"{n}.nc" for n in (*EVIDENCE, *REVIEW)])
    found = reconcile(results)
    if found is None:
        raise InputError(f"{folder}: needs {', '.join(n + '.nc' for n in (*EVIDENCE, *REVIEW))}")
    print(to_markdown(found.claims))
    print(ORDER_NOTE + "\n")
    print(to_markdown(found.steps))
    print(requirement_text(found.fitted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
