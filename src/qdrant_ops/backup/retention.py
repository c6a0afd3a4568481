"""Which sets the retention policy keeps, and deleting the others (the pruning role only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from qdrant_ops.backup import s3
from qdrant_ops.backup.catalog import list_sets
from qdrant_ops.backup.model import BackupSettings, parse_iso_time
from qdrant_ops.errors import ConfigError


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
            bucket = bucket_of(parse_iso_time(item["time"]))
            if len(seen) < count and bucket not in seen:
                seen.append(bucket)
                reasons[item["backup_id"]].append(f"{label} {bucket}")
    plan = []
    for item in sets:
        keep = reasons[item["backup_id"]]
        if item["status"] != "complete":
            # Aged by its id's time or, if earlier, by when S3 stored its first object: a node chooses
            # the id, and a set from 2099 must not stay forever.
            started = min(parse_iso_time(item["time"]), parse_iso_time(item.get("uploaded", item["time"])))
            age = (now - started).total_seconds()
            if age < retention.incomplete_max_age:
                keep.append(f"{item['status']} but recent (may still be running or waiting for its seal)")
        plan.append({**item, "keep": bool(keep), "reasons": keep or ["not selected by any rule"]})
    return plan


def delete_set(s3_client, settings: BackupSettings, backup_id: str) -> int:
    """Delete every object of a set, the part records first so a half-deleted set never looks
    complete."""
    layout = settings.layout
    bucket = settings.s3.bucket
    prefix = layout.set_prefix(backup_id)
    keys = [item["Key"] for item in s3.list_objects(s3_client, bucket, prefix)]
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
