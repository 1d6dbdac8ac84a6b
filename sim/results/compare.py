"""Compare scenario results: one row per scenario, read only from the results schema.

Why a table of a few numbers: the decision questions are "how many children in care
in 2025, 2027 and 2032", "what does it cost" and "is it worth it against doing
nothing".  Every figure comes from the saved datasets (either engine; replicate means
for the discrete-event engine), so a table can be rebuilt from ``outputs/*.nc`` alone.

Definitions (years end 31 March; money in 2021-22 prices, see ``sim.model.costs``):

- ``kept_at_home_YEAR`` = baseline looked after - scenario looked after at 31 March of
  that year: the review's "more children living safely with their families";
- ``starts_avoided`` = baseline starts - scenario starts, summed over projected years;
- cumulative figures sum the projected years every compared run covers (base year + 1
  ... the earliest end year), so runs with different horizons stay comparable;
  discounted costs weight year Y by ``(1 + r) ** -(Y - base year)`` with ``r`` the
  run's ``costs.discount_rate`` (HM Treasury Green Book 3.5 %);
- ``net_saving_discounted`` = baseline discounted cost - scenario discounted cost
  (positive = the scenario saves money, programme spending included);
- ``kept_at_home_YEAR_80_band`` = the paired 80 % band of that difference.  Both runs
  share the trend and parameter errors that make the *level* uncertain (common
  parameters, common random numbers), and lever effects are proportional to the
  hazards they act on, so a level that is x % off moves the difference by about x %:
  the band is the difference times the baseline's relative 80 % band
  (``looked_after_quantiles``, sim/results/bands.py).  Far narrower than the level's
  band, which is the point: the scenarios' ranking is much surer than their level.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sim.errors import InputError
from sim.results.areas import area_total, has_areas
from sim.results.io import read_results

DEFAULT_YEARS: tuple[int, ...] = (2025, 2027, 2032)
DEFAULT_DISCOUNT_RATE = 0.035


@dataclass
class ScenarioResult:
    """One saved run with the labels reports need."""

    name: str
    description: str
    path: Path | None
    ds: xr.Dataset
    # a run with an area dimension: ``ds`` is its total (sim.results.areas.area_total),
    # this keeps the areas for the report's area section
    area_ds: xr.Dataset | None = None

    @property
    def has_replicates(self) -> bool:
        return "replicate" in self.ds.dims

    @property
    def base_year(self) -> int:
        return int(self.ds["year"].values[0])

    @property
    def engine(self) -> str:
        return str(self.ds.attrs.get("engine", ""))

    @property
    def kind(self) -> str:
        """``policy``, ``variant`` or ``demo`` (the scenario's ``kind`` key; runs saved
        before scenarios had one count as policies, the schema's default)."""
        value = _scenario_key(self.ds, "kind") or "policy"
        return value if value in KINDS else "policy"


KINDS: dict[str, str] = {  # kind -> section heading in the report, in order
    "policy": "Policy scenarios",
    "variant": "Modelling variants",
    "demo": "Demonstrations",
}


def _scenario_key(ds: xr.Dataset, key: str) -> str:
    try:
        return str(tomllib.loads(ds.attrs.get("scenario_toml", "")).get(key, ""))
    except tomllib.TOMLDecodeError:
        return ""


def _description(ds: xr.Dataset) -> str:
    return _scenario_key(ds, "description")


def variable_label(name: str) -> str:
    """A variable's human label: its definition in the results schema up to the first
    colon, semicolon or bracket ('looked_after' -> 'children looked after at 31
    March'); the name itself when the schema does not know it."""
    from sim.engines.schema import VARIABLES

    if name not in VARIABLES:
        return name.replace("_", " ")
    definition = VARIABLES[name].definition
    for stop in (":", ";", " ("):
        definition = definition.split(stop, 1)[0]
    return definition.strip()


def from_dataset(ds: xr.Dataset, path: Path | None = None) -> ScenarioResult:
    name = str(ds.attrs.get("scenario") or (path.stem if path else "unnamed"))
    if has_areas(ds):  # named scenario@selector, compared as its total over the areas
        name = f"{name}@{ds.attrs.get('area_selector', 'areas')}"
        return ScenarioResult(name=name, description=_description(ds), path=path,
                              ds=area_total(ds), area_ds=ds)
    return ScenarioResult(name=name, description=_description(ds), path=path, ds=ds)


def load_results(paths: Sequence[str | Path]) -> list[ScenarioResult]:
    """Read result files; every problem is one line naming the file."""
    if not paths:
        raise InputError("compare: no result files given (e.g. cicsim compare outputs/*.nc)")
    results: list[ScenarioResult] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{path}: result file not found")
        try:
            ds = read_results(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a cicsim results file ({exc})") from None
        if "looked_after" not in ds:
            raise InputError(f"{path}: not a cicsim results file (no 'looked_after' "
                             "variable)")
        results.append(from_dataset(ds, path))
    names = [r.name for r in results]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        clashes = "; ".join(
            f"'{n}' in " + ", ".join(str(r.path) for r in results if r.name == n)
            for n in duplicates)
        raise InputError(f"compare: two runs share a scenario name: {clashes} (re-run one "
                         "with --name NEW, or write it with --out outputs/NEW.nc)")
    return results


def no_baseline_note(results: Sequence[ScenarioResult], baseline: str) -> str:
    """One line saying the baseline is absent (empty when it is present): every
    "vs baseline" figure is then blank, and the reader must be told why."""
    if find_baseline(results, baseline) is not None:
        return ""
    names = ", ".join(r.name for r in results)
    return (f"no baseline: no run is named '{baseline}' (runs: {names}), so the "
            "columns compared with it are empty; add outputs/baseline.nc or pass "
            "--baseline NAME")


def mean_over_replicates(values: xr.DataArray) -> xr.DataArray:
    return values.mean("replicate") if "replicate" in values.dims else values


def series(result: ScenarioResult, name: str) -> xr.DataArray:
    """A scalar-per-year variable, replicate mean (a ``cost_gbp`` total if asked)."""
    if name in ("cost_gbp_total", "cost_gbp_cash_total"):
        values = result.ds[name.removesuffix("_total")].sum("cost_component")
    else:
        values = result.ds[name]
    return mean_over_replicates(values)


def value_in(result: ScenarioResult, name: str, year: int) -> float:
    values = series(result, name)
    if year not in values["year"].values:
        return float("nan")
    return float(values.sel(year=year))


def discount_factors(years: np.ndarray, base_year: int, rate: float) -> np.ndarray:
    """Present-value weights to the base year (Green Book: ``(1 + r) ** -t``)."""
    return np.asarray((1.0 + rate) ** -(years - base_year), dtype=float)


def in_period(values: xr.DataArray, period: tuple[int, int]) -> xr.DataArray:
    years = values["year"]
    return values.sel(year=(years >= period[0]) & (years <= period[1]))


def common_period(results: Sequence[ScenarioResult]) -> tuple[int, int]:
    """Projected years every run covers: cumulative figures of runs with different
    horizons would not be comparable."""
    first = max(r.base_year for r in results) + 1
    last = min(int(r.ds["year"].values[-1]) for r in results)
    if last < first:
        raise InputError(f"compare: the runs share no projected year (latest start "
                         f"{first}, earliest end {last})")
    return first, last


def cumulative_cost(result: ScenarioResult, discounted: bool,
                    period: tuple[int, int] | None = None) -> float:
    """Total cost over ``period`` (default: the run's projected years), discounted to
    the year before the period starts if asked."""
    if "cost_gbp" not in result.ds:
        return float("nan")
    period = period or (result.base_year + 1, int(result.ds["year"].values[-1]))
    costs = in_period(series(result, "cost_gbp_total"), period)
    if discounted:
        rate = float(result.ds.attrs.get("cost_discount_rate", DEFAULT_DISCOUNT_RATE))
        costs = costs * discount_factors(costs["year"].values, period[0] - 1, rate)
    return float(costs.sum())


def cumulative(result: ScenarioResult, name: str,
               period: tuple[int, int] | None = None) -> float:
    if name not in result.ds:
        return float("nan")
    period = period or (result.base_year + 1, int(result.ds["year"].values[-1]))
    return float(in_period(series(result, name), period).sum())


def find_baseline(results: Sequence[ScenarioResult], baseline: str) -> ScenarioResult | None:
    for result in results:
        if result.name == baseline:
            return result
    return None


def reference_for(result: ScenarioResult, results: Sequence[ScenarioResult],
                  baseline: str) -> ScenarioResult | None:
    """The do-nothing a scenario is compared with: its family's own baseline when
    there is one (``review-assumptions-full`` -> ``review-assumptions-baseline``: the
    review's reform against the review's counterfactual), else ``baseline``.  A run
    by area is compared with the baseline run over the same areas
    (``baseline@pathfinders``), never with a national one."""
    if result.area_ds is not None:
        selector = result.area_ds.attrs.get("area_selector", "areas")
        return find_baseline(results, f"{baseline}@{selector}")
    family = result.name.rsplit("-", 1)[0] + "-baseline" if "-" in result.name else ""
    own = find_baseline(results, family) if family else None
    return own if own is not None else find_baseline(results, baseline)


def engine_label(result: ScenarioResult) -> str:
    """'stock-flow', or 'DES, 4 replicates, 2 % sample': how much to trust a row."""
    if result.engine != "des":
        return "stock-flow" if result.engine == "stockflow" else result.engine
    label = f"DES, {result.ds.sizes.get('replicate', 1)} replicates"
    try:
        scale = float(tomllib.loads(result.ds.attrs.get("scenario_toml", ""))
                      .get("run", {}).get("population_scale", 1.0))
    except (tomllib.TOMLDecodeError, TypeError, ValueError):
        scale = 1.0
    return label + (f", {scale:.0%} sample" if scale < 1 else "")


def paired_band(reference: ScenarioResult, result: ScenarioResult, year: int,
                level: float) -> str:
    """"low to high" of the difference reference - result in ``year`` (see the module
    docstring); empty when the reference carries no prediction bands."""
    if "looked_after_quantiles" not in reference.ds or result is reference:
        return ""
    bands = reference.ds["looked_after_quantiles"].sel(year=year)
    low_q, high_q = round(0.5 - level / 2, 3), round(0.5 + level / 2, 3)
    quantiles = [round(float(q), 3) for q in bands["quantile"].values]
    if low_q not in quantiles or high_q not in quantiles:
        return ""
    centre = float(bands.sel(quantile=0.5))
    difference = (value_in(reference, "looked_after", year)
                  - value_in(result, "looked_after", year))
    ends = sorted(difference * float(bands.sel(quantile=q)) / centre
                  for q in (low_q, high_q))
    return f"{ends[0]:,.0f} to {ends[1]:,.0f}"


def comparison_table(results: Sequence[ScenarioResult], baseline: str = "baseline",
                     years: Sequence[int] = DEFAULT_YEARS) -> pd.DataFrame:
    """One row per scenario (numbers unrounded; see :func:`to_markdown` for display).

    Without a baseline among ``results`` the columns relative to it are NaN."""
    if not years:
        raise InputError("compare: --years needs at least one year")
    period = common_period(results)
    span = f"{period[0]}_{period[1]}"
    last_year = years[-1]
    missing = float("nan")
    rows = []
    for result in results:
        reference = reference_for(result, results, baseline)
        row: dict[str, object] = {"scenario": result.name, "kind": result.kind,
                                  "engine": engine_label(result),
                                  "compared_with": reference.name if reference else ""}
        for year in years:
            row[f"looked_after_{year}"] = value_in(result, "looked_after", year)
        row[f"kept_at_home_{last_year}"] = (
            value_in(reference, "looked_after", last_year)
            - value_in(result, "looked_after", last_year) if reference else missing)
        row[f"kept_at_home_{last_year}_80_band"] = (
            paired_band(reference, result, last_year, 0.8) if reference else "")
        row[f"starts_avoided_{span}"] = (cumulative(reference, "started", period)
                                         - cumulative(result, "started", period)
                                         if reference else missing)
        row[f"programme_cost_gbp_m_{span}"] = cumulative(
            result, "programme_cost_gbp", period) / 1e6
        row[f"total_cost_gbp_bn_{span}"] = cumulative_cost(result, False, period) / 1e9
        row[f"total_cost_discounted_gbp_bn_{span}"] = cumulative_cost(
            result, True, period) / 1e9
        row["net_saving_discounted_gbp_m"] = (
            (cumulative_cost(reference, True, period) - cumulative_cost(result, True, period))
            / 1e6 if reference else missing)
        row[f"cost_{last_year}_gbp_bn"] = (value_in(result, "cost_gbp_total", last_year) / 1e9
                                           if "cost_gbp" in result.ds else missing)
        row[f"cost_{last_year}_cash_gbp_bn"] = (
            value_in(result, "cost_gbp_cash_total", last_year) / 1e9
            if "cost_gbp_cash" in result.ds else missing)
        row["description"] = result.description
        rows.append(row)
    table = pd.DataFrame(rows)
    # baseline first, then the order given
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["scenario"] != baseline, i))
    return table.iloc[order].reset_index(drop=True)


def _format(value: object, column: str) -> str:
    if isinstance(value, str):
        return value.replace("|", "/")
    number = float(value)  # type: ignore[arg-type]
    if np.isnan(number):
        return "–"
    if "_gbp_bn" in column:
        return f"{number:,.2f}"
    if round(number) == 0:
        return "0"  # not "-0" for float noise in a difference of equal runs
    return f"{number:,.0f}"


COLUMN_TITLES = {
    "scenario": "scenario",
    "compared_with": "compared with",
    "kind": "kind",
    "engine": "engine",
    "looked_after": "looked after",
    "kept_at_home": "kept at home",
    "starts_avoided": "starts avoided",
    "programme_cost_gbp_m": "programme £m",
    "total_cost_gbp_bn": "cost £bn",
    "total_cost_discounted_gbp_bn": "cost £bn discounted",
    "net_saving_discounted_gbp_m": "net saving £m discounted",
    "description": "description",
}


def column_title(column: str) -> str:
    """Readable header: 'looked_after_2032' -> 'looked after 2032',
    'kept_at_home_2032_80_band' -> 'kept at home 2032, 80 % band'."""
    if column.endswith("_80_band"):
        return f"{column_title(column.removesuffix('_80_band'))}, 80 % band"
    for stem, title in sorted(COLUMN_TITLES.items(), key=lambda kv: -len(kv[0])):
        if column == stem:
            return title
        if column.startswith(stem + "_"):
            suffix = column[len(stem) + 1:].replace("_", "–")
            return f"{title} {suffix}"
    if column.startswith("cost_") and column.endswith("_gbp_bn"):
        return f"cost {column[5:-7].replace('_', ' ')} £bn"
    return column.replace("_", " ")


# Unit suffixes of scenario keys, longest first ("foster_gbp_per_year" -> "£ a year").
_KEY_UNITS = (("_gbp_per_child_year", "£ per child-year"), ("_gbp_per_year", "£ a year"),
              ("_gbp_m", "£m"), ("_gbp", "£"), ("_years", "years"))
_KEY_WORDS = {"cin": "children in need", "uasc": "UASC"}


def parameter_label(key: str) -> str:
    """A scenario key as a chart label: 'levers.family_help.unit_cost_gbp' ->
    'family help: unit cost (£)', 'costs.cin_real_growth_per_year' -> 'cost: children
    in need real growth per year'.  Mechanical, so every key gets one; the key itself
    stays in the CSV for anyone who wants to set it."""
    parts = key.split(".")
    name, unit = parts[-1], ""
    for suffix, text in _KEY_UNITS:
        if name.endswith(suffix) and name != suffix.lstrip("_"):
            name, unit = name.removesuffix(suffix), text
            break
    group = {"levers": parts[1] if len(parts) > 2 else "lever", "costs": "cost"}.get(
        parts[0], ".".join(parts[:-1]))
    words = " ".join(_KEY_WORDS.get(w, w) for w in name.split("_"))
    label = f"{group.replace('_', ' ')}: {words}" if group else words
    return f"{label} ({unit})" if unit else label


TEXT_COLUMNS = ("scenario", "kind", "engine", "compared_with", "description")


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (no extra dependency)."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(column_title(c) for c in columns) + " |",
             "|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in columns) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_format(row[c], c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def run_metadata(results: Sequence[ScenarioResult]) -> list[dict[str, str]]:
    """Engine, commit and creation time of each run (for the report's provenance)."""
    rows = []
    for result in results:
        attrs = result.ds.attrs
        layers = attrs.get("scenario_layers", "[]")
        with contextlib.suppress(TypeError, ValueError):  # shown raw if not a JSON list
            layers = " < ".join(json.loads(layers))
        rows.append({"scenario": result.name, "engine": str(attrs.get("engine", "?")),
                     "replicates": str(result.ds.sizes.get("replicate", 1)),
                     "git_commit": str(attrs.get("git_commit", "?")),
                     "created_utc": str(attrs.get("created_utc", "?")),
                     "layers": str(layers),
                     "file": str(result.path) if result.path else ""})
    return rows
