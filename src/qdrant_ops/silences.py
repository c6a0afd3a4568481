"""Alertmanager silences for planned work, so that a rebalance, drain, restore or rolling upgrade
pages nobody for the replicas it takes out of service on purpose.

A silence is scoped: to one cluster (`cluster` label, which the prometheus role puts on every
series), to the alerts the work causes by design (dead replicas, replication below target; a
restarting node's QdrantNodeDown for that host only), and in time (it ends by itself after
`duration` even when the run is killed and never expires it). Everything else keeps paging: a node
that stops during a rebalance still raises QdrantNodeDown. Alertmanager API v2 (POST
/api/v2/silences, DELETE /api/v2/silence/{id}); see docs/monitoring.md, "Planned work".
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from qdrant_ops.errors import ConfigError, QdrantOpsError

# What moving, copying or recovering replicas raises by design (files/alerts/qdrant.rules.yml).
REPLICA_WORK_ALERTS = ("QdrantDeadReplicas", "QdrantReplicationBelowTarget")
CREATED_BY = "qdrant-ops"
LOG = logging.getLogger(__name__)


class SilenceError(QdrantOpsError):
    """Alertmanager (or Prometheus, for the healer) refused or did not answer."""


@dataclass(frozen=True)
class WebService:
    """A web service of the monitoring host (Alertmanager; Prometheus for the healer) behind the
    monitoring web user and the cluster CA."""

    url: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout: float = 10.0
    name: str = "Alertmanager"

    def __repr__(self) -> str:  # never the password
        return f"{self.name}({self.url!r})"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        auth = (self.username or "", self.password) if self.password else None
        try:
            verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
        except OSError as exc:
            raise SilenceError(
                f"cannot read the CA file {self.ca_file} for {self.name}: {exc.strerror or exc}"
            ) from None
        try:
            with httpx.Client(
                base_url=self.url.rstrip("/"), auth=auth, verify=verify, timeout=self.timeout
            ) as http:
                response = http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SilenceError(
                f"{self.name} at {self.url} did not answer: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise SilenceError(
                f"{method} {path} on {self.name} {self.url} failed with HTTP {response.status_code}: "
                f"{response.text.strip()[:300]}"
                + (" (check the web user and password)" if response.status_code == 401 else "")
            )
        return response


Alertmanager = WebService


def matchers(cluster: str, alerts: Sequence[str], labels: Mapping[str, str] | None = None) -> list[dict]:
    """Alertmanager matchers: the cluster, one of `alerts`, and each extra label exactly."""
    if not cluster or not alerts:
        raise ConfigError("a silence needs a cluster name and at least one alert name")
    exact = {"cluster": cluster, **(labels or {})}
    found = [
        {"name": name, "value": value, "isRegex": False, "isEqual": True} for name, value in exact.items()
    ]
    pattern = "|".join(sorted(set(alerts)))
    return [{"name": "alertname", "value": pattern, "isRegex": len(set(alerts)) > 1, "isEqual": True}, *found]


def add(
    manager: Alertmanager,
    cluster: str,
    alerts: Sequence[str],
    duration: float,
    *,
    comment: str,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Create a silence from now for `duration` seconds; its id."""
    if duration <= 0:
        raise ConfigError(f"a silence needs a positive duration, not {duration} s")
    now = datetime.datetime.now(datetime.UTC)
    body = {
        "matchers": matchers(cluster, alerts, labels),
        "startsAt": now.isoformat(),
        "endsAt": (now + datetime.timedelta(seconds=duration)).isoformat(),
        "createdBy": CREATED_BY,
        "comment": comment,
    }
    return manager.request("POST", "/api/v2/silences", json=body).json()["silenceID"]


def expire(manager: Alertmanager, silence_id: str) -> None:
    """End a silence now; one already ended or gone is fine."""
    manager.request("DELETE", f"/api/v2/silence/{silence_id}")


@contextlib.contextmanager
def planned_work(
    manager: Alertmanager | None,
    cluster: str,
    *,
    comment: str,
    duration: float,
    alerts: Sequence[str] = REPLICA_WORK_ALERTS,
    labels: Mapping[str, str] | None = None,
) -> Iterator[str | None]:
    """Silence `alerts` of `cluster` while the block runs, then expire the silence. No manager: no
    silence. An Alertmanager that refuses is logged and the work goes on (monitoring being down must
    not stop a repair); the silence id, or None."""
    silence_id = None
    if manager is not None:
        try:
            silence_id = add(manager, cluster, alerts, duration, comment=comment, labels=labels)
        except SilenceError as exc:
            LOG.warning("no silence for the planned work, its alerts may page: %s", exc)
    try:
        yield silence_id
    finally:
        if silence_id:
            try:
                expire(manager, silence_id)
            except SilenceError as exc:
                LOG.warning("the silence %s stays until it ends by itself: %s", silence_id, exc)


def planned_work_holding(manager: Alertmanager, cluster: str) -> list[str]:
    """The comments of the active planned-work silences of `cluster` (made by playbooks/tasks/
    silence.yml or `planned_work`): the cluster-wide lock that a restore,
    drain, rebalance, node replacement or rolling upgrade holds while it runs, and that ends by
    itself when the run dies (the silence's end time)."""
    found = manager.request("GET", "/api/v2/silences", params={"filter": f'cluster="{cluster}"'}).json()
    return sorted(
        str(item.get("comment") or "planned work")
        for item in found
        if (item.get("status") or {}).get("state") == "active" and item.get("createdBy") == CREATED_BY
    )
