"""A backup set of a real 3-node Qdrant cluster (QDRANT_BINARY) in S3 (moto server): a collection
with 6 shards and replication factor 2 holding 20k points; every node's part, a complete set,
exact counts, and no snapshot file left on any node."""

from __future__ import annotations

import random

import pytest

from qdrant_ops import backup
from qdrant_ops.client import ClusterClient
from qdrant_ops.collections import ensure_collection
from qdrant_ops.s3 import S3Settings
from tests.support.s3 import TEST_CREDENTIALS

pytestmark = pytest.mark.qdrant
POINTS = 20_000


def test_complete_set_with_exact_counts(qdrant_cluster, s3_server, s3_client, s3_bucket):
    with ClusterClient(qdrant_cluster.urls, qdrant_cluster.api_key, retries=3, backoff=0.2) as client:
        ensure_collection(
            client,
            {"name": "cities", "vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 6,
             "replication_factor": 2, "payload_indexes": {"city": "keyword"}},
        )  # fmt: skip
        rng = random.Random(7)
        for start in range(0, POINTS, 1000):
            batch = [
                {"id": i, "vector": [rng.random() for _ in range(8)], "payload": {"city": f"city-{i % 97}"}}
                for i in range(start, start + 1000)
            ]
            client.request(
                "PUT", "/collections/cities/points", params={"wait": "true"}, json={"points": batch}
            )
        settings = backup.BackupSettings(
            cluster="e2e",
            s3=S3Settings(
                bucket=s3_bucket,
                endpoint_url=s3_server.endpoint_url,
                region=TEST_CREDENTIALS["region_name"],
                access_key=TEST_CREDENTIALS["aws_access_key_id"],
                secret_key=TEST_CREDENTIALS["aws_secret_access_key"],
            ),
        )
        for url in qdrant_cluster.urls:  # what each node's timer does
            part = backup.run_node_backup(client, url, settings, s3_client, backup_id="20261124T000000Z")
            assert part["status"] == "ok"
        assert part["set_status"] == "complete"

        manifest = backup.show_set(s3_client, settings, "20261124T000000Z")
        assert manifest["status"] == "complete", manifest["problems"]
        cities = manifest["collections"]["cities"]
        assert cities["points_exact"] == POINTS
        assert len(cities["nodes"]) == 3 and len(manifest["peers"]) == 3
        assert len(cities["placement"]) == 12  # 6 shards x 2 replicas
        assert {r["state"] for r in cities["placement"]} == {"Active"}
        assert len(cities["sample"]) == 32
        assert manifest["qdrant_version"] == client.version()
        for url in qdrant_cluster.urls:
            assert client.get("/collections/cities/snapshots", node=url) == []
