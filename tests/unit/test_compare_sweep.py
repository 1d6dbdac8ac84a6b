"""Sweep files: parsing, one-line errors, expansion, and a short run end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.errors import InputError
from sim.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"

GOOD = f'''name = "fh"
extends = "{BASELINE}"
[run]
end_year = 2025
[levers.family_help]
funding_gbp_m = {{ "2024" = 3, "2025" = 1 }}
[sweep]
key = "levers.family_help.funding_gbp_m"
values = [0, 400, 800]
baseline = "{BASELINE}"
label = "family help, £m"
'''


def sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_year_table_values_are_totals_with_the_files_profile(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file(tmp_path, GOOD))
    assert sweep.label == "family help, £m"
    tables = [s.get("levers.family_help.funding_gbp_m") for _, s in sweep.runs]
    assert tables[2] == pytest.approx({"2024": 600.0, "2025": 200.0})
    assert tables[0] == {"2024": 0.0, "2025": 0.0}
    assert [s.name for _, s in sweep.runs] == ["fh-0", "fh-400", "fh-800"]
    assert all(s.get("run.end_year") == 2025 for _, s in sweep.runs)


def test_a_number_key_is_set_directly(tmp_path: Path) -> None:
    text = GOOD.replace('key = "levers.family_help.funding_gbp_m"',
                        'key = "levers.family_help.effect"').replace(
        "values = [0, 400, 800]", "values = [0.1, 0.3]")
    sweep = load_sweep(sweep_file(tmp_path, text))
    assert [s.get("levers.family_help.effect") for _, s in sweep.runs] == [0.1, 0.3]


@pytest.mark.parametrize(("change", "message"), [
    (("[sweep]", "[sweeps]"), "missing \\[sweep\\] table"),
    (('label = "family help, £m"', 'labels = "x"'), "unknown key 'sweep.labels'; valid keys "
     "in \\[sweep\\]: key, values, baseline, label"),
    (('key = "levers.family_help.funding_gbp_m"', ""), "key 'sweep.key' is required"),
    (("values = [0, 400, 800]", "values = 5"), "'sweep.values' must be a non-empty list of "
     "numbers"),
    (("values = [0, 400, 800]", "values = [1, 1]"), "'sweep.values' has repeated values"),
    ((f'baseline = "{BASELINE}"', 'baseline = "nowhere.toml"'),
     "key 'sweep.baseline': file 'nowhere.toml' not found"),
    (('key = "levers.family_help.funding_gbp_m"', 'key = "levers.kinship_support.effect"'),
     "key 'sweep.key' = 'levers.kinship_support.effect' is not a scenario key"),
    (('"2024" = 3, "2025" = 1', '"2024" = 0'), "it needs a positive total"),
    (("end_year = 2025", "end_year = 2021"), "sweep.toml: .*run.end_year"),
    (('key = "levers.family_help.funding_gbp_m"', 'key = "levers.family_help.effect"'),
     r"value 400: .*'levers.family_help.effect' = 400.0 is above the maximum"),
])
def test_sweep_errors_name_the_file_and_key(tmp_path: Path, change: tuple[str, str],
                                            message: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(InputError, match=message):
        load_sweep(sweep_file(tmp_path, GOOD.replace(old, new)))


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="absent.toml: sweep file not found"):
        load_sweep(tmp_path / "absent.toml")
    with pytest.raises(InputError, match="not valid TOML"):
        load_sweep(sweep_file(tmp_path, "key = = 1"))


def test_sweep_command_writes_runs_summary_and_chart(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, GOOD)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out-dir", str(out), "--quiet"]) == 0
    summary = pd.read_csv(out / "fh.csv")
    assert list(summary["value"]) == [0, 400, 800]
    assert list(summary["scenario"]) == ["fh-0", "fh-400", "fh-800"]
    assert summary.loc[0, "kept_at_home_2025"] == 0.0  # no money: the baseline exactly
    kept = list(summary["kept_at_home_2025"])
    assert kept[0] < kept[1] < kept[2]
    assert summary["programme_cost_gbp_m_2023_2025"].tolist() == pytest.approx([0, 400, 800])
    for name in ("baseline", "fh-0", "fh-400", "fh-800"):
        assert (out / "fh" / f"{name}.nc").exists()
    assert (out / "fh.png").stat().st_size > 5_000
