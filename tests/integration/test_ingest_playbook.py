"""playbooks/ingest.yml against the REST + gRPC stubs: the collection is created from its
declaration, the records are loaded (the module's report comes back), check mode sends nothing,
a re-run with the same input leaves the same points, and a bad record fails the play naming it."""

import json

import pytest

from tests.support.playbook import run_playbook
from tests.support.qdrant_grpc_stub import GrpcStub

SPEC = {
    "name": "cities",
    "vectors": {"size": 4, "distance": "Cosine"},
    "payload_indexes": {"city": "keyword"},
}


@pytest.fixture
def play(qdrant_stub, tmp_path):
    with GrpcStub(qdrant_stub.state, api_key="stub-secret-key") as grpc_stub:
        port = qdrant_stub.url.rsplit(":", 1)[1]
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(
            "all:\n  children:\n    qdrant:\n      hosts:\n"
            # The stubs serve plain HTTP and gRPC.
            f"        q1: {{ansible_connection: local, ansible_host: 127.0.0.1, qdrant_tls_enabled: false,"
            f" qdrant_http_port: {port},"
            f" qdrant_grpc_port: {grpc_stub.port}}}\n"
        )

        def run(source, *flags, **extra):
            variables = tmp_path / "vars.json"
            values = {"qdrant_collections": [SPEC], "qdrant_api_key": "stub-secret-key", "ingest_workers": 2}
            values |= {"ingest_collection": "cities", "ingest_source": str(source)}
            values |= {"ingest_checkpoint": str(tmp_path / "ck.json"), **extra}
            variables.write_text(json.dumps(values))
            result, report = run_playbook(
                "playbooks/ingest.yml", "-i", str(inventory), "-e", f"@{variables}", *flags
            )
            assert "stub-secret-key" not in result.stdout + result.stderr
            return result, report

        yield run


def load_task(report):
    return next(t for t in report["plays"][0]["tasks"] if t["task"]["name"] == "Load the records")["hosts"][
        "q1"
    ]


def test_ingest_playbook_creates_the_collection_and_loads(play, qdrant_stub, tmp_path):
    source = tmp_path / "cities.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "vector": [1, 2, 3, i], "city": f"c{i}"}) + "\n" for i in range(300))
    )
    result, report = play(source, "--check")
    assert result.returncode == 0, result.stdout
    assert qdrant_stub.state.collections == {}  # check mode: nothing created, nothing sent
    result, report = play(source)
    assert result.returncode == 0, result.stdout
    loaded = load_task(report)
    assert loaded["changed"] and loaded["written"] == 300 and loaded["verified"]["count"] == 300
    assert qdrant_stub.state.collections["cities"]["payload_schema"]["city"]["data_type"] == "keyword"
    # deferred indexing by default, and restored
    assert qdrant_stub.state.collections["cities"]["optimizer_config"]["indexing_threshold"] == 10000
    result, report = play(source)
    assert result.returncode == 0 and len(qdrant_stub.state.points["cities"]) == 300
    before = len(qdrant_stub.state.requests)
    result, report = play(source, "--check")  # the collection exists now: source and mapping are checked
    assert result.returncode == 0, result.stdout
    assert load_task(report)["source_format"] == "jsonl"
    assert not [r for r in qdrant_stub.state.requests[before:] if r[0] in ("PUT", "PATCH", "POST", "DELETE")]


def test_ingest_playbook_fails_naming_the_bad_record(play, qdrant_stub, tmp_path):
    source = tmp_path / "cities.jsonl"
    source.write_text(
        json.dumps({"id": 1, "vector": [1, 2, 3, 4]}) + "\n" + json.dumps({"id": 2, "vector": [1]}) + "\n"
    )
    result, report = play(source)
    assert result.returncode != 0
    failed = load_task(report)
    assert failed["failed"]
    assert (
        f"{source}: record 2: the vector (field 'vector') has 1 values, the collection expects 4"
        in failed["msg"]
    )
    assert "--resume" in failed["msg"]


def test_ingest_playbook_requires_a_collection_and_a_source(play, tmp_path):
    result, _ = play("", ingest_collection="")
    assert result.returncode != 0
    assert "set -e ingest_collection=<name> -e ingest_source=" in result.stdout
