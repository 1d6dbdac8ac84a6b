"""Load a scenario: TOML layers (code defaults < extended files < this file < --set).

Every problem is an :class:`~sim.errors.InputError` with one line naming the file and
the key path, and saying what is allowed.  The resolved configuration, with the layer
that supplied each value, is saved with every output.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import InputError, shown
from sim.scenarios import schema
from sim.scenarios.schema import Field

Config = dict[str, Any]

# A scenario name becomes a file name (outputs/<name>.nc): letters, digits, '-', '_'
# and '.', at most 100 characters, so it can never leave outputs/ or hide a path.
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
# Scenario files are a few kB; this only stops a mistaken path (a data dump, a disk
# image) from being read into memory.
MAX_FILE_BYTES = 10_000_000
# `extends` chains are two or three files deep; a longer one is a mistake (or a loop
# through symbolic links that resolve() cannot see).
MAX_EXTENDS_DEPTH = 32
# Integers beyond this cannot be stored in the engines' 64-bit arrays.
LARGEST_INTEGER = 2**63 - 1


class FrozenConfig(dict):  # type: ignore[type-arg]
    """A resolved scenario table that refuses changes in place.

    Why: a scenario's config is shared by the run, its provenance, calibration and
    comparisons; a function that quietly edited it (as ``simulate`` and the calibration
    once did) changed what every later caller saw.  Deriving a variant is explicit:
    ``copy.deepcopy(config)`` returns plain, mutable dicts.  It is still a ``dict``, so
    reading, JSON and TOML output work unchanged.
    """

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a resolved scenario config is immutable; derive a variant from "
                        "copy.deepcopy(config)")

    __setitem__ = __delitem__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:  # pickling (worker processes) keeps it frozen
        return (FrozenConfig, (dict(self),))


def freeze(value: Any) -> Any:
    """``value`` with every dict, at any depth, a :class:`FrozenConfig`."""
    if isinstance(value, dict):
        return FrozenConfig({key: freeze(item) for key, item in value.items()})
    return value


@dataclass
class Scenario:
    """A resolved scenario: every key present, defaults filled, validated."""

    name: str
    path: Path | None
    config: Config
    layers: list[str] = field(default_factory=list)  # files and --set, lowest first
    origin: dict[str, str] = field(default_factory=dict)  # key path -> layer

    def get(self, dotted: str) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            node = node[part]
        return node

    def to_toml(self) -> str:
        """The resolved configuration as TOML text (saved in output provenance)."""
        return dump_toml(self.config)


def _describe(kind: Any) -> str:
    if isinstance(kind, tuple):
        return "one of " + ", ".join(repr(k) for k in kind)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            "prob": "a probability between 0 and 1",
            "year_table": "a table of year = number"}.get(kind, str(kind))


def _echo(value: Any) -> str:
    """A user's value in a message: strings quoted, as ``repr`` would (safely)."""
    return f"'{shown(value)}'" if isinstance(value, str) else shown(value)


def check_name(name: Any, where: str, key: str = "name") -> str:
    """``name`` if it is a safe scenario name (:data:`SAFE_NAME`, not ``.``/``..``),
    else a one-line error naming ``where`` and ``key``."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or name in {".", ".."}:
        raise InputError(f"{where}: key '{key}' = '{shown(name)}' is not a safe scenario "
                         "name: use letters, digits, '-', '_' and '.' (at most 100 "
                         "characters, not '.' or '..'); it names the output files")
    return name


def year_key(where: str, key: str, year: Any) -> str:
    """A year-table key as the canonical year text ("02025" -> "2025").  Years are
    written with ASCII digits and are four-digit years; anything else (other scripts'
    digits, signs, spaces, a 300-digit number) is an error."""
    text = str(year)
    if not (text.isascii() and text.isdigit() and len(text) <= 8
            and 1000 <= int(text) <= 9999):
        raise InputError(f"{where}: key '{key}.{shown(text)}': table keys must be years, "
                         "four ASCII digits, e.g. \"2025\"")
    return str(int(text))


def _check_number(where: str, key: str, kind: Any, value: Any) -> float:
    """``value`` as a finite number (an integer for ``int`` keys), or an error."""
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: key '{key}' must be an integer, got {_echo(value)}")
        if abs(value) > LARGEST_INTEGER:
            raise InputError(f"{where}: key '{key}' = {shown(value)} is out of range")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: key '{key}' must be {_describe(kind)}, got "
                         f"{_echo(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise InputError(f"{where}: key '{key}' = {shown(value)} is out of range") from None
    if number != number:  # NaN
        raise InputError(f"{where}: key '{key}' is NaN; must be {_describe(kind)}")
    if not math.isfinite(number):
        raise InputError(f"{where}: key '{key}' = {shown(value)} is not a finite number")
    return number


def _check_string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: key '{key}' must be a string, got {_echo(value)}")
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
        raise InputError(f"{where}: key '{key}' = '{shown(value)}' contains control "
                         "characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from the command line
        raise InputError(f"{where}: key '{key}' = '{shown(value)}' is not valid UTF-8 "
                         "text") from None
    return value


def _check_value(where: str, key: str, spec: Field, value: Any) -> Any:
    """Return the value converted to its kind, or raise a one-line error.  Year tables
    come back with canonical year keys (so "2025" and "02025" cannot both stand)."""
    if spec.estimate_ok and value == "estimate":
        return value
    if spec.is_list:
        if not isinstance(value, list):
            raise InputError(f"{where}: key '{key}' must be a list, got {_echo(value)}")
        item = Field(spec.kind, None, spec.doc, spec.low, spec.high)
        return [_check_value(where, f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    kind = spec.kind
    if kind == "year_table":
        if not isinstance(value, dict):
            raise InputError(f"{where}: key '{key}' must be {_describe(kind)}, got "
                             f"{_echo(value)}")
        out: dict[str, float] = {}
        spelled: dict[str, str] = {}
        for year, amount in value.items():
            canonical = year_key(where, key, year)
            if canonical in out:
                raise InputError(f"{where}: key '{key}': year {canonical} is given twice "
                                 f"('{shown(spelled[canonical])}' and '{shown(year)}')")
            spelled[canonical] = year
            out[canonical] = _check_value(where, f"{key}.{canonical}", Field(
                float, None, "", spec.low, spec.high), amount)
        return out
    if isinstance(kind, tuple):
        if not isinstance(value, str) or value not in kind:
            raise InputError(f"{where}: key '{key}' = {_echo(value)} is not allowed; "
                             f"must be {_describe(kind)}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: key '{key}' must be true or false, got "
                             f"{_echo(value)}")
        return value
    if kind is str:
        return _check_string(where, key, value)
    number = _check_number(where, key, kind, value)
    if kind == "prob" and not 0.0 <= number <= 1.0:
        raise InputError(f"{where}: key '{key}' = {shown(value)} is a probability: it must "
                         "be between 0 and 1")
    if spec.low is not None and number < spec.low:
        what = "negative" if number < 0 <= spec.low else "below the minimum"
        raise InputError(f"{where}: key '{key}' = {shown(value)} is {what}; must be >= "
                         f"{spec.low}")
    if spec.high is not None and number > spec.high:
        raise InputError(f"{where}: key '{key}' = {shown(value)} is above the maximum "
                         f"{spec.high}")
    return value if kind is int else number


def check_key(where: str, dotted: str, value: Any) -> Any:
    """Validate one ``section.key`` value as a scenario file's would be (for command
    options that stand for a scenario key, e.g. ``--replicates``)."""
    section, key = dotted.split(".")
    return _check_value(where, dotted, schema.SECTIONS[section][key], value)


def _table_key(where: str, key: Any, path: str = "") -> str:
    """A key of a table; TOML keys are strings, but a --set layer is built by hand."""
    if not isinstance(key, str):
        raise InputError(f"{where}: key '{path}{shown(key)}' is not a name")
    return key


def _checked(where: str, key: str, spec: Field, value: Any) -> Any:
    """The value a layer keeps: as given (the resolved TOML shows what the user wrote),
    except year tables, whose keys become canonical years."""
    checked = _check_value(where, key, spec, value)
    if key == "name" and checked:
        check_name(checked, where)
    return checked if spec.kind == "year_table" else value


def _validate_layer(where: str, data: Config) -> Config:
    """Check keys and types of one layer (a file or the --set layer); return the layer
    with year tables normalised."""
    out: Config = {}
    for key, value in data.items():
        key = _table_key(where, key)
        if key in schema.TOP_LEVEL:
            out[key] = _checked(where, key, schema.TOP_LEVEL[key], value)
        elif key in schema.SECTIONS:
            if not isinstance(value, dict):
                raise InputError(f"{where}: key '{key}' must be a table ([{key}])")
            fields = schema.SECTIONS[key]
            section: Config = {}
            for sub, subvalue in value.items():
                sub = _table_key(where, sub, f"{key}.")
                if sub not in fields:
                    raise InputError(f"{where}: unknown key '{key}.{shown(sub)}'; valid "
                                     f"keys in [{key}]: {', '.join(sorted(fields))}")
                section[sub] = _checked(where, f"{key}.{sub}", fields[sub], subvalue)
            out[key] = section
        elif key in schema.TABLE_SECTIONS:
            if not isinstance(value, dict):
                raise InputError(f"{where}: key '{key}' must be a table ([{key}.NAME])")
            fields = schema.TABLE_SECTIONS[key]
            allowed = schema.TABLE_NAMES.get(key)
            tables: Config = {}
            for name, table in value.items():
                name = _table_key(where, name, f"{key}.")
                if allowed is not None and name not in allowed:
                    raise InputError(f"{where}: unknown key '{key}.{shown(name)}'; valid "
                                     f"tables: {', '.join(sorted(allowed))}")
                if not isinstance(table, dict):
                    raise InputError(f"{where}: key '{key}.{shown(name)}' must be a table")
                tables[name] = {}
                for sub, subvalue in table.items():
                    sub = _table_key(where, sub, f"{key}.{name}.")
                    if sub not in fields:
                        raise InputError(
                            f"{where}: unknown key '{key}.{shown(name)}.{shown(sub)}'; "
                            f"valid keys: {', '.join(sorted(fields))}")
                    tables[name][sub] = _checked(where, f"{key}.{name}.{sub}", fields[sub],
                                                 subvalue)
            out[key] = tables
        else:
            valid = sorted([*schema.TOP_LEVEL, *schema.SECTIONS, *schema.TABLE_SECTIONS])
            raise InputError(f"{where}: unknown key '{shown(key)}'; valid top-level keys: "
                             f"{', '.join(valid)}")
    return out


def _read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, or one line saying why it cannot be a {what} file."""
    try:
        if "\0" in str(path):
            raise InputError(f"{path}: the {what} path contains a NUL character")
        if not path.exists():
            raise InputError(f"{path}: {what} file not found")
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not a {what} file")
        if not path.is_file():
            raise InputError(f"{path}: not a regular file (a {what} file is a TOML text "
                             "file)")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{path}: {what} file is larger than {MAX_FILE_BYTES:,} "
                             "bytes; is it the right file?")
        return path.read_bytes()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputError(f"{shown(str(path), 200)}: cannot read the {what} file: "
                         f"{reason}") from None


def _unreadable(exc: ValueError) -> str:
    """Why the TOML parser gave up, in a few words (Python's own message about its
    integer digit limit suggests changing the interpreter)."""
    text = str(exc)
    return ("an integer has more than 4,300 digits" if "integer string conversion" in text
            else shown(text, 120))


def read_toml(path: Path, what: str) -> Config:
    """Parse a TOML file; a missing, unreadable or malformed file is one line naming it.
    A UTF-8 byte-order mark (as Windows editors save) and CRLF line ends are accepted."""
    try:
        text = _read_bytes(path, what).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid TOML: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: not valid TOML here: tables or arrays nested too "
                         "deeply") from None
    except ValueError as exc:  # e.g. an integer past Python's 4300-digit limit
        raise InputError(f"{path}: not valid TOML here: {_unreadable(exc)}") from None


def _read_toml(path: Path, chain: list[Path]) -> list[tuple[str, Config]]:
    """Read a file and, first, everything it extends: [(label, data)], lowest first."""
    data = _validate_layer(str(path), read_toml(path, "scenario"))
    layers: list[tuple[str, Config]] = []
    parent = data.get("extends")
    if parent:
        try:
            parent_path = (path.parent / parent).resolve()
            here = path.resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # e.g. a symbolic-link loop
            raise InputError(f"{path}: key 'extends' = '{shown(parent)}' cannot be "
                             f"resolved: {shown(str(exc), 120)}") from None
        if parent_path in chain or parent_path == here:
            cycle = " -> ".join(p.name for p in [*chain, here, parent_path])
            raise InputError(f"{path}: key 'extends' makes a cycle: {cycle}")
        if len(chain) >= MAX_EXTENDS_DEPTH:
            raise InputError(f"{path}: key 'extends': more than {MAX_EXTENDS_DEPTH} files "
                             "extend one another")
        if not parent_path.exists():
            raise InputError(f"{path}: key 'extends': file '{shown(parent)}' not found "
                             f"(looked for {parent_path})")
        if parent_path.is_dir():
            raise InputError(f"{path}: key 'extends' = '{shown(parent)}' is a directory, "
                             "not a scenario file")
        layers = _read_toml(parent_path, [*chain, here])
    layers.append((str(path), data))
    return layers


def _parse_set(item: str) -> tuple[list[str], Any]:
    """``section.key=value`` as (key parts, value): the value is read as a TOML value,
    and anything that is not one (a bare word) is a string."""
    if "=" not in item:
        raise InputError(f"--set: '{shown(item)}' must look like section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not all(parts):
        raise InputError(f"--set: '{shown(item)}': the key '{shown(key)}' has an empty "
                         "part; it must look like section.key")
    try:
        parsed = tomllib.loads(f"v = {raw}")
        value = parsed["v"] if list(parsed) == ["v"] else raw  # "1\nx = 2" is a string
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    except RecursionError:
        raise InputError(f"--set: key '{shown(key)}': the value is nested too "
                         "deeply") from None
    except ValueError as exc:  # e.g. an integer past Python's 4300-digit limit
        raise InputError(f"--set: key '{shown(key)}': the value cannot be read: "
                         f"{_unreadable(exc)}") from None
    return parts, value


def _set_layer(overrides: list[str]) -> Config:
    """Every ``--set`` as one layer; a key set both as a value and as a table (``a.b=1``
    and ``a.b.c=1``) is an error rather than one silently replacing the other."""
    layer: Config = {}
    for item in overrides:
        keys, value = _parse_set(item)
        node = layer
        for depth, part in enumerate(keys[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"--set: '{shown(item)}' sets a key inside "
                                 f"'{shown('.'.join(keys[:depth + 1]))}', which another "
                                 "--set gave a value")
        if isinstance(node.get(keys[-1]), dict) and not isinstance(value, dict):
            raise InputError(f"--set: '{shown(item)}' gives a value to "
                             f"'{shown('.'.join(keys))}', which another --set uses as a "
                             "table")
        node[keys[-1]] = value
    return layer


def _merge(base: Config, top: Config, label: str, origin: dict[str, str],
           prefix: str = "") -> None:
    for key, value in top.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict) and not (
            key.isdigit() or prefix.count(".") >= 2
        ):
            _merge(base[key], value, label, origin, path + ".")
        else:
            base[key] = copy.deepcopy(value)
            origin[path] = label


def defaults() -> Config:
    config: Config = {k: f.default for k, f in schema.TOP_LEVEL.items()}
    for section, fields in schema.SECTIONS.items():
        # deep copy: a layer that sets a year table merges into it in place
        config[section] = {k: copy.deepcopy(f.default) for k, f in fields.items()}
    for section in schema.TABLE_SECTIONS:
        config[section] = {}
    return config


def _fill_tables(config: Config) -> None:
    """Give every user-named table its defaults."""
    for section, fields in schema.TABLE_SECTIONS.items():
        for name, table in config.get(section, {}).items():
            config[section][name] = {k: f.default for k, f in fields.items()} | table


def _check_cross_fields(where: str, config: Config) -> None:
    run = config["run"]
    if run["end_year"] <= run["base_year"]:
        raise InputError(f"{where}: key 'run.end_year' = {run['end_year']} must be after "
                         f"run.base_year = {run['base_year']}")
    if config["reentry"]["within_5_years"] < config["reentry"]["within_1_year"]:
        raise InputError(f"{where}: key 'reentry.within_5_years' must be at least "
                         "reentry.within_1_year")
    for check in schema.CROSS_CHECKS:
        check(where, config)


def _year_tables(config: Config) -> list[tuple[str, dict[str, Any], int]]:
    """Every year table in a resolved config: (key path, table, years it moves by).
    A lever's ``delay_years`` moves its money and area shares later as a whole."""
    found = []
    for section, fields in schema.SECTIONS.items():
        for key, spec in fields.items():
            if spec.kind == "year_table":
                found.append((f"{section}.{key}", config[section][key], 0))
    for section, fields in schema.TABLE_SECTIONS.items():
        for name, table in config.get(section, {}).items():
            for key, spec in fields.items():
                if spec.kind == "year_table" and table.get(key):
                    found.append((f"{section}.{name}.{key}", table[key],
                                  int(table.get("delay_years", 0) or 0)))
    return found


def _check_years(where: str, config: Config, origin: dict[str, str]) -> None:
    """Year keys lie within the run (base year to end year), and a delayed programme's
    money still falls within it: money no run reaches is a mistake, not a no-op."""
    base, end = config["run"]["base_year"], config["run"]["end_year"]
    for path, table, delay in _year_tables(config):
        for year in table:
            source = origin.get(f"{path}.{year}", origin.get(path, where))
            if not base <= int(year) <= end:
                raise InputError(f"{source}: key '{path}.{year}': {year} is outside the "
                                 f"run ({base}-{end}); year keys must lie between "
                                 "run.base_year and run.end_year")
            if int(year) + delay > end:
                raise InputError(f"{source}: key '{path}.{year}': with delay_years = "
                                 f"{delay} it falls in {int(year) + delay}, after "
                                 f"run.end_year = {end}: no run reaches it")


def load_scenario(path: str | Path | None, overrides: list[str] | None = None) -> Scenario:
    """Resolve a scenario file (or code defaults when ``path`` is None) plus ``--set``."""
    layers: list[tuple[str, Config]] = []
    if path is not None:
        path = Path(path)
        layers = _read_toml(path, [])
    set_layer = _set_layer(overrides or [])
    if set_layer:
        set_layer = _validate_layer("--set", set_layer)
        layers.append(("--set", set_layer))
    config = defaults()
    origin: dict[str, str] = {}
    for label, data in layers:
        _merge(config, data, label, origin)
    _fill_tables(config)
    where = str(path) if path is not None else "defaults"
    # Year range: the data's range and the run's own order.
    base_year = config["run"]["base_year"]
    if not schema.FIRST_BASE_YEAR <= base_year <= schema.LAST_DATA_YEAR:
        raise InputError(f"{origin.get('run.base_year', where)}: key 'run.base_year' = "
                         f"{shown(base_year)} is outside the data "
                         f"({schema.FIRST_BASE_YEAR}-{schema.LAST_DATA_YEAR})")
    _check_cross_fields(where, config)
    _check_years(where, config, origin)
    # The name is never inherited: a scenario that extends baseline.toml without a
    # name of its own must not write over outputs/baseline.nc.
    own = next((data for label, data in layers if path is not None and label == str(path)),
               {})
    name = (set_layer.get("name") or own.get("name")
            or (path.stem if path is not None else "defaults"))
    if not (set_layer.get("name") or own.get("name")):
        check_name(name, where, "name (from the file name)")
    config["name"] = name
    config.pop("extends", None)
    return Scenario(name=name, path=path, config=freeze(config),
                    layers=[label for label, _ in layers], origin=origin)


def toml_value(value: Any) -> str:
    """One value as TOML text (inline tables for dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(config: Config) -> str:
    """Write a resolved config back as TOML (top-level keys, sections, named tables)."""
    lines: list[str] = []
    tables: list[tuple[str, Config]] = []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {toml_value(value)}")

    def emit(name: str, table: Config) -> None:
        scalars = {k: v for k, v in table.items()
                   if not isinstance(v, dict) or all(str(x).isdigit() for x in v)}
        nested = {k: v for k, v in table.items() if k not in scalars}
        if scalars or not nested:
            lines.append("")
            lines.append(f"[{name}]")
            for k, v in scalars.items():
                lines.append(f"{k} = {toml_value(v)}")
        for k, v in nested.items():
            emit(f"{name}.{k}", v)

    for name, table in tables:
        emit(name, table)
    return "\n".join(lines) + "\n"
