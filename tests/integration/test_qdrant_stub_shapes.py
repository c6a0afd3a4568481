"""The REST stub answers in the shapes of Qdrant's official OpenAPI spec, and the requests our
library sends are valid request bodies of that spec. Without this the unit tests could agree with
a Qdrant that does not exist."""

import dataclasses
import json
from pathlib import Path

import pytest
from openapi_schema_validator import OAS30Validator

from qdrant_ops.backup import catalog, model, node_part, restore_plan, snapshot_files
from qdrant_ops.backup.s3 import S3Settings
from qdrant_ops.cluster import collections, health, points
from qdrant_ops.ingest import engine
from tests.support.s3 import TEST_CREDENTIALS

SPEC = json.loads((Path(__file__).resolve().parents[1] / "data/qdrant-openapi-1.18.json").read_text())
MULTIPART = "multipart"  # a snapshot upload: the file as the form field `snapshot`
# Every endpoint the library uses, with whether it takes a JSON body (or a multipart upload).
USED_ENDPOINTS = {
    ("GET", "/"): False,
    ("GET", "/cluster"): False,
    ("GET", "/collections"): False,
    ("GET", "/collections/{collection_name}"): False,
    ("PUT", "/collections/{collection_name}"): True,
    ("PATCH", "/collections/{collection_name}"): True,
    ("DELETE", "/collections/{collection_name}"): False,
    ("GET", "/collections/{collection_name}/cluster"): False,
    ("PUT", "/collections/{collection_name}/index"): True,
    ("DELETE", "/collections/{collection_name}/index/{field_name}"): False,
    ("POST", "/collections/{collection_name}/points/count"): True,
    ("PUT", "/collections/{collection_name}/points"): True,
    ("POST", "/collections/{collection_name}/points"): True,
    ("GET", "/collections/{collection_name}/points/{id}"): False,
    ("POST", "/collections/{collection_name}/points/scroll"): True,
    ("GET", "/collections/{collection_name}/shards/{shard_id}/snapshots"): False,
    ("POST", "/collections/{collection_name}/shards/{shard_id}/snapshots"): False,
    ("GET", "/collections/{collection_name}/shards/{shard_id}/snapshots/{snapshot_name}"): False,
    ("DELETE", "/collections/{collection_name}/shards/{shard_id}/snapshots/{snapshot_name}"): False,
    ("POST", "/collections/{collection_name}/snapshots/upload"): MULTIPART,
    ("POST", "/collections/{collection_name}/shards/{shard_id}/snapshots/upload"): MULTIPART,
}


def template_of(path: str) -> str:
    """The spec's path template for a concrete path; literal segments beat placeholders."""
    parts = path.strip("/").split("/") if path != "/" else [""]
    best, best_literals = None, -1
    for template in SPEC["paths"]:
        tparts = template.strip("/").split("/") if template != "/" else [""]
        if len(tparts) != len(parts):
            continue
        if all(t.startswith("{") or t == p for p, t in zip(parts, tparts, strict=True)):
            literals = sum(not t.startswith("{") for t in tparts)
            if literals > best_literals:
                best, best_literals = template, literals
    assert best is not None, f"{path} is not in the spec"
    return best


def validate(schema: dict, instance) -> None:
    # Refs are '#/components/...': validate with the components beside the schema.
    OAS30Validator({**schema, "components": SPEC["components"]}).validate(instance)


def operation(method: str, template: str) -> dict:
    return SPEC["paths"][template][method.lower()]


@pytest.fixture
def served(qdrant_stub, stub_client, tmp_path, s3_server, s3_client, s3_bucket):
    """Drive every library call that talks to Qdrant; return what the stub served."""
    spec = {
        "name": "cities",
        "vectors": {"size": 4, "distance": "Cosine"},
        "shard_number": 3,
        "replication_factor": 2,
        "hnsw_config": {"m": 32},
        "quantization_config": {"scalar": {"type": "int8", "always_ram": True}},
        "payload_indexes": {
            "city": "keyword",
            "population": {"type": "integer", "range": True, "lookup": False},
        },
    }
    collections.ensure_collection(stub_client, spec)
    changed = {**spec, "hnsw_config": {"m": 8}, "replication_factor": 3, "payload_indexes": {"city": "text"}}
    collections.ensure_collection(stub_client, changed)
    collections.ensure_collection(stub_client, {"name": "places", "payload_indexes": {"location": "geo"}})
    health.cluster_overview(stub_client)
    records = tmp_path / "places.jsonl"
    records.write_text('{"id": 1, "payload": {"city": "Oslo", "location": {"lat": 59.9, "lon": 10.7}}}\n')
    points.upsert_file(stub_client, "places", records)
    points.get_point(stub_client, "places", 1)
    engine.verify_written(stub_client, "places", [1, 2], expected=1, minimum=1, timeout=0)
    settings = model.BackupSettings(
        cluster="shapes",
        s3=S3Settings(
            bucket=s3_bucket,
            endpoint_url=s3_server.endpoint_url,
            access_key=TEST_CREDENTIALS["aws_access_key_id"],
            secret_key=TEST_CREDENTIALS["aws_secret_access_key"],
            region=TEST_CREDENTIALS["region_name"],
        ),
    )
    node_part.run_node_backup(stub_client, qdrant_stub.url, settings, s3_client, backup_id="shapes")
    manifest = catalog.set_manifest(s3_client, settings, "shapes")
    for shard_id in (0, None):  # a shard snapshot, then the same file as a whole-collection upload
        snap = restore_plan.snapshots_of(manifest, settings.layout, "cities")[0]
        local = tmp_path / f"upload-{shard_id}.snapshot"
        s3_client.download_file(s3_bucket, snap.key, str(local))
        snap = dataclasses.replace(snap, shard_id=shard_id, node=qdrant_stub.url)
        snapshot_files.recover(stub_client, snap, local, timeout=30)
    collections.ensure_collection(stub_client, {"name": "places"}, collections.ApplyOptions(state="absent"))
    return qdrant_stub.state.requests


def test_every_used_endpoint_is_exercised(served):
    seen = {(method, template_of(path)) for method, path, *_ in served}
    assert seen == set(USED_ENDPOINTS)


def test_requests_match_the_spec(served):
    for method, path, query, body, *_ in served:
        template = template_of(path)
        if USED_ENDPOINTS[(method, template)] == MULTIPART:
            schema = operation(method, template)["requestBody"]["content"]["multipart/form-data"]["schema"]
            assert set(schema["properties"]) == {"snapshot"} and body["snapshot"]
            known = {p["name"] for p in operation(method, template)["parameters"] if p["in"] == "query"}
            assert set(query) <= known, f"{method} {path}: query {sorted(query)} not in {sorted(known)}"
        elif USED_ENDPOINTS[(method, template)]:
            schema = operation(method, template)["requestBody"]["content"]["application/json"]["schema"]
            validate(schema, body)
        else:
            assert body is None, f"{method} {path} sent a body"


def test_responses_match_the_spec(served):
    for method, path, _query, _body, status, response in served:
        responses = operation(method, template_of(path))["responses"]
        expected = responses.get(str(status)) or responses["4XX" if status < 500 else "default"]
        if isinstance(response, bytes):  # a snapshot download
            assert "application/octet-stream" in expected["content"], f"{method} {path} served bytes"
        else:
            validate(expected["content"]["application/json"]["schema"], response)
