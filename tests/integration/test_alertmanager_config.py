"""The alertmanager role's config, rendered by Ansible from the role's own template and variables:
amtool accepts it, routes by severity, inhibits what a down node explains, and keeps receiver
secrets out of the play's output."""

from __future__ import annotations

import json
import re
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
        # Extended from variables, no fork: a route first, a named time to mute it, one more inhibition.
        "alertmanager_extra_routes": [
            {"matchers": ['collection="scratch"'], "receiver": "mail", "mute_time_intervals": ["weekends"]}
        ],
        "alertmanager_time_intervals": [
            {"name": "weekends", "time_intervals": [{"weekdays": ["saturday", "sunday"]}]}
        ],
        "alertmanager_extra_inhibit_rules": [
            {
                "source_matchers": ['alertname="QdrantNodeDown"'],
                "target_matchers": ['alertname="QdrantBackupFailed"'],
                "equal": ["cluster", "host"],
            }
        ],
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
        (["alertname=QdrantReplicationBelowTarget", "severity=warning", "collection=scratch"], "mail"),
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
    by_source = {
        (rule["source_matchers"][0], tuple(rule["equal"])): rule["target_matchers"][0] for rule in rules
    }
    assert "QdrantHighLatency" in by_source[('alertname="QdrantNodeDown"', ("host",))]
    assert "QdrantDeadReplicas" in by_source[('alertname="QdrantNodeDown"', ("cluster",))]


def alert_names() -> set[str]:
    return {
        rule["alert"]
        for path in (ROOT / "files/alerts").glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_every_inhibit_rule_can_match_alerts_that_exist(config):
    """A rule that matches no alert we ship is dead weight (one matched `severity` across names
    that never exist at two severities)."""
    names = alert_names()
    for rule in yaml.safe_load(Path(config).read_text())["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            matcher = rule[side][0]
            assert matcher.startswith("alertname="), rule
            pattern = re.compile(matcher.split("=", 1)[1].lstrip("~").strip('"') + r"\Z")
            assert any(pattern.match(name) for name in names), f"{side} of {rule} matches no alert"


def test_named_times_mute_the_extra_route(config):
    parsed = yaml.safe_load(Path(config).read_text())
    assert parsed["time_intervals"][0]["name"] == "weekends"
    assert parsed["route"]["routes"][1]["mute_time_intervals"] == ["weekends"]


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
