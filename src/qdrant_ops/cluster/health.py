"""Read-only views of the cluster: peers, raft, collections with exact counts and shard placement."""

from __future__ import annotations

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster.zones import Zones, shared_zones

# Replica states in which a replica serves reads and writes (docs/qdrant-behaviour.md §4).
HEALTHY_REPLICA_STATES = frozenset({"Active"})


def shard_placement(collection_cluster: dict) -> list[dict]:
    """Every replica of every shard, from one node's GET /collections/{c}/cluster."""
    own_peer = collection_cluster["peer_id"]
    replicas = [
        {"shard_id": s["shard_id"], "peer_id": own_peer, "state": s["state"]}
        for s in collection_cluster.get("local_shards", [])
    ]
    replicas += [
        {"shard_id": s["shard_id"], "peer_id": s["peer_id"], "state": s["state"]}
        for s in collection_cluster.get("remote_shards", [])
    ]
    return sorted(replicas, key=lambda r: (r["shard_id"], r["peer_id"]))


def unhealthy_replicas(placement: list[dict]) -> list[dict]:
    return [replica for replica in placement if replica["state"] not in HEALTHY_REPLICA_STATES]


def shards_below_factor(placement: list[dict], replication_factor: int | None) -> list[int]:
    """Shard ids with fewer Active replicas than `replication_factor` (1 when unknown)."""
    active: dict[int, int] = {}
    for replica in placement:
        active[replica["shard_id"]] = active.get(replica["shard_id"], 0) + (
            replica["state"] in HEALTHY_REPLICA_STATES
        )
    return sorted(shard for shard, count in active.items() if count < (replication_factor or 1))


def collection_overview(client: ClusterClient, name: str) -> dict:
    info = client.collection_info(name) or {}
    params = info.get("config", {}).get("params", {})
    view = client.collection_cluster(name)
    placement = shard_placement(view)
    return {
        "name": name,
        "status": info.get("status"),
        "optimizer_status": info.get("optimizer_status"),
        "points_exact": client.count_points(name),
        "shard_number": params.get("shard_number"),
        "replication_factor": params.get("replication_factor"),
        "replicas": placement,
        "unhealthy_replicas": unhealthy_replicas(placement),
        "shard_transfers": len(view.get("shard_transfers") or []),
    }


def cluster_overview(
    client: ClusterClient, include_collections: bool = True, zones: Zones | None = None
) -> dict:
    """Version, raft state, peers (with their zone), collections with counts and placement, and
    the shards whose replicas share a zone (`shared_zones`: avoidable, and too few zones)."""
    status = client.cluster_status()
    overview: dict = {"version": client.version(), "cluster_enabled": status.get("status") == "enabled"}
    if overview["cluster_enabled"]:
        raft = status["raft_info"]
        overview.update(
            peer_id=status["peer_id"],
            peers=sorted(
                ({"id": int(pid), "uri": peer["uri"]} for pid, peer in status["peers"].items()),
                key=lambda p: p["id"],
            ),
            leader=raft.get("leader"),
            term=raft["term"],
            commit=raft["commit"],
            pending_operations=raft["pending_operations"],
            consensus_thread_status=status.get("consensus_thread_status"),
        )
    if include_collections:
        overview["collections"] = [collection_overview(client, name) for name in client.collection_names()]
    if include_collections and overview["cluster_enabled"]:
        zones = zones or {}
        for peer in overview["peers"]:
            peer["zone"] = zones.get(peer["id"])
        avoidable, too_few = shared_zones(
            {c["name"]: c["replicas"] for c in overview["collections"]},
            [p["id"] for p in overview["peers"]],
            zones,
        )
        overview["shared_zones"] = {"avoidable": avoidable, "too_few_zones": too_few}
    return overview
