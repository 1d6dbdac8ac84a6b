"""``cicsim synth-903``, ``check-903`` and ``run --ssda903``: bad input exits 2 with one
line and writes nothing; the end-to-end run (slow) writes results and the issues CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import xarray as xr
from test_ssda903 import CASES, write

from sim.cli import main

ROOT = Path(__file__).resolve().parents[2]
BASELINE = str(ROOT / "scenarios" / "baseline.toml")


def test_rejected_extract_exits_2_before_running(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    header, episodes, _ = CASES["overlapping_episodes"]
    extract = write(tmp_path / "extract", header=header, episodes=episodes)
    out = tmp_path / "out" / "run.nc"
    assert main(["run", BASELINE, "--ssda903", str(extract), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "extract rejected" in err[0] and "episodes.csv" in err[0]
    assert not (tmp_path / "out").exists()


def test_missing_extract_directory_exits_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", BASELINE, "--ssda903", str(tmp_path / "none"),
                 "--out", str(tmp_path / "x.nc")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


def test_check_903_lists_every_bad_row(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    header, episodes, _ = CASES["unknown_code"]
    extract = write(tmp_path / "extract", header=header, episodes=episodes)
    issues = tmp_path / "issues.csv"
    assert main(["check-903", str(extract), "--issues", str(issues)]) == 2  # rejected
    captured = capsys.readouterr()
    assert "episodes.csv:5: unknown_code: REC 'E99'" in captured.err
    assert "REJECTED" in captured.out
    rows = list(csv.DictReader(issues.open()))
    assert [(r["file"], r["line"], r["rule"]) for r in rows] == [
        ("episodes.csv", "5", "unknown_code"), ("header.csv", "3", "child_skipped")]


def test_synth_903_bad_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    assert main(["synth-903", "--out", str(tmp_path / "d"), "--seed", "1",
                 "--set", "nonsense=1"]) == 2
    assert "unknown key 'nonsense'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_synth_then_run_with_the_extract(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's check: synth-903 --seed 1 --children 5000, then run baseline with
    --ssda903; results, the issues CSV and the extract's hashes (not its data) written."""
    extract = tmp_path / "synth-903"
    assert main(["synth-903", "--out", str(extract), "--seed", "1",
                 "--children", "5000"]) == 0
    out = tmp_path / "x" / "baseline.nc"
    assert main(["run", BASELINE, "--ssda903", str(extract), "--out", str(out),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "5000 children" in captured.err
    assert out.exists() and out.with_suffix(".csv").exists()
    issues = out.parent / "ssda903_issues.csv"
    assert issues.read_text().splitlines() == ["file,line,rule,child,detail"]
    with xr.open_dataset(out) as ds:
        record = json.loads(ds.attrs["ssda903_extract"])
        assert set(record["sha256"]) == {"header.csv", "episodes.csv"}
        assert len(record["sha256"]["episodes.csv"]) == 64
        stock = float(ds["looked_after"].isel(year=0))
        assert "SSDA903 extract synth-903" in ds.attrs["parameters"]
    assert 0 < stock < 5000


def test_population_without_an_extract_exits_2(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", BASELINE, "--ssda903-population", "1000",
                 "--out", str(tmp_path / "x.nc")]) == 2
    assert "needs --ssda903" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


def test_extract_ending_in_another_year_exits_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The test extract ends 31/03/2021 and has one skipped row (accepted); the baseline's
    base year is 2022: one error line (the skipped row is not printed first), nothing
    written."""
    header, episodes, _ = CASES["dec_before_decom"]
    header = header + [f"C{i},1,01/01/2012,WBRI,UN1,," for i in range(40)]
    episodes = episodes + [f"C{i},01/01/2020,S,C2,N1,U4,PR1,,,,,," for i in range(40)]
    extract = write(tmp_path / "extract", header=header, episodes=episodes)
    out = tmp_path / "out" / "run.nc"
    assert main(["run", BASELINE, "--ssda903", str(extract), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.base_year=2021" in err[0]
    assert not (tmp_path / "out").exists()
