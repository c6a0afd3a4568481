"""Restore against re-ingest, with a real Qdrant (QDRANT_BINARY), in one run.

A 3-node cluster (127.77.0.x) holds a collection of N points x 384-d (6 shards, replication factor
2); it is backed up to S3 (a moto server on loopback). Then, interleaved per round:
  restore:  delete the collection, `qdrant_ops.backup.restore.restore` (create the collection, every
            replica recovers its shard's snapshot with priority no_sync, fetched from S3 by the node
            through a presigned URL and checked against the sha256; wait until every replica is
            Active and the collection green, verify counts and samples): the collection serves when
            it returns;
  restore (fetch_by restorer): the same, but this host downloads and checks every snapshot first
            and uploads it to each replica (the path of an overwrite);
  floor:    the restore's own steps from files already on each node's disk: the set's shard
            snapshots are copied into every node's snapshots directory first (not timed), then the
            collection is created from the set, every replica recovers its shard from that local
            file (file://, the same checksum, priority and parallelism as the restore) and the
            collection settles (every replica Active, serving). What Qdrant itself needs; a restore
            cannot be faster. restore / floor (target <= 1.3) is what the project adds: fetching
            from S3, the checks, the balance;
  reingest: delete the collection, create it empty with the same config, upload the same points
            from memory with qdrant-client over gRPC (upload_collection, parallel workers: its
            fastest path), and wait until it is green with its index built.
Prints the times, restore / floor, restore / reingest (target <= 0.5) and restore / download of the
set from S3 (target <= 2; the download measured on its own each round, with the restore's download
step), for both ways of fetching.

    QDRANT_BINARY=/path/to/qdrant .venv/bin/python bench/restore.py [--points 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from qdrant_client import QdrantClient

from qdrant_ops.backup import restore, snapshot_files
from qdrant_ops.backup.s3 import make_client
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster.collections import ensure_collection
from tests.support.e2e_data import backup_every_node, backup_settings
from tests.support.qdrant_cluster import LocalQdrantCluster
from tests.support.s3 import MotoServer

DIM = 384
SPEC = {
    "name": "bench",
    "vectors": {"size": DIM, "distance": "Dot"},
    "shard_number": 6,
    "replication_factor": 2,
}


def wait_green(client: ClusterClient, count: int) -> None:
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        info = client.collection_info("bench") or {}
        if info.get("status") == "green" and client.count_points("bench") == count:
            return
        time.sleep(0.5)
    raise SystemExit("the collection did not become green with every point within an hour")


def reingest(client: ClusterClient, cluster: LocalQdrantCluster, vectors: np.ndarray, workers: int) -> float:
    client.request("DELETE", "/collections/bench", params={"wait": "true"})
    started = time.monotonic()
    ensure_collection(client, SPEC)
    node = cluster.nodes[0]
    grpc = QdrantClient(host=node.host, port=node.http_port, grpc_port=node.grpc_port, prefer_grpc=True,
                        api_key=cluster.api_key, https=False, timeout=300)  # fmt: skip
    payload = ({"group": i % 1000} for i in range(len(vectors)))
    grpc.upload_collection("bench", vectors=vectors, payload=payload, ids=range(len(vectors)),
                           batch_size=256, parallel=workers, wait=True)  # fmt: skip
    grpc.close()
    wait_green(client, len(vectors))
    return time.monotonic() - started


def restore_once(client, cluster, s3_client, settings, *, count: int, staging: Path, fetch_by: str) -> dict:
    client.request("DELETE", "/collections/bench", params={"wait": "true"})
    options = restore.RestoreOptions(nodes=tuple(cluster.urls), staging_dir=staging, fetch_by=fetch_by)
    report = restore.restore(client, s3_client, settings, options)
    assert report["problems"] == [] and client.count_points("bench") == count
    assert report["fetch_by"] == fetch_by
    return report


def place_local_copies(cluster: LocalQdrantCluster, s3_client, settings, staging: Path) -> None:
    """Every shard snapshot of the newest set on every node's disk, where Qdrant resolves a bare
    file name given as a shard recovery's location: <snapshots_path>/<collection>/shards/<id>/
    (src/common/snapshots.rs, `ShardSnapshotLocation::Path`; a file:// URL is refused for shards)."""
    manifest = restore.choose_set(s3_client, settings)
    downloaded = staging / "floor-source"
    downloaded.mkdir(exist_ok=True)
    for snap in restore.snapshots_of(manifest, settings.layout, "bench"):
        path = downloaded / f"{snap.shard_id}.snapshot"
        if not path.exists():
            snapshot_files.download(s3_client, settings.s3, snap, path)
        for node in cluster.nodes:
            shard_dir = node.workdir / "snapshots" / "bench" / "shards" / str(snap.shard_id)
            shard_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, shard_dir / f"floor-{snap.shard_id}.snapshot")


def floor_once(client, cluster, s3_client, settings, *, count: int, staging: Path) -> float:
    """The restore's create, recover and settle steps, each replica from its node's local copy."""
    client.request("DELETE", "/collections/bench", params={"wait": "true"})
    place_local_copies(cluster, s3_client, settings, staging)
    manifest = restore.choose_set(s3_client, settings)
    snapshots = restore.snapshots_of(manifest, settings.layout, "bench")
    nodes, timeout = list(cluster.urls), 3600.0
    started = time.monotonic()
    restore._create(client, "bench", manifest.collections["bench"])
    placement = restore.wait_everywhere(client, "bench", nodes, timeout)
    todo = restore.assign_shards(snapshots, placement, restore._peer_urls(client, nodes, placement))
    local = snapshot_files.Sources({}, lambda snap: f"floor-{snap.shard_id}.snapshot")
    restore._recover_all(client, todo, local, parallel=2, timeout=timeout, log=lambda _line: None)
    restore.wait_healthy(client, "bench", nodes, timeout, trigger=True)
    took = time.monotonic() - started
    assert client.count_points("bench") == count
    return took


def download_set(s3_client, settings, staging: Path) -> float:
    """The reference for restore <= 2x download: every object of the newest set downloaded and
    checked with the restore's own download step, one after another, nothing recovered."""
    manifest = restore.choose_set(s3_client, settings)
    directory = staging / "download-only"
    directory.mkdir(exist_ok=True)
    started = time.monotonic()
    for index, snap in enumerate(restore.snapshots_of(manifest, settings.layout, "bench")):
        path = snapshot_files.local_file(directory, index)
        snapshot_files.download(s3_client, settings.s3, snap, path)
        path.unlink()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="qdrant-client upload workers"
    )
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BINARY")
    if not binary:
        raise SystemExit("bench/restore.py needs a real Qdrant: set QDRANT_BINARY=/path/to/qdrant")

    vectors = np.random.default_rng(11).random((args.points, DIM), dtype=np.float32)
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
                reingest(client, cluster, vectors, args.workers)  # the data, and a warm-up
                backup_every_node(
                    client, cluster.urls, settings, make_client(settings.s3), "20261124T000000Z"
                )
                times: dict[str, list[float]] = {
                    "restore": [], "restorer": [], "floor": [], "reingest": [], "download": []
                }  # fmt: skip
                for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits all
                    for name, fetch_by in (("restore", "nodes"), ("restorer", "restorer")):
                        report = restore_once(client, cluster, s3_client, settings, count=args.points,
                                              staging=Path(tmp), fetch_by=fetch_by)  # fmt: skip
                        times[name].append(report["seconds"])
                    times["floor"].append(
                        floor_once(client, cluster, s3_client, settings, count=args.points, staging=Path(tmp))
                    )
                    times["download"].append(download_set(s3_client, settings, Path(tmp)))
                    times["reingest"].append(reingest(client, cluster, vectors, args.workers))
                set_bytes = report["bytes"]
        finally:
            server.stop()

    best = {name: min(values) for name, values in times.items()}
    print(f"points {args.points} x {DIM}-d, 6 shards, replication factor 2, 3 nodes; best of {args.rounds}")
    print(f"set in S3: {set_bytes / 2**20:.0f} MiB (one snapshot per shard)")
    print(f"restore_seconds  {best['restore']:8.2f}  (until every replica is Active, verified; nodes fetch)")
    print(f"restore_restorer_seconds {best['restorer']:8.2f}  (the same, this host downloads and uploads)")
    print(f"floor_seconds    {best['floor']:8.2f}  (the same recoveries from files already on each node)")
    print(f"download_seconds {best['download']:8.2f}  (the set from S3, checked)")
    print(
        f"reingest_seconds {best['reingest']:8.2f}  "
        f"(qdrant-client gRPC upload_collection from memory, {args.workers} workers, until green)"
    )
    print(f"restore_seconds / floor_seconds = {best['restore'] / best['floor']:.3f}  (target <= 1.3)")
    print(f"restore_restorer_seconds / floor_seconds = {best['restorer'] / best['floor']:.3f}")
    print(f"restore_seconds / reingest_seconds = {best['restore'] / best['reingest']:.3f}  (target <= 0.5)")
    print(f"restore_seconds / download_seconds = {best['restore'] / best['download']:.3f}  (target <= 2)")
    print(f"restore_restorer_seconds / download_seconds = {best['restorer'] / best['download']:.3f}")
    print(f"restore_seconds / restore_restorer_seconds = {best['restore'] / best['restorer']:.3f}")


if __name__ == "__main__":
    main()
