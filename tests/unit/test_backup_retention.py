"""Retention: which sets `backup prune` keeps (a pure plan, tested on calendars) and what it
deletes from a real S3 protocol endpoint (moto server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from qdrant_ops.backup import catalog, model, retention
from qdrant_ops.backup.retention import Retention, plan_prune
from qdrant_ops.backup.s3 import S3Settings
from qdrant_ops.errors import ConfigError
from tests.support.s3 import TEST_CREDENTIALS

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def daily_sets(days: int, status: str = "complete") -> list[dict]:
    """One set per day at midnight, newest first, as list_sets returns them."""
    sets = []
    for age in range(days):
        moment = (NOW - timedelta(days=age)).replace(hour=0)
        sets.append(
            {"backup_id": moment.strftime(model.ID_FORMAT), "time": model.iso_time(moment), "status": status}
        )
    return sets


def kept(plan: list[dict]) -> list[str]:
    return [item["backup_id"][:8] for item in plan if item["keep"]]


def test_last_daily_weekly_monthly_over_a_year_of_daily_sets():
    plan = plan_prune(daily_sets(365), Retention(keep_last=3, daily=7, weekly=4, monthly=6), NOW)
    # 7 days (covering the last 3); the newest set of each of 4 ISO weeks (W48 and W47 fall in
    # those days, then the Sundays 11-15 and 11-08); the newest of each of 6 months (November is
    # covered, then the last day of October back to June).
    assert kept(plan) == [
        "20261124", "20261123", "20261122", "20261121", "20261120", "20261119", "20261118",
        "20261115", "20261108",
        "20261031", "20260930", "20260831", "20260731", "20260630",
    ]  # fmt: skip
    reasons = {item["backup_id"][:8]: item["reasons"] for item in plan}
    assert reasons["20261124"][:2] == ["newest complete", "last 1"]
    assert reasons["20261122"] == ["last 3", "daily 2026-11-22", "weekly 2026-W47"]
    assert reasons["20261031"] == ["monthly 2026-10"]
    assert reasons["20260101"] == ["not selected by any rule"]


def test_the_newest_complete_set_survives_a_zero_policy():
    sets = daily_sets(1, "incomplete") + daily_sets(5)[1:]
    plan = plan_prune(sets, Retention(keep_last=0, daily=0, weekly=0, monthly=0, incomplete_max_age=1), NOW)
    assert kept(plan) == ["20261123"]
    assert plan[1]["reasons"] == ["newest complete"]


def test_incomplete_sets_are_kept_while_young_and_dropped_when_old():
    sets = daily_sets(4, "incomplete")
    plan = plan_prune(sets, Retention(incomplete_max_age=2 * 86400), NOW)
    assert kept(plan) == ["20261124", "20261123"]  # 12 h and 36 h old: maybe still running
    assert all("incomplete but recent" in item["reasons"][0] for item in plan if item["keep"])


def test_a_negative_count_is_refused():
    with pytest.raises(ConfigError, match="retention daily must be 0 or more"):
        Retention(daily=-1)


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
