"""One REST client for a Qdrant cluster (bulk writes go over gRPC, encoded by ingest/wire.py).

Any node answers cluster-wide requests, so the client takes a list of node URLs and fails over
between them. Transient failures (connection refused during a rolling restart, 502/503/504,
timeouts on reads) are retried with capped exponential backoff; 4xx never is. Errors name the
node, the request and Qdrant's own message. The API key is sent as the `api-key` header and is
never part of a repr, log line or error message.
"""

from __future__ import annotations

import contextlib
import random
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from qdrant_ops.errors import ConfigError, QdrantOpsError

TRANSIENT_STATUS = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class QdrantApiError(QdrantOpsError):
    """Qdrant answered with an error status."""

    def __init__(self, node: str, method: str, path: str, status: int, message: str) -> None:
        self.node, self.method, self.path, self.status, self.message = node, method, path, status, message
        super().__init__(f"{method} {path} on {node} failed with HTTP {status}: {message}")


class QdrantUnavailableError(QdrantOpsError):
    """No node answered within the retry budget."""


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    status = body.get("status") if isinstance(body, dict) else None
    if isinstance(status, dict) and status.get("error"):
        return str(status["error"])
    return str(body)[:500]


def segment(value: str | int) -> str:
    """Quote a value for use as one URL path segment (collection names, snapshot names)."""
    return quote(str(value), safe="")


def normalise_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    items = [urls] if isinstance(urls, str) else list(urls)
    result = []
    for url in items:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"node URL {url!r} is not an http(s) URL: use e.g. http://10.0.1.10:6333")
        result.append(url.strip().rstrip("/"))
    if not result:
        raise ConfigError("no Qdrant node URL given: pass at least one, e.g. http://10.0.1.10:6333")
    return tuple(result)


class StreamReader:
    """`read(size)` over an iterator of byte chunks, holding at most one chunk beyond the request."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def _tls_context(ca_file: str) -> ssl.SSLContext:
    """httpx wants an SSL context for a CA file (a path is deprecated). Every certificate of the
    file is trusted, so a bundle of two clusters' CAs works (docs/tls.md)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use the CA file {ca_file}: {getattr(exc, 'strerror', None) or exc}; give the cluster's "
            "CA certificate (the qdrant role keeps it in <inventory>/.secrets/<cluster>/tls/ca.crt)"
        ) from None


class ClusterClient:
    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str | None = None,
        *,
        verify: bool = True,
        ca_file: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.urls = normalise_urls(urls)
        self._api_key = api_key or None
        self.verify: bool | str = ca_file if (verify and ca_file) else verify
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._preferred = 0  # index of the node that answered last
        headers = {"api-key": self._api_key} if self._api_key else {}
        tls = _tls_context(self.verify) if isinstance(self.verify, str) else self.verify
        self._http = httpx.Client(headers=headers, timeout=timeout, verify=tls, transport=transport)

    def __repr__(self) -> str:
        return f"ClusterClient(urls={list(self.urls)!r}, api_key={'***' if self._api_key else None})"

    @property
    def api_key(self) -> str | None:
        """For the gRPC senders, which authenticate themselves; never printed (see __repr__)."""
        return self._api_key

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------------
    def _delay(self, attempt: int) -> float:
        # Full jitter: spreads retries of many clients after a node restart.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        node: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return Qdrant's `result`. With `node`, only that node is asked
        (per-node operations such as snapshots); otherwise nodes are tried in turn."""
        method = method.upper()
        nodes = [node.rstrip("/")] if node else [*self.urls[self._preferred :], *self.urls[: self._preferred]]
        last_problem = ""
        for attempt in range(self.retries + 1):
            for url in nodes:
                try:
                    response = self._http.request(
                        method,
                        url + path,
                        params=params,
                        json=json,
                        timeout=timeout if timeout is not None else self.timeout,
                    )
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                    last_problem = f"{url}: {type(exc).__name__}: {exc}"
                    continue
                except (httpx.ReadTimeout, httpx.ReadError) as exc:
                    # The request may have been applied: only repeat what is safe to repeat.
                    if method not in IDEMPOTENT_METHODS:
                        raise QdrantUnavailableError(
                            f"{method} {path} on {url}: {type(exc).__name__} after sending; not retried "
                            "because the operation may have been applied - check its effect, then retry"
                        ) from exc
                    last_problem = f"{url}: {type(exc).__name__}: {exc}"
                    continue
                if response.status_code in TRANSIENT_STATUS:
                    last_problem = f"{url}: HTTP {response.status_code}: {_error_message(response)}"
                    continue
                if response.status_code >= 400:
                    raise QdrantApiError(url, method, path, response.status_code, _error_message(response))
                if url in self.urls:
                    self._preferred = self.urls.index(url)
                if not response.content:
                    return None
                body = response.json()
                return body.get("result") if isinstance(body, dict) and "result" in body else body
            if attempt < self.retries:
                self._sleep(self._delay(attempt))
        raise QdrantUnavailableError(
            f"{method} {path}: no node answered after {self.retries + 1} rounds over "
            f"{', '.join(nodes)}; last error: {last_problem}"
        )

    def get(self, path: str, **kwargs) -> Any:
        return self.request("GET", path, **kwargs)

    @contextlib.contextmanager
    def download(self, path: str, node: str, chunk_size: int = 1024 * 1024) -> Iterator[StreamReader]:
        """Stream a GET from one node (snapshot downloads) as a file-like object, never whole in memory."""
        url = node.rstrip("/")
        try:
            # Qdrant's REST server compresses responses the client accepts (actix Compress
            # middleware, docs/qdrant-behaviour.md): ask for the snapshot's own bytes, which are
            # what its checksum covers, and are already too dense to gain from compression.
            with self._http.stream(
                "GET",
                url + path,
                headers={"Accept-Encoding": "identity"},
                timeout=httpx.Timeout(self.timeout, read=300),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise QdrantApiError(url, "GET", path, response.status_code, _error_message(response))
                yield StreamReader(response.iter_bytes(chunk_size))
        except httpx.TransportError as exc:
            raise QdrantUnavailableError(f"GET {path} on {url}: {type(exc).__name__}: {exc}") from exc

    def upload(self, path: str, node: str, source: Path, *, params: dict, timeout: float) -> Any:
        """POST a file as the multipart field `snapshot` to one node (snapshot uploads), streamed
        from disk. Not retried: a recover may have started; the caller decides."""
        url = node.rstrip("/")
        try:
            with source.open("rb") as handle:
                response = self._http.post(
                    url + path,
                    params=params,
                    files={"snapshot": (source.name, handle, "application/octet-stream")},
                    timeout=httpx.Timeout(self.timeout, read=timeout, write=timeout),
                )
        except httpx.TransportError as exc:
            raise QdrantUnavailableError(f"POST {path} on {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise QdrantApiError(url, "POST", path, response.status_code, _error_message(response))
        body = response.json()
        return body.get("result") if isinstance(body, dict) else body

    # -- cluster ---------------------------------------------------------------------------------
    def cluster_status(self, node: str | None = None) -> dict:
        return self.get("/cluster", node=node)

    def probe_peer_id(self, url: str, timeout: float = 3.0) -> int | None:
        """The peer id the node at `url` answers as, or None when it does not answer: one
        attempt, no retries (used to tell a dead peer from a live one)."""
        try:
            response = self._http.get(url.rstrip("/") + "/cluster", timeout=timeout)
            return int(response.json()["result"]["peer_id"]) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def telemetry(self, node: str, details_level: int = 3) -> dict:
        """One node's telemetry; from level 3 it lists the node's local shards, each with estimated
        vector and payload sizes (lib/collection/src/shards/local_shard/telemetry.rs)."""
        return self.get("/telemetry", params={"details_level": details_level}, node=node)

    def peer_count(self) -> int | None:
        """Number of peers, or None when cluster mode is off (a single node)."""
        status = self.cluster_status()
        return len(status["peers"]) if status.get("status") == "enabled" else None

    def version(self, node: str | None = None) -> str:
        return self.get("/", node=node)["version"]

    # -- collections -----------------------------------------------------------------------------
    def collection_names(self) -> list[str]:
        return sorted(item["name"] for item in self.get("/collections")["collections"])

    def collection_info(self, name: str) -> dict | None:
        """GET /collections/{name}, or None when it does not exist."""
        try:
            return self.get(f"/collections/{segment(name)}")
        except QdrantApiError as exc:
            if exc.status == 404:
                return None
            raise

    def collection_cluster(self, name: str, node: str | None = None) -> dict:
        return self.get(f"/collections/{segment(name)}/cluster", node=node)

    def count_points(self, name: str) -> int:
        return self.request("POST", f"/collections/{segment(name)}/points/count", json={"exact": True})[
            "count"
        ]

    def create_collection(self, name: str, body: dict, *, timeout: int = 60) -> None:
        """PUT /collections/{name}; `timeout`: seconds Qdrant waits for consensus to apply it."""
        self.request("PUT", f"/collections/{segment(name)}", params={"timeout": timeout}, json=body)

    def update_collection(self, name: str, body: dict, *, timeout: int = 60) -> None:
        self.request("PATCH", f"/collections/{segment(name)}", params={"timeout": timeout}, json=body)

    def delete_collection(self, name: str, *, timeout: int = 60) -> None:
        """DELETE /collections/{name}: through consensus, answered once applied (or `timeout`)."""
        self.request("DELETE", f"/collections/{segment(name)}", params={"timeout": timeout})

    def create_payload_index(self, name: str, body: dict) -> None:
        self.request("PUT", f"/collections/{segment(name)}/index", params={"wait": "true"}, json=body)

    def delete_payload_index(self, name: str, field: str) -> None:
        path = f"/collections/{segment(name)}/index/{segment(field)}"
        self.request("DELETE", path, params={"wait": "true"})

    def update_collection_cluster(self, name: str, operation: dict) -> None:
        """POST /collections/{name}/cluster: one shard operation (move, replicate, drop a replica)."""
        self.request("POST", f"/collections/{segment(name)}/cluster", json=operation)

    def remove_peer(self, peer_id: int, *, force: bool = False, timeout: float = 60) -> None:
        """DELETE /cluster/peer/{id}; without `force` Qdrant refuses while the peer holds shards."""
        params: dict = {"timeout": timeout} | ({"force": "true"} if force else {})
        self.request("DELETE", f"/cluster/peer/{peer_id}", params=params)

    # -- points ----------------------------------------------------------------------------------
    def get_point(self, name: str, point_id: int | str) -> dict:
        return self.get(f"/collections/{segment(name)}/points/{segment(str(point_id))}")

    def retrieve_points(
        self, name: str, ids: Sequence[int | str], *, with_payload: bool = True, with_vector: bool = False
    ) -> list[dict]:
        """The points of `ids` that exist (absent ids are left out, not an error)."""
        body = {"ids": list(ids), "with_payload": with_payload, "with_vector": with_vector}
        return self.request("POST", f"/collections/{segment(name)}/points", json=body)

    def scroll_points(
        self, name: str, *, limit: int, with_payload: bool = True, with_vector: bool = True
    ) -> dict:
        """The first `limit` points in id order: {"points": [...], "next_page_offset": ...}."""
        body = {"limit": limit, "with_payload": with_payload, "with_vector": with_vector}
        return self.request("POST", f"/collections/{segment(name)}/points/scroll", json=body)

    def query_batch(self, name: str, searches: list[dict]) -> list[dict]:
        """POST /points/query/batch: one {"points": [...]} per search, in order."""
        path = f"/collections/{segment(name)}/points/query/batch"
        return self.request("POST", path, json={"searches": searches})

    def upsert_points(self, name: str, points: list[dict]) -> None:
        """PUT /points with wait=true: answered once the points are applied."""
        path = f"/collections/{segment(name)}/points"
        self.request("PUT", path, params={"wait": "true"}, json={"points": points})

    # -- snapshots (each on one node: a snapshot is that node's copy) ----------------------------
    def list_snapshots(self, node: str, collection: str, shard_id: int | None = None) -> list[dict]:
        return self.get(_snapshots_path(collection, shard_id), node=node)

    def create_snapshot(self, node: str, collection: str, shard_id: int | None, *, timeout: float) -> dict:
        """A new snapshot on `node`: {"name", "size", "checksum" (null when stored in S3), ...}."""
        path = _snapshots_path(collection, shard_id)
        return self.request("POST", path, params={"wait": "true"}, node=node, timeout=timeout)

    def delete_snapshot(self, node: str, collection: str, shard_id: int | None, name: str) -> None:
        path = f"{_snapshots_path(collection, shard_id)}/{segment(name)}"
        self.request("DELETE", path, params={"wait": "true"}, node=node)

    def download_snapshot(
        self, node: str, collection: str, shard_id: int | None, name: str
    ) -> contextlib.AbstractContextManager[StreamReader]:
        return self.download(f"{_snapshots_path(collection, shard_id)}/{segment(name)}", node=node)

    def upload_snapshot(
        self,
        node: str,
        collection: str,
        shard_id: int | None,
        source: Path,
        *,
        priority: str,
        checksum: str,
        timeout: float,
    ) -> None:
        """Recover from a file sent to `node` (Qdrant checks `checksum` before it recovers)."""
        params = {"wait": "true", "priority": priority, "checksum": checksum}
        path = _snapshots_path(collection, shard_id) + "/upload"
        self.upload(path, node, source, params=params, timeout=timeout)

    def recover_snapshot(
        self,
        node: str,
        collection: str,
        shard_id: int | None,
        location: str,
        *,
        priority: str,
        checksum: str,
        timeout: float,
    ) -> None:
        """Recover from a URL `node` downloads itself (Qdrant checks `checksum` first)."""
        body = {"location": location, "priority": priority, "checksum": checksum}
        path = _snapshots_path(collection, shard_id) + "/recover"
        self.request("PUT", path, params={"wait": "true"}, json=body, node=node, timeout=timeout)

    def recover_partial_from(
        self, node: str, collection: str, shard_id: int, *, peer_url: str, api_key: str | None, timeout: float
    ) -> Any:
        """The replica on `node` fetches from the replica at `peer_url` only the segments that
        differ (docs/qdrant-behaviour.md §8): false when nothing changed (the source said 304)."""
        path = f"/collections/{segment(collection)}/shards/{shard_id}/snapshot/partial/recover_from"
        body = {"peer_url": peer_url, "api_key": api_key}
        return self.request("POST", path, params={"wait": "true"}, json=body, node=node, timeout=timeout)


def _snapshots_path(collection: str, shard_id: int | None) -> str:
    base = f"/collections/{segment(collection)}"
    return f"{base}/snapshots" if shard_id is None else f"{base}/shards/{shard_id}/snapshots"
