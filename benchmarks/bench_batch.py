"""``cicsim batch``: 100 national DES replicates of the baseline on 1 and 2 dask workers.

Figures:

* ``des_100_replicates_1_worker_s`` / ``des_100_replicates_2_workers_s``: wall time of
  the whole command (``cicsim batch scenarios/baseline.toml --engine des --replicates
  100 --workers N``: cluster start, 100 one-replicate tasks, gather, write), parameter
  cache warm, each into a fresh folder so nothing is resumed;
* ``des_100_replicates_speedup``: the ratio; target >= 1.7 on a 2-core machine;
* ``des_100_replicates_identical``: 1 if both files have the same data hash.

One run each (each is 100 replicates, minutes long; repeating would double the bench),
so these are single measurements, not medians; the load average before each is printed,
because the machine is shared.  ``CICSIM_BENCH_BATCH_REPLICATES`` changes the count
(the key names keep saying 100).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SPEEDUP = 1.7


def _batch(workers: int, out: Path, replicates: int) -> tuple[float, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sim", "batch", "scenarios/baseline.toml",
                           "--engine", "des", "--replicates", str(replicates), "--workers",
                           str(workers), "--out", str(out), "--quiet"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    found = re.search(r"data sha256 ([0-9a-f]{64})", done.stdout)
    return wall, found.group(1) if found else ""


def main() -> dict[str, float]:
    replicates = int(os.environ.get("CICSIM_BENCH_BATCH_REPLICATES", "100"))
    # warm the parameter cache, so neither run pays for the estimation
    subprocess.run([sys.executable, "-m", "sim", "params", "scenarios/baseline.toml"],
                   cwd=ROOT, capture_output=True, check=True)
    figures: dict[str, float] = {}
    hashes = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in (1, 2):
            load = os.getloadavg()[0]
            wall, digest = _batch(workers, Path(folder) / f"w{workers}" / "b.nc", replicates)
            hashes.append(digest)
            key = (f"des_100_replicates_{workers}_worker{'s' if workers > 1 else ''}_s")
            figures[key] = wall
            print(f"{key}: {wall:8.1f} s  ({replicates} replicates, load before "
                  f"{load:.1f}; data sha256 {digest[:16]})")
    one, two = (figures[f"des_100_replicates_{k}_s"] for k in ("1_worker", "2_workers"))
    speedup = one / two
    figures["des_100_replicates_speedup"] = speedup
    figures["des_100_replicates_identical"] = float(hashes[0] == hashes[1] != "")
    print(f"des_100_replicates_speedup:      {speedup:8.2f} x  (target >= {TARGET_SPEEDUP})")
    print(f"identical data on 1 and 2 workers: {hashes[0] == hashes[1]}")
    return figures


if __name__ == "__main__":
    main()
