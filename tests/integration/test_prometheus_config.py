"""The prometheus role's config, rendered by Ansible from the role's template and defaults for an
inventory with TLS and EC2 service discovery on: promtool accepts it, every kind of target is
scraped, and the Qdrant key is read from the credentials file, never written into the config."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.support.playbook import ROOT, run_playbook

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run `make deps`")
KEY = "read-only-key-never-in-the-config"


@pytest.fixture(scope="module", params=[False, True], ids=["inventory", "inventory+ec2"])
def rendered(request, tmp_path_factory) -> tuple[bool, dict]:
    config_dir = tmp_path_factory.mktemp("prometheus")
    for name in ("file_sd", "rules", "tls"):
        (config_dir / name).mkdir()
    (config_dir / "tls/ca.pem").write_text("")
    (config_dir / "qdrant-api-key").write_text(KEY)
    (config_dir / "ca.pem").write_text("")
    inventory = config_dir / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "qdrant": {"hosts": {f"q{i}": {} for i in (1, 2, 3)}},
        "monitoring": {"hosts": {"m1": {"ansible_connection": "local"}}},
    }}}))  # fmt: skip
    playbook = config_dir / "render.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "m1",
        "gather_facts": False,
        # The role's defaults read the cluster's (its dependency cluster_defaults).
        "vars_files": [str(ROOT / "roles/cluster_defaults/defaults/main.yml")]
        + [str(ROOT / f"roles/prometheus/{d}/main.yml") for d in ("defaults", "vars")],
        "tasks": [{"ansible.builtin.template": {
            "src": str(ROOT / "roles/prometheus/templates/prometheus.yml.j2"),
            "dest": str(config_dir / "prometheus.yml"),
            "mode": "0600",
            "validate": "promtool check config %s",
        }}],
    }]))  # fmt: skip
    extra = {
        "prometheus_install_method": "package",
        "prometheus_config_dir": str(config_dir),
        "qdrant_read_only_api_key": KEY,
        "qdrant_tls_enabled": True,
        "prometheus_qdrant_ca_file": str(config_dir / "ca.pem"),
        "prometheus_ec2_sd_enabled": request.param,
        "prometheus_ec2_region": "eu-west-1",
        "qdrant_cluster_name": "prod",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
    }
    result, _ = run_playbook(playbook, "-i", str(inventory), "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-3000:]
    text = (config_dir / "prometheus.yml").read_text()
    assert KEY not in text
    return request.param, yaml.safe_load(text)


def test_every_kind_of_target_is_scraped(rendered):
    _, config = rendered
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "node", "qdrant"}
    qdrant = jobs["qdrant"]
    assert qdrant["scheme"] == "https" and qdrant["tls_config"]["ca_file"].endswith("ca.pem")
    assert qdrant["authorization"]["credentials_file"].endswith("/qdrant-api-key")
    assert config["global"]["external_labels"] == {"cluster": "prod"}
    # The monitoring host's own ports are HTTPS by default: Prometheus checks its own certificate
    # and Alertmanager's with the CA that issued them, for scrapes and alerts alike.
    monitoring_ca = jobs["prometheus"]["tls_config"]["ca_file"]
    assert monitoring_ca.endswith("/tls/ca.pem")
    alerting = config["alerting"]["alertmanagers"][0]
    for job in (jobs["prometheus"], jobs["alertmanager"], alerting):
        assert job["scheme"] == "https" and job["tls_config"] == {"ca_file": monitoring_ca}


def test_ec2_discovery_finds_the_cluster_by_its_tags(rendered):
    ec2, config = rendered
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if not ec2:
        assert not any("ec2_sd_configs" in job for job in jobs.values())
        return
    filters = {f["name"]: f["values"] for f in jobs["qdrant"]["ec2_sd_configs"][0]["filters"]}
    assert filters == {"tag:Cluster": ["prod"], "tag:Role": ["qdrant"]}
    assert jobs["qdrant"]["ec2_sd_configs"][0]["port"] == 6333
    assert jobs["node"]["ec2_sd_configs"][0]["port"] == 9100
