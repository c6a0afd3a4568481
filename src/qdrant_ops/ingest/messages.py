"""What the ingester's processes tell each other, one type per kind of message.

Senders answer every job with BatchDone, BatchFailed or BatchSkipped, and say SenderExited last.
Decoders answer every block with DecodedBlock, whose rows stay plain tuples (one per record, the
hot path: a typed object per record would cost seconds per million records in pickling):
    (OK, number, point id, encoded point) or (BAD, number, problem, raw record)
"""

from __future__ import annotations

from typing import Any, NamedTuple

OK, BAD = "ok", "bad"  # the first field of a decoded row


class RejectedRecord(NamedTuple):
    """A record Qdrant refused, found by splitting its batch."""

    number: int
    point_id: Any
    problem: str


class BatchDone(NamedTuple):
    sender: int
    chunk: int
    count: int  # points sent, the rejected ones included
    retries: int
    rejected: list[RejectedRecord]


class BatchFailed(NamedTuple):
    sender: int
    chunk: int  # -1 when the sender could not start
    error: str
    code: str | None  # the gRPC status name, when Qdrant answered


class BatchSkipped(NamedTuple):
    """A job the sender dropped because the run is being aborted."""

    sender: int
    chunk: int


class SenderExited(NamedTuple):
    sender: int


SenderMessage = BatchDone | BatchFailed | BatchSkipped | SenderExited


class DecodedBlock(NamedTuple):
    block: int
    rows: list[tuple]  # see the module docstring
    error: str | None = None  # the decoder itself failed on this block
