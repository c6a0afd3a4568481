"""Bring every shard back to its replication factor after a node was lost (Qdrant does not do
it by itself, docs/qdrant-behaviour.md §1). A dead peer is removed with force (its replicas are dropped),
the replacement joins with --bootstrap, then each shard with fewer replicas than the factor is
replicated from an Active replica, one transfer at a time (each node accepts one incoming and one
outgoing transfer by default), and the end state is checked: every replica Active, every shard at
its factor.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster.health import HEALTHY_REPLICA_STATES, shard_placement
from qdrant_ops.cluster.zones import Zones, zone_counts, zone_of
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.polling import wait_until

# Shard transfer methods Qdrant accepts in replicate_shard / move_shard.
METHODS = ("stream_records", "snapshot", "wal_delta")


class ReplicationError(QdrantOpsError):
    """Replicas could not be brought back to the factor; the message says why."""


@dataclass(frozen=True)
class ShardTransfer:
    """One replica copied (replicate_shard) or moved (move_shard) from one peer to another."""

    collection: str
    shard_id: int
    from_peer: int
    to_peer: int

    def start(self, client: ClusterClient, operation: str, method: str) -> None:
        """Ask Qdrant to start it (POST /collections/{c}/cluster); Qdrant runs it in the background."""
        body = {
            operation: {
                "shard_id": self.shard_id,
                "from_peer_id": self.from_peer,
                "to_peer_id": self.to_peer,
                "method": method,
            }
        }
        client.update_collection_cluster(self.collection, body)


def plan_replication(
    placements: dict[str, list[dict]],
    factors: dict[str, int],
    peers: Sequence[int],
    prefer: int | None = None,
    zones: Zones | None = None,
) -> list[ShardTransfer]:
    """Pure: one replication per missing replica, from an Active replica to a peer that lacks the
    shard: in the zone holding the fewest of its replicas (cluster/zones.py), there `prefer` if it
    is one of them, else the peer with the fewest replicas. Raises when the peers cannot hold the
    factor."""
    zones = zones or {}
    load = Counter({peer: 0 for peer in peers})
    for placement in placements.values():
        load.update(r["peer_id"] for r in placement if r["peer_id"] in load)
    plan = []
    for collection in sorted(placements):
        shards: dict[int, list[dict]] = {}
        for replica in placements[collection]:
            shards.setdefault(replica["shard_id"], []).append(replica)
        for shard_id, replicas in sorted(shards.items()):
            holders = {r["peer_id"] for r in replicas}
            active = sorted(r["peer_id"] for r in replicas if r["state"] in HEALTHY_REPLICA_STATES)
            missing = factors[collection] - len(holders)
            if missing <= 0:
                continue
            if not active:
                raise ReplicationError(
                    f"{collection} shard {shard_id} has no Active replica to copy from: restore it from a "
                    "backup (playbooks/restore.yml)"
                )
            candidates = [p for p in peers if p not in holders]
            if len(candidates) < missing:
                raise ReplicationError(
                    f"{collection} shard {shard_id} needs {factors[collection]} replicas but only "
                    f"{len(holders) + len(candidates)} peers can hold it: add nodes or lower "
                    "replication_factor"
                )
            for _ in range(missing):
                crowding = zone_counts(holders, zones)
                to_peer = min(
                    candidates, key=lambda p: (crowding[zone_of(zones, p)], p != prefer, load[p], p)
                )
                candidates.remove(to_peer)
                holders.add(to_peer)
                load[to_peer] += 1
                plan.append(ShardTransfer(collection, shard_id, active[0], to_peer))
    return plan


def collection_views(client: ClusterClient) -> dict[str, tuple[int, dict]]:
    """Each collection's replication factor and cluster view (GET /collections/{c}/cluster); a
    collection dropped between the listing and these reads is left out, not an error."""
    views = {}
    for name in client.collection_names():
        info = client.collection_info(name)
        try:
            view = client.collection_cluster(name)
        except QdrantApiError as exc:
            if exc.status != 404:
                raise
            continue
        if info is not None:
            views[name] = (int(info["config"]["params"].get("replication_factor") or 1), view)
    return views


def cluster_view(client: ClusterClient) -> tuple[list[int], dict[str, list[dict]], dict[str, int]]:
    peers = sorted(int(pid) for pid in client.cluster_status()["peers"])
    views = collection_views(client)
    placements = {name: shard_placement(view) for name, (_, view) in views.items()}
    return peers, placements, {name: factor for name, (factor, _) in views.items()}


def remove_peer(
    client: ClusterClient, peer_id: int, timeout: int = 60, allow_data_loss: bool = False
) -> bool:
    """Force-remove a dead peer (its replicas are dropped); False when it is already gone.
    Refused, with nothing changed, for the reasons check_removable gives."""
    if not check_removable(client, peer_id, allow_data_loss):
        return False
    client.remove_peer(peer_id, force=True, timeout=timeout)
    return True


def check_removable(client: ClusterClient, peer_id: int, allow_data_loss: bool = False) -> bool:
    """False when the peer is already gone; raises when removing it is unsafe: it is the raft leader
    or still answers as itself on its REST port (move its shards away instead: drain_node.yml), or,
    unless `allow_data_loss`, a shard it holds has no Active replica on another peer (with
    replication factor 1 a typo would delete data)."""
    status = client.cluster_status()
    peers = status["peers"]
    if str(peer_id) not in peers:
        return False
    drain_hint = "move its shards away and remove it with playbooks/drain_node.yml instead"
    if (status.get("raft_info") or {}).get("leader") == peer_id:
        raise ReplicationError(f"peer {peer_id} is the raft leader, so it is alive: {drain_hint}")
    alive = sign_of_life(client, peer_id, peers)
    if alive:
        raise ReplicationError(f"peer {peer_id} {alive}, so it is not dead: {drain_hint}")
    only_here = []
    for name, placement in cluster_view(client)[1].items():
        for shard, holders in _shard_holders(placement).items():
            others_active = any(
                p != peer_id and state in HEALTHY_REPLICA_STATES for p, state in holders.items()
            )
            if peer_id in holders and not others_active:
                only_here.append(f"{name} shard {shard}")
    if only_here and not allow_data_loss:
        raise ReplicationError(
            f"peer {peer_id} holds the only Active replica of {', '.join(only_here)}: removing it deletes "
            "that data. Bring the node back, or allow the data loss explicitly and restore those "
            "collections from a backup afterwards"
        )
    return True


def sign_of_life(client: ClusterClient, peer_id: int, peers: dict) -> str | None:
    """What still answers for the peer, or None when nothing does. A peer is dead for force
    removal only when nothing accepts a TCP connection on its REST and p2p ports: an HTTP error
    (401 from a rotated key, 503 while loading), a TLS failure or an unexpected answer mean a node
    is there. An address where another peer answers, or that another peer's p2p URI names (a
    replacement on the same host), says nothing about this peer and is not counted."""
    uri = peers[str(peer_id)]["uri"]
    url = peer_rest_url(uri, client.urls[0])
    answer = client.probe_peer_id(url)
    if answer == peer_id:
        return f"answers at {url}"
    rest, p2p = urlsplit(url), urlsplit(uri)
    endpoints = [] if answer is not None else [(rest.hostname, rest.port or 6333)]
    if not any(other != str(peer_id) and info.get("uri") == uri for other, info in peers.items()):
        endpoints.append((p2p.hostname, p2p.port or 6335))
    for host, port in endpoints:
        if host and _accepts_tcp(host, port):
            return f"still accepts connections on {host}:{port} (an HTTP error or TLS failure is a live node)"
    return None


def _accepts_tcp(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # refused, timed out, no route: nothing there
        return False


def peer_rest_url(p2p_uri: str, any_node_url: str) -> str:
    """A peer's REST URL: its p2p host with the cluster's REST port and scheme (every node uses the
    same http_port, docs/qdrant-behaviour.md §1)."""
    rest = urlsplit(any_node_url)
    host = urlsplit(p2p_uri).hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{rest.scheme}://{host}:{rest.port or 6333}"


def _shard_holders(placement: list[dict]) -> dict[int, dict[int, str]]:
    holders: dict[int, dict[int, str]] = {}
    for replica in placement:
        holders.setdefault(replica["shard_id"], {})[replica["peer_id"]] = replica["state"]
    return holders


def unsettled(client: ClusterClient, collection: str) -> str | None:
    """The transfers running and replica states, unless none is running and every replica serves."""
    view = client.collection_cluster(collection)
    states = {r["state"] for r in shard_placement(view)}
    if not view.get("shard_transfers") and states <= HEALTHY_REPLICA_STATES:
        return None
    return f"{view.get('shard_transfers')}, states {sorted(states)}"


def wait_settled(client: ClusterClient, collection: str, timeout: float) -> None:
    """Until the collection has no shard transfer running and every replica is Active."""
    wait_until(
        lambda: unsettled(client, collection),
        timeout=timeout,
        interval=1,
        error=lambda missing: ReplicationError(
            f"{collection}: transfers still running or replicas not Active after {timeout:.0f}s: {missing}"
        ),
    )


def _peer_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ConfigError(f"{what} must be a peer id (an unsigned 64-bit integer), got {value!r}")
    return value


@dataclass(frozen=True)
class RepairOptions:
    """What one repair does, built once by the CLI and qdrant_replicas and checked here."""

    remove: tuple[int, ...] = ()  # dead peers to remove first
    replicate: bool = True  # then bring every shard back to its replication factor
    allow_data_loss: bool = False  # remove a peer even if it holds a shard's last Active replica
    prefer: int | None = None  # the peer that receives new replicas when it may
    method: str = "stream_records"
    timeout: float = 3600.0  # per replication
    dry_run: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "remove", tuple(dict.fromkeys(self.remove)))
        for peer in self.remove:
            _peer_id(peer, "a peer to remove")
        if self.prefer is not None:
            _peer_id(self.prefer, "the preferred peer")
        if self.method not in METHODS:
            raise ConfigError(f"unknown transfer method {self.method!r}: use one of {', '.join(METHODS)}")
        if not self.timeout > 0:
            raise ConfigError(f"the transfer timeout must be positive, got {self.timeout}")


def repair(
    client: ClusterClient,
    options: RepairOptions,
    *,
    zones: Zones | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> tuple[list[int], list[ShardTransfer]]:
    """Remove the dead peers `options.remove` (every refusal before any removal; peers already gone
    are skipped), then replicate every shard below its factor. Returns the peers removed (or that
    would be) and the replications done (or planned: with dry_run, the plan as it will be once
    those peers' replicas are dropped)."""
    prefer = options.prefer
    gone = [peer for peer in options.remove if check_removable(client, peer, options.allow_data_loss)]
    peers, placements, factors = cluster_view(client)
    peers = [peer for peer in peers if peer not in gone]
    placements = {name: [r for r in p if r["peer_id"] not in gone] for name, p in placements.items()}
    if prefer is not None and prefer not in peers:
        raise ReplicationError(f"peer {prefer} is not in the cluster (peers: {peers})")
    plan = plan_replication(placements, factors, peers, prefer, zones) if options.replicate else []
    if options.dry_run:
        return gone, plan
    for peer in gone:
        remove_peer(client, peer, allow_data_loss=options.allow_data_loss)
    if not options.replicate:
        return gone, []
    peers, placements, factors = cluster_view(client)
    plan = plan_replication(placements, factors, peers, prefer, zones)
    for item in plan:  # one at a time: every node takes one incoming transfer by default
        try:
            item.start(client, "replicate_shard", options.method)
        except QdrantApiError as exc:
            raise ReplicationError(f"replicating {item}: {exc}") from exc
        log(f"{item.collection} shard {item.shard_id}: peer {item.from_peer} -> {item.to_peer}")
        wait_settled(client, item.collection, options.timeout)
    _, placements, factors = cluster_view(client)
    left = plan_replication(placements, factors, peers, zones=zones)
    if left:
        raise ReplicationError(f"still below the replication factor: {left}")
    return gone, plan
