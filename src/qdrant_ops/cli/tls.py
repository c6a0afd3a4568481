"""`qdrant-ops tls`: when each certificate of PEM files expires, optionally as node_exporter
textfile metrics."""

from __future__ import annotations

import argparse
import dataclasses
import time

from qdrant_ops import certs
from qdrant_ops.cli.common import (
    command_group,
    emit_result,
    flag,
    output_file,
)
from qdrant_ops.table import format_table


def cmd_tls_expiry(args: argparse.Namespace) -> int:
    expiries = [item for path in args.cert for item in certs.read_expiries(path)]
    if args.textfile:
        certs.write_textfile(args.textfile, expiries)
    now = time.time()
    rows = [
        [
            e.path,
            e.subject,
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(e.not_after)),
            f"{(e.not_after - now) / 86400:.1f}",
        ]
        for e in sorted(expiries, key=lambda e: e.not_after)
    ]
    emit_result(
        args,
        [dataclasses.asdict(e) for e in expiries],
        format_table(rows, ["FILE", "SUBJECT", "NOT AFTER", "DAYS LEFT"]),
    )
    return 0


def register(commands) -> None:
    tls = command_group(commands, "tls", "TLS certificates")
    expiry = tls.add_parser(
        "expiry",
        help="when each certificate of the given PEM files expires",
        description="Lists every certificate of each file (a CA bundle may hold two during a roll-over) "
        "with its end of validity; with --textfile also writes them for node_exporter's textfile "
        "collector (alerts QdrantCertificateExpiresSoon / QdrantCertificateExpired).",
    )
    expiry.add_argument("cert", nargs="+", help="PEM certificate file(s)")
    expiry.add_argument(
        "--textfile",
        metavar="PATH",
        type=output_file,
        help="also write the expiry metrics to this .prom file",
    )
    flag(expiry, "--json", "machine-readable output")
    expiry.set_defaults(handler=cmd_tls_expiry)
