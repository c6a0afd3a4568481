"""`qdrant-ops standby`: make a cluster the warm standby of another, sync it, promote it (the
library: qdrant_ops.cluster.standby)."""

from __future__ import annotations

import argparse
import contextlib
import time

from qdrant_ops.backup import metrics
from qdrant_ops.cli.common import (
    command_group,
    emit_result,
    event_log,
    flag,
    metrics_dir,
    read_key,
    seconds,
)
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import golden, standby, standby_metrics
from qdrant_ops.errors import ConfigError
from qdrant_ops.progress import ProgressLine
from qdrant_ops.table import format_table


def _standby_clients(args: argparse.Namespace) -> tuple[ClusterClient, ClusterClient]:
    if not args.primary_url or not args.standby_url:
        raise ConfigError(
            "give every node of both clusters: --primary-url URL and --standby-url URL (repeatable)"
        )
    primary_key = read_key(args.primary_api_key_file, "--primary-api-key-file")
    standby_key = read_key(args.standby_api_key_file, "--standby-api-key-file")
    options = {"verify": not args.insecure, "ca_file": args.ca_file, "timeout": args.timeout}
    primary = ClusterClient(args.primary_url, primary_key, **options)
    return primary, ClusterClient(args.standby_url, standby_key, **options)


def cmd_standby_init(args: argparse.Namespace) -> int:
    options = standby.StandbyOptions(collections=tuple(args.collection or ()))
    primary, target = _standby_clients(args)
    log = event_log(args)
    with primary, target:
        result = standby.init(primary, target, options, log=log)
    emit_result(
        args, result, f"standby ready; created: {', '.join(result['created']) or 'nothing (all there)'}"
    )
    return 0


def _record_run(args: argparse.Namespace, *, success: bool, duration: float) -> None:
    """The sync job's run metrics (last run, success, failures in a row) with --metrics-dir."""
    if args.metrics_dir:
        metrics.write_run_metrics(
            args.metrics_dir,
            "standby_sync",
            args.cluster,
            success=success,
            finished=time.time(),
            duration=duration,
        )


def cmd_standby_sync(args: argparse.Namespace) -> int:
    options = standby.StandbyOptions(
        collections=tuple(args.collection or ()),
        timeout=args.wait_timeout,
        golden_queries=args.golden_queries,
    )
    primary, target = _standby_clients(args)
    busy = (
        standby_metrics.SyncBusy(args.metrics_dir, args.cluster, args.wait_timeout)
        if args.metrics_dir
        else None
    )
    say = event_log(args)

    def log(line: str) -> None:
        if busy and isinstance(line, ProgressLine):
            busy.refresh()  # alive and moving: the replica alerts stay quiet a while longer
        say(line)

    started = time.monotonic()
    try:
        with primary, target, busy or contextlib.nullcontext():
            report = standby.sync(primary, target, options, log=log)
    except BaseException:
        _record_run(args, success=False, duration=time.monotonic() - started)
        raise
    if args.metrics_dir:
        standby_metrics.write_synced_metrics(args.metrics_dir, args.cluster, report["collections"])
    _record_run(args, success=True, duration=report["seconds"])
    rows = [
        [
            name,
            time.strftime("%H:%M:%S", time.gmtime(state["reflects"])),
            state["primary_points"],
            state["updated"],
        ]
        for name, state in report["collections"].items()
    ]
    header = ["COLLECTION", "REFLECTS (UTC)", "PRIMARY POINTS", "REPLICAS UPDATED"]
    changes = "".join(f"{name}: {what}\n" for name, what in report["config_changes"].items())
    emit_result(args, report, f"synced in {report['seconds']} s\n{changes}\n" + format_table(rows, header))
    return 0


def cmd_standby_promote(args: argparse.Namespace) -> int:
    if not args.standby_url:
        raise ConfigError("give the standby's nodes: --standby-url URL (repeatable)")
    options = {"verify": not args.insecure, "ca_file": args.ca_file, "timeout": args.timeout}
    standby_key = read_key(args.standby_api_key_file, "--standby-api-key-file")
    target = ClusterClient(args.standby_url, standby_key, **options)
    primary = None
    if args.primary_url:  # the primary may be gone; its count is compared when it answers
        key = read_key(args.primary_api_key_file, "--primary-api-key-file")
        primary = ClusterClient(args.primary_url, key, retries=0, **{**options, "timeout": 5.0})
    log = event_log(args)
    try:
        with target:
            report = standby.promote(target, primary, standby.StandbyOptions(), log=log)
    finally:
        if primary is not None:
            primary.close()
    if report["already_promoted"]:
        emit_result(args, report, f"already promoted at {report['promoted_at']}: nothing changed")
        return 0
    rows = [
        [
            name,
            r["standby_points"],
            r["primary_points_at_sync"],
            "-" if r["primary_points_now"] is None else r["primary_points_now"],
            r["lag_seconds"],
            golden.recall_cell(r.get("golden"), "none drawn"),
        ]
        for name, r in report["collections"].items()
    ]
    header = [
        "COLLECTION",
        "STANDBY POINTS",
        "PRIMARY AT LAST SYNC",
        "PRIMARY NOW",
        "LAG (S)",
        "GOLDEN RECALL",
    ]
    weak = [
        name for name, r in report["collections"].items() if not (r.get("golden") or {}).get("passed", True)
    ]
    head = "promoted: this cluster takes writes now; point clients at it"
    if weak:
        head += (
            f"\nWARNING: the standby's index finds too few of the golden queries' exact results in "
            f"{', '.join(weak)}: searches there are worse than on the primary (see the log; docs/backups.md)"
        )
    emit_result(args, report, head + "\n\n" + format_table(rows, header))
    return 1 if weak else 0


def _cluster_options() -> argparse.ArgumentParser:
    both = argparse.ArgumentParser(add_help=False)
    group = both.add_argument_group("clusters")
    group.add_argument("--primary-url", action="append", help="primary node URL, repeatable: every node")
    group.add_argument(
        "--primary-api-key-file",
        help="file with the primary's API key, or a token scoped to the synced collections (rw: it makes "
        "snapshot streams; docs/disaster-recovery.md says what it allows)",
    )
    group.add_argument("--standby-url", action="append", help="standby node URL, repeatable: every node")
    group.add_argument("--standby-api-key-file", help="file with the standby's API key")
    group.add_argument("--collection", action="append", help="only this collection, repeatable")
    group.add_argument("--ca-file", help="CA bundle to verify the nodes' TLS certificates")
    flag(group, "--insecure", "do not verify TLS certificates")
    group.add_argument("--timeout", type=seconds, default=60.0, help="seconds per request (default 60)")
    flag(both, "--json", "machine-readable output")
    return both


def register(commands) -> None:
    both = _cluster_options()
    cmd = command_group(commands, "standby", "a warm standby cluster")
    init = cmd.add_parser(
        "init",
        parents=[both],
        help="mark an empty cluster as the standby and create the primary's collections",
    )
    init.set_defaults(handler=cmd_standby_init)
    sync = cmd.add_parser(
        "sync",
        parents=[both],
        help="bring every standby replica up to date from the primary",
        description="First creates the primary's new collections on the standby and brings each collection's "
        "config and payload indexes to the primary's; then each standby replica fetches from a primary "
        "replica of its shard only the segment files that changed (docs/qdrant-behaviour.md §8, §10). "
        "Refuses a cluster that is not a standby or was promoted. The primary URLs must be reachable from "
        "the standby nodes.",
    )
    sync.add_argument(
        "--golden-queries",
        type=int,
        default=20,
        metavar="N",
        help="searches per collection drawn on the primary once a day, which `promote` runs on the "
        "standby to judge its index (docs/backups.md, Golden queries; 0: none)",
    )
    sync.add_argument(
        "--metrics-dir",
        type=metrics_dir,
        help="write node_exporter textfile metrics here (synced time per collection)",
    )
    sync.add_argument(
        "--cluster", default="standby", help="the standby's name in the metrics (default standby)"
    )
    sync.add_argument(
        "--wait-timeout", type=seconds, default=3600.0, help="seconds one shard may take (default 3600)"
    )
    sync.set_defaults(handler=cmd_standby_sync)
    promote = cmd.add_parser(
        "promote",
        parents=[both],
        help="make the standby take writes; no sync touches it afterwards",
        description="Marks the standby promoted (stop qdrant-standby-sync.timer first) and reports per "
        "collection its count, the primary's count at the last sync and the lag at promotion; with "
        "--primary-url also the primary's count now, when it still answers. Runs the golden queries a sync "
        "drew on the primary: exit 1 when the standby's index finds too few of their exact results.",
    )
    promote.set_defaults(handler=cmd_standby_promote)
