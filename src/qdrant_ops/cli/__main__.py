"""`python -m qdrant_ops.cli ...`, as the nodes' timers and the playbooks call it."""

import sys

from qdrant_ops.cli.app import main

if __name__ == "__main__":  # imported alone (tests/unit/test_architecture.py) it does nothing
    sys.exit(main())
