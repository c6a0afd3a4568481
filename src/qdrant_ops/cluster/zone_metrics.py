"""Textfile metrics of replica placement across zones (node_exporter's textfile collector), written
by `qdrant-ops cluster status --textfile` on every Qdrant node's qdrant-placement.timer; the alert
QdrantReplicasShareZone (files/alerts/qdrant.rules.yml) reads them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric

from qdrant_ops.cluster.zones import Zones, shared_zones

SHARING = "qdrant_ops_shards_sharing_zone"
CHECKED = "qdrant_ops_placement_check_timestamp_seconds"
METRIC_NAMES = (SHARING, CHECKED)


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
        yield GaugeMetricFamily(CHECKED, "When the placement was last checked.", value=time.time())


def write_textfile(path: str | Path, overview: dict, zones: Zones) -> None:
    """Replace the file atomically (prometheus_client writes a temp file and renames it)."""
    registry = CollectorRegistry()
    registry.register(_Placement(overview, zones))
    write_to_textfile(str(path), registry)
    Path(path).chmod(0o644)  # node_exporter runs as another user
