"""The systemd host image boots systemd as PID 1 under the flags these machines accept."""

import pytest

from tests.support.containers import SystemdContainer

pytestmark = pytest.mark.docker


def test_systemd_boots_to_running(host_image):
    with SystemdContainer(host_image) as host:
        state = host.wait_for_boot()
        failed = host.exec("systemctl", "--failed", "--no-legend").stdout
        assert state == "running", f"state {state}; failed units:\n{failed}"
        assert host.exec("cat", "/proc/1/comm").stdout.strip() == "systemd"
        # Ansible modules run with the host's python3 and use python3-apt for the apt module.
        assert host.exec("python3", "-c", "import apt").returncode == 0
