"""Whole-process wall time of ``cicsim run scenarios/baseline.toml --out X --quiet``.

What a user waits for: interpreter start, imports, scenario resolution, parameters
(from the on-disk cache when warm), the stock-flow projection, bands, costs and the
NetCDF + CSV writes.  ``cli_run_s`` is the median of REPEATS runs after one warm-up
run has filled a private cache directory (``CICSIM_CACHE_DIR``, so the user's cache is
neither used nor touched); ``cli_run_cold_cache_s`` gives every run an empty cache, so
it includes the estimation.  CPU seconds (user + system of the child) are reported
beside the wall times because the machine is shared: wall time grows with other
people's load, CPU time much less.  Target: ``cli_run_s`` <= 1.5 s on the 2-core
machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = "scenarios/baseline.toml"
TARGET_S = 1.5
REPEATS = 7
COLD_REPEATS = 3


def command(out: Path) -> list[str]:
    """The installed ``cicsim`` script beside this interpreter (what a user runs), or
    ``python -m sim`` where it is not installed."""
    script = Path(sys.executable).parent / "cicsim"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "sim"]
    return [*launcher, "run", SCENARIO, "--out", str(out), "--quiet"]


def timed_run(out: Path, cache_dir: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one whole ``cicsim run`` process."""
    env = dict(os.environ, CICSIM_CACHE_DIR=str(cache_dir), CICSIM_CACHE="1")
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(variable, "1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command(out), cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cicsim-bench-cli-") as tmp:
        work = Path(tmp)
        out = work / "baseline.nc"
        warm_cache = work / "cache-warm"
        timed_run(out, warm_cache)  # warm-up: fills the cache and the OS file cache
        warm = [timed_run(out, warm_cache) for _ in range(REPEATS)]
        cold = []
        for index in range(COLD_REPEATS):
            empty = work / f"cache-cold-{index}"
            cold.append(timed_run(out, empty))
            shutil.rmtree(empty, ignore_errors=True)
    figures = {
        "cli_run_s": statistics.median(w for w, _ in warm),
        "cli_run_cpu_s": statistics.median(c for _, c in warm),
        "cli_run_cold_cache_s": statistics.median(w for w, _ in cold),
        "cli_run_cold_cache_cpu_s": statistics.median(c for _, c in cold),
        "cli_run_target_s": TARGET_S,
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    figures["load_average_1min"] = load
    print(f"cicsim run {SCENARIO} (whole process, {os.cpu_count()} CPUs, load {load:.1f})")
    print(f"  warm cache: median {figures['cli_run_s']:.2f} s wall over {REPEATS} runs "
          f"(target {TARGET_S:.1f} s; {figures['cli_run_cpu_s']:.2f} s CPU)")
    print(f"  cold cache: median {figures['cli_run_cold_cache_s']:.2f} s wall over "
          f"{COLD_REPEATS} runs ({figures['cli_run_cold_cache_cpu_s']:.2f} s CPU)")
    return figures


if __name__ == "__main__":
    main()
