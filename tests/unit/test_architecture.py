"""The library's module-level imports form no cycle: each module can be imported alone, and the
layers read bottom-up (client and errors at the bottom, the CLI at the top)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src/qdrant_ops"


def module_imports() -> dict[str, set[str]]:
    """qdrant_ops modules each module imports at import time (function-level imports are lazy)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        graph[name] = set()
        for node in ast.parse(path.read_text()).body:  # top level only
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qdrant_ops"):
                parts = node.module.split(".")
                if len(parts) > 1:
                    graph[name].add(parts[1])
                else:  # from qdrant_ops import a, b
                    graph[name].update(
                        alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists()
                    )
    return graph


def test_no_import_cycle():
    graph = module_imports()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
    assert order.index("errors") < order.index("client") < order.index("cli")


def test_nothing_below_the_front_doors_imports_them():
    graph = module_imports()
    assert [name for name, imported in graph.items() if "cli" in imported] == []


def test_no_function_over_60_lines():
    """Long functions hide their steps: split them (ruff also limits branches and statements)."""
    long = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
