"""Hardening rules for the command line (issue 12): ``--set``, ``--out`` and the output
folder, option values, a closed pipe; and the base year untouched by scenarios (issue
13 item 5).  Refusals: exit 2, one stderr line, nothing written, no simulation run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_hardening import BASELINE, REVIEW_FULL, assert_refused, run_cli

import sim.run
from sim.cli import BROKEN_PIPE_EXIT, main
from sim.errors import InputError
from sim.model.parameters import ModelParameters
from sim.run import simulate
from sim.scenarios.loader import Scenario, load_scenario

SHORT = "run.end_year=2025"


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a run gets as far as simulating."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("simulated before the input was checked")
    monkeypatch.setattr(sim.run, "simulate", refuse)


# --- --set ------------------------------------------------------------------------------


@pytest.mark.parametrize("sets", [["a.b=1", "a.b.c=1"], ["run.end_year=2030",
                                                         "run.end_year.x=1"],
                                  ["run.end_year.x=1", "run.end_year=2030"]])
def test_set_a_value_and_a_table_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         sets: list[str]) -> None:
    args = [arg for item in sets for arg in ("--set", item)]
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", BASELINE, *args),
                   "--set", "another --set")


@pytest.mark.parametrize(("item", "fragment"), [
    ("run.end_year", "must look like section.key=value"),
    ("=1", "empty part"), ("run..end_year=1", "empty part"), (".=1", "empty part"),
    ("run.end_year=" + "[" * 3000, "nested too deeply"),
    ("run.end_year=" + "9" * 5000, "cannot be read"),
    ("run.end_year=" + "9" * 300, "out of range"),
    ("run.seed=" + "y" * 20_000, "y…"),
    ("run.\x1b[2Jx=1", "\\x1b[2Jx"),
])
def test_malformed_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str], item: str, fragment: str) -> None:
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", BASELINE,
                                  "--set", item), "--set", fragment)
    assert len(line) < 300


def test_a_set_value_on_several_lines_is_one_value() -> None:
    """``v = 2030\nname = "x"`` parses as TOML, but a --set value is one value: the
    extra line is not a second, hidden override."""
    with pytest.raises(InputError, match="run.end_year' must be an integer"):
        load_scenario(BASELINE, ['run.end_year=2030\nname = "x"'])


# --- --out and the output folder -------------------------------------------------------


@pytest.mark.usefixtures("no_simulation")
def test_out_naming_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "work" / "folder.nc").mkdir(parents=True)
    for out in ("folder.nc", "folder.nc/", "elsewhere/", ".", ".."):
        assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--out",
                               out), "--out", "directory")


@pytest.mark.usefixtures("no_simulation")
@pytest.mark.parametrize("out", ["x.xlsx", "x.csv", "x", "x.nc.tmp", "outputs/x.NCX"])
def test_out_with_an_extension_run_cannot_write(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str],
                                                out: str) -> None:
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--out", out),
                   "--out", "cannot write", ".nc")


@pytest.mark.usefixtures("no_simulation")
def test_out_whose_csv_partner_is_a_directory(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "work" / "x.csv").mkdir(parents=True)
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--out",
                           "x.nc"), "x.csv", "directory")


@pytest.mark.usefixtures("no_simulation")
@pytest.mark.parametrize("out", ["a\x00b.nc", "a\nb.nc", "x" * 250 + ".nc", ""])
def test_out_with_an_unsafe_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str], out: str) -> None:
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--out",
                                  out), "--out")
    assert len(line) < 300


@pytest.mark.usefixtures("no_simulation")
def test_out_in_a_folder_that_cannot_be_created(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "file").write_text("not a folder", encoding="utf-8")
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--out",
                           "file/sub/x.nc"), "--out", "cannot create the folder")


@pytest.mark.usefixtures("no_simulation")
def test_out_in_a_folder_that_cannot_be_written(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A folder without write permission (as root, whom permissions do not stop:
    /sys, which refuses new files to everyone)."""
    if os.geteuid() == 0:
        folder = Path("/sys")
        if not folder.is_dir() or os.access(folder, os.W_OK) and _can_create(folder):
            pytest.skip("running as root and /sys accepts new files")
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
    try:
        assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--out",
                               folder / "sub" / "x.nc"), "--out", "cannot write in folder")
        assert not (folder / "sub").exists()
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o700)


def _can_create(folder: Path) -> bool:
    try:
        (folder / ".cicsim-probe").touch()
    except OSError:
        return False
    (folder / ".cicsim-probe").unlink()
    return True


@pytest.mark.parametrize(("option", "value"), [("--replicates", "0"),
                                               ("--replicates", "1" + "0" * 40),
                                               ("--seed", "-1"), ("--workers", "0")])
def test_run_options_out_of_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str], option: str,
                                  value: str) -> None:
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--set", SHORT,
                           option, value, "--out", "x.nc"), option)


# --- a closed pipe -----------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly() -> None:
    """``cicsim validate ... | head -0``: the reader is gone before anything is written;
    exit 141 (as a shell reports SIGPIPE), nothing on stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "sim", "validate", str(BASELINE)],
                              stdout=write, stderr=subprocess.PIPE, timeout=60,
                              cwd=BASELINE.parents[1], check=False)
    finally:
        os.close(write)
    assert done.returncode == BROKEN_PIPE_EXIT
    assert done.stderr == b""


class _ClosedPipe:
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_params_into_a_closed_pipe(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str],
                                   baseline_params: ModelParameters) -> None:
    """``cicsim params | head``: the table stops at the first failed write."""
    monkeypatch.setattr("sim.estimation.cache.cached_parameters",
                        lambda config: baseline_params)
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["params", str(BASELINE)]) == BROKEN_PIPE_EXIT
    assert capsys.readouterr().err == ""


# --- the base year is untouched by scenarios ----------------------------------------------


BOUNDS = [["rates.entry_multiplier=10"], ["rates.entry_multiplier=0"],
          ["rates.referral_multiplier=0"],
          ["rates.cin_closure_multiplier=0", "rates.reunification_multiplier=10",
           "rates.reentry_multiplier=0"]]


def _base_year(ds: xr.Dataset) -> xr.Dataset:
    return ds.sel(year=int(ds.year[0]))


@pytest.mark.parametrize("overrides", [*BOUNDS, ["rates.reunification_multiplier=1.5"]])
def test_multipliers_at_their_bounds_run_and_leave_the_base_year(
        baseline_scenario: Scenario, baseline_params: ModelParameters,
        overrides: list[str]) -> None:
    """Documented bounds run; the base-year record equals the baseline's exactly (a
    reunification scenario avoids no starts in 2022); stocks stay non-negative and the
    stock identity closes every year."""
    baseline = simulate(load_scenario(BASELINE, [SHORT]), params=baseline_params)
    ds = simulate(load_scenario(BASELINE, [SHORT, *overrides]), params=baseline_params)
    xr.testing.assert_equal(_base_year(ds), _base_year(baseline))
    stock = ds.looked_after.values
    assert np.all(np.isfinite(stock)) and stock.min() >= 0
    net = (ds.started_every_episode - ds.ceased.sum("reason")).values
    np.testing.assert_allclose(np.diff(stock), net[1:], rtol=1e-9)


def test_a_policys_base_year_is_the_baselines(baseline_params: ModelParameters) -> None:
    """review-full with a reunification multiplier: 2022 identical to the baseline."""
    baseline = simulate(load_scenario(BASELINE, [SHORT]), params=baseline_params)
    policy = simulate(load_scenario(REVIEW_FULL, ["run.end_year=2028",
                                                  "rates.reunification_multiplier=1.3"]),
                      params=baseline_params)
    xr.testing.assert_equal(_base_year(policy), _base_year(baseline))


def test_params_without_a_scenario_says_it_shows_the_uncalibrated_defaults(
        capsys: pytest.CaptureFixture[str]) -> None:
    from sim.cli import main

    assert main(["params"]) == 0
    captured = capsys.readouterr()
    assert "uncalibrated" in captured.err and "scenarios/baseline.toml" in captured.err
    assert captured.out.startswith("| parameter |")
