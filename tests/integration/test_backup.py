"""Backups through `qdrant-ops backup` against REST stubs of three nodes and a real S3 protocol
endpoint (moto server): complete and incomplete sets, the manifest, the metrics, and every bad
case the issue names, each with a clear error, a non-zero exit, a counted failure, no set that
looks complete, and no snapshot file left on the node."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import botocore.exceptions
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from qdrant_ops.backup import metrics, model, node_part, s3
from qdrant_ops.cli import EXIT_ERROR, main
from tests.support.s3 import TEST_CREDENTIALS, MotoServer, free_port

API_KEY = "stub-secret-key"
BACKUP_ID = "20261124T000000Z"


@pytest.fixture
def write_config(tmp_path, s3_server, s3_bucket):
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")

    def write(node_url: str, name: str = "backup.yml", **changes) -> Path:
        config = {
            "cluster": "prod",
            "qdrant": {"url": node_url, "api_key_file": str(key_file)},
            "s3": {
                "bucket": s3_bucket,
                "prefix": "qdrant-backups",
                "endpoint_url": s3_server.endpoint_url,
                "region": TEST_CREDENTIALS["region_name"],
                "access_key": TEST_CREDENTIALS["aws_access_key_id"],
                "secret_key": TEST_CREDENTIALS["aws_secret_access_key"],
                "max_attempts": 1,
            },
            "metrics_dir": str(tmp_path / "textfiles"),
            "members": ["peer-1000", "peer-1001", "peer-1002"],  # the stub nodes' default names
        }
        for section, values in changes.items():
            if isinstance(values, dict):
                config[section] = {**config.get(section, {}), **values}
            else:
                config[section] = values
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return write


@pytest.fixture
def cli(capsys):
    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def read_metrics(tmp_path: Path, job: str = "backup") -> dict[str, float]:
    text = metrics.textfile_path(tmp_path / "textfiles", job).read_text()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def names(job: str = "backup") -> dict[str, str]:
    return metrics.metric_names(job)


def manifest_in(s3_client, bucket: str, backup_id: str = BACKUP_ID) -> dict | None:
    key = f"qdrant-backups/prod/{backup_id}/manifest.json"
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0)
    return json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()) if listed else None


# -- sets -------------------------------------------------------------------------------------------
def test_three_nodes_make_one_complete_verified_set(
    stub_nodes, write_config, cli, s3_client, s3_bucket, tmp_path
):
    statuses = []
    for i, node in enumerate(stub_nodes):
        config = write_config(node.url, f"node{i}.yml")
        code, out, err = cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID)
        assert code == 0, err
        statuses.append(out.split("set is ")[-1].strip())
        assert "cities: snapshot of shard(s)" in err  # progress goes to stderr, the summary to stdout
    assert statuses == ["incomplete", "incomplete", "unsealed"]  # every part in; the sealer's turn
    code, out, _ = cli("backup", "show", BACKUP_ID, "--config", config)
    assert code == 1 and "unsealed" in out
    code, out, err = cli("backup", "seal", "--config", config)
    assert code == 0 and BACKUP_ID in out and "sealed" in out, err

    code, out, _ = cli("backup", "show", BACKUP_ID, "--config", config, "--json")
    manifest = json.loads(out)
    assert code == 0 and manifest["status"] == "complete" and manifest["problems"] == []
    assert manifest["qdrant_version"] == "1.18.3"
    assert [p["id"] for p in manifest["peers"]] == [1000, 1001, 1002]
    cities = manifest["collections"]["cities"]
    assert cities["points_exact"] == 10
    assert cities["config"]["params"]["shard_number"] == 6
    assert {r["peer_id"] for r in cities["placement"]} == {1000, 1001, 1002}
    assert [p["id"] for p in cities["sample"]] == list(range(10))
    expected = node_part.point_fingerprint({"id": 3, "payload": {"city": "c3"}, "vector": [3, 0.5, 0.25, 1]})
    assert cities["sample"][3] == expected
    assert manifest["format"] == 4 and "nodes" not in cities
    assert manifest["sealed"]["members"] == ["peer-1000", "peer-1001", "peer-1002"]
    assert sorted(cities["shards"], key=int) == [str(shard) for shard in range(6)]
    for shard, record in cities["shards"].items():
        peer = 1000 + int(shard) % 3  # the stub places shard s on peer s mod 3
        assert record["peer_id"] == peer and record["node"] == f"peer-{peer}"  # no `node` configured
        assert model.ATTEMPT_PATTERN.match(record["attempt"])
        assert record["key"] == (
            f"qdrant-backups/prod/{BACKUP_ID}/nodes/peer-{peer}/{record['attempt']}/cities/{shard}.snapshot"
        )
        stored = s3_client.get_object(Bucket=s3_bucket, Key=record["key"])
        body = stored["Body"].read()
        assert len(body) == record["size"] == 64 * 1024
        assert hashlib.sha256(body).hexdigest() == record["sha256"] == stored["Metadata"]["sha256"]
    # Every object lies under its writer's own prefix (what IAM confines each node to): no manifest
    # or other shared object that one node could rewrite for all.
    prefix = f"qdrant-backups/prod/{BACKUP_ID}/"
    listed = [
        item["Key"][len(prefix) :]
        for item in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)["Contents"]
    ]
    assert {key.split("/")[0] for key in listed} == {"nodes", "seal.json"}  # the seal: the sealer's
    assert {key.split("/")[1] for key in listed if key != "seal.json"} == {
        "peer-1000",
        "peer-1001",
        "peer-1002",
    }
    assert manifest_in(s3_client, s3_bucket) is None

    for node in stub_nodes:  # every node's local snapshot files were deleted after the upload
        assert all(files == {} for files in node.state.snapshots.values())
    values = read_metrics(tmp_path)
    assert values[names()["last_run_success"]] == 1
    assert values[names()["bytes"]] == 3 * 64 * 1024  # the last node's shards: cities 2 and 5, places 2
    assert values[names()["failures"] + "_total"] == 0

    code, out, _ = cli("backup", "list", "--config", config)
    assert code == 0
    assert out.splitlines()[1].split()[:4] == [BACKUP_ID, "2026-11-24T00:00:00Z", "complete", "3"]


def test_each_shard_of_a_replicated_collection_is_saved_once(stub_nodes, write_config, cli):
    # Replication factor 2: each shard has two Active replicas; one snapshot of it is enough, and
    # the nodes agree which replica makes it, so the set holds the data once.
    state = stub_nodes[0].state
    state.create(
        "twice", {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 4, "replication_factor": 2}
    )
    state.points["twice"].update({i: {"id": i, "payload": {}, "vector": [i, 0, 0, 1]} for i in range(20)})
    for i, node in enumerate(stub_nodes):
        config = write_config(node.url, f"node{i}.yml")
        assert (
            cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID, "--collection", "twice")[0]
            == 0
        )
    assert cli("backup", "seal", "--config", config)[0] == 0
    code, out, _ = cli("backup", "show", BACKUP_ID, "--config", config, "--json")
    shards = json.loads(out)["collections"]["twice"]["shards"]
    assert code == 0 and sorted(shards) == ["0", "1", "2", "3"]
    holders = {str(s): {1000 + s % 3, 1000 + (s + 1) % 3} for s in range(4)}
    assert all(record["peer_id"] in holders[shard] for shard, record in shards.items())
    assert len({record["peer_id"] for record in shards.values()}) > 1  # the work is shared


def test_a_missing_node_leaves_the_set_incomplete(stub_nodes, write_config, cli):
    for i, node in enumerate(stub_nodes[:2]):
        assert (
            cli("backup", "run", "--config", write_config(node.url, f"n{i}.yml"), "--backup-id", BACKUP_ID)[0]
            == 0
        )
    code, out, _ = cli("backup", "show", BACKUP_ID, "--config", write_config(stub_nodes[0].url))
    assert code == 1
    assert "incomplete" in out and "problem: peer 1002 (http://127.77.1.3:6335/): no part uploaded" in out


def test_selected_collections_and_the_schedule_slot(stub_nodes, write_config, cli, s3_client, s3_bucket):
    config = write_config(stub_nodes[0].url, schedule_slot="1d")
    code, out, _ = cli("backup", "run", "--config", config, "--collection", "places", "--json")
    part = json.loads(out)
    assert code == 0 and list(part["shards"]) == ["places"]
    assert part["backup_id"] == model.slot_id(model.parse_iso_time(part["started"]), 86400)
    assert part["backup_id"].endswith("T000000Z")
    code, _, err = cli("backup", "run", "--config", config, "--collection", "nope")
    assert code == EXIT_ERROR and "collections not found: nope; existing: cities, places" in err


def test_the_failure_counter_survives_runs_and_the_last_success_is_kept(
    stub_nodes, write_config, cli, tmp_path
):
    good = write_config(stub_nodes[0].url)
    assert cli("backup", "run", "--config", good, "--backup-id", BACKUP_ID)[0] == 0
    last_success = read_metrics(tmp_path)[names()["last_success"]]
    stub_nodes[0].state.snapshot_create_error = "No space left on device (os error 28)"
    for expected_failures in (1, 2):
        assert cli("backup", "run", "--config", good, "--backup-id", "20261125T000000Z")[0] == EXIT_ERROR
        values = read_metrics(tmp_path)
        assert values[names()["failures"] + "_total"] == expected_failures
        assert values[names()["last_run_success"]] == 0
        assert values[names()["last_success"]] == last_success


def snapshots_created(node) -> int:
    return sum(
        1 for method, path, *_ in node.state.requests if method == "POST" and path.endswith("/snapshots")
    )


def test_a_second_run_in_the_slot_keeps_the_part_that_succeeded(
    stub_nodes, write_config, cli, s3_client, s3_bucket
):
    config = write_config(stub_nodes[0].url)
    assert cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID)[0] == 0
    part_key = f"qdrant-backups/prod/{BACKUP_ID}/nodes/peer-1000/part.json"
    etag = s3_client.head_object(Bucket=s3_bucket, Key=part_key)["ETag"]
    made = snapshots_created(stub_nodes[0])
    stub_nodes[0].state.snapshot_create_error = "No space left on device (os error 28)"  # would fail now

    code, out, _ = cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID)

    assert code == 0 and "part already succeeded, kept" in out
    assert snapshots_created(stub_nodes[0]) == made  # nothing snapshotted
    assert s3_client.head_object(Bucket=s3_bucket, Key=part_key)["ETag"] == etag  # the part untouched
    code, _, err = cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID, "--collection", "nope")
    assert code == EXIT_ERROR and "collections not found: nope" in err
    code, _, err = cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID, "--force")
    assert code == EXIT_ERROR and "part records are written once: take a new set" in err
    assert snapshots_created(stub_nodes[0]) == made and "Traceback" not in err


def test_a_failed_attempt_never_blocks_the_next_and_nothing_is_overwritten(
    stub_nodes, write_config, cli, s3_client, s3_bucket
):
    config = write_config(stub_nodes[0].url)
    stub_nodes[0].state.snapshot_create_error = "No space left on device (os error 28)"
    assert cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID)[0] == EXIT_ERROR
    prefix = f"qdrant-backups/prod/{BACKUP_ID}/nodes/peer-1000/"
    listed = [
        i["Key"][len(prefix) :]
        for i in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)["Contents"]
    ]
    assert len(listed) == 1 and listed[0].startswith("failed/")  # the failure's own record, no part.json
    stub_nodes[0].state.snapshot_create_error = None
    assert cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID)[0] == 0
    part = s3.get_json(s3_client, s3_bucket, prefix + "part.json")
    assert part["status"] == "ok" and part["attempt"] not in listed[0]
    # The S3 protocol itself refuses a second write of a record (what IAM then demands of nodes).
    with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
        s3_client.put_object(Bucket=s3_bucket, Key=prefix + "part.json", Body=b"{}", IfNoneMatch="*")


def test_damaged_or_foreign_records_never_pass_for_a_set(stub_nodes, write_config, cli, s3_client, s3_bucket):
    configs = [write_config(node.url, f"n{i}.yml") for i, node in enumerate(stub_nodes)]
    for config in configs:
        assert cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID)[0] == 0
    prefix = f"qdrant-backups/prod/{BACKUP_ID}/"
    own_key = prefix + "nodes/peer-1001/part.json"
    genuine = s3_client.get_object(Bucket=s3_bucket, Key=own_key)["Body"].read()
    part = json.loads(genuine)

    def put(key: str, value) -> None:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=value if isinstance(value, bytes) else
                             json.dumps(value).encode())  # fmt: skip

    def show() -> str:
        code, out, err = cli("backup", "show", BACKUP_ID, "--config", configs[0])
        assert code == 1 and "incomplete" in out and "Traceback" not in err, (out, err)
        return out

    put(own_key, {**part, "backup_id": "../../../victim"})
    assert "it names backup '../../../victim'" in show()
    key = part["shards"]["cities"]["1"]["key"]
    other = key.replace("peer-1001", "peer-1000")  # another node's object, vouched for by this one
    put(own_key, {**part, "shards": {**part["shards"], "cities": {**part["shards"]["cities"], "1": {
        **part["shards"]["cities"]["1"], "key": other}}}})  # fmt: skip
    assert f"object {other!r} is not this node's key" in show()
    put(own_key, genuine)
    # A compromised node writes under its own prefix a record claiming another peer.
    put(prefix + "nodes/intruder/part.json", genuine.replace(b"peer-1001", b"intruder"))
    out = show()
    assert "two part records claim peer 1001" in out
    s3_client.delete_object(Bucket=s3_bucket, Key=prefix + "nodes/intruder/part.json")

    # A manifest.json (older formats stored one; a node could plant one) is never read: the set is
    # what its parts say, in every command.
    put(prefix + "manifest.json", b"{not json")
    code, out, err = cli("backup", "list", "--config", configs[0], "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "unsealed", err
    assert cli("backup", "seal", "--config", configs[0])[0] == 0
    code, out, _ = cli("backup", "show", BACKUP_ID, "--no-verify", "--config", configs[0])
    assert code == 0 and "complete" in out


def test_two_nodes_with_one_node_name_are_refused(stub_nodes, write_config, cli, s3_client, s3_bucket):
    first = write_config(stub_nodes[0].url, "a.yml", node="prod-qdrant-1")
    second = write_config(stub_nodes[1].url, "b.yml", node="prod-qdrant-1")  # a copy-paste mistake
    assert cli("backup", "run", "--config", first, "--backup-id", BACKUP_ID)[0] == 0
    key = f"qdrant-backups/prod/{BACKUP_ID}/nodes/prod-qdrant-1/part.json"
    etag = s3_client.head_object(Bucket=s3_bucket, Key=key)["ETag"]

    for extra in ((), ("--force",)):
        code, out, err = cli("backup", "run", "--config", second, "--backup-id", BACKUP_ID, *extra)
        assert code == EXIT_ERROR and out == ""
        assert "holds the part of peer 1000, not of this node (peer 1001)" in err
        assert "give each node its own (qdrant_backup_node_name" in err
    assert s3_client.head_object(Bucket=s3_bucket, Key=key)["ETag"] == etag  # the first node's part kept


# -- bad cases ----------------------------------------------------------------------------------------
@pytest.fixture
def denying_s3(tmp_path):
    """A second moto server that enforces IAM: the user may only list buckets, nothing else."""
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"}).start()
    try:
        server.client().create_bucket(Bucket="locked")
        iam = server.client("iam")
        iam.create_user(UserName="reader")
        iam.put_user_policy(
            UserName="reader",
            PolicyName="list-only",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield server, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        server.stop()


BAD_CASES = {
    "qdrant down": ("no node answered", {}),
    "S3 unreachable": ("S3 endpoint unreachable", {}),
    "bucket missing": (
        "bucket s3://no-such-bucket-here does not exist",
        {"s3": {"bucket": "no-such-bucket-here"}},
    ),
    "access denied": ("access to s3://locked/", {}),
    "disk full": ("the node's disk is full", {}),
    "corrupt download": ("sha256", {}),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_cases_fail_clearly_and_leave_nothing_behind(
    case, stub_nodes, write_config, cli, tmp_path, s3_client, s3_bucket, request
):
    message, changes = BAD_CASES[case]
    node = stub_nodes[0]
    url = node.url
    if case == "qdrant down":
        url = f"http://127.0.0.1:{free_port()}"
    elif case == "S3 unreachable":
        changes = {"s3": {"endpoint_url": f"http://127.0.0.1:{free_port()}"}}
    elif case == "access denied":
        server, key_id, secret = request.getfixturevalue("denying_s3")
        changes = {
            "s3": {
                "endpoint_url": server.endpoint_url,
                "bucket": "locked",
                "access_key": key_id,
                "secret_key": secret,
            }
        }
    elif case == "disk full":
        node.state.snapshot_create_error = "No space left on device (os error 28)"
    elif case == "corrupt download":
        node.state.corrupt_downloads = True
    config = write_config(url, **changes)

    code, out, err = cli("backup", "run", "--config", config, "--backup-id", BACKUP_ID)

    assert code == EXIT_ERROR and out == ""
    error = err.strip().splitlines()[-1]  # progress lines come first
    assert error.startswith("qdrant-ops: error: ") and message in error, err
    assert "Traceback" not in err
    assert API_KEY not in err and TEST_CREDENTIALS["aws_secret_access_key"] not in err
    values = read_metrics(tmp_path)
    assert values[names()["failures"] + "_total"] == 1
    assert values[names()["last_run_success"]] == 0
    assert names()["last_success"] not in values
    assert all(files == {} for files in node.state.snapshots.values()), "local snapshot left behind"
    manifest = manifest_in(s3_client, s3_bucket)
    assert manifest is None or manifest["status"] == "incomplete"
    if manifest is not None:  # the failing node recorded why
        assert any(message in problem for problem in manifest["problems"]), manifest["problems"]
    snapshots = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="qdrant-backups/prod/").get("Contents", [])
    assert not [o["Key"] for o in snapshots if o["Key"].endswith(".snapshot")]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "blue"}, "unknown key(s) colour in the top level"),
        ({"s3": {"buckit": "x"}}, "unknown key(s) buckit in section 's3'"),
        ({"cluster": ""}, "set 'cluster'"),
        ({"cluster": "prod/eu"}, "cluster name 'prod/eu' is not usable in S3 keys"),
        ({"schedule_slot": "daily"}, "schedule_slot 'daily' is not a duration"),
        ({"s3": {"part_size_mib": 1}}, "below S3's minimum of 5 MiB"),
        ({"s3": {"secret_key": None}}, "give both the S3 access key and secret key"),
        ({"qdrant": {"api_key_file": "/nonexistent/key"}}, "cannot read the API key file /nonexistent/key"),
        ({"collections": "cities"}, "collections must be a list of names"),
    ],
)
def test_bad_config_is_refused_before_anything_runs(changes, message, stub_nodes, write_config, cli):
    code, _, err = cli("backup", "run", "--config", write_config(stub_nodes[0].url, **changes))
    assert code == EXIT_ERROR and message in err, err
    assert not any(method == "POST" for method, *_ in stub_nodes[0].state.requests)


def test_missing_config_file_names_the_fix(cli, tmp_path):
    code, _, err = cli("backup", "list", "--config", tmp_path / "absent.yml")
    assert code == EXIT_ERROR and "the qdrant_backup role writes it, or pass --config" in err


def test_bad_backup_id_is_refused(stub_nodes, write_config, cli):
    code, _, err = cli("backup", "run", "--config", write_config(stub_nodes[0].url), "--backup-id", "../etc")
    assert code == EXIT_ERROR and "backup id '../etc' is not usable in S3 keys" in err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"qdrant": {"timeout": "abc"}}, "qdrant.timeout must be a number of seconds"),
        ({"qdrant": {"url": 123}}, "qdrant.url must be one URL"),
        ({"qdrant": {"url": "node:6333"}}, "is not an http(s) URL"),
    ],
)
def test_bad_qdrant_settings_are_one_line(changes, message, stub_nodes, write_config, cli):
    code, _, err = cli("backup", "run", "--config", write_config(stub_nodes[0].url, **changes))
    assert code == EXIT_ERROR and message in err and "Traceback" not in err, err


def test_a_failed_run_that_cannot_record_metrics_says_both(write_config, cli, tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    config = write_config("http://127.0.0.1:1", metrics_dir=str(tmp_path / "not-a-dir"))
    code, _, err = cli("backup", "run", "--config", config)
    assert code == EXIT_ERROR and "Traceback" not in err
    assert (
        "no node answered" in err and "the failure was not recorded: cannot write the backup metrics" in err
    )
