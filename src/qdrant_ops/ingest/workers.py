"""The worker processes of the bulk ingester (qdrant_ops.ingest.engine runs them).

Decoders parse, check and encode blocks of raw records; senders send encoded batches over their
own gRPC channel, retrying transient failures. Both are forked from the parent, ignore Ctrl-C /
SIGTERM (the parent decides when to stop, after the batches in flight) and exit by themselves if
the parent is killed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_ops.ingest import wire
from qdrant_ops.ingest.messages import (
    BAD,
    OK,
    BatchDone,
    BatchFailed,
    BatchSkipped,
    DecodedBlock,
    RejectedRecord,
    SenderExited,
)
from qdrant_ops.ingest.sources import Decoder, RecordError

TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"})


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _jobs(inbox, outbox) -> Iterator[Any]:
    """Jobs from the parent until it sends None, or until it is gone (killed: nobody would read
    our results any more, so exiting must not wait on them either)."""
    parent = os.getppid()
    while True:
        try:
            job = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                outbox.cancel_join_thread()
                return
            continue
        if job is None:
            return
        yield job


# -- retries ---------------------------------------------------------------------------------------------
def is_transient(code_name: str) -> bool:
    """gRPC status names worth repeating: the node is restarting, overloaded or slow. Upserts are
    idempotent by id, so a repeat after a timeout cannot duplicate points."""
    return code_name in TRANSIENT


def retry_delay(attempt: int, backoff: float, max_backoff: float, retry_after: float | None = None) -> float:
    """Full jitter; a server's retry-after hint is honoured up to max_backoff, so that the
    worst case below holds whatever the server says."""
    delay = random.uniform(0, min(max_backoff, backoff * 2**attempt))
    return max(delay, min(retry_after or 0.0, max_backoff))


def longest_send(settings: SenderSettings) -> float:
    """The longest one batch can take before its sender reports: every attempt runs into the
    deadline and every pause is the longest. Qdrant 1.19 holds a write with wait=false while the
    shard's update queue (200 operations by default) is full, so attempts can use their deadline
    where 1.18 answered at once (docs/qdrant-behaviour.md §5)."""
    backoff, most = settings.backoff, settings.max_backoff
    pauses = sum(min(most, backoff * 2**attempt) for attempt in range(settings.retries))
    return (settings.retries + 1) * settings.timeout + pauses


def _retry_after(exc) -> float | None:
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after":
            with contextlib.suppress(ValueError):
                return float(value)
    return None


# -- sender processes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SenderSettings:
    targets: tuple[str, ...]  # host:grpc_port of every node; sender i starts at node i
    tls: bool
    ca_file: str | None
    api_key: str | None = field(repr=False)
    collection: str
    ordering: str
    timeout: float
    retries: int
    backoff: float
    max_backoff: float


@dataclass
class Job:
    chunk: int
    numbers: list[int]
    ids: list
    points: list[bytes]


class BatchRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Sender:
    def __init__(self, settings: SenderSettings, index: int) -> None:
        import grpc  # noqa: PLC0415 - only created inside sender processes, after the fork

        self._grpc = grpc
        self.settings = settings
        self._node = index % len(settings.targets)
        self._metadata = (("api-key", settings.api_key),) if settings.api_key else ()
        self._channel = None
        self._connect()

    def _connect(self) -> None:
        grpc = self._grpc
        if self._channel is not None:
            self._channel.close()
        target = self.settings.targets[self._node]
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 64 * 2**20)]
        if self.settings.tls:
            ca = Path(self.settings.ca_file).read_bytes() if self.settings.ca_file else None
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
            self._channel = grpc.secure_channel(target, credentials, options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        # Bytes in, bytes out: the request is already serialized by ingest_wire.
        self._upsert = self._channel.unary_unary("/qdrant.Points/Upsert")

    def send(self, points: Sequence[bytes]) -> int:
        """Send one batch; returns the retries it took. Raises BatchRejected on a permanent error."""
        body = wire.encode_upsert(self.settings.collection, points, ordering=self.settings.ordering)
        attempt = 0
        while True:
            try:
                self._upsert(body, timeout=self.settings.timeout, metadata=self._metadata)
                return attempt
            except self._grpc.RpcError as exc:
                code = exc.code().name if exc.code() else "UNKNOWN"
                if not is_transient(code) or attempt >= self.settings.retries:
                    raise BatchRejected(code, exc.details() or "") from None
                wait_hint = _retry_after(exc) if code == "RESOURCE_EXHAUSTED" else None
                time.sleep(retry_delay(attempt, self.settings.backoff, self.settings.max_backoff, wait_hint))
                if code == "UNAVAILABLE" and len(self.settings.targets) > 1:
                    self._node = (self._node + 1) % len(self.settings.targets)  # fail over to the next node
                    self._connect()
                attempt += 1

    def send_job(self, job: Job) -> tuple[int, list[RejectedRecord]]:
        """(retries, rejected records). A rejected batch is split in halves until the record Qdrant
        refuses is found, so the error can name it (or it goes to the dead-letter file)."""
        try:
            return self.send(job.points), []
        except BatchRejected as exc:
            if len(job.points) == 1 or exc.code not in ("INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                if len(job.points) == 1:
                    return 0, [RejectedRecord(job.numbers[0], job.ids[0], str(exc))]
                raise
        half = len(job.points) // 2
        retries, rejected = 0, []
        for part in (slice(0, half), slice(half, None)):
            sub = Job(job.chunk, job.numbers[part], job.ids[part], job.points[part])
            more, bad = self.send_job(sub)
            retries += more
            rejected += bad
        return retries, rejected


def sender_main(settings: SenderSettings, index: int, inbox, outbox, abort) -> None:
    _ignore_stop_signals()
    try:
        sender = Sender(settings, index)
    except Exception as exc:
        outbox.put(BatchFailed(index, -1, f"sender {index} could not start: {exc}", None))
        outbox.put(SenderExited(index))
        return
    for job in _jobs(inbox, outbox):
        if abort.is_set():
            outbox.put(BatchSkipped(index, job.chunk))
            continue
        try:
            retries, rejected = sender.send_job(job)
        except BatchRejected as exc:
            where = f"records {job.numbers[0]}..{job.numbers[-1]}"
            outbox.put(BatchFailed(index, job.chunk, f"Qdrant refused {where}: {exc}", exc.code))
            continue
        except Exception as exc:  # keep the parent informed whatever happens
            outbox.put(BatchFailed(index, job.chunk, f"sender {index}: {type(exc).__name__}: {exc}", None))
            continue
        outbox.put(BatchDone(index, job.chunk, len(job.points), retries, rejected))
    outbox.put(SenderExited(index))


def decode_block(decoder: Decoder, rows: list, keep_going: bool) -> list[tuple]:
    """Each row as (OK, number, id, encoded point) or (BAD, number, problem, raw), in order;
    without `keep_going` the first bad row ends the block."""
    outcomes = []
    for number, raw, side in rows:
        try:
            point = decoder.decode(number, raw, side)
            vectors = wire.encode_vectors(wire_vectors(point.vectors))
            outcomes.append(
                (
                    OK,
                    number,
                    point.id,
                    wire.encode_point(point.id, vectors, wire.encode_payload(point.payload)),
                )
            )
        except RecordError as exc:
            outcomes.append((BAD, number, exc.problem, raw))
        except ValueError as exc:  # the encoder refuses a payload value JSON cannot hold
            outcomes.append((BAD, number, f"payload {exc}", raw))
        if outcomes[-1][0] == BAD and not keep_going:
            break
    return outcomes


def decoder_main(decoder: Decoder, keep_going: bool, inbox, outbox) -> None:
    _ignore_stop_signals()
    for block, rows in _jobs(inbox, outbox):
        try:
            outbox.put(DecodedBlock(block, decode_block(decoder, rows, keep_going)))
        except Exception as exc:  # never leave the parent waiting for this block
            outbox.put(DecodedBlock(block, [], f"decoding failed: {type(exc).__name__}: {exc}"))


def wire_vectors(vectors: dict):
    """None for payload-only points, the array for the unnamed vector, else the named map."""
    if not vectors:
        return None
    return vectors[""] if list(vectors) == [""] else vectors
