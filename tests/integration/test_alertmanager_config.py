"""The alertmanager role's config, rendered by Ansible from the role's own template and variables:
amtool accepts it, routes by severity, inhibits what a down node explains, and keeps receiver
secrets out of the play's output."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.playbook import ROOT, run_playbook

pytestmark = pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool missing: run `make deps`")
SECRET = "T000/B000/secret-slack-token"
RECEIVERS = [
    {"name": "pager", "pagerduty_routing_key": "pd-routing-key-secret"},
    {
        "name": "chat",
        "slack_api_url": f"https://hooks.slack.example/services/{SECRET}",
        "slack_channel": "#qdrant",
    },
    {"name": "mail", "email_to": "oncall@example.org"},
    {"name": "deadman", "webhook_url": "http://127.0.0.1:9/heartbeat"},
]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    playbook = out.with_name("render.yml")
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost",
        "gather_facts": False,
        "vars_files": [str(ROOT / f"roles/alertmanager/{d}/main.yml") for d in ("defaults", "vars")],
        "tasks": [{
            "ansible.builtin.template": {
                "src": str(ROOT / "roles/alertmanager/templates/alertmanager.yml.j2"),
                "dest": str(out),
                "mode": "0600",
                "validate": "amtool check-config %s",
            },
            "no_log": True,
        }],
    }]))  # fmt: skip
    extra = {
        "alertmanager_install_method": "package",
        "alertmanager_receivers": RECEIVERS,
        "alertmanager_critical_receiver": "pager",
        "alertmanager_warning_receiver": "chat",
        "alertmanager_watchdog_receiver": "deadman",
        "alertmanager_smtp_smarthost": "smtp.example.org:587",
        "alertmanager_smtp_from": "alertmanager@example.org",
        "alertmanager_smtp_auth_username": "am",
        "alertmanager_smtp_auth_password": "smtp-password-secret",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
    }
    result, _ = run_playbook(playbook, "-i", "localhost,", "-c", "local", "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-3000:]
    for secret in (SECRET, "pd-routing-key-secret", "smtp-password-secret"):
        assert secret not in result.stdout + result.stderr
    return str(out)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=QdrantNodeDown", "severity=critical"], "pager"),
        (["alertname=QdrantHighLatency", "severity=warning"], "chat"),
        (["alertname=Watchdog", "severity=none"], "deadman"),
    ],
)
def test_routes_by_severity(config, labels, receiver):
    result = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stdout.strip() == receiver, result.stdout + result.stderr


def test_a_down_node_inhibits_what_it_explains(config):
    rules = yaml.safe_load(Path(config).read_text())["inhibit_rules"]
    by_target = {tuple(rule["equal"]): rule["target_matchers"][0] for rule in rules}
    assert "QdrantHighLatency" in by_target[("host",)] and "QdrantDeadReplicas" in by_target[("cluster",)]


@pytest.mark.parametrize(
    ("receivers", "routes", "warned"),
    [
        ([{"name": "blackhole"}], ["blackhole"] * 3, True),  # the defaults
        (
            [{"name": "blackhole"}, {"name": "deadman", "webhook_url": "http://127.0.0.1:9/h"}],
            ["blackhole", "blackhole", "deadman"],
            False,
        ),
    ],
    ids=["all-blackhole", "watchdog-routed"],
)
def test_a_play_that_routes_every_alert_nowhere_warns(tmp_path, receivers, routes, warned):
    playbook = tmp_path / "receivers.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_tasks": str(ROOT / "roles/alertmanager/tasks/receivers.yml")}],
    }]))  # fmt: skip
    extra = dict(zip(["alertmanager_critical_receiver", "alertmanager_warning_receiver",
                      "alertmanager_watchdog_receiver"], routes, strict=True))  # fmt: skip
    extra["alertmanager_receivers"] = receivers
    result, _ = run_playbook(playbook, "-i", "localhost,", "-c", "local", "-e", json.dumps(extra),
                             env={"ANSIBLE_STDOUT_CALLBACK": "default"})  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    out = " ".join(result.stdout.split())
    assert (
        "WARNING: the critical, warning and Watchdog receivers (blackhole) have no target" in out
    ) is warned
    if warned:
        assert "alertmanager_watchdog_receiver (a dead man" in out  # YAML output doubles the quote
