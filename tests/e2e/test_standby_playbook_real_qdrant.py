"""playbooks/standby.yml and promote_standby.yml with real Qdrant (QDRANT_BINARY) and a real systemd
host: two 3-node clusters on loopback addresses, and the standby's sync host a systemd container on
the host's network (it reaches both clusters as a standby host reaches the primary).

standby.yml in check mode writes nothing; then it marks the standby, creates the primary's
collection and installs qdrant-standby-sync.timer, and a second run changes nothing. The timer's
syncs bring the standby to the primary's exact points and write the lag metrics. promote_standby.yml
stops the timer, promotes and reports the counts; a second run changes nothing; a sync started by
hand afterwards refuses the promoted standby."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import collections, standby
from tests.support.containers import SystemdContainer
from tests.support.e2e_data import fingerprints, upsert
from tests.support.playbook import ROOT, run_playbook
from tests.support.qdrant_cluster import LocalQdrantCluster

pytestmark = [pytest.mark.qdrant, pytest.mark.docker, pytest.mark.slow]
SPEC = {"name": "docs", "vectors": {"size": 64, "distance": "Cosine"}, "shard_number": 3,
        "replication_factor": 2, "payload_indexes": {"city": "keyword"}}  # fmt: skip
KEYS = {"primary": "playbook-primary-key", "standby": "playbook-standby-key"}
METRICS = "/var/lib/prometheus/node-exporter/qdrant_ops_standby.prom"


@pytest.fixture(scope="module")
def setup(qdrant_binary, host_image, tmp_path_factory):
    if not (ROOT / ".cache/wheelhouse.tar").is_file():
        pytest.fail("no wheelhouse for the sync host: run `make wheelhouse` (make test does)")
    base = tmp_path_factory.mktemp("standby-playbook")
    with (
        LocalQdrantCluster(qdrant_binary, base / "primary", size=3, api_key=KEYS["primary"]) as primary,
        LocalQdrantCluster(qdrant_binary, base / "standby", size=3, api_key=KEYS["standby"]) as secondary,
        ClusterClient(primary.urls, KEYS["primary"], retries=5, backoff=0.3, timeout=120) as pc,
        ClusterClient(secondary.urls, KEYS["standby"], retries=5, backoff=0.3, timeout=120) as sc,
        SystemdContainer(host_image, network="host") as host,
    ):
        assert host.wait_for_boot() in ("running", "degraded")
        collections.ensure_collection(pc, SPEC)
        upsert(pc, range(5000), seed=1)
        inventory = {"all": {"children": {"qdrant": {"hosts": {"dr-sync": {
            "ansible_connection": "community.docker.docker", "ansible_host": host.name,
            "ansible_python_interpreter": "/usr/bin/python3", "qdrant_cluster_name": "dr"}}}}}}  # fmt: skip
        (base / "hosts.yml").write_text(yaml.safe_dump(inventory))
        variables = {
            "standby_primary_urls": primary.urls, "standby_primary_api_key": KEYS["primary"],
            "standby_urls": secondary.urls, "standby_api_key": KEYS["standby"],
            "qdrant_backup_standby_on_calendar": "*:*:0/5",  # every 5 s: the test waits for real syncs
        }  # fmt: skip
        (base / "vars.json").write_text(json.dumps(variables))
        (base / "vars.json").chmod(0o600)
        yield pc, sc, host, base


def play(setup, playbook: str, *extra: str):
    _pc, _sc, _host, base = setup
    result, report = run_playbook(
        playbook, "-i", str(base / "hosts.yml"), "-e", f"@{base / 'vars.json'}", *extra, timeout=900
    )
    output = result.stdout + result.stderr
    for key in KEYS.values():
        assert key not in output, "an API key reached the play's output"
    assert result.returncode == 0, output[-4000:]
    return report


def changed(report: dict) -> int:
    return sum(stats["changed"] for stats in report["stats"].values())


def task_result(report: dict, name: str) -> dict:
    for one_play in report["plays"]:
        for task in one_play["tasks"]:
            if task["task"]["name"] == name:
                return next(iter(task["hosts"].values()))
    raise AssertionError(f"no task {name!r} in the report")


def synced_after(sc: ClusterClient, moment: float, timeout: float = 120) -> dict:
    """The marker's record of `docs` once a sync began after `moment` (the timer's, not ours)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = (standby.read_marker(sc) or {}).get("collections", {}).get("docs")
        if state and state["reflects"] > moment:
            return state
        time.sleep(1)
    raise AssertionError(f"no sync of docs began after {moment} within {timeout} s")


def test_standby_playbook_syncs_on_its_timer_then_promote_playbook_stops_it(setup):
    pc, sc, host, _base = setup

    report = play(setup, "playbooks/standby.yml", "--check")
    assert task_result(report, "Mark the standby and create the primary's collections")["created"] == ["docs"]
    assert sc.collection_names() == [], "check mode wrote to the standby"

    report = play(setup, "playbooks/standby.yml")
    init = task_result(report, "Mark the standby and create the primary's collections")
    assert init["marker_created"] is True and init["created"] == ["docs"]
    assert host.exec("systemctl", "is-enabled", "qdrant-standby-sync.timer").stdout.strip() == "enabled"
    mode = host.exec("stat", "-c", "%a %U", "/etc/qdrant-ops/standby/primary-api-key").stdout.split()
    assert mode == ["600", "root"]
    assert changed(play(setup, "playbooks/standby.yml")) == 0, "a second run changed something"

    upsert(pc, range(5000, 8000), seed=2)  # new points
    upsert(pc, range(0, 1000), seed=3)  # updated points
    written = time.time()
    state = synced_after(sc, written)
    assert state["primary_points"] == 8000
    assert fingerprints(sc) == fingerprints(pc), "the standby differs from the primary after a sync"
    metrics = host.exec("cat", METRICS).stdout
    assert 'qdrant_ops_standby_synced_timestamp_seconds{cluster="dr",collection="docs"}' in metrics
    assert 'qdrant_ops_standby_primary_points{cluster="dr",collection="docs"} 8000.0' in metrics
    run_state = host.exec("systemctl", "show", "qdrant-standby-sync.service", "-p", "Result").stdout
    assert run_state.strip() == "Result=success"

    report = play(setup, "playbooks/promote_standby.yml")
    promoted = task_result(report, "Mark the standby and compare counts")
    row = promoted["collections"]["docs"]
    assert row["standby_points"] == row["primary_points_at_sync"] == row["primary_points_now"] == 8000
    assert row["behind_last_sync"] is False and 0 <= row["lag_seconds"] < 120
    assert standby.read_marker(sc)["role"] == "promoted"
    assert host.exec("systemctl", "is-active", "qdrant-standby-sync.timer").stdout.strip() == "inactive"
    assert host.exec("systemctl", "is-enabled", "qdrant-standby-sync.timer").stdout.strip() == "disabled"

    again = play(setup, "playbooks/promote_standby.yml")
    assert changed(again) == 0 and task_result(again, "Mark the standby and compare counts")["already_promoted"]

    upsert(sc, range(8000, 8100), seed=4)  # the promoted standby takes writes of its own
    manual = host.exec("systemctl", "start", "qdrant-standby-sync.service", timeout=300)
    assert manual.returncode != 0, "a sync ran against the promoted standby"
    journal = host.exec("journalctl", "-u", "qdrant-standby-sync.service", "--no-pager", "-n", "20").stdout
    assert "was promoted" in journal and sc.count_points("docs") == 8100
