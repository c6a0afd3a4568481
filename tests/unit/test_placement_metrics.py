"""The placement textfile every node's qdrant-placement.timer writes: shards below their own
collection's replication factor (QdrantReplicationBelowTarget reads it per collection)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from qdrant_ops.cluster import zone_metrics
from qdrant_ops.cluster.health import shards_below_factor


def replica(shard: int, peer: int, state: str = "Active") -> dict:
    return {"shard_id": shard, "peer_id": peer, "state": state}


def test_a_shard_is_below_when_fewer_replicas_are_active_than_its_collection_asks():
    placement = [replica(0, 1), replica(0, 2), replica(1, 1), replica(1, 3, "Dead"), replica(2, 2, "Partial")]
    assert shards_below_factor(placement, 2) == [1, 2]
    assert shards_below_factor([replica(0, 1), replica(1, 2)], 1) == []  # factor 1 is its own target
    assert shards_below_factor([replica(0, 1, "Dead")], None) == [0]


def test_the_textfile_has_one_figure_per_collection(tmp_path):
    overview = {
        "peers": [{"id": 1}, {"id": 2}],
        "collections": [
            {"name": "cities", "replication_factor": 2, "replicas": [replica(0, 1), replica(0, 2, "Dead")]},
            {"name": "scratch", "replication_factor": 1, "replicas": [replica(0, 1)]},
        ],
    }
    path = tmp_path / "placement.prom"
    zone_metrics.write_textfile(path, overview, {})
    below = {
        s.labels["collection"]: s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
        if s.name == zone_metrics.BELOW
    }
    assert below == {"cities": 1, "scratch": 0}
