"""`qdrant-ops cluster`: the cluster's peers, zones and replica health, repair of dead peers' replicas
and rebalancing or draining peers (the library: qdrant_ops.cluster)."""

from __future__ import annotations

import argparse
import dataclasses

from qdrant_ops.cli.collections import collections_table
from qdrant_ops.cli.common import (
    UsageError,
    command_group,
    emit_result,
    event_log,
    flag,
    lock_options,
    make_client,
    output_file,
    peer_id,
    planned_work_lock,
    read_zones,
    zone_options,
)
from qdrant_ops.cluster import healer_config, healer_run, health, rebalance, replicas, zone_metrics, zones
from qdrant_ops.table import format_table


def _zone_lines(overview: dict) -> list[str]:
    shared = overview.get("shared_zones") or {}
    fix = "(run `cluster rebalance` with the same zones)"
    lines = [
        f"WARNING: replicas share a zone, avoidably: {entry} {fix}" for entry in shared.get("avoidable", [])
    ]
    lines += [f"note: more replicas than zones: {entry}" for entry in shared.get("too_few_zones", [])]
    return lines


def cmd_cluster_status(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        peer_zones = read_zones(args, client, skip_silent=True)
        overview = health.cluster_overview(client, zones=peer_zones)
    if args.textfile:
        zone_metrics.write_textfile(args.textfile, overview, peer_zones)
    lines = [f"Qdrant {overview['version']}, cluster mode {'on' if overview['cluster_enabled'] else 'off'}"]
    if overview["cluster_enabled"]:
        lines.append(
            f"leader {overview['leader']}  term {overview['term']}  commit {overview['commit']}  "
            f"pending {overview['pending_operations']}"
        )
        lines.append(
            format_table(
                [
                    [
                        p["id"],
                        p["uri"],
                        p.get("zone") or "-",
                        "leader" if p["id"] == overview["leader"] else "",
                    ]
                    for p in overview["peers"]
                ],
                ["PEER", "URI", "ZONE", "ROLE"],
            )
        )
    lines.append(collections_table(overview["collections"]))
    lines += _zone_lines(overview)
    emit_result(args, overview, "\n\n".join(lines))
    unhealthy = any(c["unhealthy_replicas"] for c in overview["collections"])
    return 1 if unhealthy or (overview["cluster_enabled"] and overview["leader"] is None) else 0


def cmd_cluster_repair(args: argparse.Namespace) -> int:
    options = replicas.RepairOptions(
        remove=tuple(args.remove_peer or ()),
        allow_data_loss=args.allow_data_loss,
        prefer=args.to_peer,
        method=args.method,
        dry_run=args.dry_run,
    )
    log = event_log(args)
    with make_client(args) as client, planned_work_lock(args, "cluster repair", log):
        peer_zones = read_zones(args, client)
        log(zones.describe([int(p) for p in client.cluster_status()["peers"]], peer_zones))
        removable, plan = replicas.repair(client, options, zones=peer_zones, log=log)
    removed = [] if args.dry_run else removable
    rows = [[r.collection, r.shard_id, r.from_peer, r.to_peer] for r in plan]
    head = (
        "plan (dry run, nothing changed)"
        if args.dry_run
        else (
            f"removed peers {removed or 'none'}; every shard at its replication factor, every replica Active"
        )
    )
    data = {
        "removed_peers": removed,
        "would_remove": removable if args.dry_run else [],
        "replications": [dataclasses.asdict(r) for r in plan],
        "dry_run": args.dry_run,
    }
    emit_result(args, data, head + "\n\n" + format_table(rows, ["COLLECTION", "SHARD", "FROM", "TO"]))
    return 0


def cmd_cluster_rebalance(args: argparse.Namespace) -> int:
    if args.remove and args.drain is None:
        raise UsageError("--remove needs --drain PEER_ID: the peer to empty, then remove")
    options = rebalance.RebalanceOptions(
        drain=args.drain,
        remove_drained=args.remove,
        method=args.method,
        incoming_limit=args.incoming_limit,
        outgoing_limit=args.outgoing_limit,
        dry_run=args.dry_run,
    )
    log = event_log(args)
    with make_client(args) as client, planned_work_lock(args, "cluster rebalance", log):
        peer_zones = read_zones(args, client)
        log(zones.describe([int(p) for p in client.cluster_status()["peers"]], peer_zones))
        plan, removed = rebalance.run(client, options, zones=peer_zones, log=log)
    rows = [
        [n, m.collection, m.shard_id, m.from_peer, m.to_peer]
        for n, batch in enumerate(plan, 1)
        for m in batch
    ]
    what = f"drain peer {args.drain}" if args.drain is not None else "rebalance"
    if args.dry_run:
        head = f"{what}: plan (dry run, nothing changed)"
    else:
        head = (
            f"{what}: {len(rows)} move(s) done; balanced, every replica Active"
            if rows
            else f"{what}: balanced"
        )
    if removed is not None:
        head += f"; peer {args.drain} {'removed' if removed else 'was not in the cluster'}"
        head += " (planned)" if args.dry_run and removed else ""
    data = {"dry_run": args.dry_run, "batches": [[dataclasses.asdict(m) for m in batch] for batch in plan]}
    if removed is not None:
        data["removed_peer"] = removed
    emit_result(
        args, data, head + "\n\n" + format_table(rows, ["BATCH", "COLLECTION", "SHARD", "FROM", "TO"])
    )
    return 0


def cmd_cluster_heal(args: argparse.Namespace) -> int:
    config = healer_config.load(args.config)
    if args.dry_run:
        config = dataclasses.replace(config, dry_run=True)
    result = healer_run.run_once(config, event_log(args))
    decision = result.decision
    data = {
        "enabled": config.enabled,
        "dry_run": config.dry_run,
        "acted": result.acted,
        "notes": result.notes,
        "unreachable": sorted([*decision.dead, *decision.waiting]) if decision else [],
        "dead": list(decision.dead) if decision else [],
        "refusals": dict(decision.refusals) if decision else {},
        "replications": [dataclasses.asdict(r) for r in decision.replications] if decision else [],
        "remove": list(decision.remove) if decision else [],
        "missing_replicas": decision.missing_replicas if decision else None,
    }
    if decision is None:
        head = "healer switched off"
    elif result.acted:
        head = f"healed: {healer_run.describe(decision)}"
    elif decision.dead:
        head = ("refused" if decision.refusals else "dry run") + f": {healer_run.describe(decision)}"
        head += "".join(f"\n  {reason}: {why}" for reason, why in decision.refusals.items())
    else:
        head = "nothing to heal" + (
            f"; unreachable, within the grace period: {list(decision.waiting)}" if decision.waiting else ""
        )
    emit_result(args, data, head)
    return 1 if decision and (decision.waiting or (decision.dead and not result.acted)) else 0


def register(commands, conn: argparse.ArgumentParser) -> None:
    cluster_cmd = command_group(commands, "cluster", "cluster state")
    conn = argparse.ArgumentParser(add_help=False, parents=[conn, zone_options()])
    status = cluster_cmd.add_parser(
        "status",
        parents=[conn],
        help="peers, leader, collections, replicas sharing a zone; exit 1 when a replica is unhealthy",
    )
    status.add_argument(
        "--textfile",
        metavar="PATH",
        type=output_file,
        help="also write the placement metrics (replicas sharing a zone) for node_exporter's textfile "
        "collector",
    )
    status.set_defaults(handler=cmd_cluster_status)
    lock = lock_options()
    repair = cluster_cmd.add_parser(
        "repair",
        parents=[conn, lock],
        help="remove dead peers, replicate shards back to their replication factor",
    )
    repair.add_argument(
        "--remove-peer", type=peer_id, action="append", help="dead peer to remove (force), repeatable"
    )
    flag(
        repair,
        "--allow-data-loss",
        "remove a dead peer even if it holds the only Active replica of a shard (that data is lost)",
    )
    repair.add_argument(
        "--to-peer", type=peer_id, help="put the new replicas on this peer first (the replacement)"
    )
    repair.add_argument(
        "--method",
        default="stream_records",
        choices=list(replicas.METHODS),
        help="Qdrant's shard transfer method",
    )
    flag(repair, "--dry-run", "print the plan, change nothing")
    repair.set_defaults(handler=cmd_cluster_repair)
    _register_rebalance(cluster_cmd, [conn, lock])
    _register_heal(cluster_cmd)


def _register_rebalance(cluster_cmd, parents: list) -> None:
    balance = cluster_cmd.add_parser(
        "rebalance",
        parents=parents,
        help="spread shard replicas evenly (or empty one peer with --drain)",
    )
    balance.add_argument("--drain", type=peer_id, metavar="PEER_ID", help="move every replica off this peer")
    flag(balance, "--remove", "with --drain: then remove the emptied peer from the cluster (no force)")
    balance.add_argument(
        "--method",
        default="stream_records",
        choices=list(replicas.METHODS),
        help="Qdrant's shard transfer method",
    )
    balance.add_argument(
        "--incoming-limit", type=int, default=1, help="transfers a peer receives at once (Qdrant: 1)"
    )
    balance.add_argument(
        "--outgoing-limit", type=int, default=1, help="transfers a peer sends at once (Qdrant: 1)"
    )
    flag(balance, "--dry-run", "print the plan as a table, change nothing")
    balance.set_defaults(handler=cmd_cluster_rebalance)


def _register_heal(cluster_cmd) -> None:
    heal = cluster_cmd.add_parser(
        "heal",
        help="one run of the healer: re-create the replicas of a peer lost for longer than the grace "
        "period, then remove it; exit 1 while a peer is unreachable and not healed (docs/self-healing.md)",
    )
    heal.add_argument(
        "--config",
        default=healer_config.DEFAULT_PATH,
        help="the healer's settings (the qdrant_backup role writes it)",
    )
    flag(
        heal,
        "--dry-run",
        "decide and say what it would do, change nothing (the state file still records peers)",
    )
    flag(heal, "--json", "machine-readable output")
    heal.set_defaults(handler=cmd_cluster_heal)
