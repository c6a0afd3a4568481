"""The hand-off from Terraform to Ansible, end to end without AWS: terraform itself renders the
module's inventory template and group_vars expression (references replaced by the values a plan
would have), moto's EC2 API holds tagged instances, and the amazon.aws dynamic inventory plus a
playbook resolve them into the groups and per-host variables the roles use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.playbook import ROOT, run_playbook
from tests.support.s3 import TEST_CREDENTIALS, MotoServer

TF = ROOT / "terraform"
TERRAFORM = shutil.which("terraform")
pytestmark = pytest.mark.skipif(
    TERRAFORM is None, reason="terraform CLI not installed: it renders the hand-off"
)
REGION = TEST_CREDENTIALS["region_name"]


def terraform_eval(directory: Path, expression: str):
    result = subprocess.run(
        [TERRAFORM, "console"],
        input=f"jsonencode({expression})\n",
        capture_output=True,
        text=True,
        cwd=directory,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(json.loads(result.stdout.strip()))


def group_vars_block(substitutions: dict[str, str]) -> str:
    """ansible.tf's `ansible_group_vars = {...}` as written, its references replaced."""
    text = (TF / "ansible.tf").read_text()
    block = re.search(r"^  ansible_group_vars = \{\n.*?^  \}\n", text, re.MULTILINE | re.DOTALL).group(0)
    for reference, value in substitutions.items():
        block = block.replace(reference, value)
    assert not re.search(r"\b(var|local|aws_[a-z_]+|data)\.", block.replace("{{", "").split("}}")[-1]), block
    return block


@pytest.fixture(scope="module")
def ec2():
    server = MotoServer().start()
    try:
        client = server.client("ec2")
        vpc = client.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.40.128.0/20")["Subnet"]["SubnetId"]
        hosts = {f"prod-qdrant-{i}": "qdrant" for i in (1, 2, 3)} | {"prod-monitoring-1": "monitoring"}
        instances = {}
        for name, role in [*hosts.items(), ("other-qdrant-1", "qdrant")]:
            cluster = name.split("-")[0]
            (instance,) = client.run_instances(
                ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                TagSpecifications=[{"ResourceType": "instance", "Tags": [
                    {"Key": "Name", "Value": name}, {"Key": "Role", "Value": role},
                    {"Key": "Cluster", "Value": cluster}, {"Key": "ManagedBy", "Value": "qdrant-ops"}]}],
            )["Instances"]  # fmt: skip
            instances[name] = instance
        volumes = {
            name: client.create_volume(AvailabilityZone=f"{REGION}a", Size=10)["VolumeId"]
            for name, role in hosts.items()
            if role == "qdrant"
        }
        yield server, instances, volumes
    finally:
        server.stop()


@pytest.fixture(scope="module")
def inventory(ec2, tmp_path_factory) -> Path:
    _, instances, volumes = ec2
    directory = tmp_path_factory.mktemp("inventory")
    rendered = terraform_eval(
        TF / "templates",
        f'templatefile("aws_ec2.yml.tftpl", {{cluster = "prod", region = "{REGION}", connection = "ssh"}})',
    )
    (directory / "aws_ec2.yml").write_text(rendered)
    work = tmp_path_factory.mktemp("tf")
    monitoring_ip = instances["prod-monitoring-1"]["PrivateIpAddress"]
    block = group_vars_block({
        "local.data_volume_ids": json.dumps(volumes).replace(":", " ="),
        "var.name": '"prod"',
        "aws_s3_bucket.backup.id": '"prod-qdrant-backups-123456789012"',
        "var.backup_prefix": '"qdrant-backups"',
        "var.client_cidr_blocks": '["10.50.0.0/16"]',
        "data.aws_region.current.name": f'"{REGION}"',
        "aws_instance.monitoring.private_ip": f'"{monitoring_ip}"',
    })  # fmt: skip
    (work / "main.tf").write_text("locals {\n" + block + "}\n")
    group_vars = directory / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    (group_vars / "terraform.yml").write_text(terraform_eval(work, "yamlencode(local.ansible_group_vars)"))
    return directory


def test_the_dynamic_inventory_groups_the_clusters_hosts_by_role(ec2, inventory):
    server, instances, _ = ec2
    env = {**os.environ, "AWS_URL": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}  # fmt: skip
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(inventory), "--list"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert sorted(listed["qdrant"]["hosts"]) == ["prod-qdrant-1", "prod-qdrant-2", "prod-qdrant-3"]
    assert listed["monitoring"]["hosts"] == ["prod-monitoring-1"]
    assert "other-qdrant-1" not in listed["_meta"]["hostvars"]  # another cluster's node
    for name, instance in instances.items():
        if name.startswith("prod-"):
            hostvars = listed["_meta"]["hostvars"][name]
            host = hostvars["ansible_host"]
            assert host.get("__ansible_unsafe", host) == instance["PrivateIpAddress"]  # JSON marks it unsafe
            zone = hostvars["qdrant_zone"]  # replica placement across zones reads it
            assert zone.get("__ansible_unsafe", zone) == instance["Placement"]["AvailabilityZone"]


def test_the_group_vars_give_each_node_its_data_volume_and_the_backup_bucket(ec2, inventory, tmp_path):
    server, _, volumes = ec2
    playbook = tmp_path / "show.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.debug": {"msg": {
            "volume": "{{ common_data_volume_id }}",
            "required": "{{ common_data_volume_required }}",
            "bucket": "{{ qdrant_backup_s3_bucket }}",
            "cluster": "{{ qdrant_cluster_name }}",
            "client_cidrs": "{{ qdrant_client_cidrs }}",
        }}}],
    }]))  # fmt: skip
    env = {"AWS_URL": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": REGION}  # fmt: skip
    result, report = run_playbook(playbook, "-i", str(inventory), env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = {host: r["msg"] for host, r in report["plays"][0]["tasks"][0]["hosts"].items()}
    assert set(shown) == {*volumes, "prod-monitoring-1"}
    for host, values in shown.items():
        assert values["bucket"] == "prod-qdrant-backups-123456789012" and values["cluster"] == "prod"
        assert values["client_cidrs"] == ["10.50.0.0/16"]  # the qdrant role's TLS-off warning reads them
        assert values["volume"] == volumes.get(host, "")
        assert values["required"] is (host in volumes)
