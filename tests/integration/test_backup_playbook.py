"""playbooks/backup.yml over three stub nodes (local connection, the project venv standing in for
the nodes' /opt/qdrant-ops/venv) and moto: one id for every node, a complete set, and a non-zero
exit with an incomplete set when one node fails."""

from __future__ import annotations

import json

import pytest

from qdrant_ops.backup import catalog
from qdrant_ops.backup.job import from_dict
from tests.support.playbook import backup_inventory, run_playbook

S3_SECRET = "s3-secret-for-the-playbook-test"


@pytest.fixture
def run(stub_nodes, s3_server, s3_bucket, tmp_path):
    s3 = {"bucket": s3_bucket, "endpoint_url": s3_server.endpoint_url, "region": "us-east-1",
          "access_key": "testing", "secret_key": S3_SECRET, "max_attempts": 1}  # fmt: skip
    overrides = json.dumps(backup_inventory(tmp_path, stub_nodes, s3))
    settings = from_dict({"cluster": "prod", "s3": s3}).settings

    def play(*extra: str):
        result, _ = run_playbook(
            "playbooks/backup.yml",
            "-i", str(tmp_path / "hosts.yml"),
            "-e", overrides,
            *extra,
            env={"ANSIBLE_STDOUT_CALLBACK": "default"},
        )  # fmt: skip
        assert S3_SECRET not in result.stdout + result.stderr
        return result

    return play, settings


def test_on_demand_set_of_every_node(run, s3_client):
    play, settings = run
    result = play()
    assert result.returncode == 0, result.stdout[-3000:]
    assert "is complete: 2 collection(s), 3 peers" in result.stdout
    sets = catalog.list_sets(s3_client, settings)
    assert len(sets) == 1 and sets[0]["status"] == "complete" and sets[0]["peers"] == 3


def test_one_failing_node_fails_the_run_and_leaves_an_incomplete_set(run, stub_nodes, s3_client):
    play, settings = run
    stub_nodes[1].state.snapshot_create_error = "No space left on device (os error 28)"
    result = play("-e", "backup_id=20261124T120000Z")
    assert result.returncode != 0
    assert "the node's disk is full" in result.stdout
    assert "backup 20261124T120000Z is incomplete: " in result.stdout
    assert "node peer-1001: attempt 2026" in result.stdout and "failed: " in result.stdout
    manifest = catalog.set_manifest(s3_client, settings, "20261124T120000Z")
    assert manifest.status == "incomplete"

    stub_nodes[1].state.snapshot_create_error = None  # fixed: the re-run redoes only that node
    requests_before = [len(node.state.requests) for node in stub_nodes]
    result = play("-e", "backup_id=20261124T120000Z")
    assert result.returncode == 0, result.stdout[-3000:]
    created = [
        sum(
            1
            for method, path, *_ in node.state.requests[before:]
            if method == "POST" and path.endswith("/snapshots")
        )
        for node, before in zip(stub_nodes, requests_before, strict=True)
    ]
    assert created == [0, 3, 0]  # peer 1001's shards only: cities 1 and 4, places 1
    assert catalog.set_manifest(s3_client, settings, "20261124T120000Z").status == "complete"
