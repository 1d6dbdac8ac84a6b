"""One-at-a-time sensitivity: which rows it makes, and that they move the right way."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.model.costs import CASH_ONLY_KEYS, COST_PARAMETERS
from sim.model.lever_parameters import LEVER_PARAMETERS
from sim.scenarios.loader import Scenario, load_scenario
from sim.sensitivity import lever_assumptions, one_at_a_time

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"
SHORT = ["run.end_year=2027"]


def reform(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "reform.toml"
    path.write_text(f'name = "reform"\nextends = "{BASELINE}"\n[levers.family_help]\n'
                    'funding_gbp_m = { "2024" = 400, "2025" = 400 }\n' + extra,
                    encoding="utf-8")
    return path


# Read only when the service is sustained (sim/sensitivity.py skips them otherwise).
UNREAD_WITHOUT_SUSTAIN = ("sustained_share", "reinvest_lag_years")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path = reform(tmp_path_factory.mktemp("sens"))
    return one_at_a_time(load_scenario(path, SHORT), load_scenario(BASELINE, SHORT),
                         year=2027)


def test_only_levers_with_money_are_varied(tmp_path: Path) -> None:
    path = reform(tmp_path, '[levers.kinship_support]\nfunding_gbp_m = { "2024" = 0 }\n')
    keys = [a.key for a in lever_assumptions(load_scenario(path).config)]
    assert keys == [f"levers.family_help.{k}" for k in LEVER_PARAMETERS["family_help"]
                    if k not in UNREAD_WITHOUT_SUSTAIN]


def test_a_scenario_value_outside_the_range_widens_it(tmp_path: Path) -> None:
    path = reform(tmp_path, "effect = 0.9\n")
    effect = [a for a in lever_assumptions(load_scenario(path).config)
              if a.key.endswith(".effect")][0]
    assert (effect.low, effect.central, effect.high) == (0.05, 0.9, 0.9)


def test_rows_cover_every_lever_parameter_and_unit_cost(table: pd.DataFrame) -> None:
    kept = table[table["metric"] == "kept_at_home_2027"]
    saving = table[table["metric"] == "net_saving_discounted_gbp_m"]
    lever_keys = {f"levers.family_help.{k}" for k in LEVER_PARAMETERS["family_help"]
                  if k not in UNREAD_WITHOUT_SUSTAIN}
    assert set(kept["parameter"]) == lever_keys  # prices cannot change numbers in care
    assert set(saving["parameter"]) == lever_keys | {f"costs.{k}" for k in COST_PARAMETERS
                                                     if k not in CASH_ONLY_KEYS}
    assert (table.groupby("metric")["swing"].apply(
        lambda s: list(s) == sorted(s, reverse=True))).all()  # widest first


def test_results_move_in_the_expected_direction(table: pd.DataFrame) -> None:
    kept = table[table["metric"] == "kept_at_home_2027"].set_index("parameter")
    effect = kept.loc["levers.family_help.effect"]
    assert effect["result_low"] < effect["central"] < effect["result_high"]
    cost = kept.loc["levers.family_help.unit_cost_gbp"]
    assert cost["result_low"] > cost["central"] > cost["result_high"]
    assert effect["central"] > 0
    saving = table[table["metric"] == "net_saving_discounted_gbp_m"].set_index("parameter")
    residential = saving.loc["costs.residential_gbp_per_year"]
    # dearer care makes each child kept out of care worth more
    assert residential["result_high"] > residential["result_low"]


def test_sensitivity_command_writes_table_and_tornados(tmp_path: Path) -> None:
    path = reform(tmp_path)
    out = tmp_path / "out"
    code = main(["sensitivity", str(path), "--baseline", str(BASELINE), "--year", "2026",
                 "--set", "run.end_year=2026", "--out-dir", str(out), "--quiet"])
    assert code == 0
    written = pd.read_csv(out / "reform.csv")
    assert set(written["metric"]) == {"kept_at_home_2026", "net_saving_discounted_gbp_m"}
    for metric in ("kept_at_home_2026", "net_saving_discounted_gbp_m"):
        png = out / f"reform-{metric}.png"
        assert png.stat().st_size > 5_000


def test_without_money_only_prices_vary() -> None:
    baseline: Scenario = load_scenario(BASELINE, SHORT)
    result = one_at_a_time(baseline, baseline, year=2027)
    assert set(result["metric"]) == {"net_saving_discounted_gbp_m"}
    assert (result["swing"] == 0).all()  # the same run priced twice: no saving either way
