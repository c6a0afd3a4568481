"""Prometheus textfile metrics for the backup, prune and restore drill (backup_verify) jobs, read
by node_exporter's textfile collector. The names are defined here once; files/alerts/backup.rules.yml
uses the same names and tests/integration/test_alert_rules.py checks that they agree.

A run reads the previous file first, so the last success time, the first run's time and the
failure counters survive a failed run. The file is replaced atomically (prometheus_client writes a
temp file and renames it), so node_exporter never reads half a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

JOBS = ("backup", "prune", "backup_verify", "standby_sync")


def metric_names(job: str) -> dict[str, str]:
    base = f"qdrant_ops_{job}"
    return {
        "last_success": f"{base}_last_success_timestamp_seconds",
        "last_run": f"{base}_last_run_timestamp_seconds",
        "last_run_success": f"{base}_last_run_success",
        "duration": f"{base}_duration_seconds",
        "bytes": f"{base}_uploaded_bytes",
        "points": f"{base}_points_verified",
        "golden_recall": f"{base}_golden_recall",
        "failures": f"{base}_failures",  # exposed as ..._failures_total
        "first_run": f"{base}_first_run_timestamp_seconds",
        "consecutive_failures": f"{base}_consecutive_failures",
    }


def textfile_path(directory: str | os.PathLike, job: str) -> Path:
    return Path(directory) / f"qdrant_ops_{job}.prom"


def _previous(path: Path, cluster: str) -> dict[str, float]:
    """Last success time and failure count from the file the previous run wrote."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    values = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("cluster") == cluster:
                    values[sample.name] = sample.value
    except ValueError:
        return {}  # a damaged file must not stop the run that replaces it
    return values


class _RunMetrics:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _gauges(job: str, values: dict[str, float | None]) -> list[tuple[str, str, float]]:
    """(key, help, value) of every gauge with a value."""
    helps = {
        "last_run": f"Unix time the last {job} run finished.",
        "last_run_success": f"1 if the last {job} run succeeded, else 0.",
        "duration": f"Seconds the last {job} run took.",
        "first_run": f"Unix time the first {job} run recorded here finished.",
        "consecutive_failures": f"{job.capitalize()} runs in a row that failed (0 after a success).",
        "last_success": f"Unix time of the last successful {job} run.",
        "bytes": f"Bytes the last {job} run uploaded to S3.",
        "points": "Points the last restore drill restored and found as the set records.",
        "golden_recall": "Lowest recall@10 of the golden queries in the last restore drill: its normal "
        "search against the exact results the set stores.",
    }
    return [(key, helps[key], value) for key, value in values.items() if value is not None]


def write_run_metrics(
    directory: str | os.PathLike,
    job: str,
    cluster: str,
    *,
    success: bool,
    finished: float,
    duration: float,
    uploaded_bytes: int | None = None,
    points_verified: int | None = None,
    golden_recall: float | None = None,
) -> Path:
    """Write the metrics of one run of `job` (see JOBS) for `cluster`; returns the path."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}")
    names = metric_names(job)
    path = textfile_path(directory, job)
    previous = _previous(path, cluster)
    values = {
        "last_run": finished,
        "last_run_success": 1.0 if success else 0.0,
        "duration": duration,
        # The alerts' anchors: how long since the first run (for a job that never succeeded) and
        # how many runs in a row failed (whatever the schedule's random delay).
        "first_run": previous.get(names["first_run"], finished),
        "consecutive_failures": 0.0 if success else previous.get(names["consecutive_failures"], 0.0) + 1,
        "last_success": finished if success else previous.get(names["last_success"]),
        "bytes": uploaded_bytes,
        "points": points_verified,
        "golden_recall": golden_recall,
    }
    families: list[Metric] = []
    for key, help_text, value in _gauges(job, values):
        families.append(GaugeMetricFamily(names[key], help_text, labels=["cluster"]))
        families[-1].add_metric([cluster], value)
    counter = CounterMetricFamily(
        names["failures"], f"{job.capitalize()} runs that failed.", labels=["cluster"]
    )
    counter.add_metric([cluster], previous.get(names["failures"] + "_total", 0.0) + (0 if success else 1))
    families.append(counter)

    registry = CollectorRegistry()
    registry.register(_RunMetrics(families))
    Path(directory).mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    path.chmod(0o644)  # node_exporter runs as another user
    return path
