"""Retention: which sets `backup prune` keeps, a pure plan tested on calendars (what it deletes
from S3: tests/integration/test_backup_retention.py)."""

from __future__ import annotations

import pytest

from qdrant_ops.backup.retention import Retention, plan_prune
from qdrant_ops.errors import ConfigError
from tests.support.backup_fixtures import NOW, daily_sets


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
