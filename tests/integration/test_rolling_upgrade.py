"""playbooks/rolling_upgrade.yml refuses, before any node changes, what would make the upgrade
unsafe: run against three REST stub nodes of one cluster (local connection; each host's version
banner and the cluster view come from its stub node). The upgrade itself under a writer, with real
Qdrant nodes, is the lab drill's rolling phase (tests/e2e/test_lab_drill.py)."""

from __future__ import annotations

import socket

import pytest
import yaml

from tests.support.playbook import run_playbook
from tests.support.qdrant_stub import VERSION

major, minor, patch = (int(part) for part in VERSION.split("."))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upgrade(stub_nodes, tmp_path, target: str, *extra: str, ports: list[int] | None = None):
    ports = ports or [int(node.url.rsplit(":", 1)[1]) for node in stub_nodes]
    # The stubs serve plain HTTP.
    local = {"ansible_connection": "local", "ansible_host": "127.0.0.1", "qdrant_tls_enabled": False,
             "ansible_python_interpreter": "{{ ansible_playbook_python }}"}  # fmt: skip
    hosts = {f"q{i}": {**local, "qdrant_http_port": port} for i, port in enumerate(ports)}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"qdrant": {"hosts": hosts}}}}))
    result, report = run_playbook(
        "playbooks/rolling_upgrade.yml", "-i", str(tmp_path / "hosts.yml"),
        "-e", f"qdrant_target_version={target}", "-e", "qdrant_api_key=stub-secret-key",
        "-e", "ansible_become=false", *extra,
    )  # fmt: skip
    ran = [task["task"]["name"] for play in report.get("plays", []) for task in play["tasks"]]
    assert result.returncode != 0
    assert "Refuse bad input before changing anything" not in ran  # refused before the roles
    return " ".join(result.stdout.split()).replace("\\n", " ")


def replicate_everything(stub_nodes) -> None:
    """Every demo collection at replication factor 2, so only the case under test is wrong."""
    state = stub_nodes[0].state
    for name in list(state.collections):
        state.collections[name]["params"]["replication_factor"] = 2
        state.placement.pop(name, None)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (f"{major}.{minor + 2}.0", "Qdrant moves one minor version at a time"),
        (f"{major}.{minor - 1}.9", "to roll back right after a failed upgrade, add -e allow_downgrade=true"),
    ],
    ids=["skips-a-minor", "downgrade"],
)
def test_a_version_jump_is_refused(stub_nodes, tmp_path, target, message):
    assert message in upgrade(stub_nodes, tmp_path, target)


def test_replication_factor_1_is_refused_unless_downtime_is_accepted(stub_nodes, tmp_path):
    out = upgrade(stub_nodes, tmp_path, VERSION)
    assert "replication factor 1, so each restart takes their shards offline: cities, places" in out
    assert "-e allow_downtime=true" in out


def test_a_replica_not_active_is_refused(stub_nodes, tmp_path):
    replicate_everything(stub_nodes)
    stub_nodes[0].state.replicas("cities")[0]["state"] = "Dead"
    out = upgrade(stub_nodes, tmp_path, VERSION)
    assert "replicas not Active" in out and '"state": "Dead"' in out and "replication factor 1" not in out


def test_a_node_that_does_not_answer_is_refused(stub_nodes, tmp_path):
    replicate_everything(stub_nodes)
    ports = [int(node.url.rsplit(":", 1)[1]) for node in stub_nodes[:2]] + [free_port()]
    assert "nodes not answering: q2" in upgrade(stub_nodes, tmp_path, VERSION, ports=ports)
