"""`qdrant-ops restore`: bring a backup set back into a cluster; its options become one
RestoreOptions (the library: qdrant_ops.backup.restore)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from qdrant_ops.backup import restore, s3
from qdrant_ops.cli.common import (
    backup_config,
    emit_result,
    event_log,
    flag,
    lock_options,
    planned_work_lock,
    read_key,
    seconds,
)
from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import ConfigError
from qdrant_ops.keyfile import check_key
from qdrant_ops.table import format_table


def _pair(text: str, what: str) -> tuple[str, str]:
    left, sep, right = text.partition("=")
    if not sep or not left or not right:
        raise ConfigError(f"{what} must look like LEFT=RIGHT, got {text!r}")
    return left, right


def _target_nodes(args: argparse.Namespace) -> list[str]:
    nodes = args.node or [u for u in os.environ.get("QDRANT_URL", "").split(",") if u.strip()]
    if not nodes:
        raise ConfigError("give every node of the target cluster as --url URL (repeatable) or QDRANT_URL")
    for url in nodes:
        if "=" in url:
            raise ConfigError(
                f"--url takes a URL only, got {url!r}: snapshots are uploaded to the nodes now; "
                "use --staging-dir for where they are downloaded first"
            )
    return nodes


def _target_key(args: argparse.Namespace, config) -> str | None:
    """--api-key-file, else the backup config's key, else QDRANT_API_KEY."""
    key = read_key(args.api_key_file, "--api-key-file") if args.api_key_file else config.api_key
    if key is None and os.environ.get("QDRANT_API_KEY"):
        key = check_key(os.environ["QDRANT_API_KEY"], "the environment variable QDRANT_API_KEY")
    return key


def _peer_map(args: argparse.Namespace) -> dict[int, str]:
    peer_map = {}
    for item in args.map or []:
        peer, url = _pair(item, "--map")
        if not peer.isdigit():
            raise ConfigError(f"--map needs PEER_ID=URL, got {item!r}")
        peer_map[int(peer)] = url
    return peer_map


def _plan_table(report: dict) -> str:
    rows = [
        [
            p["collection"],
            "" if p["shard_id"] is None else p["shard_id"],
            p["peer_id"],
            p["node"] or "(placed by Qdrant)",
            p["bytes"],
        ]
        for p in report["plan"]
    ]
    return format_table(rows, ["COLLECTION", "SHARD", "FROM PEER", "NODE", "BYTES"])


def cmd_restore(args: argparse.Namespace) -> int:
    config = backup_config(args)
    options = restore.RestoreOptions(
        nodes=tuple(_target_nodes(args)),
        staging_dir=Path(args.staging_dir or tempfile.gettempdir()),
        backup_id=args.backup_id,
        collections=tuple(args.collection or ()),
        peer_map=_peer_map(args) or None,
        overwrite=args.overwrite,
        dry_run=args.dry_run,
        parallel=args.parallel,
        fetch_by=args.fetch_by,
        timeout=args.wait_timeout,
        allow_unsealed=args.allow_unsealed,
    )
    key = _target_key(args, config)
    log = event_log(args)
    with (
        ClusterClient(
            list(options.nodes),
            key,
            verify=config.verify,
            ca_file=args.ca_file or config.ca_file,
            timeout=config.timeout,
        ) as client,
        planned_work_lock(args, "restore", log, config.settings.cluster),
    ):
        report = restore.restore(
            client, s3.make_client(config.settings.s3), config.settings, options, log=log
        )
    names = ", ".join(report["collections"])
    head = (
        "restore plan (dry run, nothing changed)"
        if args.dry_run
        else f"restored {names} in {report['seconds']}s; counts and sampled points match"
    )
    text = f"backup {report['backup_id']} (format {report['format']}): {head}\n\n{_plan_table(report)}"
    emit_result(args, report, text)
    return 0


def register(commands, config_opts: argparse.ArgumentParser) -> None:
    rst = commands.add_parser(
        "restore",
        parents=[config_opts, lock_options(", else the backup config's cluster")],
        help="restore collections from a backup set, verified",
        description="Sets made per shard (formats 2 and 3) go into a cluster of any size: the collection is "
        "created from the set, and every replica of a shard recovers its snapshot (priority no_sync), "
        "fetched by the node itself from a short-lived presigned S3 URL and checked against the set's sha256 "
        "before it is recovered. To replace existing collections (--overwrite), and for format 1 sets, "
        "every snapshot is first downloaded into the staging directory and checked, then uploaded. At the "
        "end every replica is Active, the placement balanced, and counts and sampled points match.",
    )
    rst.add_argument(
        "--url",
        "--node",
        dest="node",
        action="append",
        metavar="URL",
        help="every node of the target cluster, repeatable (default: $QDRANT_URL, comma-separated)",
    )
    rst.add_argument(
        "--api-key-file", help="the target's API key (default: the config's, else $QDRANT_API_KEY)"
    )
    rst.add_argument("--ca-file", help="CA bundle for the target's TLS certificates (default: the config's)")
    rst.add_argument(
        "--staging-dir",
        metavar="DIR",
        help="where this host downloads and checks the snapshots when it fetches them (default: the "
        "temp directory); needs free space for the set",
    )
    rst.add_argument(
        "--fetch-by",
        choices=restore.FETCH_BY,
        default="nodes",
        help="who downloads the snapshots from S3: the nodes (presigned URLs; they must reach S3) or this "
        "host, which uploads them (default nodes; --overwrite and format 1 sets always use this host)",
    )
    rst.add_argument("--backup-id", help="set to restore (default: the newest sealed one)")
    flag(
        rst,
        "--allow-unsealed",
        "with --backup-id: restore a set that is not sealed (its part records, "
        "which single nodes wrote, then decide what comes back)",
    )
    rst.add_argument("--collection", action="append", help="only this collection, repeatable")
    rst.add_argument(
        "--map",
        action="append",
        metavar="PEER_ID=URL",
        help="format 1 sets: restore this peer's part on this node (default: in order)",
    )
    flag(rst, "--overwrite", "replace collections that already exist")
    flag(rst, "--dry-run", "check everything and print the plan, change nothing")
    rst.add_argument(
        "--parallel", type=int, default=2, help="snapshots recovered at once, one per node (default 2)"
    )
    rst.add_argument(
        "--wait-timeout", type=seconds, default=3600.0, help="seconds per recover and health wait"
    )
    rst.set_defaults(handler=cmd_restore)
