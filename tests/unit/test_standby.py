"""The warm standby's pure parts: which primary replica each standby replica syncs from, and the
marker rules (the syncs themselves against real Qdrant: tests/e2e/test_standby_real_qdrant.py)."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from qdrant_ops.client import QdrantApiError
from qdrant_ops.cluster import standby, standby_identity, standby_metrics
from qdrant_ops.errors import ConfigError


def replica(shard: int, peer: int, state: str = "Active") -> dict:
    return {"shard_id": shard, "peer_id": peer, "state": state}


PRIMARY_URLS = {1: "http://p1:6333", 2: "http://p2:6333", 3: "http://p3:6333"}
STANDBY_URLS = {11: "http://s1:6333", 12: "http://s2:6333", 13: "http://s3:6333"}


def test_each_shard_crosses_once_then_its_other_standby_replicas_copy_the_first():
    primary = [replica(0, 1), replica(0, 2), replica(1, 2), replica(1, 3, "Dead")]
    target = [replica(0, 11), replica(0, 12), replica(1, 12), replica(1, 13)]
    transfers = standby.plan_transfers("docs", primary, target, PRIMARY_URLS, STANDBY_URLS)
    assert [(t.shard_id, t.standby_peer, t.source_peer, t.from_primary) for t in transfers] == [
        (0, 11, 1, True), (1, 13, 2, True),  # first hops: spread by shard, never from the Dead replica
        (0, 12, 11, False), (1, 12, 13, False),  # then each other replica from its shard's first
    ]  # fmt: skip
    assert transfers[0].standby_url == "http://s1:6333" and transfers[0].source_url == "http://p1:6333"
    assert transfers[2].source_url == "http://s1:6333"
    # Promotion repeats the second hops alone, from the same first replicas.
    assert standby.plan_reconcile("docs", target, STANDBY_URLS) == transfers[2:]


def test_the_first_standby_replica_is_an_active_one():
    primary = [replica(0, 1)]
    target = [replica(0, 11, "Dead"), replica(0, 12), replica(0, 13)]
    transfers = standby.plan_transfers("docs", primary, target, PRIMARY_URLS, STANDBY_URLS)
    assert [(t.standby_peer, t.source_peer, t.from_primary) for t in transfers] == [
        (12, 1, True), (11, 12, False), (13, 12, False),
    ]  # fmt: skip


def test_a_shard_without_an_active_primary_replica_is_refused():
    with pytest.raises(standby_identity.StandbyError, match="shard 1 has no Active replica on the primary"):
        standby.plan_transfers("docs", [replica(0, 1), replica(1, 2, "Partial")],
                               [replica(0, 11), replica(1, 12)], PRIMARY_URLS, STANDBY_URLS)  # fmt: skip


def test_a_different_shard_number_is_refused():
    with pytest.raises(
        standby_identity.StandbyError, match=r"the standby has shards \[0\], the primary \[0, 1\]"
    ):
        standby.plan_transfers(
            "docs", [replica(0, 1), replica(1, 2)], [replica(0, 11)], PRIMARY_URLS, STANDBY_URLS
        )


def test_a_standby_peer_no_url_answers_as_is_refused():
    with pytest.raises(
        standby_identity.StandbyError, match="standby peer 99 holds shard 0 but no --standby-url"
    ):
        standby.plan_transfers("docs", [replica(0, 1)], [replica(0, 99)], PRIMARY_URLS, STANDBY_URLS)


def test_only_a_cluster_marked_standby_is_synced():
    with pytest.raises(standby_identity.StandbyError, match="carries no standby marker"):
        standby_identity.require_standby(None)
    with pytest.raises(standby_identity.StandbyError, match=r"was promoted \(yesterday\) and takes writes"):
        standby_identity.require_standby({"role": "promoted", "promoted_at": "yesterday"})
    assert standby_identity.require_standby({"role": "standby"}) == {"role": "standby"}


PRIMARY, STANDBY = frozenset({1, 2, 3}), frozenset({11, 12, 13})


def test_which_cluster_is_which_is_decided_by_peer_ids_not_urls():
    standby_marker = {"role": "standby", "primary_peers": ["1", "2", "3"]}
    assert standby_identity.pair_problem(PRIMARY, STANDBY, None, standby_marker) is None
    # One cluster named twice (a sync whose primary is the standby itself, under other URLs).
    assert "one cluster (peer 11 answers in both)" in standby_identity.pair_problem(
        STANDBY, STANDBY, None, None
    )
    # Swapped: the "primary" carries the standby marker.
    swapped = standby_identity.pair_problem(STANDBY, PRIMARY, standby_marker, None)
    assert "carries the standby marker" in swapped and "swapped" in swapped
    # A standby of another primary; a primary that replaced some nodes is still the same one.
    other = standby_identity.pair_problem(frozenset({7, 8, 9}), STANDBY, None, standby_marker)
    assert "holds data of another primary" in other and "this primary has 7, 8, 9" in other
    assert standby_identity.pair_problem(frozenset({1, 2, 4}), STANDBY, None, standby_marker) is None
    # A promoted cluster may be the primary of a new standby; a marker without peers learns them.
    assert standby_identity.pair_problem(PRIMARY, STANDBY, {"role": "promoted"}, {"role": "standby"}) is None


def test_the_scoped_token_is_an_hs256_jwt_with_rw_on_the_synced_collections_and_r_on_the_marker():
    token = standby_identity.scoped_token(
        "primary-key", ["docs", "books", "docs", standby_identity.MARKER], "standby-dr"
    )
    header, claims, signature = token.split(".")
    expected = hmac.new(b"primary-key", f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    assert decode(header) == {"alg": "HS256", "typ": "JWT"}
    assert decode(claims) == {
        "sub": "standby-dr",
        "access": [  # each collection once: Qdrant refuses a token naming one twice
            {"collection": "books", "access": "rw"},
            {"collection": "docs", "access": "rw"},
            {"collection": standby_identity.MARKER, "access": "r"},
        ],
    }
    assert "exp" not in decode(claims)  # revoked by rotating the primary's key, never by surprise
    assert token == standby_identity.scoped_token(
        "primary-key", ["books", "docs"], "standby-dr"
    )  # idempotent runs
    with pytest.raises(standby_identity.StandbyError, match="needs the collections to sync"):
        standby_identity.scoped_token("primary-key", [standby_identity.MARKER], "standby-dr")


def decode(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class ScopedPrimary:
    """A primary asked with the standby's token: /cluster is forbidden (global access), the
    collections' cluster info is not."""

    def cluster_status(self, node=None):
        raise QdrantApiError(node or "n1", "GET", "/cluster", 403, "Forbidden: Global access is required")

    def collection_cluster(self, name, node=None):
        answering = {"http://p2:6333": 12}.get(node, 11)
        remote = [{"shard_id": 0, "peer_id": 11 if answering == 12 else 12}, {"shard_id": 1, "peer_id": 13}]
        return {"peer_id": answering, "local_shards": [], "remote_shards": remote}


def test_a_scoped_key_finds_peers_through_the_collections_it_may_read():
    primary = ScopedPrimary()
    assert standby_identity.cluster_peers(primary, ["docs"]) == {11, 12, 13}
    assert standby.peer_urls(primary, ["http://p1:6333", "http://p2:6333"], ["docs"]) == {
        11: "http://p1:6333", 12: "http://p2:6333"}  # fmt: skip
    with pytest.raises(QdrantApiError, match="403"):  # nothing to go by: the refusal is shown
        standby_identity.cluster_peers(primary)


def test_while_a_sync_runs_its_textfile_says_until_when_replicas_may_be_not_active(tmp_path):
    busy_file = tmp_path / standby_metrics.SyncBusy.FILE
    with pytest.raises(RuntimeError), standby_metrics.SyncBusy(tmp_path, "dr", bound=600) as busy:
        first = busy_file.read_text()
        assert 'qdrant_ops_standby_sync_busy_until_timestamp_seconds{cluster="dr"}' in first
        until = float(first.split("}")[-1])
        assert time.time() + 590 < until <= time.time() + 600
        time.sleep(0.01)
        busy.refresh()  # a finished piece moves the time on
        assert float(busy_file.read_text().split("}")[-1]) > until
        raise RuntimeError("the sync failed")
    assert not busy_file.exists()  # ended, also by a failure: nothing stays hidden


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"collections": ("docs", "../x")}, "collection '../x' cannot be copied"),
        ({"collections": (standby_identity.MARKER,)}, "cannot be copied"),
        ({"timeout": 0}, "the timeout must be positive"),
    ],
)
def test_standby_options_refuse_what_no_run_can_do(options, message):
    with pytest.raises(ConfigError, match=message):
        standby.StandbyOptions(**options)


def test_a_sync_has_no_dry_run_and_says_where_to_look_instead():
    with pytest.raises(ConfigError, match="standby init --dry-run"):
        standby.sync(None, None, standby.StandbyOptions(dry_run=True))
