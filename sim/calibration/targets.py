"""Calibration targets, settings and free-parameter overrides, read from a TOML file.

Why a data file: what the model is fitted to (series, years, weights, likelihoods) is a
modelling choice a reviewer should be able to read and change without touching code.
``sim/calibration/targets.toml`` fits history alone; ``targets_review.toml`` extends it
and switches on the Independent Review's projections.

Every problem with a targets file is an :class:`~sim.errors.InputError` whose one-line
message names the file and the key (``targets.<name>.<field>`` for a target).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sim.calibration.free_parameters import FREE_PARAMETERS
from sim.datasets import curated_value
from sim.engines.schema import VARIABLES
from sim.errors import InputError
from sim.model import spec
from sim.scenarios.loader import read_toml

PACKAGE_DIR = Path(__file__).parent
DEFAULT_TARGETS = PACKAGE_DIR / "targets.toml"
REVIEW_TARGETS = PACKAGE_DIR / "targets_review.toml"

TARGET_KINDS = ("history", "projection", "reform", "reentry")
LOSSES = ("normal", "lognormal")
# Results variables a target may name although no engine writes them yet (the cost
# model is being built elsewhere): such targets are skipped while the variable is absent.
OPTIONAL_VARIABLES = ("cost_gbp",)
COORDINATE_LABELS = {"reason": spec.CEASED_REASONS, "age_group": spec.AGE_BAND_NAMES,
                     "placement": spec.PLACEMENTS, "care_stage": spec.CARE_STAGES}

SETTING_KEYS = {"first_year", "trend_change_year", "groups", "projection_end_year",
                "max_evaluations", "history_vintage", "trend_years_after_base",
                "knot_years_before_base"}
TARGET_KEYS = {"name", "group", "kind", "model", "select", "observed", "years", "year",
               "value", "value_from", "scale", "within_years", "scenario", "loss",
               "sd_relative", "sd", "weight", "note"}
PARAMETER_KEYS = {"low", "high", "prior_sd", "start", "free"}


@dataclass(frozen=True)
class Settings:
    """How the fit is set up (see docs/calibration.md for the reasons)."""

    first_year: int = 2012  # engine base year of the historical fit
    trend_change_year: int = 2016  # knot of the piecewise-linear trends
    groups: tuple[str, ...] = ("history", "evidence")  # target groups that count
    projection_end_year: int = 2032  # last year of the do-nothing projection
    max_evaluations: int = 400  # cap on objective evaluations (least_squares max_nfev)
    history_vintage: str = "latest"  # stock vintage initialising the historical fit
    # Years the fitted trends continue after the base year in the projection (then the
    # rates hold); None = to the end of the projection, as in the review's "current
    # trends continue" counterfactual.
    trend_years_after_base: int | None = None
    # When set, the knot sits this many years before the base year (so every origin
    # of a backtest gets a recent regime of the same length) instead of at
    # trend_change_year.
    knot_years_before_base: int | None = None


@dataclass(frozen=True)
class Target:
    """One calibration target.  ``kind``:

    * ``history``: a published series (``observed`` measures) vs the fitted history;
    * ``projection``: a value in one year of the do-nothing projection from the base year;
    * ``reform``: do-nothing minus ``scenario`` in ``year`` (e.g. 30,000 fewer in care);
    * ``reentry``: the model's probability of re-entering care within ``within_years``
      of returning home.
    """

    name: str
    group: str
    kind: str
    model: str = "looked_after"
    select: str | None = None
    observed: tuple[tuple[str, ...], ...] = ()  # alternatives; each a sum of measures
    years: tuple[int, int] | None = None
    year: int | None = None
    value: float | None = None
    value_source: str = ""
    within_years: float | None = None
    scenario: Path | None = None
    loss: str = "normal"
    sd_relative: float | None = None
    sd: float | None = None
    weight: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class ParameterOverride:
    """Bounds, prior and start of a free parameter, as set in a targets file."""

    low: float | None = None
    high: float | None = None
    prior_sd: float | None = None
    start: float | None = None
    free: bool | None = None


@dataclass(frozen=True)
class TargetSet:
    path: Path
    settings: Settings
    targets: tuple[Target, ...]
    parameters: dict[str, ParameterOverride] = field(default_factory=dict)
    files: tuple[Path, ...] = ()  # this file and the files it extends

    def active(self) -> tuple[Target, ...]:
        """Targets whose group is switched on in the settings."""
        return tuple(t for t in self.targets if t.group in self.settings.groups)

    def with_groups(self, groups: tuple[str, ...]) -> TargetSet:
        return replace(self, settings=replace(self.settings, groups=groups))


def _read(path: Path) -> dict[str, Any]:
    return read_toml(path, "targets")


def _number(where: str, key: str, value: Any, low: float | None = None,
            high: float | None = None, integer: bool = False) -> Any:
    wanted = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise InputError(f"{where}: key '{key}' must be {wanted}, got {value!r}")
    if value != value:
        raise InputError(f"{where}: key '{key}' is NaN; must be {wanted}")
    if low is not None and value < low:
        raise InputError(f"{where}: key '{key}' = {value} is below the minimum {low}")
    if high is not None and value > high:
        raise InputError(f"{where}: key '{key}' = {value} is above the maximum {high}")
    return value if integer else float(value)


def _settings(where: str, table: Any, base: Settings) -> Settings:
    if not isinstance(table, dict):
        raise InputError(f"{where}: key 'settings' must be a table ([settings])")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in SETTING_KEYS:
            raise InputError(f"{where}: unknown key 'settings.{key}'; valid keys: "
                             f"{', '.join(sorted(SETTING_KEYS))}")
        name = f"settings.{key}"
        if key in ("first_year", "trend_change_year", "projection_end_year"):
            values[key] = _number(where, name, value, 2000, 2060, integer=True)
        elif key == "max_evaluations":
            values[key] = _number(where, name, value, 1, 100_000, integer=True)
        elif key == "knot_years_before_base":
            values[key] = _number(where, name, value, 1, 20, integer=True)
        elif key == "trend_years_after_base":
            values[key] = _number(where, name, value, 0, 50, integer=True)
        elif key == "groups":
            if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
                raise InputError(f"{where}: key '{name}' must be a list of group names")
            values[key] = tuple(value)
        else:  # history_vintage
            if value not in ("latest", "first_published"):
                raise InputError(f"{where}: key '{name}' = {value!r} is not allowed; must be "
                                 "'latest' or 'first_published'")
            values[key] = value
    return replace(base, **values)


def _observed(where: str, key: str, value: Any) -> tuple[tuple[str, ...], ...]:
    """A measure, a list of measures (summed), or a list of such alternatives."""
    if isinstance(value, str):
        return ((value,),)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return (tuple(value),)
    if (isinstance(value, list) and value and all(
            isinstance(v, list) and v and all(isinstance(m, str) for m in v) for v in value)):
        return tuple(tuple(v) for v in value)
    raise InputError(f"{where}: key '{key}' must be a measure name, a list of measures "
                     f"(summed) or a list of such lists (alternatives), got {value!r}")


def _value_from(where: str, key: str, value: Any, data_dir: Path | None) -> tuple[float, str]:
    if not isinstance(value, dict) or set(value) - {"file", "measure", "year"} or not all(
            k in value for k in ("file", "measure", "year")):
        raise InputError(f"{where}: key '{key}' must be a table with file, measure and year")
    found = curated_value(str(value["file"]), str(value["measure"]), str(value["year"]),
                          data_dir)
    if found is None:
        raise InputError(f"{where}: key '{key}': no row in {value['file']} whose measure "
                         f"contains {value['measure']!r} for year {value['year']!r}")
    return found, f"{value['file']}: {value['measure']} ({value['year']})"


def _target(where: str, path: Path, raw: Any, index: int,
            data_dir: Path | None) -> Target:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: key 'targets[{index}]' must be a table ([[targets]])")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: key 'targets[{index}].name' is missing or not a string")
    prefix = f"targets.{name}"
    for key in raw:
        if key not in TARGET_KEYS:
            raise InputError(f"{where}: unknown key '{prefix}.{key}'; valid keys: "
                             f"{', '.join(sorted(TARGET_KEYS))}")
    kind = raw.get("kind", "history")
    if kind not in TARGET_KINDS:
        raise InputError(f"{where}: key '{prefix}.kind' = {kind!r} is not allowed; must be "
                         f"one of {', '.join(TARGET_KINDS)}")
    group = raw.get("group", "history")
    if not isinstance(group, str):
        raise InputError(f"{where}: key '{prefix}.group' must be a string")
    loss = raw.get("loss", "normal")
    if loss not in LOSSES:
        raise InputError(f"{where}: key '{prefix}.loss' = {loss!r} is not allowed; must be "
                         f"one of {', '.join(LOSSES)}")
    fields: dict[str, Any] = {"name": name, "group": group, "kind": kind, "loss": loss,
                              "note": str(raw.get("note", ""))}
    model = raw.get("model", "looked_after")
    if kind != "reentry":
        if model not in VARIABLES and model not in OPTIONAL_VARIABLES:
            raise InputError(f"{where}: key '{prefix}.model' = {model!r} is not a results "
                             f"variable; valid: {', '.join(sorted(VARIABLES))}, cost_gbp")
        fields["model"] = model
        select = raw.get("select")
        if select is not None:
            dims = VARIABLES[model][0] if model in VARIABLES else ()
            labels = COORDINATE_LABELS.get(dims[0], ()) if dims else ()
            if select not in labels:
                raise InputError(f"{where}: key '{prefix}.select' = {select!r} is not a "
                                 f"label of {model}; valid: {', '.join(labels) or 'none'}")
            fields["select"] = select
    if kind == "history":
        if "observed" not in raw:
            raise InputError(f"{where}: key '{prefix}.observed' is required for a history "
                             "target")
        fields["observed"] = _observed(where, f"{prefix}.observed", raw["observed"])
        if "years" in raw:
            years = raw["years"]
            if (not isinstance(years, list) or len(years) != 2
                    or not all(isinstance(y, int) and not isinstance(y, bool) for y in years)
                    or years[0] > years[1]):
                raise InputError(f"{where}: key '{prefix}.years' must be [first, last] years")
            fields["years"] = (years[0], years[1])
    else:
        if kind in ("projection", "reform"):
            if "year" not in raw:
                raise InputError(f"{where}: key '{prefix}.year' is required for a {kind} "
                                 "target")
            fields["year"] = _number(where, f"{prefix}.year", raw["year"], 2000, 2060,
                                     integer=True)
        if "value" in raw:
            fields["value"] = _number(where, f"{prefix}.value", raw["value"])
            fields["value_source"] = "targets file"
        elif "value_from" in raw:
            fields["value"], fields["value_source"] = _value_from(
                where, f"{prefix}.value_from", raw["value_from"], data_dir)
        else:
            raise InputError(f"{where}: key '{prefix}.value' (or value_from) is required for "
                             f"a {kind} target")
        scale = _number(where, f"{prefix}.scale", raw.get("scale", 1.0), 0)
        fields["value"] = fields["value"] * scale
    if kind == "reentry":
        if "within_years" not in raw:
            raise InputError(f"{where}: key '{prefix}.within_years' is required for a "
                             "reentry target")
        fields["within_years"] = _number(where, f"{prefix}.within_years",
                                         raw["within_years"], 0.01, 20)
    if kind == "reform":
        scenario = raw.get("scenario")
        if not isinstance(scenario, str):
            raise InputError(f"{where}: key '{prefix}.scenario' (a scenario file) is "
                             "required for a reform target")
        fields["scenario"] = (path.parent / scenario).resolve()
    if "sd_relative" in raw:
        fields["sd_relative"] = _number(where, f"{prefix}.sd_relative", raw["sd_relative"],
                                        1e-6, 10)
    if "sd" in raw:
        fields["sd"] = _number(where, f"{prefix}.sd", raw["sd"], 1e-12)
    if fields.get("sd_relative") is None and fields.get("sd") is None:
        raise InputError(f"{where}: key '{prefix}.sd_relative' (or sd) is required: the "
                         "likelihood needs a scale")
    if loss == "lognormal" and fields.get("sd_relative") is None:
        raise InputError(f"{where}: key '{prefix}.sd_relative' is required for a lognormal "
                         "loss (the sd of the log)")
    fields["weight"] = _number(where, f"{prefix}.weight", raw.get("weight", 1.0), 0, 1e6)
    return Target(**fields)


def _parameters(where: str, table: Any, known: tuple[str, ...]
                ) -> dict[str, ParameterOverride]:
    if not isinstance(table, dict):
        raise InputError(f"{where}: key 'parameters' must be a table ([parameters.NAME])")
    out: dict[str, ParameterOverride] = {}
    for name, raw in table.items():
        if name not in known:
            raise InputError(f"{where}: unknown key 'parameters.{name}'; free parameters: "
                             f"{', '.join(known)}")
        if not isinstance(raw, dict):
            raise InputError(f"{where}: key 'parameters.{name}' must be a table")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in PARAMETER_KEYS:
                raise InputError(f"{where}: unknown key 'parameters.{name}.{key}'; valid "
                                 f"keys: {', '.join(sorted(PARAMETER_KEYS))}")
            if key == "free":
                if not isinstance(value, bool):
                    raise InputError(f"{where}: key 'parameters.{name}.free' must be true "
                                     "or false")
                values[key] = value
            else:
                values[key] = _number(where, f"parameters.{name}.{key}", value,
                                      0 if key == "prior_sd" else None)
        out[name] = ParameterOverride(**values)
    return out


def load_targets(path: str | Path | None = None, data_dir: Path | None = None,
                 _chain: tuple[Path, ...] = ()) -> TargetSet:
    """Read and validate a targets file (and the file it ``extends``)."""

    path = Path(path) if path is not None else DEFAULT_TARGETS
    where = str(path)
    data = _read(path)
    for key in data:
        if key not in ("extends", "settings", "targets", "parameters", "description"):
            raise InputError(f"{where}: unknown key '{key}'; valid keys: description, "
                             "extends, parameters, settings, targets")
    settings = Settings()
    targets: dict[str, Target] = {}
    parameters: dict[str, ParameterOverride] = {}
    files: tuple[Path, ...] = ()
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str):
            raise InputError(f"{where}: key 'extends' must be a file name")
        parent_path = (path.parent / parent).resolve()
        if parent_path in _chain or parent_path == path.resolve():
            raise InputError(f"{where}: key 'extends' makes a cycle")
        if not parent_path.exists():
            raise InputError(f"{where}: key 'extends': file '{parent}' not found")
        base = load_targets(parent_path, data_dir, (*_chain, path.resolve()))
        settings, files = base.settings, base.files
        targets = {t.name: t for t in base.targets}
        parameters = dict(base.parameters)
    if "settings" in data:
        settings = _settings(where, data["settings"], settings)
    raw_targets = data.get("targets", [])
    if not isinstance(raw_targets, list):
        raise InputError(f"{where}: key 'targets' must be an array of tables ([[targets]])")
    seen: set[str] = set()
    for index, raw in enumerate(raw_targets):
        target = _target(where, path, raw, index, data_dir)
        if target.name in seen:
            raise InputError(f"{where}: key 'targets.{target.name}' is declared twice")
        seen.add(target.name)
        targets[target.name] = target  # a child file replaces a parent's target
    if "parameters" in data:
        for name, override in _parameters(where, data["parameters"],
                                          tuple(FREE_PARAMETERS)).items():
            parameters[name] = override
    if not targets:
        raise InputError(f"{where}: key 'targets': no targets declared")
    if settings.trend_change_year <= settings.first_year:
        raise InputError(f"{where}: key 'settings.trend_change_year' must be after "
                         f"settings.first_year ({settings.first_year})")
    return TargetSet(path=path, settings=settings, targets=tuple(targets.values()),
                     parameters=parameters, files=(*files, path.resolve()))
