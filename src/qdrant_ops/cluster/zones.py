"""Availability zones in replica placement (pure).

The rule: a shard's replicas sit in distinct zones whenever the zones allow it, and otherwise as
evenly over the zones as their sizes allow. Precisely, a shard's spread is *even* when no replica
could move to a less crowded zone: for any two zones, the fuller one holds at most one replica of
the shard more than the other, unless every peer of the other already holds the shard. Losing one
zone then loses as few replicas of each shard as the zones permit.

A peer without a zone is a zone of its own, so with no zones at all the rule asks only for
distinct peers (what Qdrant already guarantees) and the planners behave as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import ConfigError

Zones = Mapping[int, str]  # peer id -> zone name


def zone_of(zones: Zones, peer: int) -> str:
    return zones.get(peer) or f"peer {peer}"


def zone_counts(holders: Iterable[int], zones: Zones) -> Counter:
    return Counter(zone_of(zones, peer) for peer in holders)


def spread_is_even(holders: Iterable[int], peers: Iterable[int], zones: Zones) -> bool:
    """Whether the replicas on `holders` are spread as evenly over the zones of `peers` as can be."""
    counts = zone_counts(holders, zones)
    sizes = zone_counts(peers, zones)
    fullest = max(counts.values(), default=0)
    return all(fullest - counts[zone] < 2 or counts[zone] >= size for zone, size in sizes.items())


def shared_zones(
    placements: Mapping[str, list[dict]], peers: Iterable[int], zones: Zones
) -> tuple[list[str], list[str]]:
    """Shards whose replicas share a zone: (avoidable ones: a planner would spread them, too few
    zones: as even as the zones allow). Each entry names the collection, shard and zones."""
    peers = list(peers)
    avoidable, unavoidable = [], []
    for collection in sorted(placements):
        shards: dict[int, list[int]] = {}
        for replica in placements[collection]:
            shards.setdefault(replica["shard_id"], []).append(replica["peer_id"])
        for shard, holders in sorted(shards.items()):
            counts = zone_counts(holders, zones)
            if max(counts.values()) < 2:
                continue
            crowded = ", ".join(f"{count} in {zone}" for zone, count in sorted(counts.items()) if count > 1)
            entry = f"{collection} shard {shard}: {crowded}"
            (unavoidable if spread_is_even(holders, peers, zones) else avoidable).append(entry)
    return avoidable, unavoidable


def resolve(client: ClusterClient, spec: Mapping[str, str], *, skip_silent: bool = False) -> dict[int, str]:
    """Zones given per peer id or per node URL (as the inventory knows the nodes), as peer -> zone.
    A URL is asked which peer it is (with `skip_silent`, one that does not answer is left out: a
    dead node's zone does not matter to a repair or a status); a peer id must be in the cluster."""
    peers = {int(p) for p in client.cluster_status().get("peers", {})}
    resolved: dict[int, str] = {}
    for raw_key, raw_zone in spec.items():
        key, zone = str(raw_key).strip(), str(raw_zone or "").strip()
        if not zone:
            raise ConfigError(f"the zone of {key!r} is empty: give a zone name, or leave the peer out")
        peer = _peer(client, peers, key, skip_silent)
        if peer is None:
            continue
        if resolved.get(peer, zone) != zone:
            raise ConfigError(f"peer {peer} is given two zones: {resolved[peer]} and {zone}")
        resolved[peer] = zone
    return resolved


def _peer(client: ClusterClient, peers: set[int], key: str, skip_silent: bool) -> int | None:
    if key.isdigit():
        if int(key) not in peers:
            raise ConfigError(f"zone for peer {key}: no such peer in the cluster (peers: {sorted(peers)})")
        return int(key)
    found = client.probe_peer_id(key)
    if found is None and not skip_silent:
        raise ConfigError(f"zone for {key}: no Qdrant node answers there; give its peer id instead")
    return found


def describe(peers: Iterable[int], zones: Zones) -> str:
    """One line for a plan: how the peers fall into zones."""
    peers = sorted(peers)
    named = zone_counts((p for p in peers if p in zones), zones)
    alone = [p for p in peers if p not in zones]
    text = ", ".join(f"{zone} ({count})" for zone, count in sorted(named.items())) or "none given"
    if alone:
        text += f"; without a zone, each a zone of its own: peers {', '.join(map(str, alone))}"
    return f"zones: {text}"
