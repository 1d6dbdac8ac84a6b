"""The package's import structure: no cycles, and no module importing a higher layer.

Layers, lowest first (DESIGN: model -> engines -> results -> workflows -> CLI):

- foundation: ``sim.errors``, ``sim.rng``, ``sim.progress``;
- model: ``sim.model`` (pure data and arithmetic, no file I/O);
- engines: ``sim.engines``;
- data: ``sim.datasets``, ``sim.provenance``, ``sim.estimation`` (reads the shipped
  data; the base-year state is the engine's own equilibrium, so it sits above engines);
- results: ``sim.results``;
- workflows: scenarios, calibration, sweeps, sensitivity, solve, reinvestment, run, batch;
- cli: the command-line modules.

Every ``import`` counts, wherever it is written (a function-level import must not hide
a cycle or an upward arrow).  The walk is over the source with :mod:`ast`, so it sees
imports that a run would only reach on some paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

SIM = Path(__file__).resolve().parents[2] / "sim"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("sim", "sim.errors", "sim.rng", "sim.progress")),
    ("model", ("sim.model",)),
    ("engines", ("sim.engines",)),
    ("data", ("sim.datasets", "sim.provenance", "sim.estimation")),
    ("results", ("sim.results",)),
    ("workflows", ("sim.scenarios", "sim.calibration", "sim.sweep", "sim.sensitivity",
                   "sim.solve", "sim.reinvestment", "sim.reconciliation", "sim.run",
                   "sim.batch")),
    ("cli", ("sim.cli", "sim.__main__", "sim.compare_cli", "sim.calibration.cli",
             "sim.ssda903_cli")),
)


def module_names() -> dict[str, Path]:
    names = {}
    for path in SIM.rglob("*.py"):
        parts = path.relative_to(SIM.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``sim`` modules ``path`` imports (``from sim.a import b`` -> ``sim.a.b`` if
    that is a module, else ``sim.a``)."""

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(known(a.name) for a in node.names if a.name.split(".")[0] == "sim")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "sim":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else known(node.module))
    return found - {"", "sim"}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def layer_of(module: str) -> int:
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in import_graph() if layer_of(m) < 0]
    assert not unplaced, f"modules outside every layer: {unplaced}"


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


# Known upward arrows being removed (each names the change that removes it); empty.
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def test_no_module_imports_a_higher_layer() -> None:
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in sorted(import_graph().items()) for t in sorted(targets)
              if layer_of(t) > layer_of(m) and (m, t) not in ALLOWED_UPWARD]
    assert upward == [], "\n".join(upward)


def test_the_checks_can_fail() -> None:
    """The walker finds a cycle and an upward arrow when there is one."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert layer_of("sim.model.spec") < layer_of("sim.engines.stockflow")
    assert layer_of("sim.calibration.cli") == len(LAYERS) - 1
    graph = import_graph()
    assert "sim.model.spec" in graph["sim.engines.stockflow"]


MAX_LINES = 600  # issue 10: no file in sim/ over 600 lines


def test_no_module_is_longer_than_the_limit() -> None:
    """A module past the limit is doing two jobs: split it (the stock-flow engine's
    series, reduced state and placement deviation are modules of their own)."""
    lengths = {path.relative_to(SIM.parent).as_posix():
               len(path.read_text(encoding="utf-8").splitlines())
               for path in SIM.rglob("*.py")}
    assert len(lengths) > 50  # the walk found the package
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
