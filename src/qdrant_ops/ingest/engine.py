"""Parallel bulk ingest: a stream of records into a Qdrant collection over gRPC.

The parent process reads raw records in blocks and hands them to decoder processes, which parse,
check and encode them (in parallel: parsing decides the speed, docs/qdrant-behaviour.md §5). The parent
takes the results back in record order, so a bad record stops the run before anything after it is
sent; it routes each point by id to one of N sender processes (the same id always goes through the
same sender, so its writes keep their order), and hands each sender whole encoded `UpsertPoints`
batches through a bounded queue (bounded memory, bounded batches in flight). Each sender has its
own gRPC channel, sends one batch at a time with `wait=false` and retries transient failures with
capped exponential backoff and jitter. Points are grouped in chunks of `batch_size x workers`; a
chunk is complete when every sender acknowledged its part, and the checkpoint file holds the
complete record ranges, so `resume` skips exactly those. At the end the collection is checked for
what was sent.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable

from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import ConfigError
from qdrant_ops.ingest.checkpoint import Checkpoint
from qdrant_ops.ingest.options import (
    DEFAULT_INDEXING_THRESHOLD,
    IngestError,
    IngestOptions,
)
from qdrant_ops.ingest.pipeline import Run
from qdrant_ops.ingest.sources import Decoder, Mapping, NpyRows, Source, open_source
from qdrant_ops.polling import reached


# -- the run ---------------------------------------------------------------------------------------------
def collection_vectors(info: dict) -> dict[str, int]:
    """Dense vectors of a collection: {"": size} for the unnamed one, {name: size} when named."""
    vectors = info["config"]["params"].get("vectors") or {}
    if "size" in vectors:
        return {"": int(vectors["size"])}
    return {name: int(params["size"]) for name, params in vectors.items()}


def resolve_vectors(mapping: Mapping, available: dict[str, int], collection: str) -> dict[str, int]:
    """Which collection vectors the load fills, checked against the collection."""
    named = {**mapping.vectors, **mapping.vector_files}
    if not named:
        return available
    wanted = {}
    for name in named:
        if name not in available:
            have = ", ".join(repr(n) if n else "'' (the unnamed vector)" for n in available) or "none"
            raise ConfigError(
                f"collection {collection!r} has no vector {name or '(unnamed)'!r}; its dense vectors: {have}"
            )
        wanted[name] = available[name]
    return wanted


def default_mapping(mapping: Mapping, dims: dict[str, int]) -> Mapping:
    """Fill in the vector fields: `vector` for the unnamed vector, `vector.<name>` for named ones
    (the REST PointStruct shape)."""
    missing = {n: ("vector" if n == "" else f"vector.{n}") for n in dims if n not in mapping.vector_files}
    vectors = {**missing, **mapping.vectors}
    return Mapping(
        mapping.id_field,
        mapping.id_from,
        mapping.id_namespace,
        vectors,
        dict(mapping.vector_files),
        mapping.payload,
    )


def verify_written(
    client: ClusterClient, collection: str, ids: list, *, expected: int | None, minimum: int, timeout: float
) -> dict:
    """The final check: sampled ids exist, and the exact count is what was sent (writes were
    acknowledged with wait=false, so the count may need a moment to catch up)."""
    missing: list = []

    def sample_present() -> bool:
        missing.clear()
        for start in range(0, len(ids), 1000):
            part = ids[start : start + 1000]
            found = client.retrieve_points(collection, part, with_payload=False, with_vector=False)
            present = {point["id"] for point in found}
            missing.extend(i for i in part if i not in present)
        return not missing

    counted = {"count": None}

    def count_ok() -> bool:
        counted["count"] = client.count_points(collection)
        return counted["count"] == expected if expected is not None else counted["count"] >= minimum

    ok = reached(sample_present, timeout=timeout, interval=0.5) and reached(
        count_ok, timeout=timeout, interval=0.5
    )
    return {"ok": ok, "count": counted["count"], "expected": expected, "missing_sample": missing[:10]}


def _set_indexing_threshold(client: ClusterClient, collection: str, value: int) -> None:
    body = {"optimizers_config": {"indexing_threshold": value}}
    client.update_collection(collection, body)


def prepare(
    client: ClusterClient,
    collection: str,
    location: str,
    mapping: Mapping,
    *,
    fmt: str | None = None,
    s3_client_factory=None,
) -> tuple[dict, dict[str, int], Mapping, Source]:
    """Every check that needs no write: the collection exists, the mapping names its vectors and the
    source's fields. Returns the collection info, the vectors to fill, the completed mapping and the
    open source (the caller closes it). The source is opened first: a missing or unreadable file is
    named before any server is asked."""
    source = open_source(location, fmt, s3_client_factory)
    try:
        info = client.collection_info(collection)
        if info is None:
            raise ConfigError(
                f"collection {collection!r} does not exist: create it first "
                "(qdrant-ops collections apply, or the qdrant_collection module)"
            )
        dims = resolve_vectors(mapping, collection_vectors(info), collection)
        mapping = default_mapping(mapping, dims)
        mapping.check_columns(source)
    except BaseException:
        source.close()
        raise
    return info, dims, mapping, source


def ingest(
    client: ClusterClient,
    location: str,
    options: IngestOptions,
    mapping: Mapping | None = None,
    *,
    fmt: str | None = None,
    s3_client_factory=None,
    progress: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> dict:
    """Load `location` into `options.collection`; returns the report, raises IngestError."""
    info, dims, mapping, source = prepare(
        client,
        options.collection,
        location,
        mapping or Mapping(),
        fmt=fmt,
        s3_client_factory=s3_client_factory,
    )
    npy: dict[str, NpyRows] = {}
    try:
        checkpoint = Checkpoint.open(options.checkpoint, location, options.collection, resume=options.resume)
        for name, path in mapping.vector_files.items():
            npy[name] = NpyRows(path, s3_client_factory)
        start_count = client.count_points(options.collection)
        threshold_before = _defer_indexing(client, options, info, checkpoint, log)
        previous_handlers = None
        try:
            with _dead_letter_file(options.dead_letter) as dead_letter:
                run = Run(
                    client=client,
                    source=source,
                    decoder=Decoder(mapping, dims, location),
                    npy=npy,
                    options=options,
                    checkpoint=checkpoint,
                    progress=progress,
                    dead_letter=dead_letter,
                )
                previous_handlers = _install_stop_handlers(run)
                run.run()
        finally:
            if previous_handlers is not None:
                _restore_handlers(previous_handlers)
            if threshold_before is not None:
                _undefer_indexing(client, options, threshold_before, checkpoint, log)
        report = _report(location, options, run, checkpoint)
        _raise_unless_complete(run, options, npy, report)
        _verify_load(client, options, run, start_count, report)
        if options.wait_green:
            _wait_green(client, options.collection, report)
        return report
    finally:
        source.close()
        for rows in npy.values():
            rows.close()


def _wait_green(client: ClusterClient, collection: str, report: dict) -> None:
    if not reached(
        lambda: client.collection_info(collection)["status"] == "green", timeout=3600, interval=2.0
    ):
        raise IngestError("the collection did not turn green within an hour after the load", report)


def _undefer_indexing(
    client: ClusterClient, options: IngestOptions, threshold_before: int, checkpoint: Checkpoint, log
) -> None:
    """The threshold back to what it was (or the one asked for), whatever ended the load."""
    restored = options.indexing_threshold or threshold_before
    _set_indexing_threshold(client, options.collection, restored)
    checkpoint.restore_indexing_threshold = None
    checkpoint.save(force=True)
    log(f"indexing_threshold restored to {restored}")


def _defer_indexing(
    client: ClusterClient,
    options: IngestOptions,
    info: dict,
    checkpoint: Checkpoint,
    log: Callable[[str], None],
) -> int | None:
    """With defer_indexing, set indexing_threshold 0 for the load; returns the value to restore
    (recorded in the checkpoint first, so a crashed run's successor restores the right one)."""
    if not options.defer_indexing:
        return None
    current = info["config"]["optimizer_config"].get("indexing_threshold")
    # A crashed earlier run left 0 behind: the value to restore is the one it recorded.
    threshold_before = checkpoint.restore_indexing_threshold or current or DEFAULT_INDEXING_THRESHOLD
    checkpoint.restore_indexing_threshold = threshold_before
    checkpoint.save(force=True)
    _set_indexing_threshold(client, options.collection, 0)
    log(f"indexing deferred (indexing_threshold 0, was {current})")
    return threshold_before


def _report(location: str, options: IngestOptions, run: Run, checkpoint: Checkpoint) -> dict:
    seconds = time.monotonic() - run.started
    return {
        "collection": options.collection,
        "source": location,
        **run.stats,
        "seconds": round(seconds, 3),
        "points_per_second": round(run.stats["written"] / seconds, 1) if seconds > 0 else 0.0,
        "workers": options.workers,
        "decoders": options.decoders,
        "batch_size": options.batch_size,
        "checkpoint": options.checkpoint,
        "completed_ranges": checkpoint.ranges,
        "interrupted": bool(run.stop_signal),
    }


def _raise_unless_complete(run: Run, options: IngestOptions, npy: dict[str, NpyRows], report: dict) -> None:
    if run.error:
        hint = (
            f"; fix it and re-run with --resume --checkpoint {options.checkpoint}"
            if options.checkpoint
            else ""
        )
        raise IngestError(f"{run.error}{hint}", report)
    if run.stop_signal:
        raise IngestError(
            f"stopped by {run.stop_signal} after the batches in flight; "
            + (
                f"resume with --resume --checkpoint {options.checkpoint}"
                if options.checkpoint
                else "no checkpoint was kept: re-run from the start (upserts are idempotent)"
            ),
            report,
        )
    leftover = [
        f"{rows.location} has {rows.rows - rows.taken} rows more than the source has records"
        for rows in npy.values()
        if rows.taken < rows.rows
    ]
    if leftover:
        raise IngestError("; ".join(leftover) + ": vectors and records do not line up", report)


def _verify_load(
    client: ClusterClient, options: IngestOptions, run: Run, start_count: int, report: dict
) -> None:
    """The collection holds what was sent: exact count (for a fresh load), sampled ids present."""
    if not options.verify:
        report["verified"] = {"ok": None, "count": None, "expected": None, "missing_sample": []}
        return
    fresh = start_count == 0 and not options.resume
    distinct = run.distinct_written()
    check = verify_written(
        client,
        options.collection,
        run.sample,
        expected=distinct if fresh else None,
        minimum=distinct,
        timeout=options.verify_timeout,
    )
    report["verified"] = check
    if not check["ok"]:
        raise IngestError(
            f"the collection does not hold what was sent: count {check['count']}, expected "
            f"{check['expected'] or f'at least {distinct}'}, sampled ids missing {check['missing_sample']}",
            report,
        )


@contextlib.contextmanager
def _dead_letter_file(path: str | None):
    if not path:
        yield None
        return
    try:
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot write the dead-letter file {path}: {exc.strerror}") from None
    with handle:
        yield handle


def _install_stop_handlers(run: Run) -> dict | None:
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, _frame) -> None:
        run.stop_signal = signal.Signals(signum).name

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous: dict | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)
