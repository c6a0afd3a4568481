"""`qdrant-ops ingest` and `qdrant-ops dataset`: bulk-load records in parallel, and generate a test
dataset (the library: qdrant_ops.ingest)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from qdrant_ops.backup import s3
from qdrant_ops.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    command_group,
    emit_event,
    emit_result,
    event_log,
    flag,
    make_client,
    output_file,
    report_error,
    seconds,
)
from qdrant_ops.errors import ConfigError
from qdrant_ops.ingest import dataset, engine, sources
from qdrant_ops.ingest.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IN_FLIGHT,
    IngestError,
    IngestOptions,
    load_plan,
)
from qdrant_ops.redact import redact


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
            emit_event({"event": "progress", "operation": "ingest", "unit": "points", **state})

    return show


def _ingest_plan(args: argparse.Namespace) -> tuple[IngestOptions, sources.Mapping]:
    """The run's options and field mapping, checked by the same code as the module's."""
    return load_plan(
        {
            "collection": args.collection,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "decoders": args.decoders,
            "in_flight": args.in_flight,
            "retries": args.retries,
            "timeout": args.timeout,
            "grpc_port": args.grpc_port,
            "ordering": args.ordering,
            "dead_letter": args.dead_letter,
            "checkpoint": args.checkpoint,
            "resume": args.resume,
            "defer_indexing": args.defer_indexing,
            "indexing_threshold": args.indexing_threshold,
            "wait_green": args.wait_green,
            "verify": not args.no_verify,
            "id_field": args.id_field,
            "id_from": args.id_from,
            "id_namespace": args.id_namespace,
            "vectors": _named(args.vector, "--vector"),
            "vector_files": _named(args.vector_file, "--vector-file"),
            "payload_fields": args.payload_field,
        }
    )


def _progress_display(args: argparse.Namespace) -> Callable[[dict], None]:
    if args.json:
        return progress_events(args.progress_every)
    return print_progress() if sys.stderr.isatty() else progress_lines(args.progress_every)


def _ingest_summary(report: dict) -> str:
    verified = (
        f"collection holds {report['verified']['count']} points"
        if report["verified"]["ok"]
        else "not verified"
    )
    return (
        f"{report['collection']}: read {report['read']}, written {report['written']}, skipped (resume) "
        f"{report['skipped']}, failed {report['failed']}, batches {report['batches']}, retries "
        f"{report['retries']}, {report['seconds']} s, {report['points_per_second']:,.0f} points/s; {verified}"
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    options, mapping = _ingest_plan(args)
    # The bucket comes from the s3:// URL; these settings only build the client.
    settings = s3.S3Settings(bucket="-", endpoint_url=args.s3_endpoint_url, region=args.s3_region)
    show, log = _progress_display(args), event_log(args)
    on_terminal = sys.stderr.isatty() and not args.json
    with make_client(args) as client:
        try:
            report = engine.ingest(
                client,
                args.source,
                options,
                mapping,
                fmt=args.format,
                s3_client_factory=lambda: s3.make_client(settings),
                progress=show,
                log=log,
            )
        except IngestError as exc:
            if on_terminal:
                print(file=sys.stderr)  # end the progress line
            if exc.report and args.json:
                print(json.dumps(exc.report, indent=2, sort_keys=True))
                emit_event({"event": "error", "message": redact(str(exc)), "exit_code": EXIT_ERROR})
            else:
                report_error(args, redact(str(exc)))
            return EXIT_INTERRUPTED if exc.report and exc.report.get("interrupted") else EXIT_ERROR
    if on_terminal:
        print(file=sys.stderr)
    emit_result(args, report, _ingest_summary(report))
    return 0


def cmd_dataset_generate(args: argparse.Namespace) -> int:
    result = dataset.generate(
        args.output, count=args.count, dim=args.dim, fmt=args.format, payload=args.payload, seed=args.seed
    )
    emit_result(
        args, result, f"wrote {result['records']} records ({result['bytes']} bytes) to {result['path']}"
    )
    return 0


def register(commands, conn: argparse.ArgumentParser) -> None:
    ing = commands.add_parser(
        "ingest",
        parents=[conn],
        help="bulk-load records (JSONL, CSV, Parquet; local or s3://) over gRPC",
        description="Streams the source, derives deterministic ids, checks every record against the "
        "collection and sends batches through parallel gRPC senders. Exit 0 only when the collection holds "
        "what was sent.",
    )
    ing.add_argument("source", help="path or s3://bucket/key of a .jsonl, .csv or .parquet file")
    ing.add_argument("-c", "--collection", required=True, help="target collection (must exist)")
    ing.add_argument("--format", choices=sources.FORMATS, help="default: from the file name")
    _record_options(ing)
    _run_options(ing)
    ing.add_argument("--s3-endpoint-url", help="S3 endpoint for s3:// sources (default: AWS)")
    ing.add_argument("--s3-region", help="region of the s3:// source's bucket")
    ing.set_defaults(handler=cmd_ingest)


def _record_options(ing: argparse.ArgumentParser) -> None:
    """Which fields of a record are its id, vectors and payload."""
    ids = ing.add_mutually_exclusive_group()
    ids.add_argument(
        "--id-field", default="id", help="field holding an unsigned integer or UUID (default id)"
    )
    ids.add_argument("--id-from", metavar="FIELD", help="derive a UUIDv5 from this field instead")
    ing.add_argument("--id-namespace", help="UUID namespace for --id-from (default: qdrant-ops' own)")
    ing.add_argument(
        "--vector",
        action="append",
        metavar="[NAME=]FIELD",
        help="vector field, repeatable for named vectors (default: vector, or vector.<name>)",
    )
    ing.add_argument(
        "--vector-file", action="append", metavar="[NAME=]PATH", help="vectors from a rows x dim .npy file"
    )
    ing.add_argument(
        "--payload-field",
        action="append",
        metavar="FIELD",
        help="payload field, repeatable (default: the record's payload object, else every other field)",
    )


def _run_options(ing: argparse.ArgumentParser) -> None:
    """How the load runs: batches, parallelism, retries, checkpoints, indexing, progress."""
    ing.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="points per gRPC request")
    ing.add_argument("--workers", type=int, help="parallel gRPC senders (default: number of CPUs)")
    ing.add_argument(
        "--decoders", type=int, help="processes that parse, check and encode (default: number of CPUs)"
    )
    ing.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT, help="queued batches per sender")
    ing.add_argument("--retries", type=int, default=8, help="per batch, on transient errors")
    ing.add_argument("--grpc-port", type=int, default=6334, help="the nodes' gRPC port")
    ing.add_argument(
        "--ordering", choices=["weak", "medium", "strong"], default="weak", help="Qdrant's write ordering"
    )
    ing.add_argument(
        "--dead-letter", metavar="PATH", help="append bad records here (JSONL) instead of stopping"
    )
    ing.add_argument("--checkpoint", metavar="PATH", help="record completed ranges here")
    flag(ing, "--resume", "skip the ranges the checkpoint holds")
    flag(ing, "--defer-indexing", "indexing_threshold 0 during the load")
    ing.add_argument(
        "--indexing-threshold", type=int, help="value after a deferred load (default: the previous)"
    )
    flag(ing, "--wait-green", "wait for the collection to turn green")
    ing.add_argument(
        "--progress-every",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="without a terminal: a progress line on stderr this often (default 10)",
    )
    flag(ing, "--no-verify", "skip the final check of counts and sampled ids")


def register_dataset(commands) -> None:
    data = command_group(commands, "dataset", "sample data")
    gen = data.add_parser("generate", help="write a deterministic {id, vector, city, location} dataset")
    gen.add_argument("--count", type=int, default=1_000_000, help="records to write")
    gen.add_argument("--dim", type=int, default=384, help="vector size; 0 for payload-only records")
    gen.add_argument(
        "--format", choices=dataset.FORMATS, help="file format (default: the one the name ends in)"
    )
    gen.add_argument("--payload", choices=dataset.PAYLOADS, default="city-location", help="payload shape")
    gen.add_argument("--seed", type=int, default=42, help="random seed: the same seed writes the same file")
    gen.add_argument("-o", "--output", required=True, type=output_file, help="file to write")
    flag(gen, "--json", "machine-readable output")
    gen.set_defaults(handler=cmd_dataset_generate)
