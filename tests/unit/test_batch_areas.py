"""``cicsim batch --area`` (sim/batch, sim/run.py ``area_setup``/``finish_areas``).

Most run in one process (``workers=0``) on test_area_runs' fake authorities (the small
in-code model scaled per area), so they check the plumbing: tasks by area, seeds, lever
money, gathering, the England sum, resuming; one runs real authorities through the
command line on a local dask cluster.  Each batch costs about a second (task files,
gathering, costs, bands, the CSV), so only planning, hashing, names and bad input are
in the fast tier; the rest are marked slow.

The DES claims are exact (same seeds, same arithmetic: equal arrays, equal hashes).  A
stock-flow draw is compared with a separate run of that draw at rtol 1e-12: the same
projection batched with other members (summation order may differ in the last bit).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from test_area_runs import FAMILY_HELP, fake_areas, fake_resolve, scaled, scenario  # noqa: F401

import sim.run as run
from sim.batch import BatchResult, Task, TaskSpec, plan, run_batch, task_hash
from sim.batch.commands import _default_out
from sim.cli import main
from sim.results.areas import ENGLAND_SUM_CODE
from sim.scenarios.loader import load_scenario

REPO = Path(__file__).resolve().parents[2]
HASH = re.compile(r"data sha256 ([0-9a-f]{64})")


def _same_data(expected: xr.Dataset, batch: xr.Dataset) -> None:
    assert set(expected.data_vars) == set(batch.data_vars)
    for name in expected.data_vars:
        left, right = expected[name], batch[name].transpose(*expected[name].dims)
        np.testing.assert_array_equal(left.values, right.values, err_msg=name)
    for coord in ("area", "area_name", "region", "child_population"):
        np.testing.assert_array_equal(expected[coord].values, batch[coord].values)


SELECTOR = "Dorset,Wolverhampton"
SHORT = [*FAMILY_HELP, "run.end_year=2025"]


@pytest.fixture(scope="module")
def by_area(tmp_path_factory: pytest.TempPathFactory) -> tuple[xr.Dataset, BatchResult]:
    """Two fake areas x two replicates, one task each, and the same as an area run."""
    api = SimpleNamespace(resolve_areas=fake_resolve,
                          area_parameters=lambda config, areas: [scaled(a, config)
                                                                  for a in areas])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "_areas_api", lambda: api)
        sc = scenario(SHORT)
        expected = run.simulate_areas(sc, SELECTOR, engine="des", replicates=2, workers=1)
        out = tmp_path_factory.mktemp("areas") / "a.nc"
        return expected, run_batch([sc], "des", 2, out, workers=0, area=SELECTOR, chunk=1)


@pytest.mark.slow  # the fixture: ~3 s
def test_des_replicates_by_area_equal_the_area_run(by_area) -> None:  # type: ignore[no-untyped-def]
    """Replicate r of area A in a batch is replicate r of A in ``simulate_areas``: its
    own seed, capacity and lever money (the family-help money split by pool)."""
    expected, result = by_area
    _same_data(expected, result.dataset.sel(scenario="test", drop=True))
    assert result.tasks == 4 and result.dataset.attrs["area_selector"] == SELECTOR
    names = sorted(p.name for p in (result.nc_path.parent / ".batch" / "a").iterdir())
    assert names == [f"test.{code}.replicate-00000{r}-00000{r + 1}.nc"
                     for code in ("E06000059", "E08000031") for r in (0, 1)]


@pytest.mark.slow
def test_a_rerun_by_area_skips_the_finished_tasks(by_area, fake_areas) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _, result = by_area
    again = run_batch([scenario(SHORT)], "des", 2, result.nc_path, workers=0,
                      area=SELECTOR, chunk=1)
    assert (again.skipped, again.data_hash) == (4, result.data_hash)


def test_plan_and_task_hash_by_area() -> None:
    tasks = plan(["s"], "replicate", 3, 2, ["A", "B"])
    assert [(t.area, t.start, t.stop) for t in tasks] == [
        ("A", 0, 2), ("A", 2, 3), ("B", 0, 2), ("B", 2, 3)]
    config = scenario().config
    spec = TaskSpec(Task("s", "replicate", 0, 1, "A"), config, "des", area_selector="A,B")
    assert task_hash(spec) != task_hash(TaskSpec(Task("s", "replicate", 0, 1, "B"), config,
                                                 "des", area_selector="A,B"))
    # the selector too: an area's parameters are estimated with the others of its run
    assert task_hash(spec) != task_hash(TaskSpec(spec.task, config, "des",
                                                 area_selector="A"))


@pytest.mark.slow
def test_des_replicates_of_every_area_and_their_sum(fake_areas, tmp_path: Path) -> None:  # noqa: F811
    """``all``: every (fake) authority and England as their sum, as ``simulate_areas``."""
    sc = scenario(FAMILY_HELP)
    expected = run.simulate_areas(sc, "all", engine="des", replicates=2, workers=1)
    batch = run_batch([sc], "des", 2, tmp_path / "a.nc", workers=0, area="all")
    _same_data(expected, batch.dataset.sel(scenario="test", drop=True))
    assert batch.dataset.area.values[-1] == ENGLAND_SUM_CODE


@pytest.mark.slow
def test_draws_of_every_area_add_up_to_england(fake_areas, tmp_path: Path) -> None:  # noqa: F811
    """``--area all`` with draws: England's entry is the sum of the areas, draw by draw;
    every area gets the same draws (paired differences)."""
    result = run_batch([scenario(FAMILY_HELP)], "stockflow", 2, tmp_path / "d.nc",
                       workers=0, area="all")
    ds = result.dataset.sel(scenario="test", drop=True)
    assert dict(ds.looked_after.sizes) == {"area": 14, "draw": 2, "year": 9}
    assert result.tasks == 13
    areas = ds.looked_after.sel(area=[c for c in ds.area.values if c != ENGLAND_SUM_CODE])
    np.testing.assert_array_equal(areas.sum("area").values,
                                  ds.looked_after.sel(area=ENGLAND_SUM_CODE).values)
    assert not (ds.looked_after.isel(draw=0) == ds.looked_after.isel(draw=1)).all()
    assert "looked_after_quantiles" not in ds  # draws get no bands, as nationally


@pytest.mark.slow
def test_draws_by_area_equal_cicsim_run_with_the_draw_set(tmp_path: Path) -> None:
    """Draw d of an authority is ``cicsim run --area A`` with draw d's values set (and
    the authority re-estimated: its trends are England's, so apply_carried is exact)."""
    from sim.calibration import sample_parameter_sets
    from sim.calibration.layer import as_set_arguments

    settings = ["run.end_year=2025"]
    sc = load_scenario(REPO / "scenarios" / "baseline.toml", settings)
    result = run_batch([sc], "stockflow", 2, tmp_path / "d.nc", workers=0, area="Dorset",
                       chunk=1)
    ds = result.dataset.sel(scenario="baseline", drop=True)
    first = sample_parameter_sets(1, int(sc.config["run"]["seed"]))[0]
    drawn = load_scenario(REPO / "scenarios" / "baseline.toml",
                          [*settings, *as_set_arguments(first)])
    single = run.simulate(drawn, area="Dorset")
    for name in ("looked_after", "started", "cost_gbp"):
        np.testing.assert_allclose(ds[name].sel(draw=0).values, single[name].values,
                                   rtol=1e-12, err_msg=name)


@pytest.mark.slow
def test_england_as_area_is_the_national_batch(tmp_path: Path) -> None:
    """``--area england`` is England as a whole, as in ``cicsim run``: no area dimension."""
    sc = load_scenario(REPO / "scenarios" / "baseline.toml", ["run.end_year=2024"])
    result = run_batch([sc], "stockflow", 1, tmp_path / "e.nc", workers=0, area="England")
    assert "area" not in result.dataset.dims and result.tasks == 1


def test_default_output_names_carry_the_selector() -> None:
    base = load_scenario(REPO / "scenarios" / "baseline.toml")
    full = load_scenario(REPO / "scenarios" / "review-full.toml")
    assert _default_out([base], None) == Path("outputs/baseline-batch.nc")
    assert _default_out([base], "North West") == Path("outputs/baseline-north-west-batch.nc")
    assert _default_out([base, full], "all") == Path("outputs/batch-all.nc")
    assert _default_out([base, full], None) == Path("outputs/batch.nc")


@pytest.mark.parametrize(("argv", "message"), [
    (["--area", "Atlantis"], "--area: "),
    (["--area", "Dorset", "--workers", "0"], "--workers: must be at least 1"),
    (["--area", "Dorset", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"],
     "--workers: "),
    (["--area", "Dorset", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler: "),
])
def test_bad_area_and_cluster_options_are_one_line_exit_2(
        argv: list[str], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["batch", str(REPO / "scenarios" / "baseline.toml"), "--replicates", "2",
                 "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_lever_reinvesting_savings_is_refused_by_area_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["batch", str(REPO / "scenarios" / "baseline.toml"), "--replicates", "1",
                 "--area", "Dorset", "--quiet", "--out", str(tmp_path / "x.nc"),
                 "--set", "levers.family_help.funding_gbp_m={2024 = 10.0}",
                 "--set", "levers.family_help.sustain='reinvest_savings'"])
    err = capsys.readouterr().err
    assert code == 2 and "reinvest_savings" in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


# --- real authorities, on a local dask cluster (slow) --------------------------------

SMALL = ["--set", "run.population_scale=0.01", "--set", "run.end_year=2026"]


def _cicsim(*args: str, cwd: Path) -> str:
    return subprocess.run([sys.executable, "-m", "sim", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.slow
def test_batch_by_area_on_two_workers_equals_cicsim_run_by_area(tmp_path: Path) -> None:
    """The brief's claim, as a user would check it: ``cicsim batch --area A`` on two dask
    workers and ``cicsim run --engine des --area A`` write the same data (replicate r of
    each area is the same), and the same tidy CSV once the batch's scenario column is
    the run's."""
    scenario_file = str(REPO / "scenarios" / "baseline.toml")
    areas = "Dorset,Wirral"
    _cicsim("batch", scenario_file, "--engine", "des", "--replicates", "3", "--area", areas,
            "--workers", "2", "--out", str(tmp_path / "b.nc"), "--quiet", *SMALL,
            cwd=tmp_path)
    _cicsim("run", scenario_file, "--engine", "des", "--replicates", "3", "--area", areas,
            "--workers", "1", "--name", "baseline", "--out", str(tmp_path / "r.nc"),
            "--quiet", *SMALL, cwd=tmp_path)
    with xr.open_dataset(tmp_path / "b.nc") as b, xr.open_dataset(tmp_path / "r.nc") as r:
        batch = b.load().sel(scenario="baseline", drop=True)
        _same_data(r.load(), batch)
        assert list(batch.replicate.values) == [0, 1, 2]
