"""The installed `qdrant-ops` console script, run as a process."""

import subprocess
import sys
from pathlib import Path

from qdrant_ops import __version__

CLI = Path(sys.executable).with_name("qdrant-ops")


def test_console_script_prints_version():
    result = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"qdrant-ops {__version__}"


def test_help_names_the_tool():
    result = subprocess.run([str(CLI), "--help"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: qdrant-ops")
