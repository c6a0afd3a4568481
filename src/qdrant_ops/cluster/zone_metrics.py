"""Textfile metrics of replica placement (node_exporter's textfile collector), written by
`qdrant-ops cluster status --textfile` on every Qdrant node's qdrant-placement.timer: shards whose
replicas share a zone (alert QdrantReplicasShareZone) and shards with fewer Active replicas than
their collection's replication factor (QdrantReplicationBelowTarget; Qdrant's own
collection_active_replicas_min is one figure for all collections, so a collection created with
factor 1 would hold it below any threshold of 2)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric

from qdrant_ops.cluster.health import shards_below_factor
from qdrant_ops.cluster.zones import Zones, shared_zones

SHARING = "qdrant_ops_shards_sharing_zone"
BELOW = "qdrant_ops_shards_below_replication_factor"
CHECKED = "qdrant_ops_placement_check_timestamp_seconds"
METRIC_NAMES = (SHARING, BELOW, CHECKED)


class _Placement:
    def __init__(self, overview: dict, zones: Zones) -> None:
        self.overview, self.zones = overview, zones

    def collect(self) -> Iterator[Metric]:
        sharing = GaugeMetricFamily(
            SHARING,
            "Shards whose replicas share an availability zone: avoidable (a rebalance with the zones "
            "spreads them) or too_few_zones (as even as the zones allow).",
            labels=["collection", "kind"],
        )
        peers = [peer["id"] for peer in self.overview.get("peers", [])]
        for item in self.overview.get("collections", []):
            avoidable, too_few = shared_zones({item["name"]: item["replicas"]}, peers, self.zones)
            sharing.add_metric([item["name"], "avoidable"], len(avoidable))
            sharing.add_metric([item["name"], "too_few_zones"], len(too_few))
        yield sharing
        below = GaugeMetricFamily(
            BELOW,
            "Shards with fewer Active replicas than the collection's replication factor.",
            labels=["collection"],
        )
        for item in self.overview.get("collections", []):
            below.add_metric(
                [item["name"]], len(shards_below_factor(item["replicas"], item["replication_factor"]))
            )
        yield below
        yield GaugeMetricFamily(CHECKED, "When the placement was last checked.", value=time.time())


def write_textfile(path: str | Path, overview: dict, zones: Zones) -> None:
    """Replace the file atomically (prometheus_client writes a temp file and renames it)."""
    registry = CollectorRegistry()
    registry.register(_Placement(overview, zones))
    write_to_textfile(str(path), registry)
    Path(path).chmod(0o644)  # node_exporter runs as another user
