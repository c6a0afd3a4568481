"""The lab's own parts that need no Qdrant: `make lab` stops at once without a binary, and the lab
infrastructure (systemd containers on the private network, the S3 endpoint on its gateway, the
backup bucket) comes up, converges to zero changes, and `lab_down.yml` removes all of it.
The deployment onto that infrastructure is the drill (tests/e2e/test_lab_drill.py, QDRANT_BINARY)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventory/lab"
LAB_VARS = yaml.safe_load((INVENTORY / "group_vars/all.yml").read_text())
HOSTS = ["qdrant-lab-1", "qdrant-lab-2", "qdrant-lab-3", "qdrant-lab-mon"]


def playbook(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default"},
    )  # fmt: skip


def lab_containers() -> list[str]:
    result = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=qdrant-ops-lab", "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.split()


def test_make_lab_stops_at_once_without_a_qdrant_binary():
    env = {k: v for k, v in os.environ.items() if k != "QDRANT_BINARY"}
    # The release URL points at a closed local port: this test sends nothing off the machine.
    result = subprocess.run(
        ["make", "--no-print-directory", "lab", "QDRANT_RELEASE_URL=http://127.0.0.1:9/qdrant.tar.gz"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode != 0
    assert "make lab: no Qdrant binary. QDRANT_BINARY is not set and the pinned release" in result.stderr
    assert "Set QDRANT_BINARY=/path/to/qdrant" in result.stderr
    assert "ansible-playbook" not in result.stdout  # stopped before anything ran


def test_lab_infrastructure_comes_up_converges_and_goes_away(host_image):
    if lab_containers():
        pytest.skip("a lab is running on this machine (make lab): this test would remove it")
    try:
        first = playbook("playbooks/lab.yml", "--tags", "lab-infra", "--skip-tags", "always")
        assert first.returncode == 0, first.stdout[-4000:]
        assert sorted(lab_containers()) == sorted(HOSTS)
        for host in HOSTS:
            state = subprocess.run(["docker", "exec", host, "systemctl", "is-system-running"],
                                   capture_output=True, text=True)  # fmt: skip
            assert state.stdout.strip() in ("running", "degraded"), host
        # A lab host reaches the S3 endpoint on the gateway, and the backup bucket exists.
        bucket = f"http://{LAB_VARS['lab_gateway']}:{LAB_VARS['lab_s3_port']}/{LAB_VARS['qdrant_backup_s3_bucket']}"
        probe = subprocess.run(
            ["docker", "exec", "qdrant-lab-1", "python3", "-c",
             f"import urllib.request; print(urllib.request.urlopen({bucket!r}).status)"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert probe.stdout.strip() == "200", probe.stderr
        second = playbook("playbooks/lab.yml", "--tags", "lab-infra", "--skip-tags", "always")
        assert second.returncode == 0
        assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0", second.stdout), second.stdout[-2000:]
        pid = int((ROOT / ".cache/lab/moto.pid").read_text())
    finally:
        down = playbook("playbooks/lab_down.yml")
    assert down.returncode == 0, down.stdout[-4000:]
    assert lab_containers() == []
    networks = subprocess.run(
        ["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True
    )
    assert LAB_VARS["lab_network"] not in networks.stdout.split()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), "the S3 endpoint outlived make lab-down"
    assert not (ROOT / ".cache/lab").exists() and not (INVENTORY / ".secrets").exists()
