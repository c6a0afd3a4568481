"""Cluster-wide backups to S3 (docs/qdrant-behaviour.md §3). Every node runs the same job
in the same schedule slot; each uploads one snapshot of every shard it is the designated source of
(one Active replica per shard, chosen the same way on every node), then a part record. The set's
manifest is always built from the part records when read, never stored by a node.

One replica per shard, not one collection snapshot per node: a set of a collection with
replication factor 2 holds its data once, not twice, and a restore puts each shard's snapshot on
every replica of a new collection, in a cluster of any size (restore.py).

S3 layout under `<prefix>/<cluster>/<backup_id>/` (format 3, written now):
    nodes/<node>/<collection>/<shard_id>.snapshot   one per shard (metadata: sha256)
    nodes/<node>/part.json      what that node uploaded, its view of the cluster, its status
Everything a node writes lies under its own `nodes/<node>/`, so IAM can confine each node to its
own keys (terraform/iam.tf) and no node writes anything shared. A set is "complete" only when
every peer's part is present and succeeded, every shard has a snapshot, and every object matches
its size (and, when verified, its sha256).
Format 2 (`<collection>/shards/<shard>.<peer>.snapshot`, `parts/<peer>.json`) and format 1 sets
(`<collection>/<peer>.snapshot`) are still listed, verified and restored; their stored
`manifest.json` is ignored, like any summary a node could have written. The backup id is the UTC
schedule slot, so the timer runs of all nodes in one slot form one set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import botocore.exceptions

from qdrant_ops import s3
from qdrant_ops.client import ClusterClient, QdrantApiError, segment
from qdrant_ops.cluster import HEALTHY_REPLICA_STATES, shard_placement
from qdrant_ops.errors import ConfigError, QdrantOpsError

ID_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DURATION_PATTERN = re.compile(r"^(\d+)([smhdw])$")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MANIFEST_FORMAT = 3  # 1: a collection snapshot per node; 2: a snapshot per shard; 3: per-node keys


class BackupError(QdrantOpsError):
    """A backup step failed; the set it belongs to stays incomplete."""


def parse_duration(text: str | int, what: str = "duration") -> int:
    """Seconds from '90s', '30m', '6h', '1d', '2w' (or a plain number of seconds)."""
    if isinstance(text, int):
        seconds = text
    else:
        match = DURATION_PATTERN.match(str(text).strip())
        if not match:
            raise ConfigError(f"{what} {text!r} is not a duration: use e.g. 30m, 6h, 1d or 2w")
        seconds = int(match.group(1)) * DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{what} must be positive, got {text!r}")
    return seconds


def check_name(value: str, what: str) -> str:
    if not NAME_PATTERN.match(value or ""):
        raise ConfigError(
            f"{what} {value!r} is not usable in S3 keys: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return value


def slot_id(now: datetime, slot_seconds: int) -> str:
    """The backup id of the schedule slot `now` falls in, e.g. 20261124T000000Z for a daily slot."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % slot_seconds, UTC).strftime(ID_FORMAT)


def id_time(backup_id: str) -> datetime | None:
    try:
        return datetime.strptime(backup_id, ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Layout:
    prefix: str
    cluster: str

    def cluster_prefix(self) -> str:
        return "/".join(p for p in (self.prefix.strip("/"), self.cluster) if p) + "/"

    def set_prefix(self, backup_id: str) -> str:
        return f"{self.cluster_prefix()}{backup_id}/"

    def snapshot_key(self, backup_id: str, collection: str, peer_id: int) -> str:
        return f"{self.set_prefix(backup_id)}{collection}/{peer_id}.snapshot"

    def shard_key(self, backup_id: str, collection: str, shard_id: int, peer_id: int) -> str:
        return f"{self.set_prefix(backup_id)}{collection}/shards/{shard_id}.{peer_id}.snapshot"

    def part_key(self, backup_id: str, peer_id: int) -> str:
        return f"{self.set_prefix(backup_id)}parts/{peer_id}.json"

    def node_prefix(self, backup_id: str, node: str) -> str:
        return f"{self.set_prefix(backup_id)}nodes/{node}/"

    def node_part_key(self, backup_id: str, node: str) -> str:
        return f"{self.node_prefix(backup_id, node)}part.json"

    def node_shard_key(self, backup_id: str, node: str, collection: str, shard_id: int) -> str:
        return f"{self.node_prefix(backup_id, node)}{collection}/{shard_id}.snapshot"


@dataclass(frozen=True)
class BackupSettings:
    cluster: str
    s3: s3.S3Settings
    collections: tuple[str, ...] = ()  # empty: every collection
    sample_size: int = 32
    slot_seconds: int = 86400
    snapshot_timeout: float = 3600.0
    node: str | None = None  # the name IAM lets this node write under; default peer-<peer id>

    def __post_init__(self) -> None:
        check_name(self.cluster, "cluster name")
        if self.node is not None:
            check_name(self.node, "node name")
        if not 0 <= self.sample_size <= 1000:
            raise ConfigError(f"sample_size must be between 0 and 1000, got {self.sample_size}")

    @property
    def layout(self) -> Layout:
        return Layout(self.s3.prefix, self.cluster)

    def node_name(self, peer_id: int) -> str:
        return self.node or f"peer-{peer_id}"


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
    result = client.request(
        "POST",
        f"/collections/{segment(collection)}/points/scroll",
        json={"limit": size, "with_payload": True, "with_vector": True},
    )
    return [point_fingerprint(record) for record in result["points"]]


def collection_view(client: ClusterClient, collection: str, sample_size: int) -> dict:
    info = client.collection_info(collection)
    if info is None:
        raise BackupError(f"collection {collection!r} disappeared during the backup")
    return {
        "config": info["config"],
        "payload_schema": info.get("payload_schema") or {},
        "placement": shard_placement(client.collection_cluster(collection)),
        "points_exact": client.count_points(collection),
        "sample": sample_points(client, collection, sample_size),
    }


# -- one node's part --------------------------------------------------------------------------------
def _hint(exc: Exception) -> str:
    text = str(exc)
    if "No space left" in text or "os error 28" in text:
        return (
            f"{text} - the node's disk is full: a snapshot needs free space about the size of the "
            "collection's local shards in the snapshots and temp paths; free space or grow the volume"
        )
    return text


def snapshots_path(collection: str, shard_id: int | None = None) -> str:
    """The snapshots endpoint of a collection, or of one of its shards."""
    base = f"/collections/{segment(collection)}"
    return f"{base}/snapshots" if shard_id is None else f"{base}/shards/{shard_id}/snapshots"


def _snapshot_names(client: ClusterClient, node: str, path: str) -> set[str]:
    return {item["name"] for item in client.get(path, node=node)}


def _delete_snapshot(client: ClusterClient, node: str, path: str, name: str) -> None:
    client.request("DELETE", f"{path}/{segment(name)}", params={"wait": "true"}, node=node)


def snapshot_to_s3(
    client: ClusterClient,
    node: str,
    settings: BackupSettings,
    s3_client,
    *,
    key: str,
    metadata: dict,
    shard_id: int | None = None,
) -> dict:
    """Create a snapshot of one collection (or of one of its shards) on `node`, stream it to
    `key`, and delete the local file whatever happens (Qdrant keeps snapshots until deleted; a full
    disk stops the node)."""
    collection = metadata["collection"]
    path = snapshots_path(collection, shard_id)
    before = _snapshot_names(client, node, path)
    created: str | None = None
    started = time.monotonic()
    try:
        description = client.request(
            "POST", path, params={"wait": "true"}, node=node, timeout=settings.snapshot_timeout
        )
        created = description["name"]
        with client.download(f"{path}/{segment(created)}", node=node) as reader:
            uploaded = s3.upload_stream(
                s3_client,
                settings.s3,
                key,
                reader,
                expected_sha256=description.get("checksum"),  # null when Qdrant stores snapshots in S3
                metadata=metadata,
                size_hint=description.get("size"),
            )
        if description.get("size") is not None and uploaded.size != description["size"]:
            s3_client.delete_object(Bucket=settings.s3.bucket, Key=key)
            raise BackupError(
                f"snapshot {created} of {collection} is {description['size']} bytes on {node} but "
                f"{uploaded.size} were read; the upload was removed"
            )
    except QdrantApiError as exc:
        what = f"collection {collection!r}" + (f" shard {shard_id}" if shard_id is not None else "")
        raise BackupError(f"snapshot of {what} on {node} failed: {_hint(exc)}") from exc
    finally:
        _remove_new_snapshots(client, node, path, before, created)
    return {
        "key": key,
        "size": uploaded.size,
        "sha256": uploaded.sha256,
        "qdrant_checksum": description.get("checksum"),
        "snapshot_name": created,
        "seconds": round(time.monotonic() - started, 3),
    }


def _remove_new_snapshots(
    client: ClusterClient, node: str, path: str, before: set[str], created: str | None
) -> None:
    names = {created} if created else set()
    with contextlib.suppress(QdrantOpsError):  # a failed create may still have left a file
        names |= _snapshot_names(client, node, path) - before
    for name in sorted(names):
        try:
            _delete_snapshot(client, node, path, name)
        except QdrantApiError as exc:
            if exc.status != 404:
                raise BackupError(
                    f"could not delete local snapshot {name} ({path}) on {node}: {exc}; "
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
    in time; `force` replaces it."""
    started = now()
    backup_id = check_name(backup_id, "backup id") if backup_id else slot_id(started, settings.slot_seconds)
    layout = settings.layout
    part: dict = {
        "format": MANIFEST_FORMAT,
        "backup_id": backup_id,
        "cluster": settings.cluster,
        "node": node,
        "started": _iso(started),
        "status": "running",
        "shards": {},
    }
    peer_id, peers = node_identity(client, node)  # Qdrant down: nothing to record, set stays incomplete
    name = settings.node_name(peer_id)
    part.update(node=name, peer_id=peer_id, peers=peers, qdrant_version=client.version(node=node))
    check_bucket(s3_client, settings.s3.bucket, layout.cluster_prefix())
    part_key = layout.node_part_key(backup_id, name)
    done = finished_part(s3_client, settings, backup_id, peer_id)  # refuses a name another peer uses
    if done is not None and not force:
        log(f"peer {peer_id}'s part of {backup_id} already succeeded: kept (force replaces it)")
        return _kept_part(client, done, settings, s3_client)
    try:
        part["collections"] = {}
        for collection in selected_collections(client, settings):
            view = collection_view(client, collection, settings.sample_size)
            part["collections"][collection] = view
            part["shards"][collection] = {}  # filled as snapshots land: a failed part says how far it got
            _snapshot_own_shards(client, node, settings, s3_client, part=part, collection=collection, log=log)
    except Exception as exc:
        part.update(status="failed", error=str(exc), finished=_iso(now()))
        with contextlib.suppress(Exception):  # S3 itself may be what failed; report the cause
            _put_json(s3_client, settings.s3.bucket, part_key, part)
        raise
    part.update(status="ok", finished=_iso(now()))
    _put_json(s3_client, settings.s3.bucket, part_key, part)
    part["set_status"] = set_manifest(s3_client, settings, backup_id)["status"]
    return part


def _snapshot_own_shards(
    client: ClusterClient, node: str, settings: BackupSettings, s3_client, *, part: dict, collection: str,
    log: Callable[[str], None],
) -> None:  # fmt: skip
    """Snapshot to S3 the shards of `collection` this peer is the designated source of, recording
    each in `part`."""
    peer_id, backup_id = part["peer_id"], part["backup_id"]
    placement = part["collections"][collection]["placement"]
    mine = [shard for shard, source in shard_sources(placement).items() if source == peer_id]
    log(f"{collection}: snapshot of shard(s) {mine or 'none'} on peer {peer_id}")
    for shard in mine:
        metadata = {"collection": collection, "shard-id": str(shard), "peer-id": str(peer_id),
                    "backup-id": backup_id}  # fmt: skip
        key = settings.layout.node_shard_key(backup_id, part["node"], collection, shard)
        record = snapshot_to_s3(client, node, settings, s3_client, key=key, metadata=metadata, shard_id=shard)
        part["shards"][collection][str(shard)] = record
        log(f"{collection} shard {shard}: {record['size']} bytes to s3://{settings.s3.bucket}/{key} "
            f"in {record['seconds']}s")  # fmt: skip


def finished_part(s3_client, settings: BackupSettings, backup_id: str, peer_id: int) -> dict | None:
    """This peer's part of the set if it already succeeded (re-runs of a set skip such nodes).
    Refuses when the node's name holds another peer's part: two nodes configured with one name
    would overwrite each other's records."""
    name = settings.node_name(peer_id)
    key = settings.layout.node_part_key(backup_id, name)
    try:
        part = _get_json(s3_client, settings.s3.bucket, key)
    except BackupError:
        return None  # a damaged record of our own: the run replaces it
    if part is not None and part.get("peer_id") != peer_id:
        raise BackupError(
            f"s3://{settings.s3.bucket}/{key} holds the part of peer {part.get('peer_id')!r}, not of this "
            f"node (peer {peer_id}): two nodes are configured with the node name {name!r}; give each node "
            "its own (qdrant_backup_node_name, `node` in backup.yml)"
        )
    return part if part and part.get("status") == "ok" else None


def selected_collections(client: ClusterClient, settings: BackupSettings) -> list[str]:
    names = client.collection_names()
    missing = sorted(set(settings.collections) - set(names))
    if missing:
        raise ConfigError(f"collections not found: {', '.join(missing)}; existing: {', '.join(names)}")
    return sorted(settings.collections) if settings.collections else names


def _kept_part(client: ClusterClient, done: dict, settings: BackupSettings, s3_client) -> dict:
    """The node's finished part when it covers what this run would back up; a finished part for
    other collections is refused rather than replaced."""
    wanted = set(selected_collections(client, settings))
    covered = set(done.get("shards") or {})
    if not wanted <= covered:
        raise BackupError(
            f"peer {done['peer_id']}'s part of backup {done['backup_id']} already succeeded for "
            f"{', '.join(sorted(covered))}, not {', '.join(sorted(wanted - covered))}: "
            "use another backup id, or force to replace the part"
        )
    status = set_manifest(s3_client, settings, done["backup_id"])["status"]
    return {**done, "skipped": True, "set_status": status}


# -- the set's manifest -----------------------------------------------------------------------------
def _put_json(s3_client, bucket: str, key: str, value: dict) -> None:
    try:
        s3_client.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(value, indent=1, sort_keys=True).encode(),
            ContentType="application/json",
        )
    except Exception as exc:
        raise s3.describe_error(exc, "write", bucket, key) from exc


def _get_json(s3_client, bucket: str, key: str) -> dict | None:
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise s3.describe_error(exc, "read", bucket, key) from exc
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BackupError(f"s3://{bucket}/{key} is not a JSON object: the object is damaged")
    return value


def _list(s3_client, bucket: str, prefix: str) -> list[dict]:
    try:
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item for page in pages for item in page.get("Contents", [])]
    except Exception as exc:
        raise s3.describe_error(exc, "list", bucket, prefix) from exc


def _object_problem(s3_client, bucket: str, record: dict) -> str | None:
    try:
        head = s3_client.head_object(Bucket=bucket, Key=record["key"])
    except botocore.exceptions.ClientError:
        return f"{record['key']} is missing"
    if head["ContentLength"] != record["size"]:
        return f"{record['key']} holds {head['ContentLength']} bytes, the part says {record['size']}"
    if head.get("Metadata", {}).get("sha256", record["sha256"]) != record["sha256"]:
        return f"{record['key']} has sha256 {head['Metadata']['sha256']}, the part says {record['sha256']}"
    return None


def _shard_records(name: str, view: dict, ok: dict[int, dict], problems: list[str], check) -> dict:
    """Format 2: one snapshot of every shard of the collection, from whichever peer made it."""
    expected = sorted({replica["shard_id"] for replica in view["placement"]})
    shards: dict[str, dict] = {}
    for shard in expected:
        made = [(pid, part["shards"].get(name, {}).get(str(shard))) for pid, part in ok.items()]
        made = [(pid, record) for pid, record in made if record]
        if not made:
            problems.append(f"{name} shard {shard}: no snapshot (no Active replica, or its peer failed)")
            continue
        pid, record = min(made, key=lambda item: item[0])  # two sources after a placement change
        problem = check(record)
        if problem:
            problems.append(problem)
        shards[str(shard)] = {"peer_id": pid, **{k: record[k] for k in ("key", "size", "sha256")}}
        if "node" in ok[pid]:  # format 3: the key lies under the node's own prefix
            shards[str(shard)]["node"] = ok[pid]["node"]
    return shards


def _node_records(name: str, ok: dict[int, dict], problems: list[str], check) -> dict:
    """Format 1: one collection snapshot from every peer."""
    nodes: dict[str, dict] = {}
    for pid, part in ok.items():
        record = part["snapshots"].get(name)
        if record is None:
            problems.append(f"peer {pid} has no snapshot of {name}")
            continue
        problem = check(record)
        if problem:
            problems.append(problem)
        nodes[str(pid)] = {k: record[k] for k in ("key", "size", "sha256")}
    return nodes


def manifest_records(manifest: dict, name: str) -> list[dict]:
    """The snapshot objects of one collection in a set of either format."""
    view = manifest["collections"][name]
    return list((view.get("shards") or view.get("nodes") or {}).values())


def build_manifest(parts: dict[int, dict], object_problem: Callable[[dict], str | None]) -> dict:
    """The set as its parts describe it. Complete only when every peer the nodes saw has a part
    that succeeded, every collection's snapshots are there, and their objects check out."""
    ok = {pid: part for pid, part in sorted(parts.items()) if part.get("status") == "ok"}
    reference = next(iter(ok.values()), None) or next(iter(parts.values()))
    peers = reference.get("peers", [])
    problems = []
    for peer in peers:
        if peer["id"] not in parts:
            problems.append(f"peer {peer['id']} ({peer['uri']}): no part uploaded")
    for pid, part in sorted(parts.items()):
        if part.get("status") != "ok":
            who = f"peer {pid}" if pid >= 0 else "a part record"
            problems.append(f"{who}: {part.get('status')}: {part.get('error', '')}".rstrip(": "))
    formats = sorted({part.get("format", 1) for part in ok.values()}) or [MANIFEST_FORMAT]
    if len(formats) > 1:
        problems.append(f"parts of different formats {formats}: run the backup again with a new id")
    set_format = formats[-1]
    collections: dict[str, dict] = {}
    for name, view in (reference.get("collections") or {}).items():
        if set_format >= 2:
            collections[name] = {**view, "shards": _shard_records(name, view, ok, problems, object_problem)}
        else:
            collections[name] = {**view, "nodes": _node_records(name, ok, problems, object_problem)}
    versions = sorted({part.get("qdrant_version") for part in parts.values() if part.get("qdrant_version")})
    if len(versions) > 1:
        problems.append(f"nodes run different Qdrant versions: {', '.join(versions)}")
    started = [part["started"] for part in parts.values() if part.get("started")]
    finished = [part["finished"] for part in parts.values() if part.get("finished")]
    manifest = {
        "format": set_format,
        "backup_id": reference["backup_id"],
        "cluster": reference["cluster"],
        "status": "complete" if not problems else "incomplete",
        "problems": problems,
        "qdrant_version": versions[0] if versions else None,
        "peers": peers,
        "collections": collections,
        "started": min(started) if started else None,
        "finished": max(finished) if finished else None,
    }
    manifest["bytes"] = sum(r["size"] for name in collections for r in manifest_records(manifest, name))
    return manifest


LEGACY_PART = re.compile(r"^parts/(\d{1,20})\.json$")  # formats 1 and 2
NODE_PART = re.compile(r"^nodes/([^/]+)/part\.json$")  # format 3


def _record_problem(
    part: dict, layout: Layout, backup_id: str, node: str | None, peer_id: int | None
) -> str | None:
    """Why a part record read from S3 cannot be used, or None. Records are untrusted input: a node
    may only vouch for its own keys, so a record must name the set, node and peer its key says."""
    pid = part.get("peer_id")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid < 2**64:
        return f"peer id {pid!r} is not an unsigned 64-bit integer"
    if part.get("format", 1) not in ((3,) if node is not None else (1, 2)):
        return f"format {part.get('format', 1)!r} does not belong under this key"
    if part.get("backup_id") != backup_id:
        return f"it names backup {part.get('backup_id')!r}, not {backup_id}"
    if node is not None and part.get("node") != node:
        return f"it names node {part.get('node')!r}, not {node!r}"
    if peer_id is not None and pid != peer_id:
        return f"it names peer {pid}, not {peer_id}"
    if part.get("status") != "ok":
        return None
    groups = part.get("shards")
    if node is None and "snapshots" in part:  # format 1: one record per collection
        snapshots = part["snapshots"]
        groups = {c: {"0": r} for c, r in snapshots.items()} if isinstance(snapshots, dict) else None
    if not isinstance(groups, dict) or not all(isinstance(g, dict) for g in groups.values()):
        return "its snapshot records are not a mapping per collection"
    for collection, records in groups.items():
        for shard, record in records.items():
            usable = isinstance(record, dict) and isinstance(record.get("key"), str)
            usable = usable and isinstance(record.get("sha256"), str) and type(record.get("size")) is int
            if not usable:
                return "a snapshot record lacks a key, size or sha256"
            own = node is None or _own_key(
                layout, backup_id, node, collection=collection, shard=shard, key=record["key"]
            )
            if not own:
                return f"object {record['key']!r} is not this node's key for {collection!r} shard {shard!r}"
    return None


def _own_key(layout: Layout, backup_id: str, node: str, *, collection: str, shard: str, key: str) -> bool:
    """Format 3: a node vouches only for objects under its own prefix, at the layout's key."""
    if not (shard.isascii() and shard.isdigit() and NAME_PATTERN.match(collection)):
        return False
    return key == layout.node_shard_key(backup_id, node, collection, int(shard))


def _read_parts(
    s3_client, bucket: str, layout: Layout, backup_id: str, listed: list[dict]
) -> dict[int, dict]:
    """The set's part records by peer id, from the set's listing (either layout). A record that
    cannot be read, names another set, node or peer than its key, or claims a peer another
    record claims too, counts as a failed part: it never lends its content to the set."""
    prefix = layout.set_prefix(backup_id)
    parts: dict[int, dict] = {}
    refused = -1  # refused records without a usable peer id get negative keys, still reported
    for item in sorted(listed, key=lambda entry: entry["Key"]):
        relative = item["Key"][len(prefix) :]
        legacy, per_node = LEGACY_PART.match(relative), NODE_PART.match(relative)
        if not (legacy or per_node) or (per_node and not NAME_PATTERN.match(per_node.group(1))):
            continue
        node, peer_id = (per_node.group(1), None) if per_node else (None, int(legacy.group(1)))
        try:
            part = _get_json(s3_client, bucket, item["Key"])
        except BackupError as exc:
            part = {"status": "unreadable", "error": str(exc)}
        if part is None:
            continue
        readable = part.get("status") != "unreadable"
        problem = readable and _record_problem(part, layout, backup_id, node, peer_id)
        if problem:
            part = {"status": "invalid", "error": f"{item['Key']} is refused: {problem}"}
        key = part.get("peer_id", peer_id)
        if key in parts:  # neither claimant lends its content: which one is genuine is unknown
            error = f"two part records claim peer {key}, {item['Key']} one of them"
            parts[key] = {**parts[key], "status": "invalid", "error": error}
            part = {"status": "invalid", "error": error}
        if key is None or key in parts:
            key, refused = refused, refused - 1
        parts[key] = {"backup_id": backup_id, "cluster": layout.cluster, **part, "peer_id": key}
    return parts


def _listed_problem(listed: list[dict]) -> Callable[[dict], str | None]:
    """Check a snapshot record against a listing: present, and of the recorded size."""
    sizes = {item["Key"]: item["Size"] for item in listed}

    def problem(record: dict) -> str | None:
        if record["key"] not in sizes:
            return f"{record['key']} is missing"
        if sizes[record["key"]] != record["size"]:
            return f"{record['key']} holds {sizes[record['key']]} bytes, the part says {record['size']}"
        return None

    return problem


def set_manifest(s3_client, settings: BackupSettings, backup_id: str, verify: bool = True) -> dict:
    """The set as its part records and the objects now in S3 describe it; with `verify` each
    object's size and recorded sha256 are read from S3, else its size from the listing."""
    bucket, layout = settings.s3.bucket, settings.layout
    check_name(backup_id, "backup id")
    listed = _list(s3_client, bucket, layout.set_prefix(backup_id))
    parts = _read_parts(s3_client, bucket, layout, backup_id, listed)
    if not parts:
        raise ConfigError(
            f"no backup {backup_id!r} for cluster {settings.cluster} in s3://{bucket}/"
            f"{layout.cluster_prefix()}: see `qdrant-ops backup list`"
        )
    check = (lambda record: _object_problem(s3_client, bucket, record)) if verify else _listed_problem(listed)
    return build_manifest(parts, check)


# -- listing and retention --------------------------------------------------------------------------
def list_sets(s3_client, settings: BackupSettings) -> list[dict]:
    """Every set of the cluster, newest first, each built from its part records and checked
    against the listing (sizes; `backup show` and restores also check sha256)."""
    layout = settings.layout
    grouped: dict[str, list[dict]] = {}
    for item in _list(s3_client, settings.s3.bucket, layout.cluster_prefix()):
        backup_id = item["Key"][len(layout.cluster_prefix()) :].split("/", 1)[0]
        grouped.setdefault(backup_id, []).append(item)
    sets = []
    for backup_id, items in grouped.items():
        manifest = None
        if NAME_PATTERN.match(backup_id):
            parts = _read_parts(s3_client, settings.s3.bucket, layout, backup_id, items)
            manifest = build_manifest(parts, _listed_problem(items)) if parts else None
        uploaded = min(item["LastModified"] for item in items)
        when = id_time(backup_id) or (
            _parse_iso(manifest["started"]) if manifest and manifest["started"] else uploaded
        )
        sets.append(
            {
                "backup_id": backup_id,
                "time": _iso(when),
                "status": manifest["status"] if manifest else "incomplete",
                "collections": sorted(manifest["collections"]) if manifest else [],
                "peers": len(manifest["peers"]) if manifest else 0,
                "bytes": sum(item["Size"] for item in items),
                "objects": len(items),
                "problems": manifest["problems"] if manifest else ["no part record: no node wrote its part"],
            }
        )
    return sorted(sets, key=lambda s: (s["time"], s["backup_id"]), reverse=True)


@dataclass(frozen=True)
class Retention:
    keep_last: int = 7
    daily: int = 7
    weekly: int = 4
    monthly: int = 6
    incomplete_max_age: int = 2 * 86400  # seconds; younger incomplete sets may still be running

    def __post_init__(self) -> None:
        for name in ("keep_last", "daily", "weekly", "monthly"):
            if getattr(self, name) < 0:
                raise ConfigError(f"retention {name} must be 0 or more, got {getattr(self, name)}")


def plan_prune(sets: list[dict], retention: Retention, now: datetime) -> list[dict]:
    """Decide for every set whether it stays and why. Pure: `sets` as list_sets returns them."""
    complete = sorted((s for s in sets if s["status"] == "complete"), key=lambda s: s["time"], reverse=True)
    reasons: dict[str, list[str]] = {s["backup_id"]: [] for s in sets}
    if complete:
        reasons[complete[0]["backup_id"]].append("newest complete")
    for position, item in enumerate(complete[: retention.keep_last]):
        reasons[item["backup_id"]].append(f"last {position + 1}")
    buckets: list[tuple[str, int, Callable[[datetime], str]]] = [
        ("daily", retention.daily, lambda t: t.strftime("%Y-%m-%d")),
        ("weekly", retention.weekly, lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2])),
        ("monthly", retention.monthly, lambda t: t.strftime("%Y-%m")),
    ]
    for label, count, bucket_of in buckets:
        seen: list[str] = []
        for item in complete:
            bucket = bucket_of(_parse_iso(item["time"]))
            if len(seen) < count and bucket not in seen:
                seen.append(bucket)
                reasons[item["backup_id"]].append(f"{label} {bucket}")
    plan = []
    for item in sets:
        keep = reasons[item["backup_id"]]
        if item["status"] != "complete":
            age = (now - _parse_iso(item["time"])).total_seconds()
            if age < retention.incomplete_max_age:
                keep.append("incomplete but recent (may still be running)")
        plan.append({**item, "keep": bool(keep), "reasons": keep or ["not selected by any rule"]})
    return plan


def delete_set(s3_client, settings: BackupSettings, backup_id: str) -> int:
    """Delete every object of a set, the part records first so a half-deleted set never looks
    complete."""
    layout = settings.layout
    bucket = settings.s3.bucket
    prefix = layout.set_prefix(backup_id)
    keys = [item["Key"] for item in _list(s3_client, bucket, prefix)]
    ordered = sorted(keys, key=lambda k: not k.endswith(".json"))  # parts (and old manifests) first
    for start in range(0, len(ordered), 1000):
        batch = ordered[start : start + 1000]
        try:
            answer = s3_client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
        except Exception as exc:
            raise s3.describe_error(exc, "delete from", bucket, prefix) from exc
        if answer.get("Errors"):
            first = answer["Errors"][0]
            hint = (
                ": only the pruning role may delete backups (terraform gives it to the monitoring host, "
                "where qdrant-backup-prune.timer runs); the nodes' roles may not"
                if first.get("Code") == "AccessDenied"
                else ""
            )
            raise s3.S3Error(
                f"deleting {first['Key']} failed: {first.get('Code')}: {first.get('Message')}{hint}"
            )
    return len(ordered)


def prune(
    s3_client, settings: BackupSettings, retention: Retention, *, dry_run: bool, now: datetime | None = None
) -> list[dict]:
    plan = plan_prune(list_sets(s3_client, settings), retention, now or datetime.now(UTC))
    if not dry_run:
        for item in plan:
            if not item["keep"]:
                item["deleted_objects"] = delete_set(s3_client, settings, item["backup_id"])
    return plan
