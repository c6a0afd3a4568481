"""The local Qdrant launcher builds configs and command lines the way docs/qdrant-behaviour.md
§1-§2 describes."""

from pathlib import Path

from cryptography import x509

from tests.support.qdrant_cluster import LocalQdrantCluster, node_command, node_config
from tests.support.tls import TestCA


def make_cluster(tmp_path: Path) -> LocalQdrantCluster:
    return LocalQdrantCluster("/opt/qdrant/qdrant", tmp_path, size=3, api_key="k")


def test_nodes_share_ports_on_distinct_loopback_addresses(tmp_path):
    nodes = make_cluster(tmp_path).nodes
    assert len({node.host for node in nodes}) == 3
    assert all(node.host.startswith("127.") for node in nodes)
    # Peers' REST URLs are built from their p2p host + this node's http_port.
    assert len({node.http_port for node in nodes}) == 1
    assert len({(node.http_port, node.grpc_port, node.p2p_port) for node in nodes}) == 1


def test_config_enables_cluster_with_absolute_paths(tmp_path):
    node = make_cluster(tmp_path).nodes[1]
    config = node_config(node, api_key="k")
    assert config["cluster"] == {"enabled": True, "p2p": {"port": node.p2p_port}}
    assert config["service"]["api_key"] == "k"
    assert config["service"]["host"] == node.host
    assert all(Path(path).is_absolute() for path in config["storage"].values())


def test_first_node_has_uri_only_others_bootstrap(tmp_path):
    first, second, _ = make_cluster(tmp_path).nodes
    assert node_command("q", first, None) == [
        "q",
        "--config-path",
        str(first.config_path),
        "--uri",
        first.p2p_uri,
    ]
    assert node_command("q", second, first.p2p_uri)[-2:] == ["--bootstrap", first.p2p_uri]


def test_tls_cluster_is_configured_like_the_role_and_its_certificates_chain(tmp_path):
    ca = TestCA()
    cluster = LocalQdrantCluster("/opt/qdrant/qdrant", tmp_path, size=3, api_key="k", tls_ca=ca)
    node = cluster.nodes[1]
    config = node_config(node, api_key="k")
    assert config["service"]["enable_tls"] is True
    assert config["cluster"]["p2p"] == {"port": node.p2p_port, "enable_tls": True}
    assert node.url.startswith("https://") and node.p2p_uri.startswith("https://")
    cert = x509.load_pem_x509_certificate(Path(config["tls"]["cert"]).read_bytes())
    cert.verify_directly_issued_by(
        x509.load_pem_x509_certificate(Path(config["tls"]["ca_cert"]).read_bytes())
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert node.host in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert Path(cluster.ca_file).read_text() == ca.cert_pem
