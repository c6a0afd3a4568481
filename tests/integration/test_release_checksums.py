"""Release archives downloaded with no checksum typed: a local HTTPS release server (127.0.0.1, a
test CA the controller trusts through SSL_CERT_FILE) laid out like GitHub's release downloads. The
archive is held to the sum the release publishes (sha256sums.txt), a pinned sum wins, a mismatch
names the file and both sums and leaves nothing in the cache; a release that publishes none
(Qdrant's) is held to the sum its first download recorded, and a later different download is
refused. What a role downloads, it downloads on the controller (release_archive's download.yml)."""

from __future__ import annotations

import hashlib
import http.server
import io
import ssl
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

from tests.support.collection import COLLECTION
from tests.support.playbook import run_playbook
from tests.support.tls import TestCA

VERSION = "9.9.9"
NAME = f"prometheus-{VERSION}.linux-amd64.tar.gz"
QDRANT = "qdrant-x86_64-unknown-linux-gnu.tar.gz"
PYTHON = "ansible_python_interpreter={{ ansible_playbook_python }}"


def release_archive(top: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{top}/prometheus")
        info.size, info.mode = len(content), 0o755
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class Release:
    """What the server serves (path -> bytes) and every path it was asked for."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("release")
    ca = TestCA()
    cert, key = ca.issue(["localhost", "127.0.0.1"]).write(base, "server")
    (base / "ca.crt").write_text(ca.cert_pem)
    release = Release()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            release.requests.append(self.path)
            body = release.files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", release, base / "ca.crt"
    httpd.shutdown()


def publish(release: Release, sums: str | None, archive: bytes) -> str:
    """The archive under GitHub's layout, and its sha256sums.txt (None: no sums published)."""
    directory = f"/prometheus/prometheus/releases/download/v{VERSION}"
    release.files = {f"{directory}/{NAME}": archive}
    if sums is not None:
        release.files[f"{directory}/sha256sums.txt"] = sums.encode()
    release.requests.clear()
    return directory


def download(
    server, tmp_path: Path, role_vars: dict, tasks_from: str = "download", role: str = "release_archive"
):
    ca = server[2]
    include_role = {"name": f"{COLLECTION}.{role}", "tasks_from": tasks_from}
    include = {"ansible.builtin.include_role": include_role, "vars": role_vars}
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [include]}
    playbook = tmp_path / "download.yml"
    playbook.write_text(yaml.safe_dump([play]))
    result, _ = run_playbook(
        playbook, "-i", "localhost,", "-c", "local", "-e", PYTHON,
        env={"ANSIBLE_STDOUT_CALLBACK": "default",
             "SSL_CERT_FILE": str(ca), "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    return result, " ".join((result.stdout + result.stderr).split())


def prometheus_vars(server, tmp_path: Path, directory: str, **extra) -> dict:
    url = server[0]
    return {
        "release_archive_name": "prometheus",
        "release_archive_version": VERSION,
        "release_archive_url": f"{url}{directory}/{NAME}",
        "release_archive_checksum_url": f"{url}{directory}/sha256sums.txt",
        "release_archive_cache_dir": str(tmp_path / "cache"),
        **extra,
    }


def test_the_published_sum_is_fetched_and_checked_with_nothing_typed(server, tmp_path):
    archive = release_archive("prometheus-9.9.9.linux-amd64", b"real")
    sha = hashlib.sha256(archive).hexdigest()
    other = hashlib.sha256(b"other").hexdigest()
    directory = publish(
        server[1], f"{other}  alertmanager-9.9.9.linux-amd64.tar.gz\n{sha}  {NAME}\n", archive
    )
    result, output = download(server, tmp_path, prometheus_vars(server, tmp_path, directory))
    assert result.returncode == 0, output[-3000:]
    assert (tmp_path / f"cache/prometheus/{NAME}").read_bytes() == archive
    assert f"{directory}/sha256sums.txt" in server[1].requests
    # A second run holds the cached file to the same published sum and downloads nothing again.
    result, output = download(server, tmp_path, prometheus_vars(server, tmp_path, directory))
    assert result.returncode == 0, output[-3000:]
    assert server[1].requests.count(f"{directory}/{NAME}") == 1


def test_a_published_sum_that_does_not_match_names_the_file_and_both_sums(server, tmp_path):
    archive = release_archive("prometheus-9.9.9.linux-amd64", b"tampered")
    actual, published = hashlib.sha256(archive).hexdigest(), "ab" * 32
    directory = publish(server[1], f"{published}  {NAME}\n", archive)
    result, output = download(server, tmp_path, prometheus_vars(server, tmp_path, directory))
    assert result.returncode != 0
    assert published in output and actual in output and NAME in output
    assert "Nothing was installed" in output
    assert not (tmp_path / f"cache/prometheus/{NAME}").exists()


def test_a_pinned_sum_wins_over_the_published_one(server, tmp_path):
    archive = release_archive("prometheus-9.9.9.linux-amd64", b"real")
    sha = hashlib.sha256(archive).hexdigest()
    directory = publish(server[1], f"{'cd' * 32}  {NAME}\n", archive)  # the published sum is wrong
    result, output = download(
        server, tmp_path, prometheus_vars(server, tmp_path, directory, release_archive_sha256=sha)
    )
    assert result.returncode == 0, output[-3000:]
    assert f"{directory}/sha256sums.txt" not in server[1].requests
    wrong = "ef" * 32
    publish(server[1], f"{sha}  {NAME}\n", archive)  # right published, wrong pin: the pin wins, refused
    (tmp_path / "again").mkdir()
    pinned = prometheus_vars(server, tmp_path / "again", directory, release_archive_sha256=wrong)
    result, output = download(server, tmp_path / "again", pinned)
    assert result.returncode != 0 and wrong in output and sha in output and "pinned" in output


def test_sums_without_the_archive_or_missing_are_refused_clearly(server, tmp_path):
    archive = release_archive("prometheus-9.9.9.linux-amd64", b"real")
    directory = publish(server[1], f"{'12' * 32}  something-else.tar.gz\n", archive)
    result, output = download(server, tmp_path, prometheus_vars(server, tmp_path, directory))
    assert result.returncode != 0 and "Unable to find a checksum" in output and NAME in output
    directory = publish(server[1], None, archive)
    result, output = download(server, tmp_path, prometheus_vars(server, tmp_path, directory))
    assert result.returncode != 0 and "sha256sums.txt" in output and "404" in output
    assert not (tmp_path / f"cache/prometheus/{NAME}").exists()


def test_no_sum_and_no_record_is_refused_before_any_download(server, tmp_path):
    archive = release_archive("prometheus-9.9.9.linux-amd64", b"real")
    directory = publish(server[1], None, archive)
    variables = prometheus_vars(server, tmp_path, directory, release_archive_checksum_url="")
    result, output = download(server, tmp_path, variables)
    assert result.returncode != 0 and "needs a sha256 to check it against" in output
    assert server[1].requests == []


def test_qdrant_is_held_to_the_sum_its_first_download_recorded(server, tmp_path):
    url, release, _ = server
    path = f"/qdrant/qdrant/releases/download/v{VERSION}/{QDRANT}"
    first = release_archive("qdrant", b"first")
    release.files, release.requests[:] = {path: first}, []
    variables = {
        "qdrant_version": VERSION,
        "qdrant_archive_url": url + path,
        "qdrant_archive_src": "",
        "qdrant_controller_cache_dir": str(tmp_path / "cache"),
        "qdrant_secrets_dir": str(tmp_path / "secrets"),
    }
    result, output = download(server, tmp_path, variables, tasks_from="source_archive", role="qdrant")
    assert result.returncode == 0, output[-3000:]
    record = tmp_path / f"secrets/release-sha256/qdrant-{VERSION}-{QDRANT}"
    assert record.read_text().strip() == hashlib.sha256(first).hexdigest()
    assert "publishes no checksum" in output and hashlib.sha256(first).hexdigest() in output
    # The release changes under the same name (or the download is tampered with): refused.
    (tmp_path / f"cache/qdrant/{QDRANT}").unlink()
    second = release_archive("qdrant", b"second")
    release.files = {path: second}
    result, output = download(server, tmp_path, variables, tasks_from="source_archive", role="qdrant")
    assert result.returncode != 0
    assert hashlib.sha256(first).hexdigest() in output and hashlib.sha256(second).hexdigest() in output
    assert str(record) in output
    assert not (tmp_path / f"cache/qdrant/{QDRANT}").exists()
