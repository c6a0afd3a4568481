"""Damaged and hostile part records, generated (hypothesis), through every reader of a set: list,
show, seal, prune's plan, and restore's choice and plan. A record is what one node wrote, so none
of them may crash a command or vouch for anything: the set is incomplete or unsealed, with a
problem that names the object, and every other set reads as before.

S3 here is an in-memory stand-in for the three calls the readers make (list, get, head); the same
readers against moto's S3 protocol: tests/integration/test_backup.py."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime

import botocore.exceptions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdrant_ops.backup import catalog, model, restore_plan, retention, seal
from qdrant_ops.backup.s3 import S3Settings
from qdrant_ops.errors import QdrantOpsError

SETTINGS = model.BackupSettings("prod", S3Settings(bucket="b", prefix="p"))
LAYOUT = SETTINGS.layout
GOOD, DAMAGED = "20261124T000000Z", "20261125T000000Z"
NODES = ("n1", "n2", "n3")
MEMBERS = NODES
NOW = datetime(2026, 11, 26, tzinfo=UTC)
SHA = "ab" * 32


class MemoryS3:
    """list_objects_v2 (through the paginator), get_object, head_object and a write-once
    put_object over a dict."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects

    def get_paginator(self, _name):
        return self

    def paginate(self, Bucket, Prefix):
        keys = sorted(k for k in self.objects if k.startswith(Prefix))
        when = datetime(2026, 11, 25, tzinfo=UTC)
        return [{"Contents": [{"Key": k, "Size": len(self.objects[k]), "LastModified": when} for k in keys]}]

    def _missing(self, key):
        return botocore.exceptions.ClientError({"Error": {"Code": "NoSuchKey"}}, key)

    def get_object(self, Bucket, Key):
        if Key not in self.objects:
            raise self._missing(Key)
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket, Key, Body, IfNoneMatch=None, **_):
        if IfNoneMatch == "*" and Key in self.objects:
            raise botocore.exceptions.ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        self.objects[Key] = Body

    def head_object(self, Bucket, Key):
        if Key not in self.objects:
            raise self._missing(Key)
        return {"ContentLength": len(self.objects[Key]), "Metadata": {"sha256": SHA}}


def genuine_set(backup_id: str) -> dict[str, bytes]:
    """Three nodes, each the source of one shard of `c`: a set that seals."""
    peers = [{"id": i + 1, "uri": f"http://n{i + 1}:6335/"} for i in range(3)]
    placement = [{"shard_id": i, "peer_id": i + 1, "state": "Active"} for i in range(3)]
    objects = {}
    for i, node in enumerate(NODES):
        attempt = "20261124T000000Z-0000000" + str(i)
        key = LAYOUT.node_shard_key(backup_id, node, "c", i, attempt)
        objects[key] = b"x" * 10
        part = {"format": 4, "backup_id": backup_id, "cluster": "prod", "node": node, "attempt": attempt,
                "peer_id": i + 1, "peers": peers, "qdrant_version": "1.18.3", "status": "ok",
                "started": "2026-11-24T00:00:00Z", "finished": "2026-11-24T00:01:00Z",
                "collections": {"c": {"points_exact": 3, "placement": placement, "sample": [],
                                      "config": {"params": {"shard_number": 3, "replication_factor": 1}}}},
                "shards": {"c": {str(i): {"key": key, "size": 10, "sha256": SHA}}}}  # fmt: skip
        objects[LAYOUT.node_part_key(backup_id, node)] = json.dumps(part).encode()
    return objects


def test_the_genuine_set_seals_and_its_plan_names_each_node_s_objects():
    s3 = MemoryS3(genuine_set(GOOD))
    assert seal.seal_set(s3, SETTINGS, GOOD, MEMBERS, NOW) == {
        "backup_id": GOOD,
        "sealed": True,
        "problems": [],
    }
    manifest = restore_plan.choose_set(s3, SETTINGS)
    assert manifest.backup_id == GOOD and manifest.status == "complete"
    snaps = restore_plan.snapshots_of(manifest, LAYOUT, "c")
    assert [(s.shard_id, s.peer_id) for s in snaps] == [(0, 1), (1, 2), (2, 3)]


def json_values(depth: int = 3):
    leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                       st.floats(allow_nan=True), st.text(max_size=20))  # fmt: skip
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=8), inner, max_size=3), max_leaves=depth * 3)  # fmt: skip


def paths(value, prefix=()):
    """Every path into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


PART = json.loads(genuine_set(DAMAGED)[LAYOUT.node_part_key(DAMAGED, "n2")])
PART_PATHS = [p for p in paths(PART) if p]
RAW = [b"", b"\xff\xfe not utf-8", b"[" * 100_000 + b"]" * 100_000, b"null", b"[1, 2]", b'"text"', b"{"]


@st.composite
def damaged_records(draw):
    """n2's part record of DAMAGED: a field replaced by any JSON value, a field removed, or bytes
    that are no JSON object at all."""
    kind = draw(st.sampled_from(["replace", "remove", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from(RAW))
    part = copy.deepcopy(PART)
    path = draw(st.sampled_from(PART_PATHS))
    holder = part
    for step in path[:-1]:
        holder = holder[step]
    if kind == "remove" and isinstance(holder, dict):
        del holder[path[-1]]
    else:
        holder[path[-1]] = draw(json_values())
    return json.dumps(part).encode()


def plan_of_the_damaged_set(s3) -> list:
    manifest = restore_plan.choose_set(s3, SETTINGS, DAMAGED, allow_unsealed=True)
    return [restore_plan.snapshots_of(manifest, LAYOUT, name) for name in manifest.collections]


def readers(s3) -> dict:
    """What every command does with the bucket, each call's outcome: a value or our own error."""
    outcomes = {}
    calls = {
        "list": lambda: catalog.list_sets(s3, SETTINGS),
        "show": lambda: catalog.set_manifest(s3, SETTINGS, DAMAGED),
        "seal": lambda: seal.seal_set(s3, SETTINGS, DAMAGED, MEMBERS, NOW),
        "prune plan": lambda: retention.plan_prune(
            catalog.list_sets(s3, SETTINGS), retention.Retention(), NOW
        ),
        "restore choice": lambda: restore_plan.choose_set(s3, SETTINGS, DAMAGED, allow_unsealed=True),
        "restore plan": lambda: plan_of_the_damaged_set(s3),
    }
    for name, call in calls.items():
        try:
            outcomes[name] = call()
        except QdrantOpsError as exc:  # refused with a message: fine
            outcomes[name] = exc
    return outcomes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=damaged_records())
def test_a_damaged_record_never_crashes_a_reader_nor_spoils_another_set(record):
    objects = {**genuine_set(GOOD), **genuine_set(DAMAGED), LAYOUT.node_part_key(DAMAGED, "n2"): record}
    outcomes = readers(MemoryS3(objects))  # any exception but ours fails the test here
    listed = {s["backup_id"]: s for s in outcomes["list"]}
    assert listed[GOOD]["status"] == "unsealed" and listed[GOOD]["problems"] == []  # untouched by the other
    damaged = listed[DAMAGED]
    if damaged["status"] != "unsealed":  # refused: the problem names the object or the field
        assert damaged["problems"], damaged
    if isinstance(outcomes["seal"], dict) and outcomes["seal"]["problems"] == []:
        # Sealable only if the change left a record the checks accept: then it still names this set,
        # node and its own objects.
        part = json.loads(record)
        assert part["backup_id"] == DAMAGED and part["node"] == "n2"


@pytest.mark.parametrize("raw", RAW)
def test_a_record_that_is_no_json_object_names_its_key(raw):
    objects = {**genuine_set(DAMAGED), LAYOUT.node_part_key(DAMAGED, "n2"): raw}
    (listed,) = catalog.list_sets(MemoryS3(objects), SETTINGS)
    assert listed["status"] == "incomplete"
    assert any(LAYOUT.node_part_key(DAMAGED, "n2") in problem for problem in listed["problems"]), listed
