"""Bulk ingest into a real 3-node Qdrant cluster (QDRANT_BINARY): 100k points with exact counts;
a load killed mid-way and resumed with nothing missing or duplicated; a node restarted mid-load
with replication factor 2 and nothing lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import collections
from qdrant_ops.ingest import dataset

pytestmark = pytest.mark.qdrant
POINTS = 100_000
DIM = 64


def ingest_command(cluster, key_file, source, *extra) -> list[str]:
    urls = [arg for url in cluster.urls for arg in ("--url", url)]
    return [sys.executable, "-m", "qdrant_ops.cli", "ingest", str(source), "-c", "cities", *urls,
            "--api-key-file", str(key_file), "--grpc-port", str(cluster.nodes[0].grpc_port), "--json",
            *map(str, extra)]  # fmt: skip


@pytest.fixture
def loaded(qdrant_cluster, tmp_path):
    cluster = qdrant_cluster
    key_file = tmp_path / "key"
    key_file.write_text(cluster.api_key)
    source = tmp_path / "cities.parquet"
    dataset.generate(str(source), count=POINTS, dim=DIM, fmt="parquet")
    with ClusterClient(cluster.urls, cluster.api_key, retries=5, backoff=0.5, timeout=120) as client:
        spec = {"name": "cities", "vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 6,
                "replication_factor": 2, "payload_indexes": {"city": "keyword"}}  # fmt: skip
        collections.ensure_collection(client, spec)
        yield cluster, client, key_file, source


def test_100k_points_into_three_nodes_with_exact_counts(loaded):
    cluster, client, key_file, source = loaded
    command = ingest_command(cluster, key_file, source, "--defer-indexing")
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written"] == POINTS and report["verified"]["ok"]
    assert client.count_points("cities") == POINTS
    assert client.collection_info("cities")["config"]["optimizer_config"]["indexing_threshold"] == 10000
    point = client.get("/collections/cities/points/12345")
    assert set(point["payload"]) == {"city", "location"}


def test_killed_mid_way_then_resumed_leaves_every_point_once(loaded, tmp_path):
    cluster, client, key_file, source = loaded
    checkpoint = tmp_path / "ck.json"
    command = ingest_command(cluster, key_file, source, "--checkpoint", checkpoint, "--batch-size", "256")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while client.count_points("cities") < POINTS // 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    done = sum(end - start + 1 for start, end in json.loads(checkpoint.read_text())["completed"])
    assert 0 < done < POINTS
    result = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped"] == done and report["read"] == POINTS - done
    assert client.count_points("cities") == POINTS  # nothing missing, nothing twice
    ids = set()
    offset = None
    while True:  # every id is one of the dataset's
        page = client.request("POST", "/collections/cities/points/scroll",
                              json={"limit": 10_000, "offset": offset, "with_payload": False})  # fmt: skip
        ids.update(p["id"] for p in page["points"])
        offset = page["next_page_offset"]
        if offset is None:
            break
    assert ids == set(range(POINTS))


def test_a_node_restarted_mid_load_loses_nothing_with_replication_factor_2(loaded, tmp_path):
    cluster, client, key_file, source = loaded
    node = cluster.nodes[2]  # not the node the senders start on
    restarted = threading.Event()

    def restart_when_loading() -> None:
        deadline = time.monotonic() + 300
        while client.count_points("cities") < POINTS // 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        cluster.restart_node(node)
        restarted.set()

    worker = threading.Thread(target=restart_when_loading)
    worker.start()
    result = subprocess.run(ingest_command(cluster, key_file, source, "--batch-size", "256"),
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    worker.join(timeout=300)
    assert restarted.is_set()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written"] == POINTS and report["verified"]["ok"]
    cluster.wait_until(lambda: all(r["state"] == "Active" for r in _replicas(client)), "every replica Active")
    assert client.count_points("cities") == POINTS


def _replicas(client: ClusterClient) -> list[dict]:
    from qdrant_ops.cluster.health import shard_placement  # noqa: PLC0415

    return shard_placement(client.collection_cluster("cities"))
