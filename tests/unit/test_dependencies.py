"""pyproject declares what src/ imports, and nothing it does not: the nodes' virtualenvs get the
runtime dependencies (no Ansible there), the controller its extra."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = {"pyarrow": "parquet"}  # imported only where Parquet is read or written


def imported_modules() -> set[str]:
    """Top-level modules imported anywhere in src/ (function-level imports included)."""
    found = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"qdrant_ops"}


def distribution(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_pyproject_declares_what_src_imports_and_nothing_else():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {distribution(r) for r in project["dependencies"]}
    extras = {
        name: {distribution(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()
    }
    owners = importlib.metadata.packages_distributions()
    needed = {}
    for module in imported_modules():
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        assert dists, f"src/ imports {module}, which no installed distribution provides"
        needed[module] = dists
    runtime = {m: d for m, d in needed.items() if m not in OPTIONAL}
    missing = {m: d for m, d in runtime.items() if not d & declared}
    assert not missing, f"imported by src/ but not in [project] dependencies: {missing}"
    for module, extra in OPTIONAL.items():
        assert needed.get(module, set()) & extras[extra], f"{module} belongs in the {extra} extra"
    used = set().union(*runtime.values())
    unused = declared - used
    assert not unused, f"[project] dependencies that src/ never imports: {sorted(unused)}"
    assert {"ansible-core", "jinja2"} <= extras["controller"] and not {"ansible-core", "jinja2"} & declared
