"""Run ansible-playbook from the test venv with the project's ansible.cfg and JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_playbook(
    playbook: str | Path, *args: str, timeout: float = 300, env: dict | None = None
) -> tuple[subprocess.CompletedProcess, dict]:
    """Returns the process and the ansible.posix.json report ({} when the run printed none)."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), str(playbook), *args],
        cwd=ROOT,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    json_output = (env or {}).get("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json") == "ansible.posix.json"
    report = (
        json.loads(result.stdout[result.stdout.index("{") :]) if json_output and "{" in result.stdout else {}
    )
    return result, report


def task_results(report: dict, task: int = 0, play: int = 0) -> dict[str, dict]:
    """Host name -> result of one task."""
    return report["plays"][play]["tasks"][task]["hosts"]
