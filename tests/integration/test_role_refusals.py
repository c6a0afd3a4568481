"""playbooks/qdrant.yml refuses bad input with a message that says what to fix, before it
changes anything on the host (a real systemd container, reached with the docker connection)."""

import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.containers import SystemdContainer
from tests.support.tls import TestCA

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def host(host_image):
    with SystemdContainer(host_image) as container:
        container.wait_for_boot()
        yield container


def make_archive(directory: Path, version: str) -> Path:
    """A release-shaped archive whose `qdrant` answers --version like Qdrant `version` and
    otherwise only says it is not Qdrant (never started here)."""
    script = directory / f"qdrant-{version}"
    script.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "qdrant {version}"; exit 0; }}\n'
        "echo 'install-test archive, not Qdrant' >&2\nexit 64\n"
    )
    script.chmod(0o755)
    path = directory / f"qdrant-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(script, arcname="qdrant")
    return path


@pytest.fixture
def archive(tmp_path) -> Path:
    return make_archive(tmp_path, "1.18.3")


def run_playbook(
    host: SystemdContainer, tmp_path: Path, playbook: str = "playbooks/qdrant.yml", **extra
) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    qdrant:\n      hosts:\n"
        f"        node1: {{ansible_connection: community.docker.docker, ansible_host: {host.name}}}\n"
    )
    variables = {
        "qdrant_allow_small_cluster": True,
        "common_sysctl_apply": False,
        "common_time_sync_enabled": False,
        "qdrant_start": False,
        "qdrant_binary_src": "",
        "qdrant_secrets_dir": str(tmp_path / "secrets"),
        # Never a download from the internet: a test without a local archive is refused instead.
        "qdrant_archive_url": "https://127.0.0.1:9/qdrant-x86_64-unknown-linux-gnu.tar.gz",
        "qdrant_archive_trust_first_download": False,
        **extra,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(inventory),
            "-e",
            f"@{tmp_path / 'vars.json'}",
            playbook,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def nothing_installed(host: SystemdContainer) -> bool:
    return (
        host.exec("test", "-e", "/opt/qdrant").returncode != 0 and host.exec("id", "qdrant").returncode != 0
    )


def test_checksum_mismatch_names_file_and_both_sums(host, tmp_path, archive):
    wrong = "0" * 64
    result = run_playbook(host, tmp_path, qdrant_archive_src=str(archive), qdrant_archive_sha256=wrong)
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"Checksum mismatch for {archive}" in output
    assert f"expected sha256 {wrong}, got {actual}" in output
    assert nothing_installed(host)


def test_unpinned_version_is_refused(host, tmp_path, archive):
    result = run_playbook(host, tmp_path, qdrant_version="latest", qdrant_archive_src=str(archive))
    assert result.returncode != 0
    assert "pin an exact release such as 1.18.3" in " ".join(result.stdout.split())
    assert nothing_installed(host)


def test_missing_data_device_is_refused(host, tmp_path, archive):
    result = run_playbook(
        host, tmp_path, qdrant_archive_src=str(archive), common_data_volume_id="vol-0123456789abcdef0"
    )
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert (
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0 is not a block device" in output
    )
    assert "EBS volume vol-0123456789abcdef0 is not attached" in output
    assert nothing_installed(host)


def test_no_source_says_how_to_pin_one(host, tmp_path):
    result = run_playbook(host, tmp_path)
    assert result.returncode != 0
    assert "Pin qdrant_archive_sha256" in " ".join(result.stdout.split())
    assert nothing_installed(host)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"qdrant_api_key": " "}, "Qdrant would then accept every request without a key"),
        ({"qdrant_read_only_api_key": ""}, "Qdrant would then accept every request without a key"),
        ({"qdrant_update_queue_size": "0"}, "give a positive number of operations"),
    ],
    ids=["empty-api-key", "empty-read-only-key", "zero-update-queue"],
)
def test_settings_qdrant_would_misread_are_refused(host, tmp_path, archive, extra, message):
    result = run_playbook(host, tmp_path, qdrant_archive_src=str(archive), **extra)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())
    assert nothing_installed(host)


def test_tls_off_with_client_networks_is_warned_about(host, tmp_path, archive):
    # One node and no qdrant_allow_small_cluster: the play stops right after the preflight warnings.
    plain = {
        "qdrant_archive_src": str(archive),
        "qdrant_allow_small_cluster": False,
        "qdrant_client_cidrs": ["10.0.0.0/8"],
    }
    warned = " ".join(run_playbook(host, tmp_path, **plain, qdrant_tls_enabled=False).stdout.split())
    assert "WARNING: qdrant_tls_enabled is false while clients reach the cluster from 10.0.0.0/8" in warned
    assert "API keys cross the network in clear text" in warned
    quiet = " ".join(run_playbook(host, tmp_path, **plain).stdout.split())  # TLS on by default
    assert "Require at least 3 nodes" in quiet and "WARNING: qdrant_tls_enabled is false" not in quiet
    assert nothing_installed(host)


def test_rolling_upgrade_needs_an_exact_target_version(host, tmp_path, archive):
    result = run_playbook(host, tmp_path, "playbooks/rolling_upgrade.yml", qdrant_archive_src=str(archive))
    assert result.returncode != 0
    assert "-e qdrant_target_version=X.Y.Z" in result.stdout
    assert nothing_installed(host)


# Runs last in this module: the refusal tests above rely on the shared host being untouched.
def test_good_archive_installs_versioned_with_current_link(host, tmp_path, archive):
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    result = run_playbook(host, tmp_path, qdrant_archive_src=str(archive), qdrant_archive_sha256=sha)
    assert result.returncode == 0, result.stdout[-3000:]
    assert host.exec("readlink", "/opt/qdrant/current").stdout.strip() == "versions/1.18.3"
    # An archive of another version than qdrant_version is refused, and current stays.
    result = run_playbook(
        host, tmp_path, qdrant_archive_src=str(archive), qdrant_archive_sha256=sha, qdrant_version="1.18.4"
    )
    assert result.returncode != 0
    assert 'reports "qdrant 1.18.3", not 1.18.4' in " ".join(result.stdout.split())
    assert host.exec("readlink", "/opt/qdrant/current").stdout.strip() == "versions/1.18.3"
    host.exec("rm", "-rf", "/opt/qdrant/versions/1.18.4")
    # A version change is a symlink flip: the old version stays for rollback.
    newer = make_archive(tmp_path, "1.18.4")
    sha = hashlib.sha256(newer.read_bytes()).hexdigest()
    result = run_playbook(
        host, tmp_path, qdrant_archive_src=str(newer), qdrant_archive_sha256=sha, qdrant_version="1.18.4"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert host.exec("readlink", "/opt/qdrant/current").stdout.strip() == "versions/1.18.4"
    assert host.exec("test", "-x", "/opt/qdrant/versions/1.18.3/qdrant").returncode == 0


def test_tls_certificates_match_the_node_and_chain_to_the_cluster_ca(host, tmp_path, archive):
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    result = run_playbook(
        host, tmp_path, qdrant_archive_src=str(archive), qdrant_archive_sha256=sha, qdrant_tls_enabled=True
    )
    assert result.returncode == 0, result.stdout[-3000:]
    ca = x509.load_pem_x509_certificate(host.exec("cat", "/etc/qdrant/tls/cacert.pem").stdout.encode())
    cert = x509.load_pem_x509_certificate(host.exec("cat", "/etc/qdrant/tls/cert.pem").stdout.encode())
    cert.verify_directly_issued_by(ca)
    address = host.exec("hostname", "-I").stdout.split()[0]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(address) in names.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
    modes = host.exec("stat", "-c", "%n %U:%G %a", "/etc/qdrant/tls/key.pem").stdout.split()
    assert modes[1:] == ["root:qdrant", "640"]
    config = yaml.safe_load(host.exec("cat", "/etc/qdrant/config.yaml").stdout)
    assert config["service"]["enable_tls"] is True and config["cluster"]["p2p"]["enable_tls"] is True
    assert config["tls"] == {
        "cert": "/etc/qdrant/tls/cert.pem",
        "key": "/etc/qdrant/tls/key.pem",
        "ca_cert": "/etc/qdrant/tls/cacert.pem",
    }
    unit = host.exec("cat", "/etc/systemd/system/qdrant.service").stdout
    assert f"--uri https://{address}:6335" in unit
    # The CA key stays on the controller.
    assert (tmp_path / "secrets/tls/ca.key").exists()
    assert host.exec("sh", "-c", "grep -rl 'PRIVATE KEY' /etc/qdrant/tls").stdout.split() == [
        "/etc/qdrant/tls/key.pem"
    ]


def node_files(host: SystemdContainer) -> tuple[x509.Certificate, x509.Certificate, str]:
    read = lambda path: host.exec("cat", path).stdout  # noqa: E731
    return (x509.load_pem_x509_certificate(read("/etc/qdrant/tls/cacert.pem").encode()),
            x509.load_pem_x509_certificate(read("/etc/qdrant/tls/cert.pem").encode()),
            read("/etc/qdrant/tls/key.pem"))  # fmt: skip


def test_certificates_are_renewed_inside_their_renewal_window_only(host, tmp_path, archive):
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    tls = {"qdrant_archive_src": str(archive), "qdrant_archive_sha256": sha, "qdrant_tls_enabled": True}
    assert run_playbook(host, tmp_path, **tls).returncode == 0
    ca, cert, key = node_files(host)
    assert run_playbook(host, tmp_path, **tls).returncode == 0
    assert node_files(host)[1].serial_number == cert.serial_number, "renewed outside the window"

    # The 825-day certificate inside an 825-day window (as a certificate near its end is):
    # re-issued, same key, still chained to the same CA.
    near_end = {"qdrant_tls_cert_days": 826, "qdrant_tls_renew_days": 825}
    assert run_playbook(host, tmp_path, **tls, **near_end).returncode == 0
    _ca, renewed, renewed_key = node_files(host)
    assert renewed.serial_number != cert.serial_number and renewed_key == key
    renewed.verify_directly_issued_by(ca)

    # The CA inside its window: re-issued with its own key and name, so the node certificate it
    # signed before verifies under the new CA certificate and is not re-issued.
    ca_near_end = {"qdrant_tls_ca_days": 3651, "qdrant_tls_ca_renew_days": 3650}
    assert run_playbook(host, tmp_path, **tls, **ca_near_end).returncode == 0
    new_ca, cert_after, _key = node_files(host)
    assert new_ca.serial_number != ca.serial_number and new_ca.subject == ca.subject
    assert cert_after.serial_number == renewed.serial_number
    cert_after.verify_directly_issued_by(new_ca)

    bad = run_playbook(host, tmp_path, **tls, qdrant_tls_renew_days=900)
    assert bad.returncode != 0
    message = "qdrant_tls_renew_days (900) must be less than qdrant_tls_cert_days (825)"
    assert message in " ".join(bad.stdout.split())


def test_a_data_directory_on_fuse_is_refused(host, tmp_path, archive):
    """Qdrant's snapshots of data on FUSE lost vectors here (docs/qdrant-behaviour.md §9)."""
    fstype = host.exec("findmnt", "--noheadings", "--output", "FSTYPE", "--target", "/srv").stdout.strip()
    if not fstype.startswith("fuse"):
        pytest.skip(f"the container's filesystem is {fstype}, not FUSE: nothing to refuse on this machine")
    result = run_playbook(host, tmp_path, qdrant_archive_src=str(archive), qdrant_data_dir="/srv/qdrant")
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert f"/srv/qdrant is on {fstype}" in output and "Put qdrant_data_dir on a local" in output
    assert host.exec("test", "-e", "/srv/qdrant").returncode != 0  # refused before the directory is made


def test_own_certificates_are_checked_before_anything_is_installed(host, tmp_path, archive):
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    base = {"qdrant_archive_src": str(archive), "qdrant_archive_sha256": sha}
    address = host.exec("hostname", "-I").stdout.split()[0]
    ca, stranger = TestCA("company PKI"), TestCA("someone else's CA")
    good = ca.issue([address, "node1"])

    def own(issued) -> dict:
        return {
            "qdrant_tls_ca_cert": ca.cert_pem,
            "qdrant_tls_cert": issued.cert_pem,
            "qdrant_tls_key": issued.key_pem,
        }

    assert run_playbook(host, tmp_path, **base).returncode == 0  # generated certificates first
    installed = host.exec("cat", "/etc/qdrant/tls/cert.pem").stdout

    refusals = [
        (
            {**own(good), "qdrant_tls_key": ca.issue([address]).key_pem},
            "the key is not the certificate's key",
        ),
        (own(stranger.issue([address])), "it is not issued by the given CA"),
        (own(ca.issue(["elsewhere.example"])), f"its subject alternative names lack IP:{address}"),
        (own(ca.issue([address], client_auth=False)), "it must allow both serverAuth and clientAuth"),
        ({"qdrant_tls_cert": good.cert_pem, "qdrant_tls_key": good.key_pem}, "give all three"),
    ]
    for variables, message in refusals:
        result = run_playbook(host, tmp_path, **base, **variables)
        output = " ".join(result.stdout.split())
        assert result.returncode != 0 and message in output, output[-3000:]
        assert host.exec("cat", "/etc/qdrant/tls/cert.pem").stdout == installed, "installed before the check"
        assert "PRIVATE KEY" not in result.stdout + result.stderr

    result = run_playbook(host, tmp_path, **base, **own(good))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert host.exec("cat", "/etc/qdrant/tls/cert.pem").stdout.strip() == good.cert_pem.strip()
    assert host.exec("cat", "/etc/qdrant/tls/key.pem").stdout.strip() == good.key_pem.strip()
    assert host.exec("cat", "/etc/qdrant/tls/cacert.pem").stdout.strip() == ca.cert_pem.strip()
    # The controller's tools find the given CA where they find the generated one.
    assert (tmp_path / "secrets/tls/ca.crt").read_text().strip() == ca.cert_pem.strip()
    again = run_playbook(host, tmp_path, **base, **own(good))
    assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-2000:]
