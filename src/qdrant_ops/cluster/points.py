"""Point-level helpers for operators: fetch one point, upsert a small JSONL file over REST.

Millions of records go through the parallel gRPC ingest engine instead; this path is for fixes
and samples, where a clear error per line matters more than throughput.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.errors import ConfigError

DEFAULT_BATCH = 256
MAX_BATCH = 10_000  # REST bodies are capped at 32 MiB by default (docs/qdrant-behaviour.md §5)
MAX_POINT_ID = 2**64 - 1  # ids are unsigned 64-bit integers or UUIDs


def parse_point_id(raw: str | int) -> int | str:
    """Qdrant ids are unsigned integers or UUIDs; anything else is refused here, not by the server."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 0 <= raw <= MAX_POINT_ID:
            raise ConfigError(
                f"point id {raw} is not an unsigned 64-bit integer (0 to {MAX_POINT_ID}) or a UUID"
            )
        return raw
    text = str(raw).strip()
    if text.isascii() and text.isdigit():
        return parse_point_id(int(text))
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ConfigError(f"point id {raw!r} is neither an unsigned integer nor a UUID") from None


def get_point(client: ClusterClient, collection: str, point_id: str | int) -> dict | None:
    pid = parse_point_id(point_id)
    try:
        return client.get_point(collection, pid)
    except QdrantApiError as exc:
        if (
            exc.status == 404
            and "not found" in exc.message.lower()
            and "collection" not in exc.message.lower()
        ):
            return None
        raise


def get_points(client: ClusterClient, collection: str, point_ids: list) -> dict:
    """The points that exist among `point_ids` (payload and vectors), by id, in one request per
    thousand ids (POST /collections/{c}/points); missing ids are simply absent."""
    found = {}
    for start in range(0, len(point_ids), 1000):
        part = point_ids[start : start + 1000]
        for record in client.retrieve_points(collection, part, with_payload=True, with_vector=True):
            found[record["id"]] = record
    return found


def read_jsonl_points(path: Path) -> Iterator[dict]:
    """Yield REST PointStructs; errors name the file and line."""
    with path.open(encoding="utf-8", errors="surrogateescape") as lines:
        for number, line in enumerate(lines, start=1):
            if any("\udc80" <= char <= "\udcff" for char in line):  # undecodable bytes, escaped
                raise ConfigError(f"{path}:{number}: not UTF-8 text: write the file as UTF-8")
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "id" not in record:
                raise ConfigError(f'{where}: each line must be an object with an "id"')
            try:
                pid = parse_point_id(record["id"])
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            payload = record.get("payload", {})
            if not isinstance(payload, dict):
                raise ConfigError(f'{where}: "payload" must be an object')
            # Payload-only collections take an empty named-vector map (docs/qdrant-behaviour.md §6).
            yield {"id": pid, "vector": record.get("vector", {}), "payload": payload}


def upsert_file(client: ClusterClient, collection: str, path: Path, batch_size: int = DEFAULT_BATCH) -> int:
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"batch size must be between 1 and {MAX_BATCH}, got {batch_size}")
    if not path.is_file():
        raise ConfigError(f"{path} is not a file: give the JSONL file of points to upsert")
    if client.collection_info(collection) is None:
        raise ConfigError(f"collection {collection!r} does not exist: create it first (collections apply)")
    # Parse everything first: a bad line stops the run before any point is written.
    points = list(read_jsonl_points(path))
    for start in range(0, len(points), batch_size):
        client.upsert_points(collection, points[start : start + batch_size])
    return len(points)
