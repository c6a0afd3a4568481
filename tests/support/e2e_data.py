"""Data and backups for the real-Qdrant end-to-end tests: a sharded, replicated collection with
deterministic points, and a backup set made the way every node's timer makes it."""

from __future__ import annotations

import random

from qdrant_ops import backup
from qdrant_ops.client import ClusterClient
from qdrant_ops.collections import ensure_collection
from qdrant_ops.s3 import S3Settings
from tests.support.s3 import TEST_CREDENTIALS

CITIES = {"name": "cities", "vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 6,
          "replication_factor": 2, "payload_indexes": {"city": "keyword"}}  # fmt: skip


def fill_cities(client: ClusterClient, points: int, seed: int = 7) -> None:
    ensure_collection(client, CITIES)
    rng = random.Random(seed)
    for start in range(0, points, 1000):
        batch = [
            {"id": i, "vector": [rng.random() for _ in range(8)], "payload": {"city": f"city-{i % 97}"}}
            for i in range(start, min(start + 1000, points))
        ]
        client.request("PUT", "/collections/cities/points", params={"wait": "true"}, json={"points": batch})


def backup_settings(s3_server, bucket: str, cluster: str = "e2e") -> backup.BackupSettings:
    return backup.BackupSettings(
        cluster=cluster,
        s3=S3Settings(
            bucket=bucket,
            endpoint_url=s3_server.endpoint_url,
            region=TEST_CREDENTIALS["region_name"],
            access_key=TEST_CREDENTIALS["aws_access_key_id"],
            secret_key=TEST_CREDENTIALS["aws_secret_access_key"],
        ),
    )


def backup_every_node(client, urls, settings, s3_client, backup_id: str) -> dict:
    """What each node's timer does, one node after the other; returns the last part."""
    part = {}
    for url in urls:
        part = backup.run_node_backup(client, url, settings, s3_client, backup_id=backup_id)
        assert part["status"] == "ok"
    return part
