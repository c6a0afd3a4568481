"""Golden queries against a real 3-node Qdrant (QDRANT_BINARY): drawn and answered on a collection
with a built HNSW index, they pass on it; once its index is rebuilt with other HNSW settings (m 2,
ef_construct 4: what a restore that lost the collection's settings would serve) the same data
still gives identical exact results, counts and points, and only the golden queries see the
difference (recall below the floor), as restore, `backup verify` and promotion then report it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import golden
from qdrant_ops.polling import wait_until

pytestmark = pytest.mark.qdrant
POINTS, DIM = 30_000, 128


def indexed(client: ClusterClient, name: str) -> str | None:
    """None once the collection is green and every vector is in an HNSW index."""
    info = client.collection_info(name)
    if info["status"] != "green" or (info.get("indexed_vectors_count") or 0) < POINTS:
        return f"status {info['status']}, {info.get('indexed_vectors_count')} of {POINTS} vectors indexed"
    return None


def test_golden_queries_pass_on_their_source_and_catch_a_changed_index(qdrant_cluster, tmp_path):
    with ClusterClient(
        qdrant_cluster.urls, qdrant_cluster.api_key, retries=3, backoff=0.2, timeout=120
    ) as client:
        client.create_collection("docs", {
            "vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 2, "replication_factor": 1,
            "optimizers_config": {"indexing_threshold": 100},  # KB: every segment gets its graph
            # KB: a segment smaller than this is searched by full scan, exactly, graph or not (the
            # default 10000 makes this whole collection exact, whatever its HNSW settings)
            "hnsw_config": {"full_scan_threshold": 10},
        })  # fmt: skip
        rows = np.random.default_rng(7).standard_normal((POINTS, DIM), dtype=np.float32)
        for start in range(0, POINTS, 1000):
            batch = [{"id": i, "vector": rows[i].tolist()} for i in range(start, start + 1000)]
            client.upsert_points("docs", batch)
        wait_until(lambda: indexed(client, "docs"), timeout=300, interval=1, error=AssertionError)

        key = tmp_path / "key"
        key.write_text(qdrant_cluster.api_key)
        cli = [sys.executable, "-m", "qdrant_ops.cli", "golden"]
        connection = ["--url", qdrant_cluster.urls[0], "--api-key-file", str(key), "--json"]
        drawn = tmp_path / "golden.json"
        run = subprocess.run(
            [*cli, "draw", "-o", str(drawn), *connection], capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr[-2000:]
        run = subprocess.run(
            [*cli, "check", str(drawn), *connection], capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0 and json.loads(run.stdout)["problems"] == [], run.stderr[-2000:]

        params = client.collection_info("docs")["config"]["params"]
        stored = golden.capture(client, "docs", params, count=20, seed=0)
        assert len(stored["queries"]) == 20 and all(len(q["exact"]) == 10 for q in stored["queries"])
        # Drawn from its own points: each query's nearest point is itself.
        assert all(q["exact"][0][0] == q["point_id"] for q in stored["queries"])
        again = golden.capture(client, "docs", params, count=20, seed=0)
        assert [q["point_id"] for q in again["queries"]] == [q["point_id"] for q in stored["queries"]]

        same = golden.check(client, "docs", stored)
        print(f"\ngolden queries on their source: {same.summary('docs')}")
        assert same.passed and same.exact_differences == () and same.queries == 20

        client.update_collection("docs", {"hnsw_config": {"m": 2, "ef_construct": 4}})
        # The optimizer rebuilds every segment's graph with the new settings; wait until it has.
        wait_until(
            lambda: None if not golden.check(client, "docs", stored).passed and not indexed(client, "docs")
            else "the old graph still answers",
            timeout=300, interval=2, error=AssertionError,
        )  # fmt: skip
        changed = golden.check(client, "docs", stored)
        print(f"golden queries after the index changed: {changed.summary('docs')}")
        assert client.count_points("docs") == POINTS
        assert changed.exact_differences == ()  # the data is the same
        assert changed.recall_too_low and not changed.passed
        assert any("the index differs from the one backed up" in p for p in changed.problems("docs"))
        # The command a rolling upgrade runs says so too: exit 1, naming the collection.
        run = subprocess.run(
            [*cli, "check", str(drawn), *connection], capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 1, run.stderr[-2000:]
        assert "docs: the index finds recall@10" in json.loads(run.stdout)["problems"][0]
