"""Restore's pure planning: which snapshot goes where, and the checks on names, keys and ids read
from S3 (the whole restore against stubs and moto: tests/integration/test_restore.py; against a
real Qdrant: tests/e2e/test_restore_real_qdrant.py)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdrant_ops import redact
from qdrant_ops.backup import model, restore, restore_plan, snapshot_files
from qdrant_ops.backup.manifest import Manifest, ManifestError

BACKUP_ID = "20261124T000000Z"


# -- planning (pure) ---------------------------------------------------------------------------------
LAYOUT = model.Layout("qdrant-backups", "prod")


def raw_manifest(**record_changes) -> dict:
    """A format 2 set as a seal stores it, one record changed."""
    shards = {
        str(s): {"peer_id": 7 + s % 3, "key": LAYOUT.shard_key(BACKUP_ID, "a", s, 7 + s % 3), "size": 10,
                 "sha256": "0" * 64}
        for s in range(4)
    }  # fmt: skip
    shards["1"].update(record_changes)
    view = {"shards": shards, "config": {"params": {"replication_factor": 2}}, "points_exact": 0,
            "placement": [], "sample": []}  # fmt: skip
    return {"backup_id": BACKUP_ID, "cluster": "prod", "status": "complete", "format": 2,
            "qdrant_version": "1.18.3", "collections": {"a": view}}  # fmt: skip


def shard_manifest(**record_changes) -> Manifest:
    return Manifest.parse(raw_manifest(**record_changes))


def plan_or_refusal(raw: dict, name: str):
    """The restore plan of a manifest read from S3, or the error that refused it: when it was read
    (a value of the wrong type or shape) or when it was held to the layout (a key not its own)."""
    try:
        return restore_plan.snapshots_of(Manifest.parse(raw), LAYOUT, name)
    except (ManifestError, restore.RestoreError) as exc:
        return exc


def test_snapshots_of_a_shard_set_follow_the_layout():
    snaps = restore_plan.snapshots_of(shard_manifest(), LAYOUT, "a")
    assert [(s.shard_id, s.peer_id) for s in snaps] == [(0, 7), (1, 8), (2, 9), (3, 7)]


def test_a_manifest_reads_back_as_it_was_written():
    raw = raw_manifest()
    manifest = Manifest.parse(raw)
    assert Manifest.parse(manifest.to_dict()) == manifest
    assert manifest.to_dict()["collections"]["a"]["shards"] == raw["collections"]["a"]["shards"]
    assert manifest.bytes == 40 and not manifest.per_node and manifest.collections["a"].params


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": "qdrant-backups/prod/other/a/shards/1.8.snapshot"}, "tampered with"),
        ({"key": "../../../victim"}, "tampered with"),
        ({"peer_id": 9}, "tampered with"),  # the key no longer fits the peer
        ({"sha256": "zz"}, "no valid sha256"),
        ({"size": -1}, "size is -1, not an unsigned 64-bit integer"),
        ({"size": 2**64}, "not an unsigned 64-bit integer"),
        ({"peer_id": "7"}, "peer id is '7', not an unsigned 64-bit integer"),
        ({"node": "../n1"}, "node '../n1' is not valid"),
        ({"attempt": "x"}, "attempt 'x' is not valid"),
    ],
)
def test_records_that_do_not_fit_the_layout_are_refused(changes, message):
    refusal = plan_or_refusal(raw_manifest(**changes), "a")
    assert isinstance(refusal, Exception) and re.search(message, str(refusal)), refusal


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "", "ä"])
def test_collection_names_from_s3_are_checked(name):
    raw = raw_manifest()
    raw["collections"][name] = raw["collections"].pop("a")
    with pytest.raises(ManifestError, match=r"collection name .* is not valid"):
        Manifest.parse(raw)


@pytest.mark.parametrize("problems", ["one sentence", [1, 2], {"a": "b"}, None])
def test_problems_that_are_not_a_list_of_sentences_are_refused(problems):
    """A string would otherwise read as one problem per character."""
    raw = {**raw_manifest(), "problems": problems}
    with pytest.raises(ManifestError, match="problems is not a list of sentences"):
        Manifest.parse(raw)


def test_every_replica_of_a_shard_receives_its_snapshot():
    snaps = restore_plan.snapshots_of(shard_manifest(), LAYOUT, "a")
    placement = [
        {"shard_id": s, "peer_id": p, "state": "Active"} for s in range(4) for p in (1, 1 + s % 2 + 1)
    ]
    assigned = restore_plan.assign_shards(snaps, placement, {1: "http://n1", 2: "http://n2", 3: "http://n3"})
    assert [(s.shard_id, s.node) for s in assigned] == [
        (0, "http://n1"), (0, "http://n2"), (1, "http://n1"), (1, "http://n3"),
        (2, "http://n1"), (2, "http://n2"), (3, "http://n1"), (3, "http://n3"),
    ]  # fmt: skip
    with pytest.raises(restore.RestoreError, match="no node URL given answers"):
        restore_plan.assign_shards(snaps, placement, {1: "http://n1"})


def test_too_few_peers_for_the_replication_factor_is_refused():
    with pytest.raises(restore.RestoreError, match="replication factor 2 but the target has 1 peer"):
        restore_plan.check_restorable(
            shard_manifest(),
            collections=["a"],
            existing=[],
            target_version="1.18.0",
            overwrite=False,
            peer_count=1,
        )


FORMAT1 = [restore_plan.Snapshot(c, f"k/{c}/{p}", 1, "0" * 64, p) for p in (7, 8, 9) for c in ("a", "b")]
NODES = [f"http://n{i}:6333" for i in range(4)]


def test_a_format_1_plan_goes_node_by_node_in_peer_order_or_as_mapped():
    steps = restore_plan.plan_nodes(FORMAT1, NODES)
    assert [(s.peer_id, s.node, s.collection) for s in steps] == [
        (7, "http://n0:6333", "a"), (7, "http://n0:6333", "b"),
        (8, "http://n1:6333", "a"), (8, "http://n1:6333", "b"),
        (9, "http://n2:6333", "a"), (9, "http://n2:6333", "b"),
    ]  # fmt: skip
    mapped = restore_plan.plan_nodes(
        [s for s in FORMAT1 if s.collection == "b"], NODES,
        {7: "http://n3:6333", 8: "http://n0:6333", 9: "http://n1:6333"},
    )  # fmt: skip
    assert [(s.peer_id, s.node) for s in mapped] == [(7, "http://n3:6333"), (8, "http://n0:6333"),
                                                     (9, "http://n1:6333")]  # fmt: skip


@pytest.mark.parametrize(
    ("nodes", "peer_map", "message"),
    [
        (NODES, {7: "http://n0:6333", 8: "http://n0:6333", 9: "http://n1:6333"}, "same node"),
        (NODES, {7: "http://n0:6333"}, "peer 8 has no target"),
        (NODES, {7: "http://x:1", 8: "http://n0:6333", 9: "http://n1:6333"}, "http://x:1 is not a target"),
        (NODES[:2], None, "each part needs its own node"),
    ],
)
def test_format_1_plan_refusals(nodes, peer_map, message):
    with pytest.raises(restore.RestoreError, match=message):
        restore_plan.plan_nodes(FORMAT1, nodes, peer_map)


# -- hostile part records (property-based) -------------------------------------------------------------
HOSTILE_TEXT = st.one_of(
    st.sampled_from(
        ["../../../victim", "/etc/passwd", "a/../../b", "..", ".", "", "\x00", "naïve", "ﬁle", "²"]
    ),
    st.text(max_size=40),
)
HOSTILE_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(), HOSTILE_TEXT,
    st.lists(st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    collection=st.one_of(st.just("a"), HOSTILE_TEXT),
    shard=st.one_of(st.just("1"), HOSTILE_TEXT),
    field=st.sampled_from(["key", "peer_id", "size", "sha256"]),
    value=HOSTILE_VALUE,
)
def test_hostile_records_are_refused_or_follow_the_layout(tmp_path_factory, collection, shard, field, value):
    raw = raw_manifest(**{field: value})
    view = raw["collections"].pop("a")
    view["shards"][shard] = view["shards"].pop("1")
    raw["collections"][collection] = view
    directory = tmp_path_factory.mktemp("staging")
    snaps = plan_or_refusal(raw, collection)
    if isinstance(snaps, Exception):
        return  # refused before anything is written
    for index, snap in enumerate(snaps):
        # What passes is exactly the layout's key for its own set, and its file stays in the directory.
        assert snap.key == LAYOUT.shard_key(BACKUP_ID, snap.collection, snap.shard_id, snap.peer_id)
        assert snap.key.startswith(LAYOUT.set_prefix(BACKUP_ID))
        assert isinstance(snap.size, int) and snap.size >= 0 and len(snap.sha256) == 64
        path = snapshot_files.local_file(directory, index).resolve()
        assert path.parent == directory.resolve()


def test_secrets_and_presigned_signatures_are_hidden_in_every_shape():
    url = (
        "https://qdrant-backups.s3.eu-west-1.amazonaws.com/qdrant-backups/prod/x/cities/3.snapshot"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261130%2Feu-west-1%2Fs3"
        "&X-Amz-Date=20261130T101010Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
        "&X-Amz-Security-Token=FwoGZXIvYXdzE&X-Amz-Signature=0123abcd"
    )
    shapes = {
        "plain": f'Failed to download tar from {url}: status - 403 "x"',
        "json-escaped": json.dumps({"error": url}).replace("/", "\\/").replace("&", "\\u0026"),
        "rust debug": 'Url { scheme: "https", host: Some(Domain("s3")), query: Some("'
        + url.split("?", 1)[1]
        + '"), fragment: None }',
        "percent-encoded": urllib.parse.quote(url, safe=""),
        "lower-case": url.lower(),
        "sigv2": "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIAEXAMPLE&Expires=1&Signature=abc%2Bdef",
    }
    for shape, text in shapes.items():
        hidden = redact.redact(text)
        for secret in ("0123abcd", "FwoGZXIvYXdzE", "AKIAEXAMPLE", "abc%2Bdef"):
            assert secret.lower() not in hidden.lower(), (shape, hidden)
        assert "<hidden>" in hidden and ("3.snapshot" in hidden) == ("3.snapshot" in text), (shape, hidden)
    plain = "GET /collections/c?wait=true on http://10.0.1.10:6333 failed"  # nothing secret: untouched
    assert redact.redact(plain) == plain
    redact.register("old-key-during-rotation")
    assert redact.redact("bad header old-key-during-rotation\nnew") == "bad header <hidden>\nnew"


def test_each_presigned_url_is_made_when_its_recovery_starts(monkeypatch):
    """More nodes than --parallel: a URL made before the wait for a slot could expire during it."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def fake_recover(_client, snap, source, _timeout):
        with lock:
            events.append(("start", source))
        time.sleep(0.05)
        with lock:
            events.append(("end", source))

    def url_for(snap):
        with lock:
            events.append(("made", snap.node))
        return snap.node

    monkeypatch.setattr(restore, "recover", fake_recover)
    todo = [restore_plan.Snapshot("c", f"k{i}", 1, "0" * 64, 1000 + i, 0, f"http://n{i}") for i in range(4)]
    restore._recover_all(
        None, todo, snapshot_files.Sources({}, url_for), parallel=1, timeout=60, log=lambda _: None
    )
    assert [kind for kind, _ in events] == ["made", "start", "end"] * 4, events
    assert all(events[i][1] == events[i + 1][1] for i in range(0, 12, 3))


def test_a_presigned_url_lives_as_long_as_the_recovery_may_wait():
    class Signer:
        def generate_presigned_url(self, _method, Params, ExpiresIn):
            return ExpiresIn

    settings = type("S", (), {"bucket": "b"})()
    snap = restore_plan.Snapshot("c", "k", 1, "0" * 64, 1000, 0, "http://n")
    assert snapshot_files.presigned_url(Signer(), settings, snap) == snapshot_files.PRESIGNED_URL_SECONDS
    assert snapshot_files.presigned_url(Signer(), settings, snap, timeout=7200.5) == 7201
    assert snapshot_files.presigned_url(Signer(), settings, snap, timeout=1e9) == 7 * 24 * 3600


def test_the_staging_folders_are_private_and_never_someone_elses(tmp_path):
    directory = snapshot_files.staging_path(tmp_path / "staging", "20261124T000000Z")
    snapshot_files.private_directory(directory)
    for folder in (directory, directory.parent):
        assert folder.stat().st_mode & 0o777 == 0o700
    # Made by someone else first in a shared /tmp: a symlink to where they can read, or a file.
    trap = tmp_path / "shared"
    (trap / "elsewhere").mkdir(parents=True)
    (trap / snapshot_files.RESTORE_DIR).symlink_to(trap / "elsewhere")
    with pytest.raises(restore.RestoreError, match="is a symlink or belongs to another user"):
        snapshot_files.private_directory(snapshot_files.staging_path(trap, "20261124T000000Z"))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(restore.RestoreError, match=r"cannot use the staging directory .*a-file"):
        snapshot_files.private_directory(snapshot_files.staging_path(tmp_path / "a-file", "20261124T000000Z"))
