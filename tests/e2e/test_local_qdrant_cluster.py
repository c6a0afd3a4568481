"""A real 3-node Qdrant cluster from QDRANT_BINARY: every peer joined, one agreed leader."""

import pytest

pytestmark = pytest.mark.qdrant


def test_three_peers_agree_on_a_leader(qdrant_cluster):
    statuses = [qdrant_cluster.cluster_status(node) for node in qdrant_cluster.nodes]
    assert all(status["status"] == "enabled" for status in statuses)
    assert all(len(status["peers"]) == 3 for status in statuses)
    assert len({status["raft_info"]["leader"] for status in statuses}) == 1
    uris = {peer["uri"].rstrip("/") for peer in statuses[0]["peers"].values()}
    assert uris == {node.p2p_uri for node in qdrant_cluster.nodes}


def test_restarted_node_rejoins_from_raft_state(qdrant_cluster):
    node = qdrant_cluster.nodes[2]
    peer_id = qdrant_cluster.cluster_status(node)["peer_id"]
    qdrant_cluster.restart_node(node)
    assert qdrant_cluster.cluster_status(node)["peer_id"] == peer_id
