"""Shared fixtures: a real S3 endpoint (moto server), the systemd host image, a real Qdrant cluster.

Tests that need a running Qdrant skip with NO_QDRANT_REASON when QDRANT_BINARY is not set; the
summary at the end of the run counts them so a green run never hides how much was not exercised.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path

import pytest

from qdrant_ops.client import ClusterClient
from tests.support import lock
from tests.support.host_image import ImageBuildError, ensure_image
from tests.support.qdrant_cluster import LocalQdrantCluster
from tests.support.qdrant_stub import QdrantStubServer, populate_demo, share_cluster
from tests.support.s3 import MotoServer

NO_QDRANT_REASON = "no Qdrant binary: set QDRANT_BINARY=/path/to/qdrant"
NO_NEXT_REASON = "no next-version Qdrant binary: set QDRANT_BINARY_NEXT=/path/to/qdrant of the next minor"
REPO_ROOT = Path(__file__).resolve().parent.parent


# -- S3 ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_server():
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def s3_client(s3_server):
    return s3_server.client()


@pytest.fixture
def s3_bucket(s3_client) -> str:
    name = f"qdrant-ops-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


# -- containers -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def host_image() -> str:
    if shutil.which("docker") is None:
        pytest.fail("Docker Engine is required for the container tests (see README prerequisites)")
    try:
        return ensure_image()
    except ImageBuildError as exc:
        pytest.fail(f"could not build the systemd host image: {exc}")


# -- Qdrant ---------------------------------------------------------------------------------------
def _binary_from(variable: str, missing: str) -> str:
    binary = os.environ.get(variable)
    if not binary:
        pytest.skip(missing)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"{variable}={binary} is not an executable file")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    if version.returncode != 0:
        pytest.fail(f"{variable}={binary} --version failed: {version.stderr.strip()}")
    return binary


@pytest.fixture(scope="session")
def qdrant_binary() -> str:
    return _binary_from("QDRANT_BINARY", NO_QDRANT_REASON)


@pytest.fixture(scope="session")
def qdrant_binary_next() -> str:
    """The next minor release (1.19.x next to 1.18.x): upgrade drill and 1.19 behaviour."""
    return _binary_from("QDRANT_BINARY_NEXT", NO_NEXT_REASON)


@pytest.fixture
def qdrant_cluster(qdrant_binary, tmp_path, request):
    """Three real Qdrant nodes in distributed mode (size via @pytest.mark.parametrize indirect)."""
    size = getattr(request, "param", 3)
    with LocalQdrantCluster(qdrant_binary, tmp_path / "qdrant", size=size, api_key="test-key") as cluster:
        yield cluster


# -- header: what the run used ---------------------------------------------------------------------
# The packages the tests drive; CI's log shows their versions and anything that is not as locked.
REPORTED = (
    "ansible-core",
    "ansible",
    "ansible-lint",
    "molecule",
    "molecule-plugins",
    "pytest",
    "boto3",
    "botocore",
    "moto",
    "qdrant-client",
    "httpx",
    "jinja2",
    "prometheus-client",
    "python-hcl2",
    "hypothesis",
    "pyarrow",
    "numpy",
    "ruff",
)


def pytest_report_header(config):
    installed = {lock.normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    lines = ["packages: " + ", ".join(f"{name} {installed.get(name, 'absent')}" for name in REPORTED)]
    checkov_venv = REPO_ROOT / ".cache/checkov/lib"
    checkov = [
        d.version
        for d in metadata.distributions(path=[str(p) for p in checkov_venv.glob("*/site-packages")])
        if d.metadata["Name"] == "checkov"
    ]
    lines.append(f"checkov: {checkov[0] if checkov else 'not installed (make checkov)'}")
    pinned = lock.pins((REPO_ROOT / "constraints/test.txt").read_text())
    drift = [
        f"{name} {installed.get(name, 'absent')} (locked {version})"
        for name, version in sorted(pinned.items())
        if installed.get(name) != version
    ]
    lines.append(
        "not as locked in constraints/test.txt: " + ", ".join(drift)
        if drift
        else f"all {len(pinned)} packages as locked in constraints/test.txt"
    )
    return lines


# -- summary --------------------------------------------------------------------------------------
def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    no_qdrant = sum(1 for report in skipped if NO_QDRANT_REASON in str(report.longrepr))
    no_next = sum(1 for report in skipped if NO_NEXT_REASON in str(report.longrepr))
    terminalreporter.write_sep("-", "qdrant-ops test summary")
    terminalreporter.write_line(
        f"skipped for lack of a Qdrant binary: {no_qdrant}"
        + ("" if no_qdrant == 0 else "  (set QDRANT_BINARY to run them)")
    )
    terminalreporter.write_line(
        f"skipped for lack of the next version's binary: {no_next}"
        + ("" if no_next == 0 else "  (set QDRANT_BINARY_NEXT to run them)")
    )
    terminalreporter.write_line(f"skipped in total: {len(skipped)}")


# -- Qdrant REST stub (unit tests only) -----------------------------------------------------------
@pytest.fixture
def qdrant_stub():
    with QdrantStubServer(peers=3, api_key="stub-secret-key") as server:
        yield server


@pytest.fixture
def stub_client(qdrant_stub):
    with ClusterClient([qdrant_stub.url], "stub-secret-key", retries=2, backoff=0.01) as client:
        yield client


@pytest.fixture
def stub_nodes():
    """Three stub nodes of one cluster (peers 1000-1002), each answering as itself, sharing the
    demo collections (qdrant_stub.populate_demo, share_cluster)."""
    with ExitStack() as stack:
        servers = [stack.enter_context(QdrantStubServer(3, "stub-secret-key", me=i)) for i in range(3)]
        share_cluster(servers)
        populate_demo(servers[0].state)
        yield servers


@pytest.fixture
def grown(qdrant_stub, monkeypatch):
    """Six shards, factor 2, placed on three peers; a fourth peer has just joined."""
    monkeypatch.setenv("QDRANT_URL", qdrant_stub.url)
    monkeypatch.setenv("QDRANT_API_KEY", "stub-secret-key")
    state = qdrant_stub.state
    state.create(
        "cities", {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 6, "replication_factor": 2}
    )
    state.replicas("cities")
    state.peer_ids.append(1003)
    return qdrant_stub


@pytest.fixture
def replacement_joined(qdrant_stub, monkeypatch):
    """`cities` (6 shards, factor 2) placed over three peers, and a replacement peer just joined."""
    monkeypatch.setenv("QDRANT_URL", qdrant_stub.url)
    monkeypatch.setenv("QDRANT_API_KEY", "stub-secret-key")
    qdrant_stub.state.create(
        "cities", {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 6, "replication_factor": 2}
    )
    qdrant_stub.state.replicas("cities")  # placed over the three original peers
    qdrant_stub.state.peer_ids.append(1003)  # the replacement joined
    return qdrant_stub
