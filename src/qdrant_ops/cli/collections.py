"""`qdrant-ops collections`: list and show collections, validate and apply declared ones from a
YAML file, delete one (the library: qdrant_ops.cluster.collections)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from qdrant_ops.cli.common import (
    EXIT_ATTENTION,
    EXIT_OK,
    command_group,
    emit_result,
    flag,
    make_client,
    read_zones,
    zone_options,
)
from qdrant_ops.cluster import collection_spec, collections, health
from qdrant_ops.errors import ConfigError
from qdrant_ops.table import format_table


def collections_table(items: list[dict]) -> str:
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


def cmd_collections_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        items = [health.collection_overview(client, name) for name in client.collection_names()]
    emit_result(args, items, collections_table(items))
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
    emit_result(args, {"spec": spec, **overview}, text)
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
    names = [collection_spec.validate_spec(spec)["name"] for spec in load_specs(args.file)]
    emit_result(args, {"valid": names}, f"{args.file}: {len(names)} spec(s) valid: {', '.join(names)}")
    return 0


def cmd_collections_apply(args: argparse.Namespace) -> int:
    options = collections.ApplyOptions(
        recreate=args.recreate,
        prune_payload_indexes=args.prune_indexes,
        fix_zones=not args.no_zone_fix,
        dry_run=args.dry_run,
    )
    specs = load_specs(args.file)
    with make_client(args) as client:
        plans, moved = collections.apply_specs(client, specs, options, zones=lambda: read_zones(args, client))
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
    emit_result(
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
        plan = collections.ensure_collection(
            client, {"name": args.name}, collections.ApplyOptions(state="absent")
        )
    result = {"name": args.name, "deleted": plan.changed}
    emit_result(args, result, f"{args.name}: {'deleted' if plan.changed else 'did not exist'}")
    return 0


def register(commands, conn: argparse.ArgumentParser) -> None:
    coll = command_group(commands, "collections", "collections as code")
    coll.add_parser("list", parents=[conn], help="collections with exact counts").set_defaults(
        handler=cmd_collections_list
    )
    show = coll.add_parser("show", parents=[conn], help="one collection as a spec, with shard placement")
    show.add_argument("name", help="collection name")
    show.set_defaults(handler=cmd_collections_show)
    apply = coll.add_parser(
        "apply", parents=[conn, zone_options()], help="create or change collections from a spec file"
    )
    apply.add_argument("-f", "--file", required=True, help="YAML: a spec, a list, or collections: [...]")
    flag(apply, "--recreate", "allow delete+create for unchangeable settings")
    flag(apply, "--prune-indexes", "drop payload indexes the spec omits")
    flag(apply, "--dry-run", "print the plan against the live cluster, change nothing")
    flag(apply, "--exit-code", "with --dry-run: exit 1 when a collection differs from its spec")
    flag(
        apply,
        "--no-zone-fix",
        "leave a created collection's replicas where Qdrant put them, even sharing a zone",
    )
    apply.set_defaults(handler=cmd_collections_apply)
    validate = coll.add_parser("validate", help="check a spec file without any cluster (keys, types, limits)")
    validate.add_argument("-f", "--file", required=True, help="YAML: a spec, a list, or collections: [...]")
    flag(validate, "--json", "machine-readable output")
    validate.set_defaults(handler=cmd_collections_validate)
    delete = coll.add_parser("delete", parents=[conn], help="delete a collection and all its points")
    delete.add_argument("name", help="collection name")
    flag(delete, "--yes", "confirm the deletion")
    delete.set_defaults(handler=cmd_collections_delete)
