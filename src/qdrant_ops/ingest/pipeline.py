"""One run's pipeline (ingest/engine.py says how the parts fit): the parent reads raw records in
blocks, decoder processes parse and encode them, the results come back in record order and each
point is routed by id to its sender process; chunks complete when every sender acknowledged its
part, and the checkpoint records them."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import ConfigError
from qdrant_ops.ingest.checkpoint import Checkpoint
from qdrant_ops.ingest.messages import (
    BAD,
    BatchDone,
    BatchFailed,
    BatchSkipped,
    DecodedBlock,
    SenderMessage,
)
from qdrant_ops.ingest.options import IngestOptions
from qdrant_ops.ingest.pool import WorkerPool
from qdrant_ops.ingest.sources import Decoder, NpyRows, Source
from qdrant_ops.ingest.workers import Job, SenderSettings, longest_send

DECODE_BLOCK = 256  # records per decoder job; 2 jobs per decoder are outstanding at most
SAMPLE_IDS = 4096  # ids kept for the final existence check


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


class Run:
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
