"""Jinja filters for the qdrant role's health checks (kept in Python: nested loops over shards
do not read well, or type well, in Jinja)."""

from __future__ import annotations

import hashlib
import hmac

# The one definition of a healthy replica, shared with the CLI and the modules, so a rolling
# restart and `qdrant-ops cluster status` never disagree (the controller's venv has qdrant_ops).
from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

try:
    from qdrant_ops.cluster.health import shard_placement, unhealthy_replicas
    from qdrant_ops.cluster.standby_identity import scoped_token
except ImportError:  # the filters that need it say so when they are called
    shard_placement = unhealthy_replicas = scoped_token = None


def _require_qdrant_ops(filter_name: str) -> None:
    if scoped_token is None:
        raise AnsibleFilterError(
            f"{filter_name} needs the qdrant-ops package on the controller: run ansible from the "
            "project's virtualenv (make venv), or pip install the qdrant-ops package"
        )


def qdrant_unhealthy_replicas(results) -> list[str]:
    """From `uri` results of GET /collections/{c}/cluster (a loop's `results`, or one result),
    one line per collection that answered badly or has a replica not in HEALTHY_REPLICA_STATES."""
    _require_qdrant_ops("qdrant_unhealthy_replicas")
    items = results.get("results", [results]) if isinstance(results, dict) else list(results)
    problems = []
    for result in items:
        name = result.get("item", "?")
        body = (result.get("json") or {}).get("result") or {}
        if result.get("status") != 200 or not body:
            problems.append(f"{name}: HTTP {result.get('status', 'no answer')}")
            continue
        bad = [
            f"shard {r['shard_id']} on peer {r['peer_id']} {r['state']}"
            for r in unhealthy_replicas(shard_placement({"peer_id": None, **body}))
        ]
        if bad:
            problems.append(f"{name}: {', '.join(bad)}")
    return problems


def qdrant_rest_urls(hosts, hostvars) -> list[str]:
    """REST URLs of inventory hosts as the controller reaches them: ansible_host (else the name),
    https unless the host's qdrant_tls_enabled is false, its qdrant_http_port (default 6333). The
    one place playbooks get node URLs from."""
    urls = []
    for host in hosts:
        facts = hostvars[host]
        scheme = "https" if boolean(facts.get("qdrant_tls_enabled", True), strict=False) else "http"
        port = int(facts.get("qdrant_http_port") or 6333)
        urls.append(f"{scheme}://{facts.get('ansible_host') or host}:{port}")
    return urls


def qdrant_node_zones(hosts, hostvars) -> dict[str, str]:
    """Each host's qdrant_zone (Terraform writes the availability zone) keyed by its REST URL, for
    the modules' `zones` option; hosts without one are left out (each a zone of its own)."""
    return {
        url: str(hostvars[host]["qdrant_zone"])
        for host, url in zip(hosts, qdrant_rest_urls(hosts, hostvars), strict=True)
        if hostvars[host].get("qdrant_zone")
    }


BCRYPT_ALPHABET = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def web_password_hash(password: str, salt_key: str, seed: str, rounds: int = 10) -> str:
    """bcrypt hash for a web.config.file's basic_auth_users (Prometheus, Alertmanager). The salt is
    an HMAC of `seed` (host and user) and the password under `salt_key`, a random secret kept on
    the controller: a second run writes the same file (a fresh salt each run would change the file,
    and the play, every time), yet nobody without the key can compute a salt in advance. bcrypt's
    22-character salt carries 128 bits: its last character takes one of four values."""
    if len(salt_key or "") < 16:
        raise ValueError(
            "web_password_hash needs a salt key of at least 16 characters (the roles generate one)"
        )
    try:
        import bcrypt  # noqa: PLC0415 - controller-only dependency, needed by this filter alone
    except ImportError as exc:
        raise RuntimeError(
            "web_password_hash needs the bcrypt package on the controller: pip install bcrypt"
        ) from exc
    digest = hmac.new(salt_key.encode(), f"{seed}\0{password}".encode(), hashlib.sha256).digest()
    last = BCRYPT_ALPHABET[(digest[21] % 4) * 16]
    salt = bytes(BCRYPT_ALPHABET[b % 64] for b in digest[:21]) + bytes([last])
    return bcrypt.hashpw(password.encode(), b"$2b$%02d$" % rounds + salt).decode()


def qdrant_standby_token(primary_key: str, collections: list[str], subject: str) -> str:
    """The standby's JWT on the primary: rw on the collections it syncs, nothing else
    (qdrant_ops.cluster.standby_identity.scoped_token)."""
    _require_qdrant_ops("qdrant_standby_token")
    return scoped_token(primary_key, collections, subject)


class FilterModule:
    def filters(self):
        return {"qdrant_unhealthy_replicas": qdrant_unhealthy_replicas, "qdrant_rest_urls": qdrant_rest_urls,
                "qdrant_node_zones": qdrant_node_zones, "web_password_hash": web_password_hash,
                "qdrant_standby_token": qdrant_standby_token}  # fmt: skip
