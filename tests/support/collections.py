"""Check that every collection pinned in requirements.yml is installed at exactly that version.

Galaxy is unreachable on the CI machines, so the collections come from the `ansible` package;
this check makes a drift between that package and requirements.yml fail loudly.
Usage: python -m tests.support.collections requirements.yml
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def pinned(requirements: Path) -> dict[str, str]:
    data = yaml.safe_load(requirements.read_text())
    return {item["name"]: str(item["version"]) for item in data["collections"]}


def installed() -> dict[str, str]:
    """First match on the collection search path wins, as it does for ansible-playbook."""
    listing = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-galaxy")), "collection", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, str] = {}
    for collections in json.loads(listing.stdout).values():
        for name, info in collections.items():
            found.setdefault(name, info["version"])
    return found


def mismatches(requirements: Path) -> list[str]:
    have = installed()
    problems = []
    for name, version in pinned(requirements).items():
        if name not in have:
            problems.append(f"{name} {version} is not installed")
        elif have[name] != version:
            problems.append(f"{name}: requirements.yml pins {version}, installed is {have[name]}")
    return problems


if __name__ == "__main__":
    problems = mismatches(Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.yml"))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        fix = "pip install -e '.[test]' (bundled collections) or make collections GALAXY=1"
        print(f"fix: {fix}", file=sys.stderr)
        sys.exit(1)
    print("collections: all pinned versions installed")
