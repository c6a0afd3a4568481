"""What one bulk ingest does: IngestOptions, checked where they are built, and load_plan, which
builds them and the field mapping from the names both front doors use (the CLI and
qdrant_bulk_ingest)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.ingest.sources import DEFAULT_ID_NAMESPACE, Mapping
from qdrant_ops.ingest.wire import ORDERINGS

# bench/ingest.py sweep (sink server, 384-d): 256 and 512 within noise of each other and ~1.5x
# faster than qdrant-client's default 64; 512 keeps a batch near 0.8 MiB on the wire.
DEFAULT_BATCH_SIZE = 512
DEFAULT_IN_FLIGHT = 2  # queued batches per sender, beyond the one it is sending
# A gRPC batch of 10,000 384-d points is ~16 MB; more gains nothing and holds memory per sender.
MAX_BATCH_SIZE = 10_000
DEFAULT_INDEXING_THRESHOLD = 10000  # Qdrant 1.18's default (docs/qdrant-behaviour.md §2)


class IngestError(QdrantOpsError):
    """The load stopped; the message says where and what to do. The report is attached."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class IngestOptions:
    collection: str
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = field(default_factory=lambda: os.cpu_count() or 2)  # gRPC senders
    decoders: int = field(default_factory=lambda: os.cpu_count() or 2)  # parse + check + encode
    in_flight: int = DEFAULT_IN_FLIGHT
    retries: int = 8
    backoff: float = 0.5
    max_backoff: float = 30.0
    timeout: float = 60.0
    grpc_port: int = 6334
    ordering: str = "weak"
    dead_letter: str | None = None
    checkpoint: str | None = None
    resume: bool = False
    defer_indexing: bool = False
    indexing_threshold: int | None = None  # value to set after a deferred load (default: the previous one)
    wait_green: bool = False
    verify: bool = True  # the final check of what the collection holds
    verify_timeout: float = 120.0

    def __post_init__(self) -> None:
        for name, most in (
            ("batch_size", MAX_BATCH_SIZE),
            ("workers", 256),
            ("decoders", 256),
            ("in_flight", 1024),
        ):
            if not 1 <= getattr(self, name) <= most:
                raise ConfigError(
                    f"{name.replace('_', ' ')} must be between 1 and {most}, got {getattr(self, name)}"
                )
        if self.retries < 0:
            raise ConfigError(f"retries must be 0 or more, got {self.retries}")
        if self.ordering not in ORDERINGS:
            raise ConfigError(f"ordering {self.ordering!r} is not one of {', '.join(ORDERINGS)}")
        if self.resume and not self.checkpoint:
            raise ConfigError("resume needs the checkpoint file of the earlier run: pass --checkpoint PATH")
        if self.checkpoint and not Path(self.checkpoint).resolve().parent.is_dir():
            raise ConfigError(
                f"the directory of checkpoint {self.checkpoint} does not exist: create it or choose "
                "another path"
            )


def load_plan(params: dict[str, Any]) -> tuple[IngestOptions, Mapping]:
    """A load as both front doors (the CLI and qdrant_bulk_ingest) describe it, with the same
    names: IngestOptions' fields, and the mapping's id_field, id_from, id_namespace (a UUID
    string), vectors and vector_files ({vector name: field or .npy path}) and payload_fields.
    A value of None means the default."""
    given = {name: value for name, value in params.items() if value is not None}
    options = IngestOptions(**{f.name: given[f.name] for f in fields(IngestOptions) if f.name in given})
    try:
        namespace = uuid.UUID(given["id_namespace"]) if "id_namespace" in given else DEFAULT_ID_NAMESPACE
    except ValueError:
        raise ConfigError(f"id namespace {given['id_namespace']!r} is not a UUID") from None
    mapping = Mapping(
        id_field=given.get("id_field", "id"),
        id_from=given.get("id_from"),
        id_namespace=namespace,
        vectors=dict(given.get("vectors") or {}),
        vector_files=dict(given.get("vector_files") or {}),
        payload=tuple(given["payload_fields"]) if "payload_fields" in given else None,
    )
    return options, mapping
