"""Dask clusters for :mod:`sim.batch` and sweeps: start or reach one, run items on it.

Local workers die with the process that started them (dask's nanny watches its
parent; docs/batch.md has the kill test).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from sim.errors import InputError


def check_reachable(address: str) -> None:
    """A refused or unroutable ``tcp://host:port`` is bad input at once (dask itself
    would retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # other transports: leave it to dask
    try:
        port = parts.port
        socket.create_connection((parts.hostname or "", port or 8786), timeout=3).close()
    except (OSError, ValueError) as exc:
        raise InputError(f"--scheduler: cannot connect to '{address}': "
                         f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None


def check_cluster_options(workers: int | None, scheduler: str | None) -> None:
    """``--workers`` / ``--scheduler`` as bad input, before any work: ``--workers`` below
    1, or both (``--workers`` starts a local cluster; a scheduler has its own workers)."""
    if scheduler is not None and workers is not None:
        raise InputError("--workers: starts a local cluster; with --scheduler the "
                         "cluster's own workers are used (drop one of them)")
    if workers is not None and workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    if scheduler is not None:
        check_reachable(scheduler)


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` on ``scheduler``, or on a ``LocalCluster`` of
    ``workers`` one-thread processes, closed (with its cluster) on exit.

    Local workers start without dask's default ``MALLOC_TRIM_THRESHOLD_=65536``: setting
    any glibc malloc threshold turns off glibc's adaptive mmap threshold, so every numpy
    array over 128 KiB is mmap'ed and unmapped again.  Measured on a national DES
    replicate: ~500,000 page faults and 1.8 s of CPU with it, ~9,000 and 0.6 s without.
    A worker holds one scenario's model and returns small datasets, so handing memory
    back to the OS eagerly buys nothing.  (Workers of a cluster started elsewhere,
    ``--scheduler``, get their environment from whoever starts them: docs/batch.md.)

    The client is not made dask's default: xarray would then take a *distributed* lock
    (round trips through the scheduler) for every NetCDF file this process writes, and
    the client writes one per task.  Measured: 0.87 s of wall time per task file with
    a default client, 0.08 s without.

    Local workers run without dask's statistical profiler (it samples the task's stack
    every 10 ms for the dashboard, which a batch does not show): measured, a national
    DES replicate in a worker takes ~5 % less time without it."""
    import logging

    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler: cannot connect to '{scheduler}': "
                             f"{type(exc).__name__}") from None
        try:
            yield client
        finally:
            client.close()
        return
    defaults = dask.config.get("distributed.nanny.pre-spawn-environ", {})
    malloc = [k for k in defaults if k.startswith("MALLOC_")]
    # The nanny also copies its pre-spawn variables into *this* process's environment
    # (os.environ.update), so a cluster started earlier in this process (a test, a
    # notebook) would hand them on; they are removed while ours runs.
    leaked = {k: os.environ.pop(k) for k in malloc if k in os.environ}
    environ = {k: v for k, v in defaults.items() if k not in malloc}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                              "distributed.worker.profile.enabled": False}), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             dashboard_address=":0", memory_limit=0,
                             silence_logs=logging.ERROR) as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        os.environ.update(leaked)


def execute(items: dict[str, Any], function: Callable[[Any], Any], workers: int,
            scheduler: str | None, on_done: Callable[[Any, Any], None]) -> None:
    """``function(item)`` for every item (keyed by a task key unique on the scheduler);
    ``on_done(item, result)`` in the calling process as each finishes.  ``workers=0``
    without a scheduler runs them here, one after another (the library's and tests'
    path).  ``function`` must be importable on the workers (a module-level function)."""
    if not items:
        return
    if workers == 0 and scheduler is None:
        for item in items.values():
            on_done(item, function(item))
        return
    from dask.distributed import as_completed

    with dask_client(workers, scheduler) as client:
        futures = [client.submit(function, item, key=key, pure=False)
                   for key, item in items.items()]
        for future in as_completed(futures, loop=client.loop):
            on_done(items[future.key], future.result())
            future.release()
