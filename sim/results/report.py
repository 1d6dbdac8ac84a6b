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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sim.model.costs import COST_PARAMETERS, PRICE_BASE
from sim.model.lever_parameters import LEVER_DESCRIPTIONS, LEVER_PARAMETERS
from sim.results.areas import report_section
from sim.results.compare import (
    KINDS,
    ScenarioResult,
    column_title,
    find_baseline,
    reference_for,
    run_metadata,
    value_in,
)
from sim.results.io import atomic_write_text

REVIEW_KEPT_AT_HOME_2032 = 30_000  # review.csv: "30,000 more children living safely..."
REVIEW_BASELINE_2032 = 100_000  # review.csv: "approaching 100,000" by 2032


@dataclass
class Figure:
    """A PNG to embed, with its heading and a caption saying how to read it, in one of
    the report's sections (a scenario kind, or ``sensitivity``)."""

    title: str
    path: Path
    caption: str = ""
    anchor: str = ""
    section: str = "policy"


@dataclass
class ReportInputs:
    results: Sequence[ScenarioResult]
    table: pd.DataFrame
    baseline: str
    figures: list[Figure] = field(default_factory=list)
    sensitivity: list[pd.DataFrame] = field(default_factory=list)
    sweeps: list[pd.DataFrame] = field(default_factory=list)
    reconciliation_html: str = ""  # sim.reconciliation.reconciliation_html, made by the caller
    notes: list[str] = field(default_factory=list)  # e.g. no baseline; shown at the top
    out_dir: Path | None = None  # the report's folder: file paths are shown relative to it


def embed_png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _format_cell(value: object, column: str) -> str:
    if isinstance(value, str):  # identifiers may break after "_" (family_<wbr>help)
        if column == "engine":  # "stock-flow" on one line (a non-breaking hyphen)
            value = value.replace("-", "\u2011")
        return html.escape(value).replace("_", "_<wbr>")
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
    """A table whose cells carry their column (``c-<column>``) and kind (``num`` /
    ``text``) as classes, so the stylesheet can keep short labels on one line."""
    def css(column: object) -> str:
        return "c-" + "".join(ch if ch.isalnum() else "-" for ch in str(column))

    head = "".join(f"<th class=\"{css(c)}\">"
                   f"{html.escape(column_title(c) if titles else str(c))}</th>"
                   for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = "".join(
            f"<td class=\"{'text' if isinstance(row[c], str) else 'num'} {css(c)}\">"
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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em;box-sizing:border-box}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.76em;margin:1em 0;width:100%;table-layout:auto}
th,td{border:1px solid #ccc;padding:.25em .35em;vertical-align:top}
td{overflow-wrap:break-word}th{background:#f3f3f3;font-weight:600;overflow-wrap:normal}
td.c-scenario,td.c-compared-with{min-width:6em;overflow-wrap:anywhere}
table.areas td{overflow-wrap:normal}table.areas td:first-child{overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.text{min-width:5em}
img{max-width:100%;height:auto;border:1px solid #eee}figure{margin:1.5em 0}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}
.warning{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em .8em}
dl.scenarios{font-size:.85em}dl.scenarios dt{font-weight:600;float:left;clear:left;
margin-right:.5em}dl.scenarios dd{margin:0 0 .2em 0}
code{overflow-wrap:anywhere}
"""

KIND_INTROS = {
    "policy": "Funding scenarios and the do-nothing baseline they are measured against.  "
              "The chart opens with DfE's published stock 2012-2022 joined to each "
              "projection; shaded: the baseline's 50 / 80 / 95 % prediction bands, built "
              "from the errors of projections made from origins 2014-2020 with data up to "
              "each origin only (cicsim backtest).  Differences between scenarios are far "
              "more certain than levels: see the paired bands in the table.",
    "variant": "The same model under other assumptions (UASC arrivals, uncalibrated "
               "trends, the review's own assumptions): how much the answer depends on "
               "them.  Not policies, so kept apart from the funding scenarios.  Shaded: "
               "each run's 80 % prediction band where it has one.",
    "demo": "Runs that show a feature of the model (for example the discrete-event engine "
            "with capacity queues on a small sample).  Their numbers carry sampling noise "
            "and are not projections to quote.",
}
# Comparison columns not shown in the report's tables (they stay in comparison.csv):
# the section says the kind, the scenario list gives the descriptions, and the
# undiscounted total cost gives way to the discounted one the net saving uses, so each
# table fits a 1,000 px page.
HIDDEN_COLUMNS = ("kind", "description")


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


def _figure_html(figure: Figure) -> str:
    anchor = figure.anchor or figure.path.stem
    return (f"<figure id=\"{html.escape(anchor)}\"><h3>{html.escape(figure.title)}</h3>"
            f"<img alt=\"{html.escape(figure.title)}\" src=\"{embed_png(figure.path)}\">"
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")


def _scenario_list(group: Sequence[ScenarioResult]) -> str:
    items = "".join(f"<dt>{html.escape(r.name)}</dt><dd>{html.escape(r.description) or '–'}"
                    "</dd>" for r in group)
    return f"<dl class=\"scenarios\">{items}</dl>"


def _kind_section(inputs: ReportInputs, kind: str) -> list[str]:
    """One kind's section: its history chart first, its table, the scenario list, then
    its other charts (and, for policies, the review comparison)."""
    group = [r for r in inputs.results if r.kind == kind]
    if not group:
        return []
    figures = [f for f in inputs.figures if f.section == kind]
    names = {r.name for r in group}
    table = inputs.table[inputs.table["scenario"].isin(names)]
    table = table.drop(columns=[c for c in table.columns if c in HIDDEN_COLUMNS
                                or str(c).startswith("total_cost_gbp_bn")])
    parts = [f"<h2 id=\"{kind}\">{html.escape(KINDS[kind])}</h2>",
             f"<p class=\"note\">{html.escape(KIND_INTROS[kind])}</p>"]
    parts += [_figure_html(f) for f in figures[:1]]
    parts += [html_table(table, f"comparison-{kind}"), _scenario_list(group)]
    if kind == "policy":
        parts.append("<p class=\"note\">Kept at home = the reference (compared with) minus "
                     "the scenario's children looked after.  Net saving = reference minus "
                     "scenario discounted cost over the projected years, programme money "
                     "included (positive = saves money).  Replicate runs: means.</p>")
        parts.append(review_comparison(inputs.results, inputs.baseline))
    if kind == "variant":
        parts.append(inputs.reconciliation_html)  # sim/reconciliation.py, by the caller
    parts += [_figure_html(f) for f in figures[1:]]
    return parts


def _sensitivity_section(inputs: ReportInputs) -> list[str]:
    figures = [f for f in inputs.figures if f.section == "sensitivity"]
    tables = [t for t in inputs.sensitivity if not t.empty]
    if not figures and not tables and not inputs.sweeps:
        return []
    parts = ["<h2 id=\"sensitivity\">Sensitivity and funding sweeps</h2>"]
    parts += [_figure_html(f) for f in figures]
    for table in tables:
        shown = table[["parameter", "metric", "value_low", "value_central", "value_high",
                       "result_low", "central", "result_high", "swing"]].copy()
        shown["metric"] = shown["metric"].map(column_title)
        parts.append(f"<h3>Sensitivity table: {html.escape(str(table['scenario'].iloc[0]))}"
                     "</h3>" + html_table(shown, "sensitivity-table", titles=False))
    for table in inputs.sweeps:
        label = str(table["label"].iloc[0]) if len(table) else ""
        key = str(table["key"].iloc[0]) if len(table) else ""
        shown = table.drop(columns=["description", "label", "key", "kind", "engine",
                                    "compared_with"], errors="ignore")
        shown = shown.rename(columns={"value": label or "value"})
        parts.append(f"<h3>Sweep table: {html.escape(label)} (<code>{html.escape(key)}"
                     "</code>)</h3>" + html_table(shown, "sweep-table"))
    return parts


def _short_path(text: str) -> str:
    """A layer as the reader can find it: relative to the working folder (the
    repository, when built by make) if inside it, else the file name."""
    path = Path(text)
    if not path.is_absolute():
        return text
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return path.name


def _runs_table(inputs: ReportInputs) -> str:
    """Provenance, with each file relative to the report (the report is mailed: an
    absolute path on the machine that built it means nothing to its reader)."""
    rows = run_metadata(inputs.results)
    for row, result in zip(rows, inputs.results, strict=True):
        if result.path is not None and inputs.out_dir is not None:
            row["file"] = os.path.relpath(result.path.resolve(), inputs.out_dir.resolve())
        elif result.path is not None:
            row["file"] = result.path.name
        row["git_commit"] = row["git_commit"][:12]
        row["layers"] = " < ".join(_short_path(layer) for layer in row["layers"].split(" < "))
    frame = pd.DataFrame(rows).rename(columns={"git_commit": "commit",
                                               "created_utc": "created (UTC)"})
    return html_table(frame, "runs", titles=False)


def build_html(inputs: ReportInputs) -> str:
    """The report as one HTML string: policies first (opening with the published
    history joined to their projections), then the area section, sensitivity and
    sweeps, modelling variants, demonstrations, assumptions and provenance."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    notes = "".join(f"<p class=\"warning\" id=\"note-{i}\">{html.escape(n)}</p>"
                    for i, n in enumerate(inputs.notes))
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>cicsim: scenario comparison</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Children in care in England: scenario comparison</h1>",
        f"<p class=\"note\">Built {created} by <code>cicsim compare</code> from "
        f"{len(inputs.results)} runs.  Years end 31 March; stocks at 31 March.  Money in "
        f"{PRICE_BASE}, discounted at 3.5 % a year to the base year (HM Treasury Green "
        "Book) where stated.  Baseline: <code>"
        f"{html.escape(inputs.baseline)}</code>.  Sections: "
        + ", ".join(f"<a href=\"#{k}\">{html.escape(v)}</a>" for k, v in KINDS.items()
                    if any(r.kind == k for r in inputs.results))
        + ", <a href=\"#assumptions\">assumptions</a>, <a href=\"#provenance\">runs</a>."
        "</p>",
        notes,
        "<div id=\"comparison\"></div>",
    ]
    parts += _kind_section(inputs, "policy")
    parts.append(report_section(  # runs by area (sim/results/areas.py), if any
        inputs.results, [reference_for(r, inputs.results, inputs.baseline)
                         for r in inputs.results]))
    parts += _sensitivity_section(inputs)
    parts += _kind_section(inputs, "variant")
    parts += _kind_section(inputs, "demo")
    parts += ["<h2 id=\"assumptions\">Lever chains and cost assumptions</h2>",
              "<p>Each lever: money by year → capacity (money ÷ unit cost) → coverage "
              "(capacity ÷ eligible pool in the funded areas, capped at 1, × area share) → "
              "effect on a hazard, with lag and ramp-up.  Details: docs/levers.md.</p>",
              _assumption_tables(),
              "<h2 id=\"provenance\">Runs</h2>",
              _runs_table(inputs),
              "</body></html>"]
    return "\n".join(p for p in parts if p)


def write_report(inputs: ReportInputs, path: Path) -> Path:
    return atomic_write_text(path, build_html(inputs))
