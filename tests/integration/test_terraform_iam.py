"""The IAM policies terraform/iam.tf writes, enforced by moto's IAM: each node's role runs its
backup job (its part, list, show) with nothing more, writes nothing of another node's and deletes
nothing; the monitoring host's pruning role prunes; another cluster's keys are out of reach.
The policies are rendered for moto as AWS evaluates them (see for_moto): moto cannot evaluate the
s3:prefix condition on ListBucket (tests/integration/test_terraform.py checks that condition on
the code), names S3 requests by API operation, and authorises DeleteObjects on the bucket."""

from __future__ import annotations

import json
import time
from pathlib import Path

import botocore.exceptions
import pytest
import yaml

from qdrant_ops.cli import main
from tests.support import terraform
from tests.support.forgery import forge_set
from tests.support.s3 import TEST_CREDENTIALS, MotoServer

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "prod-qdrant-backups-123456789012"
PREFIX = "qdrant-backups"
OLD, NEW = "20261123T000000Z", "20261124T000000Z"


def policy(document: str, node: str = "") -> dict:
    """The S3 statements of data.aws_iam_policy_document.<document>, references filled in (a
    node's document for the node `node`)."""
    found = terraform.blocks(terraform.module(), "data", "aws_iam_policy_document")[document]

    def fill(text: str) -> str:
        return (
            text.replace("${aws_s3_bucket.backup.arn}", f"arn:aws:s3:::{BUCKET}")
            .replace("${local.backup_key_prefix}", f"{PREFIX}/prod/")
            .replace("${each.key}", node)
        )

    statements = []
    for statement in found["statement"]:  # the KMS statement is dynamic: SSE-KMS is not tested here
        rendered = {"Effect": "Allow", "Action": statement["actions"],
                    "Resource": [fill(r) for r in statement["resources"]]}  # fmt: skip
        for condition in statement.get("condition", []):
            rendered["Condition"] = {
                condition["test"]: {condition["variable"]: [fill(v) for v in condition["values"]]}
            }
        statements.append(rendered)
    return {"Version": "2012-10-17", "Statement": statements}


# The S3 API operations AWS authorises with each IAM action (the "Permissions" section of each
# operation in the Amazon S3 API reference, e.g. ListObjectsV2 needs s3:ListBucket, HeadObject and
# GetObjectAttributes s3:GetObject, the multipart steps s3:PutObject).
S3_OPERATIONS = {
    "s3:ListBucket": ["s3:ListObjects", "s3:ListObjectsV2", "s3:HeadBucket"],
    "s3:GetObject": ["s3:GetObject", "s3:HeadObject", "s3:GetObjectAttributes"],
    "s3:PutObject": [
        "s3:PutObject",
        "s3:CreateMultipartUpload",
        "s3:UploadPart",
        "s3:CompleteMultipartUpload",
    ],
    "s3:AbortMultipartUpload": ["s3:AbortMultipartUpload"],
    "s3:ListMultipartUploadParts": ["s3:ListParts"],
    "s3:DeleteObject": ["s3:DeleteObject"],
}
# The condition keys moto's IAM knows (moto/iam/utils.py, format_incoming_conditional_values).
MOTO_CONDITION_KEYS = {"sts:ExternalId"}


def for_moto(document: dict) -> dict:
    """A policy as moto >= 5.2 must see it to grant what AWS grants for this test's requests.

    - moto names an S3 request by its API operation (s3:ListObjectsV2) where AWS checks the IAM
      action (s3:ListBucket): each action also lists the operations AWS authorises with it, so the
      policy reads the same on moto before 5.2, which used IAM names.
    - A condition on a key moto does not know never matches there (before 5.2 conditions were
      ignored): it is left out. Every request this test makes satisfies it on AWS.
    - AWS authorises a multi-object delete (prune) per key as s3:DeleteObject on each object; moto
      checks it against the bucket's ARN: a statement on the bucket stands in for AWS' rule.
    """
    statements = []
    for statement in document["Statement"]:
        actions = list(statement["Action"])
        for action in statement["Action"]:
            actions += [op for op in S3_OPERATIONS.get(action, []) if op not in actions]
        conditions = {
            test: kept
            for test, keys in statement.get("Condition", {}).items()
            if (kept := {key: values for key, values in keys.items() if key in MOTO_CONDITION_KEYS})
        }
        statements.append(
            {key: value for key, value in statement.items() if key != "Condition"}
            | {"Action": actions}
            | ({"Condition": conditions} if conditions else {})
        )
    if any("s3:DeleteObject" in s["Action"] for s in statements):
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["s3:DeleteObject", "s3:DeleteObjects"],
                "Resource": [f"arn:aws:s3:::{BUCKET}"],
            }
        )
    return document | {"Statement": statements}


NODES = ("prod-qdrant-1", "prod-qdrant-2", "prod-qdrant-3")
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture
def enforcing_s3():
    users = {node: policy("qdrant_backups", node) for node in NODES}
    users |= {"pruner": policy("backup_pruning"), "admin": ADMIN}
    # moto lets the first requests through unauthenticated: the set-up below, exactly.
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": str(1 + 3 * len(users))}).start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        iam = server.client("iam")
        keys = {}
        for user, document in users.items():
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(for_moto(document)))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = {
                "aws_access_key_id": key["AccessKeyId"],
                "aws_secret_access_key": key["SecretAccessKey"],
            }
        yield server, keys
    finally:
        server.stop()


def write_config(tmp_path, server, keys, node_url: str, user: str, **retention) -> str:
    """The backup.yml of `user` (a node, "pruner" or "admin"), with its own credentials."""
    (tmp_path / "api-key").write_text("stub-secret-key\n")
    path = tmp_path / f"backup-{user}.yml"
    path.write_text(yaml.safe_dump({
        "cluster": "prod", "node": user if user in NODES else None, "members": list(NODES),
        "qdrant": {"url": node_url, "api_key_file": str(tmp_path / "api-key")},
        "s3": {"bucket": BUCKET, "prefix": PREFIX, "endpoint_url": server.endpoint_url,
               "region": TEST_CREDENTIALS["region_name"], "max_attempts": 1,
               "access_key": keys[user]["aws_access_key_id"],
               "secret_key": keys[user]["aws_secret_access_key"]},
        "metrics_dir": str(tmp_path / "textfiles"),
        "retention": {"daily": 0, "weekly": 0, "monthly": 0, **retention},
    }))  # fmt: skip
    return str(path)


def test_each_node_writes_only_its_own_part_and_only_the_pruner_deletes(
    enforcing_s3, stub_nodes, tmp_path, capsys
):
    server, keys = enforcing_s3

    def config(node_url: str, user: str) -> str:
        return write_config(tmp_path, server, keys, node_url, user, keep_last=1)

    configs = [config(node.url, name) for node, name in zip(stub_nodes, NODES, strict=True)]
    for backup_id in (OLD, NEW):
        for path in configs:
            assert main(["backup", "run", "--config", path, "--backup-id", backup_id]) == 0, (
                capsys.readouterr().err
            )
    pruner = config(stub_nodes[0].url, "pruner")
    assert main(["backup", "seal", "--config", pruner]) == 0, capsys.readouterr().err  # the sealer
    assert main(["backup", "show", NEW, "--config", configs[0]]) == 0, capsys.readouterr().err
    assert main(["backup", "list", "--config", configs[0]]) == 0
    capsys.readouterr()

    # A node may not prune (nor delete anything); the monitoring host's pruning role may.
    assert main(["backup", "prune", "--config", configs[0]]) == 2
    assert "AccessDenied: Access Denied: only the pruning role may delete" in capsys.readouterr().err
    assert main(["backup", "prune", "--config", pruner]) == 0, capsys.readouterr().err

    admin = server.client(**keys["admin"])
    listed = admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/prod/")["Contents"]
    assert {item["Key"].split("/")[2] for item in listed} == {NEW}  # the old set pruned, the new one kept

    set_prefix = f"{PREFIX}/prod/{NEW}/"
    admin.put_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/manifest.json", Body=b"{}")
    node = server.client(**keys[NODES[0]])
    node.get_object(Bucket=BUCKET, Key=f"{set_prefix}nodes/{NODES[1]}/part.json")  # reading is allowed
    node.put_object(Bucket=BUCKET, Key=f"{set_prefix}nodes/{NODES[0]}/extra", Body=b"x")  # its own keys
    for attempt in (
        # another node's part and snapshots, or a key shared by the set
        lambda: node.put_object(Bucket=BUCKET, Key=f"{set_prefix}nodes/{NODES[1]}/part.json", Body=b"{}"),
        lambda: node.put_object(
            Bucket=BUCKET, Key=f"{set_prefix}nodes/{NODES[1]}/cities/1.snapshot", Body=b"x"
        ),
        lambda: node.put_object(Bucket=BUCKET, Key=f"{set_prefix}manifest.json", Body=b"{}"),
        lambda: node.put_object(Bucket=BUCKET, Key=f"{set_prefix}parts/1001.json", Body=b"{}"),
        # deleting, even its own objects
        lambda: node.delete_object(Bucket=BUCKET, Key=f"{set_prefix}nodes/{NODES[0]}/part.json"),
        lambda: node.delete_object(Bucket=BUCKET, Key=f"{set_prefix}nodes/{NODES[1]}/part.json"),
        # another cluster, or outside the backups
        lambda: node.get_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/manifest.json"),
        lambda: node.put_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/x", Body=b"x"),
        lambda: node.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/other/{NEW}/manifest.json"),
        lambda: node.put_object(Bucket=BUCKET, Key="elsewhere", Body=b"x"),
    ):
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            attempt()
    # A multi-object delete answers per key (as on AWS): every key refused, every object kept.
    doomed = [{"Key": item["Key"]} for item in listed]
    answer = node.delete_objects(Bucket=BUCKET, Delete={"Objects": doomed})
    assert {e["Code"] for e in answer["Errors"]} == {"AccessDenied"} and not answer.get("Deleted")
    assert len(admin.list_objects_v2(Bucket=BUCKET, Prefix=set_prefix)["Contents"]) == len(listed) + 1
    pruning = server.client(**keys["pruner"])
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        pruning.put_object(Bucket=BUCKET, Key=f"{set_prefix}nodes/{NODES[0]}/part.json", Body=b"{}")


# -- issue 33, reproduction 1: one node's credentials against the sealed sets ----------------------
FORGED_FUTURE, FORGED_RECENT = "20991231T000000Z", "20261124T120000Z"


def test_one_node_can_neither_forge_a_set_nor_get_genuine_ones_pruned(
    enforcing_s3, stub_nodes, tmp_path, capsys
):
    server, keys = enforcing_s3

    def config(node_url: str, user: str) -> str:
        return write_config(tmp_path, server, keys, node_url, user, keep_last=2, incomplete_max_age="1s")

    configs = [config(node.url, name) for node, name in zip(stub_nodes, NODES, strict=True)]
    pruner = config(stub_nodes[0].url, "pruner")
    for backup_id in (OLD, NEW):
        for path in configs:
            assert main(["backup", "run", "--config", path, "--backup-id", backup_id]) == 0, (
                capsys.readouterr().err
            )
    assert main(["backup", "seal", "--config", configs[0]]) == 2  # a node may not seal
    assert "only the sealer (the pruning role on the monitoring host) may seal" in capsys.readouterr().err
    assert main(["backup", "seal", "--config", pruner]) == 0
    capsys.readouterr()

    admin, attacker = server.client(**keys["admin"]), server.client(**keys[NODES[0]])
    forge_set(
        attacker, admin, BUCKET, f"{PREFIX}/prod/", node=NODES[0], genuine_id=NEW, forged_id=FORGED_FUTURE
    )
    forge_set(
        attacker, admin, BUCKET, f"{PREFIX}/prod/", node=NODES[0], genuine_id=NEW, forged_id=FORGED_RECENT
    )
    # The attacker rewrites its own part record in the genuine sets (on AWS its policy refuses a write
    # without If-None-Match; moto cannot evaluate that condition, see for_moto): with it, S3 refuses.
    for backup_id in (OLD, NEW):
        key = f"{PREFIX}/prod/{backup_id}/nodes/{NODES[0]}/part.json"
        with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
            attacker.put_object(Bucket=BUCKET, Key=key, Body=b"{}", IfNoneMatch="*")
        part = json.loads(admin.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        attacker.put_object(
            Bucket=BUCKET, Key=key, Body=json.dumps({**part, "peer_id": part["peer_id"] + 1}).encode()
        )
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):  # nor can it seal its forgery
        attacker.put_object(
            Bucket=BUCKET, Key=f"{PREFIX}/prod/{FORGED_RECENT}/seal.json", Body=b"{}", IfNoneMatch="*"
        )

    assert main(["backup", "seal", "--config", pruner, "--json"]) == 0
    refused = {r["backup_id"]: "; ".join(r["problems"]) for r in json.loads(capsys.readouterr().out)}
    assert "lies in the future" in refused[FORGED_FUTURE]
    assert f"no part from member node(s) {NODES[1]}, {NODES[2]}" in refused[FORGED_RECENT]
    assert main(["backup", "list", "--config", configs[1], "--json"]) == 0
    statuses = {s["backup_id"]: s["status"] for s in json.loads(capsys.readouterr().out)}
    assert statuses == {
        FORGED_FUTURE: "unsealed",
        FORGED_RECENT: "unsealed",
        NEW: "complete",
        OLD: "complete",
    }

    # A plain restore takes the newest sealed set, from its seal: the forgeries and the rewritten
    # part records change nothing. (Dry run: the plan names the set and the genuine objects.)
    node_args = [arg for node in stub_nodes for arg in ("--node", node.url)]
    code = main(["restore", "--config", configs[1], *node_args, "--dry-run", "--json", "--overwrite",
                 "--staging-dir", str(tmp_path / "staging")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["backup_id"] == NEW and {p["peer_id"] for p in report["plan"]} == {1000, 1001, 1002}
    code = main(["restore", "--config", configs[1], *node_args, "--dry-run", "--backup-id", FORGED_RECENT,
                 "--staging-dir", str(tmp_path / "staging")])  # fmt: skip
    assert code == 2 and f"backup {FORGED_RECENT} is not sealed" in capsys.readouterr().err

    # Retention keeps both sealed sets (keep_last 2) and drops the unsealed forgeries once old enough.
    time.sleep(1.1)
    assert main(["backup", "prune", "--config", pruner, "--json"]) == 0, capsys.readouterr().err
    plan = {p["backup_id"]: p["keep"] for p in json.loads(capsys.readouterr().out)}
    assert plan == {FORGED_FUTURE: False, FORGED_RECENT: False, NEW: True, OLD: True}
