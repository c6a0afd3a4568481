"""The ingester's checkpoint: the record ranges of one source already written to one collection,
saved atomically at most every CHECKPOINT_EVERY seconds, so `resume` skips exactly those."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from qdrant_ops.errors import ConfigError

CHECKPOINT_EVERY = 1.0  # seconds between checkpoint writes


class Checkpoint:
    """Completed record ranges (inclusive, 1-based) of one source into one collection."""

    def __init__(self, path: str | None, source: str, collection: str) -> None:
        self.path = Path(path) if path else None
        self.source, self.collection = source, collection
        self.ranges: list[list[int]] = []
        self.restore_indexing_threshold: int | None = None
        self._written = 0.0

    @classmethod
    def open(cls, path: str | None, source: str, collection: str, *, resume: bool) -> Checkpoint:
        """The run's checkpoint: the earlier run's with `resume`, else a new one (or none)."""
        if resume:
            return cls.load(path, source, collection)
        return cls(path, source, collection)

    @classmethod
    def load(cls, path: str, source: str, collection: str) -> Checkpoint:
        checkpoint = cls(path, source, collection)
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"no checkpoint at {path} to resume from: run without --resume") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"checkpoint {path} is unreadable ({exc}): remove it and start over") from None
        if (data.get("source"), data.get("collection")) != (source, collection):
            raise ConfigError(
                f"checkpoint {path} belongs to {data.get('source')} -> {data.get('collection')}, not "
                f"{source} -> {collection}: pass the right --checkpoint"
            )
        checkpoint.ranges = [list(r) for r in data.get("completed", [])]
        checkpoint.restore_indexing_threshold = data.get("restore_indexing_threshold")
        return checkpoint

    def add(self, first: int, last: int) -> None:
        merged: list[list[int]] = []
        for start, end in sorted([*self.ranges, [first, last]]):
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.ranges = merged

    def done(self, number: int) -> bool:
        return any(start <= number <= end for start, end in self.ranges)

    def completed_records(self) -> int:
        return sum(end - start + 1 for start, end in self.ranges)

    def save(self, force: bool = False) -> None:
        if self.path is None or (not force and time.monotonic() - self._written < CHECKPOINT_EVERY):
            return
        data = {
            "source": self.source,
            "collection": self.collection,
            "completed": self.ranges,
            "restore_indexing_threshold": self.restore_indexing_threshold,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.path)  # atomic: a crash leaves the old or the new file
        self._written = time.monotonic()
