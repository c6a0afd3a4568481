"""terraform/: providers cannot be downloaded here, so `terraform validate` and `plan` cannot run.
What can: `terraform fmt -check`, the module's own validation expressions evaluated by the real
`terraform console`, structure checks over the python-hcl2 parse proving each security rule of
the issue, and checkov with zero failed checks (every skip inline, with its reason)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qdrant_ops.backup.model import Layout
from tests.support import terraform
from tests.support.terraform import single

ROOT = Path(__file__).resolve().parents[2]
TF = terraform.TF
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(
    TERRAFORM is None, reason="terraform CLI not installed (validate/plan need providers, unreachable here)"
)
TF_ENV = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
MODULE = terraform.module()


def blocks(kind: str, type_: str) -> dict[str, dict]:
    """Every `kind "type_" "name"` block of the module, by name."""
    return terraform.blocks(MODULE, kind, type_)


def local(name: str):
    for parsed in MODULE.values():
        for block in parsed.get("locals", []):
            if name in block:
                return block[name]
    raise KeyError(name)


def source_of(filename: str, name: str) -> str:
    """The raw text of `name = <expression>` in a module file (python-hcl2 re-prints expressions in
    a form terraform does not read), brackets balanced across lines."""
    text = (TF / filename).read_text()
    start = re.search(rf"^\s*{re.escape(name)}\s*=\s*", text, re.MULTILINE).end()
    depth, end = 0, start
    while end < len(text):
        char = text[end]
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "\n" and depth == 0:
            break
        end += 1
    return re.sub(r"\s*#[^\n]*", "", text[start:end]).strip()


def condition_of(filename: str, header: str, attribute: str = "condition") -> str:
    """The raw text of the one `condition = ...` line inside the block opened by `header` (e.g.
    `variable "name"`), found in the source: no parser keeps expressions as terraform reads them."""
    text = (TF / filename).read_text()
    start = re.search(rf"^\s*{re.escape(header)}\s*\{{", text, re.MULTILINE).end()
    depth, end = 1, start
    while depth and end < len(text):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    (line,) = [line for line in text[start:end].splitlines() if re.match(rf"\s*{attribute}\s*=", line)]
    return line.split("=", 1)[1].strip()


def console(*expressions: str) -> list:
    """Evaluate expressions with the real terraform (no providers needed), one result each. The
    console reads stdin as one input, so they go in as one list."""
    joined = "jsonencode([" + ", ".join(" ".join(e.split()) for e in expressions) + "])"
    result = subprocess.run(
        [TERRAFORM, "console"],
        input=joined + "\n",
        capture_output=True,
        text=True,
        env=TF_ENV,
        cwd=TF / "templates",  # a directory without .tf files: nothing to initialise
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(json.loads(result.stdout.strip()))


# -- layout and documentation ---------------------------------------------------------------------
def test_laid_out_like_terraform_aws_modules():
    for name in ("versions.tf", "variables.tf", "network.tf", "security.tf", "compute.tf", "storage.tf",
                 "iam.tf", "outputs.tf", "README.md"):  # fmt: skip
        assert (TF / name).is_file(), name
    for example in ("minimal", "production"):
        source = terraform.parse(TF / "examples" / example / "main.tf")["module"][0]["qdrant"]["source"]
        assert source == "../..", example
    providers = single(MODULE["versions.tf"]["terraform"][0]["required_providers"])
    assert all(re.match(r"~> \d+\.\d+", spec["version"]) for spec in providers.values()), providers


def test_every_variable_and_output_is_described_and_in_the_readme():
    readme = (TF / "README.md").read_text()
    for name, spec in variables().items():
        assert spec.get("description"), name
        assert "type" in spec, name
        assert f"| `{name}` |" in readme, f"variable {name} missing from terraform/README.md"
    for parsed in MODULE.values():
        for block in parsed.get("output", []):
            for name, spec in block.items():
                assert spec.get("description"), name
                assert f"| `{name}` |" in readme, f"output {name} missing from terraform/README.md"


def variables() -> dict[str, dict]:
    return {name: spec for block in MODULE["variables.tf"]["variable"] for name, spec in block.items()}


@needs_terraform
def test_terraform_fmt():
    result = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(TF)],
                            capture_output=True, text=True, env=TF_ENV, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- input validation, evaluated by terraform itself -----------------------------------------------
VALIDATION_CASES = {
    "name": [("prod-search", True), ("Prod", False), ("a", False), ("x" * 40, False), ("prod-", False)],
    "qdrant_node_count": [(3, True), (5, True), (2, False), (3.5, False)],
    "vpc_cidr": [("10.40.0.0/16", True), ("10.40.0.0/24", False), ("not-a-cidr", False)],
    "availability_zone_count": [(3, True), (2, False)],
    "subnet_ids": [([], True), (["a", "b", "c"], True), (["a", "b"], False)],
    "client_cidr_blocks": [(["10.0.0.0/8"], True), (["10.0.0.0/33"], False)],
    "ssh_access": [("ssm", True), ("ssh", True), ("telnet", False)],
    "data_volume_iops": [(3000, True), (20000, False)],
    "data_volume_throughput": [(250, True), (100, False)],
    "backup_prefix": [("qdrant-backups", True), ("a/b", True), ("/abs", False), ("trailing/", False)],
    "backup_encryption": [("kms", True), ("s3", True), ("none", False)],
}


@needs_terraform
def test_validation_blocks_accept_and_refuse_as_documented():
    specs = variables()
    expressions, expected = [], []
    for name, cases in VALIDATION_CASES.items():
        condition = condition_of("variables.tf", f'variable "{name}"')
        message = single(specs[name]["validation"])["error_message"]
        assert name.split("_")[0] in message or "must" in message, message
        for value, ok in cases:
            expressions.append(f"try({condition.replace(f'var.{name}', json.dumps(value))}, false)")
            expected.append((name, value, ok))
    results = console(*expressions)
    assert len(results) == len(expected)
    wrong = [(name, value, ok) for (name, value, ok), got in zip(expected, results, strict=True) if got != ok]
    assert not wrong, f"validation disagrees for (variable, value, expected): {wrong}"


@needs_terraform
def test_even_node_counts_and_public_cidrs_are_refused_unless_allowed():
    odd = condition_of("compute.tf", 'resource "aws_instance" "qdrant"')
    public = condition_of("security.tf", 'resource "aws_security_group" "qdrant"')
    public_cidrs = source_of("security.tf", "public_cidrs")

    def odd_case(count, allow):
        return odd.replace("var.allow_even_node_count", json.dumps(allow)).replace(
            "var.qdrant_node_count", str(count)
        )

    def public_case(cidrs, allow):
        expr = public_cidrs.replace("var.client_cidr_blocks", json.dumps(cidrs)).replace(
            "var.admin_cidr_blocks", "[]"
        )
        return public.replace("var.allow_public_ingress", json.dumps(allow)).replace(
            "local.public_cidrs", expr
        )

    assert console(
        odd_case(3, False), odd_case(4, False), odd_case(4, True),
        public_case(["10.0.0.0/8"], False), public_case(["0.0.0.0/0"], False),
        public_case(["0.0.0.0/0"], True),
    ) == [True, False, True, True, False, True]  # fmt: skip


# -- security groups ----------------------------------------------------------------------------------
def rule_ports(rule: dict) -> set[int]:
    port = rule["from_port"]
    if isinstance(port, int):
        return {port}
    for_each = rule["for_each"]
    if isinstance(for_each, dict):
        return set(for_each.values())
    source = {"${local.client_rules}": "client_ports", "${local.client_sg_rules}": "client_ports",
              "${local.admin_rules}": "admin_ports"}[for_each]  # fmt: skip
    return {int(n) for n in re.findall(r"\b(\d{2,5})\b", json.dumps(local(source)))}


def test_p2p_and_node_exporter_ports_are_closed_to_everyone_else():
    ingress = blocks("resource", "aws_vpc_security_group_ingress_rule")
    assert ingress
    for name, rule in ingress.items():
        ports = rule_ports(rule)
        source = rule.get("referenced_security_group_id", "") or rule.get("cidr_ipv4")
        assert "0.0.0.0/0" not in json.dumps(rule), name
        if 6335 in ports:
            assert source == "${aws_security_group.qdrant.id}" and rule["security_group_id"] == source, name
        if 9100 in ports:
            assert source == "${aws_security_group.monitoring.id}", name
        if "cidr_ipv4" in rule:  # CIDR rules only from the operator-given lists
            assert (
                rule["for_each"]
                in (
                    "${local.client_rules}",
                    "${local.admin_rules}",
                )
                or "var.admin_cidr_blocks" in rule["for_each"]
            ), name
    ssh = [name for name, rule in ingress.items() if 22 in rule_ports(rule)]
    assert ssh and all("local.ssh_enabled" in ingress[n]["for_each"] or n == "monitoring_admins" for n in ssh)
    assert "local.ssh_enabled" in json.dumps(local("admin_ports"))


# -- instances and volumes ----------------------------------------------------------------------------
def test_instances_require_imdsv2_and_encrypt_every_volume():
    instances = blocks("resource", "aws_instance")
    assert set(instances) == {"qdrant", "monitoring"}
    for name, instance in instances.items():
        metadata = single(instance["metadata_options"])
        assert metadata["http_tokens"] == "required" and metadata["http_put_response_hop_limit"] == 1, name
        assert single(instance["root_block_device"])["encrypted"] is True, name
        assert "iam_instance_profile" in instance, name
        tags = instance["tags"]
        assert all(re.search(rf"\b{tag}\W*[=:]", tags) for tag in ("Name", "Role")), (name, tags)
        assert tags.startswith("${merge(local.tags,"), (name, tags)
    assert "Cluster = var.name" in (TF / "main.tf").read_text()
    # Both data volume modes: a separate volume (survives replacement) or an inline one.
    volume = blocks("resource", "aws_ebs_volume")["data"]
    assert volume["encrypted"] is True and volume["type"] == "gp3"
    assert volume["for_each"] == "${var.data_volume_survives_instance ? local.nodes : {}}"
    inline = single(instances["qdrant"]["dynamic"])["ebs_block_device"]
    assert single(inline["content"])["encrypted"] is True
    assert inline["for_each"] == "${var.data_volume_survives_instance ? [] : [1]}"
    assert blocks("resource", "aws_volume_attachment")["data"]["for_each"] == "${aws_ebs_volume.data}"


@needs_terraform
def test_nodes_are_spread_over_the_subnets():
    nodes = source_of("compute.tf", "nodes")
    expr = (nodes.replace("var.qdrant_node_count", "5").replace("var.name", '"prod"')
            .replace("length(local.node_subnet_ids)", "3")
            .replace("local.node_subnet_ids", '["s-a", "s-b", "s-c"]')
            .replace("data.aws_subnet.node", "[" + ", ".join(f'{{availability_zone="{z}"}}' for z in "abc")
                     + "]"))  # fmt: skip
    (placed,) = console(expr)
    assert [placed[f"prod-qdrant-{i}"]["subnet_id"] for i in range(1, 6)] == [
        "s-a",
        "s-b",
        "s-c",
        "s-a",
        "s-b",
    ]


# -- the backup bucket --------------------------------------------------------------------------------
def test_backup_bucket_is_private_versioned_encrypted_and_tls_only():
    resources = {t: blocks("resource", t) for t in (
        "aws_s3_bucket_public_access_block", "aws_s3_bucket_versioning", "aws_kms_key",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_lifecycle_configuration")}  # fmt: skip
    block = resources["aws_s3_bucket_public_access_block"]["backup"]
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(block[k] is True for k in flags)
    assert (
        single(resources["aws_s3_bucket_versioning"]["backup"]["versioning_configuration"])["status"]
        == "Enabled"
    )
    assert resources["aws_kms_key"]["backup"]["enable_key_rotation"] is True
    sse = single(single(resources["aws_s3_bucket_server_side_encryption_configuration"]["backup"]["rule"])
                  ["apply_server_side_encryption_by_default"])["sse_algorithm"]  # fmt: skip
    assert sse == '${local.use_kms ? "aws:kms" : "AES256"}'
    rules = {r["id"]: r for r in resources["aws_s3_bucket_lifecycle_configuration"]["backup"]["rule"]}
    abort = single(rules["abort-incomplete-multipart-uploads"]["abort_incomplete_multipart_upload"])
    assert abort["days_after_initiation"] == "${var.backup_abort_incomplete_upload_days}"
    assert "noncurrent_version_expiration" in rules["expire-noncurrent-versions"]
    (deny,) = blocks("data", "aws_iam_policy_document")["backup_bucket"]["statement"]
    condition = single(deny["condition"])
    assert deny["effect"] == "Deny" and deny["actions"] == ["s3:*"]
    assert (condition["variable"], condition["values"]) == ("aws:SecureTransport", ["false"])
    assert blocks("resource", "aws_s3_bucket_object_lock_configuration")["backup"]["count"] == (
        "${var.backup_object_lock_days > 0 ? 1 : 0}"
    )


# -- IAM ----------------------------------------------------------------------------------------------
def statements(document: str) -> list[dict]:
    doc = blocks("data", "aws_iam_policy_document")[document]
    found = list(doc.get("statement", []))
    for dynamic in doc.get("dynamic", []):
        found += dynamic["statement"]["content"]
    return found


def test_nodes_may_touch_only_their_clusters_prefix_and_the_key():
    """Each node its own role: read the cluster's backups, write only under its own name in a set
    (backup formats 3 and 4), each object once, delete nothing. Only the monitoring host (which
    seals and prunes) writes seals and deletes."""
    prefix = "${local.backup_key_prefix}"
    bucket_keys = f"${{aws_s3_bucket.backup.arn}}/{prefix}*"
    own_keys = f"{bucket_keys}/nodes/${{each.key}}/*"
    # PutObject is granted only with a condition: If-None-Match present (created once), or a multipart
    # step that creates nothing (s3:ObjectCreationOperation false), as AWS documents for enforcing
    # conditional writes.
    once = ("Null", "s3:if-none-match", ("false",))
    part_step = ("Bool", "s3:ObjectCreationOperation", ("false",))
    expected = {
        "qdrant_backups": {("s3:GetObject", bucket_keys, None), ("s3:PutObject", own_keys, once),
                           ("s3:PutObject", own_keys, part_step), ("s3:AbortMultipartUpload", own_keys, None),
                           ("s3:ListMultipartUploadParts", own_keys, None)},
        "backup_pruning": {("s3:GetObject", bucket_keys, None), ("s3:DeleteObject", bucket_keys, None),
                           ("s3:PutObject", f"{bucket_keys}/seal.json", once)},
    }  # fmt: skip
    for document, object_rules in expected.items():
        granted = set()
        for statement in statements(document):
            actions, resources = set(statement["actions"]), statement["resources"]
            assert "effect" not in statement, statement  # allow statements only
            if actions == {"s3:ListBucket"}:
                condition = single(statement["condition"])
                assert condition["variable"] == "s3:prefix" and all(
                    v.startswith(prefix) for v in condition["values"]
                )
            elif all(a.startswith("s3:") for a in actions):
                (resource,) = resources
                condition = single(statement["condition"]) if statement.get("condition") else None
                rule = (
                    (condition["test"], condition["variable"], tuple(condition["values"]))
                    if condition
                    else None
                )
                granted |= {(action, resource, rule) for action in actions}
            else:
                assert actions <= {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"}
                assert resources == ["${aws_kms_key.backup[0].arn}"]
        assert granted == object_rules, document
    # Format 3's node prefix, as qdrant-ops writes it; the node's name is its inventory name.
    assert Layout("qdrant-backups", "prod").node_part_key("ID", "prod-qdrant-1") == (
        "qdrant-backups/prod/ID/nodes/prod-qdrant-1/part.json"
    )
    assert (
        'qdrant_backup_node_name: "{{ inventory_hostname }}"'
        in (ROOT / "roles/qdrant_backup/defaults/main.yml").read_text()
    )
    assert blocks("resource", "aws_iam_role")["qdrant"]["for_each"] == "${local.nodes}"
    assert blocks("resource", "aws_iam_role")["qdrant"]["name"] == "${each.key}"
    # The prefix is the one qdrant-ops writes under: <backup_prefix>/<cluster>/
    assert local("backup_key_prefix") == "${var.backup_prefix}/${var.name}/"
    assert Layout("qdrant-backups", "prod").cluster_prefix() == "qdrant-backups/prod/"
    (discovery,) = statements("monitoring_discovery")
    assert discovery["actions"] == ["ec2:DescribeInstances"]
    policies = blocks("resource", "aws_iam_role_policy")
    assert {p["policy"] for p in policies.values()} == {
        "${data.aws_iam_policy_document.qdrant_backups[each.key].json}",
        "${data.aws_iam_policy_document.monitoring_discovery.json}",
        "${data.aws_iam_policy_document.backup_pruning.json}",
    }
    assert policies["monitoring_backup_pruning"]["role"] == "${aws_iam_role.monitoring.id}"
    attachments = blocks("resource", "aws_iam_role_policy_attachment")
    assert (
        set(attachments) == {"ssm"} and "AmazonSSMManagedInstanceCore" in (attachments["ssm"]["policy_arn"])
    )
    assert 'var.ssh_access == "ssm"' in attachments["ssm"]["for_each"]


# -- checkov ------------------------------------------------------------------------------------------
SKIP = re.compile(r"#checkov:skip=(CKV2?_AWS_\d+):(.*)")


def checkov() -> str:
    """checkov lives in its own virtualenv (make checkov; see constraints/checkov.in for why)."""
    path = os.environ.get("CHECKOV") or str(ROOT / ".cache/checkov/bin/checkov")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no checkov at {path}: run `make checkov` (or set CHECKOV=/path/to/checkov)")
    return path


def test_checkov_finds_nothing_and_every_skip_has_a_reason():
    binary = checkov()
    skips = [m for path in TF.rglob("*.tf") for m in SKIP.finditer(path.read_text())]
    assert len(skips) <= 10, "keep the skip list short"
    assert all(len(reason.strip()) >= 40 for _, reason in (m.groups() for m in skips)), (
        "each skip needs a reason"
    )
    result = subprocess.run(
        [
            binary,
            "-d",
            str(TF),
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0 and summary["passed"] > 150, summary
    assert summary["skipped"] >= len(skips), summary


def test_every_node_recovers_from_failed_hardware_as_itself():
    """Issue 36: EC2 recovery on (maintenance_options, and per node an alarm on the system status
    check that recovers it and one on the instance status check that reboots it), switchable by one
    variable, and the data volume kept apart from the instance by default."""
    for name, instance in blocks("resource", "aws_instance").items():
        options = single(instance["maintenance_options"])
        assert options["auto_recovery"] == '${var.auto_recovery ? "default" : "disabled"}', name
    actions = local("recovery_actions")
    assert {a: actions[a]["metric"] for a in actions} == {
        "recover": "StatusCheckFailed_System",
        "reboot": "StatusCheckFailed_Instance",
    }
    alarm = blocks("resource", "aws_cloudwatch_metric_alarm")["recovery"]
    assert alarm["for_each"] == "${local.recovery_alarms}" and alarm["namespace"] == "AWS/EC2"
    assert alarm["dimensions"] == {"InstanceId": "${aws_instance.qdrant[each.value.node].id}"}
    assert alarm["alarm_actions"] == [
        "arn:${data.aws_partition.current.partition}:automate:${data.aws_region.current.name}:ec2:"
        "${each.value.action}"
    ]
    assert "var.auto_recovery ? " in str(local("recovery_alarms")) and "setproduct" in str(
        local("recovery_alarms")
    )
    assert variables()["auto_recovery"]["default"] is True
    assert variables()["data_volume_survives_instance"]["default"] is True


def test_the_recovery_alarms_are_accepted_by_the_cloudwatch_api(s3_server):
    """The alarms as terraform would send them for one node, to CloudWatch's API (the moto server):
    metric, dimensions and the EC2 automate actions are valid; moto does not run the actions."""
    cloudwatch = s3_server.client("cloudwatch", region_name="eu-west-1")
    alarm = blocks("resource", "aws_cloudwatch_metric_alarm")["recovery"]
    for action, spec in local("recovery_actions").items():
        cloudwatch.put_metric_alarm(
            AlarmName=f"prod-qdrant-1-{action}",
            Namespace=alarm["namespace"],
            MetricName=spec["metric"],
            Dimensions=[{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}],
            Statistic=alarm["statistic"],
            Period=alarm["period"],
            EvaluationPeriods=spec["minutes"],
            ComparisonOperator=alarm["comparison_operator"],
            Threshold=float(alarm["threshold"]),
            AlarmActions=[f"arn:aws:automate:eu-west-1:ec2:{action}"],
        )
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert {"prod-qdrant-1-recover", "prod-qdrant-1-reboot"} <= set(found)
    assert found["prod-qdrant-1-recover"]["AlarmActions"] == ["arn:aws:automate:eu-west-1:ec2:recover"]
    assert found["prod-qdrant-1-reboot"]["MetricName"] == "StatusCheckFailed_Instance"
