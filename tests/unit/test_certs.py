"""Certificate expiry: every certificate of each PEM file, with its end of validity, as textfile
metrics (the alerts are tests/integration/test_alert_rules.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from qdrant_ops import certs
from qdrant_ops.cli import main
from qdrant_ops.errors import ConfigError

NOW = dt.datetime.now(dt.UTC)


def certificate(name: str, days: int) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days)).sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_every_certificate_of_a_bundle_counts(tmp_path):
    old, _ = certificate("old CA", 5)
    new, _ = certificate("new CA", 3650)
    bundle = tmp_path / "cacert.pem"
    bundle.write_bytes(old + new)
    found = sorted(certs.read_expiries(bundle), key=lambda e: e.not_after)
    assert [e.subject for e in found] == ["CN=old CA", "CN=new CA"]
    assert abs(found[0].not_after - (NOW + dt.timedelta(days=5)).timestamp()) < 2


def test_a_key_or_a_missing_file_is_refused_naming_it(tmp_path):
    _, key = certificate("node", 30)
    (tmp_path / "key.pem").write_bytes(key)
    with pytest.raises(ConfigError, match=r"key.pem holds no PEM certificate: give the certificate file"):
        certs.read_expiries(tmp_path / "key.pem")
    with pytest.raises(ConfigError, match=r"cannot read certificate file .*missing.pem"):
        certs.read_expiries(tmp_path / "missing.pem")


def test_the_cli_lists_soonest_first_and_writes_the_textfile(tmp_path, capsys):
    for name, days in (("node", 10), ("ca", 3650)):
        (tmp_path / f"{name}.pem").write_bytes(certificate(name, days)[0])
    textfile = tmp_path / "tls.prom"
    assert main(["tls", "expiry", str(tmp_path / "ca.pem"), str(tmp_path / "node.pem"),
                 "--textfile", str(textfile), "--json"]) == 0  # fmt: skip
    listed = json.loads(capsys.readouterr().out)
    assert {e["subject"] for e in listed} == {"CN=node", "CN=ca"}
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    samples = families[certs.NOT_AFTER].samples
    assert {s.labels["subject"] for s in samples} == {"CN=node", "CN=ca"}
    assert {s.labels["path"] for s in samples} == {str(tmp_path / "node.pem"), str(tmp_path / "ca.pem")}
    assert families[certs.CHECKED].samples[0].value > 0
    assert oct(textfile.stat().st_mode & 0o777) == "0o644"
    assert main(["tls", "expiry", str(tmp_path / "node.pem")]) == 0
    out = capsys.readouterr().out
    assert "CN=node" in out and "DAYS LEFT" in out
