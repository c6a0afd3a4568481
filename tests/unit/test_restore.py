"""Restore from a backup set, through the CLI, against three stub nodes (the stub's snapshots
carry its points, so a recover really brings them back) and a moto S3 endpoint: a restore after
every collection is deleted, each refusal with nothing changed, a dry run, a restore that comes
out different, and the pure planning. The same procedure against a real Qdrant cluster is in
tests/e2e/test_restore_real_qdrant.py."""

from __future__ import annotations

import copy
import json
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from qdrant_ops import restore
from qdrant_ops.cli import EXIT_ERROR, main
from tests.support.s3 import TEST_CREDENTIALS

API_KEY = "stub-secret-key"
BACKUP_ID = "20261124T000000Z"


@pytest.fixture
def cluster(stub_nodes, tmp_path, s3_server, s3_bucket):
    """Three stub nodes with their snapshots directories, backed up into BACKUP_ID."""
    (tmp_path / "api-key").write_text(API_KEY)
    configs = []
    for index, node in enumerate(stub_nodes):
        node.state.snapshots_path = str(tmp_path / f"snapshots-{index}")
        Path(node.state.snapshots_path).mkdir()
        config = tmp_path / f"backup-{index}.yml"
        config.write_text(yaml.safe_dump({
            "cluster": "prod",
            "qdrant": {"url": node.url, "api_key_file": str(tmp_path / "api-key")},
            "s3": {"bucket": s3_bucket, "prefix": "qdrant-backups", "endpoint_url": s3_server.endpoint_url,
                   "region": TEST_CREDENTIALS["region_name"], "max_attempts": 1,
                   "access_key": TEST_CREDENTIALS["aws_access_key_id"],
                   "secret_key": TEST_CREDENTIALS["aws_secret_access_key"]},
            "metrics_dir": str(tmp_path / "textfiles"),
        }))  # fmt: skip
        configs.append(str(config))
    original = copy.deepcopy(stub_nodes[0].state.points)
    return stub_nodes, configs, original


def backup_all(nodes, configs, backup_id=BACKUP_ID, count=None):
    for config in configs[:count]:
        assert main(["backup", "run", "--config", config, "--backup-id", backup_id]) == 0


def node_args(nodes) -> list[str]:
    return [arg for node in nodes for arg in ("--node", f"{node.url}={node.state.snapshots_path}")]


def run_restore(capsys, nodes, configs, *extra) -> tuple[int, str, str]:
    capsys.readouterr()  # what the backups printed
    code = main(["restore", "--config", configs[0], *node_args(nodes), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_collection_deleted_then_restored_identical(cluster, capsys):
    nodes, configs, original = cluster
    backup_all(nodes, configs)
    for node in nodes:
        node.state.collections.clear()
        node.state.points.clear()

    code, out, err = run_restore(capsys, nodes, configs, "--json")

    assert code == 0, err
    report = json.loads(out)
    assert report["backup_id"] == BACKUP_ID and report["problems"] == []
    for node in nodes:
        assert node.state.points == original
        recovered = {(name, priority) for name, _, priority in node.state.recovered}
        assert recovered == {
            ("cities", "snapshot"),
            ("places", "snapshot"),
        }  # its own part, explicit priority
        assert all(path.startswith(node.state.snapshots_path) for _, path, _ in node.state.recovered)
        assert not (Path(node.state.snapshots_path) / restore.RESTORE_DIR / BACKUP_ID).exists()  # cleaned up
    order = [node.state.recover_order for node in nodes]  # node by node
    assert all(max(before) < min(after) for before, after in pairwise(order)), order
    assert API_KEY not in out + err


def test_existing_collections_are_replaced_only_with_overwrite(cluster, capsys):
    nodes, configs, original = cluster
    backup_all(nodes, configs)
    nodes[0].state.points["cities"][0]["payload"] = {"city": "changed after the backup"}
    code, _, err = run_restore(capsys, nodes, configs)
    assert code == EXIT_ERROR and "already exist on the target: pass overwrite" in err
    assert all(not node.state.recovered for node in nodes)
    code, _, err = run_restore(capsys, nodes, configs, "--overwrite", "--collection", "cities")
    assert code == 0, err
    assert nodes[0].state.points["cities"] == original["cities"]
    deletes = [r for r in nodes[0].state.requests if r[0] == "DELETE" and r[1] == "/collections/cities"]
    assert len(deletes) == 1


def corrupt_one_object(s3_client, bucket, suffix="/cities/1001.snapshot"):
    """Flip one bit of a snapshot object, keeping its size and its recorded sha256 metadata."""
    key = next(
        item["Key"]
        for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"]
        if suffix in item["Key"] and item["Key"].endswith(".snapshot")
    )
    head = s3_client.head_object(Bucket=bucket, Key=key)
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    damaged = body[:-1] + bytes([body[-1] ^ 1])  # same size, same recorded sha256 metadata
    s3_client.put_object(Bucket=bucket, Key=key, Body=damaged, Metadata=head["Metadata"])


REFUSALS = {
    "incomplete set": ("is incomplete", []),
    "checksum mismatch": ("checksum mismatch for s3://", []),
    "other minor version": ("restore only into the same minor version", []),
    "too few nodes": ("each part needs its own node", []),
    "bad peer mapping": ("peer 9999 is not in the set", ["--map", "9999=http://127.0.0.1:1"]),
    "unknown collection": ("has no collection nope", ["--collection", "nope"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_change_nothing(case, cluster, capsys, s3_client, s3_bucket):
    nodes, configs, _ = cluster
    message, extra = REFUSALS[case]
    backup_all(nodes, configs, count=2 if case == "incomplete set" else None)
    for node in nodes:
        node.state.collections.clear()
        node.state.points.clear()
    targets = nodes
    if case == "checksum mismatch":
        corrupt_one_object(s3_client, s3_bucket)
    elif case == "other minor version":
        for node in nodes:
            node.state.version = "1.19.0"
    elif case == "too few nodes":
        targets = nodes[:2]
    before = [len(node.state.requests) for node in nodes]
    capsys.readouterr()

    code = main(["restore", "--config", configs[0], *node_args(targets), *extra,
                 *(["--backup-id", BACKUP_ID] if case == "incomplete set" else [])])  # fmt: skip
    err = capsys.readouterr().err

    assert code == EXIT_ERROR and message in err, err
    assert "Traceback" not in err
    for node, count in zip(nodes, before, strict=True):
        assert not node.state.recovered and node.state.collections == {}
        changes = [r for r in node.state.requests[count:] if r[0] in ("PUT", "POST", "PATCH", "DELETE")]
        assert changes == [], changes
        assert list(Path(node.state.snapshots_path).rglob("*.snapshot")) == []  # downloads removed


def test_dry_run_checks_and_prints_the_plan(cluster, capsys):
    nodes, configs, _ = cluster
    backup_all(nodes, configs)
    for node in nodes:
        node.state.collections.clear()
    code, out, _ = run_restore(capsys, nodes, configs, "--dry-run")
    assert code == 0 and "dry run, nothing changed" in out
    assert out.count("cities") == 3 and all(node.url in out for node in nodes)
    assert all(not node.state.recovered and node.state.collections == {} for node in nodes)


def test_a_restore_that_comes_out_different_fails_and_says_how(cluster, capsys):
    nodes, configs, _ = cluster
    backup_all(nodes, configs)
    for node in nodes:
        node.state.collections.clear()
        node.state.recover_loses_points = 1
    code, _, err = run_restore(capsys, nodes, configs)
    assert code == EXIT_ERROR
    assert "differs from the backup: cities: 9 points, the backup has 10" in err
    assert "sampled point 9 is missing" in err


# -- planning (pure) ---------------------------------------------------------------------------------
MANIFEST = {
    "backup_id": BACKUP_ID,
    "qdrant_version": "1.18.3",
    "collections": {
        "a": {"nodes": {str(p): {"key": f"k/a/{p}", "size": 1, "sha256": "0" * 64} for p in (7, 8, 9)}},
        "b": {"nodes": {str(p): {"key": f"k/b/{p}", "size": 1, "sha256": "0" * 64} for p in (7, 8, 9)}},
    },
}
TARGETS = [restore.Target(f"http://n{i}:6333", Path(f"/s{i}")) for i in range(4)]


def test_plan_goes_node_by_node_in_peer_order_or_as_mapped():
    steps = restore.plan_restore(MANIFEST, TARGETS, target_version="1.18.0")
    assert [(s.peer_id, s.target.url, s.collection) for s in steps] == [
        (7, "http://n0:6333", "a"), (7, "http://n0:6333", "b"),
        (8, "http://n1:6333", "a"), (8, "http://n1:6333", "b"),
        (9, "http://n2:6333", "a"), (9, "http://n2:6333", "b"),
    ]  # fmt: skip
    mapped = restore.plan_restore(
        MANIFEST,
        TARGETS,
        collections=["b"],
        peer_map={7: "http://n3:6333", 8: "http://n0:6333", 9: "http://n1:6333"},
    )
    assert [(s.peer_id, s.target.url) for s in mapped] == [(7, "http://n3:6333"), (8, "http://n0:6333"),
                                                          (9, "http://n1:6333")]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peer_map": {7: "http://n0:6333", 8: "http://n0:6333", 9: "http://n1:6333"}}, "same node"),
        ({"peer_map": {7: "http://n0:6333"}}, "peer 8 has no target"),
        (
            {"peer_map": {7: "http://x:1", 8: "http://n0:6333", 9: "http://n1:6333"}},
            "http://x:1 is not a target",
        ),
        ({"target_version": "1.17.9"}, "same minor version"),
        ({"existing": ["a"]}, "already exist"),
    ],
)
def test_plan_refusals(kwargs, message):
    with pytest.raises(restore.RestoreError, match=message):
        restore.plan_restore(MANIFEST, TARGETS, **kwargs)
    assert restore.plan_restore(MANIFEST, TARGETS, existing=["a"], overwrite=True)
