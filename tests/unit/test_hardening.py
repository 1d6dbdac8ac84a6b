"""One test per input-hardening rule for scenario files (issue 12): each bad input is
refused by the CLI, in process, with exit 2, exactly one stderr line naming the file
and the key, and nothing written under the working folder or outside it.

Every test runs in a fresh working folder (``tmp_path/work``) and compares a listing
of the whole ``tmp_path`` tree before and after, so a file written through ``../`` or
an absolute path placed in ``tmp_path`` is caught too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.cli import main
from sim.scenarios.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"
REVIEW_FULL = ROOT / "scenarios" / "review-full.toml"


@dataclass
class Outcome:
    code: int
    out: str
    err: list[str]
    written: set[str]  # paths created or changed under tmp_path


def _listing(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str], *args: str | Path) -> Outcome:
    """``cicsim ARGS`` in process, in ``tmp_path/work``."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    capsys.readouterr()
    before = _listing(tmp_path)
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    after = _listing(tmp_path)
    written = {p for p, t in after.items() if before.get(p) != t}
    return Outcome(code, out, err.splitlines(), written)


def assert_refused(outcome: Outcome, *fragments: str) -> str:
    """Exit 2, one printable stderr line holding every fragment, nothing written."""
    assert outcome.code == 2, outcome
    assert len(outcome.err) == 1, outcome.err
    line = outcome.err[0]
    assert line.startswith("error: "), line
    assert line.isprintable(), repr(line)  # control characters escaped
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not outcome.written, outcome.written
    assert "Traceback" not in line
    return line


def scenario(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the file itself ---------------------------------------------------------------------


def test_a_directory_as_the_scenario_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    for command in ("validate", "run"):
        assert_refused(run_cli(tmp_path, monkeypatch, capsys, command, folder),
                       "folder.toml", "is a directory")


def test_extends_pointing_at_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "parent").mkdir()
    path = scenario(tmp_path, 'extends = "parent"\n')
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", path), "s.toml",
                   "key 'extends'", "is a directory")


@pytest.mark.parametrize("text", [
    "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n",  # inline tables
    "a = " + "[" * 3000 + "]" * 3000 + "\n",  # arrays
    "[" + ".".join(["a"] * 3000) + "]\n",  # a dotted table header
    # below the recursion limit, inside a valid key: the echo of the value is cut short
    '[levers.family_help]\nfunding_gbp_m = { "2025" = ' + "{a = " * 400 + "1"
    + "}" * 400 + " }\n",
], ids=["inline", "arrays", "header", "inside-a-year-table"])
def test_deep_nesting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str], text: str) -> None:
    path = scenario(tmp_path, text)
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path),
                          "s.toml")
    assert len(line) < 400


@pytest.mark.parametrize(("text", "key"), [
    ("[run]\nend_year = " + "9" * 300 + "\n", "run.end_year"),
    ("[rates]\nentry_multiplier = " + "9" * 400 + "\n", "rates.entry_multiplier"),
    ("[run]\nseed = " + "9" * 30 + "\n", "run.seed"),
    ("[run]\nbase_year = -" + "9" * 200 + "\n", "run.base_year"),
    ("[run]\nend_year = " + "9" * 5000 + "\n", ""),  # past Python's int parsing limit
], ids=["int-300-digits", "float-key-400-digits", "seed-past-int64", "base-year",
        "5000-digits"])
def test_huge_integers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str], text: str, key: str) -> None:
    path = scenario(tmp_path, text)
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path),
                          "s.toml", key)
    assert len(line) < 400


@pytest.mark.parametrize(("text", "key"), [
    ("[rates]\nentry_multiplier = 10.5\n", "rates.entry_multiplier"),
    ("[rates]\nentry_multiplier = -0.1\n", "rates.entry_multiplier"),
    ("[rates]\nentry_multiplier = inf\n", "rates.entry_multiplier"),
    ("[rates]\nentry_multiplier = nan\n", "rates.entry_multiplier"),
    ("[reentry]\nwithin_1_year = 1.5\n", "reentry.within_1_year"),
    ("[run]\nbase_year = 1990\n", "run.base_year"),
    ("[run]\nend_year = 2061\n", "run.end_year"),
])
def test_values_out_of_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str], text: str, key: str) -> None:
    path = scenario(tmp_path, text)
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path), "s.toml", key)


# --- year keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("year", ["\u0662\u0660\u0662\u0665", "\uff12\uff10\uff12\uff15",
                                  "\u00b2\u2070\u00b2\u2075", "FY25", "-2025", "20 25",
                                  "25", "1" + "0" * 300])
def test_year_keys_are_ascii_four_digit_years(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              year: str) -> None:
    path = scenario(tmp_path, f'[levers.family_help]\nfunding_gbp_m = {{ "{year}" = 5 }}\n')
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path),
                          "s.toml", "levers.family_help.funding_gbp_m", "years")
    assert len(line) < 300


@pytest.mark.parametrize(("table", "overrides", "fragment"), [
    ('funding_gbp_m = { "2045" = 5 }', [], "outside the run (2022-2032)"),
    ('funding_gbp_m = { "2020" = 0 }', [], "outside the run"),
    ('area_share_by_year = { "2040" = 0.5 }', [], "outside the run"),
    ('funding_gbp_m = { "2030" = 5 }\ndelay_years = 3', [], "falls in 2033"),
    ('funding_gbp_m = { "2028" = 5 }', ["--set", "run.end_year=2026"], "outside the run"),
], ids=["after-end", "before-base", "area-share", "delayed-past-end", "short-run"])
def test_money_in_a_year_no_run_reaches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], table: str,
                                        overrides: list[str], fragment: str) -> None:
    path = scenario(tmp_path, f"[levers.family_help]\n{table}\n")
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", path, *overrides),
                   "s.toml", "levers.family_help.", fragment)


def test_a_shipped_policy_cut_short_names_its_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """review-full's money runs to 2028: a run ending in 2026 cannot reach it."""
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", REVIEW_FULL,
                           "--set", "run.end_year=2026"),
                   "review-full.toml", "funding_gbp_m.2027")


def test_the_same_year_spelled_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, '[levers.family_help]\n'
                    'funding_gbp_m = { "2025" = 5, "02025" = 6 }\n')
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path), "s.toml",
                   "levers.family_help.funding_gbp_m", "2025 is given twice")
    uasc = scenario(tmp_path, '[uasc]\narrivals_by_year = { "2024" = 5, "002024" = 6 }\n')
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", uasc), "s.toml",
                   "uasc.arrivals_by_year", "given twice")


def test_year_keys_are_normalised(tmp_path: Path) -> None:
    """A lone "02025" is the year 2025 (so the engines, which look years up as "2025",
    cannot miss it)."""
    path = scenario(tmp_path, '[uasc]\narrivals_by_year = { "02025" = 700 }\n')
    assert dict(load_scenario(path).config["uasc"]["arrivals_by_year"]) == {"2025": 700.0}


# --- names -------------------------------------------------------------------------------


UNSAFE_NAMES = ["../evil", "a/b", ".", "..", "x" * 300, "a\\u0000b", "tab\\tname",
                "caf\u00e9"]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_scenario_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], name: str) -> None:
    path = scenario(tmp_path, f'name = "{name}"\n[run]\nend_year = 2024\n')
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", path), "s.toml",
                          "'name'")
    assert len(line) < 400


def test_an_absolute_path_as_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "escaped"
    path = scenario(tmp_path, f'name = "{target}"\n[run]\nend_year = 2024\n')
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", path), "s.toml", "'name'")
    assert not list(tmp_path.glob("escaped*"))


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a" * 101])
def test_unsafe_names_from_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", BASELINE, "--set",
                           f"name={name}", "--set", "run.end_year=2024"),
                   "--set", "'name'")


def test_an_unsafe_file_name_when_no_name_is_set(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, "[run]\nend_year = 2024\n", name="my scenario.toml")
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", path),
                   "my scenario.toml", "name (from the file name)")


def test_safe_names_are_accepted(tmp_path: Path) -> None:
    for name in ("baseline", "review-full_v2.1", "A" * 100, ".hidden"):
        path = scenario(tmp_path, f'name = "{name}"\n')
        assert load_scenario(path).name == name


# --- encodings ---------------------------------------------------------------------------


def test_a_byte_order_mark_and_crlf_are_accepted(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """As Windows editors save: UTF-8 with a BOM and CRLF line ends."""
    path = tmp_path / "windows.toml"
    path.write_bytes(b'\xef\xbb\xbfname = "windows"\r\n[run]\r\nend_year = 2025\r\n'
                     b'[levers.family_help]\r\nfunding_gbp_m = { "2024" = 5 }\r\n')
    outcome = run_cli(tmp_path, monkeypatch, capsys, "validate", path)
    assert outcome.code == 0, outcome
    assert not outcome.err
    loaded = load_scenario(path)
    assert loaded.name == "windows" and loaded.config["run"]["end_year"] == 2025


def test_text_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'description = "caf\xe9"\n')
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path),
                   "latin1.toml", "not UTF-8")


def test_control_characters_in_keys_are_escaped(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, '[run]\n"end\\u001b[2J\\u0007year" = 1\n')
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path),
                          "s.toml", "\\x1b[2J\\x07")
    assert "\x1b" not in line and "\x07" not in line


def test_long_values_are_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, '[run]\nseed = "' + "x" * 20_000 + '"\n')
    line = assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", path),
                          "s.toml", "run.seed", "x…")
    assert len(line) < 200


def test_strings_with_control_characters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A description is written into every output's metadata: no NUL or escapes."""
    path = scenario(tmp_path, 'description = "a\\u0000b\\u001b[31m"\n')
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "run", path), "s.toml",
                   "description", "control characters")


def test_extends_chain_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(40):
        scenario(tmp_path, f'extends = "s{i + 1}.toml"\n', name=f"s{i}.toml")
    scenario(tmp_path, "", name="s40.toml")
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", tmp_path / "s0.toml"),
                   "key 'extends'", "extend one another")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Reading a FIFO would block for ever; it is refused unopened."""
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    assert_refused(run_cli(tmp_path, monkeypatch, capsys, "validate", fifo),
                   "pipe.toml", "not a regular file")
