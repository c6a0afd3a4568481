"""Which cluster is which, by identity, never by URLs (docs/qdrant-behaviour.md §8): the Raft peer
ids each cluster answers with, the marker a standby carries (its role and the primary peers it
copies), and the scoped read-only token a standby's nodes use on the primary. cluster/standby.py
refuses every pair these say is wrong before any request that changes anything."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence

from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.errors import QdrantOpsError

MARKER = "qdrant_ops_standby"
MARKER_ID = 1


class StandbyError(QdrantOpsError):
    """The standby cannot be initialised or synced; the message says why and what to do."""


def cluster_status_via(client: ClusterClient, node: str | None, via: Sequence[str]) -> dict:
    """GET /cluster, or, for a key scoped to collections (the standby's token: Qdrant wants global
    access for /cluster), what the collections' cluster info says of the same: the answering peer
    and the peers that hold their replicas."""
    try:
        return client.cluster_status(node=node)
    except QdrantApiError as exc:
        if exc.status != 403 or not via:
            raise
    peers: dict[str, dict] = {}
    for name in via:
        info = client.collection_cluster(name, node=node)
        answering = info["peer_id"]
        peers.update((str(shard["peer_id"]), {}) for shard in info.get("remote_shards") or [])
    return {"status": "enabled", "peer_id": answering, "peers": {str(answering): {}, **peers}}


# -- identity ------------------------------------------------------------------------------------------
def cluster_peers(client: ClusterClient, via: Sequence[str] = ()) -> frozenset[int]:
    """The cluster's Raft peer ids, as the node it asks sees them; for a key scoped to the
    collections `via`, the peers holding their replicas (enough: two clusters never share one)."""
    status = cluster_status_via(client, None, via)
    peers = {int(peer) for peer in status.get("peers") or {}}
    return frozenset(peers or {int(status.get("peer_id") or 0)})


def pair_problem(
    primary_peers: frozenset[int],
    standby_peers: frozenset[int],
    primary_marker: dict | None,
    standby_marker: dict | None,
) -> str | None:
    """Why these two clusters are not a primary and its standby (None: they are). Pure."""
    shared = primary_peers & standby_peers
    if shared:
        return (
            f"the primary and the standby are one cluster (peer {min(shared)} answers in both): check "
            "--primary-url and --standby-url"
        )
    if primary_marker is not None and primary_marker.get("role") == "standby":
        return (
            f"the cluster named as primary carries the standby marker ({MARKER}): it is a standby; are the "
            "primary and the standby swapped?"
        )
    known = {str(peer) for peer in (standby_marker or {}).get("primary_peers") or []}
    current = sorted(str(peer) for peer in primary_peers)
    if known and not known & set(current):
        return (
            f"the standby holds data of another primary (its marker names primary peers "
            f"{', '.join(sorted(known)[:3])}; this primary has {', '.join(current[:3])})"
        )
    return None


def check_pair(
    primary: ClusterClient,
    standby: ClusterClient,
    standby_marker: dict | None,
    *,
    primary_may_be_lost: bool = False,
    via: Sequence[str] = (),
) -> frozenset[int]:
    """Refuse a pair that is not this primary and its standby; returns the primary's peers (none
    when `primary_may_be_lost` and it does not answer: a promotion goes on without it). `via`:
    the collections a scoped primary key may read (`cluster_peers`)."""
    try:
        primary_peers, primary_marker = cluster_peers(primary, via), read_marker(primary)
    except QdrantOpsError:
        if primary_may_be_lost:
            return frozenset()
        raise
    problem = pair_problem(primary_peers, cluster_peers(standby), primary_marker, standby_marker)
    if problem:
        raise StandbyError(f"{problem}; nothing was changed")
    return primary_peers


def scoped_token(primary_key: str, collections: Sequence[str], subject: str) -> str:
    """A JWT for the standby: what a sync needs on the primary and no more (docs/standby.md
    "What the standby can do on the primary"). Qdrant, with `jwt_rbac` on, takes HS256 tokens
    signed with its API key; a partial snapshot stream needs `rw` on its collection (write and
    extras; `prw` lacks extras, `r` lacks write: src/common/snapshots.rs at v1.18.3), and `r` on the
    marker collection lets a sync see a primary that is in fact a standby. No expiry: it is revoked
    by rotating the primary's API key. Deterministic, so a second playbook run changes nothing."""
    names = sorted(set(collections) - {MARKER})
    if not names:
        raise StandbyError(
            "a scoped token needs the collections to sync: the primary has none, or none was given"
        )
    access = [{"collection": name, "access": "rw"} for name in names] + [
        {"collection": MARKER, "access": "r"}
    ]
    header, claims = {"alg": "HS256", "typ": "JWT"}, {"sub": subject, "access": access}
    signed = _b64url(_compact_json(header)) + "." + _b64url(_compact_json(claims))
    return signed + "." + _b64url(hmac.new(primary_key.encode(), signed.encode(), hashlib.sha256).digest())


def _compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- the marker ----------------------------------------------------------------------------------------
def read_marker(standby: ClusterClient) -> dict | None:
    if MARKER not in standby.collection_names():
        return None
    points = standby.retrieve_points(MARKER, [MARKER_ID], with_payload=True)
    return points[0]["payload"] if points else None


def write_marker(standby: ClusterClient, payload: dict) -> None:
    standby.upsert_points(MARKER, [{"id": MARKER_ID, "vector": {}, "payload": payload}])


def require_standby(marker: dict | None) -> dict:
    if marker is None:
        raise StandbyError(
            f"this cluster carries no standby marker (collection {MARKER}): a sync would overwrite what it "
            "holds; run `qdrant-ops standby init` against it first"
        )
    if marker.get("role") != "standby":
        raise StandbyError(
            f"this cluster was promoted ({marker.get('promoted_at', 'time unknown')}) and takes writes "
            "of its own: a sync would overwrite them; set up a new standby instead"
        )
    return marker
