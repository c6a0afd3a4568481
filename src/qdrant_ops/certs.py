"""Certificate expiry as textfile metrics (node_exporter's textfile collector), written by
`qdrant-ops tls expiry` on each node's timer; the alerts QdrantCertificateExpiresSoon and
QdrantCertificateExpired (files/alerts/qdrant.rules.yml) read them.

Every certificate in each file counts, not only the first: a CA file during a roll-over holds the
old and the new CA, and the old one lapsing must show too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric

from qdrant_ops.errors import ConfigError

NOT_AFTER = "qdrant_ops_tls_certificate_not_after_timestamp_seconds"
CHECKED = "qdrant_ops_tls_certificate_check_timestamp_seconds"
METRIC_NAMES = (NOT_AFTER, CHECKED)


@dataclass(frozen=True)
class Expiry:
    path: str
    subject: str
    serial: str
    not_after: float


def read_expiries(path: str | Path) -> list[Expiry]:
    """Every certificate of a PEM file with its end of validity; refuses a file without one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificate file {path}: {exc.strerror}; fix the path") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{path} holds no PEM certificate: give the certificate file, not a key") from None
    return [
        Expiry(
            str(path),
            cert.subject.rfc4514_string(),
            format(cert.serial_number, "x"),
            cert.not_valid_after_utc.timestamp(),
        )
        for cert in certificates
    ]


class _Expiries:
    def __init__(self, expiries: Sequence[Expiry]) -> None:
        self.expiries = expiries

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            NOT_AFTER,
            "End of validity (Unix time) of each certificate the node's TLS files hold.",
            labels=["path", "subject", "serial"],
        )
        for item in self.expiries:
            family.add_metric([item.path, item.subject, item.serial], item.not_after)
        yield family
        yield GaugeMetricFamily(CHECKED, "When the certificate files were last read.", value=time.time())


def write_textfile(path: str | Path, expiries: Sequence[Expiry]) -> None:
    """Replace the file atomically (prometheus_client writes a temp file and renames it)."""
    registry = CollectorRegistry()
    registry.register(_Expiries(expiries))
    write_to_textfile(str(path), registry)
    Path(path).chmod(0o644)  # node_exporter runs as another user
