"""The qdrant_snapshot module in a playbook over three stub nodes and a moto S3 server: one set
from all nodes, changed only when something was uploaded, check mode, list and delete, errors
with fail_json, and no secret in the output."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.playbook import run_playbook, task_results

S3_SECRET = "s3-secret-for-the-test-7f3a"  # moto accepts any key; this one must never be printed
BACKUP_ID = "20261124T000000Z"


@pytest.fixture
def play(stub_nodes, s3_server, s3_bucket, tmp_path):
    inventory = {
        "all": {
            "hosts": {
                f"q{i}": {"ansible_connection": "local", "node_url": node.url}
                for i, node in enumerate(stub_nodes)
            },
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    config = tmp_path / "backup.yml"  # what the qdrant_backup role writes; the module adds url
    config.write_text(
        yaml.safe_dump(
            {
                "cluster": "prod",
                "members": ["peer-1000", "peer-1001", "peer-1002"],
                "qdrant": {"api_key": "stub-secret-key"},
                "s3": {
                    "bucket": s3_bucket,
                    "endpoint_url": s3_server.endpoint_url,
                    "region": "us-east-1",
                    "access_key": "testing",
                    "secret_key": S3_SECRET,
                    "max_attempts": 1,
                },
            }
        )
    )

    def run(task: dict, *flags: str, limit: str = "all", module: str = "qdrant_snapshot"):
        playbook = tmp_path / "play.yml"
        task = {f"qdrant_ops.qdrant.{module}": {"config_file": str(config), **task}, "register": "out"}
        playbook.write_text(yaml.safe_dump([{"hosts": limit, "gather_facts": False, "tasks": [task]}]))
        result, report = run_playbook(playbook, "-i", str(tmp_path / "hosts.yml"), *flags)
        assert S3_SECRET not in result.stdout + result.stderr
        assert "stub-secret-key" not in result.stdout + result.stderr
        return result, task_results(report) if report else {}

    return run


def test_a_set_from_every_node_then_nothing_to_do(play, stub_nodes):
    task = {"url": "{{ node_url }}", "backup_id": BACKUP_ID}
    result, hosts = play(task, "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(h["changed"] and h["would_snapshot"] == ["cities", "places"] for h in hosts.values())
    assert all(node.state.snapshots == {} for node in stub_nodes)  # check mode made no snapshot

    result, hosts = play(task, "--forks", "1")  # one after another: the last sees every part
    assert result.returncode == 0, result.stdout[-3000:]
    assert [hosts[f"q{i}"]["peer_id"] for i in range(3)] == [1000, 1001, 1002]
    assert hosts["q2"]["set_status"] == "unsealed"  # every part in: the sealer's turn
    cities = hosts["q0"]["shards"]["cities"]
    assert sorted(cities) == ["0", "3"]  # the shards peer 1000 is the source of
    attempt = cities["3"]["key"].split("/")[5]
    assert (
        cities["3"]["key"] == f"qdrant-backups/prod/{BACKUP_ID}/nodes/peer-1000/{attempt}/cities/3.snapshot"
    )

    result, hosts = play({"state": "sealed"}, "--check", limit="q0")
    assert hosts["q0"]["changed"] is True and hosts["q0"]["would_seal"] == [BACKUP_ID]
    result, hosts = play({"state": "sealed"}, limit="q0")
    assert hosts["q0"]["changed"] is True and hosts["q0"]["sealed"] == [BACKUP_ID]
    result, hosts = play({"state": "sealed"}, limit="q0")
    assert hosts["q0"]["changed"] is False  # sealed once
    assert (
        cities["3"]["size"] == 64 * 1024 and len(cities["3"]["sha256"]) == 64 and cities["3"]["seconds"] >= 0
    )

    result, hosts = play(task)
    assert result.returncode == 0 and not any(h["changed"] for h in hosts.values())
    assert {h["set_status"] for h in hosts.values()} == {"complete"}

    result, hosts = play({}, limit="q0", module="qdrant_snapshot_info")
    assert hosts["q0"]["changed"] is False
    assert [(s["backup_id"], s["status"], s["peers"]) for s in hosts["q0"]["sets"]] == [
        (BACKUP_ID, "complete", 3)
    ]

    result, hosts = play({"state": "absent", "backup_id": BACKUP_ID}, "--check", limit="q0")
    assert hosts["q0"]["changed"] is True
    result, hosts = play({"state": "absent", "backup_id": BACKUP_ID}, limit="q0")
    assert (
        hosts["q0"]["changed"] is True and hosts["q0"]["deleted_objects"] == 13
    )  # 9 shard snapshots (cities 6, places 3), 3 parts, the seal
    result, hosts = play({"state": "absent", "backup_id": BACKUP_ID}, limit="q0")
    assert hosts["q0"]["changed"] is False


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"state": "absent"}, "state=absent needs backup_id"),
        (
            {"url": "{{ node_url }}", "s3_bucket": "missing-bucket"},
            "bucket s3://missing-bucket does not exist",
        ),
        ({"url": "{{ node_url }}", "collections": ["nope"]}, "collections not found: nope"),
        ({"url": "{{ node_url }}", "part_size_mib": 1}, "below S3's minimum of 5 MiB"),
        ({"config_file": "/nonexistent.yml"}, "backup config /nonexistent.yml not found"),
    ],
)
def test_bad_input_fails_with_a_clear_message(play, task, message, stub_nodes):
    result, hosts = play(task, limit="q0")
    assert result.returncode != 0
    assert hosts["q0"]["failed"] is True and message in hosts["q0"]["msg"], json.dumps(hosts["q0"])
    assert stub_nodes[0].state.snapshots.get("cities", {}) == {}
