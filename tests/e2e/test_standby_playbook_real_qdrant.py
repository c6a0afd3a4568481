"""playbooks/standby.yml and promote_standby.yml with real Qdrant (QDRANT_BINARY) and a real systemd
host: two 3-node clusters on loopback addresses, and the standby's sync host a systemd container on
the host's network (it reaches both clusters as a standby host reaches the primary).

standby.yml in check mode writes nothing; then it marks the standby, creates the primary's
collection and installs qdrant-standby-sync.timer, and a second run changes nothing. The timer's
syncs (every 5 s first) bring the standby to the primary's exact points and write the lag metrics.
Then, at the default interval (every 5 minutes) under a steady writer, the primary is killed as the
next sync starts (the worst moment: the recovery point is the whole interval and more), and
promote_standby.yml stops the timer, waits for that sync to give up, promotes and reports the
counts: every write acknowledged before the last completed sync's primary time is on the standby,
every replica is Active and answers. A second run changes nothing; a sync started by hand
afterwards refuses the promoted standby."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
import yaml

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import collections, standby_identity
from qdrant_ops.cluster.health import shard_placement
from tests.support.containers import SystemdContainer
from tests.support.e2e_data import fingerprints, replica_manifests, upsert
from tests.support.playbook import ROOT, run_playbook
from tests.support.qdrant_cluster import LocalQdrantCluster

pytestmark = [pytest.mark.qdrant, pytest.mark.docker, pytest.mark.slow]
SPEC = {"name": "docs", "vectors": {"size": 64, "distance": "Cosine"}, "shard_number": 3,
        "replication_factor": 2, "payload_indexes": {"city": "keyword"}}  # fmt: skip
KEYS = {"primary": "playbook-primary-key", "standby": "playbook-standby-key"}
METRICS = "/var/lib/prometheus/node-exporter/qdrant_ops_standby.prom"
EVERY_5_SECONDS = ("-e", "qdrant_backup_standby_on_calendar=*:*:0/5")  # the test waits for real syncs
INTERVAL = 300  # the role's default schedule, *:0/5


@pytest.fixture(scope="module")
def setup(qdrant_binary, host_image, tmp_path_factory):
    if not (ROOT / ".cache/wheelhouse.tar").is_file():
        pytest.fail("no wheelhouse for the sync host: run `make wheelhouse` (make test does)")
    base = tmp_path_factory.mktemp("standby-playbook")
    with (
        LocalQdrantCluster(
            qdrant_binary, base / "primary", size=3, api_key=KEYS["primary"], jwt_rbac=True
        ) as primary,
        LocalQdrantCluster(qdrant_binary, base / "standby", size=3, api_key=KEYS["standby"]) as secondary,
        ClusterClient(primary.urls, KEYS["primary"], retries=5, backoff=0.3, timeout=120) as pc,
        ClusterClient(secondary.urls, KEYS["standby"], retries=5, backoff=0.3, timeout=120) as sc,
        SystemdContainer(host_image, network="host") as host,
    ):
        assert host.wait_for_boot() in ("running", "degraded")
        collections.ensure_collection(pc, SPEC)
        upsert(pc, range(5000), seed=1)
        inventory = {
            "all": {
                "children": {
                    "qdrant": {
                        "hosts": {
                            "dr-sync": {
                                "ansible_connection": "community.docker.docker",
                                "ansible_host": host.name,
                                "ansible_python_interpreter": "/usr/bin/python3",
                                "qdrant_cluster_name": "dr",
                                "qdrant_tls_enabled": False,
                            }
                        }
                    }
                }
            }
        }  # fmt: skip  (both local clusters serve plain HTTP)
        (base / "hosts.yml").write_text(yaml.safe_dump(inventory))
        variables = {
            "standby_primary_urls": primary.urls, "standby_primary_api_key": KEYS["primary"],
            "standby_urls": secondary.urls, "standby_api_key": KEYS["standby"],
        }  # fmt: skip
        (base / "vars.json").write_text(json.dumps(variables))
        (base / "vars.json").chmod(0o600)
        yield SimpleNamespace(pc=pc, sc=sc, host=host, base=base, primary=primary, standby=secondary)


def play(setup, playbook: str, *extra: str):
    inventory, variables = str(setup.base / "hosts.yml"), f"@{setup.base / 'vars.json'}"
    result, report = run_playbook(playbook, "-i", inventory, "-e", variables, *extra, timeout=900)
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
        state = (standby_identity.read_marker(sc) or {}).get("collections", {}).get("docs")
        if state and state["reflects"] > moment:
            return state
        time.sleep(1)
    raise AssertionError(f"no sync of docs began after {moment} within {timeout} s")


def test_standby_playbook_syncs_on_its_timer_then_promote_playbook_stops_it(setup):
    pc, sc, host = setup.pc, setup.sc, setup.host

    report = play(setup, "playbooks/standby.yml", "--check", *EVERY_5_SECONDS)
    assert task_result(report, "Mark the standby and create the primary's collections")["created"] == ["docs"]
    assert sc.collection_names() == [], "check mode wrote to the standby"

    report = play(setup, "playbooks/standby.yml", *EVERY_5_SECONDS)
    init = task_result(report, "Mark the standby and create the primary's collections")
    assert init["marker_created"] is True and init["created"] == ["docs"]
    assert host.exec("systemctl", "is-enabled", "qdrant-standby-sync.timer").stdout.strip() == "enabled"
    mode = host.exec("stat", "-c", "%a %U", "/etc/qdrant-ops/standby/primary-api-key").stdout.split()
    assert mode == ["600", "root"]
    # The sync host holds a token scoped to docs, never the primary's key.
    token = host.exec("cat", "/etc/qdrant-ops/standby/primary-api-key").stdout.strip()
    assert (
        token == standby_identity.scoped_token(KEYS["primary"], ["docs"], "standby-dr")
        and KEYS["primary"] not in token
    )
    second = play(setup, "playbooks/standby.yml", *EVERY_5_SECONDS)
    assert changed(second) == 0, "a second run changed something"

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

    # The default schedule, a steady writer, and the primary killed as the next sync starts.
    assert changed(play(setup, "playbooks/standby.yml")) > 0  # the timer's schedule changed
    timer = host.exec("systemctl", "show", "qdrant-standby-sync.timer", "-p", "TimersCalendar").stdout
    assert "*-*-* *:00/5:00" in timer, timer
    acked, killed_at, last = worst_case_primary_loss(setup, start=8000)

    report = play(setup, "playbooks/promote_standby.yml", "-e", "promote_sync_wait=900")
    promoted = task_result(report, "Mark the standby promoted and compare counts")
    row = promoted["collections"]["docs"]
    assert row["primary_points_now"] is None, "the primary is gone but answered"
    present = set(fingerprints(sc))
    before = [i for at, ids in acked if at < last["reflects"] for i in ids]
    assert before and all(i in present for i in before), "a write acknowledged before the last sync is lost"
    assert row["standby_points"] == len(present) >= last["primary_points"] and not row["behind_last_sync"]
    lost = sum(1 for _at, ids in acked for i in ids if i not in present)
    recovery_point = killed_at - last["reflects"]
    print(f"\ndefault interval: {sum(len(ids) for _at, ids in acked)} writes acknowledged, {lost} lost; "
          f"recovery point (kill - last completed sync's primary time) {recovery_point:.1f} s; "
          f"lag at promotion {row['lag_seconds']} s")  # fmt: skip
    assert recovery_point <= INTERVAL + 60, "the recovery point exceeds the interval plus a sync"
    states = {r["state"] for r in shard_placement(sc.collection_cluster("docs"))}
    assert states == {"Active"}, f"standby replicas after the primary died mid-sync: {states}"
    # The sync cut short may have updated a shard's first replica only: promotion copied it to the
    # others, so every replica of a shard holds the same segments and every read the same answer.
    manifests = replica_manifests(sc, setup.standby.urls)
    assert all(len(set(by_node.values())) == 1 for by_node in manifests.values()), manifests
    assert len({sc.count_points("docs") for _ in range(20)}) == 1
    query = {"query": [0.5] * 64, "limit": 5}
    assert len(sc.request("POST", "/collections/docs/points/query", json=query)["points"]) == 5
    assert standby_identity.read_marker(sc)["role"] == "promoted"
    assert host.exec("systemctl", "is-active", "qdrant-standby-sync.timer").stdout.strip() == "inactive"
    assert host.exec("systemctl", "is-enabled", "qdrant-standby-sync.timer").stdout.strip() == "disabled"
    # No lag metric left behind to keep QdrantStandbyLagging firing for ever.
    assert host.exec("test", "-e", METRICS).returncode == 1, "the standby's lag metrics outlive the promotion"

    again = play(setup, "playbooks/promote_standby.yml")
    assert task_result(again, "Mark the standby promoted and compare counts")["already_promoted"]
    assert changed(again) == 0

    assert_a_sync_refuses_the_promoted_standby(setup)


def assert_a_sync_refuses_the_promoted_standby(setup) -> None:
    sc, host = setup.sc, setup.host
    upsert(sc, range(10**7, 10**7 + 100), seed=4)  # the promoted standby takes writes of its own
    count = sc.count_points("docs")
    manual = host.exec("systemctl", "start", "qdrant-standby-sync.service", timeout=300)
    assert manual.returncode != 0, "a sync ran against the promoted standby"
    assert sc.count_points("docs") == count
    for _ in range(20):  # bounded: journald may write the unit's last lines a moment later
        journal = host.exec("journalctl", "-u", "qdrant-standby-sync.service", "--no-pager", "-n", "5").stdout
        if "was promoted" in journal:
            break
        time.sleep(0.5)
    assert "was promoted" in journal, journal


def worst_case_primary_loss(setup, start: int):
    """A writer of about 200 points/s on the primary; once a sync at the default schedule has
    completed, every primary node is killed (SIGKILL) as the next one starts. Returns the
    acknowledged batches (time, ids), the kill time and the last completed sync's marker record."""
    pc, sc, host, primary = setup.pc, setup.sc, setup.host, setup.primary
    stop, acked = threading.Event(), []

    def writer() -> None:
        for batch in range(20_000):  # bounded; ends when the primary is gone
            if stop.is_set():
                return
            ids = range(start + batch * 100, start + (batch + 1) * 100)
            try:
                upsert(pc, ids, seed=batch + 10)
            except Exception:
                return
            acked.append((time.time(), ids))
            time.sleep(0.5)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        last = synced_after(sc, time.time(), timeout=INTERVAL + 60)  # the first sync on the schedule
        deadline = time.monotonic() + INTERVAL + 60
        while time.monotonic() < deadline:  # the next one starts
            state = host.exec("systemctl", "show", "qdrant-standby-sync.service", "-p", "ActiveState").stdout
            if state.strip() == "ActiveState=activating":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the timer started no sync within the interval")
        last = (standby_identity.read_marker(sc) or {})["collections"]["docs"]  # the newest completed one
        killed_at = time.time()
        for node in primary.nodes:  # the region is gone: no clean shutdown
            node.process.kill()
    finally:
        stop.set()
        thread.join(timeout=300)
    return acked, killed_at, last
