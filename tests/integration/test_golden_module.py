"""qdrant_golden against the Qdrant stub (brute-force search: its normal search is exact): drawn
into a 0600 file, checked clean, then a point's vector changed under it fails the check naming the
collection; check mode writes no file. The same against a real Qdrant, with a real index:
tests/e2e/test_golden_real_qdrant.py."""

from __future__ import annotations

import pytest
import yaml

from tests.support.collection import COLLECTION
from tests.support.playbook import run_module_task, run_playbook, task_results
from tests.support.qdrant_stub import QdrantStubServer, populate_demo


@pytest.fixture
def stub():
    with QdrantStubServer(peers=1, api_key="stub-secret-key") as server:
        populate_demo(server.state, points=30)
        yield server


def failing_task(tmp_path, options: dict) -> dict:
    playbook = tmp_path / "check.yml"
    task = {f"{COLLECTION}.qdrant_golden": options, "ignore_errors": True}
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    _, report = run_playbook(playbook, "-i", "localhost,", "-c", "local",
                             "-e", "ansible_python_interpreter={{ ansible_playbook_python }}")  # fmt: skip
    return task_results(report)["localhost"]


def test_drawn_checked_and_a_changed_vector_caught(stub, tmp_path):
    path = tmp_path / "golden.json"
    connection = {"url": [stub.url], "api_key": "stub-secret-key", "path": str(path)}
    checked_mode = run_module_task(tmp_path, "qdrant_golden", {**connection, "state": "drawn"}, "--check")
    assert not path.exists() and checked_mode["collections"]["cities"]["queries"] == 20
    drawn = run_module_task(tmp_path, "qdrant_golden", {**connection, "state": "drawn"})
    assert not drawn["changed"] and path.stat().st_mode & 0o777 == 0o600
    # `places` is payload only: nothing to search, so no queries, and nothing to fail.
    assert drawn["collections"] == {"cities": {"queries": 20, "source_recall": 1.0},
                                    "places": {"queries": 0, "source_recall": None}}  # fmt: skip
    clean = run_module_task(tmp_path, "qdrant_golden", {**connection, "state": "checked"})
    assert clean["problems"] == [] and clean["collections"]["cities"]["passed"]

    stub.state.points["cities"][29]["vector"] = [-29, -0.5, -0.25, -1]  # the data changed
    failed = failing_task(tmp_path, {**connection, "state": "checked"})
    assert failed["failed"] and failed["msg"].startswith("cities: exact search differs from the set")
    assert not failed["collections"]["cities"]["passed"]
    assert "stub-secret-key" not in str(failed)


def test_bad_options_are_named(stub, tmp_path):
    connection = {"url": [stub.url], "api_key": "stub-secret-key", "path": str(tmp_path / "g.json")}
    assert "draw them first" in failing_task(tmp_path, {**connection, "state": "checked"})["msg"]
    assert (
        "queries must be between 1 and 100"
        in failing_task(tmp_path, {**connection, "state": "drawn", "queries": 0})["msg"]
    )
    assert (
        "threshold must be a recall"
        in failing_task(tmp_path, {**connection, "state": "checked", "threshold": 2})["msg"]
    )
    assert (
        "there is no collection nope"
        in failing_task(tmp_path, {**connection, "state": "drawn", "collections": ["nope"]})["msg"]
    )
