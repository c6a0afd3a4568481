"""Boot the systemd host image as a container, with the flags these machines accept
(--privileged is refused; systemd needs SYS_ADMIN, the host cgroup namespace and /run on tmpfs)."""

from __future__ import annotations

import subprocess
import time
import uuid

SYSTEMD_RUN_FLAGS = [
    "--cap-add",
    "SYS_ADMIN",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--tmpfs",
    "/tmp",
    # Qdrant's data and the restore drill's scratch off FUSE (the storage driver may be fuse-overlayfs).
    "--tmpfs",
    "/var/lib/qdrant",
    "--tmpfs",
    "/var/lib/qdrant-ops",
    # systemd shuts down cleanly on SIGRTMIN+3; SIGTERM would make it re-execute.
    "--stop-signal",
    "SIGRTMIN+3",
]


class SystemdContainer:
    def __init__(self, image: str, name: str | None = None, network: str | None = None) -> None:
        self.image = image
        self.name = name or f"qdrant-ops-test-{uuid.uuid4().hex[:8]}"
        self.network = network

    def __enter__(self) -> SystemdContainer:
        command = ["docker", "run", "-d", "--name", self.name, *SYSTEMD_RUN_FLAGS]
        if self.network:
            command += ["--network", self.network]
        if self.network != "host":  # on the host's network the container keeps the host's name
            command += ["--hostname", self.name]
        subprocess.run([*command, self.image, "/lib/systemd/systemd"], check=True, capture_output=True)
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)

    def exec(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", "exec", self.name, *args], capture_output=True, text=True, timeout=timeout
        )

    def wait_for_boot(self, timeout: float = 60) -> str:
        """The state `systemctl is-system-running` settles on (running, degraded, ...)."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            state = self.exec("systemctl", "is-system-running").stdout.strip()
            # "offline": systemd is not yet PID 1's manager (docker exec can win the race at start).
            if state not in ("offline", "initializing", "starting", ""):
                return state
            time.sleep(0.5)
        return state
