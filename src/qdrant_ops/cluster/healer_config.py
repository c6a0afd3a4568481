"""The healer's settings: /etc/qdrant-ops/healer.yml, written by the qdrant_backup role on the
monitoring host (mode 0600), read once and checked here. docs/self-healing.md lists every key.

    cluster: prod
    qdrant: {urls: [https://q1:6333, ...], api_key_file: /etc/qdrant-ops/healer-api-key,
             ca_file: ..., timeout: 30}
    zones: {https://q1:6333: eu-west-1a, ...}     # node URL or peer id -> zone
    enabled: true
    dry_run: false
    grace_seconds: 600
    cooldown_seconds: 3600
    transfer_method: stream_records
    transfer_timeout_seconds: 3600
    disk: {prometheus_url: https://127.0.0.1:9090, username: ..., password_file: ..., ca_file: ...,
           mountpoint: /var/lib/qdrant, headroom: 2, hosts: {q1: https://q1:6333, ...}}
    alertmanager: {url: https://127.0.0.1:9093, username: ..., password_file: ..., ca_file: ...}
    state_file: /var/lib/qdrant-ops/healer.json
    metrics_dir: /var/lib/prometheus/node-exporter

Without `disk` the free space is not checked; without `alertmanager` planned work is not seen. The
role always writes both; a person trying the healer by hand may leave them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qdrant_ops.client import normalise_urls
from qdrant_ops.cluster.healer import Policy
from qdrant_ops.cluster.replicas import METHODS
from qdrant_ops.errors import ConfigError
from qdrant_ops.keyfile import read_key_file
from qdrant_ops.silences import WebService

DEFAULT_PATH = "/etc/qdrant-ops/healer.yml"
KEYS = {
    None: {
        "cluster",
        "qdrant",
        "zones",
        "enabled",
        "dry_run",
        "grace_seconds",
        "cooldown_seconds",
        "transfer_method",
        "transfer_timeout_seconds",
        "disk",
        "alertmanager",
        "state_file",
        "metrics_dir",
    },
    "qdrant": {"urls", "api_key_file", "ca_file", "timeout"},
    "disk": {"prometheus_url", "username", "password_file", "ca_file", "mountpoint", "headroom", "hosts"},
    "alertmanager": {"url", "username", "password_file", "ca_file"},
}


@dataclass(frozen=True)
class DiskSource:
    """Where the nodes' free disk space is read: node_exporter's figures in Prometheus, by the
    `host` label the prometheus role gives each target, mapped to node URLs."""

    prometheus: WebService
    mountpoint: str
    hosts: dict[str, str]  # Prometheus `host` label -> node REST URL


@dataclass(frozen=True)
class HealerConfig:
    cluster: str
    urls: tuple[str, ...]
    api_key: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout: float = 30.0
    zones: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    dry_run: bool = False
    policy: Policy = field(default_factory=Policy)
    method: str = "stream_records"
    transfer_timeout: float = 3600.0
    disk: DiskSource | None = None
    alertmanager: WebService | None = None
    state_file: Path = Path("/var/lib/qdrant-ops/healer.json")
    metrics_dir: Path | None = None


def load(path: str = DEFAULT_PATH) -> HealerConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"healer config {path} not found: the qdrant_backup role writes it, or pass --config"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read healer config {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return from_dict(data, path)


def from_dict(data, path: str = "<healer config>") -> HealerConfig:
    section = _section(data, None, path)
    qdrant = _section(section.get("qdrant") or {}, "qdrant", path)
    if not section.get("cluster") or not isinstance(section["cluster"], str):
        raise ConfigError(f"{path}: set 'cluster' to the cluster's name")
    try:
        urls = normalise_urls(qdrant.get("urls") or [])
    except ConfigError as exc:
        raise ConfigError(f"{path}: qdrant.urls: {exc}") from None
    if not urls:
        raise ConfigError(f"{path}: qdrant.urls must list the nodes' REST URLs")
    policy = Policy(
        grace=_seconds(section, "grace_seconds", 600, path),
        cooldown=_seconds(section, "cooldown_seconds", 3600, path, allow_zero=True),
        disk_headroom=1.0,
    )
    disk = _disk(section.get("disk"), path)
    if disk is not None:
        headroom = _number(section["disk"], "headroom", 2.0, path, "disk.")
        if headroom < 1:
            raise ConfigError(
                f"{path}: disk.headroom must be at least 1 (a replica needs its own size), got {headroom}"
            )
        policy = Policy(policy.grace, policy.cooldown, headroom)
    method = section.get("transfer_method", "stream_records")
    if method not in METHODS:
        raise ConfigError(f"{path}: transfer_method must be one of {', '.join(METHODS)}, got {method!r}")
    return HealerConfig(
        cluster=section["cluster"],
        urls=urls,
        api_key=read_key_file(qdrant["api_key_file"], "the healer's API key file")
        if qdrant.get("api_key_file")
        else None,
        ca_file=_optional_str(qdrant, "ca_file", path, "qdrant."),
        timeout=_seconds(qdrant, "timeout", 30, path, "qdrant."),
        zones=_zones(section.get("zones"), path),
        enabled=_bool(section, "enabled", True, path),
        dry_run=_bool(section, "dry_run", False, path),
        policy=policy,
        method=method,
        transfer_timeout=_seconds(section, "transfer_timeout_seconds", 3600, path),
        disk=disk,
        alertmanager=_http_source(section.get("alertmanager"), "alertmanager", "url", path, "Alertmanager"),
        state_file=Path(_optional_str(section, "state_file", path) or "/var/lib/qdrant-ops/healer.json"),
        metrics_dir=Path(section["metrics_dir"]) if section.get("metrics_dir") else None,
    )


def _section(data, name: str | None, path: str) -> dict:
    where = f"{path}: {name}" if name else f"{path}: the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(map(str, data)) - KEYS[name])
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys {', '.join(unknown)}: the keys are {', '.join(sorted(KEYS[name]))}"
        )
    return data


def _number(data: dict, key: str, default: float, path: str, prefix: str = "") -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{path}: {prefix}{key} must be a number, got {value!r}")
    return float(value)


def _seconds(
    data: dict, key: str, default: float, path: str, prefix: str = "", *, allow_zero: bool = False
) -> float:
    value = _number(data, key, default, path, prefix)
    if value < 0 or (value == 0 and not allow_zero) or value > 30 * 86400:
        low = "0" if allow_zero else "more than 0"
        raise ConfigError(
            f"{path}: {prefix}{key} must be {low} and at most 30 days in seconds, got {value:g}"
        )
    return value


def _bool(data: dict, key: str, default: bool, path: str) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: {key} must be true or false, got {value!r}")
    return value


def _optional_str(data: dict, key: str, path: str, prefix: str = "") -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: {prefix}{key} must be a string, got {value!r}")
    return value or None


def _zones(data, path: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, str) and v.strip() for v in data.values()):
        raise ConfigError(f"{path}: zones must map node URLs or peer ids to zone names")
    return {str(k): v.strip() for k, v in data.items()}


def _http_source(data, name: str, url_key: str, path: str, title: str) -> WebService | None:
    if data is None:
        return None
    data = _section(data, name, path)
    url = _optional_str(data, url_key, path, f"{name}.")
    if not url or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}: {name}.{url_key} must be an http(s) URL, got {url!r}")
    password_file = _optional_str(data, "password_file", path, f"{name}.")
    return WebService(
        url,
        username=_optional_str(data, "username", path, f"{name}."),
        password=read_key_file(password_file, f"the {name} password file") if password_file else None,
        ca_file=_optional_str(data, "ca_file", path, f"{name}."),
        name=title,
    )


def _disk(data, path: str) -> DiskSource | None:
    if data is None:
        return None
    data = _section(data, "disk", path)
    hosts = data.get("hosts")
    if not isinstance(hosts, dict) or not hosts or not all(isinstance(v, str) for v in hosts.values()):
        raise ConfigError(f"{path}: disk.hosts must map each node's Prometheus host label to its REST URL")
    mountpoint = _optional_str(data, "mountpoint", path, "disk.") or "/var/lib/qdrant"
    if not mountpoint.startswith("/") or '"' in mountpoint or "\\" in mountpoint:
        raise ConfigError(f"{path}: disk.mountpoint must be an absolute path, got {mountpoint!r}")
    return DiskSource(
        _http_source(data, "disk", "prometheus_url", path, "Prometheus"),
        mountpoint,
        {str(k): v for k, v in hosts.items()},
    )
