"""The restore drill (`qdrant-ops backup verify`) with real Qdrant (QDRANT_BINARY) and a set in S3
(moto server): a backup of a 3-node cluster (replication factor 2) is restored into a scratch
single-node Qdrant, compared with the manifest and the scratch node removed; the CLI writes the
drill's metrics. A set whose data differs from its manifest, a binary of another minor version and
a scratch disk too small are refused, each with the metrics saying the drill failed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qdrant_ops.backup import catalog, verify
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import collections
from qdrant_ops.ingest import dataset
from tests.support.e2e_data import backup_every_node, backup_settings, fill_vectors
from tests.support.qdrant_cluster import LocalQdrantCluster
from tests.support.s3 import TEST_CREDENTIALS

pytestmark = pytest.mark.qdrant
POINTS = 20_000
LAB_POINTS = 100_000
BACKUP_ID = "20261130T000000Z"


@pytest.fixture(scope="module")
def backed_up(qdrant_binary, tmp_path_factory, s3_server):
    s3_client = s3_server.client()
    bucket = "qdrant-ops-e2e-verify"
    s3_client.create_bucket(Bucket=bucket)
    settings = backup_settings(s3_server, bucket)
    with (
        LocalQdrantCluster(qdrant_binary, tmp_path_factory.mktemp("source"), size=3, api_key="k1") as cluster,
        ClusterClient(cluster.urls, cluster.api_key, retries=3, backoff=0.2, timeout=120) as client,
    ):
        fill_vectors(client, cluster, POINTS)
        backup_every_node(client, cluster.urls, settings, s3_client, BACKUP_ID)
    # The source cluster is gone: the drill needs nothing but the set and a binary.
    return settings, s3_client, s3_server


def config_file(tmp_path: Path, s3_server, bucket: str) -> Path:
    path = tmp_path / "backup.yml"
    path.write_text(yaml.safe_dump({
        "cluster": "e2e", "qdrant": {"url": "http://127.0.0.1:9"},
        "s3": {"bucket": bucket, "endpoint_url": s3_server.endpoint_url,
               "region": TEST_CREDENTIALS["region_name"], "access_key": TEST_CREDENTIALS["aws_access_key_id"],
               "secret_key": TEST_CREDENTIALS["aws_secret_access_key"]},
        "metrics_dir": str(tmp_path / "textfile"),
    }))  # fmt: skip
    return path


def drill(config: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "qdrant_ops.cli",
        "backup",
        "verify",
        "--config",
        str(config),
        "--json",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def metric(tmp_path: Path, name: str) -> float:
    text = (tmp_path / "textfile" / "qdrant_ops_backup_verify.prom").read_text()
    values = [
        line.split()[-1]
        for line in text.splitlines()
        if line.startswith(f"qdrant_ops_backup_verify_{name}{{")
    ]
    assert len(values) == 1, text
    return float(values[0])


def test_the_newest_set_restores_into_a_scratch_qdrant(backed_up, qdrant_binary, tmp_path):
    settings, _s3_client, s3_server = backed_up
    config = config_file(tmp_path, s3_server, settings.s3.bucket)
    workdir = tmp_path / "scratch"
    result = drill(config, "--qdrant-binary", qdrant_binary, "--workdir", str(workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["backup_id"] == BACKUP_ID and report["collections"] == {"vectors": POINTS}
    assert report["points_verified"] == POINTS and report["rounds"] == 1
    searches = report["golden"]["vectors"]
    assert searches["passed"] and searches["queries"] == 20 and searches["exact_differences"] == []
    print(
        f"\ngolden queries after the drill: recall {searches['recall']} (source {searches['source_recall']})"
    )
    assert metric(tmp_path, "golden_recall") == searches["recall"]
    print(f"\nrestore drill of {POINTS} points x 384 ({report['bytes']} bytes): {report['seconds']} s")
    assert list(workdir.iterdir()) == []  # the scratch node and its storage are gone
    assert metric(tmp_path, "last_run_success") == 1
    assert metric(tmp_path, "points_verified") == POINTS
    assert metric(tmp_path, "last_success_timestamp_seconds") > 0


def test_a_set_that_does_not_match_its_manifest_fails_the_drill(backed_up, qdrant_binary, tmp_path):
    settings, s3_client, s3_server = backed_up
    # The sealed manifest's sample says something the snapshots do not hold (the set's seal, as only
    # the sealer could write it): the restored point differs. Part records no longer count once sealed.
    bucket = settings.s3.bucket
    keys = [
        o["Key"]
        for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]
        if o["Key"].endswith("seal.json")
    ]
    originals = {key: s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
    sampled_id = None
    for key, body in originals.items():
        seal = json.loads(body)
        view = seal["manifest"]["collections"]["vectors"]
        view["sample"][0]["payload_sha256"] = "0" * 64
        sampled_id = view["sample"][0]["id"]
        s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(seal).encode())
    assert sampled_id is not None, f"no seal among {keys}"
    try:
        assert catalog.set_manifest(s3_client, settings, BACKUP_ID).status == "complete"
        config = config_file(tmp_path, s3_server, bucket)
        result = drill(config, "--qdrant-binary", qdrant_binary, "--workdir", str(tmp_path / "scratch"))
    finally:
        for key, body in originals.items():
            s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    assert result.returncode != 0
    assert f"point {sampled_id} differs in payload" in result.stderr, result.stderr[-3000:]
    assert metric(tmp_path, "last_run_success") == 0
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_binary_of_another_minor_is_refused_before_anything_starts(backed_up, tmp_path):
    settings, s3_client, _ = backed_up
    other = tmp_path / "qdrant"
    other.write_text('#!/bin/sh\necho "qdrant 1.0.0"\n')
    other.chmod(0o755)
    with pytest.raises(verify.VerifyError, match=r"made by Qdrant 1\.\d+\.\d+ but .* is 1\.0\.0"):
        verify.verify_set(s3_client, settings, verify.VerifyOptions(str(other), workdir=tmp_path / "scratch"))
    assert not (tmp_path / "scratch").exists() or list((tmp_path / "scratch").iterdir()) == []


def test_a_lab_shaped_set_loaded_by_the_ingester_restores(qdrant_cluster, s3_server, tmp_path):
    """The lab's shape (Cosine, the dataset generator's city/location payloads, the ingester with
    deferred indexing, 6 shards, replication factor 2), backed up node by node as the timers do."""
    s3_client = s3_server.client()
    bucket = "qdrant-ops-e2e-verify-lab"
    s3_client.create_bucket(Bucket=bucket)
    settings = backup_settings(s3_server, bucket)
    source = tmp_path / "cities.parquet"
    dataset.generate(str(source), count=LAB_POINTS, dim=384, fmt="parquet")
    key_file = tmp_path / "key"
    key_file.write_text(qdrant_cluster.api_key)
    cluster = qdrant_cluster
    with ClusterClient(cluster.urls, cluster.api_key, retries=5, backoff=0.5, timeout=120) as client:
        spec = {"name": "cities", "vectors": {"size": 384, "distance": "Cosine"}, "shard_number": 6,
                "replication_factor": 2, "payload_indexes": {"city": "keyword"}}  # fmt: skip
        collections.ensure_collection(client, spec)
        urls = [arg for url in qdrant_cluster.urls for arg in ("--url", url)]
        ingest = subprocess.run(
            [sys.executable, "-m", "qdrant_ops.cli", "ingest", str(source), "-c", "cities", *urls,
             "--api-key-file", str(key_file), "--grpc-port", str(qdrant_cluster.nodes[0].grpc_port),
             "--defer-indexing", "--json"],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert ingest.returncode == 0, ingest.stderr[-3000:]
        backup_every_node(client, qdrant_cluster.urls, settings, s3_client, BACKUP_ID)
    config = config_file(tmp_path, s3_server, bucket)
    result = drill(config, "--qdrant-binary", qdrant_cluster.binary, "--workdir", str(tmp_path / "scratch"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["points_verified"] == LAB_POINTS
    searches = report["golden"]["cities"]
    print(f"\nlab-shaped set, golden recall {searches['recall']} (source {searches['source_recall']})")
    assert searches["passed"] and searches["exact_differences"] == []


def test_sigterm_during_the_drill_stops_the_scratch_qdrant_and_removes_its_storage(
    backed_up, qdrant_binary, tmp_path
):
    # What systemd does when the timer's unit is stopped, or runs past its TimeoutStopSec.
    settings, _s3_client, s3_server = backed_up
    config = config_file(tmp_path, s3_server, settings.s3.bucket)
    workdir = tmp_path / "scratch"
    command = [sys.executable, "-m", "qdrant_ops.cli", "backup", "verify", "--config", str(config),
               "--qdrant-binary", qdrant_binary, "--workdir", str(workdir)]  # fmt: skip
    drill_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(workdir.glob("*/qdrant.log")):
        time.sleep(0.2)  # the scratch node is starting
    scratch = next(workdir.glob("*/qdrant.log")).parent
    drill_process.send_signal(signal.SIGTERM)
    _out, err = drill_process.communicate(timeout=120)
    assert drill_process.returncode != 0 and "Traceback" not in err, err[-2000:]
    assert not scratch.exists() and list(workdir.iterdir()) == []
    left = subprocess.run(["pgrep", "-f", str(scratch)], capture_output=True, text=True)
    assert left.stdout == "", "the scratch Qdrant outlived the drill"
