"""The shipped scenarios carry the money the sources say, in the right years.

The totals are recomputed from ``sim/data/policy_funding.csv`` and ``review.csv`` rather
than typed again, so a typo in a scenario file (or a changed data row) fails here."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sim.model.levers import resolve_levers
from sim.scenarios.loader import load_scenario
from sim.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
DATA = ROOT / "sim" / "data"


def data_rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def policy_value(measure: str) -> float:
    rows = [r for r in data_rows("policy_funding.csv") if r["measure"] == measure]
    assert len(rows) == 1, measure
    return float(rows[0]["value"])


def review_value(measure: str) -> float:
    rows = [r for r in data_rows("review.csv") if r["measure"] == measure]
    return float(rows[0]["value"])


def money(name: str) -> dict[str, dict[int, float]]:
    config = load_scenario(SCENARIOS / f"{name}.toml").config
    return {lever: resolved.funding_gbp_m for lever, resolved in resolve_levers(config).items()}


def total(by_year: dict[int, float]) -> float:
    return sum(by_year.values())


@pytest.mark.parametrize("name", ["baseline", "stable-homes", "review-full",
                                  "review-delayed", "policy-as-enacted"])
def test_shipped_scenarios_load_and_check(name: str) -> None:
    config = load_scenario(SCENARIOS / f"{name}.toml").config
    resolve_levers(config, where=name)  # the per-lever checks pass too
    assert config["name"] == name


def test_baseline_has_no_money() -> None:
    assert money("baseline") == {}


def test_stable_homes_is_the_200m_with_its_lines() -> None:
    funding = money("stable-homes")
    assert sum(total(v) for v in funding.values()) == pytest.approx(
        policy_value("total SHBL funding over two years"))
    assert total(funding["family_help"]) == pytest.approx(
        policy_value("Families First for Children pathfinder (up to 12 LAs)"))
    assert total(funding["foster_recruitment"]) == pytest.approx(
        policy_value("foster carer recruitment and retention programme"))
    assert total(funding["kinship_support"]) == pytest.approx(
        policy_value("kinship carer training and support"))
    assert set().union(*funding.values()) == {2024, 2025}


def test_review_full_is_2_6bn_over_five_years() -> None:
    funding = money("review-full")
    everything = sum(total(v) for v in funding.values())
    assert everything == pytest.approx(
        review_value("review recommended new spending (reported as over five years)") * 1000)
    family = funding["family_help"]
    assert total(family) == pytest.approx(
        review_value("Family Help temporary injection over five years") * 1000)
    assert family[2024] + family[2025] == pytest.approx(1000)  # £1bn in the first two years
    assert total(funding["foster_recruitment"]) == pytest.approx(
        review_value("foster carer support uplift over five years"))
    assert set().union(*funding.values()) == set(range(2024, 2029))


def test_review_delayed_is_the_same_money_two_years_later() -> None:
    full, delayed = money("review-full"), money("review-delayed")
    assert delayed.keys() == full.keys()
    for lever, by_year in full.items():
        assert delayed[lever] == {year + 2: amount for year, amount in by_year.items()}


def test_policy_as_enacted_accounts_for_every_data_row() -> None:
    """Every announced line is either used or excluded with a reason in the file."""
    text = (SCENARIOS / "policy-as-enacted.toml").read_text(encoding="utf-8")
    flat = " ".join(text.replace("#", " ").split())
    for row in data_rows("policy_funding.csv"):
        key = row["measure"] if row["source"] != "NOT CONFIRMED" else "'27m' figure"
        assert " ".join(key.split()) in flat, f"row not accounted for: {row['measure']}"


def test_policy_as_enacted_totals_follow_the_data_file() -> None:
    funding = money("policy-as-enacted")
    supporting_families = policy_value(
        "Children and Families Grant: ex-Supporting Families component")
    prevention = policy_value("prevention and de-escalation funding over three years") * 1000
    transformation = policy_value("Transformation Fund for CSC prevention")
    family = funding["family_help"]
    assert family[2024] + family[2025] == pytest.approx(
        policy_value("Families First for Children pathfinder (up to 12 LAs)"))
    assert family[2026] == pytest.approx(
        policy_value("Children's Social Care Prevention Grant"))
    assert family[2027] + family[2028] + family[2029] == pytest.approx(
        prevention - 3 * supporting_families + transformation, abs=0.01)
    foster = funding["foster_recruitment"]
    assert total(foster) == pytest.approx(
        policy_value("total fostering funding after Dec 2023 top-up of 8.5m")
        + policy_value("fostering funding within transformation fund")
        + policy_value("fostering strategy funding over two years"))
    kinship = funding["kinship_support"]
    assert total(kinship) == pytest.approx(
        policy_value("kinship carer training and support")
        + policy_value("kinship allowance pilot investment (7 LAs; first two years)"))
    other = funding["other_programmes"]
    shbl_rest = (policy_value("total SHBL funding over two years")
                 - policy_value("Families First for Children pathfinder (up to 12 LAs)")
                 - (policy_value("total fostering funding after Dec 2023 top-up of 8.5m") - 8.5)
                 - policy_value("kinship carer training and support"))
    transformation_rest = (policy_value(
        "Spending Review 2025 additional CSC transformation funding") - transformation
        - policy_value("fostering funding within transformation fund"))
    assert total(other) == pytest.approx(shbl_rest + transformation_rest, abs=0.01)


def test_kinship_unit_cost_default_is_the_pilot_arithmetic() -> None:
    from sim.model.lever_parameters import LEVER_PARAMETERS

    per_child_year = (policy_value(
        "kinship allowance pilot investment (7 LAs; first two years)") * 1e6 / 2
        / policy_value("children covered by kinship allowance pilot"))
    assert LEVER_PARAMETERS["kinship_support"]["unit_cost_gbp"].value == pytest.approx(
        per_child_year)


def test_family_help_sweep_expands_to_totals_with_the_same_profile() -> None:
    sweep = load_sweep(SCENARIOS / "sweeps" / "family-help.toml")
    assert [value for value, _ in sweep.runs] == [0, 500, 1000, 1500, 2000, 2500, 3000]
    for value, scenario in sweep.runs:
        table = scenario.get("levers.family_help.funding_gbp_m")
        assert sum(table.values()) == pytest.approx(value)
        assert scenario.name == f"family-help-{value:g}"
    _, two_bn = sweep.runs[4]  # £2bn: the review's family help, year by year
    swept = {int(y): v for y, v in two_bn.get("levers.family_help.funding_gbp_m").items()}
    assert swept == pytest.approx(money("review-full")["family_help"])
