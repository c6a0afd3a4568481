"""The pinned versions the tests pass with: constraints/*.txt, and `make lock` to refresh them.

Each environment is resolved from scratch in a throw-away virtualenv (no constraints, today's
PyPI), checked with `pip check` and frozen to constraints/<name>.txt; what moved is printed and
appended, dated, to constraints/CHANGES.md. `make venv` and `make checkov` install from those
files, so a new machine gets what CI last passed with, not whatever PyPI resolves today.

    python -m tests.support.lock            refresh every environment
    python -m tests.support.lock checkov    refresh one
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints"
# What each environment installs: the tests' environment is the package with its test extra;
# checkov has its own (it brings bc-python-hcl2, which writes into the same `hcl2` package as
# python-hcl2, so the two cannot share a virtualenv).
ENVIRONMENTS = {
    "test": ["-e", f"{ROOT}[test]"],
    "checkov": ["-r", str(CONSTRAINTS / "checkov.in")],
}
# pip is pinned too (its resolver picks the versions); setuptools and wheel are build tools that
# pip's isolated builds fetch by themselves.
NOT_PINNED = ("setuptools", "wheel")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def pins(text: str) -> dict[str, str]:
    """name (normalised) -> version, from a constraints file's `name==version` lines."""
    found = {}
    for line in text.splitlines():
        if match := PIN.match(line.strip()):
            found[normalise(match.group(1))] = match.group(2)
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(name: str) -> str:
    """A fresh resolve of one environment, as `pip freeze` prints it."""
    with tempfile.TemporaryDirectory(prefix=f"lock-{name}-") as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "install", "--quiet", *ENVIRONMENTS[name]], check=True)
        subprocess.run([*pip, "check"], check=True)
        exclude = [arg for package in NOT_PINNED for arg in ("--exclude", package)]
        frozen = subprocess.run(
            [*pip, "freeze", "--all", "--exclude-editable", *exclude],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return frozen


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    if not old:
        return [f"- first lock: {len(new)} packages pinned"]
    lines = []
    for package in sorted(old.keys() | new.keys()):
        before, after = old.get(package), new.get(package)
        if before == after:
            continue
        if before is None:
            lines.append(f"- {package}: added {after}")
        elif after is None:
            lines.append(f"- {package}: removed (was {before})")
        else:
            lines.append(f"- {package}: {before} -> {after}")
    return lines


def refresh(name: str, today: str) -> list[str]:
    path = CONSTRAINTS / f"{name}.txt"
    old = pins(path.read_text()) if path.exists() else {}
    frozen = resolve(name)
    header = (
        f"# The `{name}` environment as `make lock` resolved it on {today} with Python "
        f"{platform.python_version()} ({sys.platform}, {platform.machine()}).\n"
        "# Installed with `pip install -c` by the Makefile. Do not edit by hand: run `make lock`.\n"
    )
    path.write_text(header + frozen)
    return changes(old, pins(frozen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(ENVIRONMENTS)}")
    names = parser.parse_args(argv).names or list(ENVIRONMENTS)
    if unknown := [name for name in names if name not in ENVIRONMENTS]:
        parser.error(f"no environment {', '.join(unknown)}: choose from {', '.join(ENVIRONMENTS)}")
    today = datetime.date.today().isoformat()
    note = [f"## {today}"]
    for name in names:
        moved = refresh(name, today)
        print(f"constraints/{name}.txt: " + (f"{len(moved)} change(s)" if moved else "no change"))
        for line in moved:
            print(f"  {line}")
        note += [f"constraints/{name}.txt:", *(moved or ["- no change"])]
    with (CONSTRAINTS / "CHANGES.md").open("a") as log:
        log.write("\n" + "\n".join(note) + "\n")
    print("noted in constraints/CHANGES.md; next: make test, then commit constraints/ with the reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
