"""What a modeller sees at the command line: ``cicsim`` alone, the run-name rule, and
the closing list of files written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import sim.run
from sim.cli import build_parser, main, run_name
from sim.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"


def test_cicsim_alone_exits_2_with_usage_and_every_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: cicsim")
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    for choice in subparsers._choices_actions:  # every command, with its one-line help
        assert choice.dest in captured.err, choice.dest
        assert choice.help and " ".join(choice.help.split()[:3]) in " ".join(
            captured.err.split()), choice.dest
    assert "export" in captured.err


@pytest.mark.parametrize("name, out, expected", [
    (None, None, None),  # the scenario's own name
    (None, "outputs/fewer-entries.nc", "fewer-entries"),  # the --out stem
    ("fewer", "outputs/fewer-entries.nc", "fewer"),  # --name wins
])
def test_one_naming_rule(name: str | None, out: str | None, expected: str | None) -> None:
    assert run_name(name, out) == expected


@pytest.mark.parametrize("name, out, where", [
    ("a b", None, "--name"), ("", None, "--name"), (None, "outputs/.nc", "--out")])
def test_bad_names_are_bad_input(name: str | None, out: str | None, where: str) -> None:
    with pytest.raises(InputError, match=f"^{where}"):
        run_name(name, out)


def fake_run(seen: list[Any]) -> Any:
    def run_to_file(scenario: Any, out: Any = None, **kwargs: Any) -> Any:
        seen.append(scenario)
        ds = xr.Dataset({"looked_after": ("year", [1.0, 2.0])}, coords={"year": [2022, 2023]},
                        attrs={"wall_time_s": 0.0})
        stem = Path(out) if out else Path("outputs") / f"{scenario.name}.nc"
        return ds, stem, stem.with_suffix(".csv")
    return run_to_file


@pytest.mark.parametrize("args, name", [
    ([], "baseline"),
    (["--out", "x/fewer-entries.nc"], "fewer-entries"),
    (["--out", "x/fewer-entries.nc", "--name", "entries-90"], "entries-90"),
])
def test_run_saves_under_the_rule_and_lists_the_files(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], name: str) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(sim.run, "run_to_file", fake_run(seen))
    assert main(["run", str(BASELINE), "--quiet", *args]) == 0
    assert seen[0].name == name
    assert seen[0].config["name"] == name  # what the run's provenance records
    stem = Path(args[1]) if args else Path("outputs") / "baseline.nc"
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"wrote {stem}, {stem.with_suffix('.csv')}")


def test_every_shipped_scenario_says_what_it_is() -> None:
    """The report's sections come from ``kind``: policies (and their do-nothing), the
    modelling variants and the demonstration.  ``review-full.toml`` inherits "policy"
    from baseline.toml (its bytes are fingerprinted by the review-assumptions layer)."""
    from sim.scenarios.loader import load_scenario

    kinds = {path.stem: load_scenario(path).config["kind"]
             for path in sorted((ROOT / "scenarios").glob("*.toml"))}
    assert {n for n, k in kinds.items() if k == "demo"} == {"capacity-example"}
    assert {n for n, k in kinds.items() if k == "variant"} == {
        "uncalibrated", "uasc-high", "uasc-low", "review-assumptions-baseline",
        "review-assumptions-full", "review-assumptions-delayed"}
    assert {n for n, k in kinds.items() if k == "policy"} == {
        "baseline", "stable-homes", "review-full", "review-delayed", "policy-as-enacted",
        "families-first-pathfinders"}
    with pytest.raises(InputError, match="kind"):
        load_scenario(BASELINE, ["kind=policies"])
