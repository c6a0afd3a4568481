"""Qdrant's next minor release (QDRANT_BINARY_NEXT, 1.19.x) where it differs from 1.18 for this
project (docs/qdrant-behaviour.md §2, §5): memory placements in collection specs, and bulk
ingest when a shard's update queue is full and Qdrant holds `wait=false` writes. The queue is set
to 2 operations here so that holding happens on every run, not only under production load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster.collections import ensure_collection
from qdrant_ops.ingest import dataset
from tests.support.qdrant_cluster import LocalQdrantCluster

pytestmark = pytest.mark.qdrant
POINTS = 30_000
DIM = 64


@pytest.fixture
def cluster(qdrant_binary_next, tmp_path):
    with LocalQdrantCluster(qdrant_binary_next, tmp_path / "qdrant", size=3, api_key="test-key",
                            storage={"update_queue_size": 2}) as cluster:  # fmt: skip
        yield cluster


@pytest.fixture
def client(cluster):
    with ClusterClient(cluster.urls, cluster.api_key, retries=5, backoff=0.5, timeout=120) as client:
        yield client


def test_memory_placements_are_applied_and_a_second_apply_changes_nothing(client):
    spec = {
        "name": "placed",
        "vectors": {"size": 4, "distance": "Cosine", "memory": "cold"},
        "shard_number": 3,
        "replication_factor": 2,
        "hnsw_config": {"memory": "cached"},
        "quantization_config": {"scalar": {"type": "int8", "memory": "pinned"}},
        "payload": {"memory": "cached"},
    }
    assert ensure_collection(client, spec).action == "create"
    assert ensure_collection(client, spec).action == "none"
    config = client.collection_info("placed")["config"]
    assert config["params"]["vectors"]["memory"] == "cold"
    assert config["params"]["payload"] == {"memory": "cached"}
    assert config["hnsw_config"]["memory"] == "cached"
    assert config["quantization_config"]["scalar"]["memory"] == "pinned"

    moved = {**spec, "vectors": {**spec["vectors"], "memory": "cached"}, "payload": {"memory": "cold"}}
    plan = ensure_collection(client, moved)
    assert plan.action == "update" and set(plan.patch) == {"vectors", "params"}
    config = client.collection_info("placed")["config"]
    assert config["params"]["vectors"]["memory"] == "cached"
    assert config["params"]["payload"] == {"memory": "cold"}
    assert ensure_collection(client, moved).action == "none"


def test_ingest_is_exact_while_qdrant_holds_writes_for_a_full_update_queue(cluster, client, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(cluster.api_key)
    source = tmp_path / "cities.parquet"
    dataset.generate(str(source), count=POINTS, dim=DIM, fmt="parquet")
    spec = {"name": "cities", "vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 3,
            "replication_factor": 2}  # fmt: skip
    ensure_collection(client, spec)
    urls = [arg for url in cluster.urls for arg in ("--url", url)]
    command = [sys.executable, "-m", "qdrant_ops.cli", "ingest", str(source), "-c", "cities", *urls,
               "--api-key-file", str(key_file), "--grpc-port", str(cluster.nodes[0].grpc_port), "--json",
               "--batch-size", "64", "--workers", "4"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["written"] == POINTS and report["failed"] == 0 and report["verified"]["ok"]
    assert client.count_points("cities") == POINTS
