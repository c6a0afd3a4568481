"""Zones in replica placement with a real Qdrant (QDRANT_BINARY): four nodes in two zones. The
zones are drawn after Qdrant placed a collection so that at least one shard has both replicas in
zone a; `qdrant-ops cluster status` warns, `cluster rebalance` (zones given by node URL, as the
inventory gives them) moves replicas while a reader counts, and afterwards every shard has one
replica in each zone, the counts are balanced, every replica is Active and nothing was lost. A
collection created by `collections apply` with the same zones comes out spread at once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from qdrant_ops.cli import main
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster.health import shard_placement, unhealthy_replicas
from tests.support.e2e_data import count_reader, fill_cities

pytestmark = pytest.mark.qdrant
POINTS = 20_000


def holders(client: ClusterClient, collection: str) -> dict[int, set[int]]:
    shards: dict[int, set[int]] = {}
    for replica in shard_placement(client.collection_cluster(collection)):
        shards.setdefault(replica["shard_id"], set()).add(replica["peer_id"])
    return shards


@pytest.mark.parametrize("qdrant_cluster", [4], indirect=True)
def test_rebalance_spreads_every_shard_over_two_zones(qdrant_cluster, tmp_path, monkeypatch, capsys):
    cluster = qdrant_cluster
    monkeypatch.setenv("QDRANT_URL", ",".join(cluster.urls))
    monkeypatch.setenv("QDRANT_API_KEY", cluster.api_key)
    with ClusterClient(cluster.urls, cluster.api_key, retries=5, backoff=0.5, timeout=120) as client:
        fill_cities(client, POINTS)  # 6 shards, replication factor 2, placed by Qdrant
        peer_url = {int(cluster.cluster_status(node)["peer_id"]): node.url for node in cluster.nodes}
        first_pair = sorted(holders(client, "cities")[0])
        zone = {peer: "a" if peer in first_pair else "b" for peer in peer_url}
        zone_args = [arg for peer, url in peer_url.items() for arg in ("--zone", f"{url}={zone[peer]}")]

        assert main(["cluster", "status", *zone_args]) == 0
        assert "cities shard 0: 2 in a" in capsys.readouterr().out

        stop, failed_reads = threading.Event(), []
        reader = count_reader(client, "cities", POINTS, stop.is_set, failed_reads)
        reader.start()
        try:
            assert main(["cluster", "rebalance", *zone_args]) == 0
        finally:
            stop.set()
            reader.join(timeout=120)
        assert "zones: a (2), b (2)" in capsys.readouterr().err

        shards = holders(client, "cities")
        assert all({zone[p] for p in peers} == {"a", "b"} for peers in shards.values()), shards
        load = Counter(p for peers in shards.values() for p in peers)
        assert set(load) == set(peer_url) and max(load.values()) - min(load.values()) <= 1
        assert unhealthy_replicas(shard_placement(client.collection_cluster("cities"))) == []
        assert failed_reads == [] and client.count_points("cities") == POINTS
        assert main(["cluster", "status", *zone_args]) == 0
        assert "WARNING" not in capsys.readouterr().out

        spec = tmp_path / "spread.yml"
        spec.write_text(
            "name: spread\nvectors: {size: 8, distance: Cosine}\nshard_number: 8\nreplication_factor: 2\n"
        )
        assert main(["collections", "apply", "-f", str(spec), *zone_args]) == 0
        assert all({zone[p] for p in peers} == {"a", "b"} for peers in holders(client, "spread").values())
