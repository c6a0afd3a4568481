"""roles/tls_certificate on the controller: the cluster CA and a host certificate naming every
address given, a second run that changes nothing, check mode that makes nothing, and a refusal
to sign when the CA's key is not there (someone's own PKI), leaving that CA as it was."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.collection import COLLECTION
from tests.support.playbook import run_playbook
from tests.support.tls import TestCA

NAMES = ["10.0.0.9", "mon1", "monitoring.example.internal", "localhost", "127.0.0.1"]


def run_role(tmp_path: Path, tls_dir: Path, *flags: str):
    playbook = tmp_path / "issue.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "mon1",
        "gather_facts": False,
        "roles": [{"role": f"{COLLECTION}.tls_certificate", "vars": {
            "tls_certificate_dir": str(tls_dir),
            "tls_certificate_names": NAMES,
        }}],
    }]))  # fmt: skip
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"mon1": {"ansible_connection": "local"}}}}))
    extra = {"ansible_python_interpreter": "{{ ansible_playbook_python }}", "qdrant_cluster_name": "prod"}
    return run_playbook(playbook, "-i", str(inventory), "-e", json.dumps(extra), *flags)


def changed(report: dict) -> int:
    return report["stats"]["mon1"]["changed"] + report["stats"].get("localhost", {}).get("changed", 0)


def test_the_ca_and_a_certificate_for_every_name_then_nothing_changes(tmp_path):
    tls_dir = tmp_path / "secrets/tls"
    result, report = run_role(tmp_path, tls_dir, "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert not tls_dir.exists(), "check mode made files"

    result, report = run_role(tmp_path, tls_dir)
    assert result.returncode == 0, result.stdout[-3000:]
    ca = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((tls_dir / "mon1.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.subject.rfc4514_string() == "CN=prod Qdrant CA"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "mon1",
        "monitoring.example.internal",
        "localhost",
    }
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.0.9"),
        ipaddress.ip_address("127.0.0.1"),
    }
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= usages
    assert oct((tls_dir / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct((tls_dir / "mon1.key").stat().st_mode & 0o777) == "0o600"

    result, report = run_role(tmp_path, tls_dir)
    assert result.returncode == 0 and changed(report) == 0, result.stdout[-3000:]


def test_a_ca_without_its_key_is_refused_and_left_as_it_was(tmp_path):
    tls_dir = tmp_path / "secrets/tls"
    tls_dir.mkdir(parents=True)
    own_ca = TestCA("company PKI").cert_pem
    (tls_dir / "ca.crt").write_text(own_ca)

    result, _ = run_role(tmp_path, tls_dir)
    output = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "has no ca.key beside it" in output and "monitoring_tls_cert, monitoring_tls_key" in output, (
        output[-2000:]
    )
    assert (tls_dir / "ca.crt").read_text() == own_ca
    assert sorted(p.name for p in tls_dir.iterdir()) == ["ca.crt"]
