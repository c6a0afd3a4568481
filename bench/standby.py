"""The warm standby, with real Qdrant (QDRANT_BINARY), in one run.

Two 3-node clusters on loopback (primary 127.77.0.x, standby the same addresses on other ports)
hold a collection of N points x 384-d (6 shards, replication factor 2). The primary is loaded over
gRPC, the standby initialised and synced once (`qdrant_ops.cluster.standby`). Then:
  bytes:    two workloads in turn, each followed by a timed sync: appends (1% new points, what most
            vector workloads do) and random updates (1% of the existing points rewritten). For each
            shard's first standby replica (the copy that crosses between the clusters; the others
            copy it inside the standby), what the primary streams for its manifest (what a sync
            fetches) against what it streams for an empty manifest (a full copy of the shard):
            prints partial / full per workload (target <= 0.1).
  RPO:      a steady writer on the primary while syncs run back to back for --seconds: the recovery
            point sampled every second (now - the last completed sync's primary time), its worst
            case, and the sync durations; the worst case at the default 5-minute interval is the
            interval plus the longest sync.
  promote:  `standby.promote` timed (target <= 60 s).

    QDRANT_BINARY=/path/to/qdrant .venv/bin/python bench/standby.py [--points 1000000] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np
from qdrant_client import QdrantClient

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import standby
from qdrant_ops.cluster.collections import ensure_collection
from qdrant_ops.cluster.health import shard_placement
from tests.support.qdrant_cluster import LocalQdrantCluster

DIM = 384
SPEC = {
    "name": "bench",
    "vectors": {"size": DIM, "distance": "Dot"},
    "shard_number": 6,
    "replication_factor": 2,
}
DEFAULT_INTERVAL = 300.0


def load(cluster: LocalQdrantCluster, ids: np.ndarray, seed: int) -> None:
    vectors = np.random.default_rng(seed).random((len(ids), DIM), dtype=np.float32)
    node = cluster.nodes[0]
    grpc = QdrantClient(host=node.host, port=node.http_port, grpc_port=node.grpc_port, prefer_grpc=True,
                        api_key=cluster.api_key, https=False, timeout=600)  # fmt: skip
    grpc.upload_collection("bench", vectors=vectors, ids=ids.tolist(), payload=({"seed": seed} for _ in ids),
                           batch_size=512, parallel=2, wait=True)  # fmt: skip
    grpc.close()


def wait_green(client: ClusterClient) -> None:
    deadline = time.monotonic() + 3600
    while (client.collection_info("bench") or {}).get("status") != "green":
        if time.monotonic() > deadline:
            raise SystemExit("the primary did not become green within an hour")
        time.sleep(1)


def streamed_bytes(url: str, key: str, shard: int, manifest: dict) -> int:
    """What the primary node sends for a partial snapshot against `manifest` (0 when unchanged)."""
    path = f"{url}/collections/bench/shards/{shard}/snapshot/partial/create"
    total = 0
    with httpx.stream("POST", path, json=manifest, headers={"api-key": key}, timeout=3600) as response:
        if response.status_code == 304:
            return 0
        response.raise_for_status()
        for chunk in response.iter_bytes():
            total += len(chunk)
    return total


def measure_bytes(pc, sc, primary, secondary) -> tuple[int, int]:
    urls = {"p": standby.peer_urls(pc, primary.urls), "s": standby.peer_urls(sc, secondary.urls)}
    placements = [shard_placement(side.collection_cluster("bench")) for side in (pc, sc)]
    transfers = standby.plan_transfers("bench", *placements, urls["p"], urls["s"])
    partial = full = 0
    for t in (t for t in transfers if t.from_primary):  # what crosses between the clusters
        manifest = sc.get(
            f"/collections/bench/shards/{t.shard_id}/snapshot/partial/manifest", node=t.standby_url
        )
        partial += streamed_bytes(t.source_url, primary.api_key, t.shard_id, manifest)
        full += streamed_bytes(t.source_url, primary.api_key, t.shard_id, {})
    return partial, full


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the writer runs for the RPO")
    parser.add_argument("--write-rate", type=int, default=500, help="points per second the writer upserts")
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BINARY") or sys.exit("set QDRANT_BINARY=/path/to/qdrant")
    base = Path(tempfile.mkdtemp(prefix="bench-standby-"))
    with (
        LocalQdrantCluster(binary, base / "primary", size=3, api_key="primary-key") as primary,
        LocalQdrantCluster(binary, base / "standby", size=3, api_key="standby-key") as secondary,
        ClusterClient(primary.urls, "primary-key", timeout=600) as pc,
        ClusterClient(secondary.urls, "standby-key", timeout=600) as sc,
    ):
        ensure_collection(pc, SPEC)
        started = time.monotonic()
        load(primary, np.arange(args.points), seed=1)
        wait_green(pc)
        print(f"primary loaded: {args.points} x {DIM} in {time.monotonic() - started:.0f} s")
        standby.init(pc, sc)
        started = time.monotonic()
        standby.sync(pc, sc)
        print(f"first sync (everything): {time.monotonic() - started:.1f} s")

        changed = max(2, args.points // 100)
        rng = np.random.default_rng(5)
        workloads = {
            "append (1% new points)": np.arange(args.points, args.points + changed),
            "random updates (1% of the points)": rng.choice(args.points, changed, replace=False),
        }
        for seed, (workload, ids) in enumerate(workloads.items(), start=2):
            load(primary, ids, seed=seed)
            wait_green(pc)
            partial, full = measure_bytes(pc, sc, primary, secondary)
            started = time.monotonic()
            standby.sync(pc, sc)
            took = time.monotonic() - started
            print(f"{workload}, {changed} points: a sync fetches {partial / 1e6:.1f} MB, a full copy "
                  f"{full / 1e6:.1f} MB; partial / full = {partial / full:.3f} (target <= 0.1); that sync "
                  f"took {took:.1f} s")  # fmt: skip

        stop, reflects, durations = threading.Event(), [time.time()], []

        def writer() -> None:
            next_id = args.points * 2
            for _ in range(int(args.seconds) + 5):  # bounded: one batch a second
                if stop.is_set():
                    return
                began = time.monotonic()
                load(primary, np.arange(next_id, next_id + args.write_rate), seed=next_id)
                next_id += args.write_rate
                time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))

        def syncer() -> None:
            while not stop.is_set():
                began = time.monotonic()
                report = standby.sync(pc, sc)
                durations.append(time.monotonic() - began)
                reflects.append(report["collections"]["bench"]["reflects"])

        threads = [threading.Thread(target=writer), threading.Thread(target=syncer)]
        for thread in threads:
            thread.start()
        samples = []
        for _ in range(int(args.seconds)):
            time.sleep(1)
            samples.append(time.time() - reflects[-1])
        stop.set()
        for thread in threads:
            thread.join(timeout=3600)
        longest = max(durations)
        print(f"under a writer of {args.write_rate} points/s for {args.seconds:.0f} s, syncs back to back: "
              f"{len(durations)} syncs, mean {np.mean(durations):.1f} s, longest {longest:.1f} s; recovery "
              "point "
              f"mean {np.mean(samples):.1f} s, worst {max(samples):.1f} s; at the default 5-minute interval "
              f"the worst case is {DEFAULT_INTERVAL + longest:.0f} s")  # fmt: skip

        started = time.monotonic()
        report = standby.promote(sc)
        print(f"promotion: {time.monotonic() - started:.2f} s (target <= 60), lag at promotion "
              f"{report['collections']['bench']['lag_seconds']:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
