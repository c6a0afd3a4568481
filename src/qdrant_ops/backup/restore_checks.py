"""After the recoveries: every replica Active and the collection serving on every node, replicas
spread evenly, and the cluster compared with the manifest (exact counts, sampled points, golden
queries)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from qdrant_ops.backup import node_part
from qdrant_ops.backup.manifest import Manifest
from qdrant_ops.backup.restore_plan import RestoreError
from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster import golden, rebalance
from qdrant_ops.cluster.health import shard_placement, unhealthy_replicas
from qdrant_ops.cluster.points import get_points
from qdrant_ops.polling import wait_until

# -- waiting and checking ------------------------------------------------------------------------------
SERVING = ("green", "yellow")  # yellow: optimizing in the background, every point served


def trigger_optimizers(client: ClusterClient, collection: str) -> None:
    """Qdrant starts no optimizer after a shard recovery (only after a collection recovery), so a
    restored collection whose segments still need work stays grey until some update arrives; an
    empty optimizers_config update restarts the optimizers on every replica
    (docs/qdrant-behaviour.md §7)."""
    client.update_collection(collection, {"optimizers_config": {}})


def _not_healthy(client: ClusterClient, collection: str, nodes: Sequence[str]) -> tuple[str | None, bool]:
    """What keeps the collection from serving settled (None when nothing does), and whether it is
    settled but grey (its optimizers not started)."""
    info = client.collection_info(collection) or {}
    bad, transfers = [], []
    for node in nodes:
        try:
            view = client.collection_cluster(collection, node=node)
        except QdrantApiError as exc:
            bad.append(f"{node}: {exc.status}")
            continue
        bad += unhealthy_replicas(shard_placement(view))
        transfers += view.get("shard_transfers") or []
    settled = not bad and not transfers
    if settled and info.get("status") in SERVING:
        return None, False
    missing = f"status {info.get('status')}, replicas not Active: {bad}, transfers: {len(transfers)}"
    return missing, settled and info.get("status") == "grey"


def wait_healthy(
    client: ClusterClient, collection: str, nodes: Sequence[str], timeout: float, *, trigger: bool = False
) -> None:
    """Serving (green, or yellow while optimizing), no shard transfer running, and no replica other
    than Active in any node's view. With `trigger`, a settled collection that is still grey gets its
    optimizers started (after the transfers: a replica rebuilt by a transfer starts untriggered)."""
    triggered_at = -1e9

    def missing() -> str | None:
        nonlocal triggered_at
        what, grey = _not_healthy(client, collection, nodes)
        if grey and trigger and time.monotonic() - triggered_at > 30:
            trigger_optimizers(client, collection)
            triggered_at = time.monotonic()
        return what

    wait_until(
        missing,
        timeout=timeout,
        interval=0.25,
        error=lambda what: RestoreError(
            f"{collection} did not become healthy within {timeout:.0f}s: {what}; "
            "see `qdrant-ops cluster status`"
        ),
    )


def wait_everywhere(
    client: ClusterClient, collection: str, nodes: Sequence[str], timeout: float
) -> list[dict]:
    """Until every node knows the new collection; returns its placement."""
    views: list[dict] = []

    def missing() -> str | None:
        try:
            views[:] = [client.collection_cluster(collection, node=node) for node in nodes]
        except QdrantApiError as exc:
            if exc.status != 404:
                raise RestoreError(f"{collection} was created but not every node knows it: {exc}") from exc
            return str(exc)
        return None

    wait_until(
        missing,
        timeout=timeout,
        interval=0.2,
        error=lambda what: RestoreError(f"{collection} was created but not every node knows it: {what}"),
    )
    return shard_placement(views[0])


def verify_restore(
    client: ClusterClient, manifest: Manifest, collections: Sequence[str], log=lambda _line: None
) -> tuple[list[str], dict[str, dict]]:
    """Differences between the cluster now and the manifest (exact counts, sampled points, the
    golden queries' exact results and recall), and each collection's golden query results."""
    problems, searches = _compare_points(client, manifest, collections), {}
    for name in collections:
        result = golden.judged(client, name, manifest.collections[name].golden, log)
        problems += result.problems(name)
        searches[name] = result.report()
    return problems, searches


def _compare_points(client: ClusterClient, manifest: Manifest, collections: Sequence[str]) -> list[str]:
    problems = []
    for name in collections:
        expected = manifest.collections[name]
        count = client.count_points(name)
        if count != expected.points_exact:
            problems.append(f"{name}: {count} points, the backup has {expected.points_exact}")
        points = get_points(client, name, [sample["id"] for sample in expected.sample])
        for sample in expected.sample:
            point = points.get(sample["id"])
            if point is None:
                problems.append(f"{name}: sampled point {sample['id']} is missing")
            else:
                found = node_part.point_fingerprint(point)
                differ = [
                    part
                    for part in ("payload", "vector")
                    if found[f"{part}_sha256"] != sample[f"{part}_sha256"]
                ]
                if differ:
                    problems.append(f"{name}: point {sample['id']} differs in {' and '.join(differ)}")
    return problems


def unbalanced(client: ClusterClient, collections: Sequence[str]) -> list[rebalance.ShardTransfer]:
    status = client.cluster_status()
    if status.get("status") != "enabled":
        return []
    peers = sorted(int(p) for p in status["peers"])
    placements = {name: shard_placement(client.collection_cluster(name)) for name in collections}
    return rebalance.plan_moves(placements, peers)
