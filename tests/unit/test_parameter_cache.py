"""The on-disk cache of estimated parameters (sim/estimation/cache.py).

A hit must be the fresh estimate bit for bit; anything that could change the estimate
(data, the config keys estimation reads, the code) must miss; a bad entry or an
unusable directory must fall back to estimating, never fail or return something else.
Every test points ``CICSIM_CACHE_DIR`` at its own temporary directory.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.estimation import cache
from sim.estimation.estimate import estimate_parameters
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import Scenario, load_scenario


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "parameters"
    monkeypatch.setenv("CICSIM_CACHE_DIR", str(directory))
    monkeypatch.delenv("CICSIM_CACHE", raising=False)
    return directory


class _Counting:
    """Stands in for the estimation: returns fixed parameters and counts the calls."""

    def __init__(self, params: ModelParameters) -> None:
        self.params = params
        self.calls = 0

    def __call__(self, config: dict[str, Any]) -> ModelParameters:
        self.calls += 1
        return self.params


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch,
             baseline_params: ModelParameters) -> _Counting:
    fake = _Counting(baseline_params)
    monkeypatch.setattr(cache, "_estimate", fake)
    return fake


def assert_identical(a: ModelParameters, b: ModelParameters) -> None:
    for item in dataclasses.fields(ModelParameters):
        x, y = getattr(a, item.name), getattr(b, item.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, item.name
            assert x.tobytes() == y.tobytes(), item.name
        elif isinstance(x, float) and np.isnan(x):
            assert np.isnan(y), item.name
        else:
            assert x == y and type(x) is type(y), item.name


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pkl"))


def test_hit_is_the_fresh_estimate(cache_dir: Path, baseline_scenario: Scenario,
                                   baseline_params: ModelParameters,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = copy.deepcopy(baseline_scenario.config)
    first = cache.cached_parameters(config)  # miss: estimates and writes
    assert len(_entries(cache_dir)) == 1
    assert_identical(first, baseline_params)

    def no_estimation(config: dict[str, Any]) -> ModelParameters:
        raise AssertionError("a hit must not estimate")

    monkeypatch.setattr(cache, "_estimate", no_estimation)
    second = cache.cached_parameters(config)
    assert_identical(second, baseline_params)
    assert second is not first


def test_cache_off_bypasses(cache_dir: Path, counting: _Counting,
                            baseline_scenario: Scenario,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CICSIM_CACHE", "0")
    for _ in range(2):
        cache.cached_parameters(baseline_scenario.config)
    assert counting.calls == 2
    assert not cache_dir.exists()


@pytest.mark.parametrize("key,value", [
    ("run.base_year", 2021),
    ("initial.looked_after_vintage", "first_published"),
    ("population.births_per_year", 600_000.0),
    ("reentry.within_1_year", 0.21),
    ("uasc.arrivals_method", "base_year"),
    ("uasc.exit_rate_per_year", 0.11),
    ("trends.window_years", 6),
    ("trends.floor", 0.25),
])
def test_relevant_key_misses(cache_dir: Path, counting: _Counting,
                             baseline_scenario: Scenario, key: str, value: Any) -> None:
    config = copy.deepcopy(baseline_scenario.config)
    cache.cached_parameters(config)
    section, name = key.split(".")
    config[section][name] = value
    cache.cached_parameters(config)
    assert counting.calls == 2
    assert len(_entries(cache_dir)) == 2


@pytest.mark.parametrize("key,value", [
    ("run.end_year", 2040),
    ("run.engine", "des"),
    ("run.seed", 7),
    ("run.replicates", 20),
    ("name", "another"),
    ("description", "another"),
    # multipliers act from the first projection year: the base year never sees them
    ("rates.entry_multiplier", 0.9),
    ("rates.reunification_multiplier", 2.0),
])
def test_irrelevant_key_hits(cache_dir: Path, counting: _Counting,
                             baseline_scenario: Scenario, key: str, value: Any) -> None:
    config = copy.deepcopy(baseline_scenario.config)
    cache.cached_parameters(config)
    if "." in key:
        section, name = key.split(".")
        config[section][name] = value
    else:
        config[key] = value
    cache.cached_parameters(config)
    assert counting.calls == 1


def test_data_and_code_changes_miss(cache_dir: Path, counting: _Counting,
                                    baseline_scenario: Scenario,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = baseline_scenario.config
    cache.cached_parameters(config)
    hashes = cache.data_hashes()
    changed = dict(hashes, **{"cla_national_timeseries.csv": "0" * 64})
    monkeypatch.setattr(cache, "data_hashes", lambda: changed)
    cache.cached_parameters(config)
    assert counting.calls == 2
    monkeypatch.setattr(cache, "data_hashes", lambda: hashes)
    cache.cached_parameters(config)
    assert counting.calls == 2  # back to the first entry
    monkeypatch.setattr(cache, "code_hash", lambda: "edited")
    cache.cached_parameters(config)
    assert counting.calls == 3


def test_code_hash_covers_the_engine_and_rates() -> None:
    hashed = {p.relative_to(cache.PACKAGE_DIR).as_posix()
              for p in cache.PACKAGE_DIR.rglob("*.py")}
    for name in ("estimation/estimate.py", "engines/stockflow.py", "model/rates.py",
                 "model/spec.py", "model/parameters.py", "datasets.py"):
        assert name in hashed


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip", "other_key",
                                    "not_parameters"])
def test_corrupt_entry_is_recomputed(cache_dir: Path, counting: _Counting,
                                     baseline_scenario: Scenario,
                                     baseline_params: ModelParameters, damage: str) -> None:
    config = baseline_scenario.config
    cache.cached_parameters(config)
    (entry,) = _entries(cache_dir)
    blob = entry.read_bytes()
    key = entry.stem
    damaged = {
        "truncate": blob[: len(blob) // 2],
        "garbage": b"\x80\x05not a pickle at all",
        "empty": b"",
        "flip": blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:]),
        "other_key": cache._encode("f" * 64, baseline_params),
        "not_parameters": _encode_object(key, {"a": 1}),
    }[damage]
    entry.write_bytes(damaged)
    params = cache.cached_parameters(config)
    assert counting.calls == 2
    assert_identical(params, baseline_params)
    # the entry was rewritten whole: the next call hits
    assert cache.load(key) is not None
    cache.cached_parameters(config)
    assert counting.calls == 2


def _encode_object(key: str, value: object) -> bytes:
    """A well-formed entry whose payload is not ModelParameters."""
    payload = pickle.dumps(value)
    return (cache.MAGIC + key.encode() + b"\n" + hashlib.sha256(payload).hexdigest().encode()
            + b"\n" + payload)


def test_unwritable_directory_means_no_cache(tmp_path: Path, counting: _Counting,
                                             baseline_scenario: Scenario,
                                             baseline_params: ModelParameters,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CICSIM_CACHE_DIR", str(blocker / "parameters"))
    for _ in range(2):
        assert_identical(cache.cached_parameters(baseline_scenario.config),
                         baseline_params)
    assert counting.calls == 2
    assert blocker.read_text() == "not a directory"


def test_size_is_bounded(cache_dir: Path, baseline_params: ModelParameters) -> None:
    for index in range(6):
        assert cache.store(f"{index:064x}", baseline_params)
    cache.prune(cache_dir, keep=3)
    assert len(_entries(cache_dir)) == 3
    assert not list(cache_dir.glob(".tmp-*"))
    assert cache.clear() == 3
    assert _entries(cache_dir) == []


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CICSIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "cicsim" / "parameters"


class _Recorder(dict):  # type: ignore[type-arg]
    """A config that records the path of every value read from it."""

    def __init__(self, data: dict[str, Any], reads: set[tuple[str, ...]],
                 path: tuple[str, ...] = ()) -> None:
        super().__init__({k: _Recorder(v, reads, (*path, k)) if isinstance(v, dict) else v
                          for k, v in data.items()})
        self.reads, self.path = reads, path

    def _note(self, key: str) -> None:
        if not isinstance(dict.get(self, key), _Recorder):
            self.reads.add((*self.path, key))

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._note(str(key))
        return super().__contains__(key)

    def _whole(self) -> None:
        self.reads.add(self.path)

    def __iter__(self) -> Iterator[str]:
        self._whole()
        return super().__iter__()

    def items(self) -> Any:
        self._whole()
        return super().items()

    def values(self) -> Any:
        self._whole()
        return super().values()

    def keys(self) -> Any:
        self._whole()
        return super().keys()


def test_estimation_reads_only_keyed_or_neutral_keys(
        baseline_scenario: Scenario, baseline_params: ModelParameters) -> None:
    """Record every key the real estimation reads: each must be in the cache key
    (ESTIMATION_KEYS) or be one of the NEUTRAL_KEYS, and the neutral ones must indeed
    not change the estimate (baseline with a policy scenario's levers added and every
    [rates] multiplier at a documented bound: the base year is fitted to data alone)."""
    policy = load_scenario("scenarios/review-full.toml")
    assert policy.config["levers"], "review-full should configure levers"
    config = copy.deepcopy(baseline_scenario.config)
    config["levers"] = copy.deepcopy(policy.config["levers"])
    config["rates"] = {key: (0.0, 10.0)[i % 2] for i, key in enumerate(config["rates"])}
    config["name"] = "renamed"
    reads: set[tuple[str, ...]] = set()
    params = estimate_parameters(_Recorder(config, reads))
    assert_identical(params, baseline_params)
    allowed = cache.ESTIMATION_KEYS + cache.NEUTRAL_KEYS
    unkeyed = sorted(path for path in reads
                     if not any(path[:len(prefix)] == prefix for prefix in allowed))
    assert not unkeyed, f"estimation reads keys missing from cache.ESTIMATION_KEYS: {unkeyed}"
    assert cache.cache_key(config) == cache.cache_key(baseline_scenario.config)
