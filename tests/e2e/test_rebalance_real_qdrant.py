"""Scale out and in with a real Qdrant (QDRANT_BINARY): grow 3 -> 4 nodes while a writer upserts
and a reader counts, rebalance, exact counts and no failed read; then drain the fourth node and
remove its peer, with the same checks."""

from __future__ import annotations

import argparse
import dataclasses
import threading
from collections import Counter

import pytest

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import rebalance
from qdrant_ops.cluster.health import shard_placement
from tests.support import rolling_writer
from tests.support.e2e_data import count_reader, fill_cities
from tests.support.qdrant_cluster import ADDRESS_PREFIX

pytestmark = pytest.mark.qdrant
POINTS = 20_000


def balanced(client: ClusterClient, peers: set[int]) -> bool:
    load = Counter({p: 0 for p in peers})
    load.update(r["peer_id"] for r in shard_placement(client.collection_cluster("cities")))
    return set(load) == peers and max(load.values()) - min(load.values()) <= 1


def test_grow_rebalance_then_drain_under_load(qdrant_cluster, tmp_path):
    cluster = qdrant_cluster
    with ClusterClient(cluster.urls, cluster.api_key, retries=5, backoff=0.5, timeout=120) as client:
        fill_cities(client, POINTS)
        template = cluster.nodes[0]
        fourth = dataclasses.replace(template, index=3, host=f"{ADDRESS_PREFIX}4", workdir=tmp_path / "node3",
                                     process=None)  # fmt: skip
        cluster.nodes.append(fourth)
        cluster.start_node(fourth, bootstrap_uri=template.p2p_uri)
        cluster.wait_for_cluster()
        new_peer = int(cluster.cluster_status(fourth)["peer_id"])

        stop = tmp_path / "stop"
        acked = str(tmp_path / "acked.json")
        args = argparse.Namespace(collection="writes", acked=acked, stop_file=str(stop),
                                  max_seconds=600, max_points=200_000)  # fmt: skip
        failed_reads: list[str] = []
        workers = [
            threading.Thread(target=rolling_writer.write, args=(client, args)),
            count_reader(client, "cities", POINTS, stop.exists, failed_reads),
        ]
        for worker in workers:
            worker.start()
        try:
            rebalance.rebalance(client, rebalance.RebalanceOptions())
            peers = {int(p) for p in client.cluster_status()["peers"]}
            assert new_peer in peers and balanced(client, peers)

            with pytest.raises(rebalance.RebalanceError, match="still holds replicas"):
                rebalance.remove_drained(client, new_peer)  # refused before the drain, nothing removed
            plan, removed = rebalance.drain_and_remove(
                client, rebalance.RebalanceOptions(drain=rebalance.peer_of(client, fourth.url))
            )
            assert plan and removed and new_peer not in {int(p) for p in client.cluster_status()["peers"]}
            assert balanced(client, peers - {new_peer})
        finally:
            stop.touch()
            for worker in workers:
                worker.join(timeout=120)
        cluster.stop_node(fourth)
        cluster.nodes.remove(fourth)

        assert failed_reads == []
        assert client.count_points("cities") == POINTS
        assert rolling_writer.verify(client, args) == 0  # every acknowledged write is there
