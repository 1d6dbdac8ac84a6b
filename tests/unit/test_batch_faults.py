"""Faults and clusters, end to end in subprocesses (all marked slow: each starts real
processes or a dask cluster).

* A batch killed with SIGKILL mid-way leaves no process behind (its whole session is
  checked, so grandchildren count), and a rerun removes the temporary files, reuses
  the finished tasks and writes data identical to an uninterrupted batch.
* DES worker processes of ``cicsim run`` die with their parent.
* One and two dask workers give the same data hash.
* ``touch scenarios/review-full.toml`` makes ``make run`` re-run only what depends on it.

The claims are exact (equal hashes, empty process lists), so no tolerance is involved;
the waits are bounded polls.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--set", "run.population_scale=0.01", "--set", "run.end_year=2026"]
HASH = re.compile(r"data sha256 ([0-9a-f]{64})")

pytestmark = pytest.mark.slow


def _cicsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "sim", *args]


def _session(sid: int) -> list[int]:
    """Every live process in session ``sid`` (the killed parent started it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6: session id
            found.append(int(entry.name))
    return found


def _wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _kill_mid_way(argv: list[str], ready, cwd: Path) -> list[int]:  # type: ignore[no-untyped-def]
    """Start ``argv`` in a new session, SIGKILL the parent once ``ready(its pid)``,
    return the processes of its session still alive 15 s later."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    process = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_until(lambda: ready(process.pid), 240), "the run never got going"
        assert len(_session(process.pid)) > 1, "no worker processes to orphan"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        _wait_until(lambda: not _session(process.pid), 15)
        return _session(process.pid)
    finally:
        for pid in _session(process.pid):  # never leave our own processes behind
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_batch_leaves_nothing_and_resumes_to_identical_results(tmp_path: Path) -> None:
    out = tmp_path / "killed" / "k.nc"
    tasks = out.parent / ".batch" / "k"
    replicates = 40

    def batch(path: Path) -> list[str]:
        # enough replicates that the kill (polled every 0.2 s) lands before the end
        return _cicsim("batch", str(REPO / "scenarios" / "baseline.toml"), "--replicates",
                       str(replicates), "--workers", "2", "--out", str(path), "--quiet",
                       *SMALL)

    argv = batch(out)
    survivors = _kill_mid_way(argv, lambda _pid: len(list(tasks.glob("*.nc"))) >= 2,
                              tmp_path)
    assert survivors == []
    assert not out.exists()
    # a temporary file as a kill inside a write leaves it (owner: a dead pid)
    (tasks / ".baseline.replicate-000005-000006.nc.999999999.dead.tmp").write_text("x")
    rerun = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True)
    done = int(re.search(r"\((\d+) already done\)", rerun.stdout).group(1))
    assert 2 <= done < replicates
    assert not list(out.parent.rglob("*.tmp"))
    fresh = subprocess.run(batch(tmp_path / "fresh.nc"), cwd=tmp_path, capture_output=True,
                           text=True, check=True)
    assert HASH.search(rerun.stdout).group(1) == HASH.search(fresh.stdout).group(1)
    assert out.with_suffix(".csv").read_bytes() == (tmp_path / "fresh.csv").read_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_des_run_workers_die_with_their_parent(tmp_path: Path) -> None:
    # Long enough (40 national replicates on 2 workers) that it is killed while its
    # workers run: ready once the parent has started them.
    argv = _cicsim("run", str(REPO / "scenarios" / "baseline.toml"), "--engine", "des",
                   "--replicates", "40", "--workers", "2", "--out", str(tmp_path / "r.nc"),
                   "--quiet")
    survivors = _kill_mid_way(argv, lambda pid: len(_session(pid)) >= 3, tmp_path)
    assert survivors == []


def test_one_and_two_dask_workers_write_identical_data(tmp_path: Path) -> None:
    hashes = []
    for workers in ("1", "2"):
        done = subprocess.run(_cicsim("batch", str(REPO / "scenarios" / "baseline.toml"),
                                      "--replicates", "3", "--workers", workers, "--out",
                                      str(tmp_path / f"w{workers}.nc"), "--quiet", *SMALL),
                              cwd=tmp_path, capture_output=True, text=True, check=True)
        hashes.append(HASH.search(done.stdout).group(1))
    assert hashes[0] == hashes[1]
    assert (tmp_path / "w1.csv").read_bytes() == (tmp_path / "w2.csv").read_bytes()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_touching_a_scenario_reruns_only_what_depends_on_it(tmp_path: Path) -> None:
    """``make -n run`` in a copy of the repository whose outputs are up to date (their
    times set after every source), before and after touching review-full.toml."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("sim", "scenarios"):
        shutil.copytree(REPO / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    venv = Path(sys.executable).parent.parent
    (tmp_path / ".venv").symlink_to(venv)
    make = ["make", "-C", str(tmp_path), "-o", ".venv/.installed"]
    subprocess.run([*make, "outputs/.deps/scenarios.d", "outputs/.deps/sweeps.d"],
                   check=True, capture_output=True)
    old = time.time() - 3600
    for path in [*(tmp_path / "sim").rglob("*"), *(tmp_path / "scenarios").rglob("*")]:
        os.utime(path, (old, old))
    outputs = [tmp_path / "outputs" / f"{p.stem}.nc" for p in
               (tmp_path / "scenarios").glob("*.toml")]
    outputs += [tmp_path / "outputs" / "families-first-pathfinders-pathfinders.nc",
                tmp_path / "outputs" / "baseline-pathfinders.nc",  # runs by area (Makefile)
                tmp_path / "outputs" / "sweeps" / "family-help.csv",
                tmp_path / "outputs" / "sensitivity" / "review-full.csv"]
    for step, paths in enumerate([list((tmp_path / "outputs" / ".deps").iterdir()), outputs,
                                  [tmp_path / "outputs" / "report.html"]]):
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path, (old + 60 * (step + 1),) * 2)
    quiet = subprocess.run([*make, "-n", "run"], check=True, capture_output=True, text=True)
    assert "sim run" not in quiet.stdout and "sim compare" not in quiet.stdout
    os.utime(tmp_path / "scenarios" / "review-full.toml")  # now: after every output
    plan = subprocess.run([*make, "-n", "run"], check=True, capture_output=True, text=True)
    runs = sorted(re.findall(r"-m sim (run|sensitivity|sweep) scenarios/(\S+)\.toml",
                             plan.stdout))
    assert runs == [("run", "review-delayed"), ("run", "review-full"),
                    ("sensitivity", "review-full")], plan.stdout
    assert "-m sim compare" in plan.stdout  # and the report


def test_cicsim_run_on_a_scheduler_equals_the_local_run(tmp_path: Path) -> None:
    """``cicsim run --engine des --scheduler ADDRESS`` (replicates as batch tasks on an
    existing cluster) writes the same data as the local run."""
    import logging

    from dask.distributed import LocalCluster

    from sim.cli import main

    scenario = str(REPO / "scenarios" / "baseline.toml")
    common = ["--engine", "des", "--replicates", "2", "--quiet", "--name", "baseline", *SMALL]
    before = dict(os.environ)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster:
            assert main(["run", scenario, "--out", str(tmp_path / "remote.nc"),
                         "--scheduler", cluster.scheduler_address, *common]) == 0
    finally:  # dask's nanny writes MALLOC_TRIM_THRESHOLD_ into this process's environment
        for key in set(os.environ) - set(before):
            del os.environ[key]
    assert main(["run", scenario, "--out", str(tmp_path / "local.nc"), *common]) == 0
    assert (tmp_path / "remote.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_local_workers_start_without_a_malloc_threshold() -> None:
    """Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_``, which makes a national DES replicate
    ~3x slower in a worker (sim.batch.dask_client); the batch's local workers must not
    inherit it, and keep the one-BLAS-thread settings."""
    from sim.batch import dask_client

    with dask_client(1, None) as client:
        environ = client.submit(lambda: dict(os.environ), pure=False).result()
    assert not [k for k in environ if k.startswith("MALLOC_")]
    assert environ.get("OPENBLAS_NUM_THREADS") == "1"
