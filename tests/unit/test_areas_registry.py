"""Area selectors (sim.estimation.area_registry, shipped sim/data/areas.csv)."""

from __future__ import annotations

import pytest

from sim.errors import InputError
from sim.estimation.areas import ENGLAND, pathfinder_areas, resolve_areas


def test_england_is_the_default() -> None:
    assert resolve_areas() == [ENGLAND]
    assert resolve_areas("England") == [ENGLAND]
    assert ENGLAND.code == "E92000001" and ENGLAND.dfe_code == "" and ENGLAND.region == ""


def test_one_authority_by_ons_code_dfe_code_or_name_any_case() -> None:
    by_code = resolve_areas("E08000031")
    assert [a.name for a in by_code] == ["Wolverhampton"]
    assert resolve_areas("336") == by_code
    assert resolve_areas("wolverHAMPTON") == by_code
    assert by_code[0].region == "West Midlands" and by_code[0].dfe_code == "336"


def test_old_ons_codes_and_aliases_resolve_to_the_2022_authority() -> None:
    assert resolve_areas("E08000020") == resolve_areas("Gateshead")  # re-coded 2013
    assert resolve_areas("E06000065")[0].code == "E10000023"  # North Yorkshire
    assert resolve_areas("St. Helens") == resolve_areas("St Helens")


def test_list_keeps_order_and_drops_duplicates() -> None:
    areas = resolve_areas("Kent, E08000031 ,kent,england")
    assert [a.name for a in areas] == ["Kent", "Wolverhampton", "England"]


def test_region_names_its_authorities() -> None:
    london = resolve_areas("london")
    assert len(london) == 33
    assert {a.region for a in london} == {"London"}
    assert len(resolve_areas("North East")) == 12


def test_all_is_every_authority_on_2022_boundaries() -> None:
    areas = resolve_areas("all")
    assert len(areas) == 152 == len({a.code for a in areas})
    names = {a.name for a in areas}
    # successors of the 2019 and 2021 boundary changes, not their predecessors
    assert {"Dorset", "Bournemouth, Christchurch and Poole", "North Northamptonshire",
            "West Northamptonshire"} <= names
    assert not {"Poole", "Bournemouth", "Northamptonshire"} & names
    assert ENGLAND not in areas


def test_pathfinders_are_the_confirmed_families_first_authorities() -> None:
    rows = pathfinder_areas()
    assert [(a.name, wave) for a, wave, _ in rows] == [
        ("Dorset", 1), ("Lincolnshire", 1), ("Wolverhampton", 1), ("Wirral", 2),
        ("Warwickshire", 2)]
    assert rows[0][2] == "2023-07"
    assert resolve_areas("pathfinders") == [a for a, _, _ in rows]
    kinship = pathfinder_areas("Kinship allowance pilot (Kinship Zones)")
    assert len(kinship) == 7


@pytest.mark.parametrize("selector", ["Wolverhamptn", "E99999999", "kent,nowhere", " , "])
def test_unknown_selector_is_an_input_error_naming_it(selector: str) -> None:
    with pytest.raises(InputError) as caught:
        resolve_areas(selector)
    message = str(caught.value)
    assert "area" in message
    if selector == "Wolverhamptn":
        assert "'Wolverhamptn'" in message and "wolverhampton" in message
