"""What a backup set is called and where it lies: ids (the UTC schedule slot), names, durations, the
S3 key layout of every format, and the settings a backup or restore runs with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from qdrant_ops.backup import s3
from qdrant_ops.errors import ConfigError, QdrantOpsError

ID_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: no trailing newline
DURATION_PATTERN = re.compile(r"^(\d+)([smhdw])$")
# A Qdrant version as a set records it. Sets are written by nodes, so the version is untrusted: it
# names a directory (backup verify's binary) and is compared, never used unchecked.
VERSION_PATTERN = re.compile(r"^\d{1,6}\.\d{1,6}\.\d{1,6}\Z")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# 1: a collection snapshot per node; 2: a snapshot per shard; 3: per-node keys; 4: per-node keys
# under one folder per attempt, every object written once (S3 If-None-Match)
MANIFEST_FORMAT = 4
# One attempt of a node at its part: the UTC time it started and 8 random hex digits.
ATTEMPT_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}\Z")
# How far in the future a set id may lie before the sealer refuses it (a node's clock running
# ahead is normal within this; a set from 2099 is a forgery).
CLOCK_SKEW_SECONDS = 300


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


def iso_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso_time(text: str) -> datetime:
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

    def node_shard_key(
        self, backup_id: str, node: str, collection: str, shard_id: int, attempt: str | None = None
    ) -> str:
        """Format 3 without `attempt`, format 4 with it."""
        folder = f"{attempt}/" if attempt else ""
        return f"{self.node_prefix(backup_id, node)}{folder}{collection}/{shard_id}.snapshot"

    def node_failure_key(self, backup_id: str, node: str, attempt: str) -> str:
        return f"{self.node_prefix(backup_id, node)}failed/{attempt}.json"

    def seal_key(self, backup_id: str) -> str:
        """Written once by the sealer (the pruning role); nodes cannot write it (terraform/iam.tf)."""
        return f"{self.set_prefix(backup_id)}seal.json"


@dataclass(frozen=True)
class BackupSettings:
    cluster: str
    s3: s3.S3Settings
    collections: tuple[str, ...] = ()  # empty: every collection
    sample_size: int = 32
    golden_queries: int = 20  # per collection (cluster/golden.py); 0: none
    slot_seconds: int = 86400
    snapshot_timeout: float = 3600.0
    node: str | None = None  # the name IAM lets this node write under; default peer-<peer id>

    def __post_init__(self) -> None:
        check_name(self.cluster, "cluster name")
        if self.node is not None:
            check_name(self.node, "node name")
        if not 0 <= self.sample_size <= 1000:
            raise ConfigError(f"sample_size must be between 0 and 1000, got {self.sample_size}")
        if not 0 <= self.golden_queries <= 100:
            raise ConfigError(f"golden_queries must be between 0 and 100, got {self.golden_queries}")

    @property
    def layout(self) -> Layout:
        return Layout(self.s3.prefix, self.cluster)

    def node_name(self, peer_id: int) -> str:
        return self.node or f"peer-{peer_id}"
