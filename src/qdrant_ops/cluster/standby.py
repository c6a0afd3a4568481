"""Warm standby: a second cluster kept close to the primary with Qdrant's partial shard snapshots
(docs/qdrant-behaviour.md §8, §10).

Every replica of the standby asks a primary replica of the same shard for the segment files that
changed since its own manifest (`POST .../shards/{s}/snapshot/partial/recover_from`, sent to the
standby node that holds the replica, with the primary node's URL and key): the standby node
downloads only what changed and recovers it. Nothing is written to the primary; its nodes make a
snapshot stream, as for a backup.

The standby carries a marker, one point in the collection `qdrant_ops_standby`: its role
(`standby` until promoted), the peer ids of the primary it copies, and, per collection, the primary
time the last sync reflects and the primary's exact count then. A sync refuses a cluster without
the marker (it would overwrite whatever that cluster holds) or with a promoted one (it takes writes
of its own now).

Which cluster is which is decided by identity, never by URLs (`pair_problem`): Raft peer ids are
random 64-bit numbers, so two clusters sharing one is one cluster named twice; a "primary" that
carries a standby marker is the standby (the two swapped); a standby whose marker names other
primary peers holds another primary's data. Each is refused before any request that changes
anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster import golden
from qdrant_ops.cluster.collection_spec import NAME_PATTERN
from qdrant_ops.cluster.collections import apply_plan, describe, plan_collection
from qdrant_ops.cluster.health import shard_placement
from qdrant_ops.cluster.standby_identity import (
    MARKER,
    StandbyError,
    check_pair,
    cluster_peers,
    cluster_status_via,
    read_marker,
    require_standby,
    write_marker,
)
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.progress import Progress

# Qdrant 1.18.3 and 1.19.0 recover the partial snapshot, then refresh the collection's payload index
# schema from every shard with local-only reads, which fails on a node that does not hold every
# shard (lib/collection/src/shards/shard_holder/mod.rs, `common_payload_index_schema`). The data
# is in place by then; the standby's schema was made from the primary's at `init` (§10).
SCHEMA_REFRESH_FAILURE = "failed to update payload index schema after recovering partial snapshot"


@dataclass(frozen=True)
class Transfer:
    """One standby replica brought up to date from a source replica: a primary replica, for the
    shard's first standby replica, or that first standby replica, for the shard's other standby
    replicas (so the data crosses between the clusters once per shard, and every standby replica of
    a shard ends up identical to the first, even after a sync cut short by the primary's loss)."""

    collection: str
    shard_id: int
    standby_peer: int
    standby_url: str
    source_peer: int
    source_url: str
    from_primary: bool = True


def peer_urls(client: ClusterClient, urls: Sequence[str], via: Sequence[str] = ()) -> dict[int, str]:
    """Which of the given node URLs answers as which peer (`via`: see `cluster_peers`)."""
    found = {}
    for url in urls:
        status = cluster_status_via(client, url, via)
        if status.get("status") != "enabled":
            raise StandbyError(f"{url} runs without cluster mode: a standby pairs two distributed clusters")
        found[int(status["peer_id"])] = url.rstrip("/")
    return found


def plan_transfers(
    collection: str,
    primary: list[dict],
    standby: list[dict],
    primary_urls: dict[int, str],
    standby_urls: dict[int, str],
) -> list[Transfer]:
    """Per shard: its first standby replica from a primary Active replica (both spread by shard
    number), then the shard's other standby replicas from that first one (shard placements as
    `shard_placement` gives them). First hops come before the others in the list."""
    sources: dict[int, list[int]] = {}
    for replica in primary:
        if replica["state"] == "Active" and replica["peer_id"] in primary_urls:
            sources.setdefault(replica["shard_id"], []).append(replica["peer_id"])
    primary_shards = {replica["shard_id"] for replica in primary}
    standby_shards = {replica["shard_id"] for replica in standby}
    if primary_shards != standby_shards:
        raise StandbyError(
            f"{collection}: the standby has shards {sorted(standby_shards)}, the primary "
            f"{sorted(primary_shards)}: recreate the standby's collection with the primary's shard number "
            "(qdrant-ops standby init)"
        )
    first_hops = []
    for shard_id, (first, *_others) in sorted(_replicas_by_shard(collection, standby, standby_urls).items()):
        peers = sorted(sources.get(shard_id, []))
        if not peers:
            raise StandbyError(
                f"{collection}: shard {shard_id} has no Active replica on the primary nodes given: nothing "
                "to sync it from (check the primary's health and --primary-url)"
            )
        source = peers[shard_id % len(peers)]
        target = standby_urls[first]
        first_hops.append(Transfer(collection, shard_id, first, target, source, primary_urls[source]))
    return first_hops + plan_reconcile(collection, standby, standby_urls)


def plan_reconcile(collection: str, standby: list[dict], standby_urls: dict[int, str]) -> list[Transfer]:
    """The second hops alone: every standby replica of a shard from the shard's first one (at
    promotion: a sync cut short may have updated the first replica and not yet the others)."""
    transfers = []
    for shard_id, (first, *others) in sorted(_replicas_by_shard(collection, standby, standby_urls).items()):
        for peer in others:
            transfers.append(
                Transfer(collection, shard_id, peer, standby_urls[peer], first, standby_urls[first], False)
            )
    return transfers


def _replicas_by_shard(collection: str, standby: list[dict], standby_urls: dict[int, str]) -> dict:
    """Shard -> its standby peers, the first one first: an Active replica chosen by shard number,
    so the same replica is first in every sync and at promotion while the placement holds."""
    by_shard: dict[int, list[dict]] = {}
    for replica in standby:
        if replica["peer_id"] not in standby_urls:
            raise StandbyError(
                f"{collection}: standby peer {replica['peer_id']} holds shard {replica['shard_id']} but no "
                "--standby-url answers as it: give every standby node"
            )
        by_shard.setdefault(replica["shard_id"], []).append(replica)
    ordered = {}
    for shard_id, replicas in by_shard.items():
        peers = sorted(r["peer_id"] for r in replicas)
        active = sorted(r["peer_id"] for r in replicas if r["state"] == "Active") or peers
        first = active[shard_id % len(active)]
        ordered[shard_id] = [first, *(peer for peer in peers if peer != first)]
    return ordered


@dataclass(frozen=True)
class StandbyOptions:
    """What one init, sync or promote does, built once by the CLI and qdrant_standby and checked
    here. Each cluster's node URLs and API key are its client's own (ClusterClient.urls, .api_key):
    a standby node recovers from exactly the peers and with the key the operator gave."""

    collections: tuple[str, ...] = ()  # init, sync: default every collection of the primary
    timeout: float = 3600.0  # sync, promote: the longest one round of shard recoveries may take
    dry_run: bool = False  # init, promote: report what would change, change nothing
    golden_queries: int = 20  # sync: searches per collection drawn on the primary (cluster/golden.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "collections", tuple(self.collections))
        for name in self.collections:
            if not (isinstance(name, str) and NAME_PATTERN.match(name)) or name == MARKER:
                raise ConfigError(
                    f"collection {name!r} cannot be copied: give the primary's collection names"
                )
        if not self.timeout > 0:
            raise ConfigError(f"the timeout must be positive, got {self.timeout}")
        if not 0 <= self.golden_queries <= 100:
            raise ConfigError(f"golden_queries must be between 0 and 100, got {self.golden_queries}")


# -- init ----------------------------------------------------------------------------------------------
def init(
    primary: ClusterClient,
    standby: ClusterClient,
    options: StandbyOptions = StandbyOptions(),
    *,
    log=lambda _line: None,
) -> dict:
    """Create the standby's collections with the primary's config and shard number, and its marker.
    Refuses a target that already holds one of them unless it is a standby already (a second run
    adds what is missing and changes nothing else). Returns whether the marker was created, the
    collections created (with `dry_run`: what would be, nothing written) and every collection the
    standby copies (what its scoped token must name)."""
    marker = read_marker(standby)
    if marker is not None:
        require_standby(marker)
    primary_peers = check_pair(primary, standby, marker)
    dry_run = options.dry_run
    names = list(options.collections) or [name for name in primary.collection_names() if name != MARKER]
    existing = set(standby.collection_names())
    if marker is None and existing - {MARKER}:
        raise StandbyError(
            f"the target already has {', '.join(sorted(existing - {MARKER}))} and no standby marker: it "
            "looks like a cluster in use (the primary, if the two are swapped); a standby must start empty"
        )
    infos = {name: primary.collection_info(name) for name in names}
    absent = sorted(name for name, info in infos.items() if info is None)
    if absent:
        raise StandbyError(f"the primary has no collection {', '.join(absent)}: check --collection")
    if marker is None and not dry_run:
        peers = len(standby.cluster_status().get("peers") or {}) or 1
        standby.create_collection(
            MARKER, {"vectors": {}, "shard_number": 1, "replication_factor": min(3, peers)}
        )
        write_marker(
            standby,
            {
                "role": "standby",
                "created_at": time.time(),
                "collections": {},
                "primary_peers": sorted(str(p) for p in primary_peers),
            },
        )
        log(f"marker {MARKER} created: this cluster is a standby")
    created = [name for name in names if name not in existing]
    for name in created if not dry_run else ():
        apply_plan(standby, plan_collection(describe(infos[name], name), None))
        log(f"{name}: created on the standby with the primary's config")
    return {"marker_created": marker is None, "created": created, "synced_collections": names}


# -- sync ----------------------------------------------------------------------------------------------
def recover_from(standby: ClusterClient, transfer: Transfer, key: str | None, timeout: float) -> str:
    """Bring one standby replica up to date from its source (`key`: the source cluster's API key):
    'updated', 'unchanged' (the source answered 304) or 'updated (schema refresh failed)'."""
    try:
        changed = standby.recover_partial_from(
            transfer.standby_url,
            transfer.collection,
            transfer.shard_id,
            peer_url=transfer.source_url,
            api_key=key,
            timeout=timeout,
        )
    except QdrantApiError as exc:
        if exc.status == 500 and SCHEMA_REFRESH_FAILURE in exc.message:
            return "updated (schema refresh failed)"
        source = "primary" if transfer.from_primary else "standby"
        raise StandbyError(
            f"{transfer.collection} shard {transfer.shard_id} on standby peer {transfer.standby_peer} from "
            f"{source} peer {transfer.source_peer}: {exc}"
        ) from exc
    return "updated" if changed else "unchanged"


def sync(
    primary: ClusterClient,
    standby: ClusterClient,
    options: StandbyOptions = StandbyOptions(),
    *,
    log: Callable[[str], None] = lambda _line: None,
    clock: Callable[[], float] = time.time,
) -> dict:
    """One sync of every collection of the primary (or those given): first their config
    (`mirror_config`), then the data. Transfers run one at a time per standby peer, peers in
    parallel. Returns per collection the primary time the sync reflects (taken before the first
    request for it: every change acknowledged before then is on the standby) and the primary's
    exact count then."""
    if options.dry_run:
        raise ConfigError("a sync has no dry run: `qdrant-ops standby init --dry-run` shows what is missing")
    collections = options.collections
    marker = read_marker(standby)
    if marker is not None:
        require_standby(marker)  # a promoted standby is refused even while the primary is lost
    # A scoped primary key (`scoped_token`) lists only the collections it may read.
    via = [name for name in collections or primary.collection_names() if name != MARKER]
    check_pair(primary, standby, marker, via=via)  # before the no-marker refusal: a swapped pair is named so
    require_standby(marker)
    started = time.monotonic()
    names, config_changes = mirror_config(primary, standby, collections, log)
    primary_urls, standby_urls = peer_urls(primary, primary.urls, via), peer_urls(standby, standby.urls)
    keys = {True: primary.api_key, False: standby.api_key}
    report: dict = {"collections": {}, "transfers": [], "config_changes": config_changes}
    searches = dict(marker.get("golden") or {})
    for name in names:
        reflects, primary_points = clock(), primary.count_points(name)
        placements = [shard_placement(side.collection_cluster(name)) for side in (primary, standby)]
        transfers = plan_transfers(name, *placements, primary_urls, standby_urls)
        outcomes = _run_per_peer(standby, transfers, keys, options.timeout, log)
        report["transfers"] += outcomes
        updated = sum(o["result"] != "unchanged" for o in outcomes)
        report["collections"][name] = {
            "reflects": reflects,
            "primary_points": primary_points,
            "updated": updated,
        }
        # Drawn on the primary (once a day) for the promotion to judge the standby's index by.
        fresh = golden.refreshed(primary, name, searches.get(name), count=options.golden_queries, now=clock())
        if fresh is not None:
            searches[name] = fresh
            log(f"{name}: {len(fresh['queries'])} golden queries drawn on the primary")
    # Re-read: a promotion while this sync ran must not be undone by writing the old role back.
    marker = require_standby(read_marker(standby))
    marker.setdefault("collections", {}).update(report["collections"])
    marker["golden"] = searches
    # Nodes get replaced: the primary's peers as of this sync (markers from before the identity
    # check learn them here, on their first sync).
    marker["primary_peers"] = sorted(str(p) for p in cluster_peers(primary, via))
    write_marker(standby, marker)
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def mirror_config(
    primary: ClusterClient, standby: ClusterClient, collections: Sequence[str], log: Callable[[str], None]
) -> tuple[list[str], dict[str, str]]:
    """Before the data: create on the standby the primary's collections it lacks, and bring each
    one's config and payload indexes to the primary's (the partial snapshots carry segments, not the
    collection's config; §10). A collection gone from the primary is kept on the standby, reported.
    Returns the collections to sync and what changed, per collection."""
    primary_names = [name for name in primary.collection_names() if name != MARKER]
    names = list(collections) or primary_names
    changes: dict[str, str] = {}
    for name in names:
        info = primary.collection_info(name)
        if info is None:
            raise StandbyError(f"the primary has no collection {name}: drop it from --collection")
        current = standby.collection_info(name)
        plan = plan_collection(describe(info, name), current, prune_payload_indexes=True)
        if plan.immutable_changes:
            raise StandbyError(
                f"{name} on the primary differs in what cannot change in place "
                f"({'; '.join(plan.immutable_changes)}): it was recreated there; delete {name} on the "
                "standby and sync again (it is created and copied anew)"
            )
        if plan.action != "none":
            apply_plan(standby, plan)
            indexes = [f"+index {f}" for f in plan.indexes_to_create]
            indexes += [f"-index {f}" for f in plan.indexes_to_delete]
            changes[name] = "created" if plan.action == "create" else ", ".join([*plan.patch, *indexes])
            log(f"{name}: {changes[name]} on the standby, as on the primary")
    if not collections:
        for name in sorted(set(standby.collection_names()) - set(primary_names) - {MARKER}):
            log(f"{name}: gone from the primary; the standby keeps its last copy (delete it by hand)")
    return names, changes


def promote(
    standby: ClusterClient,
    primary: ClusterClient | None = None,
    options: StandbyOptions = StandbyOptions(),
    *,
    log: Callable[[str], None] = lambda _line: None,
    clock: Callable[[], float] = time.time,
) -> dict:
    """Make the standby the cluster that takes writes: the marker says `promoted`, so no sync
    touches it again (stop the sync timer first: a sync already running would still finish its
    transfers). First every standby replica of a shard is brought to the shard's first replica
    (`reconcile`). Reports per collection the standby's count, what the last sync recorded of the
    primary, the lag at promotion and, when the primary still answers, its count now (with
    `dry_run`: the report, the marker left as it is)."""
    marker = read_marker(standby)
    if marker is not None and marker.get("role") == "promoted":
        return {
            "already_promoted": True,
            "promoted_at": marker.get("promoted_at"),
            "collections": {},
            "reconciled": 0,
        }
    marker = require_standby(marker)
    if primary is not None:
        check_pair(primary, standby, marker, primary_may_be_lost=True)
    # A sync cut short (the primary lost mid-sync) may have updated a shard's first replica and not
    # the others: copy it to them first, so every replica answers the same.
    dry_run = options.dry_run
    reconciled = [] if dry_run else reconcile(standby, timeout=options.timeout, log=log)
    now = clock()
    report: dict = {
        "already_promoted": False,
        "promoted_at": now,
        "collections": {},
        "reconciled": sum(o["result"] != "unchanged" for o in reconciled),
    }
    for name, state in sorted((marker.get("collections") or {}).items()):
        report["collections"][name] = _promotion_row(standby, primary, name, state, now=now, log=log)
        # The data may have moved on since the draw (syncs under writes): exact differences are
        # reported, the standby's index is judged by its recall.
        stored = (marker.get("golden") or {}).get(name)
        report["collections"][name]["golden"] = golden.judged(
            standby, name, stored, log, exact_required=False
        ).report()
    if not dry_run:
        write_marker(standby, {**marker, "role": "promoted", "promoted_at": now})
    return report


def _promotion_row(
    standby: ClusterClient, primary: ClusterClient | None, name: str, state: dict, *, now: float, log
) -> dict:
    """One collection at promotion: its count here, the primary's at the last sync and now, the lag."""
    row = {
        "standby_points": standby.count_points(name),
        "primary_points_at_sync": state["primary_points"],
        "lag_seconds": round(now - state["reflects"], 3),
        "primary_points_now": None,
    }
    # Fewer points than the primary had when the last completed sync began: points deleted on
    # the primary since, or data missing on the standby. The operator decides; it is reported.
    row["behind_last_sync"] = row["standby_points"] < row["primary_points_at_sync"]
    if primary is not None:
        try:
            row["primary_points_now"] = primary.count_points(name)
        except QdrantOpsError as exc:
            log(f"{name}: the primary did not answer ({exc}); its last known count is the sync's")
    log(f"{name}: {row['standby_points']} points on the standby, lag at promotion {row['lag_seconds']} s")
    if row["behind_last_sync"]:
        log(
            f"{name}: WARNING: fewer points than the primary's {row['primary_points_at_sync']} at the "
            "last sync (deleted there since, or missing here): check before taking writes"
        )
    return row


def reconcile(standby: ClusterClient, *, timeout: float, log) -> list[dict]:
    """Every standby replica of every shard brought to the shard's first replica (a 304, nothing
    copied, where they already agree)."""
    urls = peer_urls(standby, standby.urls)
    transfers = []
    for name in standby.collection_names():
        if name != MARKER:
            transfers += plan_reconcile(name, shard_placement(standby.collection_cluster(name)), urls)
    return _run_per_peer(standby, transfers, {False: standby.api_key}, timeout, log)


def _run_per_peer(standby: ClusterClient, transfers: list[Transfer], keys: dict, timeout, log) -> list[dict]:
    """First hops, then the others (`keys`: the API key for a source on the primary, True, and on
    the standby, False). One transfer at a time per standby peer, and one replica of a shard at a
    time: Qdrant answers reads of a replica under partial recovery with "partial snapshot recovery
    is in progress", so the shard's other replicas must stay readable (§10). After a failure no new
    transfer starts."""
    outcomes = []
    for hop in (True, False):
        phase = [t for t in transfers if t.from_primary is hop]
        outcomes += _run_phase(standby, phase, keys.get(hop), timeout, log)
    return sorted(outcomes, key=lambda o: (o["collection"], o["shard_id"], o["standby_peer"]))


def _run_phase(standby: ClusterClient, transfers: list[Transfer], key, timeout, log) -> list[dict]:
    queues: dict[int, list[Transfer]] = {}
    for transfer in transfers:
        queues.setdefault(transfer.standby_peer, []).append(transfer)
    outcomes: list[dict] = []
    busy: set[tuple[str, int]] = set()
    turn = threading.Condition()
    failed = threading.Event()
    progress = Progress("standby sync", "shard copies", len(transfers), 0, log)

    def next_free(queue: list[Transfer]) -> Transfer | None:
        with turn:
            while queue and not failed.is_set():
                free = next((t for t in queue if (t.collection, t.shard_id) not in busy), None)
                if free is not None:
                    queue.remove(free)
                    busy.add((free.collection, free.shard_id))
                    return free
                turn.wait(timeout=1.0)
            return None

    def one_peer(queue: list[Transfer]) -> None:
        while (transfer := next_free(queue)) is not None:
            began = time.monotonic()
            try:
                result = recover_from(standby, transfer, key, timeout)
            except BaseException:
                failed.set()
                raise
            finally:
                with turn:
                    busy.discard((transfer.collection, transfer.shard_id))
                    turn.notify_all()
            line = {
                "collection": transfer.collection,
                "shard_id": transfer.shard_id,
                "standby_peer": transfer.standby_peer,
                "source_peer": transfer.source_peer,
                "from_primary": transfer.from_primary,
                "result": result,
                "seconds": round(time.monotonic() - began, 3),
            }
            with turn:
                outcomes.append(line)
            source = "primary" if transfer.from_primary else "standby"
            progress.done(
                f"{transfer.collection} shard {transfer.shard_id} -> peer {transfer.standby_peer} "
                f"from {source} peer {transfer.source_peer}: {result}"
            )

    with ThreadPoolExecutor(max_workers=max(1, len(queues))) as pool:
        for future in [pool.submit(one_peer, queue) for queue in queues.values()]:
            future.result()  # the first failure is raised once every peer's current transfer ended
    return outcomes
