"""The healer's decision (pure): given what one run observed and what earlier runs remembered,
whether to re-create a lost peer's replicas and remove it, or why not.

Qdrant never re-creates replicas by itself: a dead peer's replicas stay Dead until someone acts
(docs/qdrant-behaviour.md §1). The healer acts when a peer has been unreachable for longer than a
grace period: it copies every replica that peer held to healthy peers (the zone rule of
cluster/zones.py, through replicas.plan_replication), and once those are Active removes the peer
with the guards of replicas.check_removable. It refuses, naming the reason, whenever acting is a
person's decision or could make things worse (REASONS). The run around it is healer_run.py;
docs/self-healing.md describes both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from qdrant_ops.cluster.health import HEALTHY_REPLICA_STATES
from qdrant_ops.cluster.replicas import ReplicationError, ShardTransfer, plan_replication
from qdrant_ops.cluster.zones import Zones

# Every reason the healer can refuse for, as its metrics label them (each is always exported, 0 or 1).
REASONS = {
    "no_leader": "no raft leader",
    "quorum": "a majority of peers is unreachable",
    "too_many_down": "more peers down than the smallest replication factor allows",
    "planned_work": "planned work holds the cluster",
    "lock_unknown": "cannot tell whether planned work holds the cluster",
    "busy": "shard transfers or replicas being rebuilt",
    "cooldown": "acted within the cooldown",
    "last_copy": "a dead peer holds the last Active replica of a shard",
    "cannot_place": "the healthy peers cannot hold the replicas",
    "disk": "the healthy peers' disks cannot hold the replicas",
    "disk_unknown": "the healthy peers' free disk space is unknown",
}
# A replica on a peer that is unreachable but still inside its grace period: it counts as held (the
# peer may come back) but cannot be copied from.
UNREACHABLE_STATE = "Unreachable"
RUNBOOK = "docs/runbooks.md#qdranthealerrefusing"


@dataclass(frozen=True)
class Observation:
    """What one run saw. `unreachable`: peers nothing answers for, on REST (from here) and on p2p
    (the raft leader cannot send to them). `planned_work`: what holds the cluster (the comments of
    the planned-work silences), None when that could not be read. `free_bytes`: free space of each
    reachable peer's data disk (a peer missing: unknown), None when the disk check is off.
    `shard_bytes`: the estimated size of one replica of each (collection, shard)."""

    now: float
    peers: frozenset[int]
    leader: int | None
    unreachable: frozenset[int]
    placements: Mapping[str, list[dict]]
    factors: Mapping[str, int]
    transfers: int = 0
    planned_work: tuple[str, ...] | None = ()
    free_bytes: Mapping[int, float] | None = None
    shard_bytes: Mapping[tuple[str, int], float] = field(default_factory=dict)
    zones: Zones = field(default_factory=dict)


@dataclass
class HealerState:
    """What the healer remembers between runs (healer_run keeps it in a JSON file only it writes):
    since when each peer has been unreachable, when its last action ended, and the action under way
    (set before it starts, cleared when it ends, so an interrupted action is finished by the next
    run, cooldown or not)."""

    unreachable_since: dict[int, float] = field(default_factory=dict)
    last_action: float | None = None
    acting_on: tuple[int, ...] = ()
    actions: int = 0

    def seen(self, observation: Observation) -> None:
        """Start the clock for peers newly unreachable; forget peers reachable again or gone."""
        self.unreachable_since = {
            peer: self.unreachable_since.get(peer, observation.now)
            for peer in sorted(observation.unreachable & observation.peers)
        }


@dataclass(frozen=True)
class Policy:
    grace: float = 600.0  # seconds a peer must stay unreachable before the healer acts
    cooldown: float = 3600.0  # no new action within this many seconds of the last one
    disk_headroom: float = 2.0  # a new replica needs this many times its estimated size free


@dataclass(frozen=True)
class Decision:
    dead: tuple[int, ...]  # unreachable for longer than the grace period
    waiting: Mapping[int, float]  # unreachable, seconds left of the grace period
    missing_replicas: int  # replicas short of the factors, counting unreachable peers' as missing
    refusals: Mapping[str, str] = field(default_factory=dict)  # reason -> why, in a sentence
    replications: tuple[ShardTransfer, ...] = ()
    remove: tuple[int, ...] = ()

    @property
    def acts(self) -> bool:
        return bool(self.remove) and not self.refusals


def decide(observation: Observation, state: HealerState, policy: Policy) -> Decision:
    """Whether to heal now. `state.seen(observation)` must have run first."""
    obs = observation
    since = state.unreachable_since
    dead = tuple(sorted(p for p in obs.unreachable if obs.now - since.get(p, obs.now) >= policy.grace))
    waiting = {
        p: policy.grace - (obs.now - since.get(p, obs.now)) for p in sorted(obs.unreachable) if p not in dead
    }
    missing = missing_replicas(obs)
    if not dead:
        return Decision(dead, waiting, missing)
    refusals = _standing_refusals(obs, state, policy, dead)
    orphans = _last_copies(obs, dead)
    if orphans:
        refusals["last_copy"] = (
            f"{', '.join(orphans)} has no Active replica on a reachable peer: removing the dead peer "
            f"deletes that data; bring the node back or restore from a backup ({RUNBOOK})"
        )
    plan: list[ShardTransfer] = []
    try:
        plan = plan_replication(
            _placements_for_plan(obs, dead), dict(obs.factors), _live(obs), zones=obs.zones
        )
    except ReplicationError as exc:
        refusals["cannot_place"] = f"{exc} ({RUNBOOK})"
    refusals.update(_disk_refusals(obs, plan, policy))
    return Decision(dead, waiting, missing, refusals, tuple(plan), dead)


def _last_copies(obs: Observation, dead: tuple[int, ...]) -> list[str]:
    """Shards a dead peer holds that have no Active replica on a reachable peer."""
    orphans = []
    for name, placement in sorted(obs.placements.items()):
        for shard in sorted({r["shard_id"] for r in placement if r["peer_id"] in dead}):
            if not any(
                r["shard_id"] == shard
                and r["peer_id"] not in obs.unreachable
                and r["state"] in HEALTHY_REPLICA_STATES
                for r in placement
            ):
                orphans.append(f"{name} shard {shard}")
    return orphans


def _live(obs: Observation) -> list[int]:
    return sorted(obs.peers - obs.unreachable)


def _placements_for_plan(obs: Observation, dead: tuple[int, ...]) -> dict[str, list[dict]]:
    """The dead peers' replicas dropped (they are what is re-created); a waiting peer's replicas
    kept as held but not as a source."""
    return {
        name: [
            {**r, "state": UNREACHABLE_STATE} if r["peer_id"] in obs.unreachable else r
            for r in placement
            if r["peer_id"] not in dead
        ]
        for name, placement in obs.placements.items()
    }


def _standing_refusals(
    obs: Observation, state: HealerState, policy: Policy, dead: tuple[int, ...]
) -> dict[str, str]:
    refusals: dict[str, str] = {}
    peers, down = len(obs.peers), len(obs.unreachable)
    if obs.leader is None:
        refusals["no_leader"] = (
            f"no raft leader: restoring the cluster's quorum is a person's decision ({RUNBOOK})"
        )
    if (peers - down) * 2 <= peers:
        refusals["quorum"] = (
            f"{down} of {peers} peers are unreachable, a majority: restoring quorum is a person's decision "
            f"({RUNBOOK})"
        )
    smallest = min(obs.factors.values(), default=None)
    if smallest is not None and down >= smallest:
        refusals["too_many_down"] = (
            f"{down} peer(s) unreachable ({', '.join(map(str, sorted(obs.unreachable)))}) and the smallest "
            f"replication factor is {smallest}: some shards may have no copy left; a person decides "
            f"({RUNBOOK})"
        )
    if obs.planned_work is None:
        refusals["lock_unknown"] = (
            "cannot read the planned-work silences from Alertmanager, so a restore, drain or rolling "
            "upgrade may be running: bring Alertmanager back"
        )
    elif obs.planned_work:
        refusals["planned_work"] = f"planned work holds the cluster: {'; '.join(obs.planned_work)}"
    busy = _busy(obs)
    if busy:
        refusals["busy"] = f"{busy}: wait until that work ends"
    resuming = bool(state.acting_on) and set(state.acting_on) <= set(dead)
    if not resuming and state.last_action is not None and obs.now - state.last_action < policy.cooldown:
        refusals["cooldown"] = (
            f"acted {obs.now - state.last_action:.0f} s ago, within the {policy.cooldown:.0f} s cooldown "
            f"(no flapping): repair by hand if it cannot wait (qdrant-ops cluster repair, {RUNBOOK})"
        )
    return refusals


def _busy(obs: Observation) -> str | None:
    """Work under way that is not the healer's to judge: transfers running, or replicas on reachable
    peers that are not Active (being rebuilt, restored or dropped)."""
    if obs.transfers:
        return f"{obs.transfers} shard transfer(s) running"
    rebuilding = sorted(
        f"{name} shard {r['shard_id']} on peer {r['peer_id']} is {r['state']}"
        for name, placement in obs.placements.items()
        for r in placement
        if r["peer_id"] not in obs.unreachable and r["state"] not in HEALTHY_REPLICA_STATES
    )
    return (
        ", ".join(rebuilding[:5]) + (f" and {len(rebuilding) - 5} more" if len(rebuilding) > 5 else "")
        or None
    )


def _disk_refusals(obs: Observation, plan: list[ShardTransfer], policy: Policy) -> dict[str, str]:
    if not plan or obs.free_bytes is None:
        return {}
    need: Counter = Counter()
    unknown = set()
    for item in plan:
        size = obs.shard_bytes.get((item.collection, item.shard_id))
        if size is None:
            unknown.add(f"{item.collection} shard {item.shard_id}")
        need[item.to_peer] += (size or 0) * policy.disk_headroom
    unknown |= {f"peer {p}'s free space" for p in need if p not in obs.free_bytes}
    if unknown:
        what = ", ".join(sorted(unknown))
        return {"disk_unknown": f"the size of {what} is unknown: check node_exporter and Prometheus"}
    short = [
        f"peer {p} needs {need[p] / 2**30:.1f} GiB and has {obs.free_bytes[p] / 2**30:.1f} GiB free"
        for p in sorted(need)
        if need[p] > obs.free_bytes[p]
    ]
    if short:
        return {
            "disk": f"{'; '.join(short)} (x{policy.disk_headroom:g} headroom): add disk or nodes ({RUNBOOK})"
        }
    return {}


def missing_replicas(obs: Observation) -> int:
    """Replicas the cluster lacks: per shard, its factor minus its Active replicas on reachable peers."""
    missing = 0
    for name, placement in obs.placements.items():
        active = Counter(
            r["shard_id"]
            for r in placement
            if r["peer_id"] not in obs.unreachable and r["state"] in HEALTHY_REPLICA_STATES
        )
        for shard in {r["shard_id"] for r in placement}:
            missing += max(0, obs.factors.get(name, 1) - active[shard])
    return missing
