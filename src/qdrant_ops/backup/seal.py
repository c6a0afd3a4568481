"""Sealing: what makes a set restorable, verifiable, listed as complete and kept by retention.

A node can write anything under its own prefix of any set id (terraform/iam.tf), so no single part
record may decide what a set is. The sealer, which runs with the pruning role on the monitoring host
(nodes cannot write as it), checks a set once every node has written its part and writes
<set>/seal.json once: the manifest it checked, frozen. Readers then use the seal, never the parts.

A set is sealed only when:
- its id is a UTC time no further in the future than the clock skew allows;
- every member node (the cluster's node names from the inventory, never from the parts) wrote one
  part that succeeded, and no other node did;
- all parts name the same peers, one peer per member, and the same collections;
- each shard's snapshot comes from exactly one part, every collection is covered, and every object
  is in S3 at the size and sha256 its part records.
Sets of formats 1 and 2 (keys under parts/, which no node may write since backup format 3) carry no
node names: they are sealed when complete by their parts, on trust in who could write then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from qdrant_ops.backup import catalog, s3
from qdrant_ops.backup.manifest import Manifest
from qdrant_ops.backup.model import (
    CLOCK_SKEW_SECONDS,
    NAME_PATTERN,
    BackupSettings,
    check_name,
    id_time,
    iso_time,
)
from qdrant_ops.errors import ConfigError


def check_members(members: Iterable[str]) -> tuple[str, ...]:
    names = tuple(check_name(str(name), "member node name") for name in members)
    if not names or len(set(names)) != len(names):
        raise ConfigError(
            "the sealer needs the cluster's node names, each once (`members` in backup.yml; the "
            "qdrant_backup role writes them from the inventory)"
        )
    return names


def _agreement_problems(ok: dict[int, dict]) -> list[str]:
    problems = []
    peer_lists = {
        repr(sorted((p.get("id"), p.get("uri")) for p in part.get("peers") or [])) for part in ok.values()
    }
    if len(peer_lists) > 1:
        problems.append(
            "the parts name different peers: membership changed during the backup, or a node lied"
        )
    collection_sets = {tuple(sorted(part.get("collections") or {})) for part in ok.values()}
    if len(collection_sets) > 1:
        problems.append("the parts name different collections")
    supplied: dict[tuple[str, str], list[int]] = {}
    for pid, part in ok.items():
        for collection, records in (part.get("shards") or {}).items():
            for shard in records:
                supplied.setdefault((collection, shard), []).append(pid)
    for (collection, shard), pids in sorted(supplied.items()):
        if len(pids) > 1:
            problems.append(f"{collection} shard {shard} comes from peers {sorted(pids)}: take the next set")
    return problems


def seal_problems(
    parts: dict[int, dict], manifest: Manifest, members: tuple[str, ...], now: datetime
) -> list[str]:
    """Why the set may not be sealed (empty: it may)."""
    problems = list(manifest.problems)
    backup_id = manifest.backup_id
    when = id_time(backup_id)
    if when is None:
        problems.append(
            f"set id {backup_id!r} is not a UTC time (YYYYMMDDTHHMMSSZ): only scheduled ids are sealed"
        )
    elif when > now + timedelta(seconds=CLOCK_SKEW_SECONDS):
        problems.append(f"set id {backup_id} lies in the future: refused")
    ok = {pid: part for pid, part in parts.items() if part.get("status") == "ok"}
    if manifest.format >= 3:
        names = [part.get("node") for part in ok.values()]
        missing = sorted(set(members) - set(names))
        strangers = sorted({str(n) for n in names} - set(members))
        if missing:
            problems.append(f"no part from member node(s) {', '.join(missing)}")
        if strangers:
            problems.append(f"parts from node(s) that are not members: {', '.join(strangers)}")
        if len(manifest.peers) != len(members):
            problems.append(
                f"the parts name {len(manifest.peers)} peer(s), the cluster has {len(members)} node(s)"
            )
    return problems + _agreement_problems(ok)


def seal_set(
    s3_client, settings: BackupSettings, backup_id: str, members: tuple[str, ...], now: datetime
) -> dict:
    """Seal one set if it qualifies; returns {backup_id, sealed, problems}. Never raises because of
    what a node wrote: damaged records only make the set unsealable."""
    bucket, layout = settings.s3.bucket, settings.layout
    listed = s3.list_objects(s3_client, bucket, layout.set_prefix(backup_id))
    if any(item["Key"] == layout.seal_key(backup_id) for item in listed):
        return {"backup_id": backup_id, "sealed": True, "problems": [], "already": True}
    parts = catalog.read_parts(s3_client, bucket, layout, backup_id, listed)
    if not parts:
        return {"backup_id": backup_id, "sealed": False, "problems": ["no part record"]}
    manifest = catalog.build_manifest(parts, lambda record: catalog.object_problem(s3_client, bucket, record))
    problems = seal_problems(parts, manifest, members, now)
    if problems:
        return {"backup_id": backup_id, "sealed": False, "problems": problems}
    seal = {
        "seal_format": catalog.SEAL_FORMAT,
        "backup_id": backup_id,
        "cluster": settings.cluster,
        "sealed_at": iso_time(now),
        "members": list(members),
        "manifest": manifest.to_dict(),
    }
    try:
        s3.put_json(s3_client, bucket, layout.seal_key(backup_id), seal)  # written once
    except s3.S3Error as exc:
        if "exists already" in str(exc):  # another sealer run was first: its seal stands
            return {"backup_id": backup_id, "sealed": True, "problems": [], "already": True}
        hint = (
            "; only the sealer (the pruning role on the monitoring host) may seal"
            if "denied" in str(exc)
            else ""
        )
        raise s3.S3Error(f"{exc}{hint}") from exc
    return {"backup_id": backup_id, "sealed": True, "problems": []}


def seal_pending(
    s3_client,
    settings: BackupSettings,
    members: tuple[str, ...],
    now: datetime,
    log: Callable[[str], None] = lambda _line: None,
) -> list[dict]:
    """Seal every unsealed set that qualifies (the pruner runs this before it prunes)."""
    results = []
    for item in catalog.list_sets(s3_client, settings):
        if item["status"] == "complete" or not NAME_PATTERN.match(item["backup_id"]):
            continue
        result = seal_set(s3_client, settings, item["backup_id"], members, now)
        log(
            f"{item['backup_id']}: "
            + ("sealed" if result["sealed"] else "not sealed: " + "; ".join(result["problems"]))
        )
        results.append(result)
    return results
