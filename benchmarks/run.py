"""`make bench`: run every benchmarks/bench_*.py module's ``main()`` in turn.

Each module prints its own figures and ratios.  Benchmarks measure; they never fail a
build on a timing (targets are printed next to the measurements).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    selected = set(sys.argv[1:])
    for path in sorted(here.glob("bench_*.py")):
        if selected and path.stem not in selected:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {path.stem}", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
