"""The Grafana dashboards in files/dashboards: the three the on-call person needs, each panel's
PromQL accepted by promtool once Grafana's variables are filled in, every metric name exported by
Qdrant 1.18, node_exporter or the backup job, and the datasource the grafana role provisions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from qdrant_ops.backup import metrics
from tests.support.promql import exported_names, metric_names_in

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = {p.name: json.loads(p.read_text()) for p in sorted((ROOT / "files/dashboards").glob("*.json"))}
# What Grafana puts in place of its variables before it sends a query.
VARIABLES = {"$__rate_interval": "1m", "$host": ".*", "$cluster": ".*", "$data_mountpoint": "/var/lib/qdrant"}
# Per dashboard, the metrics that must be shown (issue: what each dashboard covers).
REQUIRED = {
    "Qdrant cluster": {
        "up", "cluster_peers_total", "cluster_term", "cluster_commit", "cluster_pending_operations_total",
        "cluster_working_state", "collections_total", "collection_points", "collection_dead_replicas",
        "collection_shard_transfer_incoming", "collection_shard_transfer_outgoing", "rest_responses_total",
        "grpc_responses_total", "rest_responses_duration_seconds_bucket",
        "grpc_responses_duration_seconds_bucket",
        "memory_resident_bytes", "process_open_mmaps", "process_open_fds", "collection_running_optimizations",
    },
    "Hosts": {
        "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
        "node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_network_receive_bytes_total",
    },
    "Backups": {
        metrics.metric_names("backup")["last_success"], metrics.metric_names("backup")["duration"],
        metrics.metric_names("backup")["bytes"], metrics.metric_names("backup")["failures"] + "_total",
    },
}  # fmt: skip


def queries(dashboard: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def filled(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def test_the_three_dashboards_exist_with_unique_ids():
    assert {d["title"] for d in DASHBOARDS.values()} == set(REQUIRED)
    assert len({d["uid"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)


def test_panels_are_well_formed_and_use_the_provisioned_datasource():
    template = (ROOT / "roles/grafana/templates/datasource.yml.j2").read_text()
    uid = re.search(r"uid: (\S+)", template).group(1)
    for name, dashboard in DASHBOARDS.items():
        assert "qdrant-ops" in dashboard["tags"], f"{name}: the grafana role counts dashboards by this tag"
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and panel["targets"], (name, panel["title"])
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            assert {t["datasource"]["uid"] for t in panel["targets"]} == {uid}, (name, panel["title"])


def test_every_variable_used_is_defined():
    for name, dashboard in DASHBOARDS.items():
        defined = {"$" + var["name"] for var in dashboard["templating"]["list"]} | {"$__rate_interval"}
        for title, expr in queries(dashboard):
            used = set(re.findall(r"\$\w+", expr))
            assert used <= defined, f"{name} / {title}: undefined {used - defined}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run `make deps`")
def test_promtool_accepts_every_query(tmp_path):
    rules = [
        {"record": f"dashboard:query:{index}", "expr": filled(expr)}
        for index, (_, expr) in enumerate(q for d in DASHBOARDS.values() for q in queries(d))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, width=1000))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_metric_names_exist_and_each_dashboard_covers_its_subject():
    known = exported_names()
    for dashboard in DASHBOARDS.values():
        used = set()
        for title, expr in queries(dashboard):
            names = metric_names_in(filled(expr))
            assert names <= known, f"{dashboard['title']} / {title} uses unknown {names - known}"
            used |= names
        missing = REQUIRED[dashboard["title"]] - used
        assert not missing, f"{dashboard['title']} does not show {missing}"
