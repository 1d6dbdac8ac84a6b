"""A stock-flow ``cicsim run`` does not pay for dask (installed for ``cicsim batch``):
xarray would import dask.array and dask.distributed whenever they are installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from sim.cli import main
sys.argv = ["cicsim", *sys.argv[1:]]
code = main()
loaded = [n for n in ("dask", "dask.array", "distributed") if sys.modules.get(n) is not None]
print("loaded:", ",".join(loaded) or "-")
sys.exit(code)
"""


def _loaded(*argv: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def test_a_stock_flow_run_imports_no_dask(tmp_path: Path) -> None:
    out = tmp_path / "b.nc"
    assert _loaded("run", "scenarios/baseline.toml", "--out", str(out), "--quiet",
                   "--set", "run.end_year=2024") == "loaded: -"
    assert out.exists() and out.with_suffix(".csv").exists()
