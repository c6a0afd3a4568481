"""The ingester's worker processes as the parent sees them: one object that starts the decoders
and senders, owns their queues and the abort event, and stops them."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable

from qdrant_ops.ingest.messages import BatchFailed, DecodedBlock, SenderExited, SenderMessage
from qdrant_ops.ingest.sources import Decoder
from qdrant_ops.ingest.workers import Job, SenderSettings, decoder_main, sender_main


class WorkerPool:
    """`senders` gRPC senders (each with a bounded inbox of `in_flight` jobs) and `decoders`
    decoder processes, forked: spawn would re-run an Ansible module's __main__."""

    def __init__(
        self,
        *,
        settings: SenderSettings,
        senders: int,
        in_flight: int,
        decoder: Decoder,
        decoders: int,
        keep_going: bool,
    ) -> None:
        context = multiprocessing.get_context("fork")
        self.abort = context.Event()  # set: senders drop the jobs still queued
        self.exited: set[int] = set()  # senders that said SenderExited or died
        self._inboxes = [context.Queue(maxsize=in_flight) for _ in range(senders)]
        self._outbox = context.Queue()
        self._senders = [
            context.Process(
                target=sender_main, args=(settings, i, inbox, self._outbox, self.abort), daemon=True
            )
            for i, inbox in enumerate(self._inboxes)
        ]
        self._decode_inboxes = [context.Queue() for _ in range(decoders)]
        self._decoded_outbox = context.Queue()
        self._decoders = [
            context.Process(
                target=decoder_main, args=(decoder, keep_going, inbox, self._decoded_outbox), daemon=True
            )
            for inbox in self._decode_inboxes
        ]

    @property
    def decoders(self) -> int:
        return len(self._decoders)

    def start(self) -> None:
        for process in [*self._senders, *self._decoders]:
            process.start()

    # -- senders ------------------------------------------------------------------------------------------
    def send(self, sender: int, job: Job | None, *, while_full: Callable[[], None]) -> None:
        """Queue a job (None: finish and exit), calling `while_full` while the inbox is full; a
        sender that has exited takes nothing."""
        while sender not in self.exited:
            try:
                self._inboxes[sender].put(job, timeout=0.1)
                return
            except queue.Full:
                while_full()

    def messages(self, wait: float = 0.0) -> list[SenderMessage]:
        """Every message the senders sent so far (waiting up to `wait` seconds for the first), and a
        BatchFailed for each sender that has died since the last call."""
        found: list[SenderMessage] = []
        try:
            found.append(self._outbox.get(timeout=wait) if wait else self._outbox.get_nowait())
            while True:
                found.append(self._outbox.get_nowait())
        except queue.Empty:
            pass
        self.exited.update(m.sender for m in found if isinstance(m, SenderExited))
        # Exit code 0 comes after SenderExited is flushed: the next call reads it.
        for index, process in enumerate(self._senders):
            if process.exitcode not in (None, 0) and index not in self.exited:
                self.exited.add(index)
                found.append(
                    BatchFailed(index, -1, f"sender {index} died (exit code {process.exitcode})", None)
                )
        return found

    # -- decoders -----------------------------------------------------------------------------------------
    def decode(self, block: int, rows: list) -> None:
        self._decode_inboxes[block % len(self._decoders)].put((block, rows))

    def decoded(self, timeout: float) -> DecodedBlock | None:
        """The next decoded block to arrive (any order), or None after `timeout` seconds."""
        try:
            return self._decoded_outbox.get(timeout=timeout)
        except queue.Empty:
            dead = [(i, p.exitcode) for i, p in enumerate(self._decoders) if p.exitcode is not None]
            if dead:
                return DecodedBlock(-1, [], f"decoder {dead[0][0]} died (exit code {dead[0][1]})")
            return None

    # -- stopping -----------------------------------------------------------------------------------------
    def close(self, silence_limit: float, on_messages: Callable[[list[SenderMessage]], None]) -> None:
        """Decoders stop; senders finish the jobs already queued (the batches in flight) and exit,
        their messages handed to `on_messages`. A sender reports every batch within its longest
        send, so the wait ends when no sender has said anything for `silence_limit` seconds (a
        hung sender), however long the queue; then every process is joined, and killed if it does
        not end (what was not acknowledged stays out of the checkpoint and is sent on resume)."""
        for inbox in self._decode_inboxes:
            inbox.put(None)
        for index in range(len(self._senders)):
            self.send(index, None, while_full=lambda: on_messages(self.messages()))
        last_heard = time.monotonic()
        while len(self.exited) < len(self._senders) and time.monotonic() - last_heard < silence_limit:
            found = self.messages(wait=0.2)
            if found:
                last_heard = time.monotonic()
            on_messages(found)
        for process in [*self._senders, *self._decoders]:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
