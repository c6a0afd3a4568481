"""The `qdrant-ops` command: a thin front door over the qdrant_ops library.

Subcommands register themselves in `build_parser`; each one is a function taking the parsed
arguments and returning an exit code. Library errors become one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qdrant_ops import __version__
from qdrant_ops.errors import QdrantOpsError

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qdrant-ops",
        description="Operate a distributed Qdrant cluster: backups to S3, restore, bulk ingest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        return int(handler(args) or 0)
    except QdrantOpsError as exc:
        print(f"qdrant-ops: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("qdrant-ops: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
