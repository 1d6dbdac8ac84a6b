"""The lever chains: money -> capacity -> coverage -> effect, step by step.

A small stand-in for ModelParameters (only the pools the levers read) keeps the
expected values exact and the tests instant."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from sim.errors import InputError
from sim.model.lever_parameters import LEVER_NAMES, LEVER_PARAMETERS
from sim.model.levers import (
    LeverEffects,
    PlacementShift,
    describe_levers,
    foster_places,
    lever_effects,
    resolve_levers,
)
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import load_scenario
from sim.scenarios.schema import TABLE_SECTIONS

POOL = 400_000.0  # CIN pool
IN_CARE = 80_000.0  # non-UASC children in care (looked_after_base - UASC)
MIX = np.array([[0.5, 0.2, 0.1, 0.2], [0.4, 0.0, 0.0, 0.6]])


def fake_params(base_year: int = 2022) -> ModelParameters:
    return cast(ModelParameters, SimpleNamespace(
        base_year=base_year, cin_pool_base=POOL, looked_after_base=IN_CARE + 5_000,
        uasc_base_by_band=np.array([0, 0, 0, 1_000.0, 4_000.0]), placement_mix=MIX))


def config_with(levers: dict[str, dict[str, Any]], base_year: int = 2022) -> dict[str, Any]:
    """Code defaults plus these lever tables, each filled with the table defaults the
    loader uses."""
    config = copy.deepcopy(load_scenario(None).config)
    config["run"]["base_year"] = base_year
    defaults = {k: f.default for k, f in TABLE_SECTIONS["levers"].items()}
    config["levers"] = {name: copy.deepcopy(defaults) | table for name, table in levers.items()}
    return config


def family_help(**overrides: Any) -> dict[str, Any]:
    table = {"funding_gbp_m": {"2024": 400.0, "2025": 400.0}, "unit_cost_gbp": 4_000.0,
             "effect": 0.2, "risk_ratio": 1.0, "lag_years": 0.0, "ramp_up_years": 0.0}
    return table | overrides


def test_no_levers_is_exactly_neutral() -> None:
    config = copy.deepcopy(load_scenario(None).config)
    for year in range(2022, 2033):
        assert lever_effects(config, fake_params(), year) == LeverEffects()


def test_zero_money_is_exactly_neutral_for_every_lever() -> None:
    levers = {name: {"funding_gbp_m": {"2024": 0.0, "2025": 0.0}} for name in LEVER_NAMES}
    config = config_with(levers)
    for year in range(2023, 2030):
        effects = lever_effects(config, fake_params(), year)
        assert effects.entry_multiplier == 1.0
        assert effects.reunification_multiplier == 1.0
        assert effects.reentry_multiplier == 1.0
        assert effects.sgo_cao_multiplier == 1.0
        assert effects.placement_shift is None
        assert effects.programme_cost_gbp == 0.0
        assert effects.family_help_served == 0.0


def test_family_help_chain_money_capacity_coverage_effect() -> None:
    config = config_with({"family_help": family_help()})
    effects = lever_effects(config, fake_params(), 2024)
    served = 400e6 / 4_000  # capacity = money / unit cost = 100,000 children
    assert effects.family_help_served == pytest.approx(served)
    assert effects.coverage["family_help"] == pytest.approx(served / POOL)
    assert effects.entry_multiplier == pytest.approx(1 - 0.2 * served / POOL)
    assert effects.programme_cost_gbp == pytest.approx(400e6)
    # no money in 2026: the effect ends with it (lag 0)
    assert lever_effects(config, fake_params(), 2026).entry_multiplier == 1.0


def test_family_help_risk_ratio_targets_higher_risk_children() -> None:
    config = config_with({"family_help": family_help(risk_ratio=2.0)})
    effects = lever_effects(config, fake_params(), 2024)
    assert effects.entry_multiplier == pytest.approx(1 - 0.2 * 2 * 100_000 / POOL)


def test_coverage_saturates_at_the_area_share() -> None:
    """Money beyond the eligible pool in the funded areas buys nothing more."""
    lever = family_help(funding_gbp_m={"2024": 1e5}, area_share=0.1, risk_ratio=3.0)
    effects = lever_effects(config_with({"family_help": lever}), fake_params(), 2024)
    assert effects.coverage["family_help"] == pytest.approx(0.1)
    assert effects.family_help_served == pytest.approx(0.1 * POOL)
    assert effects.entry_multiplier == pytest.approx(1 - 0.2 * 0.1)
    assert effects.programme_cost_gbp == pytest.approx(1e11)  # the money is still spent


def test_pathfinder_area_share_limits_national_effect() -> None:
    lever = family_help(funding_gbp_m={"2024": 45.0}, area_share=12 / 152)
    effects = lever_effects(config_with({"family_help": lever}), fake_params(), 2024)
    served = 45e6 / 4_000
    assert served < POOL * 12 / 152  # not saturated
    assert effects.entry_multiplier == pytest.approx(1 - 0.2 * served / POOL)


def test_fractional_lag_interpolates_between_years() -> None:
    lever = family_help(lag_years=0.5)
    config = config_with({"family_help": lever})
    first = lever_effects(config, fake_params(), 2024)
    after = lever_effects(config, fake_params(), 2026)  # half of 2025's money still acts
    assert first.family_help_served == pytest.approx(0.5 * 100_000)
    assert after.family_help_served == pytest.approx(0.5 * 100_000)
    assert after.programme_cost_gbp == 0.0  # money is counted when spent, not lagged
    assert lever_effects(config, fake_params(), 2027).entry_multiplier == 1.0


def test_ramp_up_is_linear_from_the_first_funded_year() -> None:
    lever = family_help(ramp_up_years=2.0, funding_gbp_m={"2024": 400.0, "2025": 400.0,
                                                          "2026": 400.0})
    config = config_with({"family_help": lever})
    reduction = [1 - lever_effects(config, fake_params(), y).entry_multiplier
                 for y in (2024, 2025, 2026)]
    full = 0.2 * 100_000 / POOL
    assert reduction == pytest.approx([full / 2, full, full])


def test_delay_moves_money_and_area_schedule_together() -> None:
    lever = family_help(area_share_by_year={"2024": 0.5, "2025": 1.0}, delay_years=2)
    resolved = resolve_levers(config_with({"family_help": lever}))["family_help"]
    assert resolved.funding_gbp_m == {2026: 400.0, 2027: 400.0}
    assert resolved.start_year == 2026
    assert [resolved.area(y) for y in (2025, 2026, 2027, 2030)] == [1.0, 0.5, 1.0, 1.0]
    assert lever_effects(config_with({"family_help": lever}), fake_params(),
                         2024).entry_multiplier == 1.0


def test_area_share_by_year_is_a_step_function() -> None:
    lever = family_help(area_share=0.3, area_share_by_year={"2025": 0.05, "2027": 1.0})
    resolved = resolve_levers(config_with({"family_help": lever}))["family_help"]
    assert [resolved.area(y) for y in (2024, 2025, 2026, 2027, 2031)] == [
        0.3, 0.05, 0.05, 1.0, 1.0]


def test_reunification_support_raises_returns_and_lowers_reentry() -> None:
    lever = {"funding_gbp_m": {"2024": 80.0}, "unit_cost_gbp": 10_000.0, "effect": 0.5,
             "reentry_effect": 0.4, "lag_years": 0.0, "ramp_up_years": 0.0}
    effects = lever_effects(config_with({"reunification_support": lever}), fake_params(), 2024)
    covered = 8_000 / IN_CARE
    assert effects.reunification_multiplier == pytest.approx(1 + 0.5 * covered)
    supported_share_of_returns = covered * 1.5 / (1 + 0.5 * covered)
    assert effects.reentry_multiplier == pytest.approx(1 - 0.4 * supported_share_of_returns)
    assert effects.entry_multiplier == 1.0


def test_kinship_support_raises_sgo_exits_and_kin_placements() -> None:
    lever = {"funding_gbp_m": {"2024": 126.0}, "unit_cost_gbp": 12_600.0, "effect": 0.25,
             "placement_effect": 0.1, "lag_years": 0.0, "ramp_up_years": 0.0}
    effects = lever_effects(config_with({"kinship_support": lever}), fake_params(), 2024)
    covered = 10_000 / IN_CARE
    assert effects.sgo_cao_multiplier == pytest.approx(1 + 0.25 * covered)
    assert effects.placement_shift is not None
    mix = effects.placement_shift(MIX[0])
    moved = MIX[0][0] * 0.1 * covered
    assert mix == pytest.approx(MIX[0] + np.array([-moved, moved, 0, 0]))


def test_foster_places_outlast_the_money_with_retention() -> None:
    lever = {"funding_gbp_m": {"2024": 9.1, "2025": 9.1}, "unit_cost_gbp": 9_100.0,
             "effect": 0.5, "retention_per_year": 0.8, "lag_years": 0.0,
             "ramp_up_years": 0.0}
    config = config_with({"foster_recruitment": lever})
    resolved = resolve_levers(config)["foster_recruitment"]
    assert foster_places(resolved, 2024) == pytest.approx(1_000)
    assert foster_places(resolved, 2025) == pytest.approx(1_800)
    assert foster_places(resolved, 2027) == pytest.approx(1_800 * 0.64)
    effects = lever_effects(config, fake_params(), 2027)
    residential = MIX[0][2] * IN_CARE
    shift = 0.5 * 1_800 * 0.64 / residential
    assert effects.coverage["foster_recruitment"] == pytest.approx(shift)
    assert effects.placement_shift is not None
    new_mix = effects.placement_shift(MIX[0])
    assert new_mix[2] == pytest.approx(MIX[0][2] * (1 - shift))
    assert effects.entry_multiplier == 1.0  # placement only: numbers in care unchanged


def test_placement_shift_keeps_a_valid_mix() -> None:
    shift = PlacementShift(foster_to_kinship=0.3, residential_to_foster=1.0)
    mix = shift(MIX[0])
    assert mix.sum() == pytest.approx(1.0)
    assert (mix >= 0).all()
    assert mix[2] == 0.0


def test_levers_combine_multiplicatively() -> None:
    config = config_with({"family_help": family_help(),
                          "other_programmes": {"funding_gbp_m": {"2024": 100.0}}})
    effects = lever_effects(config, fake_params(), 2024)
    assert effects.programme_cost_gbp == pytest.approx(500e6)
    assert effects.entry_multiplier == pytest.approx(1 - 0.2 * 100_000 / POOL)


def test_estimate_uses_each_levers_own_default() -> None:
    config = config_with({"family_help": {"funding_gbp_m": {"2024": 1.0}},
                          "reunification_support": {"funding_gbp_m": {"2024": 1.0}}})
    resolved = resolve_levers(config)
    assert resolved["family_help"].values["effect"] == LEVER_PARAMETERS["family_help"][
        "effect"].value
    assert resolved["reunification_support"].values["effect"] == LEVER_PARAMETERS[
        "reunification_support"]["effect"].value


def test_every_lever_parameter_has_a_source_and_a_range_around_its_value() -> None:
    for name, parameters in LEVER_PARAMETERS.items():
        for key, parameter in parameters.items():
            assert parameter.source, f"{name}.{key} has no source"
            assert parameter.low <= parameter.value <= parameter.high, f"{name}.{key}"


def test_describe_levers_reports_the_values_used() -> None:
    rows = describe_levers(config_with({"family_help": family_help(effect=0.3)}))
    effect = [r for r in rows if r["parameter"] == "effect"][0]
    total = [r for r in rows if r["parameter"] == "funding_gbp_m (total)"][0]
    assert effect["value"] == 0.3
    assert total["value"] == 800.0


def test_key_for_another_lever_is_rejected() -> None:
    config = config_with({"family_help": family_help(retention_per_year=0.9)})
    with pytest.raises(InputError, match=r"'levers.family_help.retention_per_year' does not "
                       r"apply to family_help; it is read by: foster_recruitment"):
        lever_effects(config, fake_params(), 2024)


def test_other_programmes_rejects_effect_keys() -> None:
    config = config_with({"other_programmes": {"funding_gbp_m": {"2024": 1.0},
                                               "effect": 0.1}})
    with pytest.raises(InputError, match="'levers.other_programmes.effect' does not apply"):
        resolve_levers(config)


def test_reduction_above_one_is_rejected() -> None:
    config = config_with({"family_help": family_help(effect=1.5)})
    with pytest.raises(InputError, match=r"'levers.family_help.effect' = 1.5 is a share or "
                       "relative reduction: it must be at most 1"):
        resolve_levers(config)


def test_money_in_the_base_year_is_rejected() -> None:
    config = config_with({"family_help": family_help(funding_gbp_m={"2022": 10.0})})
    with pytest.raises(InputError, match=r"'levers.family_help.funding_gbp_m.2022': money "
                       "must come after the base year 2022"):
        resolve_levers(config)


def test_lever_tables_are_validated_by_the_scenario_loader(tmp_path: Any) -> None:
    cases = {
        "[levers.family_hlep]\nfunding_gbp_m = {}\n": "unknown key 'levers.family_hlep'",
        "[levers.family_help]\nfunding = 1\n": "unknown key 'levers.family_help.funding'",
        "[levers.family_help]\nfunding_gbp_m = { \"2024\" = -1 }\n": "is negative",
        "[levers.family_help]\nfunding_gbp_m = { \"FY24\" = 1 }\n": "table keys must be years",
        "[levers.family_help]\narea_share = 1.5\n": "is a probability",
        "[levers.kinship_support]\nplacement_effect = \"high\"\n": "must be a probability",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            load_scenario(path)


def test_effects_are_finite_and_bounded_for_the_default_ranges() -> None:
    levers = {name: {"funding_gbp_m": {"2024": 1e4, "2025": 1e4}} for name in LEVER_NAMES}
    config = config_with(levers)
    for year in range(2023, 2033):
        effects = lever_effects(config, fake_params(), year)
        assert 0 <= effects.entry_multiplier <= 1
        assert 0 <= effects.reentry_multiplier <= 1
        assert effects.reunification_multiplier >= 1
        assert math.isfinite(effects.sgo_cao_multiplier)


def test_docs_tables_match_the_code() -> None:
    """docs/levers.md carries the generated assumption tables unchanged."""
    from pathlib import Path

    from sim.model.lever_parameters import parameter_tables_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "levers.md"
    assert parameter_tables_markdown() in docs.read_text(encoding="utf-8"), (
        "regenerate the tables in docs/levers.md with "
        "sim.model.lever_parameters.parameter_tables_markdown()")
