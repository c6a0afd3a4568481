"""Which backup set, and which of its snapshots goes to which node: every check of a restore that
needs no download, so nothing is touched before the plan is possible (backup/restore.py runs it).
Names, keys and ids come from S3 and are held to the set's layout before they build a path or a
request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qdrant_ops.backup import catalog, model
from qdrant_ops.backup.manifest import Manifest
from qdrant_ops.errors import QdrantOpsError


class RestoreError(QdrantOpsError):
    """The restore was refused or failed; the message says what and what to do. `golden`: the
    golden queries' results when the restore got as far as checking them."""

    def __init__(self, message: str, golden: dict | None = None) -> None:
        super().__init__(message)
        self.golden = golden or {}


@dataclass(frozen=True)
class Snapshot:
    """One object of the set to recover: a shard's snapshot (format 2) or a node's collection
    snapshot (format 1, `shard_id` None); `node` is the URL that recovers it (known for format 2
    only once the collection exists)."""

    collection: str
    key: str
    size: int
    sha256: str
    peer_id: int
    shard_id: int | None = None
    node: str = ""

    @property
    def label(self) -> str:
        return (
            f"{self.collection} shard {self.shard_id}"
            if self.shard_id is not None
            else (f"{self.collection} (peer {self.peer_id}'s part)")
        )


def minor(version: str | None) -> str:
    parts = (version or "").lstrip("v").split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else (version or "unknown")


# -- choosing and checking the set -------------------------------------------------------------------
def choose_set(
    s3_client, settings: model.BackupSettings, backup_id: str | None = None, *, allow_unsealed: bool = False
) -> dict:
    """The set to restore (default: the newest sealed one), from its seal and the objects now in
    S3. Refuses an incomplete set, and an unsealed one unless `allow_unsealed` names it on purpose
    (its parts then decide what comes back: docs/backup-trust.md)."""
    if backup_id is None:
        complete = [s for s in catalog.list_sets(s3_client, settings) if s["status"] == "complete"]
        if not complete:
            raise RestoreError(
                f"no sealed backup of cluster {settings.cluster} in s3://{settings.s3.bucket}/"
                f"{settings.layout.cluster_prefix()}: see `qdrant-ops backup list` (the sealer, "
                "`qdrant-ops backup seal` on the monitoring host, seals sets whose parts are all in)"
            )
        backup_id = complete[0]["backup_id"]
    manifest = catalog.set_manifest(s3_client, settings, backup_id, verify=True)
    if manifest.status == "unsealed" and not allow_unsealed:
        raise RestoreError(
            f"backup {backup_id} is not sealed: nothing was restored; seal it (`qdrant-ops backup seal`) "
            "or, knowing that its part records alone then decide what comes back, pass --allow-unsealed"
        )
    if manifest.status not in ("complete", "unsealed"):
        raise RestoreError(
            f"backup {backup_id} is incomplete ({'; '.join(manifest.problems)}): nothing was restored; "
            "choose a complete set (`qdrant-ops backup list`)"
        )
    if manifest.backup_id != backup_id:
        raise RestoreError(
            f"the part records under backup {backup_id} name backup {manifest.backup_id!r}: the set "
            "was tampered with or copied; nothing was restored"
        )
    return manifest


def snapshots_of(manifest: Manifest, layout: model.Layout, name: str) -> list[Snapshot]:
    """The collection's objects, each held to the set's layout: the manifest's types were checked
    when it was read, and a record may still name another object than its own (a sealed set whose
    seal was rewritten by someone with more rights than a node)."""
    if name not in manifest.collections:
        raise RestoreError(f"backup {manifest.backup_id} has no collection {name!r}")
    result = []
    for number, record in manifest.collections[name].records.items():
        peer, shard_id = (number, None) if manifest.per_node else (record.peer_id, number)
        if shard_id is None:
            expected = layout.snapshot_key(manifest.backup_id, name, peer)
        elif record.node is None:
            expected = layout.shard_key(manifest.backup_id, name, shard_id, peer)
        else:
            expected = layout.node_shard_key(manifest.backup_id, record.node, name, shard_id, record.attempt)
        if record.key != expected:
            raise RestoreError(
                f"backup {manifest.backup_id}: {name} names object {record.key!r} where the "
                f"layout has {expected!r}: the part record was tampered with; nothing was restored"
            )
        result.append(Snapshot(name, expected, record.size, record.sha256, peer, shard_id))
    return sorted(result, key=lambda snap: (snap.shard_id or 0, snap.peer_id))


def check_restorable(
    manifest: Manifest,
    *,
    collections: Sequence[str],
    existing: Sequence[str],
    target_version: str | None,
    overwrite: bool,
    peer_count: int,
    single_copy: bool = False,
) -> None:
    """Every refusal that needs no download, so nothing is touched before the plan is possible."""
    available = sorted(manifest.collections)
    unknown = sorted(set(collections) - set(available))
    if unknown:
        raise RestoreError(
            f"backup {manifest.backup_id} has no collection {', '.join(unknown)}; "
            f"it holds {', '.join(available)}"
        )
    made_by = manifest.qdrant_version
    if target_version is not None and (made_by is None or minor(target_version) != minor(made_by)):
        raise RestoreError(
            f"backup {manifest.backup_id} was made by Qdrant {made_by} but the target "
            f"runs {target_version}: snapshots restore only into the same minor version "
            f"({minor(made_by) if made_by else 'unknown'}.x); install that version first"
        )
    clashing = sorted(set(collections) & set(existing))
    if clashing and not overwrite:
        raise RestoreError(
            f"collection(s) {', '.join(clashing)} already exist on the target: pass overwrite to replace "
            "them, or restore other collections"
        )
    if manifest.per_node:
        return
    for name in collections:
        params = manifest.collections[name].params
        if params.get("sharding_method") == "custom":
            raise RestoreError(
                f"{name} uses custom sharding: its shard keys are not recreated by this restore; "
                "create the collection and its shard keys first, then recover the shard snapshots by hand"
            )
        factor = 1 if single_copy else int(params.get("replication_factor") or 1)
        if peer_count < factor:
            raise RestoreError(
                f"{name} has replication factor {factor} but the target has {peer_count} peer(s): "
                "add nodes first"
            )


def plan_nodes(
    snapshots: Sequence[Snapshot], nodes: Sequence[str], peer_map: dict[int, str] | None = None
) -> list[Snapshot]:
    """Format 1: which node recovers each source peer's part, node by node in peer order."""
    sources = sorted({s.peer_id for s in snapshots})
    urls = [u.rstrip("/") for u in nodes]
    if len(urls) < len(sources):
        raise RestoreError(
            f"the set holds parts of {len(sources)} peers but the target has {len(urls)} node(s): each part "
            "needs its own node; add nodes first"
        )
    if peer_map:
        mapping = {int(pid): url.rstrip("/") for pid, url in peer_map.items()}
        problems = [f"peer {p} is not in the set" for p in sorted(set(mapping) - set(sources))]
        problems += [f"{u} is not a target node" for u in sorted(set(mapping.values()) - set(urls))]
        problems += [f"peer {p} has no target" for p in sorted(set(sources) - set(mapping))]
        if len(set(mapping.values())) != len(mapping):
            problems.append("two peers map to the same node")
        if problems:
            raise RestoreError(f"peer mapping: {'; '.join(problems)}; sources: {sources}, targets: {urls}")
    else:
        mapping = dict(zip(sources, urls, strict=False))
    ordered = sorted(snapshots, key=lambda s: (sources.index(s.peer_id), s.collection))
    return [Snapshot(**{**s.__dict__, "node": mapping[s.peer_id]}) for s in ordered]


def assign_shards(
    snapshots: Sequence[Snapshot], placement: list[dict], peer_urls: dict[int, str]
) -> list[Snapshot]:
    """Format 2: every shard snapshot goes to every replica of the shard in the new collection."""
    holders: dict[int, list[int]] = {}
    for replica in placement:
        holders.setdefault(replica["shard_id"], []).append(replica["peer_id"])
    result = []
    for snap in snapshots:
        peers = sorted(holders.get(snap.shard_id, []))
        if not peers:
            raise RestoreError(
                f"{snap.label}: the new collection has no such shard; nothing was recovered into it"
            )
        missing = [p for p in peers if p not in peer_urls]
        if missing:
            raise RestoreError(f"peer(s) {missing} hold {snap.label} but no node URL given answers as them")
        result += [Snapshot(**{**snap.__dict__, "node": peer_urls[peer]}) for peer in peers]
    return result
