"""A backup set's manifest, typed. It is parsed and checked once, where the catalog reads it (from a
seal, or built from part records); restore, verify, `backup show` and the sealer then read fields.
Every value comes from S3 and is untrusted: a record that does not have the shape a node writes is
refused here, with what is wrong, and never reaches a path, a URL or a request (docs/backup-trust.md).

The dictionary shape (`to_dict`, what a seal stores and `backup show --json` prints) is unchanged:
format 1 sets keep a snapshot per node under "nodes", formats 2-4 one per shard under "shards"."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from qdrant_ops.backup.model import (
    ATTEMPT_PATTERN,
    NAME_PATTERN,
    VERSION_PATTERN,
    BackupError,
    parse_iso_time,
)
from qdrant_ops.cluster import golden
from qdrant_ops.cluster.collection_spec import NAME_PATTERN as COLLECTION_NAME

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}\Z")
STATUSES = ("complete", "unsealed", "incomplete")
FORMATS = (1, 2, 3, 4)


class ManifestError(BackupError):
    """A manifest or snapshot record that is not what a node or the sealer writes."""


def u64(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ManifestError(f"{what} is {repr(value)[:40]}, not an unsigned 64-bit integer")
    return value


def digits(text, what: str) -> int:
    """A shard or peer id used as a mapping key: ASCII digits only."""
    if not (isinstance(text, str) and text.isascii() and text.isdigit()):
        raise ManifestError(f"{what} {str(text)[:40]!r} is not an unsigned 64-bit integer")
    return u64(int(text), what)


def _text(value, pattern: re.Pattern | None, what: str) -> str:
    if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
        raise ManifestError(f"{what} {str(value)[:60]!r} is not valid")
    return value


def _optional(value, pattern: re.Pattern, what: str) -> str | None:
    return None if value is None else _text(value, pattern, what)


def parse_time(value, what: str) -> str | None:
    """An ISO time a node wrote, or None."""
    if value is None:
        return None
    try:
        if isinstance(value, str) and len(value) < 40:
            parse_iso_time(value)
            return value
    except ValueError:
        pass
    raise ManifestError(f"{what} is not an ISO time")


def parse_problems(raw) -> tuple[str, ...]:
    """The set's problems as the sealer or the catalog wrote them: a list of sentences."""
    if not isinstance(raw, list) or not all(isinstance(problem, str) for problem in raw):
        raise ManifestError("problems is not a list of sentences")
    return tuple(raw)


def parse_peers(raw) -> tuple[dict, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(p, Mapping) and isinstance(p.get("uri"), str) for p in raw
    ):
        raise ManifestError("peers is not a list of {id, uri}")
    for peer in raw:
        u64(peer.get("id"), "a peer's id")
    return tuple(dict(peer) for peer in raw)


def _placement(raw, where: str) -> tuple[dict, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(r, Mapping) and isinstance(r.get("state"), str) for r in raw
    ):
        raise ManifestError(f"{where}: placement is not a list of {{shard_id, peer_id, state}}")
    for replica in raw:
        u64(replica.get("shard_id"), f"{where}: a replica's shard id")
        u64(replica.get("peer_id"), f"{where}: a replica's peer id")
    return tuple(dict(replica) for replica in raw)


def _sample(raw, where: str) -> tuple[dict, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, Mapping) for p in raw):
        raise ManifestError(f"{where}: sample is not a list of points")
    for point in raw:
        if not isinstance(point.get("id"), str):
            u64(point.get("id"), f"{where}: a sampled point's id")
        if not all(isinstance(point.get(f"{part}_sha256"), str) for part in ("payload", "vector")):
            raise ManifestError(f"{where}: a sampled point has no payload and vector sha256")
    return tuple(dict(point) for point in raw)


def _golden(raw, where: str) -> dict | None:
    """Golden queries (cluster/golden.py); None in sets made before them."""
    try:
        return None if raw is None else golden.validate(raw, f"{where}: golden queries")
    except golden.GoldenError as exc:
        raise ManifestError(str(exc)) from None


@dataclass(frozen=True)
class SnapshotRecord:
    """One snapshot object of the set."""

    key: str
    size: int
    sha256: str
    peer_id: int | None = None  # formats 2-4: the peer whose replica made it
    node: str | None = None  # formats 3-4: the node whose prefix holds it
    attempt: str | None = None  # format 4: the attempt's folder

    @classmethod
    def parse(cls, raw, *, with_peer: bool, where: str = "a snapshot record") -> SnapshotRecord:
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{where} is not a mapping")
        if not isinstance(raw.get("sha256"), str) or not SHA256_PATTERN.match(raw["sha256"]):
            raise ManifestError(f"{where} has no valid sha256")
        return cls(
            key=_text(raw.get("key"), None, f"{where}: key"),
            size=u64(raw.get("size"), f"{where}: size"),
            sha256=raw["sha256"],
            peer_id=u64(raw.get("peer_id"), f"{where}: peer id") if with_peer else None,
            node=_optional(raw.get("node"), NAME_PATTERN, f"{where}: node"),
            attempt=_optional(raw.get("attempt"), ATTEMPT_PATTERN, f"{where}: attempt"),
        )

    def to_dict(self) -> dict:
        fields = {"peer_id": self.peer_id, "key": self.key, "size": self.size, "sha256": self.sha256}
        fields |= {"node": self.node, "attempt": self.attempt}
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True)
class CollectionView:
    """One collection as the backup saw it, and its snapshot records by shard id (formats 2-4) or
    by peer id (format 1). config, placement and sample are Qdrant's own shapes."""

    config: dict
    payload_schema: dict
    placement: tuple[dict, ...]
    points_exact: int
    sample: tuple[dict, ...]
    records: dict[int, SnapshotRecord]
    golden: dict | None = None  # cluster/golden.py; None in sets made before golden queries

    @property
    def params(self) -> dict:
        return self.config.get("params") or {}

    @classmethod
    def parse(cls, raw, *, per_node: bool, where: str) -> CollectionView:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("config"), Mapping):
            raise ManifestError(f"{where} has no config")
        if not isinstance(raw["config"].get("params"), Mapping):
            raise ManifestError(f"{where} has no config params")
        field = "nodes" if per_node else "shards"
        records = raw.get(field)
        if not isinstance(records, Mapping):
            raise ManifestError(f"{where} has no snapshot records under {field!r}")
        what = "peer id" if per_node else "shard id"
        parsed = {
            digits(number, f"{where}: {what}"): SnapshotRecord.parse(
                record, with_peer=not per_node, where=f"{where} {what} {str(number)[:20]}"
            )
            for number, record in records.items()
        }
        schema = raw.get("payload_schema") or {}
        if not isinstance(schema, Mapping):
            raise ManifestError(f"{where}: payload_schema is not a mapping")
        return cls(
            config=dict(raw["config"]),
            payload_schema=dict(schema),
            placement=_placement(raw.get("placement"), where),
            points_exact=u64(raw.get("points_exact"), f"{where}: points_exact"),
            sample=_sample(raw.get("sample"), where),
            records=parsed,
            golden=_golden(raw.get("golden"), where),
        )

    def to_dict(self, *, per_node: bool) -> dict:
        return {
            "config": self.config,
            "payload_schema": self.payload_schema,
            "placement": list(self.placement),
            "points_exact": self.points_exact,
            "sample": list(self.sample),
            "nodes" if per_node else "shards": {str(n): r.to_dict() for n, r in sorted(self.records.items())},
        } | ({"golden": self.golden} if self.golden is not None else {})


@dataclass(frozen=True)
class Manifest:
    """A set: complete only when sealed and every object checks out; unsealed when its parts are
    complete but no sealer vouched for them; else incomplete, with its problems."""

    format: int
    backup_id: str
    cluster: str
    status: str
    problems: tuple[str, ...]
    qdrant_version: str | None
    peers: tuple[dict, ...]
    collections: dict[str, CollectionView]
    started: str | None = None
    finished: str | None = None
    sealed: dict | None = None  # {at, members} of a sealed set

    @property
    def per_node(self) -> bool:
        """Format 1: one collection snapshot per node, restored node by node."""
        return self.format < 2

    @property
    def bytes(self) -> int:
        return sum(record.size for view in self.collections.values() for record in view.records.values())

    def records(self, name: str) -> list[SnapshotRecord]:
        return list(self.collections[name].records.values())

    def with_problems(self, problems: list[str], status: str) -> Manifest:
        return replace(self, problems=tuple(problems), status=status)

    @classmethod
    def damaged(cls, backup_id: str, cluster: str, problem: str) -> Manifest:
        return cls(0, backup_id, cluster, "incomplete", (problem,), None, (), {})

    @classmethod
    def parse(cls, raw) -> Manifest:
        if not isinstance(raw, Mapping):
            raise ManifestError("the manifest is not a mapping")
        set_format = raw.get("format", 1)
        if set_format not in FORMATS or isinstance(set_format, bool):
            raise ManifestError(f"format {str(set_format)[:20]!r} is not one of {FORMATS}")
        views = raw.get("collections")
        if not isinstance(views, Mapping):
            raise ManifestError("collections is not a mapping")
        for name in views:
            if not isinstance(name, str) or not COLLECTION_NAME.match(name) or name in (".", ".."):
                raise ManifestError(f"collection name {str(name)[:60]!r} is not valid")
        return cls(
            format=set_format,
            backup_id=_text(raw.get("backup_id"), NAME_PATTERN, "backup id"),
            cluster=_text(raw.get("cluster"), NAME_PATTERN, "cluster"),
            status=_text(raw.get("status"), re.compile("^(" + "|".join(STATUSES) + r")\Z"), "status"),
            problems=parse_problems(raw.get("problems", [])),
            qdrant_version=_optional(raw.get("qdrant_version"), VERSION_PATTERN, "Qdrant version"),
            peers=parse_peers(raw.get("peers", [])),
            collections={
                name: CollectionView.parse(view, per_node=set_format < 2, where=f"collection {name}")
                for name, view in views.items()
            },
            started=parse_time(raw.get("started"), "started"),
            finished=parse_time(raw.get("finished"), "finished"),
            sealed=raw.get("sealed") if isinstance(raw.get("sealed"), Mapping) else None,
        )

    def to_dict(self) -> dict:
        result = {
            "format": self.format,
            "backup_id": self.backup_id,
            "cluster": self.cluster,
            "status": self.status,
            "problems": list(self.problems),
            "qdrant_version": self.qdrant_version,
            "peers": list(self.peers),
            "collections": {n: v.to_dict(per_node=self.per_node) for n, v in self.collections.items()},
            "started": self.started,
            "finished": self.finished,
            "bytes": self.bytes,
        }
        return result | ({"sealed": self.sealed} if self.sealed is not None else {})
