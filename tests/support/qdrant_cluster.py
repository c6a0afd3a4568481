"""Start a real distributed-mode Qdrant cluster as local processes (tests and benchmarks).

Each node gets its own loopback address (127.77.0.1, 127.77.0.2, ...) and the SAME port numbers.
Distinct ports on one address would break snapshot shard transfers: a node builds a peer's REST
URL from the host of that peer's p2p URI plus its *own* http_port (docs/qdrant-behaviour.md §1,
channel_service.rs). Linux routes the whole 127.0.0.0/8 to `lo`, so no set-up is needed.

The first node starts with --uri and must elect itself leader before the others start with
--bootstrap; then every node must list every peer and agree on a leader.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.tls import Issued, TestCA

ADDRESS_PREFIX = "127.77.0."


class ClusterStartError(RuntimeError):
    pass


@dataclass
class QdrantNode:
    index: int
    host: str
    http_port: int
    grpc_port: int
    p2p_port: int
    workdir: Path
    process: subprocess.Popen | None = field(default=None, repr=False)
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.grpc_port}"

    @property
    def p2p_uri(self) -> str:
        return f"{self.scheme}://{self.host}:{self.p2p_port}"

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    @property
    def log_path(self) -> Path:
        return self.workdir / "qdrant.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"


def node_config(
    node: QdrantNode, api_key: str | None = None, storage: dict | None = None, jwt_rbac: bool = False
) -> dict:
    """The node's config file content. Paths are absolute: a relative path would resolve
    against the working directory, and a missing file silently means defaults (cluster off).
    `storage` adds storage settings (e.g. update_queue_size); `jwt_rbac` takes JWTs signed with
    the API key, as the qdrant role configures it by default."""
    service: dict = {"host": node.host, "http_port": node.http_port, "grpc_port": node.grpc_port}
    if jwt_rbac:
        service["jwt_rbac"] = True
    if api_key:
        service["api_key"] = api_key
    p2p: dict = {"port": node.p2p_port}
    tls: dict = {}
    if node.tls:  # as the qdrant role configures it: REST, gRPC and mutual p2p TLS
        service["enable_tls"] = p2p["enable_tls"] = True
        files = {"cert": "cert.pem", "key": "key.pem", "ca_cert": "cacert.pem"}
        tls = {"tls": {name: str(node.tls_dir / file) for name, file in files.items()}}
    return {
        "log_level": "INFO",
        "telemetry_disabled": True,
        "service": service,
        "cluster": {"enabled": True, "p2p": p2p},
        **tls,
        "storage": {
            "storage_path": str(node.workdir / "storage"),
            "snapshots_path": str(node.workdir / "snapshots"),
            "temp_path": str(node.workdir / "tmp"),
            **(storage or {}),
        },
    }


def node_command(binary: str, node: QdrantNode, bootstrap_uri: str | None) -> list[str]:
    command = [binary, "--config-path", str(node.config_path), "--uri", node.p2p_uri]
    if bootstrap_uri:
        command += ["--bootstrap", bootstrap_uri]
    return command


def _ports_free(hosts: list[str], ports: tuple[int, ...]) -> bool:
    for host in hosts:
        for port in ports:
            with socket.socket() as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    return False
    return True


def pick_ports(hosts: list[str], start: int = 16333, attempts: int = 200) -> tuple[int, int, int]:
    """Three consecutive ports free on every host address."""
    for offset in range(attempts):
        base = start + offset * 10
        ports = (base, base + 1, base + 2)
        if _ports_free(hosts, ports):
            return ports
    raise ClusterStartError(f"no free port triple on {hosts} from {start}")


class LocalQdrantCluster:
    def __init__(
        self,
        binary: str,
        base_dir: Path,
        size: int = 3,
        api_key: str | None = None,
        startup_timeout: float = 90.0,
        storage: dict | None = None,
        tls_ca: TestCA | None = None,
        jwt_rbac: bool = False,
    ) -> None:
        """With `tls_ca`, every node gets a certificate from that CA and runs TLS on REST, gRPC and
        p2p (mutual); `ca_file` is then the CA for clients."""
        if size < 1:
            raise ValueError("cluster size must be >= 1")
        self.binary = binary
        self.api_key = api_key
        self.storage = storage
        self.jwt_rbac = jwt_rbac
        self.startup_timeout = startup_timeout
        hosts = [f"{ADDRESS_PREFIX}{i + 1}" for i in range(size)]
        http_port, grpc_port, p2p_port = pick_ports(hosts)
        self.nodes = [
            QdrantNode(i, host, http_port, grpc_port, p2p_port, base_dir / f"node{i}", tls=tls_ca is not None)
            for i, host in enumerate(hosts)
        ]
        self.tls_ca = tls_ca
        self.ca_file: str | None = None
        if tls_ca is not None:
            ca_path = base_dir / "ca.pem"
            ca_path.parent.mkdir(parents=True, exist_ok=True)
            ca_path.write_text(tls_ca.cert_pem)
            self.ca_file = str(ca_path)
            for node in self.nodes:
                self.install_certificate(node, tls_ca.issue([node.host]), tls_ca.cert_pem)

    def install_certificate(self, node: QdrantNode, issued: Issued, ca_pem: str) -> None:
        """Writes cert.pem, key.pem and cacert.pem where the node's config points (read at start)."""
        node.tls_dir.mkdir(parents=True, exist_ok=True)
        (node.tls_dir / "cert.pem").write_text(issued.cert_pem)
        (node.tls_dir / "key.pem").write_text(issued.key_pem)
        (node.tls_dir / "cacert.pem").write_text(ca_pem)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    # -- HTTP ---------------------------------------------------------------------------------
    def request(self, node: QdrantNode, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(node.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("api-key", self.api_key)
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        with urllib.request.urlopen(req, timeout=10, context=context) as response:
            return json.loads(response.read() or b"null")

    def cluster_status(self, node: QdrantNode) -> dict:
        return self.request(node, "GET", "/cluster")["result"]

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> LocalQdrantCluster:
        first = self.nodes[0]
        self.start_node(first, bootstrap_uri=None)
        self.wait_until(lambda: self._leader_seen(first, expected_peers=1), "first node elects itself leader")
        for node in self.nodes[1:]:
            self.start_node(node, bootstrap_uri=first.p2p_uri)
        self.wait_for_cluster()
        return self

    def start_node(self, node: QdrantNode, bootstrap_uri: str | None) -> None:
        for sub in ("storage", "snapshots", "tmp"):
            (node.workdir / sub).mkdir(parents=True, exist_ok=True)
        node.config_path.write_text(
            json.dumps(node_config(node, self.api_key, self.storage, self.jwt_rbac), indent=2)
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RUN_MODE": "production",
            "QDRANT_INIT_FILE_PATH": str(node.workdir / ".qdrant-initialized"),
        }
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                node_command(self.binary, node, bootstrap_uri),
                cwd=node.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_node(self, node: QdrantNode, timeout: float = 30.0) -> None:
        process, node.process = node.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart_node(self, node: QdrantNode) -> None:
        """Restart with existing raft state: --bootstrap is ignored then, so none is passed."""
        self.stop_node(node)
        self.start_node(node, bootstrap_uri=None)
        self.wait_for_cluster()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.stop_node(node)

    def __enter__(self) -> LocalQdrantCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- waiting ------------------------------------------------------------------------------
    def _leader_seen(self, node: QdrantNode, expected_peers: int) -> bool:
        if node.process is not None and node.process.poll() is not None:
            raise ClusterStartError(
                f"qdrant node {node.index} exited with {node.process.returncode}:\n{self.log_tail(node)}"
            )
        try:
            status = self.cluster_status(node)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        if status.get("status") != "enabled":
            raise ClusterStartError(
                f"node {node.index} runs with cluster mode disabled: is {node.config_path} read?"
            )
        return len(status["peers"]) >= expected_peers and status["raft_info"].get("leader") is not None

    def wait_for_cluster(self) -> None:
        expected = len(self.nodes)
        self.wait_until(
            lambda: all(self._leader_seen(node, expected) for node in self.nodes),
            f"all {expected} peers joined with a leader",
        )

    def wait_until(self, condition, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.25)
        tails = "\n".join(f"--- node {n.index} ---\n{self.log_tail(n)}" for n in self.nodes)
        raise ClusterStartError(f"timed out after {self.startup_timeout}s waiting for: {what}\n{tails}")

    @staticmethod
    def log_tail(node: QdrantNode, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(node.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"
