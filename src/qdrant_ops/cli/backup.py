"""`qdrant-ops backup`: upload this node's part of a set, list and show sets, seal, prune, and
run the restore drill (the library: qdrant_ops.backup)."""

from __future__ import annotations

import argparse

from qdrant_ops.backup import catalog, job, node_part, s3, verify
from qdrant_ops.cli.common import (
    backup_config,
    command_group,
    emit_result,
    event_log,
    flag,
)
from qdrant_ops.cluster import golden
from qdrant_ops.table import format_table


def cmd_backup_run(args: argparse.Namespace) -> int:
    options = job.BackupOptions(
        backup_id=args.backup_id, force=args.force, collections=tuple(args.collection or ())
    )
    part = job.run_backup(backup_config(args), options, log=event_log(args))
    if part.get("skipped"):
        emit_result(
            args,
            part,
            f"backup {part['backup_id']}: peer {part['peer_id']}'s part already succeeded, "
            f"kept; set is {part['set_status']}",
        )
        return 0
    total = node_part.part_bytes(part)
    emit_result(
        args,
        part,
        f"backup {part['backup_id']}: peer {part['peer_id']} uploaded "
        f"{sum(len(shards) for shards in part['shards'].values())} shard snapshot(s), {total} bytes; "
        f"set is {part['set_status']}",
    )
    return 0


def cmd_backup_list(args: argparse.Namespace) -> int:
    config = backup_config(args)
    sets = catalog.list_sets(s3.make_client(config.settings.s3), config.settings)
    rows = [
        [s["backup_id"], s["time"], s["status"], s["peers"], len(s["collections"]), s["bytes"]] for s in sets
    ]
    emit_result(args, sets, format_table(rows, ["BACKUP", "TIME", "STATUS", "PEERS", "COLLECTIONS", "BYTES"]))
    return 0


def cmd_backup_show(args: argparse.Namespace) -> int:
    config = backup_config(args)
    manifest = catalog.set_manifest(
        s3.make_client(config.settings.s3), config.settings, args.backup_id, verify=not args.no_verify
    )
    rows = []
    for name, view in sorted(manifest.collections.items()):
        records = manifest.records(name)
        rows.append([name, view.points_exact, len(records), sum(r.size for r in records)])
    text = (
        f"backup {manifest.backup_id} of {manifest.cluster}: {manifest.status}, "
        f"Qdrant {manifest.qdrant_version}, {len(manifest.peers)} peers, "
        f"{manifest.started} .. {manifest.finished}\n\n"
        + format_table(rows, ["COLLECTION", "POINTS", "SNAPSHOTS", "BYTES"])
        + "".join(f"\nproblem: {p}" for p in manifest.problems)
    )
    emit_result(args, manifest.to_dict(), text)
    return 0 if manifest.status == "complete" else 1


def cmd_backup_seal(args: argparse.Namespace) -> int:
    config = backup_config(args)
    results = job.run_seal(config)
    rows = [
        [r["backup_id"], "sealed" if r["sealed"] else "not sealed", "; ".join(r["problems"])] for r in results
    ]
    emit_result(args, results, format_table(rows, ["BACKUP", "SEAL", "WHY NOT"]))
    return 0


def cmd_backup_prune(args: argparse.Namespace) -> int:
    config = backup_config(args)
    log = event_log(args)
    plan = job.run_prune(config, job.PruneOptions(dry_run=args.dry_run), log=log)
    rows = [
        [p["backup_id"], p["status"], "keep" if p["keep"] else "delete", "; ".join(p["reasons"])]
        for p in plan
    ]
    header = "prune plan (dry run, nothing deleted)" if args.dry_run else "pruned"
    emit_result(args, plan, f"{header}\n" + format_table(rows, ["BACKUP", "STATUS", "ACTION", "WHY"]))
    return 0


def cmd_backup_verify(args: argparse.Namespace) -> int:
    options = verify.VerifyOptions(
        binary=args.qdrant_binary,
        backup_id=args.backup_id,
        collections=tuple(args.collection or ()),
        workdir=args.workdir,
    )
    report = job.run_verify(backup_config(args), options, log=event_log(args))
    rows = [
        [name, points, golden.recall_cell(report["golden"].get(name), "none in the set")]
        for name, points in sorted(report["collections"].items())
    ]
    head = (
        f"backup {report['backup_id']} restores: {report['points_verified']} points in a scratch Qdrant "
        f"{report['qdrant_version']} match the set, and so do its golden queries ({report['seconds']:.0f} s)"
    )
    table = format_table(rows, ["COLLECTION", "POINTS", "GOLDEN RECALL@10 (SOURCE)"])
    emit_result(args, report, head + "\n\n" + table)
    return 0


def register(commands, config_opts: argparse.ArgumentParser) -> None:
    bak = command_group(commands, "backup", "backup sets in S3: take, list, seal, verify, prune")
    run = bak.add_parser("run", parents=[config_opts], help="upload this node's part of a backup set")
    run.add_argument(
        "--backup-id",
        help="set id for an on-demand run, a UTC time such as 20261206T120000Z "
        "(others are never sealed; default: the current schedule slot)",
    )
    run.add_argument("--collection", action="append", help="only this collection, repeatable")
    flag(run, "--force", "refused when the part exists (part records are written once); kept for scripts")
    run.set_defaults(handler=cmd_backup_run)
    bak.add_parser("list", parents=[config_opts], help="backup sets, newest first").set_defaults(
        handler=cmd_backup_list
    )
    show = bak.add_parser("show", parents=[config_opts], help="one set; exit 1 unless complete")
    show.add_argument("backup_id", help="the set's id (see backup list)")
    flag(
        show, "--no-verify", "check each object's size from the bucket listing only, not its sha256 (faster)"
    )
    show.set_defaults(handler=cmd_backup_show)
    seal_cmd = bak.add_parser(
        "seal",
        parents=[config_opts],
        help="seal the sets whose parts are all in (the pruning role only)",
        description="Checks every unsealed set against the cluster's members (`members` in the config) and "
        "writes its seal once: only sealed sets are restorable, verifiable and kept by retention. "
        "backup prune seals first too.",
    )
    seal_cmd.set_defaults(handler=cmd_backup_seal)
    prune = bak.add_parser(
        "prune",
        parents=[config_opts],
        help="seal what qualifies, then delete the sets the retention policy drops",
    )
    flag(prune, "--dry-run", "print the plan, delete nothing")
    prune.set_defaults(handler=cmd_backup_prune)
    drill = bak.add_parser(
        "verify",
        parents=[config_opts],
        help="restore drill: restore a set into a scratch Qdrant, check it",
        description="Restores the set (default: the newest complete one) into a single-node Qdrant started "
        "for the drill on 127.0.0.1 with its storage under --workdir, removed afterwards; compares exact "
        "counts and the sampled points with the set. Writes the backup_verify metrics to metrics_dir.",
    )
    drill.add_argument("backup_id", nargs="?", help="the set's id (default: the newest complete set)")
    drill.add_argument(
        "--qdrant-binary",
        default=verify.DEFAULT_BINARY,
        metavar="PATH",
        help="a Qdrant of the set's minor version; {version} is the version that made the set "
        "(default: %(default)s)",
    )
    drill.add_argument(
        "--workdir",
        metavar="DIR",
        help="where the scratch storage goes (default: the temp directory); needs twice the set's bytes, "
        "or twice the largest collection's",
    )
    drill.add_argument("--collection", action="append", help="only this collection, repeatable")
    drill.set_defaults(handler=cmd_backup_verify)
