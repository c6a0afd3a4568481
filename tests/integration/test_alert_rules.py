"""Every alert rule in files/alerts/: rendered with the default thresholds, accepted by promtool,
annotated for the on-call person, using only metric names that exist, and proven by
`promtool test rules` to fire on one series and stay silent on another."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import jinja2
import pytest
import yaml

from tests.support.promql import exported_names, metric_names_in, node_exporter_names

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "files/alerts"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run `make deps`")

# Rules whose result is cluster-wide, so no single instance to name.
AGGREGATE = {
    "Watchdog",
    "QdrantPeersMissing",
    "QdrantReplicasShareZone",
    "QdrantReplicationBelowTarget",
    "QdrantShardTransfersLong",
}
# One label set per kind of target, as the prometheus role's file_sd writes them.
Q = 'job="qdrant",instance="q1:6333",host="q1"'
N = 'job="node",instance="q1:9100",host="q1"'
QL = {"job": "qdrant", "instance": "q1:6333", "host": "q1"}
NL = {"job": "node", "instance": "q1:9100", "host": "q1"}
DISK = f'{N},mountpoint="/var/lib/qdrant"'
DL = {**NL, "mountpoint": "/var/lib/qdrant"}
BK = f'{N},cluster="prod"'
CERT = "qdrant_ops_tls_certificate_not_after_timestamp_seconds"
BL = {**NL, "cluster": "prod"}
SB = f'{N},cluster="standby",collection="docs"'
C = 'id="cities"'
BUSY = f'qdrant_ops_standby_sync_busy_until_timestamp_seconds{{{N},cluster="standby"}}'
TRANSFER_IN = "collection_shard_transfer_incoming"


def latency(fast: bool) -> list[tuple[str, str]]:
    base = (
        "rest_responses_duration_seconds_bucket"
        '{%s,method="POST",endpoint="/collections/{name}/points/search",status="200",le="%s"}'
    )
    return [
        (base % (Q, "1"), "0+100x20" if fast else "0+10x20"),
        (base % (Q, "5"), "0+100x20"),
        (base % (Q, "+Inf"), "0+100x20"),
    ]


# fmt: off
# alert: (eval_time, expected labels, series that fire, series that stay silent)
CASES = {
    "Watchdog": ("1m", {}, [], None),
    "QdrantNodeDown": ("5m", QL, [(f"up{{{Q}}}", "0x10")], [(f"up{{{Q}}}", "1x10")]),
    "QdrantPeersMissing": (
        "5m",
        {},
        [(f"up{{{Q}}}", "1x10"), ('up{job="qdrant",instance="q2:6333",host="q2"}', "0x10")],
        [
            (f"up{{{Q}}}", "1x10"),
            ('up{job="qdrant",instance="q2:6333",host="q2"}', "1x10"),
            ('up{job="qdrant",instance="q3:6333",host="q3"}', "1x10"),
        ],
    ),
    "QdrantDeadReplicas": (
        "6m",
        QL,
        [(f"collection_dead_replicas{{{Q}}}", "1x10")],
        [(f"collection_dead_replicas{{{Q}}}", "0x10")],
    ),
    "QdrantShardTransfersLong": (
        "6h10m",
        {},
        [(f"collection_dead_replicas{{{Q}}}", "1x400"), (f"{TRANSFER_IN}{{{Q},{C}}}", "1x400")],
        [(f"collection_dead_replicas{{{Q}}}", "1x400"), (f"{TRANSFER_IN}{{{Q},{C}}}", "1x300 0x100")],
    ),
    "QdrantReplicationBelowTarget": (
        "16m",
        {"collection": "cities"},
        [(f'qdrant_ops_shards_below_replication_factor{{{N},collection="cities"}}', "1x20")],
        [(f'qdrant_ops_shards_below_replication_factor{{{N},collection="cities"}}', "0x20")],
    ),
    "QdrantConsensusStopped": (
        "3m",
        {**QL, "state": "stopped"},
        [(f'cluster_working_state{{{Q},state="stopped"}}', "1x5")],
        [(f'cluster_working_state{{{Q},state="stopped"}}', "0x5")],
    ),
    "QdrantConsensusBacklog": (
        "12m",
        QL,
        [(f"cluster_pending_operations_total{{{Q}}}", "3x20")],
        [(f"cluster_pending_operations_total{{{Q}}}", "3 0x19")],
    ),
    "QdrantFrequentElections": (
        "60m",
        QL,
        [(f"cluster_term{{{Q}}}", "1+1x60")],
        [(f"cluster_term{{{Q}}}", "5x60")],
    ),
    "QdrantHighLatency": (
        "16m",
        {"instance": "q1:6333", "host": "q1"},
        latency(fast=False),
        latency(fast=True),
    ),
    "QdrantHighErrorRate": (
        "16m",
        {"instance": "q1:6333", "host": "q1"},
        [
            (f'rest_responses_total{{{Q},status="200"}}', "0+90x20"),
            (f'rest_responses_total{{{Q},status="500"}}', "0+10x20"),
        ],
        [
            (f'rest_responses_total{{{Q},status="200"}}', "0+90x20"),
            (f'rest_responses_total{{{Q},status="500"}}', "0x20"),
        ],
    ),
    "QdrantMmapsNearLimit": (
        "6m",
        QL,
        [(f"process_open_mmaps{{{Q}}}", "95x10"), (f"system_max_mmaps{{{Q}}}", "100x10")],
        [(f"process_open_mmaps{{{Q}}}", "50x10"), (f"system_max_mmaps{{{Q}}}", "100x10")],
    ),
    "QdrantOpenFilesNearLimit": (
        "6m",
        QL,
        [(f"process_open_fds{{{Q}}}", "95x10"), (f"process_max_fds{{{Q}}}", "100x10")],
        [(f"process_open_fds{{{Q}}}", "50x10"), (f"process_max_fds{{{Q}}}", "100x10")],
    ),
    "QdrantMemoryHigh": (
        "11m",
        QL,
        [(f"memory_resident_bytes{{{Q}}}", "90x15"), (f"node_memory_MemTotal_bytes{{{N}}}", "100x15")],
        [(f"memory_resident_bytes{{{Q}}}", "50x15"), (f"node_memory_MemTotal_bytes{{{N}}}", "100x15")],
    ),
    "HostDataDiskWillFillIn24h": (
        "395m",
        DL,
        [
            (f"node_filesystem_avail_bytes{{{DISK}}}", "3000-2x400"),
            (f"node_filesystem_size_bytes{{{DISK}}}", "10000x400"),
        ],
        [
            (f"node_filesystem_avail_bytes{{{DISK}}}", "3000x400"),
            (f"node_filesystem_size_bytes{{{DISK}}}", "10000x400"),
        ],
    ),
    "HostDataDiskAlmostFull": (
        "6m",
        DL,
        [
            (f"node_filesystem_avail_bytes{{{DISK}}}", "500x10"),
            (f"node_filesystem_size_bytes{{{DISK}}}", "10000x10"),
        ],
        [
            (f"node_filesystem_avail_bytes{{{DISK}}}", "5000x10"),
            (f"node_filesystem_size_bytes{{{DISK}}}", "10000x10"),
        ],
    ),
    "HostOutOfMemory": (
        "6m",
        NL,
        [
            (f"node_memory_MemAvailable_bytes{{{N}}}", "5x10"),
            (f"node_memory_MemTotal_bytes{{{N}}}", "100x10"),
        ],
        [
            (f"node_memory_MemAvailable_bytes{{{N}}}", "50x10"),
            (f"node_memory_MemTotal_bytes{{{N}}}", "100x10"),
        ],
    ),
    "QdrantCertificateExpiresSoon": (
        "2h",
        {**NL, "path": "/etc/qdrant/tls/cert.pem", "subject": "CN=q1", "serial": "1f"},
        [(f'{CERT}{{{N},path="/etc/qdrant/tls/cert.pem",subject="CN=q1",serial="1f"}}', f"{10 * 86400}x150")],
        [(f'{CERT}{{{N},path="/etc/qdrant/tls/cert.pem",subject="CN=q1",serial="1f"}}', f"{60 * 86400}x150"),
         (f'{CERT}{{{N},path="/etc/qdrant/tls/old.pem",subject="CN=q1",serial="1e"}}', "0x150")],
    ),
    "QdrantCertificateExpired": (
        "2m",
        {**NL, "path": "/etc/qdrant/tls/cert.pem", "subject": "CN=q1", "serial": "1f"},
        [(f'{CERT}{{{N},path="/etc/qdrant/tls/cert.pem",subject="CN=q1",serial="1f"}}', "60x5")],
        [(f'{CERT}{{{N},path="/etc/qdrant/tls/cert.pem",subject="CN=q1",serial="1f"}}', f"{86400}x5")],
    ),
    "QdrantReplicasShareZone": (
        "40m",
        {"collection": "cities"},
        [(f'qdrant_ops_shards_sharing_zone{{{N},collection="cities",kind="avoidable"}}', "2x45"),
         ('qdrant_ops_shards_sharing_zone{job="node",instance="q2:9100",host="q2",collection="cities",'
          'kind="avoidable"}', "2x45")],
        [(f'qdrant_ops_shards_sharing_zone{{{N},collection="cities",kind="avoidable"}}', "0x45"),
         (f'qdrant_ops_shards_sharing_zone{{{N},collection="cities",kind="too_few_zones"}}', "3x45")],
    ),
    "QdrantBackupFailed": (
        "2m",
        BL,
        [(f"qdrant_ops_backup_last_run_success{{{BK}}}", "0x5")],
        [(f"qdrant_ops_backup_last_run_success{{{BK}}}", "1x5")],
    ),
    "QdrantBackupTooOld": (
        "37h",
        BL,
        [(f"qdrant_ops_backup_last_success_timestamp_seconds{{{BK}}}", "0x2300")],
        [(f"qdrant_ops_backup_last_success_timestamp_seconds{{{BK}}}", "0+60x2300")],
    ),
    "QdrantBackupFailing": (
        "3h",
        BL,
        [(f"qdrant_ops_backup_consecutive_failures{{{BK}}}", "0x59 1x60 2x100")],
        [(f"qdrant_ops_backup_consecutive_failures{{{BK}}}", "0x59 1x60 0x100")],
    ),
    "QdrantBackupNeverRan": (
        "37h",
        QL,
        [(f"up{{{Q}}}", "1x2300")],
        [(f"up{{{Q}}}", "1x2300"), (f"qdrant_ops_backup_last_run_timestamp_seconds{{{BK}}}", "60x2300")],
    ),
    "QdrantBackupPruneFailed": (
        "2m",
        BL,
        [(f"qdrant_ops_prune_last_run_success{{{BK}}}", "0x5")],
        [(f"qdrant_ops_prune_last_run_success{{{BK}}}", "1x5")],
    ),
    "QdrantBackupNotRestorable": (
        "2m",
        BL,
        [(f"qdrant_ops_backup_verify_last_run_success{{{BK}}}", "0x5")],
        [(f"qdrant_ops_backup_verify_last_run_success{{{BK}}}", "1x5")],
    ),
    "QdrantStandbyLagging": (
        "25m",
        {**BL, "cluster": "standby", "collection": "docs"},
        [(f"qdrant_ops_standby_synced_timestamp_seconds{{{SB}}}", "0x30")],
        [(f"qdrant_ops_standby_synced_timestamp_seconds{{{SB}}}", "0+60x30")],
    ),
    "QdrantBackupUnverified": (
        "8d1h",
        BL,
        [(f"qdrant_ops_backup_verify_last_success_timestamp_seconds{{{BK}}}", "0x11600")],
        [(f"qdrant_ops_backup_verify_last_success_timestamp_seconds{{{BK}}}", "0+60x11600")],
    ),
    "QdrantHealerRefusing": (
        "7m",
        {**BL, "reason": "quorum"},
        [(f'qdrant_ops_healer_refusing{{{BK},reason="quorum"}}', "1x10"),
         (f'qdrant_ops_healer_refusing{{{BK},reason="busy"}}', "0x10"),
         (f"qdrant_ops_healer_missing_replicas{{{BK}}}", "4x10")],
        [(f'qdrant_ops_healer_refusing{{{BK},reason="quorum"}}', "1x10"),
         (f"qdrant_ops_healer_missing_replicas{{{BK}}}", "0x10")],
    ),
    "QdrantHealerNotRunning": (
        "30m",
        BL,
        [(f"qdrant_ops_healer_last_run_timestamp_seconds{{{BK}}}", "0x40"),
         (f"qdrant_ops_healer_enabled{{{BK}}}", "1x40")],
        [(f"qdrant_ops_healer_last_run_timestamp_seconds{{{BK}}}", "0+60x40"),
         (f"qdrant_ops_healer_last_run_success{{{BK}}}", "1x40"),
         (f"qdrant_ops_healer_enabled{{{BK}}}", "1x40")],
    ),
}
# fmt: on


# Issue 34, item 3: what each rule got wrong before its fix, as (alert, eval_time, series, the
# labels it fires with or None for silent).
# Each of these failed against the rules as they were (git show 0116051:files/alerts/...).
REGRESSIONS = {
    # A collection created with replication factor 1 held Qdrant's cluster-wide minimum at 1 forever.
    "factor-1 collection is not below its target": (
        "QdrantReplicationBelowTarget",
        "30m",
        [
            (f"collection_active_replicas_min{{{Q}}}", "1x40"),
            (f'qdrant_ops_shards_below_replication_factor{{{N},collection="scratch"}}', "0x40"),
            (f'qdrant_ops_shards_below_replication_factor{{{N},collection="cities"}}', "0x40"),
        ],
        None,
    ),
    # A new peer reports term 0 until it joins, then the cluster's term: not 57 elections.
    "a new peer's first term": (
        "QdrantFrequentElections",
        "60m",
        [(f"cluster_term{{{Q}}}", "0x10 57x50")],
        None,
    ),
    # Clients asking for points that do not exist are not Qdrant failing.
    "client errors": (
        "QdrantHighErrorRate",
        "16m",
        [
            (f'rest_responses_total{{{Q},status="200"}}', "0+90x20"),
            (f'rest_responses_total{{{Q},status="404"}}', "0+10x20"),
        ],
        None,
    ),
    # One failed request a minute out of two is no rate to page on.
    "low traffic": (
        "QdrantHighErrorRate",
        "16m",
        [
            (f'rest_responses_total{{{Q},status="200"}}', "0+1x20"),
            (f'rest_responses_total{{{Q},status="500"}}', "0+1x20"),
        ],
        None,
    ),
    # A node that never succeeded has no success time: the alert had nothing to fire on.
    "never succeeded": (
        "QdrantBackupTooOld",
        "37h",
        [
            (f"qdrant_ops_backup_first_run_timestamp_seconds{{{BK}}}", "0x2300"),
            (f"qdrant_ops_backup_last_run_success{{{BK}}}", "0x2300"),
        ],
        BL,
    ),
    "drill never succeeded": (
        "QdrantBackupUnverified",
        "8d1h",
        [
            (f"qdrant_ops_backup_verify_first_run_timestamp_seconds{{{BK}}}", "0x11600"),
            (f"qdrant_ops_backup_verify_last_run_success{{{BK}}}", "0x11600"),
        ],
        BL,
    ),
    # Two daily runs failed in a row, 25 h apart (the timer's random delay): a 1-day window saw one.
    "two in a row, a day apart": (
        "QdrantBackupFailing",
        "27h",
        [
            (f"qdrant_ops_backup_failures_total{{{BK}}}", "0x60 1x1500 2x100"),
            (f"qdrant_ops_backup_consecutive_failures{{{BK}}}", "0x60 1x1500 2x100"),
        ],
        BL,
    ),
    # A rebalance moving shards for 30 minutes: each transfer's target counts as a dead replica.
    "a long rebalance": (
        "QdrantDeadReplicas",
        "30m",
        [
            (f"collection_dead_replicas{{{Q}}}", "1x40"),
            (f'collection_shard_transfer_outgoing{{{Q},id="cities"}}', "1x40"),
            (
                'collection_shard_transfer_incoming{job="qdrant",instance="q2:6333",host="q2",id="cities"}',
                "1x40",
            ),
        ],
        None,
    ),
    # ... but one that stops moving leaves dead replicas, and they page.
    "a rebalance that stopped moving": (
        "QdrantDeadReplicas",
        "30m",
        [
            (f"collection_dead_replicas{{{Q}}}", "1x40"),
            (f'collection_shard_transfer_outgoing{{{Q},id="cities"}}', "1x10 0x30"),
        ],
        QL,
    ),
    # A standby's sync recovering shards from snapshots for 40 minutes: no transfer, quiet while
    # the sync keeps saying it is busy (each finished shard moves its time on) ...
    "a standby sync at work": (
        "QdrantDeadReplicas",
        "40m",
        [
            (f"collection_dead_replicas{{{Q}}}", "1x45"),
            (BUSY, "3600+60x45"),
        ],
        None,
    ),
    # ... but a sync killed mid-way stops hiding anything once its bound has passed.
    "a standby sync killed": (
        "QdrantDeadReplicas",
        "40m",
        [
            (f"collection_dead_replicas{{{Q}}}", "1x45"),
            (BUSY, "600x45"),
        ],
        QL,
    ),
    "below target during a standby sync": (
        "QdrantReplicationBelowTarget",
        "40m",
        [
            (f'qdrant_ops_shards_below_replication_factor{{{N},collection="cities"}}', "1x45"),
            (BUSY, "3600+60x45"),
        ],
        None,
    ),
    # Transfers running for hours with replicas not Active: a warning, not silence forever.
    "transfers for hours": (
        "QdrantShardTransfersLong",
        "7h",
        [
            (f"collection_dead_replicas{{{Q}}}", "1x450"),
            (f'collection_shard_transfer_incoming{{{Q},id="cities"}}', "1x450"),
        ],
        {},
    ),
    # A healer switched off (enabled: false) writes its metrics but heals nothing on purpose.
    "a healer switched off": (
        "QdrantHealerNotRunning",
        "30m",
        [
            (f"qdrant_ops_healer_last_run_timestamp_seconds{{{BK}}}", "0x40"),
            (f"qdrant_ops_healer_enabled{{{BK}}}", "0x40"),
        ],
        None,
    ),
    # Runs on time that keep failing (the cluster cannot be read) heal nothing either.
    "a healer whose runs fail": (
        "QdrantHealerNotRunning",
        "30m",
        [
            (f"qdrant_ops_healer_last_run_timestamp_seconds{{{BK}}}", "0+60x40"),
            (f"qdrant_ops_healer_last_run_success{{{BK}}}", "0x40"),
            (f"qdrant_ops_healer_enabled{{{BK}}}", "1x40"),
        ],
        BL,
    ),
    # A failure, the retry succeeded, a failure: not failing backups.
    "a success between": (
        "QdrantBackupFailing",
        "3h",
        [
            (f"qdrant_ops_backup_failures_total{{{BK}}}", "0x59 1x60 2x100"),
            (f"qdrant_ops_backup_consecutive_failures{{{BK}}}", "0x59 1x30 0x30 1x100"),
        ],
        None,
    ),
}


def render(path: Path) -> str:
    """What the prometheus role installs: [[ ]] placeholders filled, Prometheus' {{ }} untouched."""
    env = jinja2.Environment(
        variable_start_string="[[", variable_end_string="]]", undefined=jinja2.StrictUndefined
    )
    thresholds = yaml.safe_load((ALERTS / "thresholds.yml").read_text())
    return env.from_string(path.read_text()).render(alert=thresholds)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rules")
    files = {}
    for path in sorted(ALERTS.glob("*.rules.yml")):
        files[path.name] = out / path.name
        files[path.name].write_text(render(path))
    return files


def rules_of_kind(rendered, kind: str) -> dict[str, dict]:
    """Alerting (`alert`) or recording (`record`) rules by name."""
    return {
        rule[kind]: rule
        for path in rendered.values()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if kind in rule
    }


def all_rules(rendered) -> dict[str, dict]:
    return rules_of_kind(rendered, "alert")


def test_promtool_accepts_every_rule_file(rendered):
    result = subprocess.run(
        ["promtool", "check", "rules", *map(str, rendered.values())], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_annotated_for_the_on_call_person(rendered):
    for name, rule in all_rules(rendered).items():
        assert rule["labels"]["severity"] in {"none", "warning", "critical"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        if name not in AGGREGATE:
            assert "$labels.instance" in rule["annotations"]["description"], name
        for text in rule["annotations"].values():  # deterministic text: only label templates
            assert re.sub(r"\{\{ \$labels\.\w+ \}\}", "", text).count("{{") == 0, (name, text)


def test_metric_names_exist(rendered):
    known = exported_names()
    for name, rule in {**all_rules(rendered), **rules_of_kind(rendered, "record")}.items():
        unknown = metric_names_in(rule["expr"]) - known
        assert not unknown, (
            f"{name} uses {unknown}, not exported by Qdrant 1.18, node_exporter or the backup job"
        )


def test_every_alert_has_a_firing_and_a_silent_case(rendered):
    assert set(CASES) == set(all_rules(rendered))


def expected_annotations(rule: dict, labels: dict) -> dict:
    return {key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
            for key, text in rule["annotations"].items()}  # fmt: skip


def test_each_alert_fires_on_its_series_and_stays_silent_otherwise(rendered, tmp_path):
    rules = all_rules(rendered)
    tests = []
    for name, (eval_time, target, firing, silent) in CASES.items():
        labels = {**target, "severity": rules[name]["labels"]["severity"]}
        alert = {"exp_labels": labels, "exp_annotations": expected_annotations(rules[name], labels)}
        tests.append({
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in firing],
            "alert_rule_test": [{"eval_time": eval_time, "alertname": name, "exp_alerts": [alert]}],
        })  # fmt: skip
        if silent is not None:
            tests.append({
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in silent],
                "alert_rule_test": [{"eval_time": eval_time, "alertname": name, "exp_alerts": []}],
            })  # fmt: skip
    spec = tmp_path / "alerts_test.yml"
    files = [str(p) for p in rendered.values()]
    spec.write_text(
        yaml.safe_dump({"rule_files": files, "evaluation_interval": "1m", "tests": tests}, width=1000)
    )
    result = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr


@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_what_a_rule_got_wrong_before_stays_fixed(case, rendered, tmp_path):
    name, eval_time, series, fires_with = REGRESSIONS[case]
    rule = all_rules(rendered)[name]
    expected = []
    if fires_with is not None:
        labels = {**fires_with, "severity": rule["labels"]["severity"]}
        expected = [{"exp_labels": labels, "exp_annotations": expected_annotations(rule, labels)}]
    check = {"eval_time": eval_time, "alertname": name, "exp_alerts": expected}
    test = {"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [check]}  # fmt: skip
    files = [str(p) for p in rendered.values()]
    spec = tmp_path / "regression_test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": files, "evaluation_interval": "1m", "tests": [test]}, width=1000)
    )
    result = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"


@pytest.mark.skipif(
    not Path(NODE_EXPORTER).exists(), reason="prometheus-node-exporter missing: run `make deps`"
)
def test_the_node_exporter_names_are_what_a_real_node_exporter_exports():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "node_exporter did not answer"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    assert node_exporter_names() <= exported, node_exporter_names() - exported
