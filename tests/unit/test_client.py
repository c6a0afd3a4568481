"""Retries, failover and error reporting of the cluster client, against the REST stub."""

import socket

import httpx
import pytest

from qdrant_ops.client import ClusterClient, QdrantApiError, QdrantUnavailableError, _tls_context
from qdrant_ops.errors import ConfigError
from tests.support.tls import TestCA


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed when the block ends


def test_sends_the_api_key_header(qdrant_stub, stub_client):
    assert stub_client.collection_names() == []
    with (
        ClusterClient([qdrant_stub.url], "wrong-key", retries=0) as client,
        pytest.raises(QdrantApiError) as caught,
    ):
        client.collection_names()
    assert caught.value.status == 401


def test_retries_transient_statuses_then_succeeds(qdrant_stub, stub_client):
    qdrant_stub.state.fail_next = [503, 502]
    assert stub_client.cluster_status()["status"] == "enabled"
    assert qdrant_stub.state.fail_next == []


def test_never_retries_a_client_error(qdrant_stub, stub_client):
    qdrant_stub.state.fail_next = [400, 400]
    with pytest.raises(QdrantApiError) as caught:
        stub_client.collection_names()
    assert caught.value.status == 400
    assert qdrant_stub.state.fail_next == [400]  # exactly one request was made


def test_fails_over_from_a_refused_node(qdrant_stub):
    with ClusterClient([closed_port_url(), qdrant_stub.url], "stub-secret-key", retries=0) as client:
        assert client.peer_count() == 3


def test_gives_up_after_the_retry_budget_naming_the_nodes():
    dead = closed_port_url()
    slept = []
    client = ClusterClient([dead], "secret-value", retries=2, backoff=0.01, sleep=slept.append)
    with pytest.raises(QdrantUnavailableError) as caught:
        client.cluster_status()
    assert len(slept) == 2
    assert dead in str(caught.value) and "3 rounds" in str(caught.value)
    assert "secret-value" not in str(caught.value)


def test_error_names_node_request_and_qdrant_message(qdrant_stub, stub_client):
    with pytest.raises(QdrantApiError) as caught:
        stub_client.get("/collections/absent/cluster")
    message = str(caught.value)
    assert qdrant_stub.url in message
    assert "GET /collections/absent/cluster" in message
    assert "Collection `absent` doesn't exist" in message


def test_missing_collection_is_none(stub_client):
    assert stub_client.collection_info("absent") is None


def test_api_key_never_in_repr():
    client = ClusterClient(["http://127.0.0.1:1"], "super-secret")
    assert "super-secret" not in repr(client)


@pytest.mark.parametrize("url", ["10.0.0.1:6333", "ftp://node", ""])
def test_rejects_urls_that_are_not_http(url):
    with pytest.raises(ConfigError, match="http"):
        ClusterClient([url])


def test_download_yields_the_snapshot_bytes_although_the_server_compresses(qdrant_stub, stub_client):
    # Qdrant compresses every response the client accepts; the download must still hand back the
    # snapshot's own bytes, which are what its checksum covers.
    stub_client.request("PUT", "/collections/c", json={"vectors": {"size": 4, "distance": "Cosine"}})
    name = stub_client.request("POST", "/collections/c/snapshots")["name"]
    expected = qdrant_stub.state.snapshots["c"][name]
    with stub_client.download(f"/collections/c/snapshots/{name}", qdrant_stub.url) as reader:
        assert reader.read() == expected
    # ...and the stub does compress for a client that accepts it, as Qdrant does.
    url = f"{qdrant_stub.url}/collections/c/snapshots/{name}"
    response = httpx.get(url, headers={"api-key": "stub-secret-key", "Accept-Encoding": "gzip"})
    assert response.headers.get("content-encoding") == "gzip"


def test_a_missing_or_bad_ca_file_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot use the CA file .*missing\.pem: No such file"):
        ClusterClient(["https://127.0.0.1:6333"], ca_file=str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"give the cluster's CA certificate"):
        ClusterClient(["https://127.0.0.1:6333"], ca_file=str(bad))


def test_a_ca_bundle_trusts_every_certificate_in_it(tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(TestCA("one").cert_pem + TestCA("two").cert_pem)
    context = _tls_context(str(bundle))  # what ClusterClient hands httpx for ca_file
    assert {c["subject"][0][0][1] for c in context.get_ca_certs()} == {"one", "two"}
