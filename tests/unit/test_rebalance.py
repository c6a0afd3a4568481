"""Rebalance and drain planning, property-based over many placements (hypothesis), and the
execution through `qdrant-ops cluster rebalance` against the REST stub (the module run by
ansible-playbook: tests/integration/test_rebalance.py). With a real Qdrant (grow 3 -> 4 under a
writer, drain back): tests/e2e/test_rebalance_real_qdrant.py."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from qdrant_ops.cli import EXIT_ERROR, EXIT_USAGE, main
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import rebalance
from qdrant_ops.errors import ConfigError


@st.composite
def clusters(draw):
    """Peers, and collections placed on them any valid way (distinct peers per shard)."""
    peers = draw(st.lists(st.integers(1, 10_000), min_size=1, max_size=7, unique=True))
    placements = {}
    for index in range(draw(st.integers(1, 3))):
        factor = draw(st.integers(1, len(peers)))
        placement = []
        for shard in range(draw(st.integers(1, 12))):
            holders = draw(st.permutations(peers))[:factor]
            placement += [{"shard_id": shard, "peer_id": p, "state": "Active"} for p in holders]
        placements[f"c{index}"] = placement
    return peers, placements


def apply(placements: dict, plan: list[list[rebalance.ShardTransfer]]) -> dict[str, dict[int, set[int]]]:
    """Run the plan on a copy, checking every step is valid; returns collection -> shard -> peers."""
    state = {c: {} for c in placements}
    for collection, placement in placements.items():
        for replica in placement:
            state[collection].setdefault(replica["shard_id"], set()).add(replica["peer_id"])
    counts = {c: {s: len(h) for s, h in shards.items()} for c, shards in state.items()}
    for batch in plan:
        assert max(Counter(m.from_peer for m in batch).values()) <= 1  # outgoing limit 1
        assert max(Counter(m.to_peer for m in batch).values()) <= 1  # incoming limit 1
        assert len({(m.collection, m.shard_id) for m in batch}) == len(batch)  # a shard moves once per batch
        for move in batch:
            holders = state[move.collection][move.shard_id]
            assert move.from_peer in holders and move.to_peer not in holders  # never two on one peer
            holders.add(move.to_peer)  # copied first: the count never drops below what it was
            holders.discard(move.from_peer)
            assert len(holders) == counts[move.collection][move.shard_id]
    return state


def balanced(state: dict[str, dict[int, set[int]]], peers: list[int]) -> bool:
    for shards in state.values():
        load = Counter({p: 0 for p in peers})
        load.update(p for holders in shards.values() for p in holders)
        if max(load.values()) - min(load.values()) > 1:
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_the_plan_balances_every_collection_step_by_step_valid(cluster):
    peers, placements = cluster
    plan = rebalance.batches(rebalance.plan_moves(placements, peers))
    state = apply(placements, plan)
    assert balanced(state, peers)
    again = {c: [{"shard_id": s, "peer_id": p, "state": "Active"} for s, h in shards.items() for p in h]
             for c, shards in state.items()}  # fmt: skip
    assert rebalance.plan_moves(again, peers) == []  # idempotent on a balanced cluster


@settings(max_examples=300, deadline=None)
@given(clusters(), st.data())
def test_a_drain_empties_the_peer_or_refuses_before_any_move(cluster, data):
    peers, placements = cluster
    drain = data.draw(st.sampled_from(peers))
    rest = [p for p in peers if p != drain]
    fits = bool(rest) and all(
        len({r["peer_id"] for r in placement if r["shard_id"] == shard}) <= len(rest)
        for placement in placements.values()
        for shard in {r["shard_id"] for r in placement}
    )
    if not fits:
        with pytest.raises(rebalance.RebalanceError):
            rebalance.plan_moves(placements, peers, drain)
        return
    state = apply(placements, rebalance.batches(rebalance.plan_moves(placements, peers, drain)))
    assert all(drain not in holders for shards in state.values() for holders in shards.values())
    assert balanced(state, rest)


def test_batches_respect_higher_limits_and_keep_a_shards_moves_in_order():
    moves = [
        rebalance.ShardTransfer("c", 0, 1, 2),
        rebalance.ShardTransfer("c", 0, 2, 3),
        rebalance.ShardTransfer("c", 1, 1, 3),
    ]
    plan = rebalance.batches(moves, incoming_limit=2, outgoing_limit=2)
    assert plan == [[moves[0], moves[2]], [moves[1]]]


@pytest.mark.parametrize(
    ("peers", "drain", "message"),
    [([1, 2], 9, "peer 9 is not in the cluster"), ([1], 1, "the last node")],
)
def test_bad_drains_are_refused(peers, drain, message):
    with pytest.raises(rebalance.RebalanceError, match=message):
        rebalance.plan_moves({"c": [{"shard_id": 0, "peer_id": 1, "state": "Active"}]}, peers, drain)


# -- execution against the stub ----------------------------------------------------------------------


def loads(stub) -> Counter:
    counted = Counter({p: 0 for p in stub.state.peer_ids})
    counted.update(r["peer_id"] for r in stub.state.replicas("cities"))
    return counted


def test_cli_dry_run_prints_the_table_then_rebalances_then_nothing_left(grown, capsys):
    assert main(["cluster", "rebalance", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan (dry run, nothing changed)" in out and "BATCH" in out and grown.state.replications == []
    assert main(["cluster", "rebalance", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sum(len(b) for b in report["batches"]) == 3 and loads(grown)[1003] == 3
    assert {o["kind"] for o in grown.state.replications} == {"move_shard"}
    assert max(loads(grown).values()) - min(loads(grown).values()) <= 1
    assert main(["cluster", "rebalance", "--json"]) == 0  # a re-run has nothing to do
    assert json.loads(capsys.readouterr().out)["batches"] == []


def test_cli_drain_and_its_refusal(grown, capsys):
    assert main(["cluster", "rebalance", "--drain", "1003"]) == 0  # holds nothing yet
    assert main(["cluster", "rebalance", "--drain", "1000"]) == 0
    assert loads(grown)[1000] == 0
    grown.state.peer_ids.remove(1000)
    grown.state.peer_ids.remove(1003)
    assert main(["cluster", "rebalance", "--drain", "1001"]) == EXIT_ERROR  # factor 2 on 2 peers
    assert "only 1 peers would remain" in capsys.readouterr().err


def test_a_drained_peer_is_removed_without_force_and_one_that_holds_shards_is_refused(grown):
    with ClusterClient([grown.url], "stub-secret-key") as client:
        assert rebalance.peer_of(client, grown.url) == 1000
        with pytest.raises(rebalance.RebalanceError, match="still holds replicas of cities: drain it first"):
            rebalance.remove_drained(client, 1002)
        assert 1002 in grown.state.peer_ids  # nothing removed
        assert rebalance.remove_drained(client, 1003, dry_run=True) and 1003 in grown.state.peer_ids
        assert rebalance.remove_drained(client, 1003) and 1003 not in grown.state.peer_ids
        assert not rebalance.remove_drained(client, 1003)  # already gone
    deletes = [r for r in grown.state.requests if r[0] == "DELETE"]
    assert [(path, query) for _, path, query, *_ in deletes] == [("/cluster/peer/1003", {"timeout": ["60"]})]


def test_cli_drain_then_remove_and_its_usage_error(grown, capsys):
    assert main(["cluster", "rebalance", "--remove"]) == EXIT_USAGE
    assert "--remove needs --drain PEER_ID" in capsys.readouterr().err
    assert main(["cluster", "rebalance", "--drain", "1002", "--remove", "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["removed_peer"] and planned["batches"] and 1002 in grown.state.peer_ids
    assert main(["cluster", "rebalance", "--drain", "1002", "--remove"]) == 0
    assert "peer 1002 removed" in capsys.readouterr().out and 1002 not in grown.state.peer_ids


def test_cli_zones_status_warns_then_rebalance_spreads_the_replicas(grown, capsys, tmp_path):
    """Peers 1000 and 1001 in zone a, 1002 and 1003 in b: shards 0 and 3 start with both replicas
    in zone a. The zones come as a file (peer ids) and as --zone with the node's URL."""
    zones_file = tmp_path / "zones.yml"
    zones_file.write_text("1001: a\n1002: b\n1003: b\n")
    zone_args = ["--zones-file", str(zones_file), "--zone", f"{grown.url}=a"]  # the stub answers as 1000
    textfile = tmp_path / "qdrant_ops_placement.prom"
    assert main(["cluster", "status", *zone_args, "--textfile", str(textfile)]) == 0
    out = capsys.readouterr().out
    assert out.count("WARNING: replicas share a zone, avoidably") == 2
    families = text_string_to_metric_families(textfile.read_text())
    metrics = {(s.name, s.labels.get("kind")): s.value for f in families for s in f.samples}
    assert metrics[("qdrant_ops_shards_sharing_zone", "avoidable")] == 2
    assert metrics[("qdrant_ops_shards_sharing_zone", "too_few_zones")] == 0
    assert metrics[("qdrant_ops_placement_check_timestamp_seconds", None)] > 1.7e9
    assert "cities shard 0: 2 in a" in out and "cities shard 3: 2 in a" in out
    assert main(["cluster", "rebalance", *zone_args]) == 0
    assert "zones: a (2), b (2)" in capsys.readouterr().err
    holders: dict[int, set[int]] = {}
    for replica in grown.state.replicas("cities"):
        holders.setdefault(replica["shard_id"], set()).add(replica["peer_id"])
    zone = {1000: "a", 1001: "a", 1002: "b", 1003: "b"}
    assert all({zone[p] for p in peers} == {"a", "b"} for peers in holders.values())
    assert sorted(loads(grown).values()) == [3, 3, 3, 3]
    assert main(["cluster", "status", *zone_args]) == 0
    assert "WARNING" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("zone_args", "message"),
    [
        (["--zone", "1000"], "--zone must look like PEER_OR_URL=ZONE"),
        (["--zone", "4242=a"], "zone for peer 4242: no such peer in the cluster"),
        (["--zone", "http://127.0.0.1:9=a"], "no Qdrant node answers there; give its peer id instead"),
        (["--zone", "1000=a", "--zone", "1000=b"], "1000 is given two zones: a and b"),
        (["--zones-file", "/nonexistent/zones.yml"], "cannot read the zones file"),
    ],
)
def test_cli_bad_zones_are_refused_before_any_move(grown, capsys, zone_args, message):
    assert main(["cluster", "rebalance", *zone_args]) == EXIT_ERROR
    assert message in capsys.readouterr().err and grown.state.replications == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "rsync"}, "unknown transfer method 'rsync': use one of stream_records"),
        ({"incoming_limit": 0}, "transfer limits must be at least 1, got incoming 0"),
        ({"timeout": 0}, "the transfer timeout must be positive"),
        ({"remove_drained": True}, "removing the drained peer needs the peer to drain"),
        ({"drain": -1}, "drain must be a peer id"),
        ({"drain": True}, "drain must be a peer id"),
    ],
)
def test_rebalance_options_refuse_what_no_run_can_do(options, message):
    """Checked once where the options are built, for the CLI and the module alike."""
    with pytest.raises(ConfigError, match=message):
        rebalance.RebalanceOptions(**options)
