"""`make bench`: run every benchmarks/bench_*.py module's ``main()`` in turn.

Each module prints its own figures and ratios and returns them; all are written to
``outputs/bench.json`` with the git commit and the machine, so a speed claim can be
checked against a file.  Benchmarks measure; they never fail a build on a timing
(targets are recorded next to the measurements).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    selected = set(sys.argv[1:])
    figures: dict[str, object] = {}
    for path in sorted(here.glob("bench_*.py")):
        if selected and path.stem not in selected:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {path.stem}", flush=True)
        figures[path.stem] = module.main()
    from sim.provenance import git_commit

    out = here.parent / "outputs" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
              "git_commit": git_commit(), "python": platform.python_version(),
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "note": "medians (stock-flow) or best of repeats (DES); this machine is "
                      "shared and noisy", "benchmarks": figures}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
