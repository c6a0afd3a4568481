"""A backup set of a real 3-node Qdrant cluster (QDRANT_BINARY) in S3 (moto server): a collection
with 6 shards and replication factor 2 holding 20k points; every node's part, one snapshot of each
shard from a node holding it, a complete set, exact counts, and no snapshot file left on any node."""

from __future__ import annotations

import pytest

from qdrant_ops.backup import catalog
from qdrant_ops.client import ClusterClient
from tests.support.e2e_data import backup_every_node, backup_settings, fill_cities

pytestmark = pytest.mark.qdrant
POINTS = 20_000


def test_complete_set_with_exact_counts(qdrant_cluster, s3_server, s3_client, s3_bucket):
    with ClusterClient(qdrant_cluster.urls, qdrant_cluster.api_key, retries=3, backoff=0.2) as client:
        fill_cities(client, POINTS)
        settings = backup_settings(s3_server, s3_bucket)
        part = backup_every_node(client, qdrant_cluster.urls, settings, s3_client, "20261124T000000Z")
        assert part["set_status"] == "unsealed"  # every part in; backup_every_node then sealed it

        manifest = catalog.set_manifest(s3_client, settings, "20261124T000000Z").to_dict()
        assert manifest["status"] == "complete", manifest["problems"]
        cities = manifest["collections"]["cities"]
        assert cities["points_exact"] == POINTS
        assert manifest["format"] == 4 and len(manifest["peers"]) == 3
        assert len(cities["placement"]) == 12  # 6 shards x 2 replicas
        assert sorted(cities["shards"], key=int) == [str(s) for s in range(6)]  # each shard once
        for shard, record in cities["shards"].items():
            holders = {r["peer_id"] for r in cities["placement"] if r["shard_id"] == int(shard)}
            assert record["peer_id"] in holders
        assert {r["state"] for r in cities["placement"]} == {"Active"}
        assert len(cities["sample"]) == 32
        stored = cities["golden"]  # drawn from its own points, each with its exact top-10
        assert len(stored["queries"]) == 20 and all(len(q["exact"]) == 10 for q in stored["queries"])
        assert 0 < stored["source_recall"] <= 1
        assert manifest["qdrant_version"] == client.version()
        for url in qdrant_cluster.urls:
            local = client.collection_cluster("cities", node=url)["local_shards"]
            for shard in local:
                assert client.get(f"/collections/cities/shards/{shard['shard_id']}/snapshots", node=url) == []
