"""One run of the healer (`qdrant-ops cluster heal`, every minute from qdrant-healer.timer on the
monitoring host): observe the cluster, decide (healer.decide), act unless refused or in dry-run,
then keep the state file, write the textfile metrics and log every decision (the journal).

Who wrote what each decision is taken from: peers, leader and placement come from Qdrant's raft
state; "unreachable" needs both this host (nothing answers on the peer's REST port, nor accepts a
connection on it or on p2p) and the raft leader (it cannot send to the peer: the leader's
message_send_failures, which Qdrant clears on the next successful send, src/consensus.rs) to agree,
so a node cut off from the monitoring host alone is never taken for dead. Planned work comes from
Alertmanager's silences, free disk from node_exporter through Prometheus, replica sizes from the
source node's telemetry. The state file is the healer's own (root, 0600).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from qdrant_ops import private_file, prometheus
from qdrant_ops.client import ClusterClient, QdrantApiError
from qdrant_ops.cluster import healer_metrics, replicas, zones
from qdrant_ops.cluster.healer import Decision, HealerState, Observation, decide
from qdrant_ops.cluster.healer_config import HealerConfig
from qdrant_ops.cluster.health import shard_placement
from qdrant_ops.errors import QdrantOpsError
from qdrant_ops.polling import wait_until
from qdrant_ops.silences import SilenceError, planned_work_holding


class HealerError(QdrantOpsError):
    """A run could not observe or finish its action; the next run tries again."""


@dataclass
class RunResult:
    decision: Decision | None
    acted: bool = False
    notes: list[str] = field(default_factory=list)


def run_once(
    config: HealerConfig, log: Callable[[str], None], client: ClusterClient | None = None
) -> RunResult:
    """Observe, decide, act; the state and the metrics are written whatever happens."""
    state, result, success = load_state(config.state_file, log), RunResult(None), False
    try:
        if not config.enabled:
            log("healer: switched off (enabled: false); nothing observed")
            success = True
            return result
        own = client is None
        client = client or ClusterClient(
            config.urls, config.api_key, ca_file=config.ca_file, timeout=config.timeout
        )
        try:
            result = _observe_and_act(config, client, state, log)
        finally:
            if own:
                client.close()
        success = True
        return result
    finally:
        save_state(config.state_file, state)
        if config.metrics_dir is not None:
            healer_metrics.write(config, state, result.decision, success=success)


def _observe_and_act(config: HealerConfig, client: ClusterClient, state: HealerState, log) -> RunResult:
    observation, notes = observe(client, config)
    for note in notes:
        log(f"healer: {note}")
    state.seen(observation)
    decision = decide(observation, state, config.policy)
    result = RunResult(decision, notes=notes)
    for peer, left in decision.waiting.items():
        log(f"healer: peer {peer} unreachable; acting in {left:.0f} s unless it comes back (grace period)")
    if not decision.dead:
        return result
    plan = describe(decision)
    if decision.refusals:
        for reason, why in decision.refusals.items():
            log(f"healer: refusing ({reason}): {why}")
        log(f"healer: would have done: {plan}")
        return result
    if config.dry_run:
        log(f"healer: dry run, would now: {plan}")
        return result
    log(f"healer: acting: {plan}")
    act(client, config, decision, state, log)
    result.acted = True
    log(f"healer: done: {plan}")
    return result


def describe(decision: Decision) -> str:
    copies = "; ".join(
        f"{t.collection} shard {t.shard_id} peer {t.from_peer} -> {t.to_peer}" for t in decision.replications
    )
    return (
        f"re-create {len(decision.replications)} replica(s) of dead peer(s) {list(decision.dead)}"
        + (f" ({copies})" if copies else "")
        + f", then remove peer(s) {list(decision.remove)}"
    )


# -- observing ------------------------------------------------------------------------------------
def observe(client: ClusterClient, config: HealerConfig) -> tuple[Observation, list[str]]:
    status = client.cluster_status()
    if status.get("status") != "enabled":
        raise HealerError("cluster mode is off on the nodes: there are no peers to heal")
    peers = {int(pid): info["uri"] for pid, info in status["peers"].items()}
    leader, unreachable, notes = _reachability(client, status)
    views = _collections(client, notes)
    live = sorted(set(peers) - unreachable)
    free, sizes = _disk(client, config, peers, live, notes) if unreachable else (None, {})
    observation = Observation(
        now=time.time(),
        peers=frozenset(peers),
        leader=leader,
        unreachable=unreachable,
        placements={name: shard_placement(view) for name, (_, view) in views.items()},
        factors={name: factor for name, (factor, _) in views.items()},
        transfers=sum(len(view.get("shard_transfers") or []) for _, view in views.values()),
        planned_work=_planned_work(config, notes),
        free_bytes=free,
        shard_bytes=sizes,
        zones=zones.resolve(client, config.zones, skip_silent=True),
    )
    return observation, notes


def _collections(client: ClusterClient, notes: list[str]) -> dict[str, tuple[int, dict]]:
    """Each collection's replication factor and cluster view. The view is the answering node's own;
    the factor comes from the collection's config, which Qdrant reads through its shards: with
    whole shards unreachable that fails (HTTP 500), and the most replicas any shard has stands in
    for it (the decision refuses in such a state anyway, but must say why rather than fail)."""
    views = {}
    for name in client.collection_names():
        try:
            view = client.collection_cluster(name)
            info = client.collection_info(name)
        except QdrantApiError as exc:
            if exc.status == 404:  # dropped meanwhile
                continue
            view = client.collection_cluster(name)
            factor = max(Counter(r["shard_id"] for r in shard_placement(view)).values(), default=1)
            notes.append(
                f"{name}: its config cannot be read ({exc.status}); replication factor taken as {factor}"
            )
            views[name] = (factor, view)
            continue
        if info is not None:
            views[name] = (int(info["config"]["params"].get("replication_factor") or 1), view)
    return views


def _reachability(client: ClusterClient, status: dict) -> tuple[int | None, frozenset[int], list[str]]:
    """(leader as seen from here, unreachable peers, notes). Without a leader this host can ask,
    silence from here is all there is; the decision never acts then (no_leader)."""
    peers = status["peers"]
    # Without a leader Qdrant reports leader 0 (raft-rs's INVALID_ID), not null: seen in the lab
    # drill with two of three nodes stopped. Only a current peer is a leader.
    leader = (status.get("raft_info") or {}).get("leader")
    leader = leader if str(leader) in peers else None
    silent = sorted(int(p) for p in peers if replicas.sign_of_life(client, int(p), peers) is None)
    if not silent:
        return leader, frozenset(), []
    if leader is None or leader in silent:
        note = f"peers {silent} do not answer here, nor does a raft leader that could say if it reaches them"
        return None, frozenset(silent), [note]
    leader_url = replicas.peer_rest_url(peers[str(leader)]["uri"], client.urls[0])
    failing = {
        _endpoint(uri) for uri in client.cluster_status(node=leader_url).get("message_send_failures") or {}
    }
    unreachable = frozenset(p for p in silent if _endpoint(peers[str(p)]["uri"]) in failing)
    notes = [
        f"peer {p} does not answer here, but the raft leader (peer {leader}) reaches it: not counted as down"
        for p in silent
        if p not in unreachable
    ]
    return leader, unreachable, notes


def _endpoint(uri: str) -> tuple[str, str, int | None]:
    parts = urlsplit(uri)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _planned_work(config: HealerConfig, notes: list[str]) -> tuple[str, ...] | None:
    if config.alertmanager is None:
        return ()
    try:
        return tuple(planned_work_holding(config.alertmanager, config.cluster))
    except (SilenceError, ValueError, AttributeError, TypeError) as exc:
        notes.append(f"cannot read the planned-work silences: {exc}")
        return None


def _disk(client, config: HealerConfig, peers: dict[int, str], live: list[int], notes: list[str]):
    """Free bytes on each live peer's data disk (node_exporter via Prometheus) and each shard's
    estimated replica size (the largest its live holders report), or (None, {}) without `disk`."""
    if config.disk is None:
        return None, {}
    free: dict[int, float] = {}
    try:
        by_host = prometheus.free_bytes_by_host(config.disk.prometheus, config.disk.mountpoint)
    except SilenceError as exc:
        notes.append(f"cannot read the nodes' free disk space from Prometheus: {exc}")
        by_host = {}
    for host, url in config.disk.hosts.items():
        peer = client.probe_peer_id(url) if host in by_host else None
        if peer is not None:
            free[peer] = by_host[host]
    sizes: dict[tuple[str, int], float] = {}
    for peer in live:
        try:
            telemetry = client.telemetry(replicas.peer_rest_url(peers[peer], client.urls[0]))
        except QdrantOpsError as exc:
            notes.append(f"no shard sizes from peer {peer}: {exc}")
            continue
        for collection in (telemetry.get("collections") or {}).get("collections") or []:
            for shard in collection.get("shards") or []:
                local = shard.get("local") or {}
                size = (local.get("vectors_size_bytes") or 0) + (local.get("payloads_size_bytes") or 0)
                key = (collection["id"], int(shard["id"]))
                if local:
                    sizes[key] = max(sizes.get(key, 0), float(size))
    return free, sizes


# -- acting -------------------------------------------------------------------------------------
def act(client: ClusterClient, config: HealerConfig, decision: Decision, state: HealerState, log) -> None:
    """Copy each replica, one at a time (a node takes one incoming transfer by default), wait until
    it is Active, then remove the dead peers (replicas.remove_peer checks again that nothing
    answers for them and that no shard would lose its last Active replica)."""
    state.acting_on = decision.dead
    save_state(config.state_file, state)
    for item in decision.replications:
        item.start(client, "replicate_shard", config.method)
        log(f"healer: copying {item.collection} shard {item.shard_id} ({item.from_peer} -> {item.to_peer})")
        started = time.monotonic()
        wait_until(
            lambda item=item, started=started: _copy_missing(client, item, time.monotonic() - started),
            timeout=config.transfer_timeout,
            interval=1,
            error=lambda missing: HealerError(
                f"copy not finished after {config.transfer_timeout:.0f} s: {missing}"
            ),
        )
    for peer in decision.remove:
        removed = replicas.remove_peer(client, peer)
        log(f"healer: peer {peer} {'removed' if removed else 'was already gone'}")
    state.acting_on, state.last_action, state.actions = (), time.time(), state.actions + 1


def _copy_missing(client: ClusterClient, item: replicas.ShardTransfer, elapsed: float) -> str | None:
    view = client.collection_cluster(item.collection)
    replica = next(
        (r for r in shard_placement(view) if (r["shard_id"], r["peer_id"]) == (item.shard_id, item.to_peer)),
        None,
    )
    running = [t for t in view.get("shard_transfers") or [] if t.get("shard_id") == item.shard_id]
    if replica and replica["state"] == "Active" and not running:
        return None
    if not running and replica is None and elapsed > 10:
        raise HealerError(
            f"the copy of {item.collection} shard {item.shard_id} to peer {item.to_peer} ended without a "
            "replica there: see that peer's Qdrant log; the next run plans again"
        )
    state = replica["state"] if replica else "not there yet"
    return f"{item.collection} shard {item.shard_id} on peer {item.to_peer}: {state}"


# -- the state file -------------------------------------------------------------------------------
def load_state(path: Path, log) -> HealerState:
    try:
        data = json.loads(path.read_text())
        return HealerState(
            unreachable_since={int(k): float(v) for k, v in data.get("unreachable_since", {}).items()},
            last_action=None if data.get("last_action") is None else float(data["last_action"]),
            acting_on=tuple(int(p) for p in data.get("acting_on", ())),
            actions=int(data.get("actions", 0)),
        )
    except FileNotFoundError:
        return HealerState()
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        # Starting afresh only delays an action (the grace period restarts); it never hastens one.
        log(f"healer: state file {path} unreadable ({exc}): starting afresh")
        return HealerState()


def save_state(path: Path, state: HealerState) -> None:
    data = {
        "unreachable_since": {str(k): v for k, v in state.unreachable_since.items()},
        "last_action": state.last_action,
        "acting_on": list(state.acting_on),
        "actions": state.actions,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        private_file.write_json(path, data)
    except OSError as exc:
        # Without its memory the healer would restart every grace period on each run: it stops.
        raise HealerError(
            f"cannot write the healer's state file {path}: {exc.strerror or exc}; make its directory "
            "writable for the healer (qdrant-healer.service's ReadWritePaths, state_file in its settings)"
        ) from None
