"""Targets files: the shipped ones load, and every bad-input message names file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.calibration.targets import DEFAULT_TARGETS, REVIEW_TARGETS, load_targets
from sim.cli import main
from sim.errors import InputError

TARGET = ('[[targets]]\nname = "stock"\nobserved = "looked_after_31_march"\n'
          "sd_relative = 0.01\n")


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_targets_load_with_history_groups_only() -> None:
    history = load_targets(DEFAULT_TARGETS)
    names = {t.name for t in history.active()}
    assert {"stock", "starts", "ceased", "ceased_adoption", "uasc_stock",
            "stock_under_1", "starts_16_and_over", "reentry_within_5_years"} <= names
    assert not any(t.group == "review" for t in history.active())
    assert history.settings.first_year == 2012 and history.settings.trend_change_year == 2016


def test_review_targets_extend_history_and_switch_review_on() -> None:
    review = load_targets(REVIEW_TARGETS)
    active = {t.name: t for t in review.active()}
    assert "review_do_nothing_2032" in active and "stock" in active
    assert active["review_do_nothing_2032"].value == 100_000  # from review.csv
    assert active["review_cost_2032"].value == pytest.approx(15e9)  # scaled by 1e9
    assert active["reentry_within_5_years"].value == pytest.approx(0.30)
    assert len(review.files) == 2


def test_child_file_replaces_a_target_by_name(tmp_path: Path) -> None:
    child = write(tmp_path, f'extends = "{DEFAULT_TARGETS}"\n' + TARGET.replace(
        "0.01", "0.02"))
    stock = next(t for t in load_targets(child).targets if t.name == "stock")
    assert stock.sd_relative == 0.02


BAD_FILES: list[tuple[str, str]] = [
    ("[settings\n", r"t\.toml: not valid TOML"),
    ("colour = 1\n" + TARGET, r"t\.toml: unknown key 'colour'"),
    ("extends = 3\n" + TARGET, r"t\.toml: key 'extends' must be a file name"),
    ('extends = "t.toml"\n' + TARGET, r"t\.toml: key 'extends' makes a cycle"),
    ('extends = "nope.toml"\n' + TARGET, r"t\.toml: key 'extends': file 'nope\.toml' not found"),
    ("settings = 1\n" + TARGET, r"t\.toml: key 'settings' must be a table"),
    ("[settings]\nfirst_yr = 2012\n" + TARGET, r"t\.toml: unknown key 'settings\.first_yr'"),
    ('[settings]\nfirst_year = "2012"\n' + TARGET,
     r"t\.toml: key 'settings\.first_year' must be an integer"),
    ("[settings]\nfirst_year = 1990\n" + TARGET,
     r"t\.toml: key 'settings\.first_year' = 1990 is below the minimum 2000"),
    ("[settings]\nprojection_end_year = 2100\n" + TARGET,
     r"t\.toml: key 'settings\.projection_end_year' = 2100 is above the maximum 2060"),
    ('[settings]\ngroups = "history"\n' + TARGET,
     r"t\.toml: key 'settings\.groups' must be a list of group names"),
    ('[settings]\nhistory_vintage = "oldest"\n' + TARGET,
     r"t\.toml: key 'settings\.history_vintage' = 'oldest' is not allowed"),
    ("[settings]\ntrend_change_year = 2012\n" + TARGET,
     r"t\.toml: key 'settings\.trend_change_year' must be after settings\.first_year"),
    ("targets = 1\n", r"t\.toml: key 'targets' must be an array of tables"),
    ('description = "none"\n', r"t\.toml: key 'targets': no targets declared"),
    ("targets = [1]\n", r"t\.toml: key 'targets\[0\]' must be a table"),
    ("[[targets]]\nobserved = 'x'\nsd = 1\n",
     r"t\.toml: key 'targets\[0\]\.name' is missing or not a string"),
    (TARGET + TARGET, r"t\.toml: key 'targets\.stock' is declared twice"),
    (TARGET + "colour = 1\n", r"t\.toml: unknown key 'targets\.stock\.colour'"),
    (TARGET + 'kind = "future"\n', r"t\.toml: key 'targets\.stock\.kind' = 'future' is not "
     "allowed"),
    (TARGET + "group = 1\n", r"t\.toml: key 'targets\.stock\.group' must be a string"),
    (TARGET + 'loss = "cauchy"\n', r"t\.toml: key 'targets\.stock\.loss' = 'cauchy' is not "
     "allowed"),
    (TARGET + 'model = "children"\n', r"t\.toml: key 'targets\.stock\.model' = 'children' "
     "is not a results variable"),
    (TARGET + 'select = "teen"\n', r"t\.toml: key 'targets\.stock\.select' = 'teen' is not "
     "a label of looked_after"),
    ('[[targets]]\nname = "stock"\nsd = 1\n',
     r"t\.toml: key 'targets\.stock\.observed' is required for a history target"),
    (TARGET + "observed_x = 1\n", r"unknown key 'targets\.stock\.observed_x'"),
    ('[[targets]]\nname = "s"\nobserved = 3\nsd = 1\n',
     r"t\.toml: key 'targets\.s\.observed' must be a measure name"),
    (TARGET + "years = [2020, 2015]\n",
     r"t\.toml: key 'targets\.s(tock)?\.years' must be \[first, last\] years"),
    ('[[targets]]\nname = "p"\nkind = "projection"\nvalue = 1\nsd = 1\n',
     r"t\.toml: key 'targets\.p\.year' is required for a projection target"),
    ('[[targets]]\nname = "p"\nkind = "projection"\nyear = 2032\nsd = 1\n',
     r"t\.toml: key 'targets\.p\.value' \(or value_from\) is required"),
    ('[[targets]]\nname = "p"\nkind = "projection"\nyear = 2032\nsd = 1\nvalue = nan\n',
     r"t\.toml: key 'targets\.p\.value' is NaN"),
    ('[[targets]]\nname = "p"\nkind = "projection"\nyear = 2032\nsd = 1\nvalue_from = 3\n',
     r"t\.toml: key 'targets\.p\.value_from' must be a table with file, measure and year"),
    ('[[targets]]\nname = "p"\nkind = "projection"\nyear = 2032\nsd = 1\n'
     'value_from = { file = "review.csv", measure = "unicorns", year = "2032" }\n',
     r"t\.toml: key 'targets\.p\.value_from': no row in review\.csv whose measure contains "
     "'unicorns'"),
    ('[[targets]]\nname = "r"\nkind = "reentry"\nvalue = 0.3\nsd = 0.05\n',
     r"t\.toml: key 'targets\.r\.within_years' is required for a reentry target"),
    ('[[targets]]\nname = "f"\nkind = "reform"\nyear = 2032\nvalue = 3\nsd = 1\n',
     r"t\.toml: key 'targets\.f\.scenario' \(a scenario file\) is required"),
    ('[[targets]]\nname = "s"\nobserved = "x"\n',
     r"t\.toml: key 'targets\.s\.sd_relative' \(or sd\) is required"),
    ('[[targets]]\nname = "s"\nobserved = "x"\nsd = 1\nloss = "lognormal"\n',
     r"t\.toml: key 'targets\.s\.sd_relative' is required for a lognormal loss"),
    (TARGET + "weight = -1\n", r"t\.toml: key 'targets\.stock\.weight' = -1 is below the "
     "minimum 0"),
    ("parameters = 1\n" + TARGET, r"t\.toml: key 'parameters' must be a table"),
    ("[parameters.magic]\nlow = 0\n" + TARGET,
     r"t\.toml: unknown key 'parameters\.magic'; free parameters: entry_trend"),
    ("[parameters]\nentry_trend = 1\n" + TARGET,
     r"t\.toml: key 'parameters\.entry_trend' must be a table"),
    ("[parameters.entry_trend]\nlowest = 0\n" + TARGET,
     r"t\.toml: unknown key 'parameters\.entry_trend\.lowest'"),
    ('[parameters.entry_trend]\nfree = "no"\n' + TARGET,
     r"t\.toml: key 'parameters\.entry_trend\.free' must be true or false"),
    ("[parameters.entry_trend]\nprior_sd = -1\n" + TARGET,
     r"t\.toml: key 'parameters\.entry_trend\.prior_sd' = -1 is below the minimum 0"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_bad_targets_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_targets(write(tmp_path, text))


def test_missing_targets_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"absent\.toml: targets file not found"):
        load_targets(tmp_path / "absent.toml")


def test_targets_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(b'description = "\xff"\n')
    with pytest.raises(InputError, match=r"t\.toml: not valid TOML"):
        load_targets(path)


def test_bad_targets_file_exits_2_with_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, TARGET + 'loss = "cauchy"\n')
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "uncalibrated.toml"
    assert main(["calibrate", "--targets", str(path), "--out", str(tmp_path / "c.toml"),
                 "--scenario", str(scenario), "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "targets.stock.loss" in err
    assert not (tmp_path / "c.toml").exists()
