"""Moving one snapshot: the staging directory, downloading and checking an object against the
manifest's size and sha256, presigned URLs for the nodes, and recovering it on a node
(docs/qdrant-behaviour.md §3 and §7). backup/restore.py decides what moves where."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from qdrant_ops.backup import model, s3
from qdrant_ops.backup.restore_plan import RestoreError, Snapshot
from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import QdrantOpsError
from qdrant_ops.progress import Progress
from qdrant_ops.redact import redact

RESTORE_DIR = "qdrant-ops-restore"  # under the staging directory, one folder per backup id
PRIORITY = "snapshot"  # format 1: each node's part wins over what the cluster holds
# Format 2: every replica of a new collection receives the same shard snapshot; no_sync activates
# each without marking the others Dead, so no transfer starts (docs/qdrant-behaviour.md §7).
SHARD_PRIORITY = "no_sync"
FREE_SPACE_MARGIN = 1.05
# A node starts its GET as soon as it is asked, so each URL is made when its recovery starts (after
# the wait for a --parallel slot) and lives at least this long, or the recovery's timeout when that
# is longer (S3 allows 7 days at most). Its signing values are cut from every message (redact.py).
PRESIGNED_URL_SECONDS = 900
PRESIGNED_URL_MAX_SECONDS = 7 * 24 * 3600


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


def start_downloads(
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
