"""The textfile the backup and prune jobs leave for node_exporter: replaced whole, keeping the last
success and the failure count across runs (promtool's check: tests/integration)."""

from __future__ import annotations

import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from qdrant_ops.backup import metrics


def samples(path) -> dict[str, tuple[dict, float]]:
    return {
        s.name: (s.labels, s.value)
        for f in text_string_to_metric_families(path.read_text())
        for s in f.samples
    }


def test_names_are_defined_once_per_job():
    assert (
        metrics.metric_names("backup")["last_success"] == "qdrant_ops_backup_last_success_timestamp_seconds"
    )
    assert metrics.metric_names("prune")["failures"] == "qdrant_ops_prune_failures"
    with pytest.raises(ValueError, match="unknown job"):
        metrics.write_run_metrics("/tmp", "restore", "c", success=True, finished=1, duration=1)


def test_success_then_failures(tmp_path):
    path = metrics.write_run_metrics(
        tmp_path, "backup", "prod", success=True, finished=1000.0, duration=12.5, uploaded_bytes=4096
    )
    assert path == tmp_path / "qdrant_ops_backup.prom"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # node_exporter runs as another user
    values = samples(path)
    assert values["qdrant_ops_backup_last_success_timestamp_seconds"] == ({"cluster": "prod"}, 1000.0)
    assert values["qdrant_ops_backup_uploaded_bytes"][1] == 4096
    assert values["qdrant_ops_backup_duration_seconds"][1] == 12.5
    assert values["qdrant_ops_backup_failures_total"][1] == 0

    metrics.write_run_metrics(tmp_path, "backup", "prod", success=False, finished=2000.0, duration=3)
    metrics.write_run_metrics(tmp_path, "backup", "prod", success=False, finished=3000.0, duration=3)
    values = samples(path)
    assert values["qdrant_ops_backup_failures_total"][1] == 2
    assert values["qdrant_ops_backup_last_run_success"][1] == 0
    assert values["qdrant_ops_backup_last_run_timestamp_seconds"][1] == 3000.0
    assert values["qdrant_ops_backup_last_success_timestamp_seconds"][1] == 1000.0
    assert "qdrant_ops_backup_uploaded_bytes" not in values  # a failed run uploaded no set
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qdrant_ops_backup.prom"]  # no temp files left


def test_a_damaged_previous_file_is_replaced(tmp_path):
    (tmp_path / "qdrant_ops_prune.prom").write_text("this is { not metrics\n")
    path = metrics.write_run_metrics(tmp_path, "prune", "prod", success=False, finished=5.0, duration=1)
    assert samples(path)["qdrant_ops_prune_failures_total"][1] == 1


def test_the_first_run_and_the_failures_in_a_row_anchor_the_alerts(tmp_path):
    """QdrantBackupTooOld counts from the first run when no run succeeded yet; QdrantBackupFailing
    reads the failures in a row, reset by a success (files/alerts/backup.rules.yml)."""
    for finished, success in ((100.0, False), (200.0, False)):
        path = metrics.write_run_metrics(
            tmp_path, "backup", "prod", success=success, finished=finished, duration=1
        )
    values = samples(path)
    assert "qdrant_ops_backup_last_success_timestamp_seconds" not in values
    assert values["qdrant_ops_backup_first_run_timestamp_seconds"][1] == 100.0
    assert values["qdrant_ops_backup_consecutive_failures"][1] == 2
    metrics.write_run_metrics(tmp_path, "backup", "prod", success=True, finished=300.0, duration=1)
    metrics.write_run_metrics(tmp_path, "backup", "prod", success=False, finished=400.0, duration=1)
    values = samples(path)
    assert values["qdrant_ops_backup_consecutive_failures"][1] == 1  # the success in between reset it
    assert values["qdrant_ops_backup_first_run_timestamp_seconds"][1] == 100.0
    assert values["qdrant_ops_backup_failures_total"][1] == 3
