"""``cicsim solve``: its answer reproduces its target when the scenario is re-run with
it, an unreachable target or bad input is one line and exit 2 with nothing written, and
``kept_at_home`` is measured against the baseline.toml down the extends chain."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import xarray as xr

from sim import solve as solve_module
from sim.cli import main
from sim.errors import InputError
from sim.estimation.estimate import estimate_parameters
from sim.model.parameters import ModelParameters
from sim.results.compare import from_dataset, value_in
from sim.run import simulate
from sim.scenarios.loader import load_scenario
from sim.solve import (
    Target,
    UnreachableTarget,
    find_baseline,
    parse_target,
    parse_vary,
    prepare,
    run_solve,
    solve,
)

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"
SHORT = ["run.end_year=2026"]  # a five-year run keeps every evaluation fast
EFFECT = "levers.family_help.effect"


def reform(directory: Path, name: str = "reform", extends: Path = BASELINE) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(f'name = "{name}"\nextends = "{extends}"\n[levers.family_help]\n'
                    'funding_gbp_m = { "2024" = 400, "2025" = 400 }\n', encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def params() -> ModelParameters:
    """One estimation for the checking runs: levers never change it (sim.sensitivity)."""
    return estimate_parameters(load_scenario(BASELINE, SHORT).config)


def looked_after(path: Path, overrides: list[str], year: int,
                 params: ModelParameters) -> float:
    """A run made without solve's code, as `cicsim run` makes it."""
    ds = simulate(load_scenario(path, overrides), engine="stockflow", params=params)
    return value_in(from_dataset(ds), "looked_after", year)


def test_api_answer_reproduces_its_target(tmp_path: Path, params: ModelParameters) -> None:
    path = reform(tmp_path)
    solution = solve(path, EFFECT, 0.0, 1.0, "kept_at_home@2026=800", SHORT)
    assert 0 < solution.value < 1
    assert solution.achieved == pytest.approx(800, rel=1e-6)
    # Re-run exactly as `cicsim run --set` would, independently of solve's code.
    kept = (looked_after(BASELINE, SHORT, 2026, params)
            - looked_after(path, [*SHORT, f"{EFFECT}={solution.value!r}"], 2026, params))
    assert kept == pytest.approx(800, rel=1e-6)  # far inside the 0.5 % asked for
    assert [e.value for e in solution.evaluations][:2] == [0.0, 0.125]  # scan from LO
    assert solution.crossings == 1


def test_cli_answer_reproduces_its_target_and_writes_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], params: ModelParameters) -> None:
    path = reform(tmp_path)
    # Known answer: the metric at effect 0.4, then solve back for it.
    known = (looked_after(BASELINE, SHORT, 2026, params)
             - looked_after(path, [*SHORT, f"{EFFECT}=0.4"], 2026, params))
    out = tmp_path / "solution.json"
    code = main(["solve", str(path), "--vary", f"{EFFECT}=0:1", "--target",
                 f"kept_at_home@2026={known!r}", "--set", SHORT[0], "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith(f"solved: {EFFECT} = ")
    assert last.endswith(f"(kept_at_home@2026 = {known:,.2f})")
    value = float(last.split(" = ")[1].split(" ")[0])
    assert value == pytest.approx(0.4, rel=1e-6)
    assert f"solve: {EFFECT} = 0 -> kept_at_home@2026 = " in captured.err  # progress
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["solution"]["value"] == value
    assert record["bracket"] == [0.0, 1.0]
    assert record["target"] == {"metric": "kept_at_home", "year": 2026, "value": known}
    assert len(record["evaluations"]) >= 10
    # `cicsim run` with the printed value: same result, and the same resolved scenario
    # (the hash solve recorded is the hash of what the run saves).
    nc = tmp_path / "reruns" / "reform.nc"  # the --out stem names the run: keep "reform"
    assert main(["run", str(path), "--set", SHORT[0], "--set", f"{EFFECT}={value}",
                 "--engine", "stockflow", "--out", str(nc), "--quiet"]) == 0
    ds = xr.open_dataset(nc)
    rerun = (looked_after(BASELINE, SHORT, 2026, params)
             - float(ds["looked_after"].sel(year=2026)))
    assert abs(rerun - known) / known < 1e-6
    assert (hashlib.sha256(ds.attrs["scenario_toml"].encode("utf-8")).hexdigest()
            == record["resolved_toml_sha256"])


def test_other_metrics_solve(tmp_path: Path) -> None:
    path = reform(tmp_path)
    started = solve(path, EFFECT, 0.0, 1.0, "started@2025=26000", SHORT)
    assert started.achieved == pytest.approx(26000, rel=1e-6)
    cost = solve(BASELINE, "costs.real_growth_per_year", 0.0, 0.2, "cost_gbp@2026=11e9",
                 SHORT)
    assert cost.achieved == pytest.approx(11e9, rel=1e-6)
    assert 0 < cost.value < 0.2


def test_unreachable_target_is_one_line_naming_the_closest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = reform(tmp_path)
    out = tmp_path / "solution.json"
    code = main(["solve", str(path), "--vary", f"{EFFECT}=0:1", "--target",
                 "kept_at_home@2026=99999", "--set", SHORT[0], "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines  # no progress lines before it
    assert lines[0].startswith("error: solve: kept_at_home@2026 = 99999 is not reachable "
                               f"with {EFFECT} in [0, 1]; closest: ")
    assert lines[0].endswith(f"at {EFFECT} = 1")  # more effect keeps more at home
    assert captured.out == ""
    assert not out.exists()


def test_non_monotone_metric_finds_the_crossing_nearest_lo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric that rises then falls: the scan finds both crossings and solves the
    first; a target above the peak is unreachable with the peak as the closest."""
    problem = prepare(reform(tmp_path), EFFECT, 0.0, 1.0, Target("started", 2025, 0.16),
                      SHORT)

    def hump(self: object, value: float) -> float:
        result = value * (0.9 - value)  # peak 0.2025 at 0.45, between scan points
        self.evaluations.append(solve_module.Evaluation(value, result))
        return result

    monkeypatch.setattr(solve_module._Evaluator, "metric", hump)
    monkeypatch.setattr(solve_module._Evaluator, "scenario_at",
                        lambda self, value: problem.scenario)
    lines: list[str] = []
    solution = run_solve(problem, progress=lines.append)
    assert solution.value == pytest.approx((0.9 - 0.17 ** 0.5) / 2, rel=1e-8)
    assert solution.crossings == 2
    assert any("crosses the target in 2" in line for line in lines)
    problem.target = Target("started", 2025, 0.3)
    with pytest.raises(UnreachableTarget) as info:
        run_solve(problem)
    assert info.value.closest.value == pytest.approx(0.45, abs=1e-6)  # refined peak
    # Above every scan point (0.2 at 0.5 is the best) but below the peak: the refined
    # turning point brackets it.
    problem.target = Target("started", 2025, 0.2024)
    solved = run_solve(problem)
    assert solved.achieved == pytest.approx(0.2024, rel=1e-9)
    assert solved.value == pytest.approx(0.44, rel=1e-8)  # 0.44 * 0.46, nearer LO
    assert solved.crossings == 2


def test_a_step_across_the_target_is_not_a_solution(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problem = prepare(reform(tmp_path), EFFECT, 0.0, 1.0, Target("started", 2025, 0.5),
                      SHORT)

    def step(self: object, value: float) -> float:
        result = 0.0 if value < 0.3 else 1.0
        self.evaluations.append(solve_module.Evaluation(value, result))
        return result

    monkeypatch.setattr(solve_module._Evaluator, "metric", step)
    with pytest.raises(UnreachableTarget, match="jumps across it near"):
        run_solve(problem)


@pytest.mark.parametrize(("args", "message"), [
    ([f"--vary={EFFECT.replace('effect', 'efect')}=0:1", "--target=kept_at_home@2026=5"],
     "error: --vary: unknown key 'levers.family_help.efect'; valid keys: "),
    ([f"--vary={EFFECT}=1:0", "--target=kept_at_home@2026=5"],
     f"error: --vary: key '{EFFECT}': LO = 1 must be below HI = 0"),
    ([f"--vary={EFFECT}=0.5:0.5", "--target=kept_at_home@2026=5"],
     f"error: --vary: key '{EFFECT}': LO = 0.5 must be below HI = 0.5"),
    ([f"--vary={EFFECT}=0:2", "--target=kept_at_home@2026=5"],
     f"key '{EFFECT}' = 2.0 is a share or relative reduction: it must be at most 1"),
    ([f"--vary={EFFECT}=0-1", "--target=kept_at_home@2026=5"],
     f"error: --vary: '{EFFECT}=0-1' must look like KEY=LO:HI"),
    (["--vary=trends.window_years=2:9", "--target=kept_at_home@2026=5"],
     "error: --vary: key 'trends.window_years' takes whole numbers only"),
    (["--vary=run.engine=0:1", "--target=kept_at_home@2026=5"],
     "error: --vary: key 'run.engine' is not a number"),
    (["--vary=levers.family_help.funding_gbp_m.2025=0:900", "--target=started@2026=5"],
     "is in a year table; --set replaces a whole table"),
    ([f"--vary={EFFECT}=0:1", "--target=kept_home@2026=5"],
     "error: --target: unknown metric 'kept_home'; valid: looked_after, started, "
     "cost_gbp, kept_at_home"),
    ([f"--vary={EFFECT}=0:1", "--target=kept_at_home@2040=5"],
     "error: --target: year 2040 is outside the run's years 2022-2026"),
    ([f"--vary={EFFECT}=0:1", "--target=kept_at_home@2019=5"],
     "error: --target: year 2019 is outside the run's years 2022-2026"),
    ([f"--vary={EFFECT}=0:1", "--target=kept_at_home=5"],
     "error: --target: 'kept_at_home=5' must look like METRIC@YEAR=VALUE"),
    ([f"--vary={EFFECT}=0:1", "--target=kept_at_home@2026=lots"],
     "error: --target: 'kept_at_home' VALUE 'lots' is not a number"),
    ([f"--vary={EFFECT}=0:1", "--target=kept_at_home@2026=5", f"--set={EFFECT}=0.3"],
     f"error: --set: key '{EFFECT}' is the key --vary solves for"),
    ([f"--vary={EFFECT}=0:1"], "the following arguments are required: --target"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_simulation(*_: object, **__: object) -> None:
        raise AssertionError("bad input must be caught before any simulation")

    monkeypatch.setattr(solve_module, "run_solve", no_simulation)
    path = reform(tmp_path)
    out = tmp_path / "solution.json"
    code = main(["solve", str(path), *args, "--set", SHORT[0], "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]
    assert not out.exists()
    assert captured.out == ""


def test_parsers_accept_signs_and_exponents() -> None:
    assert parse_vary("rates.entry_multiplier=-0.5:1e1") == ("rates.entry_multiplier",
                                                            -0.5, 10.0)
    assert parse_target("cost_gbp@2032=1.5e10") == Target("cost_gbp", 2032, 1.5e10)
    with pytest.raises(InputError, match="finite"):
        parse_target("looked_after@2032=inf")


def test_kept_at_home_walks_the_extends_chain_to_baseline_toml(tmp_path: Path) -> None:
    """The nearest baseline.toml below the scenario: here a local one that itself
    extends the shipped baseline, with a middle layer in between."""
    local = tmp_path / "baseline.toml"
    local.write_text(f'extends = "{BASELINE}"\nname = "local-baseline"\n',
                     encoding="utf-8")
    middle = reform(tmp_path, "middle", extends=local)
    top = tmp_path / "top.toml"
    top.write_text('extends = "middle.toml"\nname = "top"\n', encoding="utf-8")
    assert find_baseline(load_scenario(top)).resolve() == local.resolve()
    assert find_baseline(load_scenario(middle)).resolve() == local.resolve()
    assert find_baseline(load_scenario(local)).resolve() == local.resolve()  # its own
    problem = prepare(top, EFFECT, 0.0, 1.0, Target("kept_at_home", 2026, 10), SHORT)
    assert problem.baseline is not None and problem.baseline.name == "local-baseline"
    assert problem.baseline.config["run"]["end_year"] == 2026  # --set applies to it too
    assert problem.baseline.config["levers"] == {}  # and the scenario's levers do not


def test_kept_at_home_without_a_baseline_in_the_chain_is_bad_input(tmp_path: Path) -> None:
    lone = tmp_path / "lone.toml"
    lone.write_text('name = "lone"\n[levers.family_help]\nfunding_gbp_m = { "2024" = 1 }\n',
                    encoding="utf-8")
    with pytest.raises(InputError, match=r"lone.toml: metric 'kept_at_home' needs a "
                       r"baseline, but no file named baseline.toml is in its extends"):
        prepare(lone, EFFECT, 0.0, 1.0, Target("kept_at_home", 2026, 10), SHORT)
    # other metrics need no baseline
    assert prepare(lone, EFFECT, 0.0, 1.0, Target("looked_after", 2026, 10),
                   SHORT).baseline is None
