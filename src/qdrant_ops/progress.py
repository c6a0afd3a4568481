"""How far a long operation got, as one line per finished piece of work: items and bytes done of
the total, the rate since the start and the time left at that rate, e.g.

    progress: restore 3/12 snapshots, 1.2 GiB of 4.0 GiB (30%), 45.0 MiB/s, ETA 1m03s: cities shard 2

Written through the operation's `log` (stderr in the CLI, the journal under a timer), so a long
restore, backup or standby sync shows it is alive without a terminal. A piece that takes long (a
snapshot of many GiB going to or from S3) also reports the bytes it moved so far, at most one line
every `interval` seconds. Each line is a `ProgressLine`: text for people, with its figures in
`fields` for `--json`'s event stream. Thread-safe: pieces finish on worker threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(nbytes: float) -> str:
    for unit in UNITS:
        if abs(nbytes) < 1024 or unit == UNITS[-1]:
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressLine(str):
    """A progress line as text, carrying its figures for a machine reader (`fields`)."""

    fields: dict

    def __new__(cls, text: str, fields: dict) -> ProgressLine:
        line = super().__new__(cls, text)
        line.fields = fields
        return line


class Progress:
    """Counts finished items (and their bytes) of `total_items` (`total_bytes`, 0 when unknown)."""

    def __init__(
        self,
        operation: str,
        unit: str,
        total_items: int,
        total_bytes: int,
        log: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 10.0,
    ) -> None:
        self.operation, self.unit, self.log, self.clock = operation, unit, log, clock
        self.total_items, self.total_bytes, self.interval = total_items, total_bytes, interval
        self.items = self.bytes = 0
        self.moving: dict[str, int] = {}  # bytes moved so far of pieces not finished, by label
        self.started = self.last_line = clock()
        self._lock = threading.Lock()

    def advance(self, label: str, nbytes: int) -> None:
        """`nbytes` more of the unfinished piece `label` moved; a line if none came for a while."""
        with self._lock:
            self.moving[label] = self.moving.get(label, 0) + nbytes
            if self.clock() - self.last_line < self.interval:
                return
            line = self.line(label)
        self.log(line)

    def done(self, label: str, nbytes: int = 0, *, piece: str | None = None) -> None:
        """A piece finished (`piece`: the label its `advance` calls used, whose bytes it replaces)."""
        with self._lock:
            self.moving.pop(label if piece is None else piece, None)
            self.items += 1
            self.bytes += nbytes
            line = self.line(label)
        self.log(line)

    def line(self, label: str = "") -> ProgressLine:
        now = self.clock()
        self.last_line = now
        elapsed = max(now - self.started, 1e-9)
        moved = self.bytes + sum(self.moving.values())
        parts = [f"progress: {self.operation} {self.items}/{self.total_items} {self.unit}"]
        if self.total_bytes:
            share = moved / self.total_bytes
            parts.append(f"{size(moved)} of {size(self.total_bytes)} ({share:.0%})")
            rate, left = moved / elapsed, self.total_bytes - moved
            parts.append(f"{size(rate)}/s")
        else:
            parts.append(size(moved))
            rate, left = self.items / elapsed, self.total_items - self.items
            if self.moving:
                parts.append(f"{size(moved / elapsed)}/s")
        eta = left / rate if left > 0 and rate > 0 else None
        if eta is not None:
            parts.append(f"ETA {duration(eta)}")
        fields = {
            "operation": self.operation,
            "unit": self.unit,
            "items": self.items,
            "total_items": self.total_items,
            "bytes": moved,
            "total_bytes": self.total_bytes,
            "bytes_per_second": round(moved / elapsed, 1),
            "seconds": round(elapsed, 3),
            "eta_seconds": None if eta is None else round(eta, 1),
            "label": label,
        }
        return ProgressLine(", ".join(parts) + (f": {label}" if label else ""), fields)
