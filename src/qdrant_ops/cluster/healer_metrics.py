"""The healer's textfile metrics (node_exporter's textfile collector on the monitoring host),
written after every run; files/alerts/qdrant.rules.yml alerts on them (QdrantHealerRefusing,
QdrantHealerNotRunning) and tests/integration/test_alert_rules.py holds the names equal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from qdrant_ops.cluster.healer import REASONS, Decision, HealerState

PREFIX = "qdrant_ops_healer"
FILENAME = f"{PREFIX}.prom"
METRIC_NAMES = tuple(
    f"{PREFIX}_{name}"
    for name in (
        "last_run_timestamp_seconds",
        "last_run_success",
        "enabled",
        "dry_run",
        "last_action_timestamp_seconds",
        "actions_total",
        "unreachable_peers",
        "dead_peers",
        "peer_unreachable_seconds",
        "missing_replicas",
        "refusing",
    )
)


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _gauge(name: str, help_text: str, cluster: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", help_text, labels=["cluster"])
    family.add_metric([cluster], value)
    return family


def families(config, state: HealerState, decision: Decision | None, *, success: bool) -> list[Metric]:
    cluster, now = config.cluster, time.time()
    found = [
        _gauge("last_run_timestamp_seconds", "Unix time the last healer run ended.", cluster, now),
        _gauge(
            "last_run_success",
            "1 if the last healer run observed the cluster (and finished its action).",
            cluster,
            float(success),
        ),
        _gauge("enabled", "1 if the healer may act (enabled: true).", cluster, float(config.enabled)),
        _gauge("dry_run", "1 if the healer only says what it would do.", cluster, float(config.dry_run)),
        _gauge(
            "last_action_timestamp_seconds",
            "Unix time the healer's last action ended (0: never).",
            cluster,
            state.last_action or 0.0,
        ),
    ]
    actions = CounterMetricFamily(f"{PREFIX}_actions", "Actions the healer finished.", labels=["cluster"])
    actions.add_metric([cluster], float(state.actions))
    found.append(actions)
    found.append(
        _gauge(
            "unreachable_peers",
            "Peers unreachable on REST and p2p now.",
            cluster,
            len(state.unreachable_since),
        )
    )
    dead = len(decision.dead) if decision else 0
    found.append(_gauge("dead_peers", "Peers unreachable for longer than the grace period.", cluster, dead))
    since = GaugeMetricFamily(
        f"{PREFIX}_peer_unreachable_seconds",
        "How long each unreachable peer has been so.",
        labels=["cluster", "peer"],
    )
    for peer, start in sorted(state.unreachable_since.items()):
        since.add_metric([cluster, str(peer)], max(0.0, now - start))
    found.append(since)
    if decision is not None:
        found.append(
            _gauge(
                "missing_replicas",
                "Replicas short of the replication factors, unreachable peers' counted as missing.",
                cluster,
                decision.missing_replicas,
            )
        )
    refusing = GaugeMetricFamily(
        f"{PREFIX}_refusing",
        "1 for each reason the healer refuses to act on a dead peer now (docs/self-healing.md).",
        labels=["cluster", "reason"],
    )
    for reason in REASONS:
        refusing.add_metric([cluster, reason], float(bool(decision and reason in decision.refusals)))
    found.append(refusing)
    return found


def write(config, state: HealerState, decision: Decision | None, *, success: bool) -> Path:
    """Replace the file atomically (prometheus_client writes a temp file and renames it)."""
    registry = CollectorRegistry()
    registry.register(_Families(families(config, state, decision, success=success)))
    path = Path(config.metrics_dir) / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    path.chmod(0o644)  # node_exporter runs as another user
    return path
