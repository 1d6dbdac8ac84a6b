"""Load a scenario: TOML layers (code defaults < extended files < this file < --set).

Every problem is an :class:`~sim.errors.InputError` with one line naming the file and
the key path, and saying what is allowed.  The resolved configuration, with the layer
that supplied each value, is saved with every output.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.scenarios import schema
from sim.scenarios.schema import Field

Config = dict[str, Any]


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
            "year_table": "a table of year = number",
            "year_lists": "a table of year = list of strings"}.get(kind, str(kind))


def _check_value(where: str, key: str, spec: Field, value: Any) -> Any:
    """Return the value converted to its kind, or raise a one-line error."""
    if spec.estimate_ok and value == "estimate":
        return value
    if spec.is_list:
        if not isinstance(value, list):
            raise InputError(f"{where}: key '{key}' must be a list, got {value!r}")
        item = Field(spec.kind, None, spec.doc, spec.low, spec.high)
        return [_check_value(where, f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    kind = spec.kind
    if kind == "year_lists":
        if not isinstance(value, dict):
            raise InputError(f"{where}: key '{key}' must be {_describe(kind)}, got {value!r}")
        item = Field(str, None, spec.doc, is_list=True)
        for year in value:
            if not str(year).isdigit():
                raise InputError(f"{where}: key '{key}.{year}': table keys must be years")
        return {str(int(year)): _check_value(where, f"{key}.{year}", item, items)
                for year, items in value.items()}
    if kind == "year_table":
        if not isinstance(value, dict):
            raise InputError(f"{where}: key '{key}' must be {_describe(kind)}, got {value!r}")
        out: dict[str, float] = {}
        for year, amount in value.items():
            if not str(year).isdigit():
                raise InputError(f"{where}: key '{key}.{year}': table keys must be years")
            number = _check_value(where, f"{key}.{year}", Field(float, None, "", spec.low,
                                                                  spec.high), amount)
            out[str(int(year))] = number
        return out
    if isinstance(kind, tuple):
        if value not in kind:
            raise InputError(f"{where}: key '{key}' = {value!r} is not allowed; "
                             f"must be {_describe(kind)}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: key '{key}' must be true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: key '{key}' must be a string, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: key '{key}' must be an integer, got {value!r}")
        number: float = value
    else:  # float or prob
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where}: key '{key}' must be {_describe(kind)}, got {value!r}")
        number = float(value)
        if number != number:  # NaN
            raise InputError(f"{where}: key '{key}' is NaN; must be {_describe(kind)}")
    if kind == "prob" and not 0.0 <= number <= 1.0:
        raise InputError(f"{where}: key '{key}' = {value} is a probability: it must be "
                         "between 0 and 1")
    if spec.low is not None and number < spec.low:
        what = "negative" if number < 0 <= spec.low else "below the minimum"
        raise InputError(f"{where}: key '{key}' = {value} is {what}; must be >= {spec.low}")
    if spec.high is not None and number > spec.high:
        raise InputError(f"{where}: key '{key}' = {value} is above the maximum {spec.high}")
    return value if kind is int else number


def _validate_layer(where: str, data: Config) -> None:
    """Check keys and types of one layer (a file or the --set layer)."""
    for key, value in data.items():
        if key in schema.TOP_LEVEL:
            _check_value(where, key, schema.TOP_LEVEL[key], value)
        elif key in schema.SECTIONS:
            if not isinstance(value, dict):
                raise InputError(f"{where}: key '{key}' must be a table ([{key}])")
            fields = schema.SECTIONS[key]
            for sub, subvalue in value.items():
                if sub not in fields:
                    raise InputError(f"{where}: unknown key '{key}.{sub}'; valid keys in "
                                     f"[{key}]: {', '.join(sorted(fields))}")
                _check_value(where, f"{key}.{sub}", fields[sub], subvalue)
        elif key in schema.TABLE_SECTIONS:
            if not isinstance(value, dict):
                raise InputError(f"{where}: key '{key}' must be a table ([{key}.NAME])")
            fields = schema.TABLE_SECTIONS[key]
            allowed = schema.TABLE_NAMES.get(key)
            for name, table in value.items():
                if allowed is not None and name not in allowed:
                    raise InputError(f"{where}: unknown key '{key}.{name}'; valid tables: "
                                     f"{', '.join(sorted(allowed))}")
                if not isinstance(table, dict):
                    raise InputError(f"{where}: key '{key}.{name}' must be a table")
                for sub, subvalue in table.items():
                    if sub not in fields:
                        raise InputError(
                            f"{where}: unknown key '{key}.{name}.{sub}'; valid keys: "
                            f"{', '.join(sorted(fields))}")
                    _check_value(where, f"{key}.{name}.{sub}", fields[sub], subvalue)
        else:
            valid = sorted([*schema.TOP_LEVEL, *schema.SECTIONS, *schema.TABLE_SECTIONS])
            raise InputError(f"{where}: unknown key '{key}'; valid top-level keys: "
                             f"{', '.join(valid)}")


def read_toml(path: Path, what: str) -> Config:
    """Parse a TOML file; a missing or malformed file is one line naming it."""
    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid TOML: not UTF-8 text") from None


def _read_toml(path: Path, chain: list[Path]) -> list[tuple[str, Config]]:
    """Read a file and, first, everything it extends: [(label, data)], lowest first."""
    data = read_toml(path, "scenario")
    _validate_layer(str(path), data)
    layers: list[tuple[str, Config]] = []
    parent = data.get("extends")
    if parent:
        parent_path = (path.parent / parent).resolve()
        if parent_path in chain or parent_path == path.resolve():
            cycle = " -> ".join(p.name for p in [*chain, path.resolve(), parent_path])
            raise InputError(f"{path}: key 'extends' makes a cycle: {cycle}")
        if not parent_path.exists():
            raise InputError(f"{path}: key 'extends': file '{parent}' not found "
                             f"(looked for {parent_path})")
        layers = _read_toml(parent_path, [*chain, path.resolve()])
    layers.append((str(path), data))
    return layers


def _parse_set(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise InputError(f"--set: '{item}' must look like section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    return key.split("."), value


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


def load_scenario(path: str | Path | None, overrides: list[str] | None = None) -> Scenario:
    """Resolve a scenario file (or code defaults when ``path`` is None) plus ``--set``."""
    layers: list[tuple[str, Config]] = []
    if path is not None:
        path = Path(path)
        layers = _read_toml(path, [])
    set_layer: Config = {}
    for item in overrides or []:
        keys, value = _parse_set(item)
        node = set_layer
        for part in keys[:-1]:
            node = node.setdefault(part, {})
        node[keys[-1]] = value
    if set_layer:
        _validate_layer("--set", set_layer)
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
        raise InputError(f"{where}: key 'run.base_year' = {base_year} is outside the data "
                         f"({schema.FIRST_BASE_YEAR}-{schema.LAST_DATA_YEAR})")
    _check_cross_fields(where, config)
    # The name is never inherited: a scenario that extends baseline.toml without a
    # name of its own must not write over outputs/baseline.nc.
    own = next((data for label, data in layers if path is not None and label == str(path)),
               {})
    name = (set_layer.get("name") or own.get("name")
            or (path.stem if path is not None else "defaults"))
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
