"""The backup and prune jobs as the timers, the CLI and the qdrant_snapshot module run them:
configuration, then the run, then its textfile metrics, written whether the run worked or not.

/etc/qdrant-ops/backup.yml, written by the qdrant_backup role (mode 0600: it may hold the API key
and, off EC2, S3 keys):

    cluster: prod
    node: prod-qdrant-1   # the name this node writes under (nodes/<node>/): IAM allows only that
    qdrant: {url: http://127.0.0.1:6333, api_key_file: /etc/qdrant-ops/api-key, ca_file: ..., timeout: 30}
    s3: {bucket: ..., prefix: qdrant-backups, region: ..., endpoint_url: ..., access_key: ...,
         secret_key: ..., part_size_mib: 8, concurrency: 8, max_attempts: 8}
    schedule_slot: 1d
    collections: []
    sample_size: 32
    golden_queries: 20    # searches per collection re-run after a restore (cluster/golden.py)
    metrics_dir: /var/lib/prometheus/node-exporter
    retention: {keep_last: 7, daily: 7, weekly: 4, monthly: 6, incomplete_max_age: 2d}
    members: [prod-qdrant-1, prod-qdrant-2, prod-qdrant-3]  # the sealer's (pruner's) node names
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml

from qdrant_ops.backup import metrics, node_part, retention, seal, verify
from qdrant_ops.backup.model import BackupSettings, check_name, parse_duration
from qdrant_ops.backup.retention import Retention
from qdrant_ops.backup.s3 import MIB, S3Settings, make_client
from qdrant_ops.client import ClusterClient, normalise_urls
from qdrant_ops.errors import ConfigError
from qdrant_ops.keyfile import check_key, read_key_file
from qdrant_ops.redact import register

DEFAULT_PATH = "/etc/qdrant-ops/backup.yml"
SECTIONS = {
    None: {
        "cluster",
        "node",
        "qdrant",
        "s3",
        "schedule_slot",
        "collections",
        "sample_size",
        "golden_queries",
        "metrics_dir",
        "retention",
        "members",
    },
    "qdrant": {"url", "api_key", "api_key_file", "ca_file", "verify", "timeout"},
    "s3": {
        "bucket",
        "prefix",
        "region",
        "endpoint_url",
        "access_key",
        "secret_key",
        "part_size_mib",
        "concurrency",
        "max_attempts",
    },
    "retention": {"keep_last", "daily", "weekly", "monthly", "incomplete_max_age"},
}


@dataclass(frozen=True)
class BackupConfig:
    settings: BackupSettings
    retention: Retention
    node_url: str
    api_key: str | None
    ca_file: str | None
    verify: bool
    timeout: float
    metrics_dir: str | None
    members: tuple[str, ...] = ()  # the cluster's node names, for the sealer (backup/seal.py)

    def client(self) -> ClusterClient:
        return ClusterClient(
            [self.node_url], self.api_key, verify=self.verify, ca_file=self.ca_file, timeout=self.timeout
        )


def _check_keys(section: dict, name: str | None, path: str) -> None:
    unknown = sorted(set(section) - SECTIONS[name])
    if unknown:
        where = f"section {name!r}" if name else "the top level"
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} in {where}; "
            f"known: {', '.join(sorted(SECTIONS[name]))}"
        )


def _int(section: dict, key: str, default: int) -> int:
    value = section.get(key, default)
    if type(value) is not int:
        raise ConfigError(f"s3.{key} must be an integer, got {value!r}")
    return value


def _s3_settings(section: dict) -> S3Settings:
    return S3Settings(
        bucket=section.get("bucket") or "",
        prefix=section.get("prefix", "qdrant-backups"),
        endpoint_url=section.get("endpoint_url") or None,
        region=section.get("region") or None,
        access_key=section.get("access_key") or None,
        secret_key=section.get("secret_key") or None,
        part_size=_int(section, "part_size_mib", 8) * MIB,
        concurrency=_int(section, "concurrency", 8),
        max_attempts=_int(section, "max_attempts", 8),
    )


def _retention(section: dict) -> Retention:
    return Retention(
        keep_last=int(section.get("keep_last", 7)),
        daily=int(section.get("daily", 7)),
        weekly=int(section.get("weekly", 4)),
        monthly=int(section.get("monthly", 6)),
        incomplete_max_age=parse_duration(section.get("incomplete_max_age", "2d"), "incomplete_max_age"),
    )


def _qdrant_url_and_timeout(section: dict) -> tuple[str, float]:
    url = section.get("url", "http://127.0.0.1:6333")
    if not isinstance(url, str):
        raise ValueError(f"qdrant.url must be one URL such as http://127.0.0.1:6333, got {url!r}")
    normalise_urls(url)
    timeout = section.get("timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
        raise ValueError(f"qdrant.timeout must be a number of seconds between 0 and 86400, got {timeout!r}")
    return url.rstrip("/"), float(timeout)


def from_dict(data: dict, path: str = "<config>") -> BackupConfig:
    """Build the config from a mapping (the file, or the module's options)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    _check_keys(data, None, path)
    qdrant, s3_section, retention = (data.get(k) or {} for k in ("qdrant", "s3", "retention"))
    for name, section in (("qdrant", qdrant), ("s3", s3_section), ("retention", retention)):
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: {name} must be a mapping")
        _check_keys(section, name, path)
    if not data.get("cluster"):
        raise ConfigError(f"{path}: set 'cluster' (the cluster name used in S3 keys)")
    if not isinstance(qdrant.get("api_key") or "", str):
        raise ConfigError(
            f"{path}: qdrant.api_key must be a string (quote it), got a {type(qdrant['api_key']).__name__}"
        )
    api_key = check_key(qdrant["api_key"], f"{path}: qdrant.api_key") if qdrant.get("api_key") else None
    register(s3_section.get("secret_key") or None)
    if qdrant.get("api_key_file"):
        api_key = read_key_file(qdrant["api_key_file"], "the API key file")
    collections = data.get("collections") or []
    if isinstance(collections, str) or not isinstance(collections, list):
        raise ConfigError(f"{path}: collections must be a list of names")
    members = data.get("members") or []
    if isinstance(members, str) or not isinstance(members, list):
        raise ConfigError(f"{path}: members must be a list of node names")
    try:
        settings = BackupSettings(
            cluster=str(data["cluster"]),
            s3=_s3_settings(s3_section),
            collections=tuple(str(c) for c in collections),
            sample_size=int(data.get("sample_size", 32)),
            golden_queries=int(data.get("golden_queries", 20)),
            slot_seconds=parse_duration(data.get("schedule_slot", "1d"), "schedule_slot"),
            node=str(data["node"]) if data.get("node") is not None else None,
        )
        policy = _retention(retention)
        url, timeout = _qdrant_url_and_timeout(qdrant)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return BackupConfig(
        settings=settings,
        retention=policy,
        node_url=url,
        api_key=api_key,
        ca_file=qdrant.get("ca_file") or None,
        verify=bool(qdrant.get("verify", True)),
        timeout=timeout,
        metrics_dir=data.get("metrics_dir") or None,
        members=tuple(seal.check_members(members)) if members else (),
    )


def read_file(path: str = DEFAULT_PATH) -> dict:
    """The config file as a mapping (the module merges its options over it)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"backup config {path} not found: the qdrant_backup role writes it, or pass --config"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read backup config {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"backup config {path} is not UTF-8 text: write it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load(path: str = DEFAULT_PATH) -> BackupConfig:
    return from_dict(read_file(path), path)


def _record(
    config: BackupConfig,
    job: str,
    started: float,
    success: bool,
    *,
    uploaded: int | None = None,
    points: int | None = None,
    golden_recall: float | None = None,
) -> None:
    if not config.metrics_dir:
        return
    try:
        metrics.write_run_metrics(
            config.metrics_dir,
            job,
            config.settings.cluster,
            success=success,
            finished=time.time(),
            duration=time.time() - started,
            uploaded_bytes=uploaded,
            points_verified=points,
            golden_recall=golden_recall,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot write the {job} metrics to {config.metrics_dir}: {exc.strerror}; fix metrics_dir or its "
            "permissions (node_exporter's textfile directory)"
        ) from None


def _record_failure(config: BackupConfig, job: str, started: float, error: BaseException) -> None:
    """Record a failed run; if even that fails, say both, the run's error first."""
    try:
        drill = getattr(error, "report", None) or {}
        _record(config, job, started, success=False, golden_recall=verify.lowest_recall(drill))
    except ConfigError as metrics_error:
        raise ConfigError(f"{error}; and the failure was not recorded: {metrics_error}") from error


@dataclass(frozen=True)
class BackupOptions:
    """What one node's backup run does, built once by the CLI (and so the timers) and qdrant_snapshot."""

    backup_id: str | None = None  # default: the current schedule slot's id
    force: bool = False  # fail, rather than keep it, when this node's part of the set exists
    collections: tuple[str, ...] = ()  # default: the config's collections (else every collection)

    def __post_init__(self) -> None:
        if self.backup_id is not None:
            check_name(self.backup_id, "backup id")
        object.__setattr__(self, "collections", tuple(self.collections))


@dataclass(frozen=True)
class PruneOptions:
    """What one prune does: with dry_run the plan only (nothing sealed, nothing deleted, no metrics)."""

    dry_run: bool = False


def run_backup(
    config: BackupConfig, options: BackupOptions, log: Callable[[str], None] = lambda _line: None
) -> dict:
    """This node's part of a set; metrics are written on success and on failure."""
    started = time.time()
    settings = replace(config.settings, collections=options.collections or config.settings.collections)
    try:
        with config.client() as client:
            part = node_part.run_node_backup(
                client,
                config.node_url,
                settings,
                make_client(settings.s3),
                backup_id=options.backup_id,
                force=options.force,
                log=log,
            )
    except BaseException as exc:
        _record_failure(config, "backup", started, exc)
        raise
    _record(
        config, "backup", started, True, uploaded=0 if part.get("skipped") else node_part.part_bytes(part)
    )
    return part


def _members(config: BackupConfig) -> tuple[str, ...]:
    if not config.members:
        raise ConfigError(
            "the sealer needs the cluster's node names: set `members` in the backup config (the "
            "qdrant_backup role writes them on the monitoring host, where the sealer and pruner run)"
        )
    return config.members


def run_seal(config: BackupConfig, log: Callable[[str], None] = lambda _line: None) -> list[dict]:
    """Seal every set that qualifies (backup/seal.py); the pruning role's job."""
    return seal.seal_pending(
        make_client(config.settings.s3), config.settings, _members(config), datetime.now(UTC), log=log
    )


def run_prune(
    config: BackupConfig, options: PruneOptions, log: Callable[[str], None] = lambda _line: None
) -> list[dict]:
    """Seal what qualifies, then delete what retention drops: only sealed sets count as complete,
    so a set waiting for its seal must not be judged before the sealer has seen it."""
    started = time.time()
    dry_run = options.dry_run
    members = _members(config)
    try:
        if not dry_run:
            seal.seal_pending(
                make_client(config.settings.s3), config.settings, members, datetime.now(UTC), log=log
            )
        plan = retention.prune(
            make_client(config.settings.s3),
            config.settings,
            config.retention,
            dry_run=dry_run,
            now=datetime.now(UTC),
        )
    except BaseException as exc:
        if not dry_run:
            _record_failure(config, "prune", started, exc)
        raise
    if not dry_run:
        _record(config, "prune", started, success=True)
    return plan


def run_verify(
    config: BackupConfig, options: verify.VerifyOptions, log: Callable[[str], None] = lambda _line: None
) -> dict:
    """A restore drill (backup/verify.py); metrics are written on success and on failure."""
    started = time.time()
    try:
        report = verify.verify_set(make_client(config.settings.s3), config.settings, options, log=log)
    except BaseException as exc:
        _record_failure(config, "backup_verify", started, exc)
        raise
    _record(
        config,
        "backup_verify",
        started,
        True,
        points=report["points_verified"],
        golden_recall=report["golden_recall"],
    )
    return report
