"""Restore collections from a backup set (docs/qdrant-behaviour.md §3 and §7).

Two ways for a snapshot to reach the node that recovers it:
- `fetch_by="nodes"` (the default where it applies: per-shard sets into collections that do not
  exist yet): each node gets a short-lived presigned GET URL of its object and the sha256 (`PUT
  .../shards/{s}/snapshots/recover`); Qdrant streams the download straight into unpacking, hashes
  it on the way and refuses a mismatch before anything is recovered. Nothing passes through this
  host, nothing is staged on its disk; the nodes need to reach S3 (the Terraform VPC has an S3
  endpoint) and `service.enable_snapshot_url_recovery` left on.
- `fetch_by="restorer"`: the objects are downloaded one after another into a staging directory,
  each checked against the manifest's size and sha256, and uploaded to the node that recovers it
  (`.../snapshots/upload`, with the sha256 again so Qdrant checks what it got). Always used for a
  collection that would be replaced (overwrite): it is deleted only after every object of the set
  has checked out, so a damaged set never costs the data it was meant to replace. Format 1 sets too.
Into a target that lacks the collections, recoveries start at once (nodes) or as soon as each object
has checked out (restorer); if any object is damaged or any recovery fails, the collections this
restore created are deleted again.

Format 2 sets (a snapshot per shard, backup/node_part.py): the collection is created from the manifest's
config, shard count and payload indexes, Qdrant places its replicas, and every replica of a shard
receives that shard's snapshot with priority `no_sync`: each activates its own copy and none is
marked Dead, so Qdrant starts no transfer and no recovery ever meets a transfer of the same shard.
Measured at 200k x 384 (6 shards, RF 2, 3 nodes): 7.5-9.3 s, against 13.4-14.2 s for recovering
each shard once with priority `snapshot` and letting Qdrant copy it to the other replica. It costs
replication-factor times the set's bytes read from S3 (fetch_by nodes) or sent from the restoring
host (restorer). Works into a cluster of any size; a bounded number of nodes recover at once, each
one shard at a time.

Format 1 sets (a collection snapshot per node) are recovered node by node with priority
`snapshot`, each source peer's part on its own target node.

At the end every replica must be Active with no transfer running, the collection serving (its
optimizers started if Qdrant left it grey), each collection's replicas per peer within one of each
other (moved with the rebalance planner if Qdrant placed them unevenly), and exact counts and the
sampled points must match the manifest.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from qdrant_ops.backup import catalog, model, node_part, s3
from qdrant_ops.backup.manifest import CollectionView, Manifest
from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster import rebalance
from qdrant_ops.cluster.collections import apply_plan, describe, plan_collection
from qdrant_ops.cluster.health import shard_placement, unhealthy_replicas
from qdrant_ops.cluster.points import get_points
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.polling import wait_until
from qdrant_ops.progress import Progress
from qdrant_ops.redact import redact

RESTORE_DIR = "qdrant-ops-restore"  # under the staging directory, one folder per backup id
PRIORITY = "snapshot"  # format 1: each node's part wins over what the cluster holds
# Format 2: every replica of a new collection receives the same shard snapshot; no_sync activates
# each without marking the others Dead, so no transfer starts (docs/qdrant-behaviour.md §7).
SHARD_PRIORITY = "no_sync"
FREE_SPACE_MARGIN = 1.05
FETCH_BY = ("nodes", "restorer")
# A node starts its GET as soon as it is asked, so each URL is made when its recovery starts (after
# the wait for a --parallel slot) and lives at least this long, or the recovery's timeout when that
# is longer (S3 allows 7 days at most). Its signing values are cut from every message (redact.py).
PRESIGNED_URL_SECONDS = 900
PRESIGNED_URL_MAX_SECONDS = 7 * 24 * 3600


class RestoreError(QdrantOpsError):
    """The restore was refused or failed; the message says what and what to do."""


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


# -- downloading and uploading -------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * s3.MIB):
            digest.update(chunk)
    return digest.hexdigest()


def staging_path(staging_dir: Path, backup_id: str) -> Path:
    model.check_name(backup_id, "backup id")
    return Path(staging_dir) / RESTORE_DIR / backup_id


def local_file(directory: Path, index: int) -> Path:
    # Numbered, never built from names read from S3: nothing can point outside the directory.
    return directory / f"{index:05d}.snapshot"


def private_directory(directory: Path) -> None:
    """Create the staging folders 0700 and owned by this user. The default staging directory is the
    shared /tmp: a folder someone else made there first (or a symlink) could read or swap the
    snapshots, so it is refused."""
    try:
        for first, folder in ((True, directory.parent), (False, directory)):
            folder.mkdir(mode=0o700, parents=first, exist_ok=True)
            stat = folder.lstat()
            if folder.is_symlink() or not folder.is_dir() or stat.st_uid != os.geteuid():
                raise RestoreError(
                    f"the staging folder {folder} is a symlink or belongs to another user: remove it, or "
                    "choose another --staging-dir; nothing was restored"
                )
            folder.chmod(0o700)
    except OSError as exc:
        raise RestoreError(
            f"cannot use the staging directory {directory.parent.parent}: {exc.strerror}; choose a writable "
            "directory with --staging-dir; nothing was restored"
        ) from None


def check_free_space(directory: Path, needed: int) -> None:
    private_directory(directory)
    free = shutil.disk_usage(directory).free
    if free < needed * FREE_SPACE_MARGIN:
        raise RestoreError(
            f"the staging directory {directory} has {free} bytes free but the set's snapshots need {needed}: "
            "free space or choose another staging directory; nothing was restored"
        )


def download(
    s3_client,
    settings: s3.S3Settings,
    snap: Snapshot,
    path: Path,
    on_bytes: Callable[[int], None] = lambda _nbytes: None,
) -> None:
    """Download one object with parallel ranged GETs (`on_bytes` hears of each chunk), then check
    size and sha256 against the manifest; a mismatch deletes the file."""
    partial = path.with_suffix(".partial")
    try:
        s3_client.download_file(
            settings.bucket,
            snap.key,
            str(partial),
            Config=TransferConfig(
                multipart_threshold=settings.part_size,
                multipart_chunksize=settings.part_size,
                max_concurrency=settings.concurrency,
            ),
            Callback=on_bytes,
        )
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise s3.describe_error(exc, "download", settings.bucket, snap.key) from exc
    size, digest = partial.stat().st_size, _sha256_file(partial)
    if size != snap.size or digest != snap.sha256:
        partial.unlink()
        raise RestoreError(
            f"checksum mismatch for s3://{settings.bucket}/{snap.key}: the manifest says {snap.size} bytes, "
            f"sha256 {snap.sha256}; downloaded {size} bytes, sha256 {digest}. The object is damaged: nothing "
            "was restored; restore an older set"
        )
    partial.replace(path)


def presigned_url(s3_client, settings: s3.S3Settings, snap: Snapshot, timeout: float = 0) -> str:
    lifetime = min(PRESIGNED_URL_MAX_SECONDS, max(PRESIGNED_URL_SECONDS, math.ceil(timeout)))
    return s3_client.generate_presigned_url(
        "get_object", Params={"Bucket": settings.bucket, "Key": snap.key}, ExpiresIn=lifetime
    )


def recover(client: ClusterClient, snap: Snapshot, source: Path | str, timeout: float) -> None:
    """Recover one snapshot on its node, from a verified local file (uploaded) or from a URL the
    node downloads itself; either way Qdrant checks the sha256 before it recovers anything."""
    priority = PRIORITY if snap.shard_id is None else SHARD_PRIORITY
    where = (snap.node, snap.collection, snap.shard_id)
    try:
        if isinstance(source, Path):
            client.upload_snapshot(*where, source, priority=priority, checksum=snap.sha256, timeout=timeout)
        else:
            client.recover_snapshot(*where, source, priority=priority, checksum=snap.sha256, timeout=timeout)
    except QdrantOpsError as exc:
        hint = (
            ""
            if isinstance(source, Path)
            else (
                " (the node fetches the object from S3 itself: if it cannot reach S3, restore with "
                "fetch_by restorer)"
            )
        )
        raise RestoreError(
            f"recovering {snap.label} on {snap.node} failed: {redact(str(exc))}{hint}"
        ) from exc


# -- waiting and checking ------------------------------------------------------------------------------
SERVING = ("green", "yellow")  # yellow: optimizing in the background, every point served


def trigger_optimizers(client: ClusterClient, collection: str) -> None:
    """Qdrant starts no optimizer after a shard recovery (only after a collection recovery), so a
    restored collection whose segments still need work stays grey until some update arrives; an
    empty optimizers_config update restarts the optimizers on every replica
    (docs/qdrant-behaviour.md §7)."""
    client.update_collection(collection, {"optimizers_config": {}})


def _not_healthy(client: ClusterClient, collection: str, nodes: Sequence[str]) -> tuple[str | None, bool]:
    """What keeps the collection from serving settled (None when nothing does), and whether it is
    settled but grey (its optimizers not started)."""
    info = client.collection_info(collection) or {}
    bad, transfers = [], []
    for node in nodes:
        try:
            view = client.collection_cluster(collection, node=node)
        except QdrantApiError as exc:
            bad.append(f"{node}: {exc.status}")
            continue
        bad += unhealthy_replicas(shard_placement(view))
        transfers += view.get("shard_transfers") or []
    settled = not bad and not transfers
    if settled and info.get("status") in SERVING:
        return None, False
    missing = f"status {info.get('status')}, replicas not Active: {bad}, transfers: {len(transfers)}"
    return missing, settled and info.get("status") == "grey"


def wait_healthy(
    client: ClusterClient, collection: str, nodes: Sequence[str], timeout: float, *, trigger: bool = False
) -> None:
    """Serving (green, or yellow while optimizing), no shard transfer running, and no replica other
    than Active in any node's view. With `trigger`, a settled collection that is still grey gets its
    optimizers started (after the transfers: a replica rebuilt by a transfer starts untriggered)."""
    triggered_at = -1e9

    def missing() -> str | None:
        nonlocal triggered_at
        what, grey = _not_healthy(client, collection, nodes)
        if grey and trigger and time.monotonic() - triggered_at > 30:
            trigger_optimizers(client, collection)
            triggered_at = time.monotonic()
        return what

    wait_until(
        missing,
        timeout=timeout,
        interval=0.25,
        error=lambda what: RestoreError(
            f"{collection} did not become healthy within {timeout:.0f}s: {what}; "
            "see `qdrant-ops cluster status`"
        ),
    )


def _wait_everywhere(
    client: ClusterClient, collection: str, nodes: Sequence[str], timeout: float
) -> list[dict]:
    """Until every node knows the new collection; returns its placement."""
    views: list[dict] = []

    def missing() -> str | None:
        try:
            views[:] = [client.collection_cluster(collection, node=node) for node in nodes]
        except QdrantApiError as exc:
            if exc.status != 404:
                raise RestoreError(f"{collection} was created but not every node knows it: {exc}") from exc
            return str(exc)
        return None

    wait_until(
        missing,
        timeout=timeout,
        interval=0.2,
        error=lambda what: RestoreError(f"{collection} was created but not every node knows it: {what}"),
    )
    return shard_placement(views[0])


def verify_restore(client: ClusterClient, manifest: Manifest, collections: Sequence[str]) -> list[str]:
    """Differences between the cluster now and the manifest: exact counts, sampled points."""
    problems = []
    for name in collections:
        expected = manifest.collections[name]
        count = client.count_points(name)
        if count != expected.points_exact:
            problems.append(f"{name}: {count} points, the backup has {expected.points_exact}")
        points = get_points(client, name, [sample["id"] for sample in expected.sample])
        for sample in expected.sample:
            point = points.get(sample["id"])
            if point is None:
                problems.append(f"{name}: sampled point {sample['id']} is missing")
            else:
                found = node_part.point_fingerprint(point)
                differ = [
                    part
                    for part in ("payload", "vector")
                    if found[f"{part}_sha256"] != sample[f"{part}_sha256"]
                ]
                if differ:
                    problems.append(f"{name}: point {sample['id']} differs in {' and '.join(differ)}")
    return problems


def unbalanced(client: ClusterClient, collections: Sequence[str]) -> list[rebalance.ShardTransfer]:
    status = client.cluster_status()
    if status.get("status") != "enabled":
        return []
    peers = sorted(int(p) for p in status["peers"])
    placements = {name: shard_placement(client.collection_cluster(name)) for name in collections}
    return rebalance.plan_moves(placements, peers)


# -- the whole restore ---------------------------------------------------------------------------------
def _peer_urls(client: ClusterClient, nodes: Sequence[str], placement: list[dict]) -> dict[int, str]:
    """Which node URL answers as which peer; a single node (cluster mode off) holds every shard."""
    urls = {}
    for node in nodes:
        status = client.cluster_status(node=node)
        if status.get("status") != "enabled":
            return {replica["peer_id"]: node for replica in placement}
        urls[int(status["peer_id"])] = node
    return urls


def _create(client: ClusterClient, name: str, view: CollectionView, single_copy: bool = False) -> None:
    spec = describe({"config": view.config, "payload_schema": view.payload_schema}, name)
    if single_copy:  # a restore drill's scratch node: one replica of every shard
        spec.update(replication_factor=1, write_consistency_factor=1)
    apply_plan(client, plan_collection(spec, None))


Files = dict[str, "Future[Path]"]  # object key -> its downloaded, verified local file


@dataclass
class Sources:
    """Where each snapshot comes from: with `fetch_by` restorer the staged file, downloaded and
    checked in the background (`files`); with nodes a presigned URL made when it is needed."""

    files: Files
    url_for: Callable[[Snapshot], str] | None = None

    def wait_for(self, snap: Snapshot) -> None:
        """Until the snapshot's staged file is ready (nothing to wait for with URLs)."""
        if not self.url_for:
            self.files[snap.key].result()

    def locate(self, snap: Snapshot) -> Path | str:
        """The staged file, or a presigned URL made now: call it when the recovery starts."""
        return self.url_for(snap) if self.url_for else self.files[snap.key].result()

    def wait_all(self) -> None:
        """Until every object has checked out (raises for the first that did not)."""
        for pending in self.files.values():
            pending.result()

    def cancel(self) -> None:
        for pending in self.files.values():
            pending.cancel()


def _start_downloads(
    pool: ThreadPoolExecutor,
    s3_client,
    settings: s3.S3Settings,
    snapshots: list[Snapshot],
    *,
    directory: Path,
    log,
) -> Files:
    """Every object downloaded and checked in the background, one at a time in plan order (each
    with parallel ranged GETs), so recoveries can start on the first while the rest arrive."""

    def fetch(snap: Snapshot, path: Path) -> Path:
        download(s3_client, settings, snap, path, lambda nbytes: progress.advance(snap.label, nbytes))
        progress.done(f"{snap.label} downloaded and verified", snap.size, piece=snap.label)
        return path

    unique = list({snap.key: snap for snap in snapshots}.values())
    progress = Progress("download", "snapshots", len(unique), sum(snap.size for snap in unique), log)
    files: Files = {}
    for snap in unique:
        files[snap.key] = pool.submit(fetch, snap, local_file(directory, len(files)))
    return files


@dataclass(frozen=True)
class RestoreOptions:
    """What one restore does, built once by each front door (the CLI, qdrant_restore, the restore
    drill) and checked here, so every door refuses the same things with the same words."""

    nodes: tuple[str, ...]  # every node of the target cluster
    staging_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    backup_id: str | None = None  # default: the newest sealed set
    collections: tuple[str, ...] = ()  # default: every collection of the set
    peer_map: dict[int, str] | None = None  # format 1 only: whose part goes to which node
    overwrite: bool = False
    dry_run: bool = False
    parallel: int = 2
    fetch_by: str = "nodes"
    timeout: float = 3600.0
    single_copy: bool = False  # one replica per shard: the restore drill's scratch node
    allow_unsealed: bool = False

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ConfigError("no target nodes: give every node's URL")
        if self.parallel < 1:
            raise ConfigError(f"parallel must be at least 1, got {self.parallel}")
        if self.fetch_by not in FETCH_BY:
            raise ConfigError(f"fetch_by must be one of {', '.join(FETCH_BY)}, got {self.fetch_by!r}")
        object.__setattr__(self, "nodes", tuple(node.rstrip("/") for node in self.nodes))
        object.__setattr__(self, "collections", tuple(self.collections))
        object.__setattr__(self, "staging_dir", Path(self.staging_dir))


def _fetcher(report: dict, fetch_by: str, log) -> str:
    """Replacing needs the whole set checked before the delete, so this host downloads it."""
    if report["replace"] or report["format"] < 2:
        if fetch_by != "restorer":
            log("the set is downloaded and checked here first (it replaces collections, or it is format 1)")
        return "restorer"
    return fetch_by


def _sources(
    report: dict,
    downloads: ThreadPoolExecutor,
    s3_client,
    settings: s3.S3Settings,
    snapshots: list[Snapshot],
    *,
    directory: Path,
    timeout: float,
    log,
) -> Sources:
    if report["fetch_by"] == "nodes":
        return Sources({}, lambda snap: presigned_url(s3_client, settings, snap, timeout))
    check_free_space(directory, report["bytes"])
    return Sources(_start_downloads(downloads, s3_client, settings, snapshots, directory=directory, log=log))


def _recover_all(
    client: ClusterClient, todo: list[Snapshot], sources: Sources, *, parallel: int, timeout: float, log
) -> None:
    """Each node recovers its snapshots one at a time, in plan order, as soon as each one's source
    is ready; at most `parallel` recoveries run at once."""
    by_node: dict[str, list[Snapshot]] = {}
    for snap in todo:
        by_node.setdefault(snap.node, []).append(snap)
    slots = threading.Semaphore(max(1, parallel))
    failed = threading.Event()
    progress = Progress("restore", "snapshots recovered", len(todo), sum(snap.size for snap in todo), log)

    def one_node(snaps: list[Snapshot]) -> None:
        for snap in snaps:
            try:
                sources.wait_for(snap)  # a download is waited for outside the slot
                with slots:
                    if failed.is_set():
                        return
                    recover(client, snap, sources.locate(snap), timeout)
            except BaseException:
                failed.set()
                sources.cancel()  # no more downloads: the restore has failed
                raise
            progress.done(f"{snap.label} recovered on {snap.node}", snap.size)

    with ThreadPoolExecutor(max_workers=len(by_node) or 1) as pool:
        futures = [pool.submit(one_node, snaps) for snaps in by_node.values()]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:  # the first real failure, not a wait that the failure cancelled
        raise next((e for e in errors if not isinstance(e, CancelledError)), errors[0])


def _plan(
    client: ClusterClient,
    manifest: Manifest,
    layout: model.Layout,
    chosen: list[str],
    options: RestoreOptions,
) -> tuple[list[Snapshot], dict]:
    """Every check that needs no download, then which snapshot goes where."""
    existing = client.collection_names()
    check_restorable(
        manifest,
        collections=chosen,
        existing=existing,
        target_version=client.version(),
        overwrite=options.overwrite,
        peer_count=client.peer_count() or 1,
        single_copy=options.single_copy,
    )
    snapshots = [snap for name in chosen for snap in snapshots_of(manifest, layout, name)]
    if manifest.per_node:
        snapshots = plan_nodes(snapshots, list(options.nodes), options.peer_map)
    elif options.peer_map:
        raise RestoreError(
            "a peer map applies to format 1 sets only: shards of this set go where Qdrant places them"
        )
    return snapshots, _plan_report(manifest, chosen, existing, snapshots, options.dry_run)


def _plan_report(
    manifest: Manifest, chosen: list[str], existing: list[str], snapshots: list[Snapshot], dry_run: bool
) -> dict:
    return {
        "backup_id": manifest.backup_id,
        "format": manifest.format,
        "collections": chosen,
        "replace": sorted(set(chosen) & set(existing)),
        "plan": [
            {
                "collection": s.collection,
                "shard_id": s.shard_id,
                "peer_id": s.peer_id,
                "node": s.node,
                "bytes": s.size,
            }
            for s in snapshots
        ],
        "bytes": sum(s.size for s in snapshots),
        "dry_run": dry_run,
    }


def _recover_shards(
    client: ClusterClient,
    manifest: Manifest,
    chosen: list[str],
    snapshots: list[Snapshot],
    *,
    sources: Sources,
    options: RestoreOptions,
    log,
) -> None:
    """Formats 2 and 3: create each collection from the set, then every replica of a shard
    receives that shard's snapshot as soon as its source is ready. If a download or a recovery fails,
    the collections created here are deleted again: nothing half-restored is left serving."""
    todo, created, nodes = [], [], list(options.nodes)
    try:
        for name in chosen:
            _create(client, name, manifest.collections[name], options.single_copy)
            created.append(name)
            placement = _wait_everywhere(client, name, nodes, options.timeout)
            mine = [s for s in snapshots if s.collection == name]
            todo += assign_shards(mine, placement, _peer_urls(client, nodes, placement))
            log(f"{name}: created with {len(mine)} shard(s); recovering each on every replica")
        _recover_all(client, todo, sources, parallel=options.parallel, timeout=options.timeout, log=log)
    except BaseException as exc:
        for name in created:
            client.delete_collection(name)
            log(f"{name}: deleted again, the restore failed")
        if created and isinstance(exc, QdrantOpsError):
            raise RestoreError(
                f"{exc}; the collections this restore created ({', '.join(created)}) were deleted again: "
                "nothing was restored"
            ) from exc
        raise


def _recover_node_parts(
    client: ClusterClient,
    snapshots: list[Snapshot],
    sources: Sources,
    nodes: list[str],
    *,
    timeout: float,
    log,
) -> None:
    """Format 1: each node recovers its own collection snapshots, node by node."""
    for node in dict.fromkeys(s.node for s in snapshots):
        here = [s for s in snapshots if s.node == node]
        _recover_all(client, here, sources, parallel=1, timeout=timeout, log=log)
        for name in dict.fromkeys(s.collection for s in here):
            wait_healthy(client, name, nodes, timeout)


def _recover(
    client: ClusterClient,
    manifest: Manifest,
    chosen: list[str],
    snapshots: list[Snapshot],
    *,
    sources: Sources,
    replace: list[str],
    options: RestoreOptions,
    log,
) -> None:
    """Recover every snapshot as its source is ready, until every replica is Active. A collection
    is replaced, and a format 1 set recovered, only once every object of the set has checked out."""
    if replace or manifest.per_node:
        sources.wait_all()
        _replace(client, replace, log)
    nodes, timeout = list(options.nodes), options.timeout
    try:
        if manifest.per_node:
            _recover_node_parts(client, snapshots, sources, nodes, timeout=timeout, log=log)
            return
        _recover_shards(client, manifest, chosen, snapshots, sources=sources, options=options, log=log)
        for name in chosen:
            wait_healthy(client, name, nodes, timeout, trigger=True)
    except QdrantOpsError as exc:
        if not replace:
            raise
        again = " ".join(f"--collection {name}" for name in replace)
        raise RestoreError(
            f"{exc}. The overwrite had deleted the existing {', '.join(replace)} before: they stay gone "
            f"until a restore succeeds; once the cause is fixed run `qdrant-ops restore --backup-id "
            f"{manifest.backup_id} {again}` with the same --config and --url options"
        ) from exc


def _replace(client: ClusterClient, names: list[str], log) -> None:
    for name in names:
        client.delete_collection(name)
        log(f"{name}: existing collection deleted (overwrite)")


def _balance_and_verify(
    client: ClusterClient, manifest: Manifest, chosen: list[str], timeout: float, log
) -> list[str]:
    if unbalanced(client, chosen):
        log("placement uneven after the restore: moving replicas (rebalance)")
        rebalance.rebalance(
            client, rebalance.RebalanceOptions(collections=tuple(chosen), timeout=timeout), log=log
        )
    return verify_restore(client, manifest, chosen)


def restore(
    client: ClusterClient,
    s3_client,
    settings: model.BackupSettings,
    options: RestoreOptions,
    *,
    log: Callable[[str], None] = lambda _line: None,
) -> dict:
    """Restore `options.collections` (default all) of the set `options.backup_id` (default the
    newest sealed one) into the cluster of `options.nodes`; the nodes fetch the objects from S3
    themselves, or this host downloads them under `options.staging_dir` (`fetch_by`, see the
    module's docstring). Returns the report (the plan only, with `dry_run`); raises RestoreError
    with nothing changed for every refusal."""
    started = time.monotonic()
    manifest = choose_set(s3_client, settings, options.backup_id, allow_unsealed=options.allow_unsealed)
    chosen = sorted(options.collections) if options.collections else sorted(manifest.collections)
    snapshots, report = _plan(client, manifest, settings.layout, chosen, options)
    report["fetch_by"] = _fetcher(report, options.fetch_by, log)
    if options.dry_run:
        return report
    done = _execute(
        client,
        s3_client,
        settings,
        manifest=manifest,
        chosen=chosen,
        snapshots=snapshots,
        plan=report,
        options=options,
        log=log,
    )
    report.update(done)
    report["seconds"] = round(time.monotonic() - started, 3)
    if report["problems"]:
        raise RestoreError(
            f"restore of {manifest.backup_id} differs from the backup: {'; '.join(report['problems'])}"
        )
    return report


def _execute(
    client: ClusterClient,
    s3_client,
    settings: model.BackupSettings,
    *,
    manifest: Manifest,
    chosen: list[str],
    snapshots: list[Snapshot],
    plan: dict,
    options: RestoreOptions,
    log: Callable[[str], None],
) -> dict:
    """The planned restore: sources, recoveries, balance, checks; the staging directory is removed
    whatever happens. Returns the problems found and how long the downloads and recoveries took."""
    started = time.monotonic()
    directory = staging_path(options.staging_dir, manifest.backup_id)
    downloads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-download")
    downloaded: list[float] = []
    try:
        sources = _sources(
            plan,
            downloads,
            s3_client,
            settings.s3,
            snapshots,
            directory=directory,
            timeout=options.timeout,
            log=log,
        )
        for pending in sources.files.values():
            pending.add_done_callback(lambda _f: downloaded.append(time.monotonic() - started))
        _recover(
            client,
            manifest,
            chosen,
            snapshots,
            sources=sources,
            replace=plan["replace"],
            options=options,
            log=log,
        )
        recovered = time.monotonic() - started
        problems = _balance_and_verify(client, manifest, chosen, options.timeout, log)
    finally:
        downloads.shutdown(cancel_futures=True)
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "problems": problems,
        "download_seconds": round(max(downloaded, default=0.0), 3),
        "recover_seconds": round(recovered, 3),
    }
