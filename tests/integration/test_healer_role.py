"""The qdrant_backup role's healer files, written by ansible-playbook from an inventory of three TLS
nodes with zones and a monitoring host, read back by the healer's own loader: what the role writes
is what `qdrant-ops cluster heal` accepts, secrets in 0600 files and never in the output."""

from __future__ import annotations

import re
import stat

import jinja2
import yaml

from qdrant_ops.cluster import healer_config
from tests.support.collection import COLLECTION
from tests.support.playbook import ROOT, run_playbook

KEY = "healer-test-admin-key-0123456789"
PASSWORD = "monitoring-web-password-42"


def test_role_writes_settings_the_healer_accepts(tmp_path):
    secrets = tmp_path / "inventory/.secrets/prod"
    (secrets / "tls").mkdir(parents=True)
    (secrets / "api_key").write_text(KEY + "\n")
    (secrets / "monitoring_web_password").write_text(PASSWORD + "\n")
    (secrets / "tls/ca.crt").write_text("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n")
    nodes = {f"q{i}": {"ansible_host": f"10.0.0.{i}", "qdrant_zone": f"eu-{i % 2}"} for i in (1, 2, 3)}
    inventory = {
        "all": {
            "vars": {"qdrant_cluster_name": "prod"},
            "children": {
                "qdrant": {"hosts": nodes},
                "monitoring": {
                    "hosts": {
                        "mon": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        }
                    }
                },
            },
        }
    }
    (tmp_path / "inventory/hosts.yml").write_text(yaml.safe_dump(inventory))
    etc = tmp_path / "etc"
    play = {
        "hosts": "monitoring",
        "gather_facts": False,
        "vars": {
            "qdrant_backup_config_dir": str(etc),
            "qdrant_backup_healer_state_dir": str(tmp_path / "state"),
            "qdrant_backup_metrics_dir": str(tmp_path / "metrics"),
            "qdrant_backup_healer_grace_seconds": 300,
        },
        "roles": [f"{COLLECTION}.cluster_defaults"],
        "tasks": [
            {"ansible.builtin.file": {"path": str(etc), "state": "directory", "mode": "0700"}},
            {
                "ansible.builtin.include_role": {
                    "name": f"{COLLECTION}.qdrant_backup",
                    "tasks_from": "healer.yml",
                }
            },
        ],
    }
    playbook = tmp_path / "healer.yml"
    playbook.write_text(yaml.safe_dump([play]))

    result, _ = run_playbook(playbook, "-i", str(tmp_path / "inventory/hosts.yml"))

    assert result.returncode == 0, result.stdout[-3000:]
    assert KEY not in result.stdout and PASSWORD not in result.stdout
    for secret in ("healer-api-key", "healer-monitoring-password", "healer.yml"):
        assert stat.S_IMODE((etc / secret).stat().st_mode) == 0o600, secret
    config = healer_config.load(str(etc / "healer.yml"))
    urls = [f"https://10.0.0.{i}:6333" for i in (1, 2, 3)]
    assert config.cluster == "prod" and list(config.urls) == urls and config.api_key == KEY
    assert config.ca_file == str(etc / "healer-qdrant-ca.pem") and (etc / "healer-qdrant-ca.pem").exists()
    assert config.policy.grace == 300 and config.policy.cooldown == 3600 and config.enabled
    assert config.zones == {url: f"eu-{i % 2}" for i, url in zip((1, 2, 3), urls, strict=True)}
    assert config.disk.hosts == {f"q{i}": url for i, url in zip((1, 2, 3), urls, strict=True)}
    assert config.disk.mountpoint == "/var/lib/qdrant" and config.policy.disk_headroom == 2
    assert config.disk.prometheus.url == "https://localhost:9090"
    assert config.alertmanager.url == "https://localhost:9093" and config.alertmanager.password == PASSWORD
    assert config.alertmanager.ca_file == str(etc / "healer-monitoring-ca.pem")
    assert config.state_file == tmp_path / "state/state.json"

    again, report = run_playbook(playbook, "-i", str(tmp_path / "inventory/hosts.yml"))
    assert again.returncode == 0 and report["stats"]["mon"]["changed"] == 0  # idempotent


def test_every_unit_of_the_role_has_one_directive_per_line():
    """hardening.j2 ends without a newline once included: a directive after the include was glued
    to its last line (TimeoutStartSec=6hReadWritePaths=...), so the healer's state directory stayed
    read-only and every run failed (seen in the lab drill)."""
    templates = ROOT / "roles/qdrant_backup/templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), undefined=jinja2.ChainableUndefined)
    for path in sorted(templates.glob("*.service.j2")):
        text = env.get_template(path.name).render(ansible_managed="managed", qdrant_backup_ca_file="")
        for line in text.splitlines():
            if line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                assert key.isalnum() and not re.search(r"[A-Z][A-Za-z]+=", value), f"{path.name}: {line}"
