"""playbooks/restore.yml over three stub nodes (local connection, the project venv standing in for
the nodes' /opt/qdrant-ops/venv) and moto: a restore after every collection was deleted, and a
damaged object refused before anything changes."""

from __future__ import annotations

import copy
import json
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from qdrant_ops.cli import main
from tests.support.playbook import ROOT, run_playbook
from tests.unit.test_restore import BACKUP_ID, corrupt_one_object

S3_SECRET = "s3-secret-for-the-restore-playbook"


@pytest.fixture
def cluster(stub_nodes, s3_server, s3_bucket, tmp_path):
    (tmp_path / "install").mkdir()
    (tmp_path / "install/venv").symlink_to(ROOT / ".venv")
    s3 = {"bucket": s3_bucket, "endpoint_url": s3_server.endpoint_url, "region": "us-east-1",
          "access_key": "testing", "secret_key": S3_SECRET, "max_attempts": 1}  # fmt: skip
    hosts = {}
    for i, node in enumerate(stub_nodes):
        config_dir = tmp_path / f"etc{i}"
        config_dir.mkdir()
        node.state.snapshots_path = str(tmp_path / f"snapshots{i}")
        Path(node.state.snapshots_path).mkdir()
        config = {"cluster": "prod", "qdrant": {"url": node.url, "api_key": "stub-secret-key"}, "s3": s3}
        (config_dir / "backup.yml").write_text(yaml.safe_dump(config))
        assert (
            main(["backup", "run", "--config", str(config_dir / "backup.yml"), "--backup-id", BACKUP_ID]) == 0
        )
        hosts[f"q{i}"] = {"ansible_connection": "local", "qdrant_backup_config_dir": str(config_dir),
                          "qdrant_snapshots_path": node.state.snapshots_path}  # fmt: skip
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"qdrant": {"hosts": hosts}}}}))
    overrides = json.dumps({"qdrant_backup_install_dir": str(tmp_path / "install"), "ansible_become": False})
    original = copy.deepcopy(stub_nodes[0].state.points)
    for node in stub_nodes:
        node.state.collections.clear()
        node.state.points.clear()

    def play(*extra: str):
        result, _ = run_playbook(
            "playbooks/restore.yml", "-i", str(tmp_path / "hosts.yml"), "-e", overrides, *extra,
            env={"ANSIBLE_STDOUT_CALLBACK": "default"},
        )  # fmt: skip
        assert S3_SECRET not in result.stdout + result.stderr
        return result

    return play, original


def test_restore_every_collection_node_by_node(cluster, stub_nodes):
    play, original = cluster
    result = play()
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"backup {BACKUP_ID} restored and verified" in result.stdout
    for node in stub_nodes:
        assert node.state.points == original
        assert {(name, priority) for name, _, priority in node.state.recovered} == {
            ("cities", "snapshot"),
            ("places", "snapshot"),
        }
        assert list(Path(node.state.snapshots_path).rglob("*.snapshot")) == []
    # one node at a time: every recover of a node comes before the next node's first one
    order = [node.state.recover_order for node in stub_nodes]
    assert all(max(before) < min(after) for before, after in pairwise(order)), order


def test_a_damaged_object_is_refused_before_anything_changes(cluster, stub_nodes, s3_client, s3_bucket):
    play, _ = cluster
    corrupt_one_object(s3_client, s3_bucket)
    result = play()
    assert result.returncode != 0
    assert "checksum mismatch for s3://" in result.stdout and "nothing was restored" in result.stdout
    for node in stub_nodes:
        assert node.state.recovered == [] and node.state.collections == {}
        assert list(Path(node.state.snapshots_path).rglob("*.snapshot")) == []
