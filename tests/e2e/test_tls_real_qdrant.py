"""Every tool of the project against a real 3-node Qdrant cluster running TLS the way the qdrant
role sets it up (REST, gRPC, mutual p2p TLS; one CA): the `qdrant-ops` CLI applies a collection,
ingests over gRPC, backs every node up to S3 (moto), restores into a wiped collection and reports
the cluster, each verifying the nodes' certificates with the cluster CA. A client without the CA
is refused, and a node whose certificate comes from another CA cannot join the cluster. A warm
standby with a CA of its own syncs from a TLS primary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster.collections import ensure_collection
from tests.support.e2e_data import fingerprints, upsert
from tests.support.qdrant_cluster import LocalQdrantCluster, QdrantNode
from tests.support.s3 import TEST_CREDENTIALS
from tests.support.tls import TestCA

pytestmark = pytest.mark.qdrant
API_KEY = "tls-test-key"
POINTS = 5_000


@pytest.fixture
def tls_cluster(qdrant_binary, tmp_path):
    with LocalQdrantCluster(
        qdrant_binary, tmp_path / "qdrant", size=3, api_key=API_KEY, tls_ca=TestCA()
    ) as cluster:
        yield cluster


def qdrant_ops(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "QDRANT_API_KEY": API_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "qdrant_ops.cli", *args],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, (
            f"qdrant-ops {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done


def test_every_tool_works_over_tls(tls_cluster, s3_server, s3_bucket, tmp_path):
    conn = [arg for url in tls_cluster.urls for arg in ("--url", url)] + ["--ca-file", tls_cluster.ca_file]
    assert all(url.startswith("https://") for url in tls_cluster.urls)

    # Collections as code and ingest over gRPC with TLS.
    spec = tmp_path / "cities.yml"
    spec.write_text(yaml.safe_dump({"name": "cities", "vectors": {"size": 16, "distance": "Dot"},
                                    "shard_number": 3, "replication_factor": 2,
                                    "payload_indexes": {"city": "keyword"}}))  # fmt: skip
    qdrant_ops("collections", "apply", "-f", str(spec), *conn)
    data = tmp_path / "cities.jsonl"
    qdrant_ops(
        "dataset", "generate", "--count", str(POINTS), "--dim", "16", "--format", "jsonl", "-o", str(data)
    )
    grpc_port = str(tls_cluster.nodes[0].grpc_port)
    report = json.loads(
        qdrant_ops(
            "ingest",
            str(data),
            "-c",
            "cities",
            "--grpc-port",
            grpc_port,
            "--workers",
            "2",
            "--decoders",
            "1",
            "--json",
            *conn,
        ).stdout
    )
    assert report["written"] == POINTS and report["failed"] == 0, report
    with ClusterClient(tls_cluster.urls, API_KEY, ca_file=tls_cluster.ca_file) as client:
        assert client.count_points("cities") == POINTS
    status = json.loads(qdrant_ops("cluster", "status", "--json", *conn).stdout)
    assert len(status["peers"]) == 3

    # The backup job of every node, as its timer runs it (backup.yml with the CA), then a restore.
    for node in tls_cluster.nodes:
        config = write_backup_config(tmp_path, node, tls_cluster.ca_file, s3_server, s3_bucket)
        qdrant_ops("backup", "run", "--config", str(config), "--backup-id", "20261201T000000Z")
    qdrant_ops("backup", "seal", "--config", str(config))  # the sealer's turn (the monitoring host's)
    shown = qdrant_ops("backup", "show", "20261201T000000Z", "--config", str(config), "--json")
    assert json.loads(shown.stdout)["status"] == "complete"
    qdrant_ops("collections", "delete", "cities", "--yes", *conn)
    restored = qdrant_ops("restore", "--config", str(config), "--backup-id", "20261201T000000Z", "--json",
                          *[arg for url in tls_cluster.urls for arg in ("--node", url)])  # fmt: skip
    assert json.loads(restored.stdout)["problems"] == []
    with ClusterClient(tls_cluster.urls, API_KEY, ca_file=tls_cluster.ca_file) as client:
        assert client.count_points("cities") == POINTS

    # Without the CA the certificate is not trusted: a clear error, no data touched.
    refused = qdrant_ops("collections", "list", "--url", tls_cluster.urls[0], check=False)
    assert refused.returncode != 0
    assert "certificate" in (refused.stderr + refused.stdout).lower(), refused.stderr


def write_backup_config(tmp_path, node: QdrantNode, ca_file: str, s3_server, bucket: str):
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY)
    config = tmp_path / f"backup-{node.index}.yml"
    config.write_text(yaml.safe_dump({
        "cluster": "tls-e2e", "node": f"node-{node.index}", "members": ["node-0", "node-1", "node-2"],
        "qdrant": {"url": node.url, "api_key_file": str(key_file), "ca_file": ca_file},
        "s3": {"bucket": bucket, "endpoint_url": s3_server.endpoint_url,
               "region": TEST_CREDENTIALS["region_name"], "access_key": TEST_CREDENTIALS["aws_access_key_id"],
               "secret_key": TEST_CREDENTIALS["aws_secret_access_key"]},
    }))  # fmt: skip
    return config


def test_a_node_with_a_certificate_from_another_ca_cannot_join(qdrant_binary, tmp_path):
    # Addresses, ports and certificates for four nodes; three form the cluster.
    cluster = LocalQdrantCluster(qdrant_binary, tmp_path / "qdrant", size=4, api_key=API_KEY, tls_ca=TestCA())
    intruder = cluster.nodes.pop()
    try:
        cluster.start()
        # Same names, same ports, a valid certificate: only the issuer differs.
        stranger = TestCA("someone else's CA")
        cluster.install_certificate(intruder, stranger.issue([intruder.host]), stranger.cert_pem)
        cluster.start_node(intruder, bootstrap_uri=cluster.nodes[0].p2p_uri)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and intruder.process.poll() is None:
            time.sleep(1)
        peers = cluster.cluster_status(cluster.nodes[0])["peers"]
        assert len(peers) == 3, f"a node with a foreign certificate joined: {peers}"
        assert intruder.host not in json.dumps(peers)
    finally:
        cluster.stop_node(intruder)
        cluster.stop()


def test_a_standby_with_its_own_ca_syncs_from_a_tls_primary(qdrant_binary, tmp_path):
    """Two clusters, two CAs. The standby's nodes fetch the primary's shards over HTTPS, trusting the
    primary's CA next to their own (the cacert.pem that qdrant_tls_trusted_ca_certs makes); the CLI
    checks both clusters with one bundle (what playbooks/standby.yml hands the sync timer)."""
    primary_ca, standby_ca = TestCA("primary CA"), TestCA("standby CA")
    bundle, pk, sk = tmp_path / "bundle.pem", tmp_path / "pk", tmp_path / "sk"
    bundle.write_text(standby_ca.cert_pem + primary_ca.cert_pem)
    pk.write_text("primary-key")
    sk.write_text("standby-key")
    spec = {
        "name": "docs",
        "vectors": {"size": 64, "distance": "Dot"},
        "shard_number": 3,
        "replication_factor": 2,
    }
    # The standby is made once the primary runs: each cluster picks the ports free at that moment.
    primary = LocalQdrantCluster(
        qdrant_binary, tmp_path / "p", size=3, api_key="primary-key", tls_ca=primary_ca
    )
    with primary, ClusterClient(primary.urls, "primary-key", ca_file=primary.ca_file, timeout=120) as pc:
        secondary = LocalQdrantCluster(
            qdrant_binary, tmp_path / "s", size=3, api_key="standby-key", tls_ca=standby_ca
        )
        for node in secondary.nodes:  # trusting the primary's CA next to its own
            bundle_pem = standby_ca.cert_pem + primary_ca.cert_pem
            secondary.install_certificate(node, standby_ca.issue([node.host]), bundle_pem)
        with (
            secondary,
            ClusterClient(secondary.urls, "standby-key", ca_file=secondary.ca_file, timeout=120) as sc,
        ):
            sync_and_compare(pc, sc, primary, secondary, bundle, pk, sk, spec)


def sync_and_compare(pc, sc, primary, secondary, bundle, pk, sk, spec) -> None:
    ensure_collection(pc, spec)
    upsert(pc, range(5_000), seed=1)
    urls = [a for u in primary.urls for a in ("--primary-url", u)]
    urls += [a for u in secondary.urls for a in ("--standby-url", u)]
    keys = ["--primary-api-key-file", str(pk), "--standby-api-key-file", str(sk), "--json"]
    qdrant_ops("standby", "init", *urls, *keys, "--ca-file", str(bundle))
    synced = json.loads(qdrant_ops("standby", "sync", *urls, *keys, "--ca-file", str(bundle)).stdout)
    assert any(t["result"].startswith("updated") for t in synced["transfers"]), synced
    assert fingerprints(sc) == fingerprints(pc)
    # Without the primary's CA in the bundle the CLI refuses the primary's certificate.
    alone = qdrant_ops("standby", "sync", *urls, *keys, "--ca-file", secondary.ca_file, check=False)
    assert alone.returncode != 0 and "certificate" in alone.stderr.lower(), alone.stderr
