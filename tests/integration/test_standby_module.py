"""The qdrant_standby module run by ansible-playbook against two REST stubs (a primary and an empty
standby): check mode writes nothing, init marks and creates once, a cluster in use is refused with
nothing written, promotion reports counts and happens once. The syncs and both playbooks against
real Qdrant: tests/e2e/test_standby*_real_qdrant.py."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
import yaml

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import standby_identity
from tests.support.playbook import run_module_task, run_playbook
from tests.support.qdrant_stub import QdrantStubServer, populate_demo, share_cluster

KEY = "stub-secret-key"


@pytest.fixture
def clusters():
    with QdrantStubServer(3, KEY) as primary, QdrantStubServer(3, KEY) as target:
        target.state.peer_ids = [2000, 2001, 2002]  # another cluster: its own Raft peer ids
        target.state.me = 2000
        populate_demo(primary.state)
        yield primary, target


def task(clusters, **options) -> dict:
    primary, target = clusters
    connection = {"url": [target.url], "api_key": KEY}
    return {**connection, "primary_url": [primary.url], "primary_api_key": KEY, **options}


def test_init_check_mode_then_once(clusters, tmp_path):
    primary, target = clusters
    checked = run_module_task(tmp_path, "qdrant_standby", task(clusters), "--check")
    assert checked["changed"] and checked["marker_created"] and checked["created"] == ["cities", "places"]
    assert target.state.points == {}, "check mode wrote to the standby"

    done = run_module_task(tmp_path, "qdrant_standby", task(clusters))
    assert done["changed"] and done["created"] == ["cities", "places"]
    assert target.state.info("cities")["config"]["params"]["shard_number"] == 6
    with ClusterClient([target.url], KEY) as client:
        assert standby_identity.read_marker(client)["role"] == "standby"
    again = run_module_task(tmp_path, "qdrant_standby", task(clusters))
    assert not again["changed"] and again["created"] == [] and again["marker_created"] is False

    primary.state.create("later", {"vectors": {"size": 4, "distance": "Dot"}})  # made on the primary since
    added = run_module_task(tmp_path, "qdrant_standby", task(clusters))
    assert added["changed"] and added["created"] == ["later"]


def run_failing(tmp_path, options: dict) -> str:
    playbook = tmp_path / "standby.yml"
    task = {"qdrant_ops.qdrant.qdrant_standby": options}
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    python = "ansible_python_interpreter={{ ansible_playbook_python }}"
    result, report = run_playbook(playbook, "-i", "localhost,", "-c", "local", "-e", python)
    assert result.returncode != 0
    assert KEY not in result.stdout + result.stderr
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]


def test_a_cluster_in_use_is_refused_with_nothing_written(clusters, tmp_path):
    _primary, target = clusters
    populate_demo(target.state)  # the "standby" given is a cluster with data: e.g. the primary itself
    message = run_failing(tmp_path, task(clusters))
    assert "already has cities, places and no standby marker" in message
    assert standby_identity.MARKER not in target.state.points


def test_a_missing_primary_url_and_collection_are_named(clusters, tmp_path):
    _primary, target = clusters
    assert "state=standby needs primary_url" in run_failing(tmp_path, task(clusters, primary_url=[]))
    message = run_failing(tmp_path, task(clusters, collections=["nope"]))
    assert "the primary has no collection nope" in message and target.state.points == {}


def test_promote_reconciles_replicas_reports_counts_once_and_check_mode_leaves_the_marker(tmp_path):
    with ExitStack() as stack:  # a primary, and a standby of three nodes answering as their peers
        primary = stack.enter_context(QdrantStubServer(3, KEY))
        primary.state.peer_ids, primary.state.me = [3000, 3001, 3002], 3000  # its own Raft peer ids
        nodes = [stack.enter_context(QdrantStubServer(3, "standby-key", me=i)) for i in range(3)]
        share_cluster(nodes)
        populate_demo(primary.state)
        primary.state.create("docs", {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3,
                                      "replication_factor": 2})  # fmt: skip
        promote = {"url": [n.url for n in nodes], "api_key": "standby-key", "primary_url": [primary.url],
                   "primary_api_key": KEY, "state": "promoted"}  # fmt: skip
        run_module_task(tmp_path, "qdrant_standby", {**promote, "state": "standby"})
        with ClusterClient([nodes[0].url], "standby-key") as client:  # as a sync leaves it
            marker = standby_identity.read_marker(client)
            marker["collections"] = {"cities": {"reflects": 1000.0, "primary_points": 10}}
            standby_identity.write_marker(client, marker)
            for i in range(8):  # 8 here, 10 on the primary then
                nodes[0].state.points["cities"][i] = primary.state.points["cities"][i]

        checked = run_module_task(tmp_path, "qdrant_standby", promote, "--check")
        row = checked["collections"]["cities"]
        assert checked["changed"] and row["standby_points"] == 8 and row["primary_points_at_sync"] == 10
        assert row["primary_points_now"] == 10 and row["behind_last_sync"] is True
        assert nodes[0].state.partial_recoveries == [], "check mode copied replicas"
        with ClusterClient([nodes[0].url], "standby-key") as client:
            assert standby_identity.read_marker(client)["role"] == "standby", "check mode promoted"

        done = run_module_task(tmp_path, "qdrant_standby", {**promote, "primary_url": []})
        assert done["changed"] and done["collections"]["cities"]["primary_points_now"] is None
        # Each docs shard's second replica was brought to its first, with the standby's own key
        # (cities and places have one replica a shard: nothing to do).
        recoveries = [r for n in nodes for r in n.state.partial_recoveries]
        assert sorted(shard for shard, _body in recoveries) == [0, 1, 2]
        assert {body["api_key"] for _shard, body in recoveries} == {"standby-key"}
        assert {body["peer_url"] for _shard, body in recoveries} <= {n.url for n in nodes}
        again = run_module_task(tmp_path, "qdrant_standby", promote)
        assert not again["changed"] and again["already_promoted"]
        assert json.dumps(again).count(KEY) == 0


def test_standby_playbook_refuses_a_missing_primary_or_itself_before_writing(clusters, tmp_path):
    _primary, target = clusters
    port = int(target.url.rsplit(":", 1)[1])
    host = {
        "ansible_host": "127.0.0.1",
        "qdrant_http_port": port,
        "qdrant_api_key": KEY,
        "qdrant_tls_enabled": False,
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"qdrant": {"hosts": {"s1": host}}}}}))

    def play(*extra: str) -> str:
        plain = {"ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1"}
        result, _ = run_playbook("playbooks/standby.yml", "-i", str(inventory), *extra, env=plain)
        assert result.returncode != 0 and KEY not in result.stdout + result.stderr
        return " ".join(result.stdout.split())

    assert "standby.yml runs with the standby's inventory and needs the primary" in play()
    itself = json.dumps({"standby_primary_urls": [target.url], "standby_primary_api_key": KEY})
    assert f"none of them a node of this inventory: {target.url}" in play("-e", itself)
    assert target.state.collections == {} and target.state.points == {}
