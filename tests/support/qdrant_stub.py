"""A STUB of Qdrant's REST API for unit tests: in-memory collections served on 127.0.0.1.

It is not Qdrant and is never used where a real Qdrant is meant (QDRANT_BINARY tests, the lab).
Request and response shapes follow the official spec (tests/data/qdrant-openapi-1.18.json, a copy
of tests/data/qdrant-openapi-1.18.json); tests/integration/test_qdrant_stub_shapes.py validates every
response it serves against that spec. Defaults mirror Qdrant 1.18 (docs/qdrant-behaviour.md §2).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import itertools
import json
import math
import os
import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = "1.18.3"
_ORDER = itertools.count()  # shared by every stub node: the order of recovers across nodes

DEFAULT_HNSW = {
    "m": 16,
    "ef_construct": 100,
    "full_scan_threshold": 10000,
    "max_indexing_threads": 0,
    "on_disk": False,
}
DEFAULT_OPTIMIZER = {
    "deleted_threshold": 0.2,
    "vacuum_min_vector_number": 1000,
    "default_segment_number": 0,
    "max_segment_size": None,
    "memmap_threshold": None,
    "indexing_threshold": 10000,
    "flush_interval_sec": 5,
    "max_optimization_threads": None,
}
DEFAULT_WAL = {"wal_capacity_mb": 32, "wal_segments_ahead": 0}


def _merge(base: dict, changes: dict | None) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (changes or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class StubState:
    def __init__(self, peers: int = 3, me: int = 0) -> None:
        self.peer_ids = [1000 + i for i in range(peers)]
        self.me = self.peer_ids[me]  # this node's peer id (index into peer_ids)
        self.collections: dict[str, dict] = {}
        self.points: dict[str, dict] = {}
        # Local snapshot files per collection: name -> bytes; and how the next create behaves.
        self.snapshots: dict[str, dict[str, bytes]] = {}
        self.snapshot_size = 64 * 1024
        self.snapshot_create_error: str | None = None  # e.g. a full disk; leaves a partial file
        self.recover_error: str | None = None  # a shard recovery that fails (e.g. a full disk)
        self.corrupt_downloads = False  # serve bytes that do not match the reported checksum
        self.recovered: list[tuple] = []  # (collection, shard id or None, priority) of every recover
        self.placement: dict[str, list[dict]] = {}  # explicit replicas once changed
        self.peer_uris: dict[int, str] = {}  # p2p URIs other than the default loopback ones
        self.replications: list[dict] = []  # every replicate_shard / move_shard served (with its kind)
        # Every partial recover_from served (shard, body); the stub has no segments: always "unchanged".
        self.partial_recoveries: list[tuple[int, dict]] = []
        self.recover_order: list[int] = []  # when each recover happened, across all stub nodes
        self.version = VERSION
        self.recover_loses_points = 0  # drop this many points on recover (a restore gone wrong)
        self.refuse_exact_search = False  # strict mode with search_allow_exact: false
        self.s3_unreachable = False  # recovers from http(s) locations cannot connect
        # (method, path, query, request body, status, response body) of every request served
        self.requests: list[tuple] = []
        self.fail_next: list[int] = []  # HTTP statuses to return for the next requests
        self.lock = threading.Lock()

    # -- responses in the spec's shapes ------------------------------------------------------------
    def cluster(self) -> dict:
        # Loopback addresses nothing listens on: a probe of a peer's REST port is refused at once.
        peers = {
            str(pid): {"uri": self.peer_uris.get(pid, f"http://127.77.1.{i + 1}:6335/")}
            for i, pid in enumerate(self.peer_ids)
        }
        return {
            "status": "enabled",
            "peer_id": self.me,
            "peers": peers,
            "raft_info": {
                "term": 2,
                "commit": 17,
                "pending_operations": 0,
                "leader": self.peer_ids[0],
                "role": "Leader",
                "is_voter": True,
            },
            "consensus_thread_status": {
                "consensus_thread_status": "working",
                "last_update": "2026-11-24T20:00:00.000000Z",
            },
            "message_send_failures": {},
        }

    def create(self, name: str, body: dict) -> None:
        vectors = body.get("vectors", {})
        params = {
            "vectors": vectors,
            "shard_number": body.get("shard_number") or len(self.peer_ids),
            "replication_factor": body.get("replication_factor") or 1,
            "write_consistency_factor": body.get("write_consistency_factor") or 1,
            "on_disk_payload": body.get("on_disk_payload", True),
        }
        if body.get("sparse_vectors"):
            params["sparse_vectors"] = body["sparse_vectors"]
        self.collections[name] = {
            "params": params,
            "hnsw_config": _merge(DEFAULT_HNSW, body.get("hnsw_config")),
            "optimizer_config": _merge(DEFAULT_OPTIMIZER, body.get("optimizers_config")),
            "wal_config": dict(DEFAULT_WAL),
            "quantization_config": body.get("quantization_config"),
            "strict_mode_config": body.get("strict_mode_config"),
            "payload_schema": {},
        }
        self.points[name] = {}

    def patch(self, name: str, body: dict) -> None:
        config = self.collections[name]
        params = config["params"]
        for key, value in (body.get("params") or {}).items():
            params[key] = value
        for vname, diff in (body.get("vectors") or {}).items():
            target = params["vectors"] if vname == "" else params["vectors"][vname]
            target.update(diff)
        for sname, diff in (body.get("sparse_vectors") or {}).items():
            params["sparse_vectors"][sname] = _merge(params["sparse_vectors"][sname], diff)
        if body.get("hnsw_config"):
            config["hnsw_config"] = _merge(config["hnsw_config"], body["hnsw_config"])
        if body.get("optimizers_config"):
            config["optimizer_config"] = _merge(config["optimizer_config"], body["optimizers_config"])
        if body.get("quantization_config") is not None:
            config["quantization_config"] = body["quantization_config"]
        if body.get("strict_mode_config"):
            config["strict_mode_config"] = _merge(
                config["strict_mode_config"] or {}, body["strict_mode_config"]
            )

    def info(self, name: str) -> dict:
        config = self.collections[name]
        return {
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": 0,
            "points_count": len(self.points[name]),
            "segments_count": 2,
            "config": {k: copy.deepcopy(v) for k, v in config.items() if k != "payload_schema"},
            "payload_schema": copy.deepcopy(config["payload_schema"]),
        }

    def replicas(self, name: str) -> list[dict]:
        """The collection's replicas {shard_id, peer_id, state}: spread in order until changed."""
        if name not in self.placement:
            shards = self.collections[name]["params"]["shard_number"]
            rf = self.collections[name]["params"]["replication_factor"]
            self.placement[name] = [
                {
                    "shard_id": shard,
                    "peer_id": self.peer_ids[(shard + r) % len(self.peer_ids)],
                    "state": "Active",
                }
                for shard in range(shards)
                for r in range(rf)
            ]
        return self.placement[name]

    def collection_cluster(self, name: str) -> dict:
        me = self.me
        replicas = self.replicas(name)
        local = [
            {"shard_id": r["shard_id"], "points_count": 0, "state": r["state"]}
            for r in replicas
            if r["peer_id"] == me
        ]
        remote = [dict(r) for r in replicas if r["peer_id"] != me]
        return {
            "peer_id": me,
            "shard_count": self.collections[name]["params"]["shard_number"],
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": [],
        }


def _ok(result: Any) -> dict:
    return {"result": result, "status": "ok", "time": 0.001}


def _error(message: str) -> dict:
    return {"status": {"error": message}, "time": 0.001}


ROUTES: list[tuple[str, re.Pattern]] = [
    (method, re.compile("^" + pattern + "$"))
    for method, pattern in [
        ("GET", r"/"),
        ("GET", r"/cluster"),
        ("GET", r"/collections"),
        ("GET", r"/collections/(?P<c>[^/]+)"),
        ("PUT", r"/collections/(?P<c>[^/]+)"),
        ("PATCH", r"/collections/(?P<c>[^/]+)"),
        ("DELETE", r"/collections/(?P<c>[^/]+)"),
        ("GET", r"/collections/(?P<c>[^/]+)/cluster"),
        ("PUT", r"/collections/(?P<c>[^/]+)/index"),
        ("DELETE", r"/collections/(?P<c>[^/]+)/index/(?P<f>[^/]+)"),
        ("POST", r"/collections/(?P<c>[^/]+)/points/count"),
        ("PUT", r"/collections/(?P<c>[^/]+)/points"),
        ("POST", r"/collections/(?P<c>[^/]+)/points"),
        ("GET", r"/collections/(?P<c>[^/]+)/points/(?P<id>[^/]+)"),
        ("POST", r"/collections/(?P<c>[^/]+)/points/scroll"),
        ("POST", r"/collections/(?P<c>[^/]+)/points/query/batch"),
        ("GET", r"/collections/(?P<c>[^/]+)/shards/(?P<shard>\d+)/snapshots"),
        ("POST", r"/collections/(?P<c>[^/]+)/shards/(?P<shard>\d+)/snapshots"),
        ("POST", r"/collections/(?P<c>[^/]+)/shards/(?P<shard>\d+)/snapshots/upload"),
        ("PUT", r"/collections/(?P<c>[^/]+)/shards/(?P<shard>\d+)/snapshots/recover"),
        ("GET", r"/collections/(?P<c>[^/]+)/shards/(?P<shard>\d+)/snapshots/(?P<s>[^/]+)"),
        ("DELETE", r"/collections/(?P<c>[^/]+)/shards/(?P<shard>\d+)/snapshots/(?P<s>[^/]+)"),
        ("POST", r"/collections/(?P<c>[^/]+)/snapshots/upload"),
        ("GET", r"/collections/(?P<c>[^/]+)/snapshots"),
        ("POST", r"/collections/(?P<c>[^/]+)/snapshots"),
        ("GET", r"/collections/(?P<c>[^/]+)/snapshots/(?P<s>[^/]+)"),
        ("DELETE", r"/collections/(?P<c>[^/]+)/snapshots/(?P<s>[^/]+)"),
        ("POST", r"/collections/(?P<c>[^/]+)/cluster"),
        ("DELETE", r"/cluster/peer/(?P<peer>\d+)"),
        ("POST", r"/collections/(?P<c>[^/]+)/shards/(?P<shard>\d+)/snapshot/partial/recover_from"),
    ]
]


def handle(state: StubState, method: str, path: str, body: Any, query: dict | None = None) -> tuple[int, Any]:
    """Route one request; returns (HTTP status, JSON body)."""
    for route_method, pattern in ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            args = {k: unquote(v) for k, v in match.groupdict().items()}
            break
    else:
        return 404, _error(f"stub: no route for {method} {path}")
    name = args.get("c")
    if path.endswith("/snapshots/upload") and "shard" not in args:
        return _recover_upload(state, name, body)
    if name is not None and name not in state.collections and not (method == "PUT" and path.count("/") == 2):
        return 404, _error(f"Not found: Collection `{name}` doesn't exist!")

    if path == "/":
        return 200, {"title": "qdrant - vector search engine", "version": state.version, "commit": "stub"}
    if path == "/cluster":
        return 200, _ok(state.cluster())
    if path.startswith("/cluster/peer/"):
        return _remove_peer(state, int(args["peer"]), force=(query or {}).get("force") == "true")
    if method == "POST" and path.endswith("/cluster"):
        return _cluster_operation(state, name, body)
    if path == "/collections":
        return 200, _ok({"collections": [{"name": n} for n in sorted(state.collections)]})
    if path.endswith("/cluster"):
        return 200, _ok(state.collection_cluster(name))
    if path.endswith("/snapshots/upload"):
        return _recover_shard_upload(state, name, int(args["shard"]), body)
    if path.endswith("/snapshots/recover"):
        if "snapshot" not in body:
            return 500, _error(f"Service internal error: Failed to download tar from {body['location']}: "
                               f"{body.get('fetch_error')}")  # fmt: skip
        return _recover_shard_upload(state, name, int(args["shard"]), body)
    if path.endswith("/snapshot/partial/recover_from"):
        state.partial_recoveries.append((int(args["shard"]), body))
        return 200, _ok(False)
    if "/shards/" in path:
        return _snapshots(state, method, name, args.get("s"), int(args["shard"]))
    if "/snapshots" in path:
        return _snapshots(state, method, name, args.get("s"))
    if path.endswith("/points/query/batch"):
        exact = any((search.get("params") or {}).get("exact") for search in body["searches"])
        if exact and state.refuse_exact_search:
            return 403, _error(
                "Forbidden: Exact search disabled! Help: set `search_allow_exact` in strict mode"
            )
        return 200, _ok([_search(state, name, search) for search in body["searches"]])
    if path.endswith("/points/scroll"):
        records = [state.points[name][key] for key in sorted(state.points[name], key=str)]
        return 200, _ok({"points": copy.deepcopy(records[: body.get("limit", 10)]), "next_page_offset": None})
    if path.endswith("/points/count"):
        return 200, _ok({"count": len(state.points[name])})
    if "/points/" in path:
        raw = args["id"]
        point = state.points[name].get(int(raw) if raw.isdigit() else raw)
        if point is None:
            return 404, _error(f"Not found: No point with id {raw} found")
        return 200, _ok(point)
    if path.endswith("/points") and method == "POST":  # retrieve by ids; payload by default, vectors if asked
        found = [state.points[name][i] for i in body["ids"] if i in state.points[name]]
        with_payload, with_vector = body.get("with_payload", True), body.get("with_vector", False)
        return 200, _ok([{"id": p["id"], "payload": p["payload"] if with_payload else None,
                          "vector": p["vector"] if with_vector else None} for p in found])  # fmt: skip
    if path.endswith("/points"):
        for point in body["points"]:
            state.points[name][point["id"]] = {
                "id": point["id"],
                "payload": point.get("payload") or {},
                "vector": point.get("vector"),
            }
        return 200, _ok({"operation_id": 1, "status": "completed"})
    if "/index" in path:
        schema = state.collections[name]["payload_schema"]
        if method == "DELETE":
            schema.pop(args["f"], None)
        else:
            field_schema = body["field_schema"]
            data_type = field_schema if isinstance(field_schema, str) else field_schema["type"]
            entry = {"data_type": data_type, "points": 0}
            if isinstance(field_schema, dict):
                entry["params"] = field_schema
            schema[body["field_name"]] = entry
        return 200, _ok({"operation_id": 2, "status": "completed"})
    if method == "GET":
        return 200, _ok(state.info(name))
    if method == "PUT":
        if name in state.collections:
            return 409, _error(f"Wrong input: Collection `{name}` already exists!")
        state.create(name, body or {})
        return 200, _ok(True)
    if method == "PATCH":
        state.patch(name, body or {})
        return 200, _ok(True)
    del state.collections[name]
    state.points.pop(name, None)
    return 200, _ok(True)


def _search(state: StubState, name: str, search: dict) -> dict:
    """A brute-force search of the unnamed vector (Dot, or Cosine on normalised vectors): the stub
    has no index, so its normal search is its exact search."""
    cosine = state.collections[name]["params"]["vectors"].get("distance") == "Cosine"

    def norm(vector: list) -> list:
        length = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / length for x in vector] if cosine else vector

    query = norm(search["query"])
    scored = [
        {
            "id": p["id"],
            "version": 0,
            "score": sum(a * b for a, b in zip(query, norm(p["vector"]), strict=True)),
        }
        for p in state.points[name].values()
        if isinstance(p["vector"], list)
    ]
    scored.sort(key=lambda hit: (-hit["score"], str(hit["id"])))
    return {"points": scored[: search.get("limit", 10)]}


def _describe(name: str, data: bytes) -> dict:
    return {
        "name": name,
        "creation_time": "2026-11-24T20:00:00",
        "size": len(data),
        "checksum": hashlib.sha256(data).hexdigest(),
    }


def shard_of(state: StubState, name: str, point_id: Any) -> int:
    """The stub's routing of a point to a shard (Qdrant hashes the id; any fixed rule will do)."""
    number = state.collections[name]["params"]["shard_number"]
    return (point_id if isinstance(point_id, int) else sum(str(point_id).encode())) % number


def _snapshots(
    state: StubState, method: str, name: str, snapshot: str | None, shard: int | None = None
) -> tuple[int, Any]:
    files = state.snapshots.setdefault(name if shard is None else f"{name}/{shard}", {})
    if method == "POST":
        if shard is not None and not any(
            r["shard_id"] == shard and r["peer_id"] == state.me for r in state.replicas(name)
        ):
            return 404, _error(f"Not found: Shard {shard} is not found on peer {state.me}")
        label = name if shard is None else f"{name}-shard-{shard}"
        new_name = f"{label}-{state.me}-2026-11-24-20-00-{len(files):02d}.snapshot"
        if state.snapshot_create_error:
            files[new_name] = b"partial"
            return 500, _error(f"Service internal error: {state.snapshot_create_error}")
        # The stub's snapshot: the collection (or one shard's points) as JSON, padded to snapshot_size.
        points = [
            p for p in state.points[name].values() if shard is None or shard_of(state, name, p["id"]) == shard
        ]
        content = json.dumps({"config": state.collections[name], "shard": shard, "points": points})
        files[new_name] = (
            content.encode() + b"\n" + os.urandom(max(0, state.snapshot_size - len(content) - 1))
        )
        return 200, _ok(_describe(new_name, files[new_name]))
    if snapshot is None:
        return 200, _ok([_describe(n, data) for n, data in sorted(files.items())])
    if snapshot not in files:
        return 404, _error(f"Not found: Snapshot {snapshot} not found")
    if method == "DELETE":
        del files[snapshot]
        return 200, _ok(True)
    data = files[snapshot]
    if state.corrupt_downloads:  # flip the last byte (a fixed replacement would match 1 time in 256)
        data = data[:-1] + bytes([data[-1] ^ 0xFF])
    return 200, data


def _remove_peer(state: StubState, peer: int, *, force: bool) -> tuple[int, Any]:
    """DELETE /cluster/peer/{id}: the peer goes, and with force its replicas; without force Qdrant
    refuses while it holds any (src/actix/api/cluster_api.rs, docs/qdrant-behaviour.md §1)."""
    if peer not in state.peer_ids:
        return 404, _error(f"Not found: Peer {peer} doesn't exist")
    if not force and any(r["peer_id"] == peer for name in state.collections for r in state.replicas(name)):
        return 400, _error(f"Bad request: Cannot remove peer {peer} as there are shards on it")
    for name in state.collections:
        state.placement[name] = [r for r in state.replicas(name) if r["peer_id"] != peer]
    state.peer_ids.remove(peer)
    return 200, _ok(True)


def _cluster_operation(state: StubState, name: str, body: dict) -> tuple[int, Any]:
    """POST /collections/{c}/cluster replicate_shard / move_shard: done at once in the stub."""
    operation = body.get("replicate_shard") or body.get("move_shard")
    if operation is None:
        return 400, _error(f"stub: unsupported cluster operation {sorted(body)}")
    replicas = state.replicas(name)
    shard, source, target = operation["shard_id"], operation["from_peer_id"], operation["to_peer_id"]
    if not any(
        r["shard_id"] == shard and r["peer_id"] == source and r["state"] == "Active" for r in replicas
    ):
        return 400, _error(f"Bad request: Shard {shard} on peer {source} is not Active")
    if target not in state.peer_ids or any(
        r["shard_id"] == shard and r["peer_id"] == target for r in replicas
    ):
        return 400, _error(f"Bad request: Shard {shard} already exists on peer {target} or no such peer")
    replicas.append({"shard_id": shard, "peer_id": target, "state": "Active"})
    if "move_shard" in body:
        replicas.remove(next(r for r in replicas if r["shard_id"] == shard and r["peer_id"] == source))
    state.replications.append({**operation, "kind": next(iter(body))})
    return 200, _ok(True)


def _recover_upload(state: StubState, name: str, body: dict) -> tuple[int, Any]:
    """POST /collections/{c}/snapshots/upload: a whole collection snapshot, as recover does it."""
    data = body["snapshot"]
    if state.recover_error:
        return 500, _error(f"Service internal error: {state.recover_error}")
    if body.get("checksum") and hashlib.sha256(data).hexdigest() != body["checksum"]:
        return 400, _error("Bad request: Snapshot checksum mismatch")
    snapshot = json.loads(data.split(b"\n", 1)[0])
    state.collections[name] = snapshot["config"]
    records = snapshot["points"][: len(snapshot["points"]) - state.recover_loses_points]
    state.points[name] = {record["id"]: record for record in records}
    state.recovered.append((name, None, body.get("priority")))
    state.recover_order.append(next(_ORDER))
    return 200, _ok(True)


def _recover_shard_upload(state: StubState, name: str, shard: int, body: dict) -> tuple[int, Any]:
    """POST /collections/{c}/shards/{s}/snapshots/upload: the shard's points are replaced on this
    node's replica; with priority snapshot Qdrant marks the other replicas Dead and copies the
    shard to them (the stub: at once, so they are Active again)."""
    data = body["snapshot"]
    if state.recover_error:
        return 500, _error(f"Service internal error: {state.recover_error}")
    if body.get("checksum") and hashlib.sha256(data).hexdigest() != body["checksum"]:
        return 400, _error("Bad request: Snapshot checksum mismatch")
    if not any(r["shard_id"] == shard and r["peer_id"] == state.me for r in state.replicas(name)):
        return 400, _error(f"Bad request: Shard {shard} is not local on peer {state.me}")
    snapshot = json.loads(data.split(b"\n", 1)[0])
    records = snapshot["points"][: len(snapshot["points"]) - state.recover_loses_points]
    points = state.points[name]
    for key in [k for k in points if shard_of(state, name, k) == shard]:
        del points[key]
    points.update({record["id"]: record for record in records})
    state.recovered.append((name, shard, body.get("priority")))
    state.recover_order.append(next(_ORDER))
    return 200, _ok(True)


def _fetch_location(body: dict) -> dict:
    """A recover from an http(s) location: the node downloads it itself, as Qdrant does
    (lib/storage/src/content_manager/snapshots/download.rs); the bytes join the body."""
    try:
        with urllib.request.urlopen(body["location"], timeout=30) as response:
            return {**body, "snapshot": response.read()}
    except (OSError, ValueError) as exc:
        return {**body, "fetch_error": str(exc)}


def _multipart_file(raw: bytes, content_type: str) -> bytes:
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    for part in raw.split(b"--" + boundary):
        headers, _, content = part.partition(b"\r\n\r\n")
        if b'name="snapshot"' in headers:
            return content[: -len(b"\r\n")]
    raise ValueError("stub: no snapshot field in the upload")


def share_cluster(servers: list[QdrantStubServer]) -> None:
    """Make stub nodes one cluster: collections, points and placement are the same objects on every
    node (a create or a recover on one node is seen by all); snapshot files stay per node."""
    first = servers[0].state
    for server in servers[1:]:
        server.state.collections = first.collections
        server.state.points = first.points
        server.state.placement = first.placement
        server.state.lock = first.lock


class _Handler(BaseHTTPRequestHandler):
    state: StubState
    api_key: str | None

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            # A snapshot upload: the file field, with the query's priority and checksum.
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            body = {**query, "snapshot": _multipart_file(raw, content_type)}
        else:
            body = json.loads(raw) if raw else None
        if split.path.endswith("/snapshots/recover") and isinstance(body, dict):
            if self.state.s3_unreachable:
                body = {**body, "fetch_error": "error sending request: Connection refused (os error 111)"}
            else:  # before the lock: a node serves others while it downloads
                body = _fetch_location(body)
        with self.state.lock:
            if self.state.fail_next:
                status, payload = self.state.fail_next.pop(0), _error("stub: injected failure")
            elif self.api_key and self.headers.get("api-key") != self.api_key and split.path != "/":
                status, payload = 401, _error("Must provide an API key or an Authorization bearer token")
            else:
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                status, payload = handle(self.state, self.command, split.path, body, query)
            self.state.requests.append(
                (self.command, split.path, parse_qs(split.query), body, status, payload)
            )
        binary = isinstance(payload, bytes)
        data = payload if binary else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if binary else "application/json")
        # Like Qdrant's actix `Compress` middleware (src/actix/mod.rs): every response, snapshot
        # downloads included, is compressed when the client accepts it.
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            data = gzip.compress(data, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _serve

    def log_message(self, *args) -> None:  # keep test output clean
        pass


def populate_demo(state: StubState, points: int = 10) -> None:
    """The collections every stub node of the backup tests holds: `cities` (4-d vectors, 6 shards)
    and `places` (payload only, like the original {id, city, location} records)."""
    state.create("cities", {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 6})
    state.create("places", {})
    for i in range(points):
        state.points["cities"][i] = {"id": i, "payload": {"city": f"c{i}"}, "vector": [i, 0.5, 0.25, 1]}
        state.points["places"][i] = {"id": i, "payload": {"location": {"lat": i, "lon": 1}}, "vector": {}}


class QdrantStubServer:
    def __init__(self, peers: int = 3, api_key: str | None = None, me: int = 0) -> None:
        self.state = StubState(peers, me)
        handler = type("Handler", (_Handler,), {"state": self.state, "api_key": api_key})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> QdrantStubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
