"""Collections as code against a real 3-node Qdrant cluster (QDRANT_BINARY)."""

import pytest

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster.collections import ApplyOptions, ensure_collection
from qdrant_ops.cluster.health import cluster_overview
from qdrant_ops.cluster.points import get_point, upsert_file
from qdrant_ops.errors import ConfigError
from qdrant_ops.polling import wait_until

pytestmark = pytest.mark.qdrant

SPEC = {
    "name": "cities",
    "vectors": {"size": 4, "distance": "Cosine"},
    "shard_number": 3,
    "replication_factor": 2,
    "payload_indexes": {"city": "keyword", "population": {"type": "integer", "range": True}},
}


@pytest.fixture
def client(qdrant_cluster):
    with ClusterClient(qdrant_cluster.urls, qdrant_cluster.api_key, retries=3, backoff=0.2) as client:
        yield client


def changed_config_shown(client: ClusterClient) -> bool:
    config = client.collection_info("cities")["config"]
    return config["hnsw_config"]["m"] == 32 and config["optimizer_config"]["indexing_threshold"] == 20000


def test_create_change_refuse_recreate_delete(client):
    assert ensure_collection(client, SPEC).action == "create"
    assert ensure_collection(client, SPEC).action == "none"

    changed = {**SPEC, "hnsw_config": {"m": 32}, "optimizers_config": {"indexing_threshold": 20000}}
    plan = ensure_collection(client, changed)
    assert plan.action == "update"
    # Qdrant answers the PATCH once consensus committed it; the node's collection may show the new
    # config a moment later (seen once in four full e2e runs on a loaded 2-core machine).
    wait_until(
        lambda: None if changed_config_shown(client) else "not yet",
        timeout=10,
        interval=0.2,
        error=lambda _: AssertionError(
            f"config after the update: {client.collection_info('cities')['config']}"
        ),
    )
    assert ensure_collection(client, changed).action == "none"

    with pytest.raises(ConfigError, match=r"vectors.size: 4 -> 8"):
        ensure_collection(client, {**SPEC, "vectors": {"size": 8, "distance": "Cosine"}})
    assert client.collection_info("cities")["config"]["params"]["vectors"]["size"] == 4

    recreated = ensure_collection(
        client, {**SPEC, "vectors": {"size": 8, "distance": "Cosine"}}, ApplyOptions(recreate=True)
    )
    assert recreated.action == "recreate"
    info = client.collection_info("cities")
    assert info["config"]["params"]["vectors"]["size"] == 8
    assert set(info["payload_schema"]) == {"city", "population"}

    assert ensure_collection(client, {"name": "cities"}, ApplyOptions(state="absent")).action == "delete"
    assert client.collection_info("cities") is None


def test_payload_only_collection_with_points_and_placement(client, tmp_path):
    ensure_collection(
        client, {"name": "places", "replication_factor": 2, "payload_indexes": {"location": "geo"}}
    )
    records = tmp_path / "places.jsonl"
    records.write_text(
        "".join(
            f'{{"id": {i}, "payload": {{"city": "c{i}", "location": {{"lat": 59.9, "lon": 10.7}}}}}}\n'
            for i in range(1, 101)
        )
    )
    assert upsert_file(client, "places", records, batch_size=32) == 100
    assert client.count_points("places") == 100
    assert get_point(client, "places", 42)["payload"]["city"] == "c42"
    assert get_point(client, "places", 4242) is None

    overview = cluster_overview(client)
    assert len(overview["peers"]) == 3 and overview["leader"] is not None
    places = next(c for c in overview["collections"] if c["name"] == "places")
    assert places["points_exact"] == 100
    assert len(places["replicas"]) == places["shard_number"] * 2
    assert places["unhealthy_replicas"] == []
