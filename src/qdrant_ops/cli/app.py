"""The `qdrant-ops` command itself: the parser made of every command group's `register`, and
`main`, which turns what a handler raises into one line and an exit code (common.EXIT_CODES)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qdrant_ops import __version__
from qdrant_ops.cli import backup, cluster, collections, golden, ingest, points, restore, standby, tls
from qdrant_ops.cli.common import (
    EXIT_CODES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    HelpFormatter,
    Parser,
    SubParser,
    UsageError,
    config_options,
    connection_options,
    report_error,
)
from qdrant_ops.errors import QdrantOpsError
from qdrant_ops.redact import redact


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="qdrant-ops",
        description="Operate a distributed Qdrant cluster: backups to S3, restore, bulk ingest.",
        epilog=EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on an internal error, print the traceback (before COMMAND)"
    )
    conn = connection_options()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=SubParser)

    cluster.register(commands, conn)
    collections.register(commands, conn)
    points.register(commands, conn)
    golden.register(commands, conn)
    ingest.register(commands, conn)
    ingest.register_dataset(commands)
    tls.register(commands)
    config_opts = config_options()
    backup.register(commands, config_opts)
    restore.register(commands, config_opts)
    standby.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        getattr(args, "help_of", parser).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args) or 0)
    except UsageError as exc:
        print(f"qdrant-ops: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except QdrantOpsError as exc:
        report_error(args, redact(str(exc)), EXIT_ERROR)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("qdrant-ops: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, not a traceback that may carry secrets
        if args.debug:
            raise
        detail = redact(str(exc))[:500]
        print(
            f"qdrant-ops: internal error: {type(exc).__name__}: {detail} "
            "(a bug: run again as qdrant-ops --debug ... for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_ERROR
