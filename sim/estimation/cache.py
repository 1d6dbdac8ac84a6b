"""Estimated parameters cached on disk, so a run does not re-estimate what it did before.

Why: :func:`sim.estimation.estimate.estimate_parameters` takes 1-2 s in every process
(about half of it parsing the same CSVs), which is most of a stock-flow run.  Its
result depends only on

(a) the base year,
(b) the shipped data files (SHA-256 of every file in ``sim/data``),
(c) the scenario keys the estimation reads (:data:`ESTIMATION_KEYS`), and
(d) the code: the SHA-256 of every ``sim/**/*.py`` file, plus the Python, numpy and
    scipy versions.  The estimation runs the stock-flow engine's equilibrium and the
    rates of :mod:`sim.model.rates`, so more than ``sim/estimation`` shapes it; hashing
    the whole package (60-odd small files, a few milliseconds) cannot miss a module,
    at the price of one re-estimate after an unrelated edit.

so the cache key is a SHA-256 over all four and a hit is the same result, bit for bit.

Where: ``$CICSIM_CACHE_DIR`` if set, else ``${XDG_CACHE_HOME:-~/.cache}/cicsim/parameters``.
``CICSIM_CACHE=0`` turns it off.  ``cicsim cache clear`` empties it.

Format: one pickle of the frozen :class:`~sim.model.parameters.ModelParameters` per key,
behind a header holding the key and the payload's SHA-256.  Why pickle: it round-trips
every array (dtype, shape, bits) and the ``sources`` strings exactly with no schema to
keep in step with the dataclass; the cache is local to the user and content-addressed,
and anyone able to write to it could equally edit the installed code.  The header
check rejects a truncated or foreign file before unpickling.

Failure is never an error: an unreadable, corrupt or partial entry is a miss (the
parameters are re-estimated and the entry rewritten); an unwritable directory means
no cache.  Writes go to a temporary file in the same directory and are renamed into
place, so readers see a whole entry or none.  At most :data:`MAX_ENTRIES` entries are
kept (least recently used go first), so a loop over many configs cannot fill the disk.

Only :func:`cached_parameters` (runs, the CLI, sweeps, sensitivity, solve,
reconciliation) uses the cache; calibration and backtests call
``estimate_parameters`` directly, since they estimate many one-off configs, often
from a truncated copy of the data (``data_dir``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy

from sim.datasets import data_hashes
from sim.model.parameters import ModelParameters

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Bump when the entry layout changes (old entries then miss and age out).
FORMAT = 1
MAGIC = b"cicsim-parameters\n"
MAX_ENTRIES = 64
SUFFIX = ".pkl"
# Temporary files older than this are left over from a killed writer.
STALE_TEMP_SECONDS = 3600.0

# Every scenario key estimate_parameters reads (found by reading it and the functions it
# calls; tests/unit/test_parameter_cache.py records the reads and fails if one is
# missing).  A one-element path is the whole section.
ESTIMATION_KEYS: tuple[tuple[str, ...], ...] = (
    ("run", "base_year"),
    ("initial", "looked_after_vintage"),
    ("population", "births_per_year"),
    ("reentry", "within_1_year"),
    ("reentry", "within_5_years"),
    ("uasc", "arrivals_per_year"),
    ("uasc", "arrivals_method"),
    ("uasc", "exit_rate_per_year"),
    ("uasc", "arrivals_by_year"),  # year_rates reads the base year's entry
    ("trends",),  # window and slopes directly; year_rates reads the rest
)
# Cannot change the result: the estimation sees [rates] multipliers of 1 and no levers
# (sim.model.rates.base_year_config: a scenario acts from the first projection year
# on), and the name only labels error messages.  Leaving them out lets every policy
# and multiplier scenario share its baseline's entry.
NEUTRAL_KEYS: tuple[tuple[str, ...], ...] = (("rates",), ("levers",), ("name",))

_ABSENT = "<absent>"


def enabled() -> bool:
    """False when ``CICSIM_CACHE=0`` (or ``false``/``no``/``off``)."""
    return os.environ.get("CICSIM_CACHE", "1").strip().lower() not in {"0", "false", "no",
                                                                       "off"}


def cache_dir() -> Path:
    """Where entries live: ``$CICSIM_CACHE_DIR``, else the XDG cache home."""
    explicit = os.environ.get("CICSIM_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(xdg) / "cicsim" / "parameters"


def estimation_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """The part of ``config`` the estimation reads, as ``{"section.key": value}``."""
    out: dict[str, Any] = {}
    for path in ESTIMATION_KEYS:
        value: Any = config
        for part in path:
            value = value.get(part, _ABSENT) if isinstance(value, dict) else _ABSENT
        out[".".join(path)] = value
    return out


def code_hash() -> str:
    """SHA-256 over the path and bytes of every ``sim/**/*.py`` file."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_key(config: dict[str, Any]) -> str:
    """Hex SHA-256 naming the entry for ``config`` (see the module docstring)."""
    inputs = {
        "format": FORMAT,
        "base_year": config["run"]["base_year"],
        "data_sha256": data_hashes(),
        "config": estimation_inputs(config),
        "code_sha256": code_hash(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__},
    }
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _entry_path(key: str) -> Path:
    return cache_dir() / f"{key}{SUFFIX}"


def _encode(key: str, params: object) -> bytes:
    payload = pickle.dumps(params, protocol=pickle.HIGHEST_PROTOCOL)
    header = MAGIC + key.encode() + b"\n" + hashlib.sha256(payload).hexdigest().encode()
    return header + b"\n" + payload


def _decode(key: str, blob: bytes, kind: type = ModelParameters) -> Any:
    """The entry's parameters, or None unless header, key, digest and type all agree
    (``kind``: the type expected; sim.estimation.areas caches a set of areas')."""
    prefix = MAGIC + key.encode() + b"\n"
    if not blob.startswith(prefix):
        return None
    digest, newline, payload = blob[len(prefix):].partition(b"\n")
    if not newline or hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    params = pickle.loads(payload)  # noqa: S301 - local, content-addressed (docstring)
    return params if isinstance(params, kind) else None


def load(key: str, kind: type = ModelParameters) -> Any:
    """The cached parameters for ``key``, or None (missing, unreadable or corrupt)."""
    path = _entry_path(key)
    try:
        params = _decode(key, path.read_bytes(), kind)
    except Exception:  # noqa: BLE001 - any bad entry is a miss, never an error
        return None
    if params is not None:
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
    return params


def store(key: str, params: object) -> bool:
    """Write the entry atomically; False (and nothing left behind) if it cannot be."""
    directory = cache_dir()
    tmp: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=directory)
        with os.fdopen(handle, "wb") as stream:
            stream.write(_encode(key, params))
        os.replace(tmp, _entry_path(key))
        tmp = None
    except (OSError, pickle.PicklingError):
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    prune(directory)
    return True


def _entries(directory: Path) -> Iterator[tuple[float, Path]]:
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            yield path.stat().st_mtime, path
        except OSError:
            continue  # removed by another process meanwhile


def prune(directory: Path | None = None, keep: int = MAX_ENTRIES) -> None:
    """Keep the ``keep`` most recently used entries; drop stale temporary files."""
    directory = cache_dir() if directory is None else directory
    entries = sorted(_entries(directory), reverse=True)
    now = time.time()
    doomed = [p for mtime, p in entries if p.name.startswith(".tmp-")
              and now - mtime > STALE_TEMP_SECONDS]
    finished = [p for _, p in entries if not p.name.startswith(".tmp-")]
    for path in doomed + finished[keep:]:
        with contextlib.suppress(OSError):
            path.unlink()


def clear() -> int:
    """Remove every entry (and temporary file); return how many files went."""
    directory = cache_dir()
    removed = 0
    for _, path in list(_entries(directory)):
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _estimate(config: dict[str, Any]) -> ModelParameters:
    # Deferred import: estimation pulls in scipy.optimize (~0.3 s), which a cache hit
    # never needs; there is no import cycle here.
    from sim.estimation.estimate import estimate_parameters

    return estimate_parameters(config)


def cached_parameters(config: dict[str, Any]) -> ModelParameters:
    """``estimate_parameters(config)`` (shipped data), from the cache when possible."""
    if not enabled():
        return _estimate(config)
    try:
        key = cache_key(config)
    except (OSError, TypeError, ValueError):
        return _estimate(config)  # unhashable config or unreadable sources
    params = load(key)
    if params is None:
        params = _estimate(config)
        store(key, params)
    return params
