"""The zone rule in the placement planners (cluster/zones.py), property-based: generated clusters
with 2-5 zones of uneven sizes (and peers without a zone), any valid placement, drained peers. Every
plan is applied step by step with the rebalance tests' checker (a shard never loses a replica
while moving, never two replicas on one peer, transfer limits per batch)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdrant_ops.cluster import rebalance, replicas, zones
from tests.unit.test_rebalance import apply, balanced


@st.composite
def zoned_clusters(draw, *, uniform: bool = False):
    """Peers in 2-5 zones (uneven sizes unless `uniform`; some peers without a zone unless
    `uniform`), and collections placed on them any valid way."""
    zone_count = draw(st.integers(2, 5))
    if uniform:
        sizes = [draw(st.integers(1, 3))] * zone_count
    else:
        sizes = draw(st.lists(st.integers(1, 4), min_size=zone_count, max_size=zone_count))
    peers = list(range(1, sum(sizes) + 1))
    names = [f"zone-{chr(97 + z)}" for z, size in enumerate(sizes) for _ in range(size)]
    zone_map = dict(zip(peers, names, strict=True))
    if not uniform:
        for peer in draw(st.lists(st.sampled_from(peers), max_size=2, unique=True)):
            del zone_map[peer]  # a zone of its own
    placements = {}
    for index in range(draw(st.integers(1, 2))):
        factor = draw(st.integers(1, min(len(peers), 4)))
        placement = []
        for shard in range(draw(st.integers(1, 10))):
            holders = draw(st.permutations(peers))[:factor]
            placement += [{"shard_id": shard, "peer_id": p, "state": "Active"} for p in holders]
        placements[f"c{index}"] = placement
    return peers, placements, zone_map


def as_placements(state: dict[str, dict[int, set[int]]]) -> dict[str, list[dict]]:
    return {c: [{"shard_id": s, "peer_id": p, "state": "Active"} for s, h in shards.items() for p in h]
            for c, shards in state.items()}  # fmt: skip


def evenly_spread(state: dict[str, dict[int, set[int]]], peers: list[int], zone_map: dict) -> bool:
    return all(
        zones.spread_is_even(holders, peers, zone_map)
        for shards in state.values()
        for holders in shards.values()
    )


@settings(max_examples=400, deadline=None)
@given(zoned_clusters())
def test_a_rebalance_spreads_every_shard_over_the_zones_and_is_then_done(cluster):
    peers, placements, zone_map = cluster
    plan = rebalance.batches(rebalance.plan_moves(placements, peers, zones=zone_map))
    state = apply(placements, plan)
    assert evenly_spread(state, peers, zone_map)
    assert rebalance.plan_moves(as_placements(state), peers, zones=zone_map) == []  # nothing left to do
    assert zones.shared_zones(as_placements(state), peers, zone_map)[0] == []  # nothing avoidable reported


@settings(max_examples=300, deadline=None)
@given(zoned_clusters(uniform=True))
def test_with_zones_of_equal_size_the_counts_are_balanced_too(cluster):
    peers, placements, zone_map = cluster
    state = apply(placements, rebalance.batches(rebalance.plan_moves(placements, peers, zones=zone_map)))
    assert evenly_spread(state, peers, zone_map) and balanced(state, peers)


@settings(max_examples=300, deadline=None)
@given(zoned_clusters(), st.data())
def test_a_drain_empties_the_peer_and_keeps_the_zone_rule(cluster, data):
    peers, placements, zone_map = cluster
    drain = data.draw(st.sampled_from(peers))
    rest = [p for p in peers if p != drain]
    fits = bool(rest) and all(
        Counter(r["shard_id"] for r in placement)[shard] <= len(rest)
        for placement in placements.values()
        for shard in {r["shard_id"] for r in placement}
    )
    if not fits:
        with pytest.raises(rebalance.RebalanceError):
            rebalance.plan_moves(placements, peers, drain, zones=zone_map)
        return
    state = apply(
        placements, rebalance.batches(rebalance.plan_moves(placements, peers, drain, zones=zone_map))
    )
    assert all(drain not in holders for shards in state.values() for holders in shards.values())
    assert evenly_spread(state, rest, zone_map)


@settings(max_examples=300, deadline=None)
@given(zoned_clusters(), st.data())
def test_replication_puts_missing_replicas_in_the_emptiest_zones(cluster, data):
    """Drop one peer's replicas (a dead node), replicate back: the zone rule holds afterwards."""
    peers, placements, zone_map = cluster
    even = as_placements(
        apply(placements, rebalance.batches(rebalance.plan_moves(placements, peers, zones=zone_map)))
    )
    dead = data.draw(st.sampled_from(peers))
    rest = [p for p in peers if p != dead]
    factors = {c: max(Counter(r["shard_id"] for r in p).values()) for c, p in even.items()}
    survivors = {c: [r for r in p if r["peer_id"] != dead] for c, p in even.items()}
    if (
        not rest
        or any(f > len(rest) for f in factors.values())
        or any(not {r["shard_id"] for r in survivors[c]} >= {r["shard_id"] for r in even[c]} for c in even)
    ):
        return  # refused elsewhere (tests/unit/test_replicas.py): a shard left without any replica
    plan = replicas.plan_replication(survivors, factors, rest, zones=zone_map)
    state = {c: {} for c in survivors}
    for c, placement in survivors.items():
        for replica in placement:
            state[c].setdefault(replica["shard_id"], set()).add(replica["peer_id"])
    for item in plan:
        assert item.to_peer not in state[item.collection][item.shard_id]
        state[item.collection][item.shard_id].add(item.to_peer)
    assert evenly_spread(state, rest, zone_map)


def test_two_replicas_in_one_zone_are_moved_apart():
    zone_map = {1: "a", 2: "a", 3: "b", 4: "b"}
    placement = [{"shard_id": 0, "peer_id": p, "state": "Active"} for p in (1, 2)]
    placement += [{"shard_id": 1, "peer_id": p, "state": "Active"} for p in (3, 4)]
    assert zones.shared_zones({"c": placement}, [1, 2, 3, 4], zone_map) == (
        ["c shard 0: 2 in a", "c shard 1: 2 in b"],
        [],
    )
    moves = rebalance.plan_moves({"c": placement}, [1, 2, 3, 4], zones=zone_map)
    state = apply({"c": placement}, rebalance.batches(moves))
    assert all(len(zones.zone_counts(h, zone_map)) == 2 for h in state["c"].values())
    assert len(moves) == 2


def test_too_few_zones_is_reported_as_such_not_as_a_problem():
    zone_map = {1: "a", 2: "a", 3: "b"}
    placement = [{"shard_id": 0, "peer_id": p, "state": "Active"} for p in (1, 2, 3)]  # rf 3, 2 zones
    assert zones.shared_zones({"c": placement}, [1, 2, 3], zone_map) == ([], ["c shard 0: 2 in a"])
    assert rebalance.plan_moves({"c": placement}, [1, 2, 3], zones=zone_map) == []


def test_without_zones_every_peer_is_a_zone_of_its_own():
    placement = [{"shard_id": s, "peer_id": 1 + s % 2, "state": "Active"} for s in range(4)]
    assert zones.shared_zones({"c": placement}, [1, 2, 3], {}) == ([], [])
    assert rebalance.plan_moves({"c": placement}, [1, 2, 3]) == rebalance.plan_moves(
        {"c": placement}, [1, 2, 3], zones={}
    )
