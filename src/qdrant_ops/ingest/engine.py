"""Parallel bulk ingest: a stream of records into a Qdrant collection over gRPC.

The parent process reads raw records in blocks and hands them to decoder processes, which parse,
check and encode them (in parallel: parsing decides the speed, docs/qdrant-behaviour.md §5). The parent
takes the results back in record order, so a bad record stops the run before anything after it is
sent; it routes each point by id to one of N sender processes (the same id always goes through the
same sender, so its writes keep their order), and hands each sender whole encoded `UpsertPoints`
batches through a bounded queue (bounded memory, bounded batches in flight). Each sender has its
own gRPC channel, sends one batch at a time with `wait=false` and retries transient failures with
capped exponential backoff and jitter. Points are grouped in chunks of `batch_size x workers`; a
chunk is complete when every sender acknowledged its part, and the checkpoint file holds the
complete record ranges, so `resume` skips exactly those. At the end the collection is checked for
what was sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.ingest.checkpoint import Checkpoint
from qdrant_ops.ingest.messages import (
    BAD,
    BatchDone,
    BatchFailed,
    BatchSkipped,
    DecodedBlock,
    SenderMessage,
)
from qdrant_ops.ingest.pool import WorkerPool
from qdrant_ops.ingest.sources import DEFAULT_ID_NAMESPACE, Decoder, Mapping, NpyRows, Source, open_source
from qdrant_ops.ingest.wire import ORDERINGS
from qdrant_ops.ingest.workers import Job, SenderSettings, longest_send
from qdrant_ops.polling import reached

# bench/ingest.py sweep (sink server, 384-d): 256 and 512 within noise of each other and ~1.5x
# faster than qdrant-client's default 64; 512 keeps a batch near 0.8 MiB on the wire.
DEFAULT_BATCH_SIZE = 512
DEFAULT_IN_FLIGHT = 2  # queued batches per sender, beyond the one it is sending
DECODE_BLOCK = 256  # records per decoder job; 2 jobs per decoder are outstanding at most
SAMPLE_IDS = 4096  # ids kept for the final existence check
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


# -- the run ---------------------------------------------------------------------------------------------
def collection_vectors(info: dict) -> dict[str, int]:
    """Dense vectors of a collection: {"": size} for the unnamed one, {name: size} when named."""
    vectors = info["config"]["params"].get("vectors") or {}
    if "size" in vectors:
        return {"": int(vectors["size"])}
    return {name: int(params["size"]) for name, params in vectors.items()}


def resolve_vectors(mapping: Mapping, available: dict[str, int], collection: str) -> dict[str, int]:
    """Which collection vectors the load fills, checked against the collection."""
    named = {**mapping.vectors, **mapping.vector_files}
    if not named:
        return available
    wanted = {}
    for name in named:
        if name not in available:
            have = ", ".join(repr(n) if n else "'' (the unnamed vector)" for n in available) or "none"
            raise ConfigError(
                f"collection {collection!r} has no vector {name or '(unnamed)'!r}; its dense vectors: {have}"
            )
        wanted[name] = available[name]
    return wanted


def default_mapping(mapping: Mapping, dims: dict[str, int]) -> Mapping:
    """Fill in the vector fields: `vector` for the unnamed vector, `vector.<name>` for named ones
    (the REST PointStruct shape)."""
    missing = {n: ("vector" if n == "" else f"vector.{n}") for n in dims if n not in mapping.vector_files}
    vectors = {**missing, **mapping.vectors}
    return Mapping(
        mapping.id_field,
        mapping.id_from,
        mapping.id_namespace,
        vectors,
        dict(mapping.vector_files),
        mapping.payload,
    )


def _id_key(point_id: int | str) -> int:
    """An integer id itself; a UUID's 64-bit hash (two UUIDs colliding is vanishingly unlikely)."""
    return point_id if isinstance(point_id, int) else hash(point_id) & 0xFFFFFFFFFFFFFFFF


def route(point_id: int | str, workers: int) -> int:
    if isinstance(point_id, int):
        return point_id % workers
    return zlib.crc32(point_id.encode()) % workers


def _sender_settings(client: ClusterClient, options: IngestOptions) -> SenderSettings:
    parts = [urlsplit(url) for url in client.urls]
    tls = parts[0].scheme == "https"
    if tls and client.verify is False:
        raise ConfigError(
            "gRPC cannot skip TLS verification: give the CA with --ca-file instead of --insecure"
        )
    return SenderSettings(
        targets=tuple(f"{p.hostname}:{options.grpc_port}" for p in parts),
        tls=tls,
        ca_file=client.verify if isinstance(client.verify, str) else None,
        api_key=client.api_key,
        collection=options.collection,
        ordering=options.ordering,
        timeout=options.timeout,
        retries=options.retries,
        backoff=options.backoff,
        max_backoff=options.max_backoff,
    )


class _Run:
    """One load: reads the source in blocks, has the worker pool decode and send them, and keeps
    the account: stats, the chunks in flight, the checkpoint, dead letters, the ids written."""

    def __init__(
        self,
        *,
        client: ClusterClient,
        source: Source,
        decoder: Decoder,
        npy: dict[str, NpyRows],
        options: IngestOptions,
        checkpoint: Checkpoint,
        progress: Callable[[dict], None] | None,
        dead_letter,
    ) -> None:
        self.source, self.npy, self.options = source, npy, options
        self.checkpoint, self.progress = checkpoint, progress
        self.dead_letter = dead_letter  # an open JSONL file, or None: the first bad record stops the load
        self.sender_settings = _sender_settings(client, options)
        self.pool = WorkerPool(
            settings=self.sender_settings,
            senders=options.workers,
            in_flight=options.in_flight,
            decoder=decoder,
            decoders=options.decoders,
            keep_going=dead_letter is not None,
        )
        self.stats = {"read": 0, "skipped": 0, "written": 0, "batches": 0, "retries": 0, "failed": 0}
        self.pending: dict[int, list] = {}  # chunk -> [parts left, first, last]
        self.inflight: dict[tuple[int, int], list] = {}  # (chunk, sender) -> ids
        self.decoded: dict[int, DecodedBlock] = {}  # blocks that arrived ahead of their turn
        # The written ids as 64-bit keys, 8 bytes each: distinct ids of a 10M-point load in 80 MB.
        self.written_hashes: list[np.ndarray] = []
        self.sample: list = []
        self.error: str | None = None
        self.stop_signal: str | None = None
        self._last_progress = 0.0
        self.started = time.monotonic()

    # -- dead letters and messages from senders -------------------------------------------------------
    def distinct_written(self) -> int:
        """Distinct ids written."""
        return len(np.unique(np.concatenate(self.written_hashes))) if self.written_hashes else 0

    def _reject(self, number: int, problem: str, raw: Any = None, point_id: Any = None) -> None:
        entry = {"source": self.source.location, "record": number, "error": problem}
        if point_id is not None:
            entry["id"] = point_id
        if raw is not None:
            entry["raw"] = raw.decode("utf-8", "replace").rstrip("\n") if isinstance(raw, bytes) else raw
        self.dead_letter.write(json.dumps(entry, default=str) + "\n")
        self.dead_letter.flush()
        self.stats["failed"] += 1

    def _fail(self, error: str) -> None:
        self.error = self.error or error
        self.pool.abort.set()

    def _handle(self, message: SenderMessage) -> None:
        if isinstance(message, BatchFailed):
            self._fail(message.error)
            return
        if isinstance(message, BatchSkipped):
            self.inflight.pop((message.chunk, message.sender), None)
        elif isinstance(message, BatchDone):
            self._done(message)
        self._report_progress()

    def _done(self, message: BatchDone) -> None:
        ids = self.inflight.pop((message.chunk, message.sender), [])
        for record in message.rejected:
            problem = f"Qdrant refused it: {record.problem}"
            if self.dead_letter is None:
                self._fail(f"{self.source.location}: record {record.number}: {problem}")
            else:
                self._reject(record.number, problem, point_id=record.point_id)
        rejected_ids = {record.point_id for record in message.rejected}
        self.stats["written"] += message.count - len(message.rejected)
        self.stats["batches"] += 1
        self.stats["retries"] += message.retries
        written = [point_id for point_id in ids if point_id not in rejected_ids]
        self.written_hashes.append(np.fromiter(map(_id_key, written), dtype=np.uint64, count=len(written)))
        if ids and len(self.sample) < SAMPLE_IDS:
            self.sample.append(ids[-1])
        if not message.rejected or self.dead_letter is not None:
            left = self.pending[message.chunk]
            left[0] -= 1
            if left[0] == 0:
                del self.pending[message.chunk]
                self.checkpoint.add(left[1], left[2])
                self.checkpoint.save()

    def _drain(self, wait: float = 0.0) -> None:
        self._handle_all(self.pool.messages(wait))

    def _handle_all(self, messages: list[SenderMessage]) -> None:
        for message in messages:
            self._handle(message)

    def _report_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self._last_progress < 0.5):
            return
        self._last_progress = now
        elapsed = now - self.started
        fraction = self.source.progress(self.stats["read"] + self.stats["skipped"])
        self.progress({**self.stats, "seconds": elapsed, "fraction": fraction})

    # -- reading and dispatch -------------------------------------------------------------------------
    def _dispatch(self, chunk: int, first: int, last: int, parts: list[Job]) -> None:
        jobs = [(index, job) for index, job in enumerate(parts) if job.points]
        if not jobs:
            self.checkpoint.add(first, last)
            return
        self.pending[chunk] = [len(jobs), first, last]
        for index, job in jobs:
            self.inflight[(chunk, index)] = job.ids
            self.pool.send(index, job, while_full=self._drain)

    def _blocks(self):
        """(block number, rows) of records not yet complete, DECODE_BLOCK at a time, in order."""
        rows, block = [], 0
        for number, raw in self.source.rows():
            if self.stop_signal or self.error:
                return
            if self.checkpoint.done(number):
                self.stats["skipped"] += 1
                for side in self.npy.values():
                    side.take()
                continue
            rows.append((number, raw, {name: side.take() for name, side in self.npy.items()} or None))
            if len(rows) == DECODE_BLOCK:
                yield block, rows
                rows, block = [], block + 1
        if rows:
            yield block, rows

    def _decoded(self, block: int) -> list[tuple]:
        """Wait for one block's rows, keeping the senders' messages flowing meanwhile."""
        while block not in self.decoded:
            arrived = self.pool.decoded(timeout=0.1)
            if arrived is not None:
                self.decoded[arrived.block] = arrived
                if arrived.block == -1:  # a decoder died
                    break
            self._drain()
        result = self.decoded.pop(block if block in self.decoded else -1)
        if result.error:
            self.error = self.error or result.error
            return []
        return result.rows

    def _read(self) -> None:
        workers, per_chunk = self.options.workers, self.options.batch_size * self.options.workers
        outstanding = 2 * self.pool.decoders
        blocks = self._blocks()
        submitted = processed = 0
        exhausted = False
        chunk, size, first, cursor = 0, 0, 1, 0
        parts = [Job(chunk, [], [], []) for _ in range(workers)]
        while not (self.stop_signal or self.error):
            while not exhausted and submitted - processed < outstanding:
                item = next(blocks, None)
                if item is None:
                    exhausted = True
                else:
                    self.pool.decode(*item)
                    submitted += 1
            if processed == submitted:
                break
            for outcome in self._decoded(processed):
                kind, number = outcome[0], outcome[1]
                self.stats["read"] += 1
                if kind == BAD:
                    _, _, problem, raw = outcome
                    if self.dead_letter is None:
                        self.error = f"{self.source.location}: record {number}: {problem}"
                        if number - 1 >= first:
                            self._dispatch(chunk, first, number - 1, parts)
                        return
                    self._reject(number, problem, raw)
                else:
                    _, _, point_id, encoded = outcome
                    job = parts[route(point_id, workers)]
                    job.numbers.append(number)
                    job.ids.append(point_id)
                    job.points.append(encoded)
                    size += 1
                cursor = number
                if size >= per_chunk:
                    self._dispatch(chunk, first, cursor, parts)
                    chunk, size, first = chunk + 1, 0, cursor + 1
                    parts = [Job(chunk, [], [], []) for _ in range(workers)]
            processed += 1
        if not self.stop_signal and not self.error and cursor >= first:
            self._dispatch(chunk, first, cursor, parts)

    def run(self) -> None:
        self.pool.start()
        try:
            self._read()
        finally:
            self.pool.close(longest_send(self.sender_settings) + 5.0, on_messages=self._handle_all)
            self.checkpoint.save(force=True)
            self._report_progress(force=True)


def verify_written(
    client: ClusterClient, collection: str, ids: list, *, expected: int | None, minimum: int, timeout: float
) -> dict:
    """The final check: sampled ids exist, and the exact count is what was sent (writes were
    acknowledged with wait=false, so the count may need a moment to catch up)."""
    missing: list = []

    def sample_present() -> bool:
        missing.clear()
        for start in range(0, len(ids), 1000):
            part = ids[start : start + 1000]
            found = client.retrieve_points(collection, part, with_payload=False, with_vector=False)
            present = {point["id"] for point in found}
            missing.extend(i for i in part if i not in present)
        return not missing

    counted = {"count": None}

    def count_ok() -> bool:
        counted["count"] = client.count_points(collection)
        return counted["count"] == expected if expected is not None else counted["count"] >= minimum

    ok = reached(sample_present, timeout=timeout, interval=0.5) and reached(
        count_ok, timeout=timeout, interval=0.5
    )
    return {"ok": ok, "count": counted["count"], "expected": expected, "missing_sample": missing[:10]}


def _set_indexing_threshold(client: ClusterClient, collection: str, value: int) -> None:
    body = {"optimizers_config": {"indexing_threshold": value}}
    client.update_collection(collection, body)


def prepare(
    client: ClusterClient,
    collection: str,
    location: str,
    mapping: Mapping,
    *,
    fmt: str | None = None,
    s3_client_factory=None,
) -> tuple[dict, dict[str, int], Mapping, Source]:
    """Every check that needs no write: the collection exists, the mapping names its vectors and the
    source's fields. Returns the collection info, the vectors to fill, the completed mapping and the
    open source (the caller closes it). The source is opened first: a missing or unreadable file is
    named before any server is asked."""
    source = open_source(location, fmt, s3_client_factory)
    try:
        info = client.collection_info(collection)
        if info is None:
            raise ConfigError(
                f"collection {collection!r} does not exist: create it first "
                "(qdrant-ops collections apply, or the qdrant_collection module)"
            )
        dims = resolve_vectors(mapping, collection_vectors(info), collection)
        mapping = default_mapping(mapping, dims)
        mapping.check_columns(source)
    except BaseException:
        source.close()
        raise
    return info, dims, mapping, source


def ingest(
    client: ClusterClient,
    location: str,
    options: IngestOptions,
    mapping: Mapping | None = None,
    *,
    fmt: str | None = None,
    s3_client_factory=None,
    progress: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> dict:
    """Load `location` into `options.collection`; returns the report, raises IngestError."""
    info, dims, mapping, source = prepare(
        client,
        options.collection,
        location,
        mapping or Mapping(),
        fmt=fmt,
        s3_client_factory=s3_client_factory,
    )
    npy: dict[str, NpyRows] = {}
    try:
        checkpoint = Checkpoint.open(options.checkpoint, location, options.collection, resume=options.resume)
        for name, path in mapping.vector_files.items():
            npy[name] = NpyRows(path, s3_client_factory)
        start_count = client.count_points(options.collection)
        threshold_before = _defer_indexing(client, options, info, checkpoint, log)
        previous_handlers = None
        try:
            with _dead_letter_file(options.dead_letter) as dead_letter:
                run = _Run(
                    client=client,
                    source=source,
                    decoder=Decoder(mapping, dims, location),
                    npy=npy,
                    options=options,
                    checkpoint=checkpoint,
                    progress=progress,
                    dead_letter=dead_letter,
                )
                previous_handlers = _install_stop_handlers(run)
                run.run()
        finally:
            if previous_handlers is not None:
                _restore_handlers(previous_handlers)
            if threshold_before is not None:
                _undefer_indexing(client, options, threshold_before, checkpoint, log)
        report = _report(location, options, run, checkpoint)
        _raise_unless_complete(run, options, npy, report)
        _verify_load(client, options, run, start_count, report)
        if options.wait_green:
            _wait_green(client, options.collection, report)
        return report
    finally:
        source.close()
        for rows in npy.values():
            rows.close()


def _wait_green(client: ClusterClient, collection: str, report: dict) -> None:
    if not reached(
        lambda: client.collection_info(collection)["status"] == "green", timeout=3600, interval=2.0
    ):
        raise IngestError("the collection did not turn green within an hour after the load", report)


def _undefer_indexing(
    client: ClusterClient, options: IngestOptions, threshold_before: int, checkpoint: Checkpoint, log
) -> None:
    """The threshold back to what it was (or the one asked for), whatever ended the load."""
    restored = options.indexing_threshold or threshold_before
    _set_indexing_threshold(client, options.collection, restored)
    checkpoint.restore_indexing_threshold = None
    checkpoint.save(force=True)
    log(f"indexing_threshold restored to {restored}")


def _defer_indexing(
    client: ClusterClient,
    options: IngestOptions,
    info: dict,
    checkpoint: Checkpoint,
    log: Callable[[str], None],
) -> int | None:
    """With defer_indexing, set indexing_threshold 0 for the load; returns the value to restore
    (recorded in the checkpoint first, so a crashed run's successor restores the right one)."""
    if not options.defer_indexing:
        return None
    current = info["config"]["optimizer_config"].get("indexing_threshold")
    # A crashed earlier run left 0 behind: the value to restore is the one it recorded.
    threshold_before = checkpoint.restore_indexing_threshold or current or DEFAULT_INDEXING_THRESHOLD
    checkpoint.restore_indexing_threshold = threshold_before
    checkpoint.save(force=True)
    _set_indexing_threshold(client, options.collection, 0)
    log(f"indexing deferred (indexing_threshold 0, was {current})")
    return threshold_before


def _report(location: str, options: IngestOptions, run: _Run, checkpoint: Checkpoint) -> dict:
    seconds = time.monotonic() - run.started
    return {
        "collection": options.collection,
        "source": location,
        **run.stats,
        "seconds": round(seconds, 3),
        "points_per_second": round(run.stats["written"] / seconds, 1) if seconds > 0 else 0.0,
        "workers": options.workers,
        "decoders": options.decoders,
        "batch_size": options.batch_size,
        "checkpoint": options.checkpoint,
        "completed_ranges": checkpoint.ranges,
        "interrupted": bool(run.stop_signal),
    }


def _raise_unless_complete(run: _Run, options: IngestOptions, npy: dict[str, NpyRows], report: dict) -> None:
    if run.error:
        hint = (
            f"; fix it and re-run with --resume --checkpoint {options.checkpoint}"
            if options.checkpoint
            else ""
        )
        raise IngestError(f"{run.error}{hint}", report)
    if run.stop_signal:
        raise IngestError(
            f"stopped by {run.stop_signal} after the batches in flight; "
            + (
                f"resume with --resume --checkpoint {options.checkpoint}"
                if options.checkpoint
                else "no checkpoint was kept: re-run from the start (upserts are idempotent)"
            ),
            report,
        )
    leftover = [
        f"{rows.location} has {rows.rows - rows.taken} rows more than the source has records"
        for rows in npy.values()
        if rows.taken < rows.rows
    ]
    if leftover:
        raise IngestError("; ".join(leftover) + ": vectors and records do not line up", report)


def _verify_load(
    client: ClusterClient, options: IngestOptions, run: _Run, start_count: int, report: dict
) -> None:
    """The collection holds what was sent: exact count (for a fresh load), sampled ids present."""
    if not options.verify:
        report["verified"] = {"ok": None, "count": None, "expected": None, "missing_sample": []}
        return
    fresh = start_count == 0 and not options.resume
    distinct = run.distinct_written()
    check = verify_written(
        client,
        options.collection,
        run.sample,
        expected=distinct if fresh else None,
        minimum=distinct,
        timeout=options.verify_timeout,
    )
    report["verified"] = check
    if not check["ok"]:
        raise IngestError(
            f"the collection does not hold what was sent: count {check['count']}, expected "
            f"{check['expected'] or f'at least {distinct}'}, sampled ids missing {check['missing_sample']}",
            report,
        )


@contextlib.contextmanager
def _dead_letter_file(path: str | None):
    if not path:
        yield None
        return
    try:
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot write the dead-letter file {path}: {exc.strerror}") from None
    with handle:
        yield handle


def _install_stop_handlers(run: _Run) -> dict | None:
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, _frame) -> None:
        run.stop_signal = signal.Signals(signum).name

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous: dict | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)
