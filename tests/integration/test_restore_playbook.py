"""playbooks/restore.yml over three stub nodes of one cluster (local connection, the project venv
standing in for the nodes' /opt/qdrant-ops/venv) and moto: check mode plans and changes nothing, a
restore after every collection was deleted recovers each shard once, and a damaged object leaves
nothing restored, whether a node or this host fetched it."""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest

from qdrant_ops.cli import main
from tests.support.backup_fixtures import corrupt_one_object
from tests.support.playbook import backup_inventory, run_playbook

BACKUP_ID = "20261124T000000Z"

S3_SECRET = "s3-secret-for-the-restore-playbook"


@pytest.fixture
def cluster(stub_nodes, s3_server, s3_bucket, tmp_path):
    s3 = {"bucket": s3_bucket, "endpoint_url": s3_server.endpoint_url, "region": "us-east-1",
          "access_key": "testing", "secret_key": S3_SECRET, "max_attempts": 1}  # fmt: skip
    snapshots = {"qdrant_snapshots_path": str(tmp_path / "snapshots{}")}
    inventory = backup_inventory(
        tmp_path, stub_nodes, s3, lambda i: {k: v.format(i) for k, v in snapshots.items()}
    )
    for i in range(len(stub_nodes)):
        config = tmp_path / f"etc{i}/backup.yml"
        assert main(["backup", "run", "--config", str(config), "--backup-id", BACKUP_ID]) == 0
    assert main(["backup", "seal", "--config", str(config)]) == 0  # the sealer's turn
    overrides = json.dumps({**inventory, "restore_nodes": [node.url for node in stub_nodes]})
    original = copy.deepcopy(stub_nodes[0].state.points)
    stub_nodes[0].state.collections.clear()  # shared by the three stub nodes
    stub_nodes[0].state.points.clear()
    stub_nodes[0].state.placement.clear()

    def play(*extra: str):
        result, _ = run_playbook(
            "playbooks/restore.yml", "-i", str(tmp_path / "hosts.yml"), "-e", overrides, *extra,
            env={"ANSIBLE_STDOUT_CALLBACK": "default"},
        )  # fmt: skip
        assert S3_SECRET not in result.stdout + result.stderr
        return result

    return play, original


def recovered(nodes) -> Counter:
    return Counter(
        (name, shard, priority) for node in nodes for name, shard, priority in node.state.recovered
    )


def test_check_mode_plans_and_changes_nothing(cluster, stub_nodes):
    play, _ = cluster
    result = play("--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "plan only (check mode): 9 snapshot(s)" in result.stdout, result.stdout[-3000:]
    assert not recovered(stub_nodes) and stub_nodes[0].state.collections == {}


def test_restore_every_collection_each_shard_once(cluster, stub_nodes, tmp_path):
    play, original = cluster
    result = play()
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"backup {BACKUP_ID} (format 4)" in result.stdout and "restored and verified" in result.stdout
    assert stub_nodes[0].state.points == original
    expected = {("cities", s, "no_sync") for s in range(6)} | {("places", s, "no_sync") for s in range(3)}
    assert recovered(stub_nodes) == Counter(expected)
    assert list((tmp_path / "snapshots0").rglob("*.snapshot")) == []  # the first node staged, then cleaned


@pytest.mark.parametrize(
    ("fetch_by", "found_by"),
    [("nodes", "Snapshot checksum mismatch"), ("restorer", "checksum mismatch for s3://")],
)
def test_a_damaged_object_leaves_nothing_restored(
    fetch_by, found_by, cluster, stub_nodes, s3_client, s3_bucket, tmp_path
):
    """Found by the node that fetched it (Qdrant's checksum check) or by this host's download."""
    play, _ = cluster
    corrupt_one_object(s3_client, s3_bucket)
    result = play("-e", f"restore_fetch_by={fetch_by}")
    assert result.returncode != 0
    assert found_by in result.stdout and "nothing was restored" in result.stdout
    assert stub_nodes[0].state.collections == {}
    assert list(tmp_path.rglob("*.snapshot")) == []


def test_overwrite_drops_each_collection_once_before_the_first_recover(cluster, stub_nodes):
    play, original = cluster
    assert play().returncode == 0  # the collections exist again
    stub_nodes[0].state.points["cities"][0]["payload"] = {"city": "changed after the backup"}
    marks = [len(node.state.requests) for node in stub_nodes]
    result = play("-e", "restore_overwrite=true")
    assert result.returncode == 0, result.stdout[-4000:]
    requests = [
        (m, p)
        for node, mark in zip(stub_nodes, marks, strict=True)
        for m, p, *_ in node.state.requests[mark:]
    ]
    drops = [
        r for r in requests if r[0] == "DELETE" and r[1] in ("/collections/cities", "/collections/places")
    ]
    assert sorted(drops) == [("DELETE", "/collections/cities"), ("DELETE", "/collections/places")]
    # Across the nodes: no upload before the drops (each node's log is in order; the drops go to one node).
    dropping = next(n for n, mark in zip(stub_nodes, marks, strict=True)
                    if any(m == "DELETE" for m, *_ in n.state.requests[mark:]))  # fmt: skip
    own = [(m, p) for m, p, *_ in dropping.state.requests[marks[stub_nodes.index(dropping)] :]]
    last_drop = max(i for i, r in enumerate(own) if r in drops)
    assert all(not p.endswith("/upload") for _, p in own[:last_drop])
    assert stub_nodes[0].state.points == original
