"""Rolling-origin backtest by local authority: does shrinkage forecast an area better?

For each origin year the national parameters are re-estimated from data up to the
origin (``load_observed(origin)``), every authority's parameters from its own data up
to the origin (``load_area_observed(origin)``, inside
:func:`sim.estimation.areas.area_parameters`), all authorities are projected in one
batch, and the projected 31 March stock is scored against what each authority
published later.  Four rate methods (:data:`sim.estimation.area_rates.METHODS`):
``shrinkage`` (empirical Bayes toward England), ``regional`` (toward the authority's
region, the default), ``raw`` (each authority's own rates,
no pooling) and ``national`` (England's rates for everyone, each authority's own
levels); and three trend treatments: ``national`` (the recent slopes of England's
published rates to the origin, carried as the default forecast treatment carries
them, :data:`TREATMENT`), ``own`` (the same, with each authority's entry slope
England's plus its own shrunk relative slope) and ``hold`` (the origin's rates
held).  A naive ``no_change`` benchmark (the origin's published stock) is scored
beside them.

Not re-calibrated per origin (the national backtest, ``cicsim backtest``, does that and
chose the trend treatment): every trend slope here is re-derived from data up to the
origin, so nothing after the origin is read.  Authorities formed after an origin
(Dorset and BCP 2019, North and West Northamptonshire 2021) are not scored: their own
figures start after most origins.

Outputs: ``skill.csv`` (one row per method x trend x authority x origin x horizon) and
``skill.md`` (pooled MAPE, stock-weighted absolute percentage error, and the share of
authorities each method forecasts best).
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.calibration.backtest import TREATMENTS, parse_origins, recent_trend_keys
from sim.datasets import load_area_observed, load_observed
from sim.engines import stockflow
from sim.errors import InputError
from sim.estimation.area_rates import METHODS
from sim.estimation.area_registry import Area, registry
from sim.estimation.areas import area_parameters
from sim.estimation.estimate import estimate_parameters
from sim.scenarios.loader import load_scenario
from sim.scenarios.schema import FIRST_BASE_YEAR, LAST_DATA_YEAR

TREATMENT = "recent_declining_damped_0.9_1"  # the national default (forecast.toml)
# national: England's recent slopes for every authority; own: the same plus each
# authority's shrunk relative entry slope; hold: no slopes.
TRENDS = ("national", "own", "hold")
BENCHMARK = "no_change"
Row = dict[str, Any]


@dataclass(frozen=True)
class Scored:
    """Every row of one backtest and the settings that made it."""

    rows: list[Row]
    origins: tuple[int, ...]
    horizon: int
    areas: int


def scored_areas(data_dir: Path | None = None) -> list[Area]:
    """Authorities that publish their own figures at every origin (no successors)."""
    return [r.area for r in registry(data_dir) if not r.predecessors]


def origin_config(base: dict[str, Any], origin: int, horizon: int, trend: str,
                  data_dir: Path | None) -> dict[str, Any]:
    """The scenario as of ``origin``: base year, end year and trend slopes from data up
    to the origin only (``hold``: every slope 0)."""
    config = copy.deepcopy(base)
    config["run"]["base_year"] = origin
    config["run"]["end_year"] = origin + horizon
    treatment = TREATMENTS[TREATMENT]
    config["trends"].update(treatment.trends)
    slopes = recent_trend_keys(load_observed(origin, data_dir), origin, treatment)
    for dotted, value in slopes.items():
        config["trends"][dotted.split(".", 1)[1]] = value if trend != "hold" else 0.0
    return config


def _stock(observed: dict[str, Any], area: Area, year: int) -> float | None:
    obs = observed.get(area.dfe_code)
    return None if obs is None else obs.get("looked_after_31_march", year)


def backtest_origin(base: dict[str, Any], origin: int, horizon: int,
                    areas: Sequence[Area], actual: dict[str, Any],
                    methods: Sequence[str] = METHODS, trends: Sequence[str] = TRENDS,
                    data_dir: Path | None = None) -> list[Row]:
    """Rows for one origin: every method x trend, every authority, horizons 1..h."""
    rows: list[Row] = []
    at_origin = load_area_observed(origin, data_dir)
    years = range(origin + 1, origin + horizon + 1)

    def score(method: str, trend: str, area: Area, year: int, projected: float) -> None:
        observed = _stock(actual, area, year)
        if observed is None or observed <= 0:
            return
        rows.append({"method": method, "trend": trend, "area_code": area.code,
                     "area_name": area.name, "origin": origin, "horizon": year - origin,
                     "year": year, "observed": observed, "projected": projected,
                     "error_pct": (projected / observed - 1.0) * 100.0})

    for trend in trends:
        config = origin_config(base, origin, horizon, trend, data_dir)
        national = estimate_parameters(config, data_dir=data_dir)
        for method in methods:
            params = area_parameters(config, areas, method=method, national=national,
                                     data_dir=data_dir,
                                     trends="own" if trend == "own" else "national")
            result = stockflow.project_batch(params, [config] * len(params))
            by_year = dict(zip(result["years"], result["records"], strict=True))
            for i, area in enumerate(areas):
                for year in years:
                    score(method, trend, area, year, float(by_year[year]["looked_after"][i]))
    for area in areas:
        start = _stock(at_origin, area, origin)
        if start is not None:
            for year in years:
                score(BENCHMARK, "-", area, year, start)
    return rows


def run_area_backtest(origins: Sequence[int], horizon: int, scenario: str | Path,
                      methods: Sequence[str] = METHODS, trends: Sequence[str] = TRENDS,
                      areas: Sequence[Area] | None = None, data_dir: Path | None = None,
                      progress: Callable[[int], None] | None = None) -> Scored:
    """Every origin's rows (module docstring)."""
    for origin in origins:
        if not FIRST_BASE_YEAR <= origin < LAST_DATA_YEAR:
            raise InputError(f"backtest-areas: origin {origin} outside "
                             f"{FIRST_BASE_YEAR}-{LAST_DATA_YEAR - 1}")
    if horizon < 1:
        raise InputError(f"backtest-areas: --horizon {horizon} must be at least 1")
    base = copy.deepcopy(load_scenario(scenario).config)
    areas = list(scored_areas(data_dir) if areas is None else areas)
    actual = load_area_observed(LAST_DATA_YEAR, data_dir)
    rows: list[Row] = []
    for origin in origins:
        rows += backtest_origin(base, origin, horizon, areas, actual, methods, trends,
                                data_dir)
        if progress is not None:
            progress(origin)
    return Scored(rows, tuple(origins), horizon, len(areas))


def common_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows whose (authority, origin, year) every method x trend scored, so the
    methods are compared on the same points (the no-change benchmark has none from
    2018, when authorities' stock was not published)."""
    keys: dict[tuple[str, str], set[tuple[str, int, int]]] = {}
    for r in rows:
        keys.setdefault((r["method"], r["trend"]), set()).add(
            (r["area_code"], r["origin"], r["year"]))
    shared = set.intersection(*keys.values()) if keys else set()
    return [r for r in rows if (r["area_code"], r["origin"], r["year"]) in shared]


def pooled(rows: Sequence[Row], method: str, trend: str,
           horizons: Sequence[int] | None = None) -> dict[str, float]:
    """Pooled MAPE, median APE, stock-weighted APE and bias (%) of one method."""
    chosen = [r for r in rows if r["method"] == method and r["trend"] == trend
              and (horizons is None or r["horizon"] in horizons)]
    if not chosen:
        return {"n": 0, "mape": np.nan, "median": np.nan, "wape": np.nan, "bias": np.nan}
    errors = np.array([r["error_pct"] for r in chosen])
    observed = np.array([r["observed"] for r in chosen])
    return {"n": len(chosen), "mape": float(np.abs(errors).mean()),
            "median": float(np.median(np.abs(errors))),
            "wape": float((np.abs(errors) * observed).sum() / observed.sum()),
            "bias": float(errors.mean())}


def per_area_mape(rows: Sequence[Row], method: str, trend: str) -> dict[str, float]:
    by_area: dict[str, list[float]] = {}
    for r in rows:
        if r["method"] == method and r["trend"] == trend:
            by_area.setdefault(r["area_code"], []).append(abs(r["error_pct"]))
    return {code: float(np.mean(v)) for code, v in by_area.items()}


def combos(rows: Sequence[Row]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["method"], r["trend"]) for r in rows))


def best_combo(rows: Sequence[Row]) -> tuple[str, str]:
    """The model method x trend with the lowest pooled MAPE (the rule for the default)."""
    model = [c for c in combos(rows) if c[0] != BENCHMARK]
    return min(model, key=lambda c: pooled(rows, *c)["mape"])


def write_report(scored: Scored, out_dir: str | Path) -> dict[str, Path]:
    """``skill.csv`` and ``skill.md`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = scored.rows
    csv_path = out / "skill.csv"
    fields = ["method", "trend", "area_code", "area_name", "origin", "horizon", "year",
              "observed", "projected", "error_pct"]
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k])
                             for k in fields})
    horizons = range(1, scored.horizon + 1)
    every = rows
    rows = common_rows(rows)
    lines = [
        "# Backtest by local authority: children looked after at 31 March",
        "",
        f"Origins {scored.origins[0]}-{scored.origins[-1]}, horizons 1-{scored.horizon}, "
        f"{scored.areas} authorities (those publishing their own figures at every origin); "
        "data up to each origin only.  Generated by `cicsim backtest-areas`; one row per "
        "point in `skill.csv`.  MAPE: mean absolute percentage error over every "
        "authority x origin x horizon (each authority counts equally); WAPE: absolute "
        "errors weighted by the published stock (large authorities count more).  "
        f"Scored on the {len(rows) // max(len(combos(rows)), 1)} points every method "
        f"has (of {len(every)} rows; `skill.csv` has them all).",
        "",
        "| method | trend | points | MAPE % | median APE % | WAPE % | bias % |"
        + "".join(f" MAPE h={h} % |" for h in horizons),
        "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(horizons),
    ]
    best = best_combo(rows)
    for method, trend in combos(rows):
        p = pooled(rows, method, trend)
        by_h = "".join(f" {pooled(rows, method, trend, [h])['mape']:.2f} |" for h in horizons)
        name = f"**{method}**" if (method, trend) == best else method
        lines.append(f"| {name} | {trend} | {p['n']} | {p['mape']:.2f} | {p['median']:.2f} "
                     f"| {p['wape']:.2f} | {p['bias']:+.2f} |{by_h}")
    lines += ["", f"Lowest pooled MAPE: **{best[0]}** rates with **{best[1]}** trends.", ""]
    scored_methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines += ["## Which method forecasts each authority best", "",
              "Share of authorities whose own MAPE (over origins and horizons) is lowest "
              "under each rate method, per trend treatment:", "",
              "| trend | " + " | ".join(scored_methods) + " |",
              "|---|" + "---:|" * len(scored_methods)]
    for trend in dict.fromkeys(t for m, t in combos(rows) if m != BENCHMARK):
        tables = {m: per_area_mape(rows, m, trend) for m in scored_methods}
        codes = sorted(set.intersection(*(set(t) for t in tables.values()))) if all(
            tables.values()) else []
        wins = {m: 0 for m in scored_methods}
        for code in codes:
            wins[min(scored_methods, key=lambda m: tables[m][code])] += 1
        total = max(len(codes), 1)
        lines.append(f"| {trend} | " + " | ".join(f"{100 * wins[m] / total:.0f} %"
                                                  for m in scored_methods) + " |")
    md_path = out / "skill.md"
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"csv": csv_path, "report": md_path}


def _cmd(args: argparse.Namespace) -> int:
    origins = parse_origins(args.origins)
    if not origins:
        raise InputError(f"backtest-areas: --origins {args.origins!r} names no year")
    methods = args.methods.split(",") if args.methods else list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"backtest-areas: --methods: unknown method '{unknown[0]}'; "
                         f"valid: {', '.join(METHODS)}")
    if not Path(args.scenario).is_file():
        raise InputError(f"{args.scenario}: scenario file not found")
    areas = None
    if args.area:
        from sim.estimation.areas import resolve_areas

        areas = resolve_areas(args.area, args.data_dir)
        scoreable = set(scored_areas(args.data_dir))
        areas = [a for a in areas if a in scoreable]
        if not areas:
            raise InputError(f"backtest-areas: --area {args.area!r} names no authority "
                             "with its own figures at every origin")

    def progress(origin: int) -> None:
        if not args.quiet:
            print(f"backtest-areas: origin {origin} done", file=sys.stderr, flush=True)

    scored = run_area_backtest(origins, args.horizon, args.scenario, methods=methods,
                               areas=areas, data_dir=args.data_dir, progress=progress)
    paths = write_report(scored, args.out_dir)
    for method, trend in combos(scored.rows):
        p = pooled(scored.rows, method, trend)
        print(f"{method:10s} {trend:9s} pooled MAPE {p['mape']:.2f} %  WAPE {p['wape']:.2f} %")
    print(f"wrote {paths['report']} and {paths['csv']}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``backtest-areas`` to ``cicsim`` (listed in :data:`sim.cli.EXTENSIONS`)."""
    parser = subparsers.add_parser(
        "backtest-areas", help="rolling-origin backtest by local authority: shrinkage vs "
        "own rates vs England's rates, scored on each authority's published stock")
    parser.add_argument("--origins", default="2016:2020",
                        help="origin years, FIRST:LAST or a comma list (default 2016:2020)")
    parser.add_argument("--horizon", type=int, default=2, help="years projected (default 2)")
    parser.add_argument("--methods", default="",
                        help=f"comma list of rate methods (default: {','.join(METHODS)})")
    parser.add_argument("--area", default="", help="only these authorities (an --area "
                        "selector; default every authority with its own figures)")
    parser.add_argument("--scenario", default="scenarios/baseline.toml",
                        help="scenario whose settings (not trends) are used")
    parser.add_argument("--out-dir", default="outputs/backtest-areas")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=_cmd)
