"""Persistence after the programme money: sustain, sustained_share, decay_per_year and
savings reinvested (sim/model/levers.py, sim/reinvestment.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from test_levers import fake_params  # tests/unit is on sys.path (rootdir-less import)

from sim.cli import main
from sim.errors import InputError
from sim.model.lever_parameters import REINVESTED_KEY
from sim.model.levers import lever_effects, resolve_levers
from sim.model.parameters import ModelParameters
from sim.reinvestment import costs_before_programmes, with_reinvestment
from sim.results.costs import add_costs
from sim.run import project_stockflow, simulate
from sim.scenarios.loader import Scenario, load_scenario
from sim.scenarios.schema import TABLE_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"


def family_help(**overrides: Any) -> dict[str, Any]:
    defaults = {k: f.default for k, f in TABLE_SECTIONS["levers"].items()}
    table = {"funding_gbp_m": {"2024": 300.0, "2025": 300.0, "2026": 300.0},
             "unit_cost_gbp": 4_000.0, "effect": 0.3, "risk_ratio": 1.5, "lag_years": 0.0,
             "ramp_up_years": 0.0}
    return copy.deepcopy(defaults) | table | overrides


def with_levers(scenario: Scenario, **levers: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(scenario.config)
    config["levers"] = levers
    return config


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'extends = "{BASELINE}"\n' + text, encoding="utf-8")
    return path


def test_zero_money_and_sustain_none_reproduce_the_baseline_bit_for_bit(
        tmp_path: Path, baseline_params: ModelParameters, baseline_scenario: Scenario) -> None:
    """No money: whatever the persistence settings, nothing to sustain or remember."""
    reference = simulate(baseline_scenario, params=baseline_params)
    for sustain in ("none", "fixed", "reinvest_savings"):
        path = write(tmp_path, "[levers.family_help]\n"
                     'funding_gbp_m = { "2024" = 0, "2025" = 0.0 }\n'
                     f'sustain = "{sustain}"\nsustained_share = 0.7\ndecay_per_year = 0.2\n'
                     "[levers.kinship_support]\n"
                     'funding_gbp_m = { "2025" = 0 }\nsustain = "none"\n')
        zero = simulate(load_scenario(path), params=baseline_params)
        for name in reference.data_vars:
            np.testing.assert_array_equal(zero[name].values, reference[name].values,
                                          err_msg=f"{sustain}: {name}")


def test_explicit_defaults_reproduce_review_full_bit_for_bit(
        tmp_path: Path, baseline_params: ModelParameters) -> None:
    """sustain = "none" and decay_per_year = 1 are today's behaviour exactly."""
    review = ROOT / "scenarios" / "review-full.toml"
    path = tmp_path / "explicit.toml"
    path.write_text(f'extends = "{review}"\n[levers.family_help]\nsustain = "none"\n'
                    "decay_per_year = 1.0\nsustained_share = 0.3\n", encoding="utf-8")
    explicit = project_stockflow(baseline_params, load_scenario(path).config)
    reference = project_stockflow(baseline_params, load_scenario(review).config)
    for name in reference.data_vars:
        np.testing.assert_array_equal(explicit[name].values, reference[name].values)


def kept_at_home(params: ModelParameters, baseline: dict[str, Any],
                 scenario: dict[str, Any]) -> xr.DataArray:
    return (project_stockflow(params, baseline)["looked_after"]
            - project_stockflow(params, scenario)["looked_after"])


def test_full_sustained_service_without_decay_keeps_its_gains(
        baseline_params: ModelParameters, baseline_scenario: Scenario) -> None:
    """sustained_share = 1, no decay: kept at home never falls after the money ends
    (2026); without sustain it does (so the check can fail)."""
    base = baseline_scenario.config
    kept = kept_at_home(baseline_params, base, with_levers(
        baseline_scenario, family_help=family_help(sustain="fixed", sustained_share=1.0,
                                                   decay_per_year=0.0)))
    after = kept.sel(year=slice(2026, 2032)).values
    assert np.all(np.diff(after) >= 0), after
    stopped = kept_at_home(baseline_params, base, with_levers(
        baseline_scenario, family_help=family_help()))
    assert float(stopped.sel(year=2032)) < float(stopped.sel(year=2027))


def test_fixed_service_is_paid_for_every_year_after_the_money() -> None:
    config = copy.deepcopy(load_scenario(None).config)
    config["levers"] = {"family_help": family_help(sustain="fixed", sustained_share=0.5)}
    money = [lever_effects(config, fake_params(), y).programme_cost_gbp for y in
             range(2024, 2031)]
    assert money == pytest.approx([300e6] * 3 + [150e6] * 4)


def test_decay_fades_the_effect_of_help_already_given() -> None:
    """After the money (2024 only), the entry reduction halves each year with decay
    0.5, and vanishes at once with the default decay 1."""
    config = copy.deepcopy(load_scenario(None).config)
    table = family_help(funding_gbp_m={"2024": 300.0}, decay_per_year=0.5)
    config["levers"] = {"family_help": table}
    reductions = [1 - lever_effects(config, fake_params(), y).entry_multiplier
                  for y in range(2024, 2028)]
    assert reductions[1:] == pytest.approx([reductions[0] * 0.5 ** k for k in (1, 2, 3)])
    config["levers"]["family_help"]["decay_per_year"] = 1.0
    assert lever_effects(config, fake_params(), 2025).entry_multiplier == 1.0


def test_delay_moves_the_whole_programme_including_the_sustained_service() -> None:
    config = copy.deepcopy(load_scenario(None).config)
    table = family_help(sustain="fixed", sustained_share=0.6, decay_per_year=0.4,
                        lag_years=0.5, ramp_up_years=2.0)
    config["levers"] = {"family_help": table}
    delayed = copy.deepcopy(config)
    delayed["levers"]["family_help"]["delay_years"] = 2
    for year in range(2023, 2035):
        on_time = lever_effects(config, fake_params(), year)
        later = lever_effects(delayed, fake_params(), year + 2)
        assert later.entry_multiplier == on_time.entry_multiplier
        assert later.programme_cost_gbp == on_time.programme_cost_gbp


def test_reinvested_money_is_the_lagged_savings_capped_at_the_ceiling(
        baseline_params: ModelParameters, baseline_scenario: Scenario) -> None:
    """The fixed point is exact: re-pricing the final run gives back its own money,
    money(t) = min(ceiling, savings(t - 1)); and it never exceeds the savings made."""
    config = with_levers(baseline_scenario, family_help=family_help(
        sustain="reinvest_savings", sustained_share=1.0, effect=0.6, risk_ratio=2.0,
        decay_per_year=0.5))
    run_config = with_reinvestment(baseline_params, config)
    reinvested = {int(y): m for y, m in
                  run_config["levers"]["family_help"][REINVESTED_KEY].items()}
    base = copy.deepcopy(config)
    base["levers"] = {}
    before = costs_before_programmes(baseline_params, base)
    after = costs_before_programmes(baseline_params, run_config)
    savings = {y: (before[y] - after[y]) / 1e6 for y in before}
    assert sorted(reinvested) == list(range(2027, 2033))
    for year, money in reinvested.items():
        assert money == pytest.approx(min(300.0, max(savings[year - 1], 0.0)), abs=1e-9)
        assert money <= max(savings[year - 1], 0.0) + 1e-9
    assert sum(reinvested.values()) > 0
    ds = add_costs(project_stockflow(baseline_params, config), baseline_params, config)
    programmes = ds["cost_gbp"].sel(cost_component="programmes")
    assert float(programmes.sel(year=2030)) == pytest.approx(reinvested[2030] * 1e6)
    assert "reinvested_gbp_m" in ds.attrs


def test_the_reinvested_path_is_never_read_from_a_file(tmp_path: Path) -> None:
    """It is computed by every run; a scenario file cannot set it."""
    path = write(tmp_path, f'[levers.family_help]\n{REINVESTED_KEY} = {{ "2030" = 5 }}\n')
    with pytest.raises(InputError, match="unknown key"):
        load_scenario(path)


@pytest.mark.parametrize(("text", "key"), [
    ('[levers.family_help]\nsustain = "sometimes"\n', "levers.family_help.sustain"),
    ("[levers.family_help]\ndecay_per_year = 1.5\n", "levers.family_help.decay_per_year"),
    ("[levers.family_help]\nsustained_share = -0.1\n", "levers.family_help.sustained_share"),
    ("[levers.family_help]\nreinvest_lag_years = 1.5\n",
     "levers.family_help.reinvest_lag_years"),
    ("[levers.family_help]\nreinvest_lag_years = 0\n",
     "levers.family_help.reinvest_lag_years"),
    ('[levers.foster_recruitment]\nsustain = "fixed"\n',
     "levers.foster_recruitment.sustain"),
    ("[costs]\ninflation_per_year = 0.5\n", "costs.inflation_per_year"),
    ('[costs]\nresidential_real_growth_per_year = "fast"\n',
     "costs.residential_real_growth_per_year"),
])
def test_bad_new_keys_are_one_line_errors_naming_file_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str) -> None:
    path = write(tmp_path, text)
    out = tmp_path / "out.nc"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert str(path) in error and key in error, error
    assert not out.exists()


def test_resolved_lever_knows_its_end_year_after_delay() -> None:
    config = copy.deepcopy(load_scenario(None).config)
    config["levers"] = {"family_help": family_help(delay_years=3, sustain="fixed")}
    lever = resolve_levers(config)["family_help"]
    assert (lever.start_year, lever.end_year) == (2027, 2029)
    assert lever.sustained_gbp_m(2029) == 0.0
    assert lever.sustained_gbp_m(2030) == pytest.approx(300.0)
