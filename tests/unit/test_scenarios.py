"""Every scenario error message: one line, naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import InputError
from sim.scenarios.loader import load_scenario

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_layers(tmp_path: Path) -> None:
    write(tmp_path, "base.toml", "[run]\nend_year = 2030\n")
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\n[rates]\n'
                  "entry_multiplier = 0.9\n")
    scenario = load_scenario(child, ["run.end_year=2035"])
    assert scenario.get("run.end_year") == 2035
    assert scenario.get("rates.entry_multiplier") == 0.9
    assert scenario.get("run.base_year") == 2022  # code default
    assert scenario.origin["run.end_year"] == "--set"
    assert scenario.origin["rates.entry_multiplier"] == str(child)
    assert scenario.name == "child"


def test_resolved_toml_round_trips(tmp_path: Path) -> None:
    scenario = load_scenario(None, ["rates.entry_multiplier=0.8"])
    again = load_scenario(write(tmp_path, "resolved.toml", scenario.to_toml()))
    assert again.config == scenario.config


def test_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", "[run\nend_year = ")
    with pytest.raises(InputError, match=r"bad\.toml: not valid TOML"):
        load_scenario(path)


def test_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[run]\nend_yaer = 2030\n")
    with pytest.raises(InputError, match=r"s\.toml: unknown key 'run\.end_yaer'; valid keys "
                       r"in \[run\]: base_year, end_year, engine"):
        load_scenario(path)


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[rate]\nentry_multiplier = 1\n")
    with pytest.raises(InputError, match=r"unknown key 'rate'; valid top-level keys: .*rates"):
        load_scenario(path)


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[run]\nend_year = "soon"\n')
    with pytest.raises(InputError, match=r"s\.toml: key 'run\.end_year' must be an integer"):
        load_scenario(path)


def test_negative_rate(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[rates]\nentry_multiplier = -0.5\n")
    with pytest.raises(InputError, match=r"key 'rates\.entry_multiplier' = -0\.5 is negative"):
        load_scenario(path)


def test_probability_above_one(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[reentry]\nwithin_1_year = 1.2\n")
    with pytest.raises(InputError, match=r"key 'reentry\.within_1_year' = 1\.2 is a "
                       r"probability: it must be between 0 and 1"):
        load_scenario(path)


def test_missing_extends(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", 'extends = "nowhere.toml"\n')
    with pytest.raises(InputError, match=r"s\.toml: key 'extends': file 'nowhere\.toml' "
                       r"not found"):
        load_scenario(path)


def test_cyclic_extends(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    path = write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(InputError, match=r"key 'extends' makes a cycle: .*a\.toml -> "
                       r"b\.toml"):
        load_scenario(path)


def test_year_outside_data(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[run]\nbase_year = 2030\nend_year = 2040\n")
    with pytest.raises(InputError, match=r"s\.toml: key 'run\.base_year' = 2030 is outside "
                       r"the data \(2012-2022\)"):
        load_scenario(path)


def test_end_before_base(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[run]\nbase_year = 2020\nend_year = 2019\n")
    with pytest.raises(InputError, match=r"key 'run\.end_year' = 2019 must be after "
                       r"run\.base_year = 2020"):
        load_scenario(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.toml: scenario file not found"):
        load_scenario(tmp_path / "nope.toml")


def test_bad_set_override() -> None:
    with pytest.raises(InputError, match=r"--set: unknown key 'run\.colour'"):
        load_scenario(None, ["run.colour=blue"])
    with pytest.raises(InputError, match=r"--set: 'run\.end_year' must look like"):
        load_scenario(None, ["run.end_year"])


def test_reentry_order(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[reentry]\nwithin_1_year = 0.5\nwithin_5_years = 0.3\n")
    with pytest.raises(InputError, match=r"key 'reentry\.within_5_years' must be at least"):
        load_scenario(path)


@pytest.mark.parametrize("text", ["[run\n", "[rates]\nentry_multiplier = -1\n",
                                  'extends = "missing.toml"\n'])
def test_cli_bad_input_exit_2_one_line_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    out_dir = tmp_path / "outputs"
    code = main(["run", str(path), "--out", str(out_dir / "bad.nc"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and "bad.toml" in captured.err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_cli_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "scenarios/baseline.toml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_cli_unknown_option_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(REPO / "scenarios/baseline.toml"), "--frobnicate"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_name_is_not_inherited(tmp_path: Path) -> None:
    write(tmp_path, "parent.toml", 'name = "parent"\n')
    child = write(tmp_path, "child.toml", 'extends = "parent.toml"\n')
    assert load_scenario(child).name == "child"
    assert load_scenario(child, ['name="renamed"']).name == "renamed"
    assert load_scenario(tmp_path / "parent.toml").name == "parent"
