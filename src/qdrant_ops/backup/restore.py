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

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from qdrant_ops.backup import model, s3
from qdrant_ops.backup.manifest import CollectionView, Manifest
from qdrant_ops.backup.restore_checks import unbalanced, verify_restore, wait_everywhere, wait_healthy
from qdrant_ops.backup.restore_plan import (
    RestoreError,
    Snapshot,
    assign_shards,
    check_restorable,
    choose_set,
    plan_nodes,
    snapshots_of,
)
from qdrant_ops.backup.snapshot_files import (
    Sources,
    check_free_space,
    presigned_url,
    recover,
    staging_path,
    start_downloads,
)
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import rebalance
from qdrant_ops.cluster.collections import apply_plan, describe, plan_collection
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.progress import Progress

FETCH_BY = ("nodes", "restorer")


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
    return Sources(start_downloads(downloads, s3_client, settings, snapshots, directory=directory, log=log))


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
            placement = wait_everywhere(client, name, nodes, options.timeout)
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
) -> tuple[list[str], dict[str, dict]]:
    if unbalanced(client, chosen):
        log("placement uneven after the restore: moving replicas (rebalance)")
        rebalance.rebalance(
            client, rebalance.RebalanceOptions(collections=tuple(chosen), timeout=timeout), log=log
        )
    return verify_restore(client, manifest, chosen, log)


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
            f"restore of {manifest.backup_id} differs from the backup: {'; '.join(report['problems'])}",
            golden=report["golden"],
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
        problems, searches = _balance_and_verify(client, manifest, chosen, options.timeout, log)
    finally:
        downloads.shutdown(cancel_futures=True)
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "problems": problems,
        "golden": searches,
        "download_seconds": round(max(downloaded, default=0.0), 3),
        "recover_seconds": round(recovered, 3),
    }
