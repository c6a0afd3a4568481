"""Restore from a backup set, through the CLI, against three stub nodes that share one cluster state
(the stub's snapshots carry their points, so a recover really brings them back) and a moto S3
endpoint: per-shard (format 4) restores, a format 1 set node by node, each refusal with nothing
changed, a dry run, and a restore that comes out different (the pure planning: tests/unit). The
same procedure against a real Qdrant cluster is in tests/e2e/test_restore_real_qdrant.py."""

from __future__ import annotations

import copy
import json
import re
import socket
from collections import Counter
from itertools import pairwise

import pytest
import yaml

from qdrant_ops.backup import job, model, node_part, s3
from qdrant_ops.backup.s3 import S3Settings
from qdrant_ops.cli import EXIT_ERROR, main
from tests.support.backup_fixtures import corrupt_one_object
from tests.support.s3 import TEST_CREDENTIALS

API_KEY = "stub-secret-key"


BACKUP_ID = "20261124T000000Z"


@pytest.fixture
def cluster(stub_nodes, tmp_path, s3_server, s3_bucket):
    """Three stub nodes with a backup config each; the original points of the demo collections."""
    (tmp_path / "api-key").write_text(API_KEY)
    configs = []
    for index, node in enumerate(stub_nodes):
        config = tmp_path / f"backup-{index}.yml"
        config.write_text(yaml.safe_dump({
            "cluster": "prod",
            "qdrant": {"url": node.url, "api_key_file": str(tmp_path / "api-key")},
            "s3": {"bucket": s3_bucket, "prefix": "qdrant-backups", "endpoint_url": s3_server.endpoint_url,
                   "region": TEST_CREDENTIALS["region_name"], "max_attempts": 1,
                   "access_key": TEST_CREDENTIALS["aws_access_key_id"],
                   "secret_key": TEST_CREDENTIALS["aws_secret_access_key"]},
            "metrics_dir": str(tmp_path / "textfiles"),
            "members": ["peer-1000", "peer-1001", "peer-1002"],
        }))  # fmt: skip
        configs.append(str(config))
    original = copy.deepcopy(stub_nodes[0].state.points)
    return stub_nodes, configs, original


def backup_all(configs, backup_id=BACKUP_ID, count=None, seal=True):
    """Every node's part (or the first `count`), then the sealer's run: only sealed sets restore."""
    for config in configs[:count]:
        assert main(["backup", "run", "--config", config, "--backup-id", backup_id]) == 0
    if seal:
        assert main(["backup", "seal", "--config", configs[0]]) == 0


def drop_everything(nodes) -> None:
    nodes[0].state.collections.clear()  # shared by the three stub nodes
    nodes[0].state.points.clear()
    nodes[0].state.placement.clear()


def staged_files(tmp_path) -> list:
    return sorted((tmp_path / "staging").rglob("*.snapshot*"))


def run_restore(capsys, tmp_path, nodes, configs, *extra) -> tuple[int, str, str]:
    capsys.readouterr()  # what the backups printed
    node_args = [arg for node in nodes for arg in ("--node", node.url)]
    code = main(
        ["restore", "--config", configs[0], *node_args, "--staging-dir", str(tmp_path / "staging"), *extra]
    )
    out, err = capsys.readouterr()
    return code, out, err


def recovered(nodes) -> Counter:
    return Counter(
        (name, shard, priority) for node in nodes for name, shard, priority in node.state.recovered
    )


def recover_requests(nodes) -> list[tuple]:
    """(kind, body) of every recover the nodes received: 'url' (PUT .../recover) or 'upload'."""
    return [
        ("url" if path.endswith("/recover") else "upload", body)
        for node in nodes
        for method, path, _, body, *_ in node.state.requests
        if path.endswith(("/snapshots/recover", "/snapshots/upload"))
    ]


@pytest.mark.parametrize("fetch_by", ["nodes", "restorer"])
def test_every_collection_deleted_then_restored_shard_by_shard(fetch_by, cluster, capsys, tmp_path):
    nodes, configs, original = cluster
    backup_all(configs)
    drop_everything(nodes)

    code, out, err = run_restore(capsys, tmp_path, nodes, configs, "--json", "--fetch-by", fetch_by)

    assert code == 0, err
    report = json.loads(out)
    assert report["backup_id"] == BACKUP_ID and report["problems"] == [] and report["format"] == 4
    assert report["fetch_by"] == fetch_by
    kinds = Counter(kind for kind, _ in recover_requests(nodes))
    assert kinds == Counter({"url" if fetch_by == "nodes" else "upload": 9})
    if fetch_by == "nodes":  # each node fetched a presigned URL itself, and was given the sha256
        for _, body in recover_requests(nodes):
            assert "X-Amz-Signature=" in body["location"] and len(body["checksum"]) == 64
        assert report["download_seconds"] == 0 and not (tmp_path / "staging").exists()
    assert nodes[0].state.points == original
    # every replica of every shard recovered once (the demo collections have one replica), no_sync
    expected = {("cities", s, "no_sync") for s in range(6)} | {("places", s, "no_sync") for s in range(3)}
    assert recovered(nodes) == Counter(expected)
    assert all(node.state.recovered for node in nodes)
    info = nodes[1].state.info("cities")
    assert info["config"]["params"]["shard_number"] == 6  # created from the manifest's config
    assert staged_files(tmp_path) == []  # cleaned up
    assert API_KEY not in out + err


@pytest.mark.parametrize("fetch_by", ["nodes", "restorer"])
def test_without_a_terminal_each_snapshot_done_prints_a_progress_line(fetch_by, cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)

    code, _, err = run_restore(capsys, tmp_path, nodes, configs, "--fetch-by", fetch_by)  # stderr is no tty

    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("progress: restore ")]
    done = [int(re.match(r"progress: restore (\d+)/9 snapshots recovered, ", line)[1]) for line in lines]
    assert done == list(range(1, 10)), err  # every one of the 9 shard snapshots, counted once
    assert re.search(r"progress: restore 9/9 snapshots recovered, [0-9.]+ \w+ of [0-9.]+ \w+ \(100%\), "
                     r"[0-9.]+ \w+/s: \w+ shard \d+", lines[-1]), lines[-1]  # fmt: skip
    assert all("ETA" in line for line in lines[:-1]) and "ETA" not in lines[-1]
    downloads = [line for line in err.splitlines() if line.startswith("progress: download ")]
    assert len(downloads) == (9 if fetch_by == "restorer" else 0), err


def test_with_json_stderr_streams_events_and_stdout_keeps_the_one_result(cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)

    code, out, err = run_restore(capsys, tmp_path, nodes, configs, "--json", "--fetch-by", "restorer")

    assert code == 0, err
    result = json.loads(out)  # stdout: the result document alone
    assert result["backup_id"] == BACKUP_ID
    events = [json.loads(line) for line in err.splitlines()]  # stderr: every line one JSON event ...
    assert {event["event"] for event in events} == {"log", "progress", "summary"}
    assert events[-1]["event"] == "summary" and events[-1]["result"] == result  # ... ending with the result
    recovered_events = [e for e in events if e["event"] == "progress" and e["operation"] == "restore"]
    assert [e["items"] for e in recovered_events] == list(range(1, 10))
    last = recovered_events[-1]
    assert last["total_items"] == 9 and last["bytes"] == last["total_bytes"] > 0
    assert last["eta_seconds"] is None
    downloads = [e for e in events if e["event"] == "progress" and e["operation"] == "download"]
    assert downloads[-1]["items"] == 9 and downloads[-1]["bytes"] == downloads[-1]["total_bytes"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["time"]) for e in events)


def test_with_json_a_failure_is_an_error_event_and_the_result_says_it(cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    backup_all(configs)  # the collections still exist: restore refuses without overwrite

    code, out, err = run_restore(capsys, tmp_path, nodes, configs, "--json")

    assert code == EXIT_ERROR
    last = json.loads(err.splitlines()[-1])
    assert last["event"] == "error" and "pass overwrite" in last["message"]
    assert last["exit_code"] == EXIT_ERROR
    assert json.loads(out) == {"error": last["message"], "exit_code": EXIT_ERROR}


def test_existing_collections_are_replaced_only_with_overwrite(cluster, capsys, tmp_path):
    nodes, configs, original = cluster
    backup_all(configs)
    nodes[0].state.points["cities"][0]["payload"] = {"city": "changed after the backup"}
    code, _, err = run_restore(capsys, tmp_path, nodes, configs)
    assert code == EXIT_ERROR and "already exist on the target: pass overwrite" in err
    assert not recovered(nodes)
    code, _, err = run_restore(capsys, tmp_path, nodes, configs, "--overwrite", "--collection", "cities")
    assert code == 0, err
    # the set is checked here before the delete, so this host downloads and uploads it
    assert "downloaded and checked here first" in err and {k for k, _ in recover_requests(nodes)} == {
        "upload"
    }
    assert nodes[0].state.points["cities"] == original["cities"]
    deletes = [
        r for n in nodes for r in n.state.requests if r[0] == "DELETE" and r[1] == "/collections/cities"
    ]
    assert len(deletes) == 1


def write_format1_set(nodes, settings: model.BackupSettings, s3_client, backup_id: str = BACKUP_ID) -> None:
    """A set as qdrant-ops wrote it before shard snapshots: a collection snapshot per node."""
    layout = settings.layout
    from qdrant_ops.client import ClusterClient  # noqa: PLC0415

    for node in nodes:
        with ClusterClient([node.url], API_KEY) as client:
            peer_id, peers = node_part.node_identity(client, node.url)
            part = {"format": 1, "backup_id": backup_id, "cluster": settings.cluster, "node": node.url,
                    "peer_id": peer_id, "peers": peers, "qdrant_version": client.version(), "status": "ok",
                    "started": "2026-11-24T00:00:00Z", "finished": "2026-11-24T00:01:00Z",
                    "collections": {}, "snapshots": {}}  # fmt: skip
            for name in ("cities", "places"):
                part["collections"][name] = node_part.collection_view(client, name, 32)
                key = layout.snapshot_key(backup_id, name, peer_id)
                meta = {"collection": name, "peer-id": str(peer_id), "backup-id": backup_id}
                part["snapshots"][name] = node_part.snapshot_to_s3(
                    client, node.url, settings, s3_client, key=key, metadata=meta
                )
        s3.put_json(s3_client, settings.s3.bucket, layout.part_key(backup_id, peer_id), part)


def test_a_format_1_set_is_restored_node_by_node(cluster, capsys, tmp_path, s3_client, s3_bucket, s3_server):
    nodes, configs, original = cluster
    settings = model.BackupSettings(
        "prod",
        S3Settings(bucket=s3_bucket, prefix="qdrant-backups", endpoint_url=s3_server.endpoint_url,
                   region=TEST_CREDENTIALS["region_name"], access_key=TEST_CREDENTIALS["aws_access_key_id"],
                   secret_key=TEST_CREDENTIALS["aws_secret_access_key"]),
    )  # fmt: skip
    write_format1_set(nodes, settings, s3_client)
    assert main(["backup", "seal", "--config", configs[0]]) == 0  # written before nodes had own keys
    drop_everything(nodes)

    code, out, err = run_restore(capsys, tmp_path, nodes, configs, "--json")

    assert code == 0, err
    assert json.loads(out)["format"] == 1
    assert nodes[0].state.points == original
    for node in nodes:  # its own part of each collection, explicit priority
        assert {(name, priority) for name, _, priority in node.state.recovered} == {
            ("cities", "snapshot"),
            ("places", "snapshot"),
        }
    order = [node.state.recover_order for node in nodes]  # node by node
    assert all(max(before) < min(after) for before, after in pairwise(order)), order


def tamper_part(s3_client, bucket, change) -> None:
    key = f"qdrant-backups/prod/{BACKUP_ID}/nodes/peer-1000/part.json"
    part = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    change(part)
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(part).encode())


REFUSALS = {
    "incomplete set": ("is incomplete", []),
    "other minor version": ("restore only into the same minor version", []),
    "peer map on a shard set": (
        "a peer map applies to format 1 sets only",
        ["--map", "1000=http://127.0.0.1:1"],
    ),
    "unknown collection": ("has no collection nope", ["--collection", "nope"]),
    "key outside the layout": ("is not this node's key", []),
    "version that is a path": ("Qdrant version '1.18.3/../../../../tmp/evil' is not X.Y.Z", []),
    "bad parallel": ("parallel must be at least 1, got 0", ["--parallel", "0"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_change_nothing(case, cluster, capsys, tmp_path, s3_client, s3_bucket):
    nodes, configs, _ = cluster
    message, extra = REFUSALS[case]
    tampered = case in ("key outside the layout", "version that is a path")
    backup_all(configs, count=2 if case == "incomplete set" else None, seal=not tampered)
    drop_everything(nodes)
    if case == "other minor version":
        for node in nodes:
            node.state.version = "1.19.0"
    elif case == "key outside the layout":

        def elsewhere(part):  # shard 0 names shard 3's object, size and sha256: all else checks out
            part["shards"]["cities"]["0"] = dict(part["shards"]["cities"]["3"])

        tamper_part(s3_client, s3_bucket, elsewhere)
    elif case == "version that is a path":  # a node steering backup verify's binary template
        tamper_part(
            s3_client, s3_bucket, lambda part: part.update(qdrant_version="1.18.3/../../../../tmp/evil")
        )
    if tampered:  # before the seal: the sealer refuses the set (after it, the seal stands: test_trust)
        assert main(["backup", "seal", "--config", configs[0]]) == 0
    before = [len(node.state.requests) for node in nodes]

    code, _, err = run_restore(
        capsys,
        tmp_path,
        nodes,
        configs,
        *extra,
        *(
            ["--backup-id", BACKUP_ID]
            if case in ("incomplete set", "key outside the layout", "version that is a path")
            else []
        ),
    )

    assert code == EXIT_ERROR and message in err, err
    assert "Traceback" not in err
    assert not recovered(nodes) and nodes[0].state.collections == {}
    for node, count in zip(nodes, before, strict=True):
        changes = [r for r in node.state.requests[count:] if r[0] in ("PUT", "POST", "PATCH", "DELETE")]
        assert changes == [], changes
    assert staged_files(tmp_path) == []  # downloads removed


@pytest.mark.parametrize(
    ("fetch_by", "found_by"),
    [("restorer", "checksum mismatch for s3://"), ("nodes", "places shard 2 on http://127.0.0.1")],
)
def test_a_damaged_object_found_mid_restore_leaves_nothing_behind(
    fetch_by, found_by, cluster, capsys, tmp_path, s3_client, s3_bucket
):
    """Into a target without the collections, recoveries start while later objects download (or
    while other nodes fetch theirs); the last object of the plan is damaged, so some shards are
    already recovered when it is found (by this host, or by the node's checksum check)."""
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)
    corrupt_one_object(s3_client, s3_bucket, suffix="/places/2.snapshot")

    code, _, err = run_restore(capsys, tmp_path, nodes, configs, "--fetch-by", fetch_by)

    assert code == EXIT_ERROR and found_by in err and "Traceback" not in err
    assert "checksum mismatch" in err.lower()
    assert recovered(nodes)  # work had started: the pipeline is real
    assert nodes[0].state.collections == {}  # and was undone: no half-restored collection serves
    assert "cities: deleted again, the restore failed" in err
    assert staged_files(tmp_path) == []


def test_a_damaged_object_never_touches_the_collection_it_would_replace(
    cluster, capsys, tmp_path, s3_client, s3_bucket
):
    nodes, configs, original = cluster
    backup_all(configs)
    corrupt_one_object(s3_client, s3_bucket, suffix="/places/2.snapshot")
    before = [len(node.state.requests) for node in nodes]

    code, _, err = run_restore(capsys, tmp_path, nodes, configs, "--overwrite")

    assert code == EXIT_ERROR and "checksum mismatch for s3://" in err
    assert nodes[0].state.points == original and not recovered(nodes)
    for node, count in zip(nodes, before, strict=True):
        changes = [r for r in node.state.requests[count:] if r[0] in ("PUT", "POST", "PATCH", "DELETE")]
        assert changes == [], changes
    assert staged_files(tmp_path) == []


def test_a_failed_overwrite_says_what_it_deleted_and_how_to_restore_it(cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    backup_all(configs)
    for node in nodes:
        node.state.recover_error = "No space left on device (os error 28)"

    code, _, err = run_restore(capsys, tmp_path, nodes, configs, "--overwrite", "--collection", "cities")

    assert code == EXIT_ERROR and "No space left on device" in err
    assert "The overwrite had deleted the existing cities before: they stay gone" in err
    assert f"run `qdrant-ops restore --backup-id {BACKUP_ID} --collection cities`" in err
    assert "cities" not in nodes[0].state.collections and "places" in nodes[0].state.collections
    for node in nodes:
        node.state.recover_error = None
    code, _, err = run_restore(
        capsys, tmp_path, nodes, configs, "--backup-id", BACKUP_ID, "--collection", "cities"
    )
    assert code == 0, err


def test_nodes_that_cannot_reach_s3_fail_clearly_without_showing_the_signature(cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)
    for node in nodes:
        node.state.s3_unreachable = True

    code, _, err = run_restore(capsys, tmp_path, nodes, configs)

    assert code == EXIT_ERROR and "Connection refused" in err and "fetch_by restorer" in err
    assert "X-Amz-Signature=<hidden>" in err  # Qdrant's message names the URL: its signature is cut
    assert "X-Amz-Credential=<hidden>" in err and TEST_CREDENTIALS["aws_access_key_id"] not in err
    assert nodes[0].state.collections == {}  # the collections created for the restore are gone again


def test_the_old_node_form_is_refused_with_the_new_one(cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    code = main(["restore", "--config", configs[0], "--node", f"{nodes[0].url}=/var/lib/qdrant/snapshots"])
    assert code == EXIT_ERROR and "--url takes a URL only" in capsys.readouterr().err


def test_dry_run_checks_and_prints_the_plan(cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)
    code, out, _ = run_restore(capsys, tmp_path, nodes, configs, "--dry-run")
    assert code == 0 and "dry run, nothing changed" in out and "format 4" in out
    assert out.count("cities") == 6 and out.count("places") == 3  # one row a shard
    assert not recovered(nodes) and nodes[0].state.collections == {}
    assert staged_files(tmp_path) == []


def test_a_restore_that_comes_out_different_fails_and_says_how(cluster, capsys, tmp_path):
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)
    for node in nodes:
        node.state.recover_loses_points = 1  # each shard's recover drops its last point
    code, _, err = run_restore(capsys, tmp_path, nodes, configs)
    assert code == EXIT_ERROR
    assert "differs from the backup: cities: 4 points, the backup has 10" in err
    assert "sampled point 9 is missing" in err


def test_a_workstation_lists_and_restores_without_any_config_file(cluster, capsys, tmp_path, monkeypatch):
    """The repository from flags or the environment, credentials from AWS's own variables, the
    target's key from --api-key-file: no backup.yml (issue 34, item 6)."""
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)
    with open(configs[0]) as handle:
        settings = yaml.safe_load(handle)["s3"]
    monkeypatch.setattr(job, "DEFAULT_PATH", str(tmp_path / "no-such-backup.yml"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", settings["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", settings["secret_key"])
    where = ["--endpoint-url", settings["endpoint_url"], "--region", settings["region"]]
    capsys.readouterr()
    assert (
        main(["backup", "list", "--bucket", settings["bucket"], "--cluster", "prod", *where, "--json"]) == 0
    )
    listed = json.loads(capsys.readouterr().out)
    assert [(s["backup_id"], s["status"]) for s in listed] == [(BACKUP_ID, "complete")]

    monkeypatch.setenv("QDRANT_OPS_S3_BUCKET", settings["bucket"])
    monkeypatch.setenv("QDRANT_OPS_CLUSTER", "prod")
    urls = [arg for node in nodes for arg in ("--url", node.url)]
    code = main(["restore", *where, *urls, "--api-key-file", str(tmp_path / "api-key"), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0 and f"backup {BACKUP_ID} (format 4): restore plan (dry run" in out, err

    monkeypatch.delenv("QDRANT_OPS_S3_BUCKET")
    assert main(["backup", "list", *where]) == EXIT_ERROR
    assert "pass --bucket and --cluster" in capsys.readouterr().err


def test_a_lock_asked_for_that_cannot_be_taken_stops_the_restore_before_anything(cluster, capsys, tmp_path):
    """--alertmanager-url given (the healer's lock, docs/self-healing.md) but nobody answers there:
    the restore stops before it recovers anything; the lock's cluster is the config's."""
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    code, _, err = run_restore(
        capsys, tmp_path, nodes, configs, "--alertmanager-url", f"http://127.0.0.1:{closed}"
    )
    assert code == EXIT_ERROR
    assert "cannot take the planned-work lock" in err and "did not answer" in err
    assert not recovered(nodes) and nodes[0].state.collections == {}


def test_golden_queries_in_the_set_and_a_collection_that_refuses_exact_search(cluster, capsys, tmp_path):
    """The set carries golden queries and the restore runs them; a collection whose strict mode
    forbids exact search costs the set its golden queries, not the backup."""
    nodes, configs, _ = cluster
    backup_all(configs)
    drop_everything(nodes)
    code, _, err = run_restore(capsys, tmp_path, nodes, configs)
    assert code == 0, err
    assert (
        "cities: 10 golden queries, recall@10 1.000 (source 1.000, floor 0.950), exact search identical"
        in err
    )
    assert "places: no golden queries in the set" in err  # payload only: nothing to search

    for node in nodes:
        node.state.refuse_exact_search = True
    backup_all(configs, backup_id="20261125T000000Z")
    drop_everything(nodes)
    for node in nodes:
        node.state.refuse_exact_search = False
    code, _, err = run_restore(capsys, tmp_path, nodes, configs, "--backup-id", "20261125T000000Z")
    assert code == 0, err
    assert (
        "cities: no golden queries in the set (not drawn: HTTP 403: Forbidden: Exact search disabled" in err
    )
