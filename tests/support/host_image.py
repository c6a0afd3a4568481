"""Build the Debian systemd host image used by molecule, the container tests and the lab.

No container registry is reachable here, so the image is made from scratch: debootstrap a
Debian root file system, add what Ansible and systemd-in-a-container need, `docker import` it.
The tag carries a hash of the recipe (this file's RECIPE), so a changed recipe builds a new
image and an unchanged one is built once per machine.

Usage: python tests/support/host_image.py   (prints the image tag; builds it if missing)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = "qdrant-ops/systemd-host"
# Moving alias that molecule.yml and the lab inventory refer to.
ALIAS = f"{REPOSITORY}:bookworm"

RECIPE = {
    "suite": "bookworm",
    "mirror": os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian"),
    "variant": "minbase",
    "packages": [
        "systemd",
        "systemd-sysv",
        "dbus",
        "python3",
        "python3-apt",
        "python3-venv",  # the qdrant_backup role's virtualenv (nodes install from a wheelhouse)
        "sudo",
        "ca-certificates",
        "iproute2",
        "procps",
        "curl",
        "less",
        "xfsprogs",
        "e2fsprogs",
        # The monitoring roles' package method finds these installed (tests reach no mirror);
        # they are disabled below so that only the roles start them.
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-node-exporter",
    ],
    "disabled_units": [
        "prometheus.service",
        "prometheus-alertmanager.service",
        "prometheus-node-exporter.service",
    ],
    # Units that cannot work in a container and would keep `is-system-running` degraded.
    "masked_units": [
        "systemd-firstboot.service",
        "systemd-udevd.service",
        "systemd-udevd-control.socket",
        "systemd-udevd-kernel.socket",
        "systemd-modules-load.service",
        "sys-kernel-config.mount",
        "sys-kernel-debug.mount",
        "sys-kernel-tracing.mount",
        "systemd-remount-fs.service",
        "getty.target",
        "console-getty.service",
        "systemd-logind.service",
    ],
    "revision": 1,
}


class ImageBuildError(RuntimeError):
    pass


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]


def image_tag() -> str:
    return f"{REPOSITORY}:bookworm-{recipe_hash()}"


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def _run(cmd: list[str], **kwargs) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise ImageBuildError(
            f"{' '.join(cmd[:3])} ... failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )


def _configure_rootfs(root: Path) -> None:
    for unit in RECIPE["masked_units"]:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for unit in RECIPE["disabled_units"]:
        for link in (root / "etc/systemd/system").glob(f"*.wants/{unit}"):
            link.unlink()
    # A container has no machine id until first boot; an empty file lets systemd create one.
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    # Keep images small: no docs, no apt lists.
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list").write_text(
        f"deb {RECIPE['mirror']} bookworm main\n"
        f"deb {RECIPE['mirror']} bookworm-updates main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n"
    )


def build(tag: str) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed: run `make deps` (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ImageBuildError("building the host image needs root (debootstrap): run as root")
    with tempfile.TemporaryDirectory(prefix="qdrant-ops-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        _run(
            [
                "debootstrap",
                f"--variant={RECIPE['variant']}",
                "--include=" + ",".join(RECIPE["packages"]),
                RECIPE["suite"],
                str(root),
                RECIPE["mirror"],
            ]
        )
        _configure_rootfs(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                "docker",
                "import",
                "--change",
                'CMD ["/lib/systemd/systemd"]',
                "--change",
                "ENV container=docker",
                "-",
                tag,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.stdout.close()  # so tar gets SIGPIPE instead of blocking if the import failed
        tar.wait()
        if tar.returncode != 0 or imported.returncode != 0:
            raise ImageBuildError(f"docker import of {tag} failed: {imported.stderr.strip()}")


def ensure_image() -> str:
    """Return the tag of the current host image, building it when the recipe changed."""
    tag = image_tag()
    if not image_exists(tag):
        build(tag)
    _run(["docker", "tag", tag, ALIAS])
    return tag


if __name__ == "__main__":
    try:
        print(ensure_image())
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
