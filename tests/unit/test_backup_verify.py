"""The restore drill's pure parts: rounds by scratch disk space, the binary's version, the scratch
node's config (the drill itself against real Qdrant: tests/e2e/test_backup_verify_real_qdrant.py)."""

import os
import socket
from pathlib import Path

import pytest

from qdrant_ops.backup import verify
from qdrant_ops.errors import ConfigError


def test_a_collection_larger_than_the_scratch_disk_is_refused():
    with pytest.raises(verify.VerifyError, match="collection big needs about 2000 bytes of scratch space"):
        verify.plan_rounds({"big": 1000, "small": 10}, 1500, Path("/scratch"))


def test_a_set_that_does_not_fit_whole_is_verified_collection_by_collection():
    assert verify.plan_rounds({"a": 400, "b": 300}, 1000, Path("/x")) == [["a"], ["b"]]
    assert verify.plan_rounds({"a": 400, "b": 100}, 1000, Path("/x")) == [["a", "b"]]


def test_the_binary_must_exist_and_say_its_version(tmp_path):
    with pytest.raises(verify.VerifyError, match="is not an executable file"):
        verify.binary_version(str(tmp_path / "missing"))
    mute = tmp_path / "mute"
    mute.write_text("#!/bin/sh\nexit 3\n")
    mute.chmod(0o755)
    with pytest.raises(verify.VerifyError, match="did not print a version"):
        verify.binary_version(str(mute))
    real_like = tmp_path / "qdrant"
    real_like.write_text('#!/bin/sh\necho "qdrant 1.18.3"\n')
    real_like.chmod(0o755)
    assert verify.binary_version(str(real_like)) == "1.18.3"


def test_the_scratch_node_listens_on_loopback_only_without_grpc_or_cluster(tmp_path):
    scratch = verify.ScratchQdrant("/bin/false", tmp_path)
    config = scratch.config()
    assert config["service"]["host"] == "127.0.0.1" and config["service"]["grpc_port"] is None
    assert config["cluster"] == {"enabled": False} and config["telemetry_disabled"] is True
    assert len(config["service"]["api_key"]) >= 32
    assert all(path.startswith(str(tmp_path)) for path in config["storage"].values())
    assert scratch.api_key not in repr(scratch)


MOUNTS = """overlay / overlay rw 0 0
fuse-overlayfs /var fuse.fuse-overlayfs rw 0 0
/dev/vdb /var/lib/qdrant-ops/verify ext4 rw 0 0
/dev/vdc /mnt/with\\040space xfs rw 0 0
"""


def test_the_filesystem_is_the_longest_mount_point_that_holds_the_path(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    assert verify.filesystem_type(Path("/var/lib/qdrant-ops/verify/x"), str(mounts)) == "ext4"
    assert verify.filesystem_type(Path("/var/lib/other"), str(mounts)) == "fuse.fuse-overlayfs"
    assert verify.filesystem_type(Path("/variable"), str(mounts)) == "overlay"  # /var is not its prefix
    assert verify.filesystem_type(Path("/mnt/with space/d"), str(mounts)) == "xfs"


def test_a_scratch_directory_on_fuse_is_refused(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    with pytest.raises(verify.VerifyError, match=r"/var/lib/other is on a FUSE filesystem .*--workdir"):
        verify.check_workdir(Path("/var/lib/other"), str(mounts))
    verify.check_workdir(Path("/var/lib/qdrant-ops/verify"), str(mounts))  # ext4: accepted


@pytest.mark.parametrize(
    "version", ["1.18.3/../../../../tmp/evil", "../1.18.3", "1.18", "", None, 1.18, "1.18.3\n"]
)
def test_a_version_from_the_set_picks_no_binary_unless_it_is_x_y_z(version):
    with pytest.raises(verify.VerifyError, match=r"not X\.Y\.Z"):
        verify.versioned_binary("/opt/qdrant/versions/{version}/qdrant", version)


def test_a_templated_binary_stays_in_its_directory():
    assert verify.versioned_binary("/opt/qdrant/versions/{version}/qdrant", "1.18.3") == (
        "/opt/qdrant/versions/1.18.3/qdrant"
    )
    assert (
        verify.versioned_binary("/opt/qdrant-{version}/bin/qdrant", "1.18.3")
        == "/opt/qdrant-1.18.3/bin/qdrant"
    )
    assert verify.versioned_binary("/usr/local/bin/qdrant", "1.18.3") == "/usr/local/bin/qdrant"
    with pytest.raises(verify.VerifyError, match="outside /opt/qdrant/versions"):
        verify.versioned_binary("/opt/qdrant/versions/{version}/../../../../bin/sh", "1.18.3")


def test_only_the_scratch_process_own_listener_is_asked(tmp_path, monkeypatch):
    with socket.socket() as impostor:
        impostor.bind(("127.0.0.1", 0))
        impostor.listen()
        impostor.setblocking(False)
        port = impostor.getsockname()[1]
        assert verify.listens_on(os.getpid(), port)  # this process holds it
        assert not verify.listens_on(os.getppid(), port)
        # A scratch "Qdrant" that never listens, on a port another program took first: the drill
        # gives up without sending the key there.
        binary = tmp_path / "qdrant"
        binary.write_text("#!/bin/sh\nsleep 30\n")
        binary.chmod(0o755)
        monkeypatch.setattr(verify, "_free_port", lambda: port)
        scratch = verify.ScratchQdrant(str(binary), tmp_path / "scratch", startup_seconds=2)
        with pytest.raises(verify.VerifyError, match="did not answer within 2 s"), scratch:
            pass
        assert not (tmp_path / "scratch").exists()  # stopped and removed
        with pytest.raises(BlockingIOError):
            impostor.accept()  # nobody connected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"binary": ""}, "must be a path"),
        ({"binary": "/opt/{version}/{version}/qdrant"}, r"with \{version\} at most once"),
        ({"backup_id": "../x"}, "backup id"),
        ({"timeout": 0}, "timeout must be positive"),
    ],
)
def test_verify_options_refuse_what_no_drill_can_do(options, message):
    with pytest.raises(ConfigError, match=message):
        verify.VerifyOptions(**options)
