"""How many workers (DES processes, stock-flow threads) a run uses by default.

One knob for both engines: ``CICSIM_WORKERS`` if set (tests set it to 1, since
pytest-xdist already fills the machine; a dask worker passes 1 explicitly, since the
cluster already has one worker per core), else one per CPU this process may use.
Results never depend on it: DES replicates draw from streams keyed by their index,
stock-flow chunks are independent.
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers(tasks: int) -> int:
    """``CICSIM_WORKERS`` if set, else one per CPU; at most one per task."""
    configured = os.environ.get("CICSIM_WORKERS")
    if configured:
        return max(1, int(configured))
    return max(1, min(available_cpus(), tasks))
