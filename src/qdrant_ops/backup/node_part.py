"""One node's part of a backup set: a snapshot of every shard the node is the designated source of
(one Active replica per shard, chosen the same way on every node), streamed to S3 under the node's
own keys, then its part record (docs/qdrant-behaviour.md §3).

Each run is an attempt with its own folder (nodes/<node>/<attempt>/); every object is written once,
the part record only when the attempt succeeded, a failure record under failed/<attempt>.json
otherwise. So a failed attempt never blocks the next, and nothing a node wrote changes later
(docs/backup-trust.md)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import botocore.exceptions

from qdrant_ops.backup import s3
from qdrant_ops.backup.catalog import set_manifest
from qdrant_ops.backup.model import (
    ID_FORMAT,
    MANIFEST_FORMAT,
    BackupError,
    BackupSettings,
    check_name,
    iso_time,
    slot_id,
)
from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster import golden
from qdrant_ops.cluster.health import HEALTHY_REPLICA_STATES, shard_placement
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.progress import Progress

# The same seed on every node and in every set: each node's draw is the same, and sets of unchanged
# data carry the same queries.
GOLDEN_SEED = 0


# -- what the manifest records about a collection -------------------------------------------------
def _digest(value) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def point_fingerprint(record: dict) -> dict:
    """A point's id with hashes of its payload and vectors, compared after a restore."""
    return {
        "id": record["id"],
        "payload_sha256": _digest(record.get("payload") or {}),
        "vector_sha256": _digest(record.get("vector")),
    }


def sample_points(client: ClusterClient, collection: str, size: int) -> list[dict]:
    if size == 0:
        return []
    result = client.scroll_points(collection, limit=size)
    return [point_fingerprint(record) for record in result["points"]]


def collection_view(
    client: ClusterClient, collection: str, sample_size: int, golden_queries: int = 0
) -> dict:
    info = client.collection_info(collection)
    if info is None:
        raise BackupError(f"collection {collection!r} disappeared during the backup")
    view = {
        "config": info["config"],
        "payload_schema": info.get("payload_schema") or {},
        "placement": shard_placement(client.collection_cluster(collection)),
        "points_exact": client.count_points(collection),
        "sample": sample_points(client, collection, sample_size),
    }
    if golden_queries:
        params = info["config"].get("params") or {}
        try:
            view["golden"] = golden.capture(
                client, collection, params, count=golden_queries, seed=GOLDEN_SEED
            )
        except QdrantApiError as exc:
            # A search the collection refuses (strict mode without exact search, say) costs the set
            # its golden queries, not the backup: restores then check counts and points only.
            view["golden"] = golden.not_drawn(f"HTTP {exc.status}: {exc.message[:200]}")
    return view


# -- one node's part --------------------------------------------------------------------------------
def _hint(exc: Exception) -> str:
    text = str(exc)
    if "No space left" in text or "os error 28" in text:
        return (
            f"{text} - the node's disk is full: a snapshot needs free space about the size of the "
            "collection's local shards in the snapshots and temp paths; free space or grow the volume"
        )
    return text


def _snapshot_names(client: ClusterClient, node: str, collection: str, shard_id: int | None) -> set[str]:
    return {item["name"] for item in client.list_snapshots(node, collection, shard_id)}


def snapshot_to_s3(
    client: ClusterClient,
    node: str,
    settings: BackupSettings,
    s3_client,
    *,
    key: str,
    metadata: dict,
    shard_id: int | None = None,
    on_bytes: Callable[[int], None] = lambda _nbytes: None,
) -> dict:
    """Create a snapshot of one collection (or of one of its shards) on `node`, stream it to
    `key`, and delete the local file whatever happens (Qdrant keeps snapshots until deleted; a full
    disk stops the node)."""
    collection = metadata["collection"]
    before = _snapshot_names(client, node, collection, shard_id)
    created: str | None = None
    started = time.monotonic()
    try:
        description = client.create_snapshot(node, collection, shard_id, timeout=settings.snapshot_timeout)
        created = description["name"]
        with client.download_snapshot(node, collection, shard_id, created) as reader:
            uploaded = s3.upload_stream(
                s3_client,
                settings.s3,
                key,
                reader,
                expected_sha256=description.get("checksum"),  # null when Qdrant stores snapshots in S3
                metadata=metadata,
                size_hint=description.get("size"),
                on_bytes=on_bytes,
            )
        if description.get("size") is not None and uploaded.size != description["size"]:
            raise BackupError(  # nodes may not delete: the attempt is abandoned, pruned with its set
                f"snapshot {created} of {collection} is {description['size']} bytes on {node} but "
                f"{uploaded.size} were read; this attempt is abandoned, run the backup again"
            )
    except QdrantApiError as exc:
        what = f"collection {collection!r}" + (f" shard {shard_id}" if shard_id is not None else "")
        raise BackupError(f"snapshot of {what} on {node} failed: {_hint(exc)}") from exc
    finally:
        _remove_new_snapshots(client, node, (collection, shard_id), before, created)
    return {
        "key": key,
        "size": uploaded.size,
        "sha256": uploaded.sha256,
        "qdrant_checksum": description.get("checksum"),
        "snapshot_name": created,
        "seconds": round(time.monotonic() - started, 3),
    }


def _remove_new_snapshots(
    client: ClusterClient, node: str, of: tuple[str, int | None], before: set[str], created: str | None
) -> None:
    """Delete the snapshots of `of` (collection, shard id) this run made on `node`."""
    names = {created} if created else set()
    with contextlib.suppress(QdrantOpsError):  # a failed create may still have left a file
        names |= _snapshot_names(client, node, *of) - before
    for name in sorted(names):
        try:
            client.delete_snapshot(node, *of, name)
        except QdrantApiError as exc:
            if exc.status != 404:
                where = f"{of[0]}" + ("" if of[1] is None else f" shard {of[1]}")
                raise BackupError(
                    f"could not delete local snapshot {name} ({where}) on {node}: {exc}; "
                    "delete it by hand before the disk fills"
                ) from exc


def shard_sources(placement: list[dict]) -> dict[int, int]:
    """Which peer snapshots each shard: one of its Active replicas, spread by shard id so the work
    is shared. Every node computes this from the same placement, so each shard has one source."""
    active: dict[int, list[int]] = {}
    for replica in placement:
        active.setdefault(replica["shard_id"], [])
        if replica["state"] in HEALTHY_REPLICA_STATES:
            active[replica["shard_id"]].append(replica["peer_id"])
    return {shard: sorted(peers)[shard % len(peers)] for shard, peers in sorted(active.items()) if peers}


def part_bytes(part: dict) -> int:
    """Bytes a part uploaded, whatever its format."""
    records = list((part.get("snapshots") or {}).values())
    records += [r for shards in (part.get("shards") or {}).values() for r in shards.values()]
    return sum(r["size"] for r in records)


def node_identity(client: ClusterClient, node: str) -> tuple[int, list[dict]]:
    status = client.cluster_status(node=node)
    if status.get("status") != "enabled":
        return 0, [{"id": 0, "uri": node}]
    peers = sorted(
        ({"id": int(pid), "uri": p["uri"]} for pid, p in status["peers"].items()), key=lambda p: p["id"]
    )
    return int(status["peer_id"]), peers


def check_bucket(s3_client, bucket: str, prefix: str) -> None:
    """Fail early, with the fix, when the bucket is missing or not ours to use. A listing under the
    cluster's prefix, not HeadBucket: the nodes' IAM policy allows listing only that prefix."""
    try:
        s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket"):
            raise s3.S3Error(
                f"bucket s3://{bucket} does not exist: create it (terraform apply) or fix the bucket name"
            ) from exc
        if code in ("403", "AccessDenied"):
            raise s3.S3Error(
                f"access to s3://{bucket}/{prefix} denied: check the instance profile or keys allow "
                "this bucket and prefix"
            ) from exc
        raise s3.describe_error(exc, "check", bucket) from exc
    except Exception as exc:
        raise s3.describe_error(exc, "reach", bucket) from exc


def run_node_backup(
    client: ClusterClient,
    node: str,
    settings: BackupSettings,
    s3_client,
    *,
    backup_id: str | None = None,
    force: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    log: Callable[[str], None] = lambda _line: None,
) -> dict:
    """Back up every selected collection of one node into the set `backup_id` (default: the
    current schedule slot) and refresh the set's manifest. Returns the part record; raises
    BackupError / S3Error / QdrantOpsError after recording the failure in the part.

    A part of this node that already succeeded in the set is kept (returned with `skipped`), so
    a second run in the same slot can neither turn a complete set incomplete nor mix two points
    in time. Part records are written once: `force` is refused when one exists."""
    started = now()
    backup_id = check_name(backup_id, "backup id") if backup_id else slot_id(started, settings.slot_seconds)
    layout = settings.layout
    part: dict = {
        "format": MANIFEST_FORMAT,
        "backup_id": backup_id,
        "cluster": settings.cluster,
        "node": node,
        "attempt": f"{started.astimezone(UTC).strftime(ID_FORMAT)}-{secrets.token_hex(4)}",
        "started": iso_time(started),
        "status": "running",
        "shards": {},
    }
    peer_id, peers = node_identity(client, node)  # Qdrant down: nothing to record, set stays incomplete
    name = settings.node_name(peer_id)
    part.update(node=name, peer_id=peer_id, peers=peers, qdrant_version=client.version(node=node))
    check_bucket(s3_client, settings.s3.bucket, layout.cluster_prefix())
    part_key = layout.node_part_key(backup_id, name)
    done = finished_part(s3_client, settings, backup_id, peer_id)  # refuses a name another peer uses
    if done is not None:
        return _kept_part(client, done, settings, s3_client, force=force, log=log)
    try:
        part["collections"] = {}
        for collection in selected_collections(client, settings):
            view = collection_view(client, collection, settings.sample_size, settings.golden_queries)
            part["collections"][collection] = view
            part["shards"][collection] = {}  # filled as snapshots land: a failed part says how far it got
            _snapshot_own_shards(client, node, settings, s3_client, part=part, collection=collection, log=log)
    except Exception as exc:
        part.update(status="failed", error=str(exc), finished=iso_time(now()))
        failure_key = layout.node_failure_key(backup_id, name, part["attempt"])
        with contextlib.suppress(Exception):  # S3 itself may be what failed; report the cause
            s3.put_json(s3_client, settings.s3.bucket, failure_key, part)
        raise
    part.update(status="ok", finished=iso_time(now()))
    s3.put_json(s3_client, settings.s3.bucket, part_key, part)
    part["set_status"] = set_manifest(s3_client, settings, backup_id).status
    return part


def _snapshot_own_shards(
    client: ClusterClient,
    node: str,
    settings: BackupSettings,
    s3_client,
    *,
    part: dict,
    collection: str,
    log: Callable[[str], None],
) -> None:
    """Snapshot to S3 the shards of `collection` this peer is the designated source of, recording
    each in `part`."""
    peer_id, backup_id = part["peer_id"], part["backup_id"]
    placement = part["collections"][collection]["placement"]
    mine = [shard for shard, source in shard_sources(placement).items() if source == peer_id]
    log(f"{collection}: snapshot of shard(s) {mine or 'none'} on peer {peer_id}")
    progress = Progress("backup", f"shards of {collection}", len(mine), 0, log)
    for shard in mine:
        metadata = {
            "collection": collection,
            "shard-id": str(shard),
            "peer-id": str(peer_id),
            "backup-id": backup_id,
        }
        key = settings.layout.node_shard_key(backup_id, part["node"], collection, shard, part["attempt"])
        piece = f"shard {shard} to s3://{settings.s3.bucket}/{key}"
        record = snapshot_to_s3(
            client,
            node,
            settings,
            s3_client,
            key=key,
            metadata=metadata,
            shard_id=shard,
            on_bytes=lambda nbytes, piece=piece: progress.advance(piece, nbytes),
        )
        part["shards"][collection][str(shard)] = record
        progress.done(f"{piece} in {record['seconds']}s", record["size"], piece=piece)


def finished_part(s3_client, settings: BackupSettings, backup_id: str, peer_id: int) -> dict | None:
    """This peer's part record of the set, if one exists (re-runs of a set skip nodes whose part
    succeeded). Refuses when the node's name holds another peer's part (two nodes configured with
    one name) or a damaged record: records are written once, so neither can be replaced."""
    name = settings.node_name(peer_id)
    key = settings.layout.node_part_key(backup_id, name)
    try:
        part = s3.get_json(s3_client, settings.s3.bucket, key)
    except BackupError as exc:
        raise BackupError(
            f"{exc}; records are written once: take a new set (--backup-id with a new id)"
        ) from exc
    if part is not None and part.get("peer_id") != peer_id:
        raise BackupError(
            f"s3://{settings.s3.bucket}/{key} holds the part of peer {part.get('peer_id')!r}, not of this "
            f"node (peer {peer_id}): two nodes are configured with the node name {name!r}; give each node "
            "its own (qdrant_backup_node_name, `node` in backup.yml)"
        )
    return part


def selected_collections(client: ClusterClient, settings: BackupSettings) -> list[str]:
    names = client.collection_names()
    missing = sorted(set(settings.collections) - set(names))
    if missing:
        raise ConfigError(f"collections not found: {', '.join(missing)}; existing: {', '.join(names)}")
    return sorted(settings.collections) if settings.collections else names


def _kept_part(
    client: ClusterClient,
    done: dict,
    settings: BackupSettings,
    s3_client,
    *,
    force: bool,
    log: Callable[[str], None],
) -> dict:
    """The node's finished part when it covers what this run would back up. Part records are
    written once: a failed or damaged one, a `force`, or a part for other collections is refused."""
    if force or done.get("status") != "ok":
        raise BackupError(
            f"peer {done.get('peer_id')}'s part of backup {done.get('backup_id')} exists (status "
            f"{str(done.get('status'))[:20]!r}) and part records are written once: take a new set instead "
            "(--backup-id with a new id)"
        )
    log(f"peer {done['peer_id']}'s part of {done['backup_id']} already succeeded: kept")
    wanted = set(selected_collections(client, settings))
    covered = set(done.get("shards") or {})
    if not wanted <= covered:
        raise BackupError(
            f"peer {done['peer_id']}'s part of backup {done['backup_id']} already succeeded for "
            f"{', '.join(sorted(covered))}, not {', '.join(sorted(wanted - covered))}: "
            "use another backup id"
        )
    status = set_manifest(s3_client, settings, done["backup_id"]).status
    return {**done, "skipped": True, "set_status": status}
