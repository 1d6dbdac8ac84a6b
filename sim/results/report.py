"""The comparison report: one self-contained HTML file (charts embedded as base64 PNG).

Why self-contained: the report is mailed and attached to papers; a single file with
no external images, scripts or styles opens anywhere and cannot lose its charts.  It
is rebuilt by ``cicsim compare`` (``make run``) from the saved runs, the sensitivity
table and the sweep summaries; nothing in it is typed by hand except the wording.
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sim.model.costs import COST_PARAMETERS, PRICE_BASE
from sim.model.lever_parameters import LEVER_DESCRIPTIONS, LEVER_PARAMETERS
from sim.results.areas import report_section
from sim.results.compare import (
    ScenarioResult,
    column_title,
    find_baseline,
    reference_for,
    run_metadata,
    value_in,
)

REVIEW_KEPT_AT_HOME_2032 = 30_000  # review.csv: "30,000 more children living safely..."
REVIEW_BASELINE_2032 = 100_000  # review.csv: "approaching 100,000" by 2032


def atomic_write_text(path: Path, text: str) -> Path:
    """Write via a temporary file and rename, so make never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(name, 0o644)
        os.replace(name, path)
    finally:
        if os.path.exists(name):
            os.unlink(name)
    return path


@dataclass
class Figure:
    """A PNG to embed, with its heading and a caption saying how to read it."""

    title: str
    path: Path
    caption: str = ""
    anchor: str = ""


@dataclass
class ReportInputs:
    results: Sequence[ScenarioResult]
    table: pd.DataFrame
    baseline: str
    figures: list[Figure] = field(default_factory=list)
    sensitivity: list[pd.DataFrame] = field(default_factory=list)
    sweeps: list[pd.DataFrame] = field(default_factory=list)
    reconciliation_html: str = ""  # sim.reconciliation.reconciliation_html, made by the caller


def embed_png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _format_cell(value: object, column: str) -> str:
    if isinstance(value, str):
        return html.escape(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return html.escape(str(value))
    if number != number:
        return "–"
    if "_gbp_bn" in column:
        return f"{number:,.2f}"
    if abs(number) < 1e-6:  # float noise of a difference of equal runs
        return "0"
    if abs(number) < 10 and number != int(number):
        return f"{number:.3g}"
    return f"{number:,.0f}"


def html_table(frame: pd.DataFrame, table_id: str, titles: bool = True) -> str:
    head = "".join(f"<th>{html.escape(column_title(c) if titles else c)}</th>"
                   for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = "".join(
            f"<td class=\"{'text' if isinstance(row[c], str) else 'num'}\">"
            f"{_format_cell(row[c], c)}</td>" for c in frame.columns)
        body.append(f"<tr>{cells}</tr>")
    return (f"<table id=\"{table_id}\"><thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def review_comparison(results: Sequence[ScenarioResult], baseline: str,
                      reform: str = "review-full", year: int = 2032) -> str:
    """The modelled reform effect next to the review's 30,000, with the reasons for the
    difference computed from the runs (empty without both runs)."""
    reference = find_baseline(results, baseline)
    scenario = find_baseline(results, reform)
    if reference is None or scenario is None:
        return ""
    base_value = value_in(reference, "looked_after", year)
    reform_value = value_in(scenario, "looked_after", year)
    if base_value != base_value or reform_value != reform_value:
        return ""
    kept = base_value - reform_value
    years = [int(y) for y in scenario.ds["year"].values if int(y) > scenario.base_year]

    def difference(name: str, y: int) -> float:
        return value_in(reference, name, y) - value_in(scenario, name, y)

    kept_by_year = {y: difference("looked_after", y) for y in years}
    peak_year = max(kept_by_year, key=lambda y: kept_by_year[y])
    money = {y: value_in(scenario, "programme_cost_gbp", y) for y in years}
    funded = [y for y in years if money[y] > 0]
    served = [value_in(scenario, "family_help_served", y) for y in years]
    served = [s for s in served if s > 0]
    avoided = {y: difference("started", y) for y in years}
    best = max(avoided, key=lambda y: avoided[y])
    best_share = avoided[best] / value_in(reference, "started", best)
    share = kept / base_value
    review_share = REVIEW_KEPT_AT_HOME_2032 / REVIEW_BASELINE_2032
    spend = (f"£{sum(money.values()) / 1e9:,.2f}bn is spent in {funded[0]}-{funded[-1]}"
             if funded else "No programme money is spent")
    reach = (f"Family help reaches at most {max(served):,.0f} children a year" if served
             else "No family help is funded")
    scaled = kept * REVIEW_BASELINE_2032 / base_value
    return (
        f"<p id=\"review-30000\"><b>{html.escape(reform)} minus {html.escape(baseline)} in "
        f"{year}: {kept:,.0f} children kept at home</b> (looked after {reform_value:,.0f} vs "
        f"{base_value:,.0f}: {share:.1%} fewer), against the review's \""
        f"{REVIEW_KEPT_AT_HOME_2032:,} more children living safely with their families by "
        f"{year}\" ({review_share:.0%} fewer than its do-nothing path of \"approaching "
        f"{REVIEW_BASELINE_2032:,}\").  Why the model finds so many fewer:</p><ol>"
        f"<li><b>Time-limited money.</b> {spend}; the effect peaks at "
        f"{kept_by_year[peak_year]:,.0f} in {peak_year} and decays afterwards: children "
        "kept out would by now have left care anyway (ageing out, going home), and entries "
        "return to the baseline hazard when the money stops.  The review's figure assumes a "
        "lasting reform (savings reinvested in family help), which this scenario does not "
        "fund.</li>"
        f"<li><b>Reach and effect sizes.</b> {reach}; with the trial evidence (19 % fewer "
        "entries among those helped, family group conferencing) starts fall by at most "
        f"{avoided[best]:,.0f} a year ({best_share:.0%}, in {best}).  {review_share:.0%} "
        "fewer children in care needs starts cut by roughly that share for most of a "
        "decade, or much larger effects on exits; the tornado chart shows which "
        "assumptions matter most.</li>"
        f"<li><b>Counterfactual (a small part).</b> This do-nothing path reaches "
        f"{base_value:,.0f}, not about {REVIEW_BASELINE_2032:,}.  Levers change hazards in "
        "proportion, so a higher counterfactual scales the effect roughly in proportion: "
        f"about {scaled:,.0f} against {REVIEW_BASELINE_2032:,}.</li></ol>")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.82em;margin:1em 0;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee}figure{margin:1.5em 0}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}
"""


def _assumption_tables() -> str:
    lever_rows = [{"lever": name, "parameter": key, "central": p.value, "low": p.low,
                   "high": p.high, "unit": p.unit, "source": p.source,
                   "caveat": p.caveat}
                  for name, parameters in LEVER_PARAMETERS.items()
                  for key, p in parameters.items()]
    cost_rows = [{"parameter": key, "central": p.value, "low": p.low, "high": p.high,
                  "unit": p.unit, "source": p.source} for key, p in COST_PARAMETERS.items()]
    levers = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(d)}</li>"
                     for n, d in LEVER_DESCRIPTIONS.items())
    return (f"<ul>{levers}</ul>"
            + html_table(pd.DataFrame(lever_rows), "lever-assumptions", titles=False)
            + f"<h3>Unit costs ({PRICE_BASE})</h3>"
            + html_table(pd.DataFrame(cost_rows), "cost-assumptions", titles=False))


def build_html(inputs: ReportInputs) -> str:
    """The report as one HTML string."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>cicsim: scenario comparison</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Children in care in England: scenario comparison</h1>",
        f"<p class=\"note\">Built {created} by <code>cicsim compare</code> from "
        f"{len(inputs.results)} runs.  Years end 31 March; stocks at 31 March.  Money in "
        f"{PRICE_BASE}, discounted at 3.5 % a year to the base year (HM Treasury Green "
        "Book) where stated.  Baseline: <code>"
        f"{html.escape(inputs.baseline)}</code>.</p>",
        "<h2 id=\"comparison\">Comparison</h2>",
        html_table(inputs.table, "comparison-table"),
        "<p class=\"note\">Kept at home = baseline minus scenario children looked after. "
        "Net saving = baseline minus scenario discounted cost over the projected years, "
        "programme money included (positive = saves money).  Replicate runs: means.</p>",
        review_comparison(inputs.results, inputs.baseline),
        inputs.reconciliation_html,  # sim/reconciliation.py, made by the caller
        report_section(inputs.results, [reference_for(r, inputs.results, inputs.baseline)
                                        for r in inputs.results]),  # runs by area
    ]
    for figure in inputs.figures:
        anchor = figure.anchor or figure.path.stem
        parts.append(
            f"<figure id=\"{html.escape(anchor)}\"><h2>{html.escape(figure.title)}</h2>"
            f"<img alt=\"{html.escape(figure.title)}\" src=\"{embed_png(figure.path)}\">"
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")
    for table in inputs.sensitivity:
        if table.empty:
            continue
        shown = table[["parameter", "metric", "value_low", "value_central", "value_high",
                       "result_low", "central", "result_high", "swing"]]
        parts.append(f"<h2>Sensitivity table: {html.escape(str(table['scenario'].iloc[0]))}"
                     "</h2>" + html_table(shown, "sensitivity-table", titles=False))
    for table in inputs.sweeps:
        name = str(table["key"].iloc[0]) if len(table) else ""
        parts.append(f"<h2>Sweep table: {html.escape(name)}</h2>"
                     + html_table(table.drop(columns=["description"], errors="ignore"),
                                  "sweep-table"))
    parts += ["<h2 id=\"assumptions\">Lever chains and cost assumptions</h2>",
              "<p>Each lever: money by year → capacity (money ÷ unit cost) → coverage "
              "(capacity ÷ eligible pool in the funded areas, capped at 1, × area share) → "
              "effect on a hazard, with lag and ramp-up.  Details: docs/levers.md.</p>",
              _assumption_tables(),
              "<h2 id=\"provenance\">Runs</h2>",
              html_table(pd.DataFrame(run_metadata(inputs.results)), "runs", titles=False),
              "</body></html>"]
    return "\n".join(parts)


def write_report(inputs: ReportInputs, path: Path) -> Path:
    return atomic_write_text(path, build_html(inputs))
