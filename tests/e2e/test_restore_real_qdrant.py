"""Restore with a real Qdrant (QDRANT_BINARY) from a set in S3 (moto server), at a size where shard
recoveries and the transfers they start take long enough to race: 200,000 points x 384-d, 6
shards, replication factor 2. One backup of a 3-node cluster, restored into (a) the same cluster
after its collection was deleted, and over it (overwrite: downloaded and checked here first), (b) a
new empty 3-node cluster, (c) a new 4-node cluster, the nodes fetching from S3 themselves; each
compared point by point with the source (every id, payload and vector) and its placement checked
(every replica Active, replicas per peer within one). A damaged object is refused with the
cluster untouched."""

from __future__ import annotations

import os
import time

import pytest

from qdrant_ops.backup import catalog, restore
from qdrant_ops.client import ClusterClient
from tests.support.backup_fixtures import corrupt_one_object
from tests.support.e2e_data import (
    backup_every_node,
    backup_settings,
    fill_vectors,
    full_scan_differences,
    placement_problems,
)
from tests.support.forgery import forge_set
from tests.support.qdrant_cluster import LocalQdrantCluster

pytestmark = pytest.mark.qdrant
POINTS = int(os.environ.get("E2E_RESTORE_POINTS", "200000"))
BACKUP_ID = "20261124T000000Z"
FORGED_ID = "20261125T000000Z"


def client_of(cluster: LocalQdrantCluster) -> ClusterClient:
    return ClusterClient(cluster.urls, cluster.api_key, retries=3, backoff=0.2, timeout=120)


@pytest.fixture(scope="module")
def source(qdrant_binary, tmp_path_factory, s3_server):
    """A 3-node cluster holding the data, and its backup set in a bucket of its own."""
    s3_client = s3_server.client()
    bucket = "qdrant-ops-e2e-restore"
    s3_client.create_bucket(Bucket=bucket)
    settings = backup_settings(s3_server, bucket)
    with LocalQdrantCluster(
        qdrant_binary, tmp_path_factory.mktemp("source"), size=3, api_key="k1"
    ) as cluster:
        with client_of(cluster) as client:
            fill_vectors(client, cluster, POINTS)
            started = time.monotonic()
            backup_every_node(client, cluster.urls, settings, s3_client, BACKUP_ID)
            manifest = catalog.set_manifest(s3_client, settings, BACKUP_ID).to_dict()  # as --json shows it
            # One node forges a newer set, complete by its own part alone (issue 33, reproduction 1):
            # every default restore below must still bring back the sealed set, point for point.
            node = manifest["collections"]["vectors"]["shards"]["0"]["node"]
            layout = settings.layout
            forge_set(
                s3_client,
                s3_client,
                bucket,
                layout.cluster_prefix(),
                node=node,
                genuine_id=BACKUP_ID,
                forged_id=FORGED_ID,
            )
            assert catalog.set_manifest(s3_client, settings, FORGED_ID).status == "unsealed"
            print(
                f"\nbackup of {POINTS} x 384: {manifest['bytes']} bytes in {time.monotonic() - started:.1f}s"
            )
        yield cluster, settings, s3_client, manifest


def restore_into(cluster: LocalQdrantCluster, settings, s3_client, staging, **options) -> dict:
    with client_of(cluster) as client:
        chosen = restore.RestoreOptions(nodes=tuple(cluster.urls), staging_dir=staging, **options)
        report = restore.restore(client, s3_client, settings, chosen)
        assert report["problems"] == []
        assert client.count_points("vectors") == POINTS
        assert placement_problems(client, "vectors") == []
        info = client.collection_info("vectors")
        assert info["config"]["params"]["shard_number"] == 6
        assert info["config"]["params"]["replication_factor"] == 2
        assert info["payload_schema"]["city"]["data_type"] == "keyword"
    assert full_scan_differences(cluster, POINTS) == []
    assert list(staging.rglob("*.snapshot")) == []  # staging cleaned up
    print(f"\nrestore into {len(cluster.nodes)} nodes: {report['seconds']}s "
          f"(download {report['download_seconds']}s, recover {report['recover_seconds']}s)")  # fmt: skip
    return report


def test_the_set_holds_each_shard_once(source):
    _, _, _, manifest = source
    view = manifest["collections"]["vectors"]
    assert manifest["format"] == 4 and manifest["status"] == "complete"
    assert sorted(view["shards"], key=int) == [str(s) for s in range(6)]
    assert view["points_exact"] == POINTS


def test_a_same_cluster_after_deleting_the_collection(source, tmp_path):
    cluster, settings, s3_client, _ = source
    with client_of(cluster) as client:
        client.request("DELETE", "/collections/vectors", params={"wait": "true"})
    report = restore_into(cluster, settings, s3_client, tmp_path)
    assert report["fetch_by"] == "nodes"  # each node fetched its shards through presigned URLs


def test_a_same_cluster_over_the_existing_collection(source, tmp_path):
    """overwrite: this host downloads and checks the whole set before the collection is deleted."""
    cluster, settings, s3_client, _ = source
    report = restore_into(cluster, settings, s3_client, tmp_path, overwrite=True)
    assert report["fetch_by"] == "restorer" and report["replace"] == ["vectors"]


@pytest.mark.parametrize("size", [3, 4], ids=["b-new-3-nodes", "c-new-4-nodes"])
def test_new_empty_cluster(source, qdrant_binary, tmp_path, size):
    _, settings, s3_client, _ = source
    with LocalQdrantCluster(qdrant_binary, tmp_path / "new", size=size, api_key="other-key") as new:
        with client_of(new) as client:
            assert client.collection_names() == []
        restore_into(new, settings, s3_client, tmp_path / "staging")


def test_damaged_object_refused_and_cluster_untouched(source, qdrant_binary, tmp_path):
    # Last in the module: it damages the shared set.
    _, settings, s3_client, _ = source
    corrupt_one_object(s3_client, settings.s3.bucket, suffix="/vectors/")
    with (
        LocalQdrantCluster(qdrant_binary, tmp_path / "new", size=3, api_key="k3") as new,
        client_of(new) as client,
    ):
        with pytest.raises(restore.RestoreError, match="checksum mismatch"):
            chosen = restore.RestoreOptions(nodes=tuple(new.urls), staging_dir=tmp_path / "staging")
            restore.restore(client, s3_client, settings, chosen)
        assert client.collection_names() == []
    assert list((tmp_path / "staging").rglob("*.snapshot*")) == []
