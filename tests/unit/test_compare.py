"""The comparison table: definitions checked on small synthetic runs with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim.errors import InputError
from sim.model.costs import COST_COMPONENTS
from sim.results.compare import (
    column_title,
    comparison_table,
    discount_factors,
    from_dataset,
    load_results,
    parameter_label,
    to_markdown,
)
from sim.results.io import write_results

YEARS = np.arange(2022, 2033)


def synthetic(name: str, looked_after: float | np.ndarray = 80_000.0,
              started: float | np.ndarray = 30_000.0,
              cost: float | np.ndarray = 10e9, programme: float | np.ndarray = 0.0,
              replicates: int = 0, description: str = "") -> xr.Dataset:
    """A results dataset with the variables comparison reads: ``cost`` (non-programme)
    all in one component, ``programme`` in the programmes component."""
    shape = (len(YEARS),)
    costs = np.zeros((len(YEARS), len(COST_COMPONENTS)))
    costs[:, COST_COMPONENTS.index("other_childrens_social_care")] = cost
    costs[:, COST_COMPONENTS.index("programmes")] = programme
    ds = xr.Dataset(
        {"looked_after": ("year", np.broadcast_to(looked_after, shape).astype(float)),
         "started": ("year", np.broadcast_to(started, shape).astype(float)),
         "programme_cost_gbp": ("year", np.broadcast_to(programme, shape).astype(float)),
         "family_help_served": ("year", np.zeros(len(YEARS))),
         "cost_gbp": (("year", "cost_component"), costs)},
        coords={"year": YEARS, "cost_component": list(COST_COMPONENTS)},
        attrs={"scenario": name, "cost_discount_rate": 0.035, "engine": "stockflow",
               "scenario_toml": f'name = "{name}"\ndescription = "{description}"\n'})
    if replicates:
        noise = np.linspace(-100, 100, replicates)
        ds = xr.concat([ds + n for n in noise], dim="replicate", combine_attrs="override")
    return ds


def write(tmp_path: Path, ds: xr.Dataset) -> Path:
    return write_results(ds, tmp_path / f"{ds.attrs['scenario']}.nc")[0]


def test_table_definitions_on_known_numbers() -> None:
    reform_stock = np.full(len(YEARS), 80_000.0)
    reform_stock[YEARS >= 2025] = 79_000.0
    reform_cost = np.full(len(YEARS), 10e9)  # everything but programmes
    reform_cost[YEARS == 2030] -= 0.5e9  # a saving later
    programme = np.where(YEARS == 2024, 1e9, 0.0)  # £1bn programme in 2024
    started = np.where(YEARS == 2025, 29_000.0, 30_000.0)
    results = [from_dataset(synthetic("reform", reform_stock, started, reform_cost,
                                      programme, description="a reform")),
               from_dataset(synthetic("baseline"))]
    table = comparison_table(results).set_index("scenario")
    assert list(table.index) == ["baseline", "reform"]  # baseline first
    reform = table.loc["reform"]
    assert reform["looked_after_2025"] == 79_000
    assert reform["kept_at_home_2032"] == 1_000
    assert reform["starts_avoided_2023_2032"] == 1_000
    assert reform["programme_cost_gbp_m_2023_2032"] == pytest.approx(1_000)
    assert reform["total_cost_gbp_bn_2023_2032"] == pytest.approx(100.5)
    expected = (-1e9 / 1.035 ** 2 + 0.5e9 / 1.035 ** 8) / 1e6
    assert reform["net_saving_discounted_gbp_m"] == pytest.approx(expected)
    discounted_baseline = sum(10e9 / 1.035 ** t for t in range(1, 11)) / 1e9
    assert table.loc["baseline", "total_cost_discounted_gbp_bn_2023_2032"] == pytest.approx(
        discounted_baseline)
    assert reform["description"] == "a reform"


def test_without_a_baseline_relative_columns_are_missing() -> None:
    table = comparison_table([from_dataset(synthetic("reform"))], baseline="baseline")
    assert np.isnan(table.loc[0, "kept_at_home_2032"])
    assert np.isnan(table.loc[0, "net_saving_discounted_gbp_m"])
    assert table.loc[0, "looked_after_2032"] == 80_000


def test_years_outside_a_run_are_missing_not_an_error() -> None:
    table = comparison_table([from_dataset(synthetic("baseline"))], years=[2025, 2040])
    assert np.isnan(table.loc[0, "looked_after_2040"])


def test_cumulative_figures_use_the_years_every_run_covers() -> None:
    short = synthetic("short", programme=1e8).sel(year=slice(2022, 2026))
    results = [from_dataset(synthetic("baseline", programme=0.0)), from_dataset(short)]
    table = comparison_table(results).set_index("scenario")
    assert "programme_cost_gbp_m_2023_2026" in table.columns
    assert table.loc["short", "programme_cost_gbp_m_2023_2026"] == pytest.approx(400)
    assert table.loc["baseline", "total_cost_gbp_bn_2023_2026"] == pytest.approx(40)
    assert table.loc["short", "net_saving_discounted_gbp_m"] == pytest.approx(
        -sum(100 / 1.035 ** t for t in range(1, 5)))
    assert np.isnan(table.loc["short", "looked_after_2032"])


def test_runs_without_a_shared_year_cannot_be_compared() -> None:
    early = synthetic("early").sel(year=slice(2022, 2024))
    late = synthetic("late").assign_coords(year=YEARS + 10)
    with pytest.raises(InputError, match=r"compare: the runs share no projected year "
                       r"\(latest start 2033, earliest end 2024\)"):
        comparison_table([from_dataset(early), from_dataset(late)])
    with pytest.raises(InputError, match="--years needs at least one year"):
        comparison_table([from_dataset(early)], years=[])


def test_replicates_are_averaged() -> None:
    results = [from_dataset(synthetic("baseline", replicates=5)),
               from_dataset(synthetic("des", looked_after=79_500.0, replicates=5))]
    table = comparison_table(results).set_index("scenario")
    assert table.loc["des", "looked_after_2032"] == pytest.approx(79_500)
    assert table.loc["des", "kept_at_home_2032"] == pytest.approx(500)


def test_discount_factors_follow_the_green_book() -> None:
    factors = discount_factors(np.array([2022, 2023, 2032]), 2022, 0.035)
    assert factors == pytest.approx([1.0, 1 / 1.035, 1.035 ** -10])


def test_markdown_has_a_header_and_one_row_per_scenario() -> None:
    results = [from_dataset(synthetic("baseline")), from_dataset(synthetic("other"))]
    markdown = to_markdown(comparison_table(results))
    lines = markdown.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| scenario | kind | engine | compared with | looked after 2025 |")
    assert "kept at home 2032" in lines[0]
    assert ("| baseline | policy | stock-flow | baseline | 80,000 | 80,000 | 80,000 | 0 |"
            in markdown)


def test_a_scenario_family_is_compared_with_its_own_baseline() -> None:
    names = ("baseline", "review-assumptions-baseline", "review-assumptions-full", "other")
    results = [from_dataset(synthetic(name)) for name in names]
    table = comparison_table(results).set_index("scenario")
    assert table.loc["review-assumptions-full", "compared_with"] == (
        "review-assumptions-baseline")
    assert table.loc["other", "compared_with"] == "baseline"
    assert column_title("cost_2032_gbp_bn") == "cost 2032 £bn"


def test_load_results_reads_files_and_names(tmp_path: Path) -> None:
    paths = [write(tmp_path, synthetic("baseline")), write(tmp_path, synthetic("reform"))]
    results = load_results(paths)
    assert [r.name for r in results] == ["baseline", "reform"]
    assert results[0].path == paths[0]


def test_load_results_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="compare: no result files given"):
        load_results([])
    with pytest.raises(InputError, match="missing.nc: result file not found"):
        load_results([tmp_path / "missing.nc"])
    text = tmp_path / "notes.nc"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match="notes.nc: not a cicsim results file"):
        load_results([text])
    other = xr.Dataset({"x": ("year", [1.0])}, coords={"year": [2022]})
    other.to_netcdf(tmp_path / "other.nc")
    with pytest.raises(InputError, match=r"other.nc: not a cicsim results file \(no "
                       "'looked_after' variable\\)"):
        load_results([tmp_path / "other.nc"])
    first = write(tmp_path, synthetic("baseline"))
    copy = tmp_path / "copy"
    copy.mkdir()
    second = write(copy, synthetic("baseline"))
    with pytest.raises(InputError) as error:
        load_results([first, second])
    message = str(error.value)  # names both files and how to rename
    assert f"two runs share a scenario name: 'baseline' in {first}, {second}" in message
    assert "--name" in message and "\n" not in message


def test_csv_round_trip_keeps_numbers_unrounded(tmp_path: Path) -> None:
    results = [from_dataset(synthetic("baseline")),
               from_dataset(synthetic("reform", looked_after=79_999.25))]
    table = comparison_table(results)
    table.to_csv(tmp_path / "t.csv", index=False)
    again = pd.read_csv(tmp_path / "t.csv")
    assert again.loc[1, "kept_at_home_2032"] == pytest.approx(0.75)


@pytest.mark.parametrize(("key", "label"), [
    ("levers.family_help.unit_cost_gbp", "family help: unit cost (£)"),
    ("levers.foster_recruitment.lag_years", "foster recruitment: lag (years)"),
    ("costs.cin_gbp_per_child_year", "cost: children in need (£ per child-year)"),
    ("costs.residential_real_growth_per_year", "cost: residential real growth per year"),
    ("levers.family_help.effect", "family help: effect"),
    ("run.end_year", "run: end year"),
])
def test_parameter_label_reads_as_words(key: str, label: str) -> None:
    """Tornado bars are labelled in words, not raw scenario keys."""
    assert parameter_label(key) == label
