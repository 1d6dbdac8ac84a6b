"""Fuzzing the command line (issue 12): random TOML documents and random ``--set``
strings, fed to ``cicsim validate`` in process, never produce a traceback or exit 1:
always exit 0, or exit 2 with exactly one printable ``error:`` line.  Where validation
fails, ``cicsim run`` must fail the same way before simulating, writing nothing.

Documents are built from the scenario schema's own names (so most reach deep into the
validation: right sections, right keys, wrong values) mixed with arbitrary keys,
unicode, control characters, huge and non-finite numbers, nested tables and arrays,
byte-order marks and CRLF line ends; a share are arbitrary text.  Derandomized with a
fixed number of examples (tests/conftest.py), so every run checks the same inputs.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.scenarios import schema

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"

SECTION_NAMES = sorted([*schema.SECTIONS, *schema.TABLE_SECTIONS, *schema.TOP_LEVEL])
FIELD_NAMES = sorted({k for fields in [*schema.SECTIONS.values(),
                                       *schema.TABLE_SECTIONS.values()] for k in fields}
                     | set(schema.TABLE_NAMES["levers"]))
YEARS = ["2022", "2025", "02025", "2032", "2061", "1999", "\u0662\u0660\u0662\u0665", "25"]
DOTTED = sorted([f"{section}.{key}" for section, fields in schema.SECTIONS.items()
                 for key in fields]
                + [f"levers.{name}.{key}" for name in schema.TABLE_NAMES["levers"]
                   for key in schema.TABLE_SECTIONS["levers"]] + list(schema.TOP_LEVEL))

odd_text = st.text(max_size=20)
keys = st.one_of(st.sampled_from(SECTION_NAMES + FIELD_NAMES + YEARS), odd_text)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-10**400, max_value=10**400),
    st.sampled_from([0, 1, -1, 2022, 2032, 2**63, 10, 11]),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
    st.sampled_from(["estimate", "des", "stockflow", "damped", "../x", "/tmp/x", "a" * 300,
                     "baseline.toml", "."]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=10)
documents = st.dictionaries(keys, st.one_of(values, st.dictionaries(
    keys, st.one_of(values, st.dictionaries(keys, values, max_size=4)), max_size=5)),
    max_size=5)


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if value != value else {float("inf"): "inf",
                                             float("-inf"): "-inf"}.get(value, repr(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(data: dict[str, Any]) -> str:
    """Scalars at the top, then one ``[section]`` per table (deeper tables inline)."""
    lines = [f"{_string(k)} = {toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{_string(key)}]")
            lines.extend(f"{_string(k)} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def cli(*args: str) -> tuple[int, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's --help and friends
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue().splitlines()


def _unsafe(char: str) -> bool:
    """A character that must not reach a terminal raw: controls, line separators,
    surrogates and bidi overrides (sim/errors.py escapes them)."""
    return (unicodedata.category(char) in {"Cc", "Zl", "Zp", "Cs"}
            or 0x202A <= ord(char) <= 0x202E or 0x2066 <= ord(char) <= 0x2069)


def assert_clean(code: int, err: list[str]) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        assert len(err) == 1, err
        assert err[0].startswith("error: "), err
        assert not any(_unsafe(c) for c in err[0]), err
    assert not any("Traceback" in line for line in err)


def check_scenario_text(payload: bytes, folder: Path) -> None:
    path = folder / "fuzz.toml"
    path.write_bytes(payload)
    code, _, err = cli("validate", str(path))
    assert_clean(code, err)
    if code == 2:
        before = sorted(folder.rglob("*"))
        run_code, _, run_err = cli("run", str(path), "--out", str(folder / "out" / "x.nc"))
        assert (run_code, run_err) == (code, err)
        assert sorted(folder.rglob("*")) == before


FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(document=documents, bom=st.booleans(), crlf=st.booleans())
def test_random_scenario_documents(document: dict[str, Any], bom: bool,
                                   crlf: bool) -> None:
    text = toml_document(document)
    if crlf:
        text = text.replace("\n", "\r\n")
    payload = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    with tempfile.TemporaryDirectory() as folder:
        check_scenario_text(payload, Path(folder))


@FUZZ
@given(raw=st.one_of(st.text(max_size=200).map(str.encode), st.binary(max_size=200)),
       position=st.integers(0, 2000))
def test_random_bytes_as_a_scenario(raw: bytes, position: int) -> None:
    """Arbitrary text or bytes, alone or spliced into the shipped baseline scenario."""
    baseline = BASELINE.read_bytes()
    at = position % (len(baseline) + 1)
    with tempfile.TemporaryDirectory() as folder:
        for payload in (raw, baseline[:at] + raw + baseline[at:]):
            check_scenario_text(payload, Path(folder))


set_values = st.one_of(
    odd_text, scalars.map(toml_value), values.map(toml_value),
    st.sampled_from(["1e400", "inf", "nan", "[1, 2]", "{a = 1}", '"x"', "true", "-1",
                     "9" * 300, "[" * 2000, '{"2025" = 5, "02025" = 6}',
                     '{"2024" = 5}', "2030\nname = 'x'", "../x"]))
set_items = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(DOTTED), odd_text,
                                                 st.sampled_from(DOTTED).map(
                                                     lambda k: k + ".x")), set_values),
    odd_text)


@FUZZ
@given(items=st.lists(set_items, min_size=1, max_size=4))
def test_random_set_strings(items: list[str]) -> None:
    args = [arg for item in items for arg in ("--set", item)]
    code, _, err = cli("validate", str(BASELINE), *args)
    assert_clean(code, err)
    if code == 2:
        with tempfile.TemporaryDirectory() as folder:
            run_code, _, run_err = cli("run", str(BASELINE), *args, "--out",
                                       str(Path(folder) / "x.nc"))
            assert (run_code, run_err) == (code, err)
            assert not list(Path(folder).iterdir())
