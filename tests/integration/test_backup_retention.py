"""Retention: what `backup prune` deletes from a real S3 protocol endpoint (moto server); the plan
itself: tests/unit/test_backup_retention.py."""

from __future__ import annotations

import json
from datetime import timedelta

from qdrant_ops.backup import catalog, model, retention
from qdrant_ops.backup.retention import Retention
from qdrant_ops.backup.s3 import S3Settings
from tests.support.backup_fixtures import NOW, daily_sets
from tests.support.s3 import TEST_CREDENTIALS


# -- against S3 --------------------------------------------------------------------------------------
def put_set(s3_client, bucket: str, backup_id: str, status: str) -> None:
    prefix = f"qdrant-backups/prod/{backup_id}/"
    s3_client.put_object(Bucket=bucket, Key=prefix + "cities/1000.snapshot", Body=b"x" * 10)
    s3_client.put_object(Bucket=bucket, Key=prefix + "parts/1000.json", Body=b"{}")
    manifest = {
        "status": status,
        "started": None,
        "collections": {"cities": {}},
        "peers": [{}],
        "problems": [],
    }
    s3_client.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())


def test_prune_dry_run_deletes_nothing_then_prune_deletes_whole_sets(s3_server, s3_client, s3_bucket):
    settings = model.BackupSettings(
        cluster="prod",
        s3=S3Settings(bucket=s3_bucket, endpoint_url=s3_server.endpoint_url, region="us-east-1",
                      access_key=TEST_CREDENTIALS["aws_access_key_id"],
                      secret_key=TEST_CREDENTIALS["aws_secret_access_key"]),
    )  # fmt: skip
    for item in daily_sets(6):
        put_set(s3_client, s3_bucket, item["backup_id"], "complete")
    old_incomplete = (NOW - timedelta(days=10)).replace(hour=0).strftime(model.ID_FORMAT)
    put_set(s3_client, s3_bucket, old_incomplete, "incomplete")
    s3_client.put_object(
        Bucket=s3_bucket, Key="qdrant-backups/other/20200101T000000Z/manifest.json", Body=b"{}"
    )
    policy = Retention(keep_last=2, daily=0, weekly=0, monthly=0)

    plan = retention.prune(s3_client, settings, policy, dry_run=True, now=NOW)
    assert [p["keep"] for p in plan] == [True, True, False, False, False, False, False]
    assert len(s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]) == 7 * 3 + 1

    plan = retention.prune(s3_client, settings, policy, dry_run=False, now=NOW)
    assert [p.get("deleted_objects") for p in plan] == [None, None, 3, 3, 3, 3, 3]
    remaining = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert [k for k in remaining if "/prod/" in k][::3] == [
        "qdrant-backups/prod/20261123T000000Z/cities/1000.snapshot",
        "qdrant-backups/prod/20261124T000000Z/cities/1000.snapshot",
    ]
    assert "qdrant-backups/other/20200101T000000Z/manifest.json" in remaining  # another cluster's sets
    assert [s["backup_id"] for s in catalog.list_sets(s3_client, settings)] == [
        "20261124T000000Z",
        "20261123T000000Z",
    ]
