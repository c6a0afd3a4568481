"""Restore with a real Qdrant (QDRANT_BINARY) from a set in S3 (moto server): into the same
cluster after every collection was deleted, into a new empty 3-node cluster, and a damaged object
refused with the cluster untouched. The collection has 6 shards, replication factor 2."""

from __future__ import annotations

import pytest

from qdrant_ops import restore
from qdrant_ops.client import ClusterClient
from tests.support.e2e_data import backup_every_node, backup_settings, fill_cities
from tests.support.qdrant_cluster import LocalQdrantCluster
from tests.unit.test_restore import corrupt_one_object

pytestmark = pytest.mark.qdrant
POINTS = 20_000
BACKUP_ID = "20261124T000000Z"


def targets(cluster: LocalQdrantCluster) -> list[restore.Target]:
    return [restore.Target(node.url, node.workdir / "snapshots") for node in cluster.nodes]


def client_of(cluster: LocalQdrantCluster) -> ClusterClient:
    return ClusterClient(cluster.urls, cluster.api_key, retries=3, backoff=0.2)


@pytest.fixture
def backed_up(qdrant_cluster, s3_server, s3_client, s3_bucket):
    settings = backup_settings(s3_server, s3_bucket)
    with client_of(qdrant_cluster) as client:
        fill_cities(client, POINTS)
        backup_every_node(client, qdrant_cluster.urls, settings, s3_client, BACKUP_ID)
    return qdrant_cluster, settings


def test_same_cluster_after_deleting_every_collection(backed_up, s3_client):
    cluster, settings = backed_up
    with client_of(cluster) as client:
        client.request("DELETE", "/collections/cities", params={"wait": "true"})
        report = restore.restore(client, s3_client, settings, targets(cluster))
        assert report["problems"] == [] and report["collections"] == ["cities"]
        assert client.count_points("cities") == POINTS
        for node in cluster.nodes:
            assert not (node.workdir / "snapshots" / restore.RESTORE_DIR / BACKUP_ID).exists()


def test_new_empty_cluster(backed_up, s3_client, qdrant_binary, tmp_path):
    _, settings = backed_up
    new = LocalQdrantCluster(qdrant_binary, tmp_path / "new", size=3, api_key="other-key")
    with new, client_of(new) as client:
        assert client.collection_names() == []
        report = restore.restore(client, s3_client, settings, targets(new))
        assert report["problems"] == []
        assert client.count_points("cities") == POINTS
        info = client.collection_info("cities")
        assert info["config"]["params"]["shard_number"] == 6
        assert info["payload_schema"]["city"]["data_type"] == "keyword"


def test_damaged_object_refused_and_cluster_untouched(backed_up, s3_client, s3_bucket):
    cluster, settings = backed_up
    corrupt_one_object(s3_client, s3_bucket, suffix="/cities/")
    with client_of(cluster) as client:
        client.request("DELETE", "/collections/cities", params={"wait": "true"})
        with pytest.raises(restore.RestoreError, match="checksum mismatch"):
            restore.restore(client, s3_client, settings, targets(cluster))
        assert client.collection_names() == []
        for node in cluster.nodes:
            assert list((node.workdir / "snapshots").rglob("*.snapshot")) == []
