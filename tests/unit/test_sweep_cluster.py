"""Sweeps on the batch engine (``cicsim sweep --workers N | --scheduler ADDRESS``): each
run a dask task, the files the same as the serial sweep's.

The claims are exact: the summary and every run's CSV byte for byte, every run's NetCDF
the same data (hash) and the same attributes but for the two that describe the moment
(``created_utc``, ``wall_time_s``: they differ between two serial sweeps too).  The
fast test runs the task path in this process (``workers=0``); the slow one on a local
cluster of two processes, through the command line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from test_compare_sweep import GOOD, sweep_file

from sim.cli import main
from sim.results.io import data_hash
from sim.sweep import load_sweep, run_sweep

MOMENT = ("created_utc", "wall_time_s")


def _same_sweep(serial: Path, tasks: Path) -> None:
    assert (serial / "fh.csv").read_bytes() == (tasks / "fh.csv").read_bytes()
    runs = sorted(p.name for p in (serial / "fh").iterdir())
    assert runs == sorted(p.name for p in (tasks / "fh").iterdir())
    assert runs == sorted(f"{n}.{s}" for n in ("baseline", "fh-0", "fh-400", "fh-800")
                          for s in ("csv", "nc"))
    for name in runs:
        left, right = serial / "fh" / name, tasks / "fh" / name
        if name.endswith(".csv"):
            assert left.read_bytes() == right.read_bytes(), name
            continue
        with xr.open_dataset(left) as a, xr.open_dataset(right) as b:
            assert data_hash(a.load()) == data_hash(b.load()), name
            assert {k: v for k, v in a.attrs.items() if k not in MOMENT} == \
                {k: v for k, v in b.attrs.items() if k not in MOMENT}, name


@pytest.mark.slow  # two sweeps of four runs: ~4 s
def test_runs_as_tasks_write_what_the_serial_sweep_writes(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file(tmp_path, GOOD))
    run_sweep(sweep, tmp_path / "serial", quiet=True)
    run_sweep(sweep, tmp_path / "tasks", quiet=True, workers=0)
    _same_sweep(tmp_path / "serial", tmp_path / "tasks")


@pytest.mark.parametrize(("argv", "message"), [
    (["--workers", "0"], "--workers: must be at least 1"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers: "),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler: cannot connect"),
    (["--area", "Dorset"], "cicsim: unrecognized arguments: --area"),
])
def test_bad_cluster_options_are_one_line_exit_2(argv: list[str], message: str,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = sweep_file(tmp_path, GOOD)
    code = main(["sweep", str(path), "--out-dir", str(tmp_path / "out"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_sweep_on_two_workers_writes_what_the_serial_sweep_writes(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, GOOD)
    assert main(["sweep", str(path), "--out-dir", str(tmp_path / "serial"), "--quiet"]) == 0
    assert main(["sweep", str(path), "--out-dir", str(tmp_path / "tasks"), "--quiet",
                 "--workers", "2"]) == 0
    _same_sweep(tmp_path / "serial", tmp_path / "tasks")
