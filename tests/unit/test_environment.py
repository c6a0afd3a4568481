"""The test environment itself: one owner per installed file, versions as locked, a lock refresh
that reports what moved."""

from __future__ import annotations

from collections import defaultdict
from importlib import metadata

from tests.support import lock


def test_no_two_installed_distributions_write_the_same_file():
    # python-hcl2 and checkov's bc-python-hcl2 both write hcl2/*.py: the files imported then
    # depend on install order. checkov has its own virtualenv for that reason (make checkov).
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for distribution in metadata.distributions():
        for file in distribution.files or []:
            path = str(file)
            if ".dist-info/" not in path and "__pycache__" not in path:
                owners[path].add(distribution.metadata["Name"])
    assert len(owners) > 1000, "the environment's file records could not be read"
    shared = {path: sorted(names) for path, names in owners.items() if len(names) > 1}
    assert not shared, f"installed by more than one distribution: {shared}"


def test_the_environment_is_the_locked_one():
    pinned = lock.pins((lock.CONSTRAINTS / "test.txt").read_text())
    installed = {lock.normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    assert {"pytest", "moto", "python-hcl2", "ansible-core", "boto3"} <= pinned.keys()
    drift = {
        name: (installed.get(name), version)
        for name, version in pinned.items()
        if installed.get(name) != version
    }
    assert not drift, f"installed vs locked (run make venv, or make lock to move the pins): {drift}"


def test_lock_reads_pins_and_reports_what_moved():
    text = "# header\nBoto3==1.44.18\nruamel.yaml==0.19.1\n-e /src\nmoto[server]>=5\n"
    assert lock.pins(text) == {"boto3": "1.44.18", "ruamel-yaml": "0.19.1"}
    assert lock.changes({}, {"a": "1"}) == ["- first lock: 1 packages pinned"]
    assert lock.changes({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "4", "d": "5"}) == [
        "- b: 2 -> 4",
        "- c: removed (was 3)",
        "- d: added 5",
    ]
