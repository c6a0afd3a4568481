"""The backup jobs' textfile is valid for the real promtool (its contents: tests/unit)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from qdrant_ops.backup import metrics


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run `make deps`")
def test_promtool_accepts_the_file(tmp_path):
    path = metrics.write_run_metrics(
        tmp_path, "backup", "prod", success=True, finished=1000.0, duration=2, uploaded_bytes=1
    )
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=path.read_text(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
