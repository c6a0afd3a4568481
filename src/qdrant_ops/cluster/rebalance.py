"""Spread shard replicas evenly over the peers, and drain a peer before it leaves (docs/qdrant-behaviour.md
§1: open-source Qdrant does neither by itself).

The plan is a pure function of every collection's placement and the peer list: a list of batches
of `move_shard` operations. A move copies the replica to the target and only then drops the
source, so no shard ever has fewer replicas than before; a target never already holds the shard;
in one batch every peer sends and receives at most its transfer limits and every shard moves at
most once. After the plan each collection's replicas per peer differ by at most one (after a
drain, over the remaining peers). The plan is recomputed from the live placement on every run,
so an interrupted run is finished by running it again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster import zones
from qdrant_ops.cluster.health import unhealthy_replicas
from qdrant_ops.cluster.replicas import METHODS, ReplicationError, ShardTransfer, cluster_view, wait_settled
from qdrant_ops.cluster.zones import Zones
from qdrant_ops.errors import ConfigError, QdrantOpsError


class RebalanceError(QdrantOpsError):
    """The plan is impossible or its execution failed; the message says why."""


@dataclass(frozen=True)
class RebalanceOptions:
    """What one rebalance or drain does, built once by each front door (the CLI, qdrant_rebalance,
    restore, the zone spreader) and checked here, so every door refuses the same things."""

    drain: int | None = None  # the peer to empty
    remove_drained: bool = False  # then remove it from the cluster (without force)
    method: str = "stream_records"
    incoming_limit: int = 1  # transfers a peer receives at once
    outgoing_limit: int = 1  # transfers a peer sends at once
    timeout: float = 3600.0  # per batch of transfers
    collections: tuple[str, ...] | None = None  # default: every collection
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown transfer method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.incoming_limit < 1 or self.outgoing_limit < 1:
            raise ConfigError(
                f"transfer limits must be at least 1, got incoming {self.incoming_limit} and "
                f"outgoing {self.outgoing_limit}"
            )
        if not self.timeout > 0:
            raise ConfigError(f"the transfer timeout must be positive, got {self.timeout}")
        if self.remove_drained and self.drain is None:
            raise ConfigError("removing the drained peer needs the peer to drain: give drain (its peer id)")
        if self.drain is not None and (isinstance(self.drain, bool) or not 0 <= self.drain < 2**64):
            raise ConfigError(f"drain must be a peer id (an unsigned 64-bit integer), got {self.drain!r}")
        if self.collections is not None:
            object.__setattr__(self, "collections", tuple(self.collections))


def _holders(placement: list[dict]) -> dict[int, set[int]]:
    shards: dict[int, set[int]] = {}
    for replica in placement:
        shards.setdefault(replica["shard_id"], set()).add(replica["peer_id"])
    return shards


class _Placement:
    """One collection's placement while moves are planned on it."""

    def __init__(self, collection: str, shards: dict[int, set[int]], targets: list[int], zones: Zones):
        self.collection, self.shards, self.targets, self.zones = collection, shards, targets, zones
        self.load = Counter({p: 0 for p in targets})
        self.load.update(p for holders in shards.values() for p in holders if p in self.load)
        self.moves: list[ShardTransfer] = []

    def move(self, shard: int, source: int, target: int) -> None:
        self.shards[shard] = (self.shards[shard] - {source}) | {target}
        self.load[target] += 1
        if source in self.load:
            self.load[source] -= 1
        self.moves.append(ShardTransfer(self.collection, shard, source, target))

    def even_after(self, shard: int, source: int, target: int) -> bool:
        holders = (self.shards[shard] - {source}) | {target}
        return zones.spread_is_even(holders, self.targets, self.zones)

    def drain(self, peer: int) -> None:
        """Every replica off `peer`: each to the least crowded zone, then the least loaded peer."""
        for shard in sorted(s for s, holders in self.shards.items() if peer in holders):
            options = [p for p in self.targets if p not in self.shards[shard]]
            if not options:
                raise RebalanceError(
                    f"{self.collection} shard {shard} has {len(self.shards[shard])} replicas but only "
                    f"{len(self.targets)} peers would remain: add a node first, or lower the collection's "
                    "replication_factor"
                )
            crowding = zones.zone_counts(self.shards[shard] - {peer}, self.zones)
            self.move(
                shard,
                peer,
                min(options, key=lambda p: (crowding[zones.zone_of(self.zones, p)], self.load[p], p)),
            )

    def spread_zones(self) -> None:
        """Move replicas out of crowded zones until every shard's spread is even; each move takes
        one replica from the fullest zone to an emptier one, so this ends."""
        for shard in sorted(self.shards):
            while not zones.spread_is_even(self.shards[shard], self.targets, self.zones):
                holders = self.shards[shard]
                crowding = zones.zone_counts(holders, self.zones)
                fullest = max(crowding.values())
                source = max(
                    (p for p in holders if crowding[zones.zone_of(self.zones, p)] == fullest),
                    key=lambda p: (self.load[p], -p),
                )
                options = [
                    p
                    for p in self.targets
                    if p not in holders and crowding[zones.zone_of(self.zones, p)] <= fullest - 2
                ]
                self.move(
                    shard,
                    source,
                    min(options, key=lambda p: (crowding[zones.zone_of(self.zones, p)], self.load[p], p)),
                )

    def balance(self) -> None:
        """From the most to the least loaded peers while they differ by two or more, moving only
        replicas whose shard stays evenly spread over the zones (each step narrows the loads)."""
        while steps := self._balancing_moves():
            for step in steps:
                self.move(*step)

    def _balancing_moves(self) -> list[tuple[int, int, int]]:
        """One move from a heavy to a light peer; where the zone rule forbids every such move, two
        through a third peer (heavy -> middle in one shard, middle -> light in another: the
        middle's load is unchanged). E.g. peers 3 and 4 share a zone: a shard that cannot go from
        3 to 10 goes to 4, and one of 4's shards goes to 10 (tests/unit/test_zones.py)."""
        pairs = [
            (heavy, light)
            for heavy in sorted(self.targets, key=lambda p: (-self.load[p], p))
            for light in sorted(self.targets, key=lambda p: (self.load[p], p))
            if self.load[heavy] - self.load[light] >= 2
        ]
        for heavy, light in pairs:
            for shard in sorted(self.shards):
                if self._can_move(shard, heavy, light):
                    return [(shard, heavy, light)]
        for heavy, light in pairs:
            for middle in sorted(self.targets, key=lambda p: (self.load[p], p)):
                for first in sorted(s for s in self.shards if self._can_move(s, heavy, middle)):
                    for second in sorted(
                        s for s in self.shards if s != first and self._can_move(s, middle, light)
                    ):
                        return [(first, heavy, middle), (second, middle, light)]
        return []

    def _can_move(self, shard: int, source: int, target: int) -> bool:
        holders = self.shards[shard]
        return source in holders and target not in holders and self.even_after(shard, source, target)


def plan_moves(
    placements: dict[str, list[dict]],
    peers: Sequence[int],
    drain: int | None = None,
    zones: Zones | None = None,
) -> list[ShardTransfer]:
    """Moves, in order, that empty `drain` (if given), spread every shard's replicas over the zones
    (`zones`: peer -> zone; a peer without one is a zone of its own) and balance each collection over
    the other peers as far as the zone rule allows (cluster/zones.py)."""
    if drain is not None and drain not in peers:
        raise RebalanceError(f"peer {drain} is not in the cluster (peers: {sorted(peers)})")
    targets = [p for p in peers if p != drain]
    if not targets:
        raise RebalanceError(f"peer {drain} is the last node: there is nowhere to move its shards")
    moves: list[ShardTransfer] = []
    for collection in sorted(placements):
        plan = _Placement(collection, _holders(placements[collection]), targets, zones or {})
        if drain is not None:
            plan.drain(drain)
        plan.spread_zones()
        plan.balance()
        moves += plan.moves
    return moves


def batches(
    moves: Sequence[ShardTransfer], incoming_limit: int = 1, outgoing_limit: int = 1
) -> list[list[ShardTransfer]]:
    """Group moves, keeping their order per shard, so that in one batch each peer sends at most
    `outgoing_limit` and receives at most `incoming_limit` transfers and each shard moves once."""
    if incoming_limit < 1 or outgoing_limit < 1:
        raise RebalanceError("transfer limits must be at least 1")
    result: list[list[ShardTransfer]] = []
    last_batch: dict[tuple[str, int], int] = {}
    for move in moves:
        shard = (move.collection, move.shard_id)
        index = last_batch.get(shard, -1) + 1
        while True:
            if index == len(result):
                result.append([])
            batch = result[index]
            sending = sum(m.from_peer == move.from_peer for m in batch)
            receiving = sum(m.to_peer == move.to_peer for m in batch)
            if sending < outgoing_limit and receiving < incoming_limit:
                batch.append(move)
                last_batch[shard] = index
                break
            index += 1
    return result


def _wait_transfers(client: ClusterClient, collections: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for collection in sorted(collections):
        try:
            wait_settled(client, collection, max(0.0, deadline - time.monotonic()))
        except ReplicationError as exc:
            raise RebalanceError(f"{exc}; run the rebalance again to continue") from exc


def _view(client: ClusterClient, collections: tuple[str, ...] | None):
    peers, placements, factors = cluster_view(client)
    if collections is not None:
        placements = {name: p for name, p in placements.items() if name in collections}
    return peers, placements, factors


def rebalance(
    client: ClusterClient,
    options: RebalanceOptions,
    *,
    zones: Zones | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> list[list[ShardTransfer]]:
    """Plan from the live placement (of the options' collections, default all) and apply it batch
    by batch; returns the batches. `zones` (peer -> zone) as in plan_moves."""
    drain = options.drain
    peers, placements, factors = _view(client, options.collections)
    plan = batches(
        plan_moves(placements, peers, drain, zones), options.incoming_limit, options.outgoing_limit
    )
    if options.dry_run:
        return plan
    for number, batch in enumerate(plan, 1):
        for move in batch:
            try:
                move.start(client, "move_shard", options.method)
            except QdrantApiError as exc:
                raise RebalanceError(f"moving {move}: {exc}; run the rebalance again to continue") from exc
            where = f"{move.collection} shard {move.shard_id} {move.from_peer} -> {move.to_peer}"
            log(f"batch {number}/{len(plan)}: {where}")
        _wait_transfers(client, {m.collection for m in batch}, options.timeout)
    # Re-read everything checked below: collections may have been created or dropped meanwhile.
    peers, placements, factors = _view(client, options.collections)
    left = plan_moves(placements, peers, drain, zones)
    if left:
        raise RebalanceError(
            f"not balanced after the plan, {len(left)} move(s) left: run the rebalance again"
        )
    for collection, placement in placements.items():
        if unhealthy_replicas(placement):
            raise RebalanceError(f"{collection}: replicas not Active after the rebalance")
        if any(len(h) < factors[collection] for h in _holders(placement).values()):
            raise RebalanceError(f"{collection}: a shard is below its replication factor")
    return plan


def spread_over_zones(
    client: ClusterClient,
    names: Sequence[str],
    zone_map: Zones,
    *,
    timeout: float = 600.0,
    log=lambda _l: None,
) -> list[list[ShardTransfer]]:
    """After collections were created (Qdrant places replicas by counts only): where a shard's
    replicas share a zone that could be avoided, move them with the planner. Nothing without zones."""
    if not zone_map or not names:
        return []
    peers, placements, _ = cluster_view(client)
    placements = {name: p for name, p in placements.items() if name in names}
    if not zones.shared_zones(placements, peers, zone_map)[0]:
        return []
    options = RebalanceOptions(collections=tuple(names), timeout=timeout)
    return rebalance(client, options, zones=zone_map, log=log)


def peer_of(client: ClusterClient, url: str) -> int:
    """The peer id the node at `url` answers as (a node to drain is alive by definition)."""
    status = client.cluster_status(node=url.rstrip("/"))
    if status.get("status") != "enabled":
        raise RebalanceError(f"{url} runs without cluster mode: there is no peer to drain")
    return int(status["peer_id"])


def remove_drained(client: ClusterClient, peer_id: int, *, dry_run: bool = False) -> bool:
    """Remove a drained peer from the cluster, without force: it must hold no replica, so nothing
    is dropped (Qdrant also refuses otherwise). False when it is already gone."""
    peers, placements, _ = cluster_view(client)
    if peer_id not in peers:
        return False
    held = sorted(name for name, on in placements.items() if any(r["peer_id"] == peer_id for r in on))
    if held:
        raise RebalanceError(
            f"peer {peer_id} still holds replicas of {', '.join(held)}: drain it first (nothing was removed)"
        )
    if not dry_run:
        client.remove_peer(peer_id, timeout=60)
    return True


def drain_and_remove(
    client: ClusterClient, options: RebalanceOptions, *, zones: Zones | None = None, log=lambda _line: None
) -> tuple[list[list[ShardTransfer]], bool]:
    """Move every replica off the options' drain peer, then remove it (without force); returns the
    batches and whether the peer was (dry run: would be) removed. A peer already gone: ([], False)."""
    peer_id = options.drain
    if peer_id is None:
        raise ConfigError("no peer to drain: give drain (its peer id)")
    if peer_id not in {int(p) for p in client.cluster_status()["peers"]}:
        return [], False
    plan = rebalance(client, options, zones=zones, log=log)
    if options.dry_run and plan:  # the moves are only planned: afterwards the peer would be empty
        return plan, True
    return plan, remove_drained(client, peer_id, dry_run=options.dry_run)


def run(
    client: ClusterClient, options: RebalanceOptions, *, zones: Zones | None = None, log=lambda _line: None
) -> tuple[list[list[ShardTransfer]], bool | None]:
    """The operation the options describe: the batches, and with remove_drained whether the peer
    was (dry run: would be) removed, else None."""
    if options.remove_drained:
        return drain_and_remove(client, options, zones=zones, log=log)
    return rebalance(client, options, zones=zones, log=log), None
