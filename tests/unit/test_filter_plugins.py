"""The health filter the qdrant role waits on between node restarts."""

import hashlib

import pytest

from qdrant_ops.cluster.health import unhealthy_replicas
from tests.support.collection import plugin

filters = plugin("filter", "qdrant")
unhealthy = filters.FilterModule().filters()["qdrant_unhealthy_replicas"]


def result(item, local, remote, status=200):
    body = {
        "peer_id": 1,
        "shard_count": 2,
        "local_shards": local,
        "remote_shards": remote,
        "shard_transfers": [],
    }
    return {"item": item, "status": status, "json": {"result": body, "status": "ok"}}


def test_all_active_is_healthy():
    ok = result(
        "a",
        [{"shard_id": 0, "points_count": 5, "state": "Active"}],
        [{"shard_id": 0, "peer_id": 2, "state": "Active"}],
    )
    assert unhealthy({"results": [ok]}) == []
    assert unhealthy(ok) == []  # one `until` attempt is a single result


def test_healthy_means_what_the_library_says():
    """One definition (qdrant_ops.cluster.health): a Listener replica serves no reads, so the role's
    health gate and `qdrant-ops cluster status` both call it unhealthy."""
    listener = result("a", [{"shard_id": 0, "points_count": 5, "state": "Active"}],
                      [{"shard_id": 0, "peer_id": 2, "state": "Listener"}])  # fmt: skip
    assert unhealthy(listener) == ["a: shard 0 on peer 2 Listener"]
    placement = [
        {"shard_id": 0, "peer_id": 1, "state": "Active"},
        {"shard_id": 0, "peer_id": 2, "state": "Listener"},
    ]
    assert unhealthy_replicas(placement) == [placement[1]]


def test_dead_partial_and_unanswered_are_named():
    bad = result(
        "cities",
        [{"shard_id": 0, "points_count": 5, "state": "Partial"}],
        [{"shard_id": 1, "peer_id": 3, "state": "Dead"}, {"shard_id": 1, "peer_id": 2, "state": "Active"}],
    )
    down = {"item": "places", "status": -1, "msg": "Connection refused"}
    assert unhealthy({"results": [bad, down]}) == [
        "cities: shard 0 on peer 1 Partial, shard 1 on peer 3 Dead",
        "places: HTTP -1",
    ]


def test_no_collections_is_healthy():
    assert unhealthy({"results": []}) == []


def test_rest_urls_follow_each_hosts_tls_and_port():
    # TLS is on unless a host turns it off, as in the qdrant role's defaults.
    urls = filters.FilterModule().filters()["qdrant_rest_urls"]
    hostvars = {
        "q1": {"ansible_host": "10.0.1.10"},
        "q2": {"ansible_host": "10.0.2.10", "qdrant_tls_enabled": "true", "qdrant_http_port": "7333"},
        "q3": {"qdrant_tls_enabled": False},
    }
    assert urls(["q1", "q2", "q3"], hostvars) == [
        "https://10.0.1.10:6333",
        "https://10.0.2.10:7333",
        "http://q3:6333",
    ]


def test_node_zones_are_keyed_by_the_same_urls_and_skip_hosts_without_a_zone():
    zones = filters.FilterModule().filters()["qdrant_node_zones"]
    hostvars = {
        "q1": {"ansible_host": "10.0.1.10", "qdrant_zone": "eu-west-1a"},
        "q2": {"ansible_host": "10.0.2.10", "qdrant_tls_enabled": True, "qdrant_zone": "eu-west-1b"},
        "q3": {"ansible_host": "10.0.3.10", "qdrant_zone": ""},
        "q4": {"ansible_host": "10.0.4.10"},
    }
    hostvars = {name: {"qdrant_tls_enabled": False} | facts for name, facts in hostvars.items()}
    assert zones(["q1", "q2", "q3", "q4"], hostvars) == {
        "http://10.0.1.10:6333": "eu-west-1a",
        "https://10.0.2.10:6333": "eu-west-1b",
    }


def test_web_password_hash_is_bcrypt_stable_and_checks():
    import bcrypt  # noqa: PLC0415

    web_hash = filters.FilterModule().filters()["web_password_hash"]
    key = "k" * 32
    first = web_hash("s3cret-password", key, "mon-1 monitoring")
    assert first.startswith("$2b$10$") and len(first) == 60
    assert web_hash("s3cret-password", key, "mon-1 monitoring") == first  # a second run changes nothing
    assert web_hash("s3cret-password", key, "mon-2 monitoring") != first  # another host, another salt
    assert bcrypt.checkpw(b"s3cret-password", first.encode())
    assert not bcrypt.checkpw(b"other", first.encode())


def test_the_bcrypt_salt_cannot_be_computed_without_the_deployments_salt_key():
    web_hash = filters.FilterModule().filters()["web_password_hash"]

    def salt(key: str) -> str:
        return web_hash("s3cret-password", key, "mon-1 monitoring")[7:29]

    assert salt("a" * 32) != salt("b" * 32)
    # The salt used to be derived from public facts and the password alone: anyone could compute it.
    public = hashlib.sha256(b"mon-1 monitoring\0s3cret-password").digest()
    assert salt("a" * 32)[:21] != bytes(filters.BCRYPT_ALPHABET[b % 64] for b in public[:21]).decode()
    for weak in ("", "short"):
        with pytest.raises(ValueError, match="salt key of at least 16 characters"):
            web_hash("s3cret-password", weak, "mon-1 monitoring")
