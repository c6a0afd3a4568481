"""The qdrant_replicas module run by ansible-playbook against the REST stub: changed and check mode
are accurate (the plan and the CLI: tests/unit/test_replicas.py)."""

from __future__ import annotations

from tests.support.playbook import run_module_task


# -- the qdrant_replicas module (replace_node.yml's steps) against the stub -----------------------------
def run_module(tmp_path, qdrant_stub, *flags: str, **options) -> dict:
    options = {"url": [qdrant_stub.url], "api_key": "stub-secret-key", **options}
    return run_module_task(tmp_path, "qdrant_replicas", options, *flags)


def test_module_removes_then_refills_with_accurate_changed_and_check_mode(
    replacement_joined, qdrant_stub, tmp_path
):
    planned = run_module(tmp_path, qdrant_stub, "--check", remove_peers=[1002], prefer_peer=1003)
    assert planned["changed"] and len(planned["replications"]) == 4 and 1002 in qdrant_stub.state.peer_ids

    removed = run_module(tmp_path, qdrant_stub, remove_peers=[1002], replicate=False)
    assert removed["changed"] and removed["removed_peers"] == [1002] and removed["replications"] == []
    assert qdrant_stub.state.replications == []  # only removed: the replicas wait for the new node

    refilled = run_module(tmp_path, qdrant_stub, remove_peers=[1002], prefer_peer=1003)
    assert refilled["changed"] and refilled["removed_peers"] == []
    assert {r["to_peer"] for r in refilled["replications"]} == {1003} and len(refilled["replications"]) == 4

    again = run_module(tmp_path, qdrant_stub, remove_peers=[1002], prefer_peer=1003)
    assert not again["changed"]
