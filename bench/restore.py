"""Restore against re-ingest, with a real Qdrant (QDRANT_BINARY), in one run.

A 3-node cluster (127.77.0.x) holds a collection of N points (6 shards, replication factor 2);
it is backed up to S3 (a moto server here, or s3s-fs). Then, interleaved per round:
  restore:  delete the collection, `qdrant_ops.restore.restore` (download, verify sha256,
            recover node by node, wait green, verify counts and samples);
  reingest: delete the collection, create it empty with the same config, upload the same points
            with qdrant-client over gRPC (upload_points, parallel workers), wait until green.
Prints both times and restore_seconds / reingest_seconds (target <= 0.25).

    QDRANT_BINARY=/path/to/qdrant .venv/bin/python bench/restore.py [--points 200000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qdrant_client import QdrantClient, models

from qdrant_ops import restore
from qdrant_ops.client import ClusterClient
from qdrant_ops.collections import ensure_collection
from qdrant_ops.s3 import make_client
from tests.support.e2e_data import backup_every_node, backup_settings
from tests.support.qdrant_cluster import LocalQdrantCluster
from tests.support.s3 import MotoServer

DIM = 128
SPEC = {
    "name": "bench",
    "vectors": {"size": DIM, "distance": "Cosine"},
    "shard_number": 6,
    "replication_factor": 2,
}


def points(count: int, seed: int = 11):
    rng = random.Random(seed)
    for i in range(count):
        yield models.PointStruct(id=i, vector=[rng.random() for _ in range(DIM)], payload={"group": i % 1000})


def wait_green(client: ClusterClient, count: int) -> None:
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        info = client.collection_info("bench") or {}
        if info.get("status") == "green" and client.count_points("bench") == count:
            return
        time.sleep(0.5)
    raise SystemExit("the collection did not become green with every point within an hour")


def reingest(client: ClusterClient, cluster: LocalQdrantCluster, count: int, workers: int) -> float:
    client.request("DELETE", "/collections/bench", params={"wait": "true"})
    started = time.monotonic()
    ensure_collection(client, SPEC)
    node = cluster.nodes[0]
    grpc = QdrantClient(host=node.host, port=node.http_port, grpc_port=node.grpc_port, prefer_grpc=True,
                        api_key=cluster.api_key, https=False, timeout=300)  # fmt: skip
    grpc.upload_points("bench", points(count), batch_size=256, parallel=workers, wait=True)
    wait_green(client, count)
    return time.monotonic() - started


def restore_once(client, cluster, s3_client, settings, count: int) -> float:
    client.request("DELETE", "/collections/bench", params={"wait": "true"})
    targets = [restore.Target(node.url, node.workdir / "snapshots") for node in cluster.nodes]
    started = time.monotonic()
    report = restore.restore(client, s3_client, settings, targets)
    assert report["problems"] == [] and client.count_points("bench") == count
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="qdrant-client upload workers"
    )
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BINARY")
    if not binary:
        raise SystemExit("bench/restore.py needs a real Qdrant: set QDRANT_BINARY=/path/to/qdrant")

    with tempfile.TemporaryDirectory() as tmp:
        server = MotoServer().start()
        cluster = LocalQdrantCluster(binary, Path(tmp) / "qdrant", size=3, api_key="bench-key")
        try:
            with (
                cluster,
                ClusterClient(cluster.urls, cluster.api_key, retries=5, backoff=0.5, timeout=300) as client,
            ):
                s3_client = server.client()
                s3_client.create_bucket(Bucket="bench")
                settings = backup_settings(server, "bench", cluster="bench")
                reingest(client, cluster, args.points, args.workers)  # the data, and a warm-up
                backup_every_node(
                    client, cluster.urls, settings, make_client(settings.s3), "20261124T000000Z"
                )
                times: dict[str, list[float]] = {"restore": [], "reingest": []}
                for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both
                    times["restore"].append(restore_once(client, cluster, s3_client, settings, args.points))
                    times["reingest"].append(reingest(client, cluster, args.points, args.workers))
        finally:
            server.stop()

    best = {name: min(values) for name, values in times.items()}
    print(f"points {args.points} x {DIM}-d, 6 shards, replication factor 2, 3 nodes; best of {args.rounds}")
    print(f"restore_seconds  {best['restore']:8.2f}")
    print(
        f"reingest_seconds {best['reingest']:8.2f}  "
        f"(qdrant-client gRPC upload_points, {args.workers} workers)"
    )
    print(f"restore_seconds / reingest_seconds = {best['restore'] / best['reingest']:.3f}  (target <= 0.25)")


if __name__ == "__main__":
    main()
