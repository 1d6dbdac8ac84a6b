"""``cicsim batch``: scenarios x replicates (DES) or parameter draws (stock-flow) [x
areas] as tasks on dask.distributed, gathered into one Dataset (docs/batch.md).

Why tasks: modellers run scenarios x replicates x parameter draws x 152 authorities;
one process per run wastes the machine and a crash loses everything.  A task is
``(scenario, replicate chunk | draw chunk, area)`` (:mod:`sim.batch.tasks`):

* **Seeds come from the task, never the worker.**  A DES replicate ``r`` draws from
  :mod:`sim.rng`'s streams keyed by (root seed, ``r``, stream name) exactly as
  ``cicsim run --engine des`` does (both call :func:`sim.engines.des.runner.run_replicates`
  -> ``simulate_replicate``), so batch replicate ``r`` equals run replicate ``r`` and
  the file is identical whatever the worker count or chunking.  By area, the root
  seed is the area's (:func:`sim.rng.area_seed`), its capacity and lever money those
  ``cicsim run --area`` gives it (both start from :func:`sim.run.area_setup`).
  Parameter draw ``d`` is row ``d`` of :func:`sim.calibration.sample_parameter_sets`
  with the root seed, drawn on the client: the same draw in every scenario and area,
  so differences are paired.
* **Resumable.**  Each finished task is written (atomically) to
  ``<out folder>/.batch/<out stem>/<task>.nc`` with its ``task_hash``: the SHA-256 of the
  task (area included), its resolved config, the engine, the code and the data.  A
  rerun skips every task whose file carries the hash it would have; the gathered file
  is always built from the task files, so a resumed batch writes the same bytes as an
  uninterrupted one.
* **Clusters** (:mod:`sim.batch.cluster`).  By default a ``LocalCluster`` of
  ``--workers`` processes with one thread each; ``--scheduler ADDRESS`` uses an
  existing cluster, whose workers need cicsim installed.  Sweeps run on the same
  clusters (:func:`sim.sweep.run_sweep`).

Modules: :mod:`~sim.batch.tasks` (tasks, hashes, the worker side),
:mod:`~sim.batch.cluster` (clusters), :mod:`~sim.batch.runner` (plan, resume, gather,
``cicsim run --scheduler``), :mod:`~sim.batch.commands` (``cicsim batch``, ``cicsim
deps``).
"""

from __future__ import annotations

from sim.batch.cluster import check_cluster_options, dask_client, execute
from sim.batch.commands import dependency_rules, register
from sim.batch.runner import (
    BatchResult,
    gather,
    run_batch,
    run_distributed_to_file,
    simulate_distributed,
)
from sim.batch.tasks import Task, TaskSpec, plan, run_task, task_hash

__all__ = ["BatchResult", "Task", "TaskSpec", "check_cluster_options", "dask_client",
           "dependency_rules", "execute", "gather", "plan", "register", "run_batch",
           "run_distributed_to_file", "run_task", "simulate_distributed", "task_hash"]
