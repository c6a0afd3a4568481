"""`qdrant-ops points`: get one point, upsert a JSONL file of points."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qdrant_ops.cli.common import (
    command_group,
    emit_result,
    make_client,
)
from qdrant_ops.cluster import points


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
    emit_result(
        args,
        {"collection": args.collection, "upserted": count},
        f"upserted {count} points into {args.collection}",
    )
    return 0


def register(commands, conn: argparse.ArgumentParser) -> None:
    pts = command_group(commands, "points", "single points")
    get = pts.add_parser("get", parents=[conn], help="print one point as JSON")
    get.add_argument("collection", help="collection name")
    get.add_argument("id", help="point id: an unsigned integer or a UUID")
    get.set_defaults(handler=cmd_points_get)
    upsert = pts.add_parser("upsert", parents=[conn], help="upsert a JSONL file of {id, vector, payload}")
    upsert.add_argument("collection", help="collection name")
    upsert.add_argument("-f", "--file", required=True, help="JSONL file, one point per line")
    upsert.add_argument("--batch-size", type=int, default=points.DEFAULT_BATCH, help="points per request")
    upsert.set_defaults(handler=cmd_points_upsert)
