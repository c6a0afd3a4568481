"""The `qdrant-ops` command: a thin front door over the qdrant_ops library.

Each subcommand is a function taking the parsed arguments and returning an exit code. Library
errors become one line on stderr and exit 2. The API key is read from QDRANT_API_KEY or a file,
never from the command line, where `ps` would show it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from qdrant_ops import __version__, certs
from qdrant_ops.backup import catalog, job, metrics, node_part, restore, s3
from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import collections, health, points, rebalance, replicas, standby, zone_metrics, zones
from qdrant_ops.errors import ConfigError, QdrantOpsError
from qdrant_ops.ingest import dataset, engine, sources
from qdrant_ops.keyfile import check_key, read_key_file
from qdrant_ops.progress import ProgressLine
from qdrant_ops.redact import redact
from qdrant_ops.table import format_table

# Exit codes, the same for every command (printed by --help, listed in docs/cli.md).
EXIT_OK = 0
EXIT_ATTENTION = 1  # the command worked and found something to act on: unhealthy, incomplete, drift
EXIT_ERROR = 2  # the command failed; the last stderr line says what and how to fix it
EXIT_USAGE = 64  # bad command line (BSD sysexits EX_USAGE)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT
EXIT_CODES = """exit codes:
  0    done; healthy, complete, nothing to change
  1    done, and something needs attention: a replica unhealthy, a backup set incomplete,
       a point not found, collections differ from the spec (apply --dry-run --exit-code)
  2    error: the last line on stderr says what failed and the fix (with --json also on stdout);
       also an internal error (a bug), in one line (qdrant-ops --debug ... prints its traceback)
  64   bad command line
  130  interrupted"""


class UsageError(QdrantOpsError):
    """Options that do not go together: exit EXIT_USAGE, like argparse's own refusals."""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 64, not argparse's 2, so scripts can tell them from failures."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to an option's help unless it says its default already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class _SubParser(_Parser):
    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(**kwargs)


# -- what a command says while it works -----------------------------------------------------------
def _event(event: dict) -> None:
    """One JSON event per stderr line, written whole (worker threads emit too)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(json.dumps({"time": stamp, **event}, sort_keys=True) + "\n")
    sys.stderr.flush()


def event_log(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command's log and progress lines go: stderr as text; with --json as a stream of
    events on stderr, one JSON object per line ({"event": "log", "message": ...} or
    {"event": "progress", "operation": ..., "bytes": ..., ...}), while stdout keeps the one result
    document, so a program follows the work on one stream and reads the outcome on the other."""
    as_json = getattr(args, "json", False)

    def log(line: str) -> None:
        if as_json:
            _event({"event": "progress", **line.fields} if isinstance(line, ProgressLine)
                  else {"event": "log", "message": str(line)})  # fmt: skip
        else:
            sys.stderr.write(f"{line}\n")
            sys.stderr.flush()

    return log


def report_error(args: argparse.Namespace, message: str, exit_code: int = EXIT_ERROR) -> None:
    """The last stderr line says what failed (a JSON event with --json), and with --json stdout
    says it too for a program that reads only the result."""
    if getattr(args, "json", False):
        _event({"event": "error", "message": message, "exit_code": exit_code})
        print(json.dumps({"error": message, "exit_code": exit_code}))
    else:
        print(f"qdrant-ops: error: {message}", file=sys.stderr)


# -- connection ------------------------------------------------------------------------------------
def _read_key(path: str | None, option: str) -> str | None:
    if not path:
        return None
    return read_key_file(path, option)


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (at most a week)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 7 * 86400:  # false for nan too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 604800")
    return value


def writable_dir(text: str) -> str:
    """An argparse type: an existing directory this user may write to."""
    if not os.path.isdir(text) or not os.access(text, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory this user can write to")
    return text


def metrics_dir(text: str) -> str:
    """An argparse type: a writable directory, or one that can be made in a writable directory."""
    writable_dir(text if os.path.exists(text) else os.path.dirname(os.path.abspath(text)))
    return text


def output_file(text: str) -> str:
    """An argparse type: a file whose directory exists and is writable (checked before any work)."""
    writable_dir(os.path.dirname(os.path.abspath(text)))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    return text


def peer_id(text: str) -> int:
    """An argparse type: Qdrant peer ids are unsigned 64-bit integers."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a peer id (an unsigned integer, see cluster status)"
        )
    return value


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_file:
        return _read_key(args.api_key_file, "--api-key-file")
    key = os.environ.get("QDRANT_API_KEY")
    return check_key(key, "the environment variable QDRANT_API_KEY") if key else None


# Where the backup sets are, from the environment (a workstation needs no backup.yml); AWS's own
# variables (AWS_REGION, AWS_ENDPOINT_URL_S3, credentials) are read by boto3 itself.
REPOSITORY_ENV = {
    "bucket": "QDRANT_OPS_S3_BUCKET",
    "prefix": "QDRANT_OPS_S3_PREFIX",
    "cluster": "QDRANT_OPS_CLUSTER",
}


def backup_config(args: argparse.Namespace) -> job.BackupConfig:
    """The backup config file (--config, else the default path when it exists) with the repository
    given by flags (--bucket, --prefix, --cluster, --region, --endpoint-url) or the environment over
    it; without a file, those alone."""
    given = {name: getattr(args, name, None) or os.environ.get(env) for name, env in REPOSITORY_ENV.items()}
    given |= {"region": getattr(args, "region", None), "endpoint_url": getattr(args, "endpoint_url", None)}
    given = {name: value for name, value in given.items() if value}
    path = args.config or job.DEFAULT_PATH
    if args.config or not given or Path(path).exists():
        data, source = job.read_file(path), path
    elif not {"bucket", "cluster"} <= set(given):
        raise ConfigError(
            f"no backup config at {path} and no repository given: pass --bucket and --cluster (or set "
            f"{REPOSITORY_ENV['bucket']} and {REPOSITORY_ENV['cluster']}), or --config FILE"
        )
    else:
        data, source = {}, "the command line"
    if "cluster" in given:
        data["cluster"] = given.pop("cluster")
    data["s3"] = {**(data.get("s3") or {}), **given}
    return job.from_dict(data, source)


def make_client(args: argparse.Namespace) -> ClusterClient:
    urls = args.url or [u for u in os.environ.get("QDRANT_URL", "").split(",") if u.strip()]
    if not urls:
        raise ConfigError("no Qdrant URL: pass --url http://node:6333 (repeatable) or set QDRANT_URL")
    return ClusterClient(
        urls, _api_key(args), verify=not args.insecure, ca_file=args.ca_file, timeout=args.timeout
    )


def _emit(args: argparse.Namespace, data, table: str) -> None:
    """The result: a table for people, or with --json the document on stdout, also ending the
    event stream on stderr (a program that follows the events needs no second stream)."""
    if args.json:
        _event({"event": "summary", "result": data})
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else table)


# -- cluster -----------------------------------------------------------------------------------------
def read_zones(
    args: argparse.Namespace, client: ClusterClient, *, skip_silent: bool = False
) -> dict[int, str]:
    """--zones-file (a mapping of peer id or node URL to zone) and --zone PEER_OR_URL=ZONE, resolved
    to peer ids; empty when neither is given (every peer a zone of its own). With `skip_silent`, a
    node URL nobody answers at is left out (a status must work while a node is down)."""
    spec: dict[str, str] = {}
    if args.zones_file:
        try:
            data = yaml.safe_load(Path(args.zones_file).read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the zones file {args.zones_file}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{args.zones_file}: expected a mapping of peer id or node URL to zone")
        spec.update({str(k): v for k, v in data.items()})
    for item in args.zone or []:
        key, sep, zone = item.rpartition("=")  # a URL may hold '=', a zone name does not
        if not sep or not key or not zone:
            raise ConfigError(f"--zone must look like PEER_OR_URL=ZONE, got {item!r}")
        if spec.setdefault(key, zone) != zone:
            raise ConfigError(f"{key} is given two zones: {spec[key]} and {zone}")
    return zones.resolve(client, spec, skip_silent=skip_silent)


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
    lines.append(_collections_table(overview["collections"]))
    lines += _zone_lines(overview)
    _emit(args, overview, "\n\n".join(lines))
    unhealthy = any(c["unhealthy_replicas"] for c in overview["collections"])
    return 1 if unhealthy or (overview["cluster_enabled"] and overview["leader"] is None) else 0


def _collections_table(items: list[dict]) -> str:
    rows = []
    for item in items:
        states: dict[str, int] = {}
        for replica in item["replicas"]:
            states[replica["state"]] = states.get(replica["state"], 0) + 1
        rows.append(
            [
                item["name"],
                item["status"],
                item["points_exact"],
                item["shard_number"],
                item["replication_factor"],
                " ".join(f"{state}={n}" for state, n in sorted(states.items())),
            ]
        )
    return format_table(rows, ["COLLECTION", "STATUS", "POINTS", "SHARDS", "RF", "REPLICAS"])


# -- collections ---------------------------------------------------------------------------------------
def cmd_collections_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        items = [health.collection_overview(client, name) for name in client.collection_names()]
    _emit(args, items, _collections_table(items))
    return 0


def cmd_collections_show(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        info = client.collection_info(args.name)
        if info is None:
            raise ConfigError(f"collection {args.name!r} does not exist (see: qdrant-ops collections list)")
        overview = health.collection_overview(client, args.name)
    spec = collections.describe(info, args.name)
    placement = format_table(
        [[r["shard_id"], r["peer_id"], r["state"]] for r in overview["replicas"]], ["SHARD", "PEER", "STATE"]
    )
    text = (
        f"{args.name}: status {overview['status']}, {overview['points_exact']} points\n\n"
        f"{yaml.safe_dump(spec, sort_keys=False)}\n{placement}"
    )
    _emit(args, {"spec": spec, **overview}, text)
    return 0


def load_specs(path: str) -> list[dict]:
    """A file holds one spec, a list of specs, or {collections: [...]} (the group_vars shape)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: write it as UTF-8") from None
    if isinstance(data, dict) and "collections" in data:
        data = data["collections"]
    specs = [data] if isinstance(data, dict) else data
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs) or not specs:
        raise ConfigError(f"{path}: expected a collection spec, a list of them, or 'collections: [...]'")
    return specs


def cmd_collections_validate(args: argparse.Namespace) -> int:
    """The checks `apply` makes before it asks the cluster anything (the node count and the server
    version are the cluster's, checked by `apply`)."""
    names = [collections.validate_spec(spec)["name"] for spec in load_specs(args.file)]
    _emit(args, {"valid": names}, f"{args.file}: {len(names)} spec(s) valid: {', '.join(names)}")
    return 0


def cmd_collections_apply(args: argparse.Namespace) -> int:
    specs = load_specs(args.file)
    with make_client(args) as client:
        peer_count = client.peer_count()
        # Validate every spec before changing anything, so a typo in the third leaves the first alone.
        normalised = [collections.validate_spec(spec, peer_count) for spec in specs]
        server_version = client.version()
        for spec in normalised:
            collections.require_server_support(spec, server_version)
        plans = [
            collections.plan_collection(
                spec,
                client.collection_info(spec["name"]),
                recreate=args.recreate,
                prune_payload_indexes=args.prune_indexes,
            )
            for spec in normalised
        ]
        for plan in plans:
            collections.require_applicable(plan)
        moved = []
        if not args.dry_run:
            for plan in plans:
                if plan.changed:
                    collections.apply_plan(client, plan)
            created = [p.name for p in plans if p.action in ("create", "recreate")]
            if not args.no_zone_fix:
                moved = rebalance.spread_over_zones(client, created, read_zones(args, client))
    rows = [
        [
            p.name,
            p.action,
            ", ".join(sorted(p.patch)) or "-",
            ", ".join(sorted(set(p.indexes_to_create) | set(p.indexes_to_delete))) or "-",
        ]
        for p in plans
    ]
    result = [
        {
            "name": p.name,
            "action": p.action,
            "patch": p.patch,
            "indexes_created": sorted(p.indexes_to_create),
            "indexes_deleted": p.indexes_to_delete,
            "warnings": p.warnings,
        }
        for p in plans
    ]
    header = "plan (dry run, nothing changed)" if args.dry_run else "applied"
    if not args.dry_run and moved:
        header += f"; {sum(map(len, moved))} replica(s) moved so no shard's replicas share a zone needlessly"
    warnings = "".join(f"\nwarning: {p.name}: {w}" for p in plans for w in p.warnings)
    _emit(
        args,
        result,
        f"{header}\n" + format_table(rows, ["COLLECTION", "ACTION", "PATCH", "INDEXES"]) + warnings,
    )
    drift = args.dry_run and any(plan.changed for plan in plans)
    return EXIT_ATTENTION if drift and args.exit_code else EXIT_OK


def cmd_collections_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise ConfigError(f"deleting {args.name!r} removes all its points: add --yes to confirm")
    with make_client(args) as client:
        plan = collections.ensure_collection(client, {"name": args.name}, state="absent")
    result = {"name": args.name, "deleted": plan.changed}
    _emit(args, result, f"{args.name}: {'deleted' if plan.changed else 'did not exist'}")
    return 0


# -- points --------------------------------------------------------------------------------------------
def cmd_points_get(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        point = points.get_point(client, args.collection, args.id)
    if point is None:
        print(f"point {args.id} not found in {args.collection}", file=sys.stderr)
        return 1
    print(json.dumps(point, indent=2, sort_keys=True))
    return 0


def cmd_points_upsert(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        count = points.upsert_file(client, args.collection, Path(args.file), args.batch_size)
    _emit(
        args,
        {"collection": args.collection, "upserted": count},
        f"upserted {count} points into {args.collection}",
    )
    return 0


# -- backup --------------------------------------------------------------------------------------------
def cmd_backup_run(args: argparse.Namespace) -> int:
    config = backup_config(args)
    if args.collection:
        settings = dataclasses.replace(config.settings, collections=tuple(args.collection))
        config = dataclasses.replace(config, settings=settings)
    log = event_log(args)
    part = job.run_backup(config, args.backup_id, log=log, force=args.force)
    if part.get("skipped"):
        _emit(args, part, f"backup {part['backup_id']}: peer {part['peer_id']}'s part already succeeded, "
              f"kept; set is {part['set_status']}")  # fmt: skip
        return 0
    total = node_part.part_bytes(part)
    _emit(
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
    _emit(args, sets, format_table(rows, ["BACKUP", "TIME", "STATUS", "PEERS", "COLLECTIONS", "BYTES"]))
    return 0


def cmd_backup_show(args: argparse.Namespace) -> int:
    config = backup_config(args)
    manifest = catalog.set_manifest(
        s3.make_client(config.settings.s3), config.settings, args.backup_id, verify=not args.no_verify
    )
    rows = []
    for name, view in sorted(manifest["collections"].items()):
        records = catalog.manifest_records(manifest, name)
        rows.append([name, view["points_exact"], len(records), sum(r["size"] for r in records)])
    text = (
        f"backup {manifest['backup_id']} of {manifest['cluster']}: {manifest['status']}, "
        f"Qdrant {manifest['qdrant_version']}, {len(manifest['peers'])} peers, "
        f"{manifest['started']} .. {manifest['finished']}\n\n"
        + format_table(rows, ["COLLECTION", "POINTS", "SNAPSHOTS", "BYTES"])
        + "".join(f"\nproblem: {p}" for p in manifest["problems"])
    )
    _emit(args, manifest, text)
    return 0 if manifest["status"] == "complete" else 1


def cmd_backup_seal(args: argparse.Namespace) -> int:
    config = backup_config(args)
    results = job.run_seal(config)
    rows = [
        [r["backup_id"], "sealed" if r["sealed"] else "not sealed", "; ".join(r["problems"])] for r in results
    ]
    _emit(args, results, format_table(rows, ["BACKUP", "SEAL", "WHY NOT"]))
    return 0


def cmd_backup_prune(args: argparse.Namespace) -> int:
    config = backup_config(args)
    log = event_log(args)
    plan = job.run_prune(config, dry_run=args.dry_run, log=log)
    rows = [
        [p["backup_id"], p["status"], "keep" if p["keep"] else "delete", "; ".join(p["reasons"])]
        for p in plan
    ]
    header = "prune plan (dry run, nothing deleted)" if args.dry_run else "pruned"
    _emit(args, plan, f"{header}\n" + format_table(rows, ["BACKUP", "STATUS", "ACTION", "WHY"]))
    return 0


def cmd_backup_verify(args: argparse.Namespace) -> int:
    config = backup_config(args)
    log = event_log(args)
    report = job.run_verify(
        config, args.qdrant_binary, backup_id=args.backup_id, collections=tuple(args.collection or ()),
        workdir=args.workdir, log=log,
    )  # fmt: skip
    rows = [[name, points] for name, points in sorted(report["collections"].items())]
    head = (
        f"backup {report['backup_id']} restores: {report['points_verified']} points in a scratch Qdrant "
        f"{report['qdrant_version']} match the set ({report['seconds']:.0f} s)"
    )
    _emit(args, report, head + "\n\n" + format_table(rows, ["COLLECTION", "POINTS"]))
    return 0


# -- parser --------------------------------------------------------------------------------------------
def cmd_cluster_repair(args: argparse.Namespace) -> int:
    log = event_log(args)
    with make_client(args) as client:
        peer_zones = read_zones(args, client)
        log(zones.describe([int(p) for p in client.cluster_status()["peers"]], peer_zones))
        removable, plan = replicas.repair(
            client, remove=args.remove_peer or (), allow_data_loss=args.allow_data_loss, prefer=args.to_peer,
            method=args.method, dry_run=args.dry_run, zones=peer_zones, log=log,
        )  # fmt: skip
    removed = [] if args.dry_run else removable
    rows = [[r.collection, r.shard_id, r.from_peer, r.to_peer] for r in plan]
    head = "plan (dry run, nothing changed)" if args.dry_run else (
        f"removed peers {removed or 'none'}; every shard at its replication factor, every replica Active"
    )  # fmt: skip
    data = {
        "removed_peers": removed,
        "would_remove": removable if args.dry_run else [],
        "replications": [dataclasses.asdict(r) for r in plan],
        "dry_run": args.dry_run,
    }
    _emit(args, data, head + "\n\n" + format_table(rows, ["COLLECTION", "SHARD", "FROM", "TO"]))
    return 0


def cmd_cluster_rebalance(args: argparse.Namespace) -> int:
    if args.remove and args.drain is None:
        raise UsageError("--remove needs --drain PEER_ID: the peer to empty, then remove")
    log = event_log(args)
    options = {"method": args.method, "incoming_limit": args.incoming_limit,
               "outgoing_limit": args.outgoing_limit, "dry_run": args.dry_run, "log": log}  # fmt: skip
    removed = None
    with make_client(args) as client:
        options["zones"] = read_zones(args, client)
        log(zones.describe([int(p) for p in client.cluster_status()["peers"]], options["zones"]))
        if args.remove:
            plan, removed = rebalance.drain_and_remove(client, args.drain, **options)
        else:
            plan = rebalance.rebalance(client, drain=args.drain, **options)
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
    _emit(args, data, head + "\n\n" + format_table(rows, ["BATCH", "COLLECTION", "SHARD", "FROM", "TO"]))
    return 0


# -- ingest --------------------------------------------------------------------------------------------
def _named(items: list[str] | None, what: str) -> dict[str, str]:
    """`VALUE` for the unnamed vector, `NAME=VALUE` for a named one."""
    result = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            name, value = "", item
        if not value:
            raise ConfigError(f"{what} needs FIELD or NAME=FIELD, got {item!r}")
        result[name] = value
    return result


def _progress_text(state: dict) -> str:
    rate = state["written"] / state["seconds"] if state["seconds"] > 0 else 0.0
    fraction = state.get("fraction")
    eta = ""
    if fraction and 0 < fraction < 1:
        left = state["seconds"] * (1 - fraction) / fraction
        eta = f"  {fraction:6.1%}  ETA {int(left // 60)}m{int(left % 60):02d}s"
    return f"{state['written']:>12,} points  {rate:>10,.0f}/s{eta}  retries {state['retries']}"


def print_progress(stream=sys.stderr) -> Callable[[dict], None]:
    """A one-line progress display (points, points/s, percent, ETA) for a terminal."""

    def show(state: dict) -> None:
        stream.write(f"\r{_progress_text(state)}   ")
        stream.flush()

    return show


def progress_lines(every: float, stream=sys.stderr) -> Callable[[dict], None]:
    """Without a terminal (a timer's journal, a CI log): the same figures as a line every `every`
    seconds, so a long run shows it is alive and how far it got."""
    last = [float("-inf")]

    def show(state: dict) -> None:
        if state["seconds"] - last[0] >= every:
            last[0] = state["seconds"]
            stream.write(f"progress: {_progress_text(state).strip()}\n")
            stream.flush()

    return show


def progress_events(every: float) -> Callable[[dict], None]:
    """With --json: the same figures as a progress event every `every` seconds."""
    last = [float("-inf")]

    def show(state: dict) -> None:
        if state["seconds"] - last[0] >= every:
            last[0] = state["seconds"]
            _event({"event": "progress", "operation": "ingest", "unit": "points", **state})

    return show


def cmd_ingest(args: argparse.Namespace) -> int:
    options, mapping = engine.load_plan({
        "collection": args.collection, "batch_size": args.batch_size, "workers": args.workers,
        "decoders": args.decoders, "in_flight": args.in_flight, "retries": args.retries,
        "timeout": args.timeout, "grpc_port": args.grpc_port, "ordering": args.ordering,
        "dead_letter": args.dead_letter, "checkpoint": args.checkpoint, "resume": args.resume,
        "defer_indexing": args.defer_indexing, "indexing_threshold": args.indexing_threshold,
        "wait_green": args.wait_green, "verify": not args.no_verify,
        "id_field": args.id_field, "id_from": args.id_from, "id_namespace": args.id_namespace,
        "vectors": _named(args.vector, "--vector"), "vector_files": _named(args.vector_file, "--vector-file"),
        "payload_fields": args.payload_field,
    })  # fmt: skip
    # The bucket comes from the s3:// URL; these settings only build the client.
    settings = s3.S3Settings(bucket="-", endpoint_url=args.s3_endpoint_url, region=args.s3_region)
    show = (
        progress_events(args.progress_every)
        if args.json
        else print_progress()
        if sys.stderr.isatty()
        else progress_lines(args.progress_every)
    )
    log = event_log(args)
    with make_client(args) as client:
        try:
            report = engine.ingest(
                client, args.source, options, mapping, fmt=args.format,
                s3_client_factory=lambda: s3.make_client(settings), progress=show, log=log,
            )  # fmt: skip
        except engine.IngestError as exc:
            if show and sys.stderr.isatty() and not args.json:
                print(file=sys.stderr)
            if exc.report and args.json:
                print(json.dumps(exc.report, indent=2, sort_keys=True))
                _event({"event": "error", "message": redact(str(exc)), "exit_code": EXIT_ERROR})
            else:
                report_error(args, redact(str(exc)))
            return EXIT_INTERRUPTED if exc.report and exc.report.get("interrupted") else EXIT_ERROR
    if show and sys.stderr.isatty() and not args.json:
        print(file=sys.stderr)
    text = (
        f"{report['collection']}: read {report['read']}, written {report['written']}, skipped (resume) "
        f"{report['skipped']}, failed {report['failed']}, batches {report['batches']}, retries "
        f"{report['retries']}, {report['seconds']} s, {report['points_per_second']:,.0f} points/s; "
        + (
            f"collection holds {report['verified']['count']} points"
            if report["verified"]["ok"]
            else "not verified"
        )
    )
    _emit(args, report, text)
    return 0


def cmd_dataset_generate(args: argparse.Namespace) -> int:
    result = dataset.generate(
        args.output, count=args.count, dim=args.dim, fmt=args.format, payload=args.payload, seed=args.seed
    )
    _emit(args, result, f"wrote {result['records']} records ({result['bytes']} bytes) to {result['path']}")
    return 0


# -- restore -------------------------------------------------------------------------------------------
def _pair(text: str, what: str) -> tuple[str, str]:
    left, sep, right = text.partition("=")
    if not sep or not left or not right:
        raise ConfigError(f"{what} must look like LEFT=RIGHT, got {text!r}")
    return left, right


def cmd_restore(args: argparse.Namespace) -> int:
    config = backup_config(args)
    args.node = args.node or [u for u in os.environ.get("QDRANT_URL", "").split(",") if u.strip()]
    if not args.node:
        raise ConfigError("give every node of the target cluster as --url URL (repeatable) or QDRANT_URL")
    for url in args.node:
        if "=" in url:
            raise ConfigError(
                f"--url takes a URL only, got {url!r}: snapshots are uploaded to the nodes now; "
                "use --staging-dir for where they are downloaded first"
            )
    key = _read_key(args.api_key_file, "--api-key-file") if args.api_key_file else config.api_key
    if key is None and os.environ.get("QDRANT_API_KEY"):
        key = check_key(os.environ["QDRANT_API_KEY"], "the environment variable QDRANT_API_KEY")
    peer_map = {}
    for item in args.map or []:
        peer, url = _pair(item, "--map")
        if not peer.isdigit():
            raise ConfigError(f"--map needs PEER_ID=URL, got {item!r}")
        peer_map[int(peer)] = url
    if args.parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {args.parallel}")
    log = event_log(args)
    with ClusterClient(args.node, key, verify=config.verify,
                       ca_file=args.ca_file or config.ca_file, timeout=config.timeout) as client:  # fmt: skip
        report = restore.restore(
            client, s3.make_client(config.settings.s3), config.settings, args.node,
            Path(args.staging_dir or tempfile.gettempdir()),
            backup_id=args.backup_id, collections=args.collection or (), peer_map=peer_map or None,
            overwrite=args.overwrite, dry_run=args.dry_run, parallel=args.parallel,
            fetch_by=args.fetch_by, timeout=args.wait_timeout, allow_unsealed=args.allow_unsealed, log=log,
        )  # fmt: skip
    rows = [[p["collection"], "" if p["shard_id"] is None else p["shard_id"], p["peer_id"],
             p["node"] or "(placed by Qdrant)", p["bytes"]] for p in report["plan"]]  # fmt: skip
    names = ", ".join(report["collections"])
    head = "restore plan (dry run, nothing changed)" if args.dry_run else (
        f"restored {names} in {report['seconds']}s; counts and sampled points match"
    )  # fmt: skip
    _emit(args, report, f"backup {report['backup_id']} (format {report['format']}): {head}\n\n"
          + format_table(rows, ["COLLECTION", "SHARD", "FROM PEER", "NODE", "BYTES"]))  # fmt: skip
    return 0


# -- standby ----------------------------------------------------------------------------------------
def _standby_clients(args: argparse.Namespace) -> tuple[ClusterClient, ClusterClient, dict]:
    if not args.primary_url or not args.standby_url:
        raise ConfigError(
            "give every node of both clusters: --primary-url URL and --standby-url URL (repeatable)"
        )
    keys = {"primary_key": _read_key(args.primary_api_key_file, "--primary-api-key-file"),
            "standby_key": _read_key(args.standby_api_key_file, "--standby-api-key-file")}  # fmt: skip
    options = {"verify": not args.insecure, "ca_file": args.ca_file, "timeout": args.timeout}
    primary = ClusterClient(args.primary_url, keys["primary_key"], **options)
    return primary, ClusterClient(args.standby_url, keys["standby_key"], **options), keys


def cmd_standby_init(args: argparse.Namespace) -> int:
    primary, target, _keys = _standby_clients(args)
    log = event_log(args)
    with primary, target:
        result = standby.init(primary, target, collections=args.collection or (), log=log)
    _emit(args, result, f"standby ready; created: {', '.join(result['created']) or 'nothing (all there)'}")
    return 0


def cmd_standby_sync(args: argparse.Namespace) -> int:
    primary, target, keys = _standby_clients(args)
    busy = standby.SyncBusy(args.metrics_dir, args.cluster, args.wait_timeout) if args.metrics_dir else None
    say = event_log(args)

    def log(line: str) -> None:
        if busy and isinstance(line, ProgressLine):
            busy.refresh()  # alive and moving: the replica alerts stay quiet a while longer
        say(line)

    started = time.monotonic()
    try:
        with primary, target, busy or contextlib.nullcontext():
            report = standby.sync(
                primary, target, keys["primary_key"], standby_key=keys["standby_key"],
                primary_nodes=args.primary_url, standby_nodes=args.standby_url,
                collections=args.collection or (), timeout=args.wait_timeout, log=log,
            )  # fmt: skip
    except BaseException:
        if args.metrics_dir:
            metrics.write_run_metrics(args.metrics_dir, "standby_sync", args.cluster, success=False,
                                      finished=time.time(), duration=time.monotonic() - started)  # fmt: skip
        raise
    if args.metrics_dir:
        standby.write_synced_metrics(args.metrics_dir, args.cluster, report["collections"])
        metrics.write_run_metrics(args.metrics_dir, "standby_sync", args.cluster, success=True,
                                  finished=time.time(), duration=report["seconds"])  # fmt: skip
    rows = [[name, time.strftime("%H:%M:%S", time.gmtime(state["reflects"])), state["primary_points"],
             state["updated"]] for name, state in report["collections"].items()]  # fmt: skip
    header = ["COLLECTION", "REFLECTS (UTC)", "PRIMARY POINTS", "REPLICAS UPDATED"]
    changes = "".join(f"{name}: {what}\n" for name, what in report["config_changes"].items())
    _emit(args, report, f"synced in {report['seconds']} s\n{changes}\n" + format_table(rows, header))
    return 0


def cmd_standby_promote(args: argparse.Namespace) -> int:
    if not args.standby_url:
        raise ConfigError("give the standby's nodes: --standby-url URL (repeatable)")
    options = {"verify": not args.insecure, "ca_file": args.ca_file, "timeout": args.timeout}
    standby_key = _read_key(args.standby_api_key_file, "--standby-api-key-file")
    target = ClusterClient(args.standby_url, standby_key, **options)
    primary = None
    if args.primary_url:  # the primary may be gone; its count is compared when it answers
        key = _read_key(args.primary_api_key_file, "--primary-api-key-file")
        primary = ClusterClient(args.primary_url, key, retries=0, **{**options, "timeout": 5.0})
    log = event_log(args)
    try:
        with target:
            report = standby.promote(target, primary, standby_key=standby_key, standby_nodes=args.standby_url,
                                     log=log)  # fmt: skip
    finally:
        if primary is not None:
            primary.close()
    if report["already_promoted"]:
        _emit(args, report, f"already promoted at {report['promoted_at']}: nothing changed")
        return 0
    rows = [[name, r["standby_points"], r["primary_points_at_sync"],
             "-" if r["primary_points_now"] is None else r["primary_points_now"], r["lag_seconds"]]
            for name, r in report["collections"].items()]  # fmt: skip
    header = ["COLLECTION", "STANDBY POINTS", "PRIMARY AT LAST SYNC", "PRIMARY NOW", "LAG (S)"]
    _emit(
        args,
        report,
        "promoted: this cluster takes writes now; point clients at it\n\n" + format_table(rows, header),
    )
    return 0


def _standby_parser(commands) -> None:
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
    _flag(group, "--insecure", "do not verify TLS certificates")
    group.add_argument("--timeout", type=seconds, default=60.0, help="seconds per request (default 60)")
    _flag(both, "--json", "machine-readable output")
    cmd = _command_group(commands, "standby", "a warm standby cluster")
    init = cmd.add_parser(
        "init",
        parents=[both],
        help="mark an empty cluster as the standby and create the primary's collections",
    )
    init.set_defaults(handler=cmd_standby_init)
    sync = cmd.add_parser(
        "sync", parents=[both], help="bring every standby replica up to date from the primary",
        description="First creates the primary's new collections on the standby and brings each collection's "
        "config and payload indexes to the primary's; then each standby replica fetches from a primary "
        "replica of its shard only the segment files that changed (docs/qdrant-behaviour.md §8, §10). "
        "Refuses a cluster that is not a standby or was promoted. The primary URLs must be reachable from "
        "the standby nodes.",
    )  # fmt: skip
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
        "promote", parents=[both], help="make the standby take writes; no sync touches it afterwards",
        description="Marks the standby promoted (stop qdrant-standby-sync.timer first) and reports per "
        "collection its count, the primary's count at the last sync and the lag at promotion; with "
        "--primary-url also the primary's count now, when it still answers.",
    )  # fmt: skip
    promote.set_defaults(handler=cmd_standby_promote)


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--url", action="append", help="node URL, repeatable (default: $QDRANT_URL, comma-separated)"
    )
    group.add_argument("--api-key-file", help="file holding the API key (default: $QDRANT_API_KEY)")
    group.add_argument("--ca-file", help="CA bundle to verify the nodes' TLS certificates")
    _flag(group, "--insecure", "do not verify TLS certificates")
    group.add_argument("--timeout", type=seconds, default=30.0, help="seconds per request (default 30)")
    _flag(common, "--json", "machine-readable output")
    return common


def _flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    parser.add_argument(name, action="store_true", help=help)


def _ingest_parser(commands, conn: argparse.ArgumentParser) -> None:
    ing = commands.add_parser(
        "ingest", parents=[conn], help="bulk-load records (JSONL, CSV, Parquet; local or s3://) over gRPC",
        description="Streams the source, derives deterministic ids, checks every record against the "
        "collection and sends batches through parallel gRPC senders. Exit 0 only when the collection holds "
        "what was sent.",
    )  # fmt: skip
    ing.add_argument("source", help="path or s3://bucket/key of a .jsonl, .csv or .parquet file")
    ing.add_argument("-c", "--collection", required=True, help="target collection (must exist)")
    ing.add_argument("--format", choices=sources.FORMATS, help="default: from the file name")
    ids = ing.add_mutually_exclusive_group()
    ids.add_argument(
        "--id-field", default="id", help="field holding an unsigned integer or UUID (default id)"
    )
    ids.add_argument("--id-from", metavar="FIELD", help="derive a UUIDv5 from this field instead")
    ing.add_argument("--id-namespace", help="UUID namespace for --id-from (default: qdrant-ops' own)")
    ing.add_argument(
        "--vector", action="append", metavar="[NAME=]FIELD",
        help="vector field, repeatable for named vectors (default: vector, or vector.<name>)",
    )  # fmt: skip
    ing.add_argument(
        "--vector-file", action="append", metavar="[NAME=]PATH", help="vectors from a rows x dim .npy file"
    )
    ing.add_argument(
        "--payload-field", action="append", metavar="FIELD",
        help="payload field, repeatable (default: the record's payload object, else every other field)",
    )  # fmt: skip
    ing.add_argument(
        "--batch-size", type=int, default=engine.DEFAULT_BATCH_SIZE, help="points per gRPC request"
    )
    ing.add_argument("--workers", type=int, help="parallel gRPC senders (default: number of CPUs)")
    ing.add_argument(
        "--decoders", type=int, help="processes that parse, check and encode (default: number of CPUs)"
    )
    ing.add_argument(
        "--in-flight", type=int, default=engine.DEFAULT_IN_FLIGHT, help="queued batches per sender"
    )
    ing.add_argument("--retries", type=int, default=8, help="per batch, on transient errors")
    ing.add_argument("--grpc-port", type=int, default=6334, help="the nodes' gRPC port")
    ing.add_argument(
        "--ordering", choices=["weak", "medium", "strong"], default="weak", help="Qdrant's write ordering"
    )
    ing.add_argument(
        "--dead-letter", metavar="PATH", help="append bad records here (JSONL) instead of stopping"
    )
    ing.add_argument("--checkpoint", metavar="PATH", help="record completed ranges here")
    _flag(ing, "--resume", "skip the ranges the checkpoint holds")
    _flag(ing, "--defer-indexing", "indexing_threshold 0 during the load")
    ing.add_argument(
        "--indexing-threshold", type=int, help="value after a deferred load (default: the previous)"
    )
    _flag(ing, "--wait-green", "wait for the collection to turn green")
    ing.add_argument(
        "--progress-every", type=seconds, default=10.0, metavar="SECONDS",
        help="without a terminal: a progress line on stderr this often (default 10)",
    )  # fmt: skip
    _flag(ing, "--no-verify", "skip the final check of counts and sampled ids")
    ing.add_argument("--s3-endpoint-url", help="S3 endpoint for s3:// sources (default: AWS)")
    ing.add_argument("--s3-region", help="region of the s3:// source's bucket")
    ing.set_defaults(handler=cmd_ingest)


def _zone_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group(
        "availability zones", "peers without a zone count as zones of their own (placement by counts only)"
    )
    group.add_argument(
        "--zone", action="append", metavar="PEER_OR_URL=ZONE", help="a peer's zone, repeatable"
    )
    group.add_argument(
        "--zones-file", metavar="FILE", help="YAML/JSON mapping of peer id or node URL to zone"
    )
    return common


def _cluster_parser(commands, conn: argparse.ArgumentParser) -> None:
    cluster_cmd = _command_group(commands, "cluster", "cluster state")
    conn = argparse.ArgumentParser(add_help=False, parents=[conn, _zone_options()])
    status = cluster_cmd.add_parser(
        "status",
        parents=[conn],
        help="peers, leader, collections, replicas sharing a zone; exit 1 when a replica is unhealthy",
    )
    status.add_argument(
        "--textfile", metavar="PATH", type=output_file,
        help="also write the placement metrics (replicas sharing a zone) for node_exporter's textfile "
        "collector",
    )  # fmt: skip
    status.set_defaults(handler=cmd_cluster_status)
    repair = cluster_cmd.add_parser(
        "repair", parents=[conn], help="remove dead peers, replicate shards back to their replication factor"
    )
    repair.add_argument(
        "--remove-peer", type=peer_id, action="append", help="dead peer to remove (force), repeatable"
    )
    _flag(
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
    _flag(repair, "--dry-run", "print the plan, change nothing")
    repair.set_defaults(handler=cmd_cluster_repair)
    balance = cluster_cmd.add_parser(
        "rebalance", parents=[conn], help="spread shard replicas evenly (or empty one peer with --drain)"
    )
    balance.add_argument("--drain", type=peer_id, metavar="PEER_ID", help="move every replica off this peer")
    _flag(balance, "--remove", "with --drain: then remove the emptied peer from the cluster (no force)")
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
    _flag(balance, "--dry-run", "print the plan as a table, change nothing")
    balance.set_defaults(handler=cmd_cluster_rebalance)


def _collections_parser(commands, conn: argparse.ArgumentParser) -> None:
    coll = _command_group(commands, "collections", "collections as code")
    coll.add_parser("list", parents=[conn], help="collections with exact counts").set_defaults(
        handler=cmd_collections_list
    )
    show = coll.add_parser("show", parents=[conn], help="one collection as a spec, with shard placement")
    show.add_argument("name", help="collection name")
    show.set_defaults(handler=cmd_collections_show)
    apply = coll.add_parser(
        "apply", parents=[conn, _zone_options()], help="create or change collections from a spec file"
    )
    apply.add_argument("-f", "--file", required=True, help="YAML: a spec, a list, or collections: [...]")
    _flag(apply, "--recreate", "allow delete+create for unchangeable settings")
    _flag(apply, "--prune-indexes", "drop payload indexes the spec omits")
    _flag(apply, "--dry-run", "print the plan against the live cluster, change nothing")
    _flag(apply, "--exit-code", "with --dry-run: exit 1 when a collection differs from its spec")
    _flag(
        apply,
        "--no-zone-fix",
        "leave a created collection's replicas where Qdrant put them, even sharing a zone",
    )
    apply.set_defaults(handler=cmd_collections_apply)
    validate = coll.add_parser("validate", help="check a spec file without any cluster (keys, types, limits)")
    validate.add_argument("-f", "--file", required=True, help="YAML: a spec, a list, or collections: [...]")
    _flag(validate, "--json", "machine-readable output")
    validate.set_defaults(handler=cmd_collections_validate)
    delete = coll.add_parser("delete", parents=[conn], help="delete a collection and all its points")
    delete.add_argument("name", help="collection name")
    _flag(delete, "--yes", "confirm the deletion")
    delete.set_defaults(handler=cmd_collections_delete)


def _points_parser(commands, conn: argparse.ArgumentParser) -> None:
    pts = _command_group(commands, "points", "single points")
    get = pts.add_parser("get", parents=[conn], help="print one point as JSON")
    get.add_argument("collection", help="collection name")
    get.add_argument("id", help="point id: an unsigned integer or a UUID")
    get.set_defaults(handler=cmd_points_get)
    upsert = pts.add_parser("upsert", parents=[conn], help="upsert a JSONL file of {id, vector, payload}")
    upsert.add_argument("collection", help="collection name")
    upsert.add_argument("-f", "--file", required=True, help="JSONL file, one point per line")
    upsert.add_argument("--batch-size", type=int, default=points.DEFAULT_BATCH, help="points per request")
    upsert.set_defaults(handler=cmd_points_upsert)


def _dataset_parser(commands) -> None:
    data = _command_group(commands, "dataset", "sample data")
    gen = data.add_parser("generate", help="write a deterministic {id, vector, city, location} dataset")
    gen.add_argument("--count", type=int, default=1_000_000, help="records to write")
    gen.add_argument("--dim", type=int, default=384, help="vector size; 0 for payload-only records")
    gen.add_argument(
        "--format", choices=dataset.FORMATS, help="file format (default: the one the name ends in)"
    )
    gen.add_argument("--payload", choices=dataset.PAYLOADS, default="city-location", help="payload shape")
    gen.add_argument("--seed", type=int, default=42, help="random seed: the same seed writes the same file")
    gen.add_argument("-o", "--output", required=True, type=output_file, help="file to write")
    _flag(gen, "--json", "machine-readable output")
    gen.set_defaults(handler=cmd_dataset_generate)


def cmd_tls_expiry(args: argparse.Namespace) -> int:
    expiries = [item for path in args.cert for item in certs.read_expiries(path)]
    if args.textfile:
        certs.write_textfile(args.textfile, expiries)
    now = time.time()
    rows = [
        [e.path, e.subject, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(e.not_after)),
         f"{(e.not_after - now) / 86400:.1f}"]
        for e in sorted(expiries, key=lambda e: e.not_after)
    ]  # fmt: skip
    _emit(args, [dataclasses.asdict(e) for e in expiries],
          format_table(rows, ["FILE", "SUBJECT", "NOT AFTER", "DAYS LEFT"]))  # fmt: skip
    return 0


def _tls_parser(commands) -> None:
    tls = _command_group(commands, "tls", "TLS certificates")
    expiry = tls.add_parser(
        "expiry", help="when each certificate of the given PEM files expires",
        description="Lists every certificate of each file (a CA bundle may hold two during a roll-over) "
        "with its end of validity; with --textfile also writes them for node_exporter's textfile "
        "collector (alerts QdrantCertificateExpiresSoon / QdrantCertificateExpired).",
    )  # fmt: skip
    expiry.add_argument("cert", nargs="+", help="PEM certificate file(s)")
    expiry.add_argument(
        "--textfile",
        metavar="PATH",
        type=output_file,
        help="also write the expiry metrics to this .prom file",
    )
    _flag(expiry, "--json", "machine-readable output")
    expiry.set_defaults(handler=cmd_tls_expiry)


def _config_options() -> argparse.ArgumentParser:
    config_opts = argparse.ArgumentParser(add_help=False)
    config_opts.add_argument(
        "--config", help=f"backup config (default {job.DEFAULT_PATH}; optional with --bucket and --cluster)"
    )
    repo = config_opts.add_argument_group("repository (over the config file)")
    repo.add_argument("--bucket", help=f"S3 bucket of the sets (or ${REPOSITORY_ENV['bucket']})")
    repo.add_argument("--prefix", help=f"key prefix (default qdrant-backups; or ${REPOSITORY_ENV['prefix']})")
    repo.add_argument("--cluster", help=f"cluster name in the keys (or ${REPOSITORY_ENV['cluster']})")
    repo.add_argument("--region", help="S3 region (or $AWS_REGION)")
    repo.add_argument("--endpoint-url", help="S3-compatible endpoint (or $AWS_ENDPOINT_URL_S3)")
    _flag(config_opts, "--json", "machine-readable output")
    return config_opts


def _backup_parser(commands, config_opts: argparse.ArgumentParser) -> None:
    bak = _command_group(commands, "backup", "backup sets in S3: take, list, seal, verify, prune")
    run = bak.add_parser("run", parents=[config_opts], help="upload this node's part of a backup set")
    run.add_argument("--backup-id", help="set id for an on-demand run, a UTC time such as 20261206T120000Z "
                     "(others are never sealed; default: the current schedule slot)")  # fmt: skip
    run.add_argument("--collection", action="append", help="only this collection, repeatable")
    _flag(run, "--force", "refused when the part exists (part records are written once); kept for scripts")
    run.set_defaults(handler=cmd_backup_run)
    bak.add_parser("list", parents=[config_opts], help="backup sets, newest first").set_defaults(
        handler=cmd_backup_list
    )
    show = bak.add_parser("show", parents=[config_opts], help="one set; exit 1 unless complete")
    show.add_argument("backup_id", help="the set's id (see backup list)")
    _flag(
        show, "--no-verify", "check each object's size from the bucket listing only, not its sha256 (faster)"
    )
    show.set_defaults(handler=cmd_backup_show)
    seal_cmd = bak.add_parser(
        "seal", parents=[config_opts], help="seal the sets whose parts are all in (the pruning role only)",
        description="Checks every unsealed set against the cluster's members (`members` in the config) and "
        "writes its seal once: only sealed sets are restorable, verifiable and kept by retention. "
        "backup prune seals first too.",
    )  # fmt: skip
    seal_cmd.set_defaults(handler=cmd_backup_seal)
    prune = bak.add_parser("prune", parents=[config_opts], help="seal what qualifies, then delete the sets "
                           "the retention policy drops")  # fmt: skip
    _flag(prune, "--dry-run", "print the plan, delete nothing")
    prune.set_defaults(handler=cmd_backup_prune)
    verify = bak.add_parser(
        "verify", parents=[config_opts], help="restore drill: restore a set into a scratch Qdrant, check it",
        description="Restores the set (default: the newest complete one) into a single-node Qdrant started "
        "for the drill on 127.0.0.1 with its storage under --workdir, removed afterwards; compares exact "
        "counts and the sampled points with the set. Writes the backup_verify metrics to metrics_dir.",
    )  # fmt: skip
    verify.add_argument("backup_id", nargs="?", help="the set's id (default: the newest complete set)")
    verify.add_argument(
        "--qdrant-binary", default="/opt/qdrant/versions/{version}/qdrant", metavar="PATH",
        help="a Qdrant of the set's minor version; {version} is the version that made the set "
        "(default: %(default)s)",
    )  # fmt: skip
    verify.add_argument(
        "--workdir", metavar="DIR",
        help="where the scratch storage goes (default: the temp directory); needs twice the set's bytes, "
        "or twice the largest collection's",
    )  # fmt: skip
    verify.add_argument("--collection", action="append", help="only this collection, repeatable")
    verify.set_defaults(handler=cmd_backup_verify)


def _restore_parser(commands, config_opts: argparse.ArgumentParser) -> None:
    rst = commands.add_parser(
        "restore", parents=[config_opts], help="restore collections from a backup set, verified",
        description="Sets made per shard (formats 2 and 3) go into a cluster of any size: the collection is "
        "created from the set, and every replica of a shard recovers its snapshot (priority no_sync), "
        "fetched by the node itself from a short-lived presigned S3 URL and checked against the set's sha256 "
        "before it is recovered. To replace existing collections (--overwrite), and for format 1 sets, "
        "every snapshot is first downloaded into the staging directory and checked, then uploaded. At the "
        "end every replica is Active, the placement balanced, and counts and sampled points match.",
    )  # fmt: skip
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
    _flag(rst, "--allow-unsealed", "with --backup-id: restore a set that is not sealed (its part records, "
          "which single nodes wrote, then decide what comes back)")  # fmt: skip
    rst.add_argument("--collection", action="append", help="only this collection, repeatable")
    rst.add_argument(
        "--map",
        action="append",
        metavar="PEER_ID=URL",
        help="format 1 sets: restore this peer's part on this node (default: in order)",
    )
    _flag(rst, "--overwrite", "replace collections that already exist")
    _flag(rst, "--dry-run", "check everything and print the plan, change nothing")
    rst.add_argument(
        "--parallel", type=int, default=2, help="snapshots recovered at once, one per node (default 2)"
    )
    rst.add_argument(
        "--wait-timeout", type=seconds, default=3600.0, help="seconds per recover and health wait"
    )
    rst.set_defaults(handler=cmd_restore)  # fmt: skip


def _command_group(commands, name: str, help_text: str):
    """A command with actions (`backup list`, ...): without an action it prints its own help."""
    group = commands.add_parser(name, help=help_text)
    group.set_defaults(help_of=group)
    return group.add_subparsers(metavar="ACTION")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qdrant-ops",
        description="Operate a distributed Qdrant cluster: backups to S3, restore, bulk ingest.",
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on an internal error, print the traceback (before COMMAND)"
    )
    conn = _connection_options()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)

    _cluster_parser(commands, conn)
    _collections_parser(commands, conn)
    _points_parser(commands, conn)
    _ingest_parser(commands, conn)
    _dataset_parser(commands)
    _tls_parser(commands)
    config_opts = _config_options()
    _backup_parser(commands, config_opts)
    _restore_parser(commands, config_opts)
    _standby_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        getattr(args, "help_of", parser).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args) or 0)
    except UsageError as exc:
        print(f"qdrant-ops: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except QdrantOpsError as exc:
        report_error(args, redact(str(exc)), EXIT_ERROR)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("qdrant-ops: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, not a traceback that may carry secrets
        if args.debug:
            raise
        detail = redact(str(exc))[:500]
        print(
            f"qdrant-ops: internal error: {type(exc).__name__}: {detail} "
            "(a bug: run again as qdrant-ops --debug ... for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
