"""The backup alert rules use exactly the metric names the jobs write, and fire when they should
(real promtool: `check rules` and `test rules`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from qdrant_ops import metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "files/alerts/backup.rules.yml"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run `make deps`")


def exported_names() -> set[str]:
    names = set()
    for job in metrics.JOBS:
        for key, name in metrics.metric_names(job).items():
            names.add(name + "_total" if key == "failures" else name)
    return names


def test_rules_use_only_names_the_jobs_write():
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    used = {name for rule in rules for name in re.findall(r"qdrant_ops_[a-z_]+", rule["expr"])}
    assert used and used <= exported_names(), used - exported_names()


def test_promtool_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # node a: succeeded for an hour, then every run failed; node b: succeeds every minute
      - series: 'qdrant_ops_backup_last_run_success{{cluster="prod",instance="a"}}'
        values: '1x59 0x2400'
      - series: 'qdrant_ops_backup_last_success_timestamp_seconds{{cluster="prod",instance="a"}}'
        values: '0x2460'
      - series: 'qdrant_ops_backup_failures_total{{cluster="prod",instance="a"}}'
        values: '0x59 1x60 2x2400'
      - series: 'qdrant_ops_backup_last_run_success{{cluster="prod",instance="b"}}'
        values: '1x2460'
      - series: 'qdrant_ops_backup_last_success_timestamp_seconds{{cluster="prod",instance="b"}}'
        values: '0+60x2460'
    alert_rule_test:
      - eval_time: 30m
        alertname: QdrantBackupFailed
        exp_alerts: []
      - eval_time: 90m
        alertname: QdrantBackupFailed
        exp_alerts:
          - exp_labels: {{severity: warning, cluster: prod, instance: a}}
            exp_annotations:
              summary: "Qdrant backup failed on a (cluster prod)"
              description: "The last `qdrant-ops backup run` on this node failed (0), so tonight's set
                is incomplete. See `journalctl -u qdrant-backup.service` on the node, fix the cause,
                then `systemctl start qdrant-backup.service`."
      - eval_time: 90m
        alertname: QdrantBackupFailing
        exp_alerts: []
      - eval_time: 3h
        alertname: QdrantBackupFailing
        exp_alerts:
          - exp_labels: {{severity: critical, cluster: prod, instance: a}}
            exp_annotations:
              summary: "Qdrant backups failed at least twice in a day on a"
              description: "Repeated failures; the textfile metrics and the unit's journal say why."
      - eval_time: 35h
        alertname: QdrantBackupTooOld
        exp_alerts: []
      - eval_time: 37h
        alertname: QdrantBackupTooOld
        exp_alerts:
          - exp_labels: {{severity: critical, cluster: prod, instance: a}}
            exp_annotations:
              summary: "No successful Qdrant backup on a for 1d 13h 0m 0s"
              description: "Without this node's part no backup set of cluster prod is complete, and a
                restore cannot bring back the shards it holds."
"""


def test_alerts_fire_for_the_failing_node_only(tmp_path):
    tests = tmp_path / "backup_test.yml"
    tests.write_text(RULE_TESTS.format(rules=RULES))
    result = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
