"""The warm standby with real Qdrant (QDRANT_BINARY): two 3-node clusters on loopback addresses,
`qdrant-ops standby init` and `sync` through the CLI, a writer on the primary while syncs run;
after the writer stops and one sync runs, the standby holds exactly the primary's points (full scan,
payload and vector hashes). A segment merge on the primary between syncs is handled; a cluster
without the standby marker, or a promoted one, is refused with nothing changed."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time

import pytest

from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster import collections, standby, standby_identity, standby_metrics
from tests.support.e2e_data import fingerprints, replica_manifests, upsert
from tests.support.qdrant_cluster import LocalQdrantCluster

pytestmark = pytest.mark.qdrant
SPEC = {"name": "docs", "vectors": {"size": 64, "distance": "Dot"}, "shard_number": 3,
        "replication_factor": 2, "payload_indexes": {"city": "keyword"}}  # fmt: skip
FIRST = 20_000
ALIAS = {"collection_name": "docs", "alias_name": "x"}


@pytest.fixture(scope="module")
def pair(qdrant_binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("standby")
    (base / "pk").write_text("primary-key")
    (base / "sk").write_text("standby-key")
    with (
        LocalQdrantCluster(
            qdrant_binary, base / "primary", size=3, api_key="primary-key", jwt_rbac=True
        ) as primary,
        LocalQdrantCluster(qdrant_binary, base / "standby", size=3, api_key="standby-key") as secondary,
        ClusterClient(primary.urls, "primary-key", retries=5, backoff=0.3, timeout=120) as pc,
        ClusterClient(secondary.urls, "standby-key", retries=5, backoff=0.3, timeout=120) as sc,
    ):
        collections.ensure_collection(pc, SPEC)
        upsert(pc, range(FIRST), seed=1)
        yield primary, secondary, pc, sc, base


def cli(
    pair, action: str, *extra: str, swap: bool = False, same: bool = False
) -> subprocess.CompletedProcess:
    """`standby ACTION` between the pair; `swap` names each cluster as the other, `same` names the
    standby as both (an operator's mistakes)."""
    primary, secondary, _pc, _sc, base = pair
    sides = [(primary, "pk"), (secondary, "sk")]
    sides = sides[::-1] if swap else [sides[1], sides[1]] if same else sides
    urls = [a for u in sides[0][0].urls for a in ("--primary-url", u)]
    urls += [a for u in sides[1][0].urls for a in ("--standby-url", u)]
    command = [sys.executable, "-m", "qdrant_ops.cli", "standby", action, *urls,
               "--primary-api-key-file", str(base / sides[0][1]),
               "--standby-api-key-file", str(base / sides[1][1]), "--json", *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def test_a_swapped_init_is_refused_before_anything_changes(pair):
    # The real standby is still empty: only the target's own collections show the swap.
    _primary, _secondary, pc, sc, _base = pair
    result = cli(pair, "init", swap=True)
    assert result.returncode == 2, result.stdout
    assert "the target already has docs and no standby marker" in result.stderr and "swapped" in result.stderr
    assert standby_identity.MARKER not in pc.collection_names() and sc.collection_names() == []


def test_init_then_syncs_under_a_writer_end_with_the_primarys_exact_points(pair, tmp_path):
    _primary, _secondary, pc, sc, _base = pair
    result = cli(pair, "init")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "marker_created": True,
        "created": ["docs"],
        "synced_collections": ["docs"],
    }
    assert sc.collection_info("docs")["payload_schema"]["city"]["data_type"] == "keyword"
    again = cli(pair, "init")  # a second init changes nothing
    assert again.returncode == 0 and json.loads(again.stdout) == {
        "marker_created": False, "created": [], "synced_collections": ["docs"]}  # fmt: skip

    stop, written = threading.Event(), []

    def writer() -> None:
        for batch in range(60):  # bounded
            if stop.is_set():
                return
            ids = range(FIRST + batch * 200, FIRST + (batch + 1) * 200)
            upsert(pc, ids, seed=batch + 10)
            upsert(pc, range(batch * 50, batch * 50 + 50), seed=batch + 100)  # updates of old points
            written.append(batch)

    busy_file, busy_seen = tmp_path / "textfile" / standby_metrics.SyncBusy.FILE, []

    def watch_busy() -> None:  # the alert rules' hint that replicas are not Active by design
        while not stop.wait(0.05):
            with contextlib.suppress(FileNotFoundError):  # a sync may remove it meanwhile
                busy_seen.append(busy_file.read_text())

    thread, watcher = threading.Thread(target=writer), threading.Thread(target=watch_busy)
    thread.start()
    watcher.start()
    syncs = []
    try:
        for _ in range(5):  # syncs while the writer runs
            result = cli(pair, "sync", "--metrics-dir", str(tmp_path / "textfile"))
            assert result.returncode == 0, result.stderr
            syncs.append(json.loads(result.stdout))
    finally:
        stop.set()
        thread.join(timeout=600)
        watcher.join(timeout=10)
    assert written, "the writer wrote nothing"
    assert any('busy_until_timestamp_seconds{cluster="standby"}' in text for text in busy_seen)
    assert not busy_file.exists()  # each sync removed it when it ended
    # Qdrant 1.18/1.19: on a node without every shard the schema refresh after a partial recovery
    # fails after the data is in (docs/qdrant-behaviour.md §10); the sync counts it as updated.
    results = {t["result"] for s in syncs for t in s["transfers"]}
    assert "updated (schema refresh failed)" in results, results

    final = cli(pair, "sync")
    assert final.returncode == 0, final.stderr
    assert fingerprints(sc) == fingerprints(pc)
    # Each shard crossed once; its second standby replica copied the first: the same segments.
    hops = [t["from_primary"] for t in json.loads(final.stdout)["transfers"]]
    assert hops.count(True) == SPEC["shard_number"] and hops.count(False) == SPEC["shard_number"]
    assert all(len(set(m.values())) == 1 for m in replica_manifests(sc, pair[1].urls).values())
    again = json.loads(cli(pair, "sync").stdout)
    assert {t["result"] for t in again["transfers"]} == {"unchanged"}  # nothing changed: 304 everywhere
    assert again["config_changes"] == {}, "the standby's config differs from the primary's after syncs"
    assert again["collections"]["docs"]["primary_points"] == pc.count_points("docs")

    prom = (tmp_path / "textfile" / "qdrant_ops_standby.prom").read_text()
    assert 'qdrant_ops_standby_synced_timestamp_seconds{cluster="standby",collection="docs"}' in prom
    assert (
        "qdrant_ops_standby_sync_last_run_success"
        in (tmp_path / "textfile" / "qdrant_ops_standby_sync.prom").read_text()
    )


def test_swapped_or_doubled_clusters_are_refused_by_identity(pair):
    _primary, _secondary, pc, sc, _base = pair
    before = fingerprints(pc)
    swapped = cli(pair, "sync", swap=True)
    assert swapped.returncode == 2 and "carries the standby marker" in swapped.stderr, swapped.stderr
    same = cli(pair, "sync", same=True)
    assert same.returncode == 2 and "the primary and the standby are one cluster" in same.stderr, same.stderr
    assert "nothing was changed" in swapped.stderr + same.stderr
    assert fingerprints(pc) == before and standby_identity.MARKER not in pc.collection_names()
    marker = standby_identity.read_marker(sc)
    assert sorted(marker["primary_peers"]) == sorted(str(p) for p in standby_identity.cluster_peers(pc))


def segment_ids(client: ClusterClient, node: str) -> set[str]:
    """The segments of the first shard `node` holds, from its partial snapshot manifest."""
    shard = client.collection_cluster("docs", node=node)["local_shards"][0]["shard_id"]
    manifest = client.get(f"/collections/docs/shards/{shard}/snapshot/partial/manifest", node=node)
    return set(manifest)


def test_a_segment_merge_on_the_primary_between_syncs_is_resent(pair):
    primary, _secondary, pc, sc, _base = pair
    assert cli(pair, "sync").returncode == 0
    before = segment_ids(pc, primary.urls[0])
    # Index everything above 1,000 points per segment: the optimizer rebuilds (merges) segments.
    pc.request("PATCH", "/collections/docs", json={"optimizers_config": {"indexing_threshold": 1000}})
    upsert(pc, range(FIRST - 500, FIRST + 500), seed=7)
    deadline = time.monotonic() + 900  # bounded; generous: 2 shared cores took over 300 s under CI load
    while pc.collection_info("docs")["status"] != "green" and time.monotonic() < deadline:
        time.sleep(1)
    assert pc.collection_info("docs")["status"] == "green"
    after = segment_ids(pc, primary.urls[0])
    assert before - after, "the optimizer replaced no segment: the test proves nothing"
    print(f"\nsegments of one primary shard: {len(before)} before, {len(after - before)} of them new after")
    result = cli(pair, "sync")
    assert result.returncode == 0, result.stderr
    assert fingerprints(sc) == fingerprints(pc)


def test_an_index_and_a_collection_made_on_the_primary_after_init_reach_the_standby(pair):
    _primary, _secondary, pc, sc, _base = pair
    pc.request("PUT", "/collections/docs/index", params={"wait": "true"},
               json={"field_name": "seed", "field_schema": "integer"})  # fmt: skip
    collections.ensure_collection(pc, {**SPEC, "name": "later", "shard_number": 2, "payload_indexes": {}})
    upsert(pc, range(3000), seed=5, collection="later")
    result = cli(pair, "sync")
    assert result.returncode == 0, result.stderr
    changes = json.loads(result.stdout)["config_changes"]
    assert changes["later"] == "created" and "+index seed" in changes["docs"], changes
    assert sc.collection_info("docs")["payload_schema"]["seed"]["data_type"] == "integer"
    assert fingerprints(sc, "later") == fingerprints(pc, "later") and len(fingerprints(sc, "later")) == 3000
    assert fingerprints(sc) == fingerprints(pc)
    # The next sync changes no config. (Its transfers may still update: the new index is built on the
    # segments of both clusters after the first sync.)
    again = json.loads(cli(pair, "sync").stdout)
    assert again["config_changes"] == {} and fingerprints(sc, "later") == fingerprints(pc, "later")


def test_the_standbys_scoped_token_syncs_and_can_do_no_more_on_the_primary(pair):
    """What playbooks/standby.yml gives the standby host instead of the primary's key
    (docs/disaster-recovery.md, "What a compromised standby can do"): rw on the synced collection,
    r on the marker, nothing else."""
    primary, _secondary, pc, sc, base = pair
    if "later" not in pc.collection_names():  # another collection the token must not reach
        collections.ensure_collection(pc, {**SPEC, "name": "later", "shard_number": 2, "payload_indexes": {}})
    (base / "token").write_text(standby_identity.scoped_token("primary-key", ["docs"], "standby"))
    upsert(pc, range(FIRST, FIRST + 2000), seed=33)
    command = [sys.executable, "-m", "qdrant_ops.cli", "standby", "sync", "--collection", "docs",
               *[a for u in primary.urls for a in ("--primary-url", u)],
               *[a for u in pair[1].urls for a in ("--standby-url", u)],
               "--primary-api-key-file", str(base / "token"), "--standby-api-key-file", str(base / "sk"),
               "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    assert fingerprints(sc) == fingerprints(pc)
    assert sorted(standby_identity.read_marker(sc)["primary_peers"]) == sorted(
        str(p) for p in standby_identity.cluster_peers(pc)
    )

    token = (base / "token").read_text()
    with ClusterClient(primary.urls, token, retries=0, timeout=30) as scoped:
        assert scoped.collection_names() == ["docs"]  # "later" is not even listed
        assert scoped.count_points("docs") == pc.count_points("docs")
        forbidden = [
            ("GET", "/cluster", None),
            ("GET", "/collections/later", None),
            ("POST", "/collections/later/points/count", {"exact": True}),
            ("DELETE", "/collections/docs", None),
            ("PUT", "/collections/stolen", {"vectors": {"size": 4, "distance": "Dot"}}),
            ("PATCH", "/collections/docs", {"optimizers_config": {"indexing_threshold": 1}}),
            ("POST", "/collections/docs/cluster", {"drop_replica": {"shard_id": 0, "peer_id": 1}}),
            ("PUT", "/collections/docs/snapshots/recover", {"location": "file:///etc/passwd"}),
            ("POST", "/collections/aliases", {"actions": [{"create_alias": ALIAS}]}),
        ]  # fmt: skip
        for method, path, body in forbidden:
            with pytest.raises(QdrantApiError) as refused:
                scoped.request(method, path, json=body)
            assert refused.value.status == 403, (method, path, refused.value)
        # The marker collection is read-only for the token. (Qdrant answers 404 before it checks
        # access for a collection that does not exist: the primary has no marker, so one is made.)
        pc.request("PUT", f"/collections/{standby_identity.MARKER}", json={"vectors": {}})
        try:
            forged = {"points": [{"id": 1, "vector": {}, "payload": {"role": "standby"}}]}
            with pytest.raises(QdrantApiError) as refused:
                scoped.request("PUT", f"/collections/{standby_identity.MARKER}/points", json=forged)
            assert refused.value.status == 403, refused.value
        finally:
            pc.request("DELETE", f"/collections/{standby_identity.MARKER}")
    assert {"docs", "later"} <= set(pc.collection_names()), "the token's refused requests changed the primary"


def test_a_cluster_without_the_marker_or_promoted_is_refused(pair):
    primary, _secondary, pc, sc, base = pair
    # The primary as the "standby" too: one cluster named twice, refused by identity before anything.
    command = [sys.executable, "-m", "qdrant_ops.cli", "standby", "sync",
               *[a for u in primary.urls for a in ("--primary-url", u)],
               *[a for u in primary.urls for a in ("--standby-url", u)],
               "--primary-api-key-file", str(base / "pk"),
               "--standby-api-key-file", str(base / "pk")]  # fmt: skip
    before = pc.count_points("docs")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "the primary and the standby are one cluster" in result.stderr
    assert pc.count_points("docs") == before

    marker = standby_identity.read_marker(sc)
    standby_identity.write_marker(sc, {**marker, "role": "promoted", "promoted_at": "2026-11-30T00:00:00Z"})
    try:
        result = cli(pair, "sync")
        assert result.returncode != 0 and "was promoted (2026-11-30T00:00:00Z)" in result.stderr
    finally:
        standby_identity.write_marker(sc, marker)


def test_primary_lost_mid_write_then_promote_loses_only_writes_after_the_last_sync(qdrant_binary, tmp_path):
    """(b) syncs every 2 s under a writer, the primary killed mid-write, the standby promoted: every
    write acknowledged before the last completed sync's primary time is on the standby; (d) the
    standby answers every query while it is synced."""
    (tmp_path / "sk").write_text("standby-key")
    with (
        LocalQdrantCluster(qdrant_binary, tmp_path / "p", size=3, api_key="primary-key") as primary,
        LocalQdrantCluster(qdrant_binary, tmp_path / "s", size=3, api_key="standby-key") as secondary,
        ClusterClient(primary.urls, "primary-key", retries=0, timeout=30) as pc,
        ClusterClient(secondary.urls, "standby-key", retries=3, backoff=0.2, timeout=120) as sc,
    ):
        collections.ensure_collection(pc, SPEC)
        upsert(pc, range(5000), seed=1)
        standby.init(pc, sc)
        standby.sync(pc, sc)

        stop = threading.Event()
        acked: list[tuple[float, range]] = []
        reflects: list[float] = []
        reads = {"ok": 0, "failed": []}

        def writer() -> None:
            for batch in range(2000):  # bounded; ends when the primary is gone
                ids = range(5000 + batch * 100, 5000 + (batch + 1) * 100)
                try:
                    upsert(pc, ids, seed=batch + 10)
                except Exception:
                    return
                acked.append((time.time(), ids))

        def syncer() -> None:
            for _ in range(200):  # bounded: the timer, every 2 s
                if stop.is_set():
                    return
                try:
                    report = standby.sync(pc, sc)
                except Exception:
                    return
                reflects.append(report["collections"]["docs"]["reflects"])
                time.sleep(2)

        def reader() -> None:
            query = {"query": [0.5] * 64, "limit": 5}
            while not stop.is_set():
                try:
                    assert (
                        len(sc.request("POST", "/collections/docs/points/query", json=query)["points"]) == 5
                    )
                    reads["ok"] += 1
                except Exception as exc:
                    reads["failed"].append(repr(exc))
                time.sleep(0.05)

        threads = [threading.Thread(target=f) for f in (writer, syncer, reader)]
        for thread in threads:
            thread.start()
        time.sleep(20)
        killed_at = time.time()
        for node in primary.nodes:  # the region is gone: no clean shutdown
            node.process.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=300)

        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "qdrant_ops.cli", "standby", "promote", "--json",
             *[a for u in secondary.urls for a in ("--standby-url", u)],
             "--standby-api-key-file", str(tmp_path / "sk"),
             *[a for u in primary.urls for a in ("--primary-url", u)]],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        promotion = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)["collections"]["docs"]
        assert report["primary_points_now"] is None  # the primary is gone
        # The golden queries drawn on the primary by the first sync, run on the promoted standby.
        searches = report["golden"]
        assert searches["queries"] == 20 and searches["passed"], searches

        present = {p["id"] for p in standby_ids(sc)}
        assert reflects, "no sync completed under the writer"
        last = reflects[-1]
        before = [i for at, ids in acked if at < last for i in ids]
        lost = [i for _at, ids in acked for i in ids if i not in present]
        assert before and all(i in present for i in before), (
            "a write acknowledged before the last sync is missing"
        )
        written = sum(len(ids) for _at, ids in acked)
        print(
            f"\nsyncs {len(reflects)}; acknowledged writes {written}, lost {len(lost)}; "
            f"recovery point (kill - last sync's primary time) {killed_at - last:.1f} s; promotion "
            f"{promotion:.1f} s; standby reads {reads['ok']} ok, {len(reads['failed'])} failed; golden "
            f"recall {searches['recall']} (primary {searches['source_recall']}), exact differences "
            f"{len(searches['exact_differences'])} (writes after the draw)"
        )
        assert reads["ok"] > 50 and reads["failed"] == []
        assert "was promoted" in subprocess.run(
            [sys.executable, "-m", "qdrant_ops.cli", "standby", "sync",
             *[a for u in primary.urls for a in ("--primary-url", u)],
             *[a for u in secondary.urls for a in ("--standby-url", u)],
             "--standby-api-key-file", str(tmp_path / "sk")],
            capture_output=True, text=True, timeout=300,
        ).stderr  # fmt: skip


def standby_ids(client: ClusterClient) -> list[dict]:
    found, offset = [], None
    for _ in range(1000):  # bounded
        body = {
            "limit": 5000,
            "with_payload": False,
            "with_vector": False,
            **({"offset": offset} if offset else {}),
        }
        page = client.request("POST", "/collections/docs/points/scroll", json=body)
        found += page["points"]
        offset = page.get("next_page_offset")
        if offset is None:
            return found
    raise AssertionError("scroll did not end")
