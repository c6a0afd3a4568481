"""Replacing a dead node with a real Qdrant (QDRANT_BINARY), the steps of playbooks/replace_node.yml
through the same library: kill a node, remove its peer with force, start an empty node with
--bootstrap, replicate every shard back to its factor onto it, and lose no point."""

from __future__ import annotations

import dataclasses

import pytest

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import replicas
from qdrant_ops.cluster.health import shard_placement
from tests.support.e2e_data import fill_cities

pytestmark = pytest.mark.qdrant
POINTS = 20_000


def test_replace_a_killed_node(qdrant_cluster, tmp_path):
    cluster = qdrant_cluster
    dead = cluster.nodes[2]
    with ClusterClient(cluster.urls[:2], cluster.api_key, retries=5, backoff=0.5, timeout=120) as client:
        fill_cities(client, POINTS)
        dead_peer = int(cluster.cluster_status(dead)["peer_id"])
        cluster.stop_node(dead)

        assert replicas.remove_peer(client, dead_peer)
        replacement = dataclasses.replace(dead, workdir=tmp_path / "replacement", process=None)
        cluster.nodes[2] = replacement
        cluster.start_node(replacement, bootstrap_uri=cluster.nodes[0].p2p_uri)
        cluster.wait_for_cluster()
        new_peer = int(cluster.cluster_status(replacement)["peer_id"])
        assert new_peer != dead_peer

        _, done = replicas.repair(client, replicas.RepairOptions(prefer=new_peer))

        assert done and {item.to_peer for item in done} == {new_peer}
        placement = shard_placement(client.collection_cluster("cities"))
        assert {r["state"] for r in placement} == {"Active"}
        per_shard = {}
        for replica in placement:
            per_shard.setdefault(replica["shard_id"], set()).add(replica["peer_id"])
        assert len(per_shard) == 6 and all(len(peers) == 2 for peers in per_shard.values())
        assert client.count_points("cities") == POINTS
        assert replicas.repair(client, replicas.RepairOptions()) == ([], [])  # nothing left to do
