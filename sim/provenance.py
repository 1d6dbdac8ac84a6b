"""Provenance stored in every output's attributes: what produced it, from what."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import xarray as xr

import sim
from sim.datasets import data_hashes

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """Commit of the code that ran, with '+dirty' if the tree had changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=5, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--", "sim"],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = "+dirty" if status.stdout.strip() else ""
        return commit.stdout.strip() + dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def _installed_version(package: str) -> str:
    """Version from the package metadata: recording simpy's version should not import
    the discrete-event engine's dependency into every stock-flow run."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def provenance_attrs(scenario_toml: str, engine: str, seed: int | None,
                     wall_time_s: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """NetCDF-safe attributes (strings and numbers only)."""
    attrs: dict[str, Any] = {
        "title": "cicsim projection of children looked after in England",
        "scenario_toml": scenario_toml,
        "engine": engine,
        "root_seed": -1 if seed is None else int(seed),
        "cicsim_version": sim.__version__,
        "git_commit": git_commit(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": float(wall_time_s),
        "python": platform.python_version(),
        "package_versions": json.dumps({"numpy": np.__version__, "scipy": scipy.__version__,
                                        "simpy": _installed_version("simpy"),
                                        "xarray": xr.__version__}),
        "data_sha256": json.dumps(data_hashes()),
        "year_convention": "year ending 31 March; stocks at 31 March, flows over the year",
    }
    for key, value in (extra or {}).items():
        attrs[key] = value if isinstance(value, str | int | float) else json.dumps(value)
    return attrs
