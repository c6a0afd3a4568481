"""The Qdrant nodes' IAM policy as terraform/iam.tf writes it, enforced by moto's IAM: the whole
backup job (every node's part, the manifest, list, show, prune) runs with nothing more, and
another cluster's keys are out of reach. moto does not evaluate the s3:prefix condition on
ListBucket (tests/unit/test_terraform.py checks that condition on the code) and authorises
DeleteObjects on the bucket, not per key (see node_policy)."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.exceptions
import hcl2
import pytest
import yaml

from qdrant_ops.cli import main
from tests.support.s3 import TEST_CREDENTIALS, MotoServer

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "prod-qdrant-backups-123456789012"
PREFIX = "qdrant-backups"
OLD, NEW = "20261123T000000Z", "20261124T000000Z"


def one(value):
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def node_policy() -> dict:
    """The S3 statements of data.aws_iam_policy_document.qdrant_backups, references filled in."""
    with (ROOT / "terraform/iam.tf").open() as handle:
        parsed = hcl2.load(handle)
    (document,) = [b["aws_iam_policy_document"]["qdrant_backups"] for b in parsed["data"]
                   if "qdrant_backups" in b.get("aws_iam_policy_document", {})]  # fmt: skip

    def fill(text: str) -> str:
        return text.replace("${aws_s3_bucket.backup.arn}", f"arn:aws:s3:::{BUCKET}").replace(
            "${local.backup_key_prefix}", f"{PREFIX}/prod/"
        )

    statements = []
    for statement in document["statement"]:  # the KMS statement is dynamic: SSE-KMS is not tested here
        rendered = {"Effect": "Allow", "Action": one(statement["actions"]),
                    "Resource": [fill(r) for r in one(statement["resources"])]}  # fmt: skip
        for condition in statement.get("condition", []):
            rendered["Condition"] = {
                one(condition["test"]): {
                    one(condition["variable"]): [fill(v) for v in one(condition["values"])]
                }
            }
        statements.append(rendered)
    assert {a for s in statements for a in s["Action"]} >= {"s3:PutObject", "s3:ListBucket"}
    # AWS authorises a multi-object delete (prune) per key as s3:DeleteObject on each object;
    # moto checks it against the bucket's ARN instead. This statement stands in for AWS' rule.
    statements.append(
        {"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": [f"arn:aws:s3:::{BUCKET}"]}
    )
    return {"Version": "2012-10-17", "Statement": statements}


@pytest.fixture
def enforcing_s3():
    # moto lets the first 7 requests through unauthenticated: the set-up below, exactly.
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "7"}).start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        iam = server.client("iam")
        keys = {}
        for user, policy in (("node", node_policy()), ("admin", {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]})):  # fmt: skip
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = {
                "aws_access_key_id": key["AccessKeyId"],
                "aws_secret_access_key": key["SecretAccessKey"],
            }
        yield server, keys
    finally:
        server.stop()


def test_the_backup_job_needs_nothing_more_and_reaches_no_other_cluster(
    enforcing_s3, stub_nodes, tmp_path, capsys
):
    server, keys = enforcing_s3
    (tmp_path / "api-key").write_text("stub-secret-key\n")

    def config(node_url: str, index: int) -> str:
        path = tmp_path / f"backup-{index}.yml"
        path.write_text(yaml.safe_dump({
            "cluster": "prod",
            "qdrant": {"url": node_url, "api_key_file": str(tmp_path / "api-key")},
            "s3": {"bucket": BUCKET, "prefix": PREFIX, "endpoint_url": server.endpoint_url,
                   "region": TEST_CREDENTIALS["region_name"], "max_attempts": 1,
                   "access_key": keys["node"]["aws_access_key_id"],
                   "secret_key": keys["node"]["aws_secret_access_key"]},
            "metrics_dir": str(tmp_path / "textfiles"),
            "retention": {"keep_last": 1, "daily": 0, "weekly": 0, "monthly": 0},
        }))  # fmt: skip
        return str(path)

    configs = [config(node.url, i) for i, node in enumerate(stub_nodes)]
    for backup_id in (OLD, NEW):
        for path in configs:
            assert main(["backup", "run", "--config", path, "--backup-id", backup_id]) == 0, (
                capsys.readouterr().err
            )
    assert main(["backup", "show", NEW, "--config", configs[0]]) == 0, capsys.readouterr().err
    assert main(["backup", "list", "--config", configs[0]]) == 0
    assert main(["backup", "prune", "--config", configs[0]]) == 0, capsys.readouterr().err

    admin = server.client(**keys["admin"])
    listed = admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/prod/")["Contents"]
    assert {item["Key"].split("/")[2] for item in listed} == {NEW}  # the old set pruned, the new one kept

    admin.put_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/manifest.json", Body=b"{}")
    node = server.client(**keys["node"])
    for attempt in (
        lambda: node.get_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/manifest.json"),
        lambda: node.put_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/x", Body=b"x"),
        lambda: node.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/manifest.json"),
        lambda: node.put_object(Bucket=BUCKET, Key="elsewhere", Body=b"x"),
    ):
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            attempt()
