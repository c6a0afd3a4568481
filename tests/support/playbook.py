"""Run ansible-playbook from the test venv with the project's ansible.cfg and JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.collection import COLLECTION

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


def backup_inventory(tmp_path: Path, nodes, s3: dict, host_vars=lambda _index: {}) -> dict:
    """An inventory of one local host per stub node, each with its own backup.yml (cluster prod, the
    node's URL, `s3`), and the project venv standing in for the nodes' /opt/qdrant-ops/venv.
    Writes tmp_path/hosts.yml; returns the extra vars that point the playbooks at it."""
    (tmp_path / "install").mkdir()
    (tmp_path / "install/venv").symlink_to(ROOT / ".venv")
    hosts = {}
    for i, node in enumerate(nodes):
        config_dir = tmp_path / f"etc{i}"
        config_dir.mkdir()
        config = {"cluster": "prod", "qdrant": {"url": node.url, "api_key": "stub-secret-key"}, "s3": s3,
                  "members": [f"peer-{1000 + n}" for n in range(len(nodes))]}  # fmt: skip
        (config_dir / "backup.yml").write_text(yaml.safe_dump(config))
        hosts[f"q{i}"] = {"ansible_connection": "local", "qdrant_backup_config_dir": str(config_dir),
                          **host_vars(i)}  # fmt: skip
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"qdrant": {"hosts": hosts}}}}))
    return {"qdrant_backup_install_dir": str(tmp_path / "install"), "ansible_become": False}


def run_module_task(tmp_path: Path, module: str, options: dict, *flags: str) -> dict:
    """Run one task of this collection's `module` (its short name) on localhost with the test
    venv's interpreter (ansible-playbook `flags` such as --check); returns its result, failing the
    test if the play fails."""
    playbook = tmp_path / f"{module}.yml"
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [{f"{COLLECTION}.{module}": options}]}
    playbook.write_text(yaml.safe_dump([play]))
    python = "ansible_python_interpreter={{ ansible_playbook_python }}"
    result, report = run_playbook(playbook, "-i", "localhost,", "-c", "local", *flags, "-e", python)
    assert result.returncode == 0, result.stdout[-3000:]
    return task_results(report)["localhost"]
