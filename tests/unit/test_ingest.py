"""The ingester's pure parts: sources, ids and routing (a whole run, in a child process against the
REST + gRPC stubs: tests/integration/test_ingest.py)."""

import io
import uuid

import pytest

from qdrant_ops.cli import print_progress
from qdrant_ops.errors import ConfigError
from qdrant_ops.ingest import pipeline, workers
from qdrant_ops.ingest.checkpoint import Checkpoint
from qdrant_ops.ingest.sources import DEFAULT_ID_NAMESPACE


def test_route_sends_one_id_to_one_sender_and_spreads_ids():
    assert pipeline.route(12, 4) == pipeline.route(12, 4) == 0
    assert pipeline.route("0b5e6d2c-9a71-4d3b-8f65-2f5c9f3f8e11", 3) == pipeline.route(
        "0b5e6d2c-9a71-4d3b-8f65-2f5c9f3f8e11", 3
    )
    spread = {pipeline.route(str(uuid.uuid5(DEFAULT_ID_NAMESPACE, str(i))), 4) for i in range(100)}
    assert spread == {0, 1, 2, 3}


def test_progress_line_shows_rate_percent_and_eta():
    out = io.StringIO()
    print_progress(out)({"written": 50_000, "seconds": 10.0, "fraction": 0.25, "retries": 2})
    line = out.getvalue()
    assert line.startswith("\r") and "50,000 points" in line and "5,000/s" in line
    assert "25.0%" in line and "ETA 0m30s" in line and "retries 2" in line


def test_retry_classification():
    assert all(workers.is_transient(c) for c in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"))
    assert not any(workers.is_transient(c) for c in ("INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED"))
    assert workers.retry_delay(0, 0.5, 30, retry_after=4) >= 4
    assert all(workers.retry_delay(10, 0.5, 30) <= 30 for _ in range(50))
    # a server's hint cannot stretch a pause past max_backoff, or the longest send would not hold
    assert workers.retry_delay(0, 0.5, 30, retry_after=3600) == 30


def test_longest_send_counts_every_attempt_and_pause():
    settings = workers.SenderSettings(
        targets=("127.0.0.1:6334",), tls=False, ca_file=None, api_key=None, collection="c",
        ordering="weak", timeout=60.0, retries=8, backoff=0.5, max_backoff=30.0,
    )  # fmt: skip
    # 9 attempts of 60 s, pauses 0.5 + 1 + 2 + 4 + 8 + 16 + 30 + 30
    assert workers.longest_send(settings) == 9 * 60 + 91.5


def test_checkpoint_ranges_merge_and_refuse_another_source(tmp_path):
    checkpoint = Checkpoint(str(tmp_path / "ck.json"), "a.jsonl", "cities")
    for first, last in [(1, 10), (21, 30), (11, 20), (40, 45)]:
        checkpoint.add(first, last)
    assert checkpoint.ranges == [[1, 30], [40, 45]]
    assert checkpoint.done(30) and not checkpoint.done(31) and checkpoint.completed_records() == 36
    checkpoint.save(force=True)
    with pytest.raises(ConfigError, match=r"belongs to a.jsonl -> cities, not b.jsonl -> cities"):
        Checkpoint.load(str(tmp_path / "ck.json"), "b.jsonl", "cities")
