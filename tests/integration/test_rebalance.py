"""The qdrant_rebalance module run by ansible-playbook against the REST stub (planning and the
CLI: tests/unit/test_rebalance.py)."""

from __future__ import annotations

from tests.support.playbook import run_module_task

# -- execution against the stub ----------------------------------------------------------------------


def test_module_changed_and_check_mode(grown, tmp_path):
    task = {"url": [grown.url], "api_key": "stub-secret-key"}

    def run(*flags):
        return run_module_task(tmp_path, "qdrant_rebalance", task, *flags)

    checked = run("--check")
    assert checked["changed"] and checked["moves"] == 3 and grown.state.replications == []
    assert run()["moves"] == 3
    assert not run()["changed"]


def test_module_drains_then_removes_the_peer(grown, tmp_path):
    task = {"url": [grown.url], "api_key": "stub-secret-key", "drain": 1002, "remove_drained": True}

    def run(*flags):
        return run_module_task(tmp_path, "qdrant_rebalance", task, *flags)

    checked = run("--check")
    assert checked["changed"] and checked["removed_peer"] and checked["drained_peer"] == 1002
    assert 1002 in grown.state.peer_ids and grown.state.replications == []
    done = run()
    assert done["changed"] and done["removed_peer"] and done["moves"] > 0
    assert 1002 not in grown.state.peer_ids
    assert all(r["peer_id"] != 1002 for r in grown.state.replicas("cities"))
    again = run()  # the peer is gone and nothing is left to move
    assert not again["changed"] and again["removed_peer"] is False
