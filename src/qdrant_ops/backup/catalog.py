"""The sets in the bucket, newest first. A sealed set's manifest is the one its seal froze (written
once by the sealer, backup/seal.py); an unsealed set's is built from its part records (never from
anything a node stored as a summary) and is at best "unsealed": only sealed sets are "complete",
restorable and counted by retention (docs/backup-trust.md). Every record and object is checked."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import botocore.exceptions

from qdrant_ops.backup import s3
from qdrant_ops.backup.manifest import (
    CollectionView,
    Manifest,
    ManifestError,
    SnapshotRecord,
    parse_peers,
    parse_time,
)
from qdrant_ops.backup.model import (
    ATTEMPT_PATTERN,
    MANIFEST_FORMAT,
    NAME_PATTERN,
    VERSION_PATTERN,
    BackupError,
    BackupSettings,
    Layout,
    check_name,
    id_time,
    iso_time,
    parse_iso_time,
)
from qdrant_ops.cluster.collection_spec import NAME_PATTERN as COLLECTION_NAME
from qdrant_ops.errors import ConfigError

SEAL_FORMAT = 1


# -- the set's manifest -----------------------------------------------------------------------------
def object_problem(s3_client, bucket: str, record: SnapshotRecord) -> str | None:
    try:
        head = s3_client.head_object(Bucket=bucket, Key=record.key)
    except botocore.exceptions.ClientError:
        return f"{record.key} is missing"
    if head["ContentLength"] != record.size:
        return f"{record.key} holds {head['ContentLength']} bytes, the part says {record.size}"
    if head.get("Metadata", {}).get("sha256", record.sha256) != record.sha256:
        return f"{record.key} has sha256 {head['Metadata']['sha256']}, the part says {record.sha256}"
    return None


def _shard_records(name: str, view: dict, ok: dict[int, dict], problems: list[str]) -> dict:
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
        shards[str(shard)] = {"peer_id": pid, **{k: record[k] for k in ("key", "size", "sha256")}}
        if "node" in ok[pid]:  # formats 3 and 4: the key lies under the node's own prefix
            shards[str(shard)]["node"] = ok[pid]["node"]
        if ok[pid].get("format") == 4:  # in the attempt's folder
            shards[str(shard)]["attempt"] = ok[pid]["attempt"]
    return shards


def _node_records(name: str, ok: dict[int, dict], problems: list[str]) -> dict:
    """Format 1: one collection snapshot from every peer."""
    nodes: dict[str, dict] = {}
    for pid, part in ok.items():
        record = part["snapshots"].get(name)
        if record is None:
            problems.append(f"peer {pid} has no snapshot of {name}")
            continue
        nodes[str(pid)] = {k: record[k] for k in ("key", "size", "sha256")}
    return nodes


def object_problems(manifest: Manifest, check: Callable[[SnapshotRecord], str | None]) -> list[str]:
    return [p for name in manifest.collections for r in manifest.records(name) if (p := check(r))]


def build_manifest(parts: dict[int, dict], check: Callable[[SnapshotRecord], str | None]) -> Manifest:
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
            collections[name] = {**view, "shards": _shard_records(name, view, ok, problems)}
        else:
            collections[name] = {**view, "nodes": _node_records(name, ok, problems)}
    versions = sorted({part.get("qdrant_version") for part in parts.values() if part.get("qdrant_version")})
    if len(versions) > 1:
        problems.append(f"nodes run different Qdrant versions: {', '.join(versions)}")
    started = [part["started"] for part in parts.values() if part.get("started")]
    finished = [part["finished"] for part in parts.values() if part.get("finished")]
    described = {
        "format": set_format,
        "backup_id": reference["backup_id"],
        "cluster": reference["cluster"],
        "status": "incomplete",
        "qdrant_version": versions[0] if versions else None,
        "peers": peers,
        "collections": collections,
        "started": min(started) if started else None,
        "finished": max(finished) if finished else None,
    }
    try:  # the parts were checked one by one (_record_problem); this checks what they form together
        manifest = Manifest.parse(described)
    except ManifestError as exc:
        return Manifest.damaged(reference["backup_id"], reference["cluster"], f"the parts disagree: {exc}")
    problems += object_problems(manifest, check)
    return manifest.with_problems(problems, "complete" if not problems else "incomplete")


LEGACY_PART = re.compile(r"^parts/(\d{1,20})\.json$")  # formats 1 and 2
NODE_PART = re.compile(r"^nodes/([^/]+)/part\.json$")  # format 3


def _shape_problem(part: dict) -> str | None:
    """Why the fields the readers use do not have the shapes a node writes, or None: a record may
    be anything, and a reader must neither crash on it nor lend its odd values to the set."""
    if not isinstance(part.get("status"), str) or not isinstance(part.get("error", ""), str):
        return "status or error is not a string"
    version = part.get("qdrant_version")
    if version is not None and not (isinstance(version, str) and VERSION_PATTERN.match(version)):
        return f"Qdrant version {str(version)[:40]!r} is not X.Y.Z"
    views = part.get("collections", {})
    if not isinstance(views, dict):
        return "collections is not a mapping"
    try:  # the same checks as a manifest's, on what this part contributes to one
        parse_time(part.get("started"), "started")
        parse_time(part.get("finished"), "finished")
        parse_peers(part.get("peers", []))
        for name, view in views.items():
            if not isinstance(name, str) or not COLLECTION_NAME.match(name):
                raise ManifestError(f"collection name {str(name)[:60]!r} is not valid")
            contributed = {**view, "shards": {}} if isinstance(view, dict) else view  # no records yet
            CollectionView.parse(contributed, per_node=False, where=f"collection {name!r}")
    except ManifestError as exc:
        return str(exc)
    return None


def _record_problem(
    part: dict, layout: Layout, backup_id: str, node: str | None, peer_id: int | None
) -> str | None:
    """Why a part record read from S3 cannot be used, or None. Records are untrusted input: a node
    may only vouch for its own keys, so a record must name the set, node and peer its key says."""
    pid = part.get("peer_id")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid < 2**64:
        return f"peer id {pid!r} is not an unsigned 64-bit integer"
    if part.get("format", 1) not in ((3, 4) if node is not None else (1, 2)):
        return f"format {str(part.get('format', 1))[:20]!r} does not belong under this key"
    attempt = part.get("attempt")
    if part.get("format") == 4 and not (isinstance(attempt, str) and ATTEMPT_PATTERN.match(attempt)):
        return f"attempt {str(attempt)[:40]!r} is not <UTC time>-<8 hex digits>"
    if part.get("backup_id") != backup_id:
        return f"it names backup {part.get('backup_id')!r}, not {backup_id}"
    if node is not None and part.get("node") != node:
        return f"it names node {part.get('node')!r}, not {node!r}"
    if peer_id is not None and pid != peer_id:
        return f"it names peer {pid}, not {peer_id}"
    shape = _shape_problem(part)
    if shape:
        return shape
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
            try:
                SnapshotRecord.parse(record, with_peer=False)
            except ManifestError as exc:
                return str(exc)
            own = node is None or _own_key(
                layout,
                backup_id,
                node,
                collection=collection,
                shard=shard,
                key=record["key"],
                attempt=part.get("attempt") if part.get("format") == 4 else None,
            )
            if not own:
                return f"object {record['key']!r} is not this node's key for {collection!r} shard {shard!r}"
    return None


def _own_key(
    layout: Layout, backup_id: str, node: str, *, collection: str, shard: str, key: str, attempt: str | None
) -> bool:
    """Formats 3 and 4: a node vouches only for objects under its own prefix, at the layout's key."""
    if not (shard.isascii() and shard.isdigit() and NAME_PATTERN.match(collection)):
        return False
    return key == layout.node_shard_key(backup_id, node, collection, int(shard), attempt)


def read_parts(s3_client, bucket: str, layout: Layout, backup_id: str, listed: list[dict]) -> dict[int, dict]:
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
            part = s3.get_json(s3_client, bucket, item["Key"])
        except (BackupError, s3.S3Error) as exc:  # a junk record spoils its own set only
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


def _listed_problem(listed: list[dict]) -> Callable[[SnapshotRecord], str | None]:
    """Check a snapshot record against a listing: present, and of the recorded size."""
    sizes = {item["Key"]: item["Size"] for item in listed}

    def problem(record: SnapshotRecord) -> str | None:
        if record.key not in sizes:
            return f"{record.key} is missing"
        if sizes[record.key] != record.size:
            return f"{record.key} holds {sizes[record.key]} bytes, the part says {record.size}"
        return None

    return problem


def _from_seal(
    seal: dict, layout: Layout, backup_id: str, check: Callable[[SnapshotRecord], str | None]
) -> Manifest:
    """The manifest a seal froze, its objects checked again (they are written once, so a problem
    here means the bucket was changed by someone with more rights than a node)."""
    try:
        if seal.get("seal_format") != SEAL_FORMAT or (seal.get("backup_id"), seal.get("cluster")) != (
            backup_id,
            layout.cluster,
        ):
            raise ValueError("it does not name this set and cluster in seal format 1")
        manifest = Manifest.parse(seal["manifest"])
        if manifest.status != "complete" or manifest.backup_id != backup_id:
            raise ValueError("its manifest is not a complete manifest of this set")
        problems = object_problems(manifest, check)
    except (KeyError, TypeError, ValueError, AttributeError, ManifestError) as exc:
        return Manifest.damaged(backup_id, layout.cluster, f"{layout.seal_key(backup_id)} is damaged: {exc}")
    sealed = {"at": seal.get("sealed_at"), "members": seal.get("members")}
    return replace(
        manifest, status="incomplete" if problems else "complete", problems=tuple(problems), sealed=sealed
    )


def _manifest(
    s3_client,
    layout: Layout,
    backup_id: str,
    *,
    bucket: str,
    listed: list[dict],
    check: Callable[[SnapshotRecord], str | None],
) -> Manifest | None:
    """The sealed manifest of a sealed set; else the one its parts describe, "unsealed" at best.
    None when the set has neither seal nor part record."""
    seal_key = layout.seal_key(backup_id)
    if any(item["Key"] == seal_key for item in listed):
        try:
            seal = s3.get_json(s3_client, bucket, seal_key) or {}
        except BackupError as exc:
            seal = {"damaged": str(exc)}
        return _from_seal(seal, layout, backup_id, check)
    parts = read_parts(s3_client, bucket, layout, backup_id, listed)
    if not parts:
        return None
    manifest = build_manifest(parts, check)
    problems = [*manifest.problems, *failed_attempts(s3_client, bucket, layout.set_prefix(backup_id), listed)]
    return manifest.with_problems(problems, "unsealed" if manifest.status == "complete" else manifest.status)


FAILED_ATTEMPT = re.compile(r"^nodes/([^/]+)/failed/([^/]+)\.json$")


def failed_attempts(s3_client, bucket: str, prefix: str, listed: list[dict]) -> list[str]:
    """What the newest failed attempt of each node without a part record said (only a message:
    a failure record never lends anything to the set)."""
    newest: dict[str, str] = {}
    keys = {item["Key"] for item in listed}
    for key in sorted(keys):
        match = FAILED_ATTEMPT.match(key[len(prefix) :])
        if match and f"{prefix}nodes/{match.group(1)}/part.json" not in keys:
            newest[match.group(1)] = key
    notes = []
    for node, key in sorted(newest.items()):
        try:
            error = str((s3.get_json(s3_client, bucket, key) or {}).get("error", ""))[:300]
        except BackupError as exc:
            error = str(exc)
        attempt = key.rsplit("/", 1)[-1].removesuffix(".json")[:40]
        notes.append(f"node {node[:128]}: attempt {attempt} failed: {error}")
    return notes


def set_manifest(s3_client, settings: BackupSettings, backup_id: str, verify: bool = True) -> Manifest:
    """The set as its seal (or, unsealed, its part records) and the objects now in S3 describe it;
    with `verify` each object's size and recorded sha256 are read from S3, else its size from the
    listing."""
    bucket, layout = settings.s3.bucket, settings.layout
    check_name(backup_id, "backup id")
    listed = s3.list_objects(s3_client, bucket, layout.set_prefix(backup_id))
    check = (lambda record: object_problem(s3_client, bucket, record)) if verify else _listed_problem(listed)
    manifest = _manifest(s3_client, layout, backup_id, bucket=bucket, listed=listed, check=check)
    if manifest is None:
        raise ConfigError(
            f"no backup {backup_id!r} for cluster {settings.cluster} in s3://{bucket}/"
            f"{layout.cluster_prefix()}: see `qdrant-ops backup list`"
        )
    return manifest


# -- listing and retention --------------------------------------------------------------------------
def _started(manifest: Manifest | None):
    """When a set without a time in its id started, if its records say so (checked when parsed)."""
    return parse_iso_time(manifest.started) if manifest and manifest.started else None


def list_sets(s3_client, settings: BackupSettings) -> list[dict]:
    """Every set of the cluster, newest first, each from its seal or its part records and checked
    against the listing (sizes; `backup show` and restores also check sha256). Only a sealed set
    is "complete"; one complete by its parts but not sealed is "unsealed"."""
    layout = settings.layout
    grouped: dict[str, list[dict]] = {}
    for item in s3.list_objects(s3_client, settings.s3.bucket, layout.cluster_prefix()):
        backup_id = item["Key"][len(layout.cluster_prefix()) :].split("/", 1)[0]
        grouped.setdefault(backup_id, []).append(item)
    sets = []
    for backup_id, items in grouped.items():
        manifest = None
        if NAME_PATTERN.match(backup_id):
            check = _listed_problem(items)
            manifest = _manifest(
                s3_client, layout, backup_id, bucket=settings.s3.bucket, listed=items, check=check
            )
        uploaded = min(item["LastModified"] for item in items)
        when = id_time(backup_id) or _started(manifest) or uploaded
        none_written = ["no part record: no node wrote its part"]
        sets.append(
            {
                "backup_id": backup_id,
                "time": iso_time(when),
                "uploaded": iso_time(uploaded),  # S3's clock, not a node's: retention's age of unsealed sets
                "status": manifest.status if manifest else "incomplete",
                "collections": sorted(manifest.collections) if manifest else [],
                "peers": len(manifest.peers) if manifest else 0,
                "bytes": sum(item["Size"] for item in items),
                "objects": len(items),
                "problems": list(manifest.problems) if manifest else none_written,
            }
        )
    return sorted(sets, key=lambda s: (s["time"], s["backup_id"]), reverse=True)
