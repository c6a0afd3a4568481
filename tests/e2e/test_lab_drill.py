"""The lab drill (`make lab-drill`), needs a real Qdrant (QDRANT_BINARY) and Docker.

On the lab of `make lab` (brought up here when it is not running; removed afterwards unless
LAB_KEEP=1): a second site.yml run reports zero changes; backup; the restore drill
(qdrant-backup-verify.service on the monitoring host) and its metric in Prometheus; every node's
Qdrant storage is wiped and an empty cluster started; restore, verified against the manifest
(exact counts, sampled payload and vector hashes) and by an exact count here; one node stopped
until Alertmanager shows QdrantNodeDown (within 2 minutes), started until it resolves; a rolling
re-install of the same version while a writer upserts, with no acknowledged write lost.

The certificate renewal drill: every node serving a certificate 10 days from its expiry, then a
qdrant.yml run re-issues them and restarts the nodes one at a time (systemd's stop and start times:
no two nodes down at once) while a writer upserts, with no acknowledged write lost; a second run
changes nothing. The same for the monitoring host's certificate: re-issued and served by Prometheus
and Alertmanager without a restart. Every call to Qdrant, Prometheus and Alertmanager here is
HTTPS checked against the lab's cluster CA (the lab runs with the default TLS). Prints each
phase's duration.

Then the upgrade drill, when QDRANT_BINARY_NEXT names the next minor release (1.19.x next to a
1.18.x QDRANT_BINARY): rolling_upgrade.yml to that version while a writer upserts into a
replication-factor-2 collection; every acknowledged write present afterwards, every replica
Active, and every node answering with the new version.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from qdrant_ops import silences
from qdrant_ops.backup.verify import binary_version
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster.health import shard_placement
from tests.support import rolling_writer
from tests.support.e2e_data import placement_problems
from tests.support.tls import reissue, served_certificate

pytestmark = [pytest.mark.qdrant, pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventory/lab"
HOSTS = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]["lab"]["children"]
QDRANT_HOSTS = HOSTS["qdrant"]["hosts"]
MONITORING = next(iter(HOSTS["monitoring"]["hosts"].values()))["ansible_host"]
SAMPLE = 100_000
TLS_DIR = INVENTORY / ".secrets/lab/tls"


def ansible(playbook: str, *args: str) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), playbook, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default"},
    )  # fmt: skip
    assert result.returncode == 0, f"{playbook} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def docker_exec(host: str, *command: str) -> None:
    subprocess.run(["docker", "exec", host, *command], check=True, capture_output=True, timeout=300)


def monitoring_get(url: str):
    """GET from Prometheus or Alertmanager over HTTPS (certificate checked with the lab's cluster
    CA) with the lab's web credentials (both ask for basic auth)."""
    password = (INVENTORY / ".secrets/lab/monitoring_web_password").read_text().strip()
    token = base64.b64encode(f"monitoring:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    context = ssl.create_default_context(cafile=str(TLS_DIR / "ca.crt"))
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return json.loads(response.read())


def active_alerts(name: str) -> list[dict]:
    return monitoring_get(
        f"https://{MONITORING}:9093/api/v2/alerts?active=true&filter=alertname%3D%22{name}%22"
    )


def prometheus_values(expr: str) -> list[float]:
    query = urllib.parse.urlencode({"query": expr})
    result = monitoring_get(f"https://{MONITORING}:9090/api/v1/query?{query}")["data"]["result"]
    return [float(r["value"][1]) for r in result]


def wait_for(condition, what: str, timeout: float, interval: float = 2.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


@pytest.fixture(scope="module")
def lab(qdrant_binary, host_image, request):
    phases: dict[str, float] = {}
    started = time.monotonic()
    ansible("playbooks/lab.yml")  # idempotent: reuses a running lab
    phases["lab up (site.yml, demo collection, 100k ingest, backup)"] = time.monotonic() - started
    key = (INVENTORY / ".secrets/lab/api_key").read_text().strip()
    urls = [f"https://{host['ansible_host']}:6333" for host in QDRANT_HOSTS.values()]
    ca_file = str(TLS_DIR / "ca.crt")
    with ClusterClient(urls, key, retries=10, backoff=0.5, timeout=120, ca_file=ca_file) as client:
        yield client, phases
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_sep("-", "lab drill phases")
    for name, seconds in phases.items():
        reporter.write_line(f"{seconds:8.1f} s  {name}")
    if not os.environ.get("LAB_KEEP"):
        ansible("playbooks/lab_down.yml")


def timed(phases: dict, name: str):
    class Phase:
        def __enter__(self):
            self.started = time.monotonic()

        def __exit__(self, *exc_info):
            phases[name] = time.monotonic() - self.started

    return Phase()


def all_active(client: ClusterClient) -> bool:

    return all(
        r["state"] == "Active"
        for name in client.collection_names()
        for r in shard_placement(client.collection_cluster(name))
    )


def test_lab_drill(lab, tmp_path):
    client, phases = lab
    with timed(phases, "second site.yml run (must change nothing)"):
        recap = ansible("site.yml").split("PLAY RECAP")[-1]
        assert not re.search(r"changed=[1-9]", recap), recap
    assert client.count_points("cities") == SAMPLE

    backup_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with timed(phases, "backup (every node's part to S3)"):
        ansible("playbooks/backup.yml", "-e", f"backup_id={backup_id}")

    drill_host = next(iter(HOSTS["monitoring"]["hosts"]))
    with timed(phases, "restore drill (qdrant-backup-verify.service), its metric in Prometheus"):
        subprocess.run(["docker", "exec", drill_host, "systemctl", "start", "qdrant-backup-verify.service"],
                       check=True, capture_output=True, timeout=1200)  # fmt: skip
        wait_for(lambda: prometheus_values("qdrant_ops_backup_verify_last_run_success") == [1.0],
                 "the drill's success in Prometheus", 180)  # fmt: skip
        assert prometheus_values("qdrant_ops_backup_verify_points_verified")[0] >= SAMPLE  # cities and more

    with timed(phases, "wipe every node's storage, start an empty cluster"):
        for host in QDRANT_HOSTS:
            docker_exec(host, "systemctl", "stop", "qdrant")
            data = ["/var/lib/qdrant/storage", "/var/lib/qdrant/snapshots"]
            docker_exec(host, "find", *data, "-mindepth", "1", "-delete")
        ansible("playbooks/qdrant.yml")
        assert client.collection_names() == []

    with timed(phases, "restore (verified against the manifest)"):
        ansible("playbooks/restore.yml", "-e", f"restore_backup_id={backup_id}")
        assert client.count_points("cities") == SAMPLE
        assert placement_problems(client, "cities") == []  # every replica Active, balanced

    # restore.yml silenced the replica alerts of its work in the lab's Alertmanager, then ended it.
    restore_silences = [s for s in monitoring_get(f"https://{MONITORING}:9093/api/v2/silences")
                        if s["createdBy"] == "qdrant-ops" and "restore.yml" in s["comment"]]  # fmt: skip
    assert restore_silences and all(s["status"]["state"] == "expired" for s in restore_silences)

    down = list(QDRANT_HOSTS)[-1]
    password = (INVENTORY / ".secrets/lab/monitoring_web_password").read_text().strip()
    manager = silences.Alertmanager(
        f"https://{MONITORING}:9093", "monitoring", password, str(TLS_DIR / "ca.crt")
    )
    planned = silences.planned_work(manager, "lab", comment="lab drill: planned work", duration=600)
    # As a rebalance's silence: a node that stops meanwhile must still page.
    with (
        timed(phases, f"QdrantNodeDown firing after stopping {down}, under a planned-work silence"),
        planned as silence_id,
    ):
        assert silence_id
        docker_exec(down, "systemctl", "stop", "qdrant")
        wait_for(lambda: active_alerts("QdrantNodeDown"), "QdrantNodeDown firing in Alertmanager", 120)
        assert all(alert["status"]["state"] == "active" for alert in active_alerts("QdrantNodeDown"))
    with timed(phases, "QdrantNodeDown resolved after starting it"):
        docker_exec(down, "systemctl", "start", "qdrant")
        wait_for(lambda: not active_alerts("QdrantNodeDown"), "QdrantNodeDown resolved", 240)
        wait_for(lambda: all_active(client), "every replica Active again", 300)

    version = client.version()
    stop = tmp_path / "stop"
    args = argparse.Namespace(collection="drill_writes", acked=str(tmp_path / "acked.json"),
                              stop_file=str(stop), max_seconds=1800, max_points=500_000)  # fmt: skip
    writer = threading.Thread(target=rolling_writer.write, args=(client, args))
    with timed(phases, "rolling re-install of the same version under a writer"):
        writer.start()
        try:
            for host in QDRANT_HOSTS:  # the upgrade path copies the binary again and restarts
                docker_exec(host, "rm", "-f", f"/opt/qdrant/versions/{version}/qdrant")
            ansible("playbooks/rolling_upgrade.yml", "-e", f"qdrant_target_version={version}")
        finally:
            stop.touch()
            writer.join(timeout=120)
    assert rolling_writer.verify(client, args) == 0, "acknowledged writes were lost"


def restart_window(host: str, unit: str = "qdrant") -> tuple[int, int]:
    """When the unit last stopped and last became active again, in microseconds of the kernel's
    monotonic clock (the lab's containers share it, so hosts compare)."""
    shown = subprocess.run(["docker", "exec", host, "systemctl", "show", "-p", "ActiveExitTimestampMonotonic",
                            "-p", "ActiveEnterTimestampMonotonic", unit],
                           check=True, capture_output=True, text=True, timeout=60)  # fmt: skip
    # systemctl prints the properties in its own order, not the asked one: read them by name.
    values = dict(line.split("=", 1) for line in shown.stdout.split())
    return int(values["ActiveExitTimestampMonotonic"]), int(values["ActiveEnterTimestampMonotonic"])


def test_a_restart_left_pending_is_done_by_the_next_run(lab):
    """A run that ends between a config change and the rolling restart (here by its tags; a failed
    step leaves the same state: the mark is written in the role's `always`) leaves the restart
    marked on every node; the next run, which changes nothing else, restarts them one at a time.
    With the mark only in memory (before issue 34), that run saw no change and restarted nothing."""
    client, phases = lab
    marker = "/run/qdrant-ops-restart-pending"
    try:
        with timed(phases, "config changed, run ended before the restart; the next run restarts"):
            before = {host: restart_window(host) for host in QDRANT_HOSTS}
            ansible("playbooks/qdrant.yml", "--tags", "qdrant_configure", "-e", "qdrant_log_level=DEBUG")
            assert {host: restart_window(host) for host in QDRANT_HOSTS} == before, "a node restarted early"
            for host in QDRANT_HOSTS:
                docker_exec(host, "test", "-e", marker)  # the pending restart is kept on the host
            ansible("playbooks/qdrant.yml", "-e", "qdrant_log_level=DEBUG")
            after = {host: restart_window(host) for host in QDRANT_HOSTS}
            assert all(after[host][1] > before[host][1] for host in QDRANT_HOSTS), f"not restarted: {after}"
            for host in QDRANT_HOSTS:
                assert (
                    subprocess.run(["docker", "exec", host, "test", "-e", marker], timeout=60).returncode == 1
                )
            wait_for(lambda: all_active(client), "every replica Active", 300)
    finally:
        ansible("playbooks/qdrant.yml")  # back to the inventory's log level (another rolling restart)


def test_certificate_renewal_drill(lab, tmp_path):
    client, phases = lab
    with timed(phases, "certificate renewal under a writer (near-expiry certificates in place first)"):
        renewal_drill(client, tmp_path)


def renewal_drill(client: ClusterClient, tmp_path: Path) -> None:
    now = time.time()
    ca_pem, ca_key = (TLS_DIR / "ca.crt").read_text(), (TLS_DIR / "ca.key").read_text()
    for host in QDRANT_HOSTS:
        cert = TLS_DIR / f"{host}.crt"
        cert.write_text(reissue(cert.read_text(), ca_pem, ca_key, days=10))
    # A renewal window of 5 days leaves them as they are: the nodes now serve certificates 10 days
    # from their expiry, as a cluster does 10 days before it would go dark.
    ansible("playbooks/qdrant.yml", "-e", "qdrant_tls_renew_days=5")
    for facts in QDRANT_HOSTS.values():
        expires = served_certificate(facts["ansible_host"], 6333).not_valid_after_utc.timestamp()
        assert expires < now + 11 * 86400
    before = {host: restart_window(host) for host in QDRANT_HOSTS}

    stop = tmp_path / "stop-renewal"
    args = argparse.Namespace(collection="renewal_writes", acked=str(tmp_path / "renewal-acked.json"),
                              stop_file=str(stop), max_seconds=1800, max_points=500_000)  # fmt: skip
    writer = threading.Thread(target=rolling_writer.write, args=(client, args))
    writer.start()
    try:
        ansible("playbooks/qdrant.yml")  # the default renewal window, 30 days
    finally:
        stop.touch()
        writer.join(timeout=120)
    for host, facts in QDRANT_HOSTS.items():
        served = served_certificate(facts["ansible_host"], 6333)
        assert served.not_valid_after_utc.timestamp() > now + 800 * 86400, (
            f"{host} still serves the old certificate"
        )
    after = {host: restart_window(host) for host in QDRANT_HOSTS}
    assert all(after[host][1] > before[host][1] for host in QDRANT_HOSTS), (
        f"not every node restarted: {after}"
    )
    # One node at a time: each node was up again before the next one stopped (the health gate waited
    # in between), so the down windows never overlap.
    windows = sorted(after.values())
    assert all(stopped < started for stopped, started in windows), windows
    print("renewal restarts, seconds (stopped, started):", [(s / 1e6, e / 1e6) for s, e in windows])
    for (_stopped, back), (next_stopped, _next_back) in itertools.pairwise(windows):
        assert back < next_stopped, f"two nodes were down at once: {windows}"
    assert rolling_writer.verify(client, args) == 0, "acknowledged writes were lost"
    assert all_active(client), "a replica is not Active after the renewal"
    recap = ansible("playbooks/qdrant.yml").split("PLAY RECAP")[-1]
    assert not re.search(r"changed=[1-9]", recap), (
        f"a second run after the renewal changed something: {recap}"
    )


def test_monitoring_certificate_renewal(lab):
    """Prometheus and Alertmanager serve HTTPS with a certificate from the cluster CA; one near its
    end is re-issued by monitoring.yml and served at once, with neither service restarted."""
    _client, phases = lab
    monitoring_host = next(iter(HOSTS["monitoring"]["hosts"]))
    units = ["prometheus", "prometheus-alertmanager"]
    with timed(phases, "monitoring certificate renewal (Prometheus, Alertmanager)"):
        now = time.time()
        cert = TLS_DIR / f"{monitoring_host}.crt"
        ca_pem, ca_key = (TLS_DIR / "ca.crt").read_text(), (TLS_DIR / "ca.key").read_text()
        cert.write_text(reissue(cert.read_text(), ca_pem, ca_key, days=10))
        ansible("playbooks/monitoring.yml", "-e", "qdrant_tls_renew_days=5")  # installed as it is
        for port in (9090, 9093):
            assert served_certificate(MONITORING, port).not_valid_after_utc.timestamp() < now + 11 * 86400
        before = {unit: restart_window(monitoring_host, unit) for unit in units}

        ansible("playbooks/monitoring.yml")  # the default renewal window, 30 days
        for port in (9090, 9093):
            served = served_certificate(MONITORING, port)
            assert served.not_valid_after_utc.timestamp() > now + 800 * 86400, (
                f"port {port} serves the old one"
            )
        assert {unit: restart_window(monitoring_host, unit) for unit in units} == before, "restarted"
        assert prometheus_values('up{job=~"prometheus|alertmanager"}') == [1.0, 1.0]
        # Its expiry reaches Prometheus through the monitoring host's expiry timer (normally daily).
        docker_exec(monitoring_host, "systemctl", "start", "qdrant-tls-expiry.service")
        expiry = 'qdrant_ops_tls_certificate_not_after_timestamp_seconds{path="/etc/prometheus/tls/cert.pem"}'
        wait_for(lambda: [v for v in prometheus_values(expiry) if v > now + 800 * 86400],
                 "the renewed monitoring certificate's expiry in Prometheus", 120)  # fmt: skip
        recap = ansible("playbooks/monitoring.yml").split("PLAY RECAP")[-1]
        assert not re.search(r"changed=[1-9]", recap), f"a second run changed something: {recap}"


def healed_without(client: ClusterClient, peer: int) -> bool:
    """The peer is gone and every collection is back at its factor, every replica Active."""
    if str(peer) in client.cluster_status()["peers"]:
        return False
    return all(placement_problems(client, name) == [] for name in client.collection_names())


def healer_journal(host: str) -> str:
    shown = subprocess.run(["docker", "exec", host, "journalctl", "-u", "qdrant-healer.service", "--no-pager",
                            "--since", "-15min"], capture_output=True, text=True, timeout=60)  # fmt: skip
    return shown.stdout


def test_self_healing_drill(lab, tmp_path):
    """Issue 36. Under a writer, one node stopped and its Qdrant storage deleted: with no command
    typed, the healer on the monitoring host (grace period 120 s in the lab) re-creates its
    replicas, waits until they are Active and removes the peer; QdrantNodeDown fires meanwhile. No
    acknowledged write is lost. The node then comes back empty through qdrant.yml as a new peer,
    QdrantNodeDown resolves and rebalance.yml spreads replicas onto it. Then two of three nodes
    stopped: the healer does nothing and says why (quorum), and QdrantHealerRefusing carries the
    runbook."""
    client, phases = lab
    monitoring_host = next(iter(HOSTS["monitoring"]["hosts"]))
    grace = yaml.safe_load((INVENTORY / "group_vars/all.yml").read_text())[
        "qdrant_backup_healer_grace_seconds"
    ]
    lost = list(QDRANT_HOSTS)[-1]
    lost_url = f"https://{QDRANT_HOSTS[lost]['ansible_host']}:6333"
    dead_peer = client.probe_peer_id(lost_url)
    assert dead_peer is not None
    stop = tmp_path / "stop"
    args = argparse.Namespace(collection="healer_writes", acked=str(tmp_path / "acked.json"), pause=0.1,
                              stop_file=str(stop), max_seconds=1800, max_points=1_000_000)  # fmt: skip
    writer = threading.Thread(target=rolling_writer.write, args=(client, args))
    writer.start()
    try:
        wait_for((tmp_path / "acked.json").exists, "the writer's first acknowledged batch", 60)
        stopped = time.monotonic()
        docker_exec(lost, "systemctl", "stop", "qdrant")
        docker_exec(
            lost, "find", "/var/lib/qdrant/storage", "/var/lib/qdrant/snapshots", "-mindepth", "1", "-delete"
        )
        wait_for(lambda: active_alerts("QdrantNodeDown"), "QdrantNodeDown firing", 180)
        back = "every shard back at its factor without the lost peer"
        wait_for(lambda: healed_without(client, dead_peer), back, grace + 1200, interval=5)
        phases[f"self-healing: node stopped and wiped -> full replication, no command (grace {grace} s)"] = (
            time.monotonic() - stopped
        )
    finally:
        stop.touch()
        writer.join(timeout=120)
    assert rolling_writer.verify(client, args) == 0, "acknowledged writes were lost"
    assert client.count_points("cities") == SAMPLE
    # The run writes its metrics after the removal the wait above saw; Prometheus scrapes them next.
    wait_for(
        lambda: prometheus_values("qdrant_ops_healer_actions_total") == [1.0], "the action in Prometheus", 60
    )
    journal = healer_journal(monitoring_host)
    assert f"peer {dead_peer} removed" in journal and "healer: acting:" in journal, journal[-3000:]

    with timed(phases, "the lost node back empty as a new peer (qdrant.yml), rebalance.yml"):
        ansible("playbooks/qdrant.yml")
        new_peer = client.probe_peer_id(lost_url)
        assert new_peer not in (None, dead_peer)
        ansible("playbooks/rebalance.yml")
        wait_for(lambda: not active_alerts("QdrantNodeDown"), "QdrantNodeDown resolved", 300)
        assert placement_problems(client, "cities") == []
        assert any(r["peer_id"] == new_peer for r in shard_placement(client.collection_cluster("cities")))

    others = list(QDRANT_HOSTS)[1:]
    peers_before = set(client.cluster_status()["peers"])
    with timed(phases, "two of three nodes stopped: the healer refuses (quorum), with the runbook"):
        try:
            for host in others:
                docker_exec(host, "systemctl", "stop", "qdrant")
            quorum = 'qdrant_ops_healer_refusing{reason="quorum"}'
            wait_for(
                lambda: prometheus_values(quorum) == [1.0], "the quorum refusal in Prometheus", grace + 300
            )
            # Pending from the next rule evaluation after that scrape (it fires after its `for`).
            wait_for(quorum_alerts, "QdrantHealerRefusing (quorum) pending or firing", 120)
            assert "docs/runbooks.md" in quorum_alerts()[0]["annotations"]["runbook"]
            assert "refusing (quorum)" in healer_journal(monitoring_host)
            assert set(client.cluster_status()["peers"]) == peers_before  # nobody removed
        finally:
            for host in others:
                docker_exec(host, "systemctl", "start", "qdrant")
        wait_for(lambda: all_active(client), "every replica Active again", 600)


def quorum_alerts() -> list[dict]:
    alerts = monitoring_get(f"https://{MONITORING}:9090/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == "QdrantHealerRefusing"
            and a["labels"].get("reason") == "quorum"]  # fmt: skip


def test_upgrade_drill(qdrant_binary_next, lab, tmp_path):
    binary = qdrant_binary_next
    target = binary_version(binary)
    client, phases = lab
    before = {url: client.version(node=url) for url in client.urls}
    assert target not in before.values(), f"the lab already runs {target}: nothing to upgrade"

    stop = tmp_path / "stop"
    args = argparse.Namespace(collection="upgrade_writes", acked=str(tmp_path / "acked.json"),
                              stop_file=str(stop), max_seconds=1800, max_points=500_000)  # fmt: skip
    writer = threading.Thread(target=rolling_writer.write, args=(client, args))
    with timed(phases, f"rolling upgrade {sorted(set(before.values()))} -> {target} under a writer"):
        writer.start()
        try:
            ansible("playbooks/rolling_upgrade.yml", "-e", f"qdrant_target_version={target}",
                    "-e", f"qdrant_binary_src={binary}")  # fmt: skip
        finally:
            stop.touch()
            writer.join(timeout=120)
    assert rolling_writer.verify(client, args) == 0, "acknowledged writes were lost"
    assert json.loads(Path(args.acked).read_text())["acked"] > 0, "the writer wrote nothing"
    assert {url: client.version(node=url) for url in client.urls} == dict.fromkeys(client.urls, target)
    assert all_active(client), "a replica is not Active after the upgrade"
    assert placement_problems(client, "upgrade_writes") == []
