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


def test_module_spreads_replicas_over_the_zones_and_cluster_info_reports_them(grown, tmp_path):
    """Zones keyed by URL (the stub answers as peer 1000) and by peer id, as qdrant_node_zones and
    a hand-written inventory give them; shards 0 and 3 start with both replicas in zone a."""
    zones = {grown.url: "a", "1001": "a", "1002": "b", "1003": "b"}
    connection = {"url": [grown.url], "api_key": "stub-secret-key", "zones": zones}
    before = run_module_task(tmp_path, "qdrant_cluster_info", connection)
    assert before["shared_zones"]["avoidable"] == ["cities shard 0: 2 in a", "cities shard 3: 2 in a"]
    assert {p["id"]: p["zone"] for p in before["peers"]} == {1000: "a", 1001: "a", 1002: "b", 1003: "b"}
    done = run_module_task(tmp_path, "qdrant_rebalance", connection)
    assert done["changed"]
    after = run_module_task(tmp_path, "qdrant_cluster_info", connection)
    assert after["shared_zones"] == {"avoidable": [], "too_few_zones": []}
    assert not run_module_task(tmp_path, "qdrant_rebalance", connection)["changed"]
