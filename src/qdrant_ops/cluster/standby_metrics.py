"""What a standby sync tells node_exporter's textfile collector: per collection the primary time
the standby reflects and the primary's count then, and while a sync runs until when its replicas
may be not Active (files/alerts/standby.rules.yml and qdrant.rules.yml read them)."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

# Written by `standby sync --metrics-dir`; the lag is recorded by files/alerts/standby.rules.yml.
METRIC_NAMES = (
    "qdrant_ops_standby_synced_timestamp_seconds",
    "qdrant_ops_standby_primary_points",
    "qdrant_ops_standby_lag_seconds",
    "qdrant_ops_standby_sync_busy_until_timestamp_seconds",
)


# -- metrics -------------------------------------------------------------------------------------------
def write_synced_metrics(directory: str | Path, cluster: str, collections: dict[str, dict]) -> Path:
    """Per collection, the primary time the standby reflects (written after a successful sync only,
    so a failing sync leaves the last good time and the lag keeps growing):
    `time() - qdrant_ops_standby_synced_timestamp_seconds` is the recovery point."""
    registry = CollectorRegistry()
    synced = Gauge(
        "qdrant_ops_standby_synced_timestamp_seconds",
        "Primary time the standby's copy of the collection reflects (its last completed sync).",
        ["cluster", "collection"],
        registry=registry,
    )
    points = Gauge(
        "qdrant_ops_standby_primary_points",
        "The primary's exact point count when the last completed sync began.",
        ["cluster", "collection"],
        registry=registry,
    )
    for name, state in collections.items():
        synced.labels(cluster, name).set(state["reflects"])
        points.labels(cluster, name).set(state["primary_points"])
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / "qdrant_ops_standby.prom"
    write_to_textfile(str(path), registry)
    path.chmod(0o644)  # node_exporter runs as another user
    return path


class SyncBusy:
    """While a sync runs, a textfile metric says until when the standby's replicas may be not
    Active by design (a shard recovered from a snapshot is Partial until done, with no transfer to
    tell the alert rules). files/alerts/qdrant.rules.yml keeps the replica alerts quiet until that
    time. Each finished piece moves it to now + `bound` (the most one shard may take), so a sync
    that is killed stops hiding anything within `bound`; a sync that ends removes the file."""

    FILE = "qdrant_ops_standby_sync_busy.prom"

    def __init__(self, directory: str | Path, cluster: str, bound: float) -> None:
        self.path, self.cluster, self.bound = Path(directory) / self.FILE, cluster, bound

    def __enter__(self) -> SyncBusy:
        self.refresh()
        return self

    def __exit__(self, *_exc) -> None:
        self.path.unlink(missing_ok=True)

    def refresh(self) -> None:
        registry = CollectorRegistry()
        Gauge(
            METRIC_NAMES[3],
            "Unix time until which a running standby sync may leave replicas not Active.",
            ["cluster"],
            registry=registry,
        ).labels(self.cluster).set(time.time() + self.bound)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.path), registry)
        self.path.chmod(0o644)  # node_exporter runs as another user
