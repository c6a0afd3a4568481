"""`qdrant-ops golden draw|check`: golden queries around a change (a rolling upgrade, a config
change): draw them into a file before, check the cluster against them after
(qdrant_ops.cluster.golden; backup sets carry their own)."""

from __future__ import annotations

import argparse

from qdrant_ops.cli.common import command_group, emit_result, event_log, make_client, output_file
from qdrant_ops.cluster import golden
from qdrant_ops.table import format_table


def _queries(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of queries between 1 and 100")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a recall between 0 and 1")
    return value


def cmd_golden_draw(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        drawn = golden.draw(client, args.collection or (), count=args.queries)
    golden.write_file(args.output, drawn)
    rows = [
        [name, len(g["queries"]), golden.recall_cell(g | {"recall": g["source_recall"]}, "-")]
        for name, g in drawn.items()
    ]
    summary = {
        name: {"queries": len(g["queries"]), "source_recall": g["source_recall"]} for name, g in drawn.items()
    }
    emit_result(
        args,
        {"file": args.output, "collections": summary},
        f"golden queries written to {args.output}\n\n"
        + format_table(rows, ["COLLECTION", "QUERIES", "RECALL@10"]),
    )
    return 0


def cmd_golden_check(args: argparse.Namespace) -> int:
    stored = golden.read_file(args.file)
    with make_client(args) as client:
        results, problems = golden.check_all(client, stored, event_log(args), threshold=args.threshold)
    rows = [
        [
            name,
            golden.recall_cell(r, "none"),
            "identical" if not r["exact_differences"] else "DIFFERS",
            "ok" if r["passed"] else "FAILED",
        ]
        for name, r in results.items()
    ]
    head = "the golden queries find what they found" if not problems else "\n".join(problems)
    emit_result(
        args,
        {"collections": results, "problems": problems},
        head + "\n\n" + format_table(rows, ["COLLECTION", "RECALL@10 (SOURCE)", "EXACT SEARCH", "RESULT"]),
    )
    return 1 if problems else 0


def register(commands, conn: argparse.ArgumentParser) -> None:
    group = command_group(
        commands, "golden", "golden queries: prove searches answer alike before and after a change"
    )
    draw = group.add_parser(
        "draw",
        parents=[conn],
        help="draw searches from each collection's own points, with their exact top-10, into a file",
        description="Draws (seeded) searches from each collection's points and records their exact top-10 "
        "and the recall@10 the index reaches on them now. The file holds vectors of your data: it is "
        "written mode 0600.",
    )
    draw.add_argument("-o", "--output", required=True, type=output_file, help="the file to write")
    draw.add_argument("-c", "--collection", action="append", help="only this collection, repeatable")
    draw.add_argument("--queries", type=_queries, default=20, help="searches per collection")
    draw.set_defaults(handler=cmd_golden_draw)
    check = group.add_parser(
        "check",
        parents=[conn],
        help="run the drawn searches again; exit 1 when the exact results differ or the index finds too few",
        description="Fails a collection whose exact search returns other ids or scores than drawn (the data "
        "differs), or whose normal search finds fewer of them than the floor: --threshold, or for a source "
        "that did not reach it, its own recall less three standard errors (docs/backups.md, Golden queries).",
    )
    check.add_argument("file", help="the file `golden draw` wrote")
    check.add_argument(
        "--threshold", type=_share, default=golden.THRESHOLD, help="recall@10 that always passes"
    )
    check.set_defaults(handler=cmd_golden_check)
