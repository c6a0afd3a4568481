"""Restore drills: prove that a backup set restores, not only that its objects match their checksums.

The newest complete set (or a given one) is restored into a scratch single-node Qdrant started for
the purpose: the same minor version as the set (checked before anything starts), its own storage
under a temporary directory, listening on 127.0.0.1 only with a random API key, cluster mode off,
removed afterwards whatever happened. Every collection is created with one replica per shard
(restore's `single_copy`), every shard snapshot is recovered into it (fetched by the scratch node
from a presigned S3 URL and checked against the set's sha256), and the result is compared with the
manifest: exact counts and every sampled point's payload and vector hashes.

Disk: the scratch storage needs about twice a collection's snapshot bytes (the download being
unpacked, then the segments). When the whole set does not fit, collections are verified one at a
time, each deleted before the next; when one collection alone does not fit, the drill is refused
before it starts, naming the collection and the space it needs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qdrant_ops.backup import model, restore, restore_plan
from qdrant_ops.backup.manifest import Manifest
from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.polling import wait_until

SPACE_FACTOR = 2.0  # scratch bytes per snapshot byte: the download being unpacked, then the segments
STARTUP_SECONDS = 120.0


class VerifyError(QdrantOpsError):
    """The drill was refused or the set did not restore; the message says which and why. `report`:
    what the drill found before it failed (its golden queries' results), for the metrics."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


def lowest_recall(report: dict) -> float | None:
    """The lowest recall of the golden queries in a drill's report (None: no golden queries)."""
    recalls = [r["recall"] for r in (report.get("golden") or {}).values() if r.get("recall") is not None]
    return min(recalls, default=None)


def binary_version(binary: str) -> str:
    """The X.Y.Z the binary reports (`qdrant --version` prints `qdrant X.Y.Z`)."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise VerifyError(
            f"Qdrant binary {binary} is not an executable file: install the version of the backup set "
            "there or pass --qdrant-binary"
        )
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    found = re.search(r"\d+\.\d+\.\d+", result.stdout)
    if result.returncode != 0 or not found:
        raise VerifyError(f"{binary} --version did not print a version: {result.stderr.strip()[-300:]}")
    return found.group(0)


def filesystem_type(path: Path, mounts: str = "/proc/self/mounts") -> str:
    """The type of the filesystem `path` is on: the mount point that is its longest prefix."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    with open(mounts, encoding="utf-8") as table:
        for line in table:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, best_type = point, fields[2]
    return best_type


def check_workdir(base: Path, mounts: str = "/proc/self/mounts") -> None:
    """Refuse a FUSE scratch directory: Qdrant on FUSE can lose what it wrote through mmap
    (docs/qdrant-behaviour.md §9), so a drill there could fail a good set."""
    kind = filesystem_type(base, mounts)
    if kind.startswith("fuse"):
        raise VerifyError(
            f"the scratch directory {base} is on a FUSE filesystem ({kind}), where Qdrant can lose data: "
            "point --workdir at a local disk (ext4, xfs or tmpfs); nothing was started"
        )


def listens_on(pid: int, port: int, proc: Path = Path("/proc")) -> bool:
    """Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux: the socket
    inode in /proc/net/tcp among the process's open files). Another program that took the port
    first does not pass."""
    wanted = f"0100007F:{port:04X}"
    inodes = set()
    try:
        for line in (proc / "net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
        fds = list((proc / str(pid) / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ScratchQdrant:
    """A throw-away single-node Qdrant on 127.0.0.1 with its storage under `workdir`."""

    binary: str
    workdir: Path
    startup_seconds: float = STARTUP_SECONDS
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict:
        # Absolute paths: a relative one would resolve against the working directory. No gRPC, no
        # cluster, no telemetry: nothing of the drill leaves this host except the S3 download.
        return {
            "log_level": "WARN",
            "telemetry_disabled": True,
            "service": {
                "host": "127.0.0.1",
                "http_port": self.port,
                "grpc_port": None,
                "api_key": self.api_key,
                "enable_snapshot_url_recovery": True,
            },
            "cluster": {"enabled": False},
            "storage": {
                "storage_path": str(self.workdir / "storage"),
                "snapshots_path": str(self.workdir / "snapshots"),
                "temp_path": str(self.workdir / "tmp"),
            },
        }

    def start(self) -> ScratchQdrant:
        for sub in ("storage", "snapshots", "tmp"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        config = self.workdir / "config.yaml"
        config.write_text(json.dumps(self.config()))  # JSON is YAML
        config.chmod(0o600)  # it holds the scratch key
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RUN_MODE": "production",
            "QDRANT_INIT_FILE_PATH": str(self.workdir / ".initialized"),
        }
        with (self.workdir / "qdrant.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--config-path", str(config)],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with ClusterClient([self.url], self.api_key, retries=0, timeout=5) as client:
            wait_until(
                lambda: self._not_ready(client),
                timeout=self.startup_seconds,
                interval=0.5,
                error=lambda _what: VerifyError(
                    f"the scratch Qdrant did not answer within {self.startup_seconds:.0f} s: "
                    f"{self.log_tail()}"
                ),
            )
        return self

    def _not_ready(self, client: ClusterClient) -> str | None:
        if self.process.poll() is not None:
            raise VerifyError(f"the scratch Qdrant exited at start: {self.log_tail()}")
        # The port was free when picked, not reserved: ask only once our process listens on it, so
        # the key and the presigned URLs never go to another program.
        if not listens_on(self.process.pid, self.port):
            return "not listening yet"
        try:
            client.version()  # JSON, where /readyz answers in plain text
        except QdrantOpsError as exc:
            return str(exc)
        return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join((self.workdir / "qdrant.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ScratchQdrant:
        # systemd stops a unit with SIGTERM, which ends Python without unwinding: raise instead, so
        # the scratch node (in a session of its own) and its directory go with the drill.
        self._previous = _raise_on_sigterm()
        try:
            return self.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc_info) -> None:
        try:
            self.stop()
        finally:
            if getattr(self, "_previous", None) is not None:
                signal.signal(signal.SIGTERM, self._previous)


def _raise_on_sigterm():
    """Make SIGTERM raise SystemExit(143); returns the previous handler (None off the main thread,
    where Python cannot install one)."""

    def terminate(_signum, _frame):
        raise SystemExit(128 + signal.SIGTERM)

    try:
        return signal.signal(signal.SIGTERM, terminate)
    except ValueError:
        return None


def collection_bytes(manifest: Manifest) -> dict[str, int]:
    return {name: sum(record.size for record in manifest.records(name)) for name in manifest.collections}


def plan_rounds(sizes: dict[str, int], free: int, where: Path) -> list[list[str]]:
    """All collections in one round when the set fits, else one collection per round; refused
    when a single collection does not fit."""
    need = {name: int(size * SPACE_FACTOR) for name, size in sizes.items()}
    if sum(need.values()) <= free:
        return [sorted(sizes)] if sizes else []
    too_big = sorted((name for name in need if need[name] > free), key=lambda name: -need[name])
    if too_big:
        name = too_big[0]
        raise VerifyError(
            f"collection {name} needs about {need[name]} bytes of scratch space but {where} has {free} free: "
            "point --workdir at a larger disk (or verify on a larger host); nothing was started"
        )
    return [[name] for name in sorted(sizes)]


def versioned_binary(template: str, version: object) -> str:
    """The binary for a set's Qdrant version: `{version}` in the template replaced. The version
    comes from part records that nodes wrote, so it must be X.Y.Z and the path must stay inside
    the directory before `{version}` (checked on the text: symlinks an administrator made there
    are the administrator's choice)."""
    if not (isinstance(version, str) and model.VERSION_PATTERN.match(version)):
        raise VerifyError(
            f"the set records Qdrant version {str(version)[:40]!r}, not X.Y.Z: no binary is picked by it"
        )
    if "{version}" not in template:
        return template
    base = os.path.abspath(os.path.dirname(template.split("{version}", 1)[0]))
    path = template.replace("{version}", version)
    if os.path.commonpath([base, os.path.abspath(path)]) != base:
        raise VerifyError(
            f"{path} is outside {base}: the binary template must name a path under that directory"
        )
    return path


def check_drill(
    manifest: Manifest, binary: str, collections: Sequence[str]
) -> tuple[str, str, dict[str, int]]:
    """Every refusal before anything starts: (binary, its version, bytes per collection to verify)."""
    if manifest.per_node:
        raise VerifyError(
            f"backup {manifest.backup_id} is a format 1 set (a snapshot per node): it restores only onto "
            "as many nodes as it has parts, not onto one scratch node; verify a newer set"
        )
    made_by = manifest.qdrant_version
    if made_by is None:
        raise VerifyError(f"backup {manifest.backup_id} names no Qdrant version: verify another")
    binary = versioned_binary(binary, made_by)
    version = binary_version(binary)
    if restore_plan.minor(version) != restore_plan.minor(made_by):
        raise VerifyError(
            f"backup {manifest.backup_id} was made by Qdrant {made_by} but {binary} is "
            f"{version}: a set restores only into its own minor version; install "
            f"{restore_plan.minor(made_by)}.x on this host and pass --qdrant-binary"
        )
    unknown = sorted(set(collections) - set(manifest.collections))
    if unknown:
        raise VerifyError(f"backup {manifest.backup_id} has no collection {', '.join(unknown)}")
    sizes = {
        name: size
        for name, size in collection_bytes(manifest).items()
        if not collections or name in collections
    }
    return binary, version, sizes


DEFAULT_BINARY = "/opt/qdrant/versions/{version}/qdrant"  # where the qdrant role installs each version


@dataclass(frozen=True)
class VerifyOptions:
    """What one restore drill does, built once by the CLI (the timer runs the CLI) and checked here."""

    binary: str = DEFAULT_BINARY  # `{version}` is replaced by the version that made the set
    backup_id: str | None = None  # default: the newest sealed set
    collections: tuple[str, ...] = ()  # default: every collection of the set
    workdir: Path | None = None  # where the scratch storage goes; default: the temp directory
    timeout: float = 3600.0  # per restore round

    def __post_init__(self) -> None:
        if not isinstance(self.binary, str) or not self.binary or self.binary.count("{version}") > 1:
            raise ConfigError(
                f"the Qdrant binary {self.binary!r} must be a path, with {{version}} at most once"
            )
        if self.backup_id is not None:
            model.check_name(self.backup_id, "backup id")
        object.__setattr__(self, "collections", tuple(self.collections))
        if self.workdir is not None:
            object.__setattr__(self, "workdir", Path(self.workdir))
        if not self.timeout > 0:
            raise ConfigError(f"the drill's timeout must be positive, got {self.timeout}")


def verify_set(
    s3_client,
    settings: model.BackupSettings,
    options: VerifyOptions,
    *,
    log: Callable[[str], None] = lambda _line: None,
) -> dict:
    """Restore the set into a scratch Qdrant and compare it with its manifest. Returns the report;
    raises VerifyError when the drill cannot run or the set does not restore as recorded."""
    started = time.monotonic()
    manifest = restore_plan.choose_set(s3_client, settings, options.backup_id)
    binary, version, sizes = check_drill(manifest, options.binary, options.collections)
    base = options.workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    check_workdir(base)
    rounds = plan_rounds(sizes, shutil.disk_usage(base).free, base)
    scratch_dir = Path(tempfile.mkdtemp(prefix="qdrant-ops-verify-", dir=base))
    report = {
        "backup_id": manifest.backup_id,
        "qdrant_version": version,
        "collections": {},
        "golden": {},
        "rounds": len(rounds),
        "bytes": sum(sizes.values()),
    }
    with (
        ScratchQdrant(binary, scratch_dir) as scratch,
        ClusterClient([scratch.url], scratch.api_key, retries=3, backoff=0.5, timeout=120) as client,
    ):
        log(
            f"backup {manifest.backup_id}: scratch Qdrant {version} at {scratch.url}, "
            f"{len(sizes)} collection(s) in {len(rounds)} round(s)"
        )
        for names in rounds:
            try:
                round_options = restore.RestoreOptions(
                    nodes=(scratch.url,),
                    staging_dir=scratch_dir / "staging",
                    backup_id=manifest.backup_id,
                    collections=tuple(names),
                    single_copy=True,
                    timeout=options.timeout,
                )
                restored = restore.restore(client, s3_client, settings, round_options, log=log)
            except restore.RestoreError as exc:
                report["golden"].update(exc.golden)
                raise VerifyError(f"backup {manifest.backup_id} did not restore: {exc}", report) from exc
            report["golden"].update(restored.get("golden") or {})
            for name in names:
                report["collections"][name] = points = manifest.collections[name].points_exact
                log(f"{name}: {points} points, the sampled points and the golden queries match the set")
            if len(rounds) > 1:  # make room for the next round
                for name in names:
                    client.delete_collection(name)
    report["points_verified"] = sum(report["collections"].values())
    report["golden_recall"] = lowest_recall(report)
    report["seconds"] = round(time.monotonic() - started, 3)
    return report
