"""Funding sweeps: one file that expands into a family of runs.

A sweep file (``scenarios/sweeps/*.toml``; kept out of ``scenarios/*.toml`` so make's
one-file-one-scenario rule does not run it as a scenario) is a scenario layer plus a
``[sweep]`` table::

    name = "family-help"
    extends = "../baseline.toml"          # the scenario every run builds on
    [levers.family_help]
    funding_gbp_m = { "2024" = 500, ... } # for a year table: the profile over years
    [sweep]
    key = "levers.family_help.funding_gbp_m"
    values = [0, 500, 1000, 2000, 3000]   # year table: the total (£m); number: the value
    baseline = "../baseline.toml"         # what "kept at home" and savings compare with
    label = "family help, £m over five years"

Each value becomes one run named ``<name>-<value>``; a year table is scaled so its
total equals the value (same profile), a number is set directly.  The scenario part of
the file is applied as ``--set`` overrides on the ``extends`` file, so it is validated
by the one scenario validator.  Outputs: ``<out>/<name>/<run>.nc`` for every run, the
summary ``<out>/<name>.csv`` (a comparison-table row per value) and ``<out>/<name>.png``.
The runs go one after another in this process, or, with ``--workers``/``--scheduler``,
each as a task on a dask cluster (the same files: :func:`run_sweep`, docs/batch.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from sim.errors import InputError
from sim.estimation.cache import cached_parameters
from sim.model.parameters import ModelParameters
from sim.progress import bar as progress_bar
from sim.results.compare import DEFAULT_YEARS, comparison_table, from_dataset
from sim.run import run_to_file, simulate
from sim.scenarios.loader import Scenario, load_scenario, read_toml, toml_value

SWEEP_KEYS = ("key", "values", "baseline", "label")
# Keys that do not change estimated parameters: their runs share one estimation.
_ESTIMATION_FREE = ("levers.", "costs.")


@dataclass
class Sweep:
    """A parsed sweep file."""

    name: str
    path: Path
    base: Path | None  # the scenario the runs extend
    overrides: list[str]  # the file's own scenario keys, as --set items
    key: str
    values: list[float]
    baseline: Path
    label: str
    description: str = ""
    runs: list[tuple[float, Scenario]] = field(default_factory=list)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Nested tables -> ``a.b.c=value`` items; year tables stay whole (one value)."""
    items = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not all(str(k).isdigit() for k in value):
            items.extend(_flatten(value, path + "."))
        else:
            items.append(f"{path}={toml_value(value)}")
    return items


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (one-line errors naming the file and key)."""
    path = Path(path)
    data = read_toml(path, "sweep")
    table = data.pop("sweep", None)
    if not isinstance(table, dict):
        raise InputError(f"{path}: missing [sweep] table (keys: {', '.join(SWEEP_KEYS)})")
    unknown = sorted(set(table) - set(SWEEP_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key 'sweep.{unknown[0]}'; valid keys in [sweep]: "
                         f"{', '.join(SWEEP_KEYS)}")
    for required in ("key", "values", "baseline"):
        if required not in table:
            raise InputError(f"{path}: key 'sweep.{required}' is required")
    values = table["values"]
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)):
        raise InputError(f"{path}: key 'sweep.values' must be a non-empty list of numbers")
    if len(set(values)) != len(values):
        raise InputError(f"{path}: key 'sweep.values' has repeated values")
    name = str(data.pop("name", path.stem))
    description = str(data.pop("description", ""))
    extends = data.pop("extends", None)
    base = (path.parent / extends).resolve() if extends else None
    baseline = (path.parent / str(table["baseline"])).resolve()
    if not baseline.exists():
        raise InputError(f"{path}: key 'sweep.baseline': file '{table['baseline']}' not found")
    sweep = Sweep(name=name, path=path, base=base, overrides=_flatten(data),
                  key=str(table["key"]), values=[float(v) for v in values],
                  baseline=baseline, label=str(table.get("label", table["key"])),
                  description=description)
    sweep.runs = expand(sweep)
    return sweep


def _run_name(sweep: Sweep, value: float) -> str:
    return f"{sweep.name}-{value:g}"


def expand(sweep: Sweep) -> list[tuple[float, Scenario]]:
    """One resolved scenario per swept value."""
    try:
        template = load_scenario(sweep.base, sweep.overrides)
        current = template.get(sweep.key)
    except KeyError:
        raise InputError(f"{sweep.path}: key 'sweep.key' = '{sweep.key}' is not a scenario "
                         "key (set it in this file, e.g. a [levers.NAME] funding table)") from None
    except InputError as exc:
        raise InputError(f"{sweep.path}: {exc}") from None
    runs = []
    for value in sweep.values:
        if isinstance(current, dict):
            total = sum(current.values())
            if total <= 0:
                raise InputError(f"{sweep.path}: key '{sweep.key}' is the profile the sweep "
                                 "scales: it needs a positive total")
            swept = {year: amount * value / total for year, amount in current.items()}
        else:
            swept = value
        items = [*sweep.overrides, f"{sweep.key}={toml_value(swept)}",
                 f"name={toml_value(_run_name(sweep, value))}"]
        if sweep.description:
            items.append(f"description={toml_value(sweep.description)}")
        try:
            runs.append((value, load_scenario(sweep.base, items)))
        except InputError as exc:
            raise InputError(f"{sweep.path}: value {value:g}: {exc}") from None
    return runs


def simulate_run(item: tuple[Scenario, ModelParameters | None]) -> xr.Dataset:
    """One run of a sweep on a dask worker: exactly what ``run_to_file`` simulates (one
    DES worker process: dask's workers cannot start their own, and the results do not
    depend on the count)."""
    scenario, params = item
    return simulate(scenario, params=params, workers=1)


def _run_serially(runs: list[tuple[Scenario, ModelParameters | None]], run_dir: Path,
                  sweep: Sweep, quiet: bool) -> list[xr.Dataset]:
    """The runs one after another in this process (as ``make run`` calls it)."""
    (baseline, _), *swept = runs
    baseline_ds, _, _ = run_to_file(baseline, out=run_dir / f"{baseline.name}.nc")
    datasets = [baseline_ds]
    with progress_bar(len(swept), f"sweep {sweep.name}", quiet=quiet, unit="run") as bar:
        for (value, _), (scenario, params) in zip(sweep.runs, swept, strict=True):
            bar.set_postfix_str(f"{sweep.key} = {value:g}")
            ds, _, _ = run_to_file(scenario, out=run_dir / f"{scenario.name}.nc",
                                   params=params)
            datasets.append(ds)
            bar.update(1)
    return datasets


def _run_as_tasks(runs: list[tuple[Scenario, ModelParameters | None]], run_dir: Path,
                  sweep: Sweep, quiet: bool, workers: int, scheduler: str | None
                  ) -> list[xr.Dataset]:
    """Each run a task on dask (:func:`sim.batch.execute`; ``workers=0`` without a
    scheduler: in this process); this process writes each run's files as it arrives.
    Every output path is checked before any run starts."""
    from sim.batch.cluster import execute
    from sim.results.io import write_results
    from sim.results.paths import check_output_path

    paths = {}
    for scenario, _ in runs:
        paths[scenario.name] = check_output_path(run_dir / f"{scenario.name}.nc")
        check_output_path(paths[scenario.name].with_suffix(".csv"), suffixes=(".csv",))
    key = uuid.uuid4().hex[:12]  # this sweep's keys: a shared scheduler may hold others
    done: dict[str, xr.Dataset] = {}
    with progress_bar(len(runs), f"sweep {sweep.name}", quiet=quiet, unit="run") as bar:
        def save(item: tuple[Scenario, ModelParameters | None], ds: xr.Dataset) -> None:
            name = item[0].name
            write_results(ds, paths[name])
            done[name] = ds
            bar.update(1)

        execute({f"cicsim-sweep-{scenario.name}-{key}": (scenario, params)
                 for scenario, params in runs}, simulate_run, workers, scheduler, save)
    return [done[scenario.name] for scenario, _ in runs]


def run_sweep(sweep: Sweep, out_dir: Path, quiet: bool = False, workers: int | None = None,
              scheduler: str | None = None) -> tuple[Path, pd.DataFrame]:
    """Run every value and the baseline; write the runs, the summary CSV and its chart.

    Serial in this process by default.  ``workers`` (a local dask cluster of that many
    processes) or ``scheduler`` (an existing cluster) make each run a task
    (docs/batch.md); the files and the summary are the same either way (the summary
    byte for byte; a run's ``.nc`` differs only in its creation time and wall time).
    ``workers=0``: the task path in this process (tests)."""
    from sim.results.io import atomic_write_text
    from sim.results.plots import sweep_chart

    if workers is not None or scheduler is not None:
        from sim.batch.cluster import check_cluster_options

        check_cluster_options(workers or None, scheduler)
    run_dir = out_dir / sweep.name
    baseline = load_scenario(sweep.baseline)
    shared: ModelParameters | None = None
    if sweep.key.startswith(_ESTIMATION_FREE):
        shared = cached_parameters(sweep.runs[0][1].config)
    runs = [(baseline, None), *((scenario, shared) for _, scenario in sweep.runs)]
    if workers is None and scheduler is None:
        datasets = _run_serially(runs, run_dir, sweep, quiet)
    else:
        datasets = _run_as_tasks(runs, run_dir, sweep, quiet, workers or 0, scheduler)
    results = [from_dataset(ds) for ds in datasets]
    # the usual table years, within the runs (a short sweep still gets a last year)
    end = min(int(r.ds["year"].values[-1]) for r in results)
    years = [y for y in DEFAULT_YEARS if y < end] + [end]
    table = comparison_table(results, baseline=baseline.name, years=years)
    table = table[table["scenario"] != baseline.name].reset_index(drop=True)
    table.insert(1, "value", sweep.values)
    table.insert(2, "label", sweep.label)
    table.insert(3, "key", sweep.key)
    summary = out_dir / f"{sweep.name}.csv"
    atomic_write_text(summary, table.to_csv(index=False))
    sweep_chart(summary, out_dir / f"{sweep.name}.png")
    return summary, table
