"""Replicas back to the replication factor after a node is lost: the pure plan, and
`qdrant-ops cluster repair` against the REST stub (dead peer removed with force, one transfer at
a time, the end state checked). With a real Qdrant: tests/e2e/test_replace_node_real_qdrant.py."""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import pytest

from qdrant_ops.cli import EXIT_ERROR, EXIT_USAGE, main
from qdrant_ops.cluster import replicas
from qdrant_ops.errors import ConfigError


def spread(shards: int, factor: int, peers: list[int]) -> list[dict]:
    return [{"shard_id": s, "peer_id": peers[(s + r) % len(peers)], "state": "Active"}
            for s in range(shards) for r in range(factor)]  # fmt: skip


def test_plan_restores_the_factor_on_the_preferred_peer_first():
    placement = [r for r in spread(6, 2, [1, 2, 3]) if r["peer_id"] != 3]  # peer 3 died and was removed
    plan = replicas.plan_replication({"c": placement}, {"c": 2}, [1, 2, 4], prefer=4)
    assert {(p.shard_id, p.to_peer) for p in plan} == {(1, 4), (2, 4), (4, 4), (5, 4)}
    assert all(p.from_peer in (1, 2) for p in plan)
    placement += [{"shard_id": p.shard_id, "peer_id": p.to_peer, "state": "Active"} for p in plan]
    assert replicas.plan_replication({"c": placement}, {"c": 2}, [1, 2, 4]) == []  # nothing left


def test_plan_spreads_over_the_least_loaded_peers_without_a_preference():
    placement = [{"shard_id": s, "peer_id": 1, "state": "Active"} for s in range(4)]
    plan = replicas.plan_replication({"c": placement}, {"c": 3}, [1, 2, 3, 4])
    per_peer = {peer: sum(p.to_peer == peer for p in plan) for peer in (2, 3, 4)}
    assert len(plan) == 8 and max(per_peer.values()) - min(per_peer.values()) <= 1
    assert all(len({p.to_peer for p in plan if p.shard_id == s}) == 2 for s in range(4))  # never twice


@pytest.mark.parametrize(
    ("placement", "factor", "peers", "message"),
    [
        ([{"shard_id": 0, "peer_id": 1, "state": "Dead"}], 2, [1, 2], "no Active replica"),
        ([{"shard_id": 0, "peer_id": 1, "state": "Active"}], 3, [1, 2], "only 2 peers can hold it"),
    ],
)
def test_plan_refusals(placement, factor, peers, message):
    with pytest.raises(replicas.ReplicationError, match=message):
        replicas.plan_replication({"c": placement}, {"c": factor}, peers)


@pytest.fixture
def cli(replacement_joined, capsys):
    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_repair_removes_the_dead_peer_and_refills_the_new_one(cli, qdrant_stub):
    code, out, _ = cli(
        "cluster", "repair", "--remove-peer", "1002", "--to-peer", "1003", "--dry-run", "--json"
    )
    assert code == 0 and json.loads(out)["removed_peers"] == []  # a dry run removes nothing
    assert 1002 in qdrant_stub.state.peer_ids and qdrant_stub.state.replications == []

    code, out, err = cli("cluster", "repair", "--remove-peer", "1002", "--to-peer", "1003", "--json")

    assert code == 0, err
    report = json.loads(out)
    assert report["removed_peers"] == [1002] and 1002 not in qdrant_stub.state.peer_ids
    moved = sorted((r["shard_id"], r["to_peer"]) for r in report["replications"])
    assert moved == [(1, 1003), (2, 1003), (4, 1003), (5, 1003)]  # the shards peer 1002 held
    assert [(o["kind"], o["method"]) for o in qdrant_stub.state.replications] == [
        ("replicate_shard", "stream_records")
    ] * 4
    held = {}
    for replica in qdrant_stub.state.replicas("cities"):
        held.setdefault(replica["shard_id"], set()).add(replica["peer_id"])
    assert all(len(peers) == 2 for peers in held.values())

    code, out, _ = cli("cluster", "repair", "--json")  # a second run has nothing to do
    assert code == 0 and json.loads(out)["replications"] == []


def test_repair_refuses_an_unknown_target_peer(cli):
    code, _, err = cli("cluster", "repair", "--to-peer", "4242")
    assert code == EXIT_ERROR and "peer 4242 is not in the cluster" in err


def test_repair_never_removes_the_leader_or_a_peer_that_answers(cli, qdrant_stub, stub_nodes, monkeypatch):
    code, _, err = cli("cluster", "repair", "--remove-peer", "1000")
    assert code == EXIT_ERROR and "peer 1000 is the raft leader, so it is alive" in err
    # Peer 1001 of another stub cluster answers on the REST port its p2p host has.
    monkeypatch.setenv("QDRANT_URL", stub_nodes[1].url)
    stub_nodes[1].state.peer_uris[1001] = "http://127.0.0.1:6335/"
    code, _, err = cli("cluster", "repair", "--remove-peer", "1001", "--remove-peer", "1002")
    assert code == EXIT_ERROR and f"peer 1001 answers at {stub_nodes[1].url}, so it is not dead" in err
    assert stub_nodes[1].state.peer_ids == [1000, 1001, 1002]  # nothing removed, 1002 neither


class Listener:
    """Something listening on host:port that answers every connection with `reply` and closes."""

    def __init__(self, host: str, port: int, reply: bytes) -> None:
        self.sock = socket.create_server((host, port))
        self.reply = reply
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.sock.accept()
                with connection:
                    connection.recv(4096)
                    connection.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


LIVE_ANSWERS = {
    "REST 401 (rotated key)": ("rest", b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"),
    "REST 503 (loading)": ("rest", b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
    "REST not TLS-clean": ("rest", b"\x15\x03\x03\x00\x02\x02\x28"),  # a TLS alert to a plain request
    "p2p only": ("p2p", b"\x00\x00"),
}


@pytest.mark.parametrize("case", list(LIVE_ANSWERS))
def test_a_peer_that_answers_anything_is_not_dead(case, cli, qdrant_stub):
    where, reply = LIVE_ANSWERS[case]
    rest_port = int(qdrant_stub.url.rsplit(":", 1)[1])
    host = "127.77.9.1"  # the peer's own loopback address: its REST port is the cluster's
    listener = Listener(host, rest_port if where == "rest" else 6335, reply)
    qdrant_stub.state.peer_uris[1002] = f"http://{host}:6335/"
    try:
        code, _, err = cli("cluster", "repair", "--remove-peer", "1002")
    finally:
        listener.close()
    port = rest_port if where == "rest" else 6335
    assert code == EXIT_ERROR and f"peer 1002 still accepts connections on {host}:{port}" in err, err
    assert 1002 in qdrant_stub.state.peer_ids  # nothing removed


def test_repair_refuses_to_drop_the_only_replica_unless_allowed(cli, qdrant_stub):
    qdrant_stub.state.create("single", {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3})
    code, _, err = cli("cluster", "repair", "--remove-peer", "1002")
    assert code == EXIT_ERROR and "peer 1002 holds the only Active replica of single shard 2" in err
    assert 1002 in qdrant_stub.state.peer_ids
    code, out, err = cli("cluster", "repair", "--remove-peer", "1002", "--allow-data-loss", "--json")
    assert code == 0, err
    assert json.loads(out)["removed_peers"] == [1002] and 1002 not in qdrant_stub.state.peer_ids


@pytest.mark.parametrize("value", ["-5", "x", "18446744073709551616"])
def test_a_peer_id_that_cannot_be_one_is_refused_before_anything(value, cli, qdrant_stub, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["cluster", "repair", "--remove-peer", value])
    assert stop.value.code == EXIT_USAGE and "is not a peer id" in capsys.readouterr().err
    assert 1002 in qdrant_stub.state.peer_ids and qdrant_stub.state.replications == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"remove": (5, -1)}, "a peer to remove must be a peer id"),
        ({"prefer": "7"}, "the preferred peer must be a peer id"),
        ({"method": "copy"}, "unknown transfer method 'copy'"),
        ({"timeout": -1}, "the transfer timeout must be positive"),
    ],
)
def test_repair_options_refuse_what_no_run_can_do(options, message):
    with pytest.raises(ConfigError, match=message):
        replicas.RepairOptions(**options)


def test_repair_options_remove_each_peer_once():
    assert replicas.RepairOptions(remove=[7, 8, 7]).remove == (7, 8)
