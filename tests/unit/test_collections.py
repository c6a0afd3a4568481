"""Declared collections: validation, planning and applying (Qdrant's REST API stubbed)."""

import pytest

from qdrant_ops.cluster.collection_spec import require_server_support, uses_memory_placement, validate_spec
from qdrant_ops.cluster.collections import ApplyOptions, ensure_collection, plan_collection
from qdrant_ops.errors import ConfigError

CITIES = {
    "name": "cities",
    "vectors": {"size": 384, "distance": "Cosine"},
    "shard_number": 6,
    "replication_factor": 2,
    "payload_indexes": {"city": "keyword", "population": {"type": "integer", "range": True}},
}


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (
            {"name": "c", "vectors": {"size": 4, "distance": "Hamming"}},
            "vectors.distance 'Hamming' is unknown",
        ),
        (
            {"name": "c", "vectors": {"size": 0, "distance": "Dot"}},
            "vectors.size must be an integer from 1 to 65536",
        ),
        ({"name": "c", "vectors": {"text": {"size": -1, "distance": "Dot"}}}, "vectors.text.size"),
        ({"name": "c", "vectors": {"text": {"distance": "Dot"}}}, "vectors.text.size is required"),
        ({"name": "c", "shard_number": 0}, "shard_number must be an integer from 1 to 4294967295"),
        (
            {"name": "c", "shard_number": 1000000000000},
            "shard_number must be an integer from 1 to 4294967295",
        ),
        (
            {"name": "c", "vectors": {"size": 65537, "distance": "Dot"}},
            "vectors.size must be an integer from 1 to",
        ),
        ({"name": "c", "replication_factor": True}, "replication_factor must be an integer from 1"),
        (
            {"name": "c", "payload_indexes": {"f": "varchar"}},
            "payload_indexes.f: index type 'varchar' is unknown",
        ),
        ({"name": "c", "replication_factor": 4}, "replication_factor 4 is above the 3 node(s)"),
        ({"name": "c", "replication_factor": 2, "write_consistency_factor": 3}, "write_consistency_factor 3"),
        ({"name": "c", "shards": 3}, "unknown key(s) ['shards']"),
        ({"name": "bad/name"}, "collection name 'bad/name' is invalid"),
        ({"name": "c", "vectors": {"size": 4, "distance": "Dot", "colour": 1}}, "unknown key(s) ['colour']"),
        # nested sections, against qdrant-client's models of Qdrant 1.18's API
        ({"name": "c", "hnsw_config": {"ef_contruct": 100}}, "hnsw_config.ef_contruct: unknown key"),
        (
            {"name": "c", "optimizers_config": {"indexing_treshold": 1}},
            "optimizers_config.indexing_treshold: unknown key",
        ),
        (
            {"name": "c", "quantization_config": {"scalr": {"type": "int8"}}},
            "quantization_config.scalr (as ScalarQuantization): unknown key",
        ),
        (
            {"name": "c", "quantization_config": {"scalar": {"type": "int9"}}},
            "quantization_config.scalar.type (as ScalarQuantization): input should be 'int8'",
        ),
        (
            {"name": "c", "hnsw_config": {"on_disk": "false"}},
            "hnsw_config.on_disk: input should be a valid boolean, got 'false'",
        ),
        (
            {"name": "c", "hnsw_config": {"m": "16"}},
            "hnsw_config.m: input should be a valid integer, got '16'",
        ),
        (
            {"name": "c", "vectors": {"v": {"size": 4, "distance": "Dot", "hnsw_config": {"mm": 1}}}},
            "vectors.v.hnsw_config.mm: unknown key",
        ),
        (
            {"name": "c", "sparse_vectors": {"kw": {"modifer": "idf"}}},
            "sparse_vectors.kw.modifer: unknown key",
        ),
        (
            {"name": "c", "strict_mode_config": {"enabled": "yes"}},
            "strict_mode_config.enabled: input should be a valid boolean",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(spec, names):
    with pytest.raises(ConfigError) as caught:
        validate_spec(spec, peer_count=3)
    assert names in str(caught.value)


def test_valid_nested_sections_pass():
    spec = validate_spec({
        "name": "c", "vectors": {"size": 4, "distance": "Dot", "on_disk": True, "datatype": "float16"},
        "hnsw_config": {"m": 16, "ef_construct": 128, "on_disk": False},
        "optimizers_config": {"indexing_threshold": 10000, "default_segment_number": 2},
        "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}},
        "strict_mode_config": {"enabled": True, "max_query_limit": 100},
        "sparse_vectors": {"kw": {"modifier": "idf"}},
    })  # fmt: skip
    assert spec["hnsw_config"] == {"m": 16, "ef_construct": 128, "on_disk": False}


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (
            {"vectors": {"size": 4, "distance": "Dot", "memory": "pinned"}},
            "vectors.memory must be one of cold, cached",
        ),
        (
            {"vectors": {"size": 4, "distance": "Dot", "memory": "disk"}},
            "vectors.memory must be one of cold, cached,",
        ),
        (
            {"vectors": {"size": 4, "distance": "Dot", "on_disk": True, "memory": "cached"}},
            "vectors: on_disk: true contradicts memory: cached",
        ),
        ({"hnsw_config": {"memory": "hot"}}, "hnsw_config.memory must be one of cold, cached, pinned"),
        ({"hnsw_config": {"on_disk": False, "memory": "cold"}}, "hnsw_config: on_disk: false contradicts"),
        (
            {"quantization_config": {"scalar": {"type": "int8", "always_ram": True, "memory": "cold"}}},
            "quantization_config.scalar: always_ram: true contradicts memory: cold",
        ),
        ({"payload": {"memory": "pinned"}}, "payload.memory must be one of cold, cached"),
        ({"payload": {"on_disk": True}}, "payload: only memory can be set"),
        ({"on_disk_payload": False, "payload": {"memory": "cold"}}, "on_disk_payload: false contradicts"),
        (
            {"payload_indexes": {"city": {"type": "keyword", "memory": 1}}},
            "payload_indexes.city.memory must be",
        ),
        # `memory` is only a placement where Qdrant 1.19 has one
        ({"optimizers_config": {"memory": "cold"}}, "optimizers_config.memory: unknown key"),
    ],
)
def test_bad_memory_placements_are_refused(spec, names):
    with pytest.raises(ConfigError) as caught:
        validate_spec({"name": "c", **spec}, peer_count=3)
    assert names in str(caught.value)


MEMORY_SPEC = {
    "name": "c",
    "vectors": {"memory": {"size": 4, "distance": "Dot", "memory": "cold", "on_disk": True}},
    "hnsw_config": {"memory": "pinned"},
    "quantization_config": {"scalar": {"type": "int8", "memory": "pinned", "always_ram": True}},
    "payload": {"memory": "cold"},
    "payload_indexes": {"memory": "keyword"},
}


def test_memory_placements_need_qdrant_1_19():
    spec = validate_spec(MEMORY_SPEC, peer_count=3)
    assert spec["vectors"]["memory"]["memory"] == "cold" and spec["payload"] == {"memory": "cold"}
    assert uses_memory_placement(spec)
    require_server_support(spec, "1.19.0")
    with pytest.raises(ConfigError, match=r"need Qdrant 1\.19 or later; this cluster runs 1\.18\.3"):
        require_server_support(spec, "1.18.3")
    # a vector or index merely *named* memory is no placement
    plain = validate_spec({"name": "c", "vectors": {"memory": {"size": 4, "distance": "Dot"}},
                           "payload_indexes": {"memory": "keyword"}})  # fmt: skip
    assert not uses_memory_placement(plain)
    require_server_support(plain, "1.18.3")


def test_memory_placements_go_where_qdrant_1_19_reads_them():
    spec = validate_spec({**MEMORY_SPEC, "vectors": {"size": 4, "distance": "Dot", "memory": "cold"}})
    body = plan_collection(spec, None).create_body
    assert body["payload"] == {"memory": "cold"} and body["vectors"]["memory"] == "cold"
    live = {"config": {"params": {"vectors": {"size": 4, "distance": "Dot", "on_disk": True},
                                  "payload": {"memory": "cached"}},
                       "hnsw_config": {"m": 16}, "quantization_config": None}}  # fmt: skip
    patch = plan_collection(spec, live).patch
    assert patch["vectors"] == {"": {"memory": "cold"}}
    assert patch["params"] == {"payload": {"memory": "cold"}}  # PATCH puts payload under params
    assert patch["hnsw_config"] == {"memory": "pinned"}


def test_the_models_describe_the_deployed_qdrants_api():
    """qdrant-client is pinned to Qdrant's minor version: its models carry exactly the fields of
    the OpenAPI spec of Qdrant 1.18 (tests/data), so the spec check neither refuses a real key nor
    lets an unknown one through."""
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from qdrant_client.http import models  # noqa: PLC0415

    schemas = json.loads((Path(__file__).parents[1] / "data/qdrant-openapi-1.18.json").read_text())
    schemas = schemas["components"]["schemas"]
    names = ["VectorParams", "HnswConfigDiff", "OptimizersConfigDiff", "StrictModeConfig"]
    names += ["SparseVectorParams", "ScalarQuantization", "ProductQuantization", "BinaryQuantization"]
    for name in names:
        assert set(getattr(models, name).model_fields) == set(schemas[name]["properties"]), name


def test_distance_is_case_insensitive_and_indexes_normalised():
    spec = validate_spec(
        {"name": "c", "vectors": {"size": 3, "distance": "cosine"}, "payload_indexes": {"a": "UUID"}}
    )
    assert spec["vectors"]["distance"] == "Cosine"
    assert spec["payload_indexes"] == {"a": {"type": "uuid"}}


def test_payload_only_collection_has_no_dense_vectors():
    spec = validate_spec({"name": "places", "payload_indexes": {"location": "geo", "city": "keyword"}})
    plan = plan_collection(spec, None)
    assert plan.action == "create"
    assert plan.create_body["vectors"] == {}


def test_create_then_second_apply_changes_nothing(qdrant_stub, stub_client):
    first = ensure_collection(stub_client, CITIES)
    assert first.action == "create"
    assert first.indexes_to_create.keys() == {"city", "population"}
    second = ensure_collection(stub_client, CITIES)
    assert second.action == "none" and not second.changed
    writes = [
        r for r in qdrant_stub.state.requests if r[0] != "GET" and r[1] != "/collections/cities/points/count"
    ]
    assert len(writes) == 3  # create + two indexes, nothing from the second apply


def test_check_mode_plans_but_sends_no_write(qdrant_stub, stub_client):
    plan = ensure_collection(stub_client, CITIES, ApplyOptions(dry_run=True))
    assert plan.action == "create"
    assert all(method == "GET" for method, *_ in qdrant_stub.state.requests)
    assert stub_client.collection_info("cities") is None


def test_in_place_changes_use_patch(qdrant_stub, stub_client):
    ensure_collection(stub_client, CITIES)
    changed = {
        **CITIES,
        "vectors": {**CITIES["vectors"], "on_disk": True},
        "hnsw_config": {"m": 32},
        "optimizers_config": {"indexing_threshold": 20000},
        "write_consistency_factor": 2,
    }
    plan = ensure_collection(stub_client, changed)
    assert plan.action == "update"
    assert plan.patch == {
        "vectors": {"": {"on_disk": True}},
        "hnsw_config": {"m": 32},
        "optimizers_config": {"indexing_threshold": 20000},
        "params": {"write_consistency_factor": 2},
    }
    assert plan.before["hnsw_config"]["m"] == 16 and plan.after["hnsw_config"]["m"] == 32
    info = stub_client.collection_info("cities")
    assert info["config"]["hnsw_config"]["m"] == 32
    assert ensure_collection(stub_client, changed).action == "none"


def test_replication_factor_change_warns_that_replicas_are_not_added(stub_client):
    ensure_collection(stub_client, CITIES)
    plan = ensure_collection(stub_client, {**CITIES, "replication_factor": 3})
    assert plan.patch == {"params": {"replication_factor": 3}}
    assert "does not add or drop replicas" in plan.warnings[0]


def test_size_change_is_refused_without_recreate(qdrant_stub, stub_client):
    ensure_collection(stub_client, CITIES)
    before = len(qdrant_stub.state.requests)
    with pytest.raises(ConfigError) as caught:
        ensure_collection(
            stub_client, {**CITIES, "vectors": {"size": 768, "distance": "Cosine"}, "shard_number": 3}
        )
    message = str(caught.value)
    assert "vectors.size: 384 -> 768" in message and "shard_number: 6 -> 3" in message
    assert "recreate: true" in message and "DELETES ALL ITS POINTS" in message
    assert all(r[0] == "GET" for r in qdrant_stub.state.requests[before:])


def test_recreate_deletes_and_creates(stub_client):
    ensure_collection(stub_client, CITIES)
    plan = ensure_collection(
        stub_client, {**CITIES, "vectors": {"size": 768, "distance": "Dot"}}, ApplyOptions(recreate=True)
    )
    assert plan.action == "recreate"
    assert stub_client.collection_info("cities")["config"]["params"]["vectors"]["size"] == 768
    assert set(stub_client.collection_info("cities")["payload_schema"]) == {"city", "population"}


def test_named_vector_set_change_is_immutable(stub_client):
    spec = {"name": "docs", "vectors": {"text": {"size": 8, "distance": "Dot"}}}
    ensure_collection(stub_client, spec)
    with pytest.raises(ConfigError, match="named vectors image, text"):
        ensure_collection(
            stub_client, {**spec, "vectors": {**spec["vectors"], "image": {"size": 4, "distance": "Dot"}}}
        )


def test_payload_index_type_change_rebuilds_and_prune_is_opt_in(stub_client):
    ensure_collection(stub_client, CITIES)
    plan = ensure_collection(stub_client, {**CITIES, "payload_indexes": {"city": "text"}})
    assert plan.indexes_to_delete == ["city"] and plan.indexes_to_create == {"city": {"type": "text"}}
    assert "population" in stub_client.collection_info("cities")["payload_schema"]
    plan = ensure_collection(
        stub_client, {**CITIES, "payload_indexes": {"city": "text"}}, ApplyOptions(prune_payload_indexes=True)
    )
    assert plan.indexes_to_delete == ["population"]
    assert set(stub_client.collection_info("cities")["payload_schema"]) == {"city"}


def test_absent_deletes_once(stub_client):
    ensure_collection(stub_client, CITIES)
    assert ensure_collection(stub_client, {"name": "cities"}, ApplyOptions(state="absent")).action == "delete"
    assert ensure_collection(stub_client, {"name": "cities"}, ApplyOptions(state="absent")).action == "none"
