"""The `qdrant-ops` command: a thin front door over the qdrant_ops library, one module per command
group with its parser (`register`) beside its handlers (`cmd_*`), and what they share in `common`:
exit codes, argument types, the one way to build a client and the one way to log to stderr.

Each handler takes the parsed arguments and returns an exit code. Library errors become one line on
stderr and exit 2. The API key is read from QDRANT_API_KEY or a file, never from the command line,
where `ps` would show it.
"""

from qdrant_ops.cli.app import build_parser, main
from qdrant_ops.cli.common import EXIT_ATTENTION, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from qdrant_ops.cli.ingest import print_progress

__all__ = [
    "EXIT_ATTENTION",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "print_progress",
]
