"""cicsim batch (sim/batch.py), the results pair and temp files (sim/results/io.py), and
the make dependency rules: fast tests, in one process (``workers=0``: no cluster).

The DES runs are tiny (0.5 % of England, two projected years) and use the shipped data
through scenarios/baseline.toml; the claims are exact (equal arrays, equal hashes), so
there is no sampling tolerance to derive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim.batch import BatchResult, Task, TaskSpec, dependency_rules, plan, run_batch, task_hash
from sim.cli import main
from sim.errors import InputError
from sim.results import io
from sim.run import simulate
from sim.run import variant as run_variant
from sim.scenarios.loader import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[2]
SMALL = ["run.population_scale=0.002", "run.end_year=2024"]


@pytest.fixture(scope="module")
def small_baseline() -> Scenario:
    return load_scenario(REPO / "scenarios" / "baseline.toml", SMALL)


@pytest.fixture(scope="module")
def batched(small_baseline: Scenario, tmp_path_factory: pytest.TempPathFactory
            ) -> BatchResult:
    """Two replicates, one task each, in this process."""
    out = tmp_path_factory.mktemp("batch") / "b.nc"
    return run_batch([small_baseline], "des", 2, out, workers=0, chunk=1)


def _same_data(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        left, right = a[name], b[name].transpose(*a[name].dims)
        np.testing.assert_array_equal(left.values, right.values, err_msg=name)
        assert left.attrs == right.attrs, name  # units and definitions kept


def test_batch_replicates_equal_cicsim_run_replicates(small_baseline: Scenario,
                                                       batched: BatchResult) -> None:
    """Replicate r of a batch is replicate r of `cicsim run --engine des` (same seed
    streams), with costs and bands post-processed the same way."""
    run = simulate(small_baseline, engine="des", replicates=2, workers=1)
    assert batched.tasks == 2 and batched.skipped == 0
    batch = batched.dataset.sel(scenario="baseline", drop=True)
    _same_data(run, batch)
    assert list(batch.replicate.values) == [0, 1]
    attrs = io.read_results(batched.nc_path).attrs
    assert attrs["run_id"] == batched.data_hash[:16] == io.csv_run_id(batched.csv_path)
    per_scenario = json.loads(attrs["scenario_attrs"])["baseline"]
    assert per_scenario["des_replicates"] == 2 and "replicates = 2" in \
        per_scenario["scenario_toml"]


def test_one_task_for_both_replicates_gives_the_same_data(small_baseline: Scenario,
                                                          batched: BatchResult,
                                                          tmp_path: Path) -> None:
    other = run_batch([small_baseline], "des", 2, tmp_path / "c.nc", workers=0, chunk=2)
    assert other.tasks == 1 and other.data_hash == batched.data_hash


def test_a_rerun_skips_finished_tasks_and_redoes_foreign_ones(small_baseline: Scenario,
                                                              batched: BatchResult) -> None:
    again = run_batch([small_baseline], "des", 2, batched.nc_path, workers=0, chunk=1)
    assert (again.skipped, again.data_hash) == (2, batched.data_hash)
    # a task file from other inputs (here: its hash spoiled) is redone, not trusted
    task_file = next((batched.nc_path.parent / ".batch" / "b").glob("*000001-000002.nc"))
    with xr.open_dataset(task_file) as ds:
        spoiled = ds.load().assign_attrs(task_hash="0" * 64)
    spoiled.to_netcdf(task_file)
    redone = run_batch([small_baseline], "des", 2, batched.nc_path, workers=0, chunk=1)
    assert (redone.skipped, redone.data_hash) == (1, batched.data_hash)


def test_the_task_hash_covers_seed_engine_and_task(small_baseline: Scenario) -> None:
    task = Task("baseline", "replicate", 0, 1)
    spec = TaskSpec(task, small_baseline.config, "des")
    changed = run_variant(small_baseline, seed=7).config
    assert task_hash(spec) == task_hash(TaskSpec(task, small_baseline.config, "des"))
    assert task_hash(spec) != task_hash(TaskSpec(task, changed, "des"))
    assert task_hash(spec) != task_hash(TaskSpec(Task("baseline", "replicate", 1, 2),
                                                 small_baseline.config, "des"))


def test_draws_are_paired_across_scenarios_and_chunks(tmp_path: Path) -> None:
    """Stock-flow parameter draws: draw d is the same calibrated sample whatever the
    chunking, and the scenarios of one batch share it (paired differences)."""
    scenarios = [load_scenario(REPO / "scenarios" / f"{name}.toml", ["run.end_year=2028"])
                 for name in ("baseline", "review-full")]
    a = run_batch(scenarios, "stockflow", 4, tmp_path / "d.nc", workers=0, chunk=3)
    b = run_batch(scenarios, "stockflow", 4, tmp_path / "e.nc", workers=0, chunk=4)
    assert a.data_hash == b.data_hash
    ds = a.dataset
    assert dict(ds.looked_after.sizes) == {"scenario": 2, "draw": 4, "year": 7}
    last = ds.looked_after.isel(year=-1)
    assert np.unique(last.sel(scenario="baseline").values).size == 4  # draws differ
    # draw 0 is `cicsim run` with the first calibrated sample set by --set
    from sim.calibration import sample_parameter_sets
    from sim.calibration.layer import as_set_arguments

    first = sample_parameter_sets(1, int(scenarios[0].config["run"]["seed"]))[0]
    single = simulate(load_scenario(REPO / "scenarios" / "baseline.toml",
                                    ["run.end_year=2028", *as_set_arguments(first)]))
    np.testing.assert_allclose(ds.looked_after.sel(scenario="baseline", draw=0).values,
                               single.looked_after.values, rtol=1e-12)


def test_plan_and_task_names() -> None:
    tasks = plan(["a", "b"], "replicate", 5, 2)
    assert [(t.scenario, t.start, t.stop) for t in tasks] == [
        ("a", 0, 2), ("a", 2, 4), ("a", 4, 5), ("b", 0, 2), ("b", 2, 4), ("b", 4, 5)]
    assert Task("x", "draw", 0, 250, area="E09000001").name == \
        "x.E09000001.draw-000000-000250"


@pytest.mark.parametrize("argv", [
    ["--draws", "3", "--engine", "des"],
    ["--replicates", "3", "--engine", "stockflow"],
    ["--engine", "stockflow"],
    ["--replicates", "0"],
    ["--replicates", "2", "--workers", "0"],
    ["--replicates", "2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
    ["--replicates", "2", "--out", "outdir"],
    ["--replicates", "2", "--out", "file.txt"],
])
def test_bad_batch_arguments_are_one_line_exit_2(argv: list[str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outdir").mkdir()
    code = main(["batch", str(REPO / "scenarios" / "baseline.toml"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outdir"]  # nothing written


def test_unreachable_scheduler_is_bad_input(small_baseline: Scenario, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--scheduler"):
        run_batch([small_baseline], "des", 1, tmp_path / "x.nc",
                  scheduler="tcp://127.0.0.1:1")


def test_dependency_rules_follow_extends_chains() -> None:
    rules = dependency_rules([REPO / "scenarios" / "review-delayed.toml",
                              REPO / "scenarios" / "sweeps" / "family-help.toml"],
                             rule_file="deps.d")
    delayed, sweep = rules.splitlines()
    target, prerequisites = delayed.split(":")
    assert target.split() == ["outputs/review-delayed.nc", "deps.d"]
    names = {Path(p).name for p in prerequisites.split()}
    assert {"review-full.toml", "baseline.toml", "forecast.toml", "calibrated.toml",
            "uncalibrated.toml"} == names
    assert sweep.startswith("outputs/family-help.nc") and "baseline.toml" in sweep


# --- the results pair and temporary files (sim/results/io.py) ------------------------

def _small_dataset(value: float) -> xr.Dataset:
    return xr.Dataset({"looked_after": ("year", np.array([value, value + 1]))},
                      coords={"year": [2022, 2023]})


def test_a_mismatched_pair_is_refused_by_read_and_compare(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """A kill between the two renames leaves a .nc and a .csv of different runs."""
    nc, csv = io.write_results(_small_dataset(1.0), tmp_path / "a" / "run.nc")
    _, other_csv = io.write_results(_small_dataset(2.0), tmp_path / "b" / "run.nc")
    io.read_results(nc)  # a matching pair reads
    csv.write_bytes(other_csv.read_bytes())
    with pytest.raises(InputError, match="different runs") as caught:
        io.read_results(nc)
    assert "\n" not in str(caught.value) and "run.nc" in str(caught.value)
    assert main(["compare", str(nc), "--out", str(tmp_path / "report")]) == 2
    assert "different runs" in capsys.readouterr().err
    csv.unlink()  # a .nc alone (CSV deleted by the user) still reads
    io.read_results(nc)


def test_identical_results_get_identical_run_ids(tmp_path: Path) -> None:
    """The run id is the data hash: reruns stay byte-identical, and swapping the CSV of
    an identical rerun is (correctly) not a mismatch."""
    _, first = io.write_results(_small_dataset(1.0), tmp_path / "x.nc")
    before = first.read_bytes()
    io.write_results(_small_dataset(1.0).assign_attrs(created="later"), tmp_path / "x.nc")
    assert first.read_bytes() == before


def test_stale_temporary_files_are_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)  # that process has exited
    live_pid = os.getppid()
    stale = tmp_path / f".run.nc.{dead_pid}.abcd1234.tmp"
    live = tmp_path / f".run.csv.{live_pid}.efgh5678.tmp"
    old = tmp_path / ".run.nc.x9y8z7.tmp"  # no pid in the name, untouched for 2 hours
    fresh = tmp_path / ".run.csv.q1w2e3.tmp"  # no pid, just written
    for path in (stale, live, old, fresh):
        path.write_text("partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    io.write_results(_small_dataset(1.0), tmp_path / "run.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, fresh.name, "run.csv", "run.nc"])


def test_shipped_worker_config_removes_the_malloc_variable() -> None:
    """``etc/dask/cicsim.yaml`` (README: ``DASK_CONFIG=etc/dask dask worker ...``) merged
    over dask's defaults leaves the nanny no ``MALLOC_*`` variable to set, and keeps
    the one-thread BLAS ones.  (That the nanny drops a ``null`` was checked by hand,
    docs/batch.md.)"""
    import dask.config
    import distributed  # noqa: F401  (registers the nanny's defaults)
    from distributed.nanny import _get_env_variables

    shipped = dask.config.collect(paths=[str(REPO / "etc" / "dask")], env={})
    merged = dask.config.merge(dask.config.config, shipped)
    environ = merged["distributed"]["nanny"]["pre-spawn-environ"]
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        spawned = _get_env_variables("distributed.nanny.pre-spawn-environ")
    assert not [k for k in spawned if k.startswith("MALLOC_")]
    assert spawned.get("OPENBLAS_NUM_THREADS") == "1"


def test_a_batch_csv_holds_member_means_and_the_nc_every_member(tmp_path: Path) -> None:
    """The tidy CSV of a batch: one row per year and breakdown (the mean over draws),
    not one per draw; variables without the member axis (the bands) as they are; the
    NetCDF keeps every draw, and both carry its run id."""
    ds = xr.Dataset(
        {"looked_after": (("draw", "year"), np.array([[1.0, 2.0], [3.0, 6.0]]),
                          {"units": "children"}),
         "looked_after_quantiles": (("quantile", "year"), np.array([[1.5, 2.5]]))},
        coords={"draw": [0, 1], "year": [2022, 2023], "quantile": [0.5]})
    nc, csv = io.write_results(ds, tmp_path / "b.nc", csv_source=io.member_means(ds, "draw"))
    frame = pd.read_csv(csv)
    assert "draw" not in frame.columns
    means = frame[frame["variable"] == "looked_after"]
    assert means["value"].tolist() == [2.0, 4.0] and set(means["unit"]) == {"children"}
    assert len(frame[frame["variable"] == "looked_after_quantiles"]) == 2
    written = io.read_results(nc)
    assert written.sizes["draw"] == 2 and io.csv_run_id(csv) == written.attrs["run_id"]
    assert list(io.member_means(ds, "draw").data_vars) == list(ds.data_vars)
    assert io.member_means(ds, "replicate") is ds
