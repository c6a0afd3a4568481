"""Data and backups for the real-Qdrant end-to-end tests: a sharded, replicated collection with
deterministic points, and a backup set made the way every node's timer makes it."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from qdrant_client import QdrantClient

from qdrant_ops.backup import model, node_part, seal
from qdrant_ops.backup.s3 import S3Settings
from qdrant_ops.client import ClusterClient, QdrantOpsError
from qdrant_ops.cluster.collections import ensure_collection
from qdrant_ops.cluster.health import shard_placement
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


def count_reader(
    client: ClusterClient, collection: str, expected: int, stopped: Callable[[], bool], failures: list[str]
) -> threading.Thread:
    """A thread (not started) that counts the collection until `stopped()`, recording every read
    that fails or finds another count in `failures`."""

    def read() -> None:
        while not stopped():
            try:
                assert client.count_points(collection) == expected
            except (QdrantOpsError, AssertionError) as exc:
                failures.append(str(exc))

    return threading.Thread(target=read)


def backup_settings(s3_server, bucket: str, cluster: str = "e2e") -> model.BackupSettings:
    return model.BackupSettings(
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
    """What each node's timer does, one node after the other, then the sealer's run on the
    monitoring host (members: the nodes started); returns the last part."""
    part, members = {}, []
    for url in urls:
        part = node_part.run_node_backup(client, url, settings, s3_client, backup_id=backup_id)
        assert part["status"] == "ok"
        members.append(part["node"])
    result = seal.seal_set(s3_client, settings, backup_id, tuple(members), datetime.now(UTC))
    assert result["sealed"], result["problems"]
    return part


# -- a realistic size for restores: 384-d vectors, 6 shards, replication factor 2 -----------------
VECTORS = {"name": "vectors", "vectors": {"size": 384, "distance": "Dot"}, "shard_number": 6,
           "replication_factor": 2, "payload_indexes": {"city": "keyword"}}  # fmt: skip
# Dot, not Cosine: Qdrant stores Dot vectors as given, so a scan compares them bit for bit.


def vector_rows(count: int, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).random((count, VECTORS["vectors"]["size"]), dtype=np.float32)


def payload_of(point_id: int) -> dict:
    return {"city": f"city-{point_id % 97}", "n": point_id}


def grpc_client(cluster, node: int = 0) -> QdrantClient:
    target = cluster.nodes[node]
    return QdrantClient(host=target.host, port=target.http_port, grpc_port=target.grpc_port, prefer_grpc=True,
                        api_key=cluster.api_key, https=False, timeout=300)  # fmt: skip


def fill_vectors(client: ClusterClient, cluster, count: int) -> None:
    """`count` points of VECTORS over gRPC (the fast path; the data is the test's, not the subject)."""
    ensure_collection(client, VECTORS)
    rows = vector_rows(count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # api key over plain http: loopback only
        uploader = grpc_client(cluster)
        uploader.upload_collection(
            "vectors", vectors=rows, payload=(payload_of(i) for i in range(count)), ids=range(count),
            batch_size=512, parallel=1, wait=True,
        )  # fmt: skip
        uploader.close()
    assert client.count_points("vectors") == count


def full_scan_differences(cluster, count: int, collection: str = "vectors") -> list[str]:
    """Every point of the collection against the generated source: ids, payloads, vectors."""
    expected = vector_rows(count)
    seen = np.zeros(count, dtype=bool)
    problems: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = grpc_client(cluster)
        offset = None
        for _ in range(count // 2000 + 2):  # bounded: one page more than the points need
            points, offset = reader.scroll(collection, limit=2000, offset=offset, with_payload=True,
                                           with_vectors=True)  # fmt: skip
            for point in points:
                pid = int(point.id)
                if not 0 <= pid < count or seen[pid]:
                    problems.append(f"unexpected or repeated id {pid}")
                    continue
                seen[pid] = True
                if point.payload != payload_of(pid):
                    problems.append(f"payload of {pid} differs")
                if not np.array_equal(np.asarray(point.vector, dtype=np.float32), expected[pid]):
                    problems.append(f"vector of {pid} differs")
            if offset is None:
                break
        reader.close()
    missing = np.flatnonzero(~seen)
    if len(missing):
        problems.append(f"{len(missing)} point(s) missing, e.g. {missing[:5].tolist()}")
    return problems[:20]


def placement_problems(client: ClusterClient, collection: str) -> list[str]:
    """Every replica Active, replication factor met, and replicas per peer within one of each other."""
    status = client.cluster_status()
    peers = [int(p) for p in status["peers"]]
    placement = shard_placement(client.collection_cluster(collection))
    problems = [
        f"shard {r['shard_id']} on {r['peer_id']}: {r['state']}" for r in placement if r["state"] != "Active"
    ]
    info = client.collection_info(collection)["config"]["params"]
    for shard in range(info["shard_number"]):
        holders = [r for r in placement if r["shard_id"] == shard]
        if len(holders) != info["replication_factor"]:
            problems.append(f"shard {shard} has {len(holders)} replica(s), not {info['replication_factor']}")
    load = Counter({peer: 0 for peer in peers})
    load.update(r["peer_id"] for r in placement)
    if max(load.values()) - min(load.values()) > 1:
        problems.append(f"unbalanced: replicas per peer {dict(load)}")
    return problems


# -- the warm standby's collection `docs` (tests/e2e/test_standby*.py) --------------------------------
def upsert(client: ClusterClient, ids, seed: int, collection: str = "docs") -> None:
    ids = list(ids)
    rng = np.random.default_rng(seed)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        vectors = rng.random((len(chunk), 64), dtype=np.float32)
        points = [{"id": i, "vector": v.tolist(), "payload": {"city": f"c{i % 50}", "seed": seed}}
                  for i, v in zip(chunk, vectors, strict=True)]  # fmt: skip
        path = f"/collections/{collection}/points"
        client.request("PUT", path, params={"wait": "true"}, json={"points": points})


def fingerprints(client: ClusterClient, collection: str = "docs") -> dict[int, str]:
    """Every point's id -> hash of its payload and vector (a full scan)."""
    found, offset = {}, None
    for _ in range(1000):  # bounded: far more pages than the points need
        body = {
            "limit": 2000,
            "with_payload": True,
            "with_vector": True,
            **({"offset": offset} if offset else {}),
        }
        page = client.request("POST", f"/collections/{collection}/points/scroll", json=body)
        for point in page["points"]:
            canonical = json.dumps([point["payload"], point["vector"]], sort_keys=True)
            found[point["id"]] = hashlib.sha256(canonical.encode()).hexdigest()
        offset = page.get("next_page_offset")
        if offset is None:
            return found
    raise AssertionError("scroll did not end")


def replica_manifests(client: ClusterClient, urls, collection: str = "docs") -> dict[int, dict[str, str]]:
    """Shard -> node -> its replica's partial snapshot manifest (segments and their versions)."""
    found: dict[int, dict[str, str]] = {}
    for url in urls:
        for shard in client.collection_cluster(collection, node=url)["local_shards"]:
            path = f"/collections/{collection}/shards/{shard['shard_id']}/snapshot/partial/manifest"
            manifest = client.get(path, node=url)
            found.setdefault(shard["shard_id"], {})[url] = json.dumps(manifest, sort_keys=True)
    return found
