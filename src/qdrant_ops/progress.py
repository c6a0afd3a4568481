"""How far a long operation got, as one line per finished piece of work: items and bytes done of
the total, the rate since the start and the time left at that rate, e.g.

    progress: restore 3/12 snapshots, 1.2 GiB of 4.0 GiB (30%), 45.0 MiB/s, ETA 1m03s: cities shard 2

Written through the operation's `log` (stderr in the CLI, the journal under a timer), so a long
restore, backup or standby sync shows it is alive without a terminal. Thread-safe: pieces finish
on worker threads."""

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
    ) -> None:
        self.operation, self.unit, self.log, self.clock = operation, unit, log, clock
        self.total_items, self.total_bytes = total_items, total_bytes
        self.items = self.bytes = 0
        self.started = clock()
        self._lock = threading.Lock()

    def done(self, label: str, nbytes: int = 0) -> None:
        with self._lock:
            self.items += 1
            self.bytes += nbytes
            line = self.line(label)
        self.log(line)

    def line(self, label: str = "") -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        parts = [f"progress: {self.operation} {self.items}/{self.total_items} {self.unit}"]
        if self.total_bytes:
            share = self.bytes / self.total_bytes
            parts.append(f"{size(self.bytes)} of {size(self.total_bytes)} ({share:.0%})")
            rate, left = self.bytes / elapsed, self.total_bytes - self.bytes
            parts.append(f"{size(rate)}/s")
        else:
            parts.append(size(self.bytes))
            rate, left = self.items / elapsed, self.total_items - self.items
        if left > 0 and rate > 0:
            parts.append(f"ETA {duration(left / rate)}")
        return ", ".join(parts) + (f": {label}" if label else "")
