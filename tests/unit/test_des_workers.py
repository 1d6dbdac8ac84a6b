"""``cicsim run --workers N``: the DES output does not depend on the number of worker
processes (replicates are independent streams, combined in replicate order)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from sim.cli import main as cli_main

VOLATILE = ("created_utc", "wall_time_s")


def _run(tmp_path: Path, name: str, *extra: str) -> int:
    return cli_main(["run", "scenarios/baseline.toml", "--engine", "des", "--replicates",
                     "3", "--seed", "7", "--set", "run.population_scale=0.005", "--set",
                     "run.end_year=2025", "--quiet", "--out", str(tmp_path / f"{name}.nc"),
                     "--name", "workers", *extra])  # one name: the files differ only in path


def test_output_is_the_same_for_any_number_of_workers(tmp_path: Path) -> None:
    assert _run(tmp_path, "one", "--workers", "1") == 0
    assert _run(tmp_path, "two", "--workers", "2") == 0
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    with xr.open_dataset(tmp_path / "one.nc") as a, xr.open_dataset(tmp_path / "two.nc") as b:
        a.attrs = {k: v for k, v in a.attrs.items() if k not in VOLATILE}
        b.attrs = {k: v for k, v in b.attrs.items() if k not in VOLATILE}
        xr.testing.assert_identical(a.load(), b.load())


def test_workers_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, "none", "--workers", "0") == 2
    assert "--workers: must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "none.nc").exists()
