"""Restore collections from a backup set (FACTS.md section 3): each source peer's snapshot goes to
one target node, is downloaded into that node's snapshots_path and checked against the manifest's
sha256, then recovered with a file:// location and an explicit priority (the code default is
`snapshot`; always say it), node by node, waiting for green with every replica Active. The result
is checked against the manifest: exact counts and the sampled points' payload and vector hashes.

Every refusal happens before anything changes: an incomplete set, a Qdrant minor version other
than the set's, an existing collection without `overwrite`, too few target nodes, and any
downloaded part whose sha256 differs (all parts are downloaded and checked before the first
recover).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from qdrant_ops import backup, s3
from qdrant_ops.client import ClusterClient, QdrantApiError, segment
from qdrant_ops.cluster import shard_placement, unhealthy_replicas
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.points import get_point

RESTORE_DIR = "qdrant-ops-restore"  # under snapshots_path: recover only accepts files inside it
PRIORITY = "snapshot"


class RestoreError(QdrantOpsError):
    """The restore was refused or failed; the message says what and what to do."""


@dataclass(frozen=True)
class Target:
    """A node to restore into. `snapshots_dir` is where this process writes the node's
    snapshots_path; `snapshots_path` is the same directory as the node sees it."""

    url: str
    snapshots_dir: Path
    snapshots_path: str = ""

    def node_path(self, local: Path) -> str:
        relative = local.relative_to(self.snapshots_dir)
        return str(Path(self.snapshots_path or self.snapshots_dir) / relative)


@dataclass(frozen=True)
class Step:
    target: Target
    peer_id: int
    collection: str
    key: str
    size: int
    sha256: str
    local_path: Path = field(default=Path(), compare=False)


def minor(version: str | None) -> str:
    parts = (version or "").lstrip("v").split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else (version or "unknown")


# -- choosing and planning -----------------------------------------------------------------------------
def choose_set(s3_client, settings: backup.BackupSettings, backup_id: str | None = None) -> dict:
    """The set to restore, rebuilt from its parts and the objects now in S3 (default: the newest
    complete one). Refuses an incomplete set."""
    if backup_id is None:
        complete = [s for s in backup.list_sets(s3_client, settings) if s["status"] == "complete"]
        if not complete:
            raise RestoreError(
                f"no complete backup of cluster {settings.cluster} in s3://{settings.s3.bucket}/"
                f"{settings.layout.cluster_prefix()}: see `qdrant-ops backup list`"
            )
        backup_id = complete[0]["backup_id"]
    manifest = backup.show_set(s3_client, settings, backup_id, verify=True)
    if manifest["status"] != "complete":
        raise RestoreError(
            f"backup {backup_id} is incomplete ({'; '.join(manifest['problems'])}): nothing was restored; "
            "choose a complete set (`qdrant-ops backup list`)"
        )
    return manifest


def plan_restore(
    manifest: dict,
    targets: Sequence[Target],
    *,
    collections: Sequence[str] = (),
    peer_map: dict[int, str] | None = None,
    existing: Sequence[str] = (),
    target_version: str | None = None,
    overwrite: bool = False,
) -> list[Step]:
    """Which target restores which snapshot, node by node. Pure: raises RestoreError for every
    refusal, so nothing is touched before the plan is known to be possible."""
    available = sorted(manifest["collections"])
    chosen = sorted(collections) if collections else available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise RestoreError(
            f"backup {manifest['backup_id']} has no collection {', '.join(unknown)}; "
            f"it holds {', '.join(available)}"
        )
    if target_version is not None and minor(target_version) != minor(manifest["qdrant_version"]):
        raise RestoreError(
            f"backup {manifest['backup_id']} was made by Qdrant {manifest['qdrant_version']} but the target "
            f"runs {target_version}: snapshots restore only into the same minor version "
            f"({minor(manifest['qdrant_version'])}.x); install that version first"
        )
    clashing = sorted(set(chosen) & set(existing))
    if clashing and not overwrite:
        raise RestoreError(
            f"collection(s) {', '.join(clashing)} already exist on the target: pass overwrite to replace "
            "them, or restore other collections"
        )
    sources = sorted({int(pid) for name in chosen for pid in manifest["collections"][name]["nodes"]})
    if len(targets) < len(sources):
        raise RestoreError(
            f"backup {manifest['backup_id']} holds parts of {len(sources)} peers but the target has "
            f"{len(targets)} node(s): each part needs its own node; add nodes first"
        )
    by_url = {t.url.rstrip("/"): t for t in targets}
    if peer_map:
        mapping = {int(pid): url.rstrip("/") for pid, url in peer_map.items()}
        problems = [f"peer {p} is not in the set" for p in sorted(set(mapping) - set(sources))]
        problems += [f"{u} is not a target node" for u in sorted(set(mapping.values()) - set(by_url))]
        problems += [f"peer {p} has no target" for p in sorted(set(sources) - set(mapping))]
        if len(set(mapping.values())) != len(mapping):
            problems.append("two peers map to the same node")
        if problems:
            raise RestoreError(
                f"peer mapping: {'; '.join(problems)}; sources: {sources}, targets: {sorted(by_url)}"
            )
    else:
        mapping = {pid: t.url.rstrip("/") for pid, t in zip(sources, targets, strict=False)}
    steps = []
    for pid in sources:  # node by node, in the set's peer order
        for name in chosen:
            record = manifest["collections"][name]["nodes"].get(str(pid))
            if record:
                steps.append(
                    Step(by_url[mapping[pid]], pid, name, record["key"], record["size"], record["sha256"])
                )
    return steps


# -- the steps -------------------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * s3.MIB):
            digest.update(chunk)
    return digest.hexdigest()


def download_step(s3_client, settings: s3.S3Settings, step: Step, backup_id: str) -> Step:
    """Download one part into the target's snapshots_path with parallel ranged GETs, then check
    size and sha256 against the manifest; a mismatch deletes the file."""
    directory = step.target.snapshots_dir / RESTORE_DIR / backup_id
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{step.collection}-{step.peer_id}.snapshot"
    partial = final.with_suffix(".partial")
    where = f"s3://{settings.bucket}/{step.key}"
    try:
        s3_client.download_file(
            settings.bucket,
            step.key,
            str(partial),
            Config=TransferConfig(
                multipart_threshold=settings.part_size,
                multipart_chunksize=settings.part_size,
                max_concurrency=settings.concurrency,
            ),
        )
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise s3.describe_error(exc, "download", settings.bucket, step.key) from exc
    size, digest = partial.stat().st_size, _sha256_file(partial)
    if size != step.size or digest != step.sha256:
        partial.unlink()
        raise RestoreError(
            f"checksum mismatch for {where}: the manifest says {step.size} bytes, sha256 {step.sha256}; "
            f"downloaded {size} bytes, sha256 {digest}. The object is damaged: nothing was restored; "
            "restore an older set"
        )
    os.replace(partial, final)
    return dataclasses.replace(step, local_path=final)


def recover_step(client: ClusterClient, step: Step, timeout: float) -> None:
    location = "file://" + step.target.node_path(step.local_path)
    try:
        client.request(
            "PUT",
            f"/collections/{segment(step.collection)}/snapshots/recover",
            params={"wait": "true"},
            json={"location": location, "priority": PRIORITY, "checksum": step.sha256},
            node=step.target.url,
            timeout=timeout,
        )
    except QdrantApiError as exc:
        raise RestoreError(
            f"recovering {step.collection} (peer {step.peer_id}'s part) on {step.target.url} failed: {exc}"
        ) from exc


def wait_healthy(client: ClusterClient, collection: str, nodes: Sequence[str], timeout: float) -> None:
    """Green, and no replica Dead or Partial in any node's view."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.collection_info(collection) or {}
        bad = []
        for node in nodes:
            with contextlib.suppress(QdrantApiError):
                bad += unhealthy_replicas(shard_placement(client.collection_cluster(collection, node=node)))
        if info.get("status") == "green" and not bad:
            return
        if time.monotonic() > deadline:
            raise RestoreError(
                f"{collection} did not become healthy within {timeout:.0f}s: status {info.get('status')}, "
                f"replicas not Active: {bad}; see `qdrant-ops cluster status`"
            )
        time.sleep(1)


def verify_restore(client: ClusterClient, manifest: dict, collections: Sequence[str]) -> list[str]:
    """Differences between the cluster now and the manifest: exact counts, sampled points."""
    problems = []
    for name in collections:
        expected = manifest["collections"][name]
        count = client.count_points(name)
        if count != expected["points_exact"]:
            problems.append(f"{name}: {count} points, the backup has {expected['points_exact']}")
        for sample in expected["sample"]:
            point = get_point(client, name, sample["id"])
            if point is None:
                problems.append(f"{name}: sampled point {sample['id']} is missing")
            elif backup.point_fingerprint(point) != sample:
                problems.append(f"{name}: point {sample['id']} differs in payload or vector")
    return problems


def cleanup(steps: Sequence[Step], backup_id: str) -> None:
    for directory in {step.target.snapshots_dir / RESTORE_DIR / backup_id for step in steps}:
        shutil.rmtree(directory, ignore_errors=True)


# -- the whole restore ---------------------------------------------------------------------------------
def restore(
    client: ClusterClient,
    s3_client,
    settings: backup.BackupSettings,
    targets: Sequence[Target],
    *,
    backup_id: str | None = None,
    collections: Sequence[str] = (),
    peer_map: dict[int, str] | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    timeout: float = 3600.0,
    log: Callable[[str], None] = lambda _line: None,
) -> dict:
    if not targets:
        raise ConfigError("no target nodes: give each node's URL and its snapshots directory")
    started = time.monotonic()
    manifest = choose_set(s3_client, settings, backup_id)
    chosen = sorted(collections) if collections else sorted(manifest["collections"])
    existing = client.collection_names()
    steps = plan_restore(
        manifest, targets, collections=chosen, peer_map=peer_map, existing=existing,
        target_version=client.version(), overwrite=overwrite,
    )  # fmt: skip
    report = {
        "backup_id": manifest["backup_id"],
        "collections": chosen,
        "plan": [
            {"node": s.target.url, "peer_id": s.peer_id, "collection": s.collection, "bytes": s.size}
            for s in steps
        ],
        "dry_run": dry_run,
    }
    if dry_run:
        return report
    downloaded: list[Step] = []
    try:
        for step in steps:  # every part checked before anything changes
            downloaded.append(download_step(s3_client, settings.s3, step, manifest["backup_id"]))
            log(f"{step.collection}: peer {step.peer_id}'s part downloaded to {step.target.url} and verified")
        for name in sorted(set(chosen) & set(existing)):
            client.request("DELETE", f"/collections/{segment(name)}", params={"wait": "true"})
            log(f"{name}: existing collection deleted (overwrite)")
        nodes = [t.url for t in targets]
        for target in dict.fromkeys(s.target for s in downloaded):  # node by node
            for step in (s for s in downloaded if s.target == target):
                recover_step(client, step, timeout)
                log(f"{step.collection}: recovered on {target.url}")
            for name in dict.fromkeys(s.collection for s in downloaded if s.target == target):
                wait_healthy(client, name, nodes, timeout)
        problems = verify_restore(client, manifest, chosen)
    finally:
        cleanup(downloaded or steps, manifest["backup_id"])
    report.update(problems=problems, seconds=round(time.monotonic() - started, 3))
    if problems:
        raise RestoreError(
            f"restore of {manifest['backup_id']} differs from the backup: {'; '.join(problems)}"
        )
    return report
