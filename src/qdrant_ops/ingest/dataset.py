"""Deterministic sample datasets for loads, drills and benchmarks, written as a stream.

Records look like the original system's {id, city, location} plus an optional dense vector:
`{"id": 0, "vector": [...], "city": "Oslo", "location": {"lat": 59.91, "lon": 10.75}}`. The same
seed, count, dimension and format always give the same bytes; memory holds one chunk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from qdrant_ops.errors import ConfigError
from qdrant_ops.ingest.sources import detect_format

FORMATS = ("jsonl", "parquet")
PAYLOADS = ("city-location", "none")
CHUNK = 10_000
CITIES = (
    ("Amsterdam", 52.37, 4.90),
    ("Athens", 37.98, 23.73),
    ("Berlin", 52.52, 13.40),
    ("Bogota", 4.71, -74.07),
    ("Buenos Aires", -34.60, -58.38),
    ("Cairo", 30.04, 31.24),
    ("Cape Town", -33.92, 18.42),
    ("Chicago", 41.88, -87.63),
    ("Delhi", 28.61, 77.21),
    ("Dublin", 53.35, -6.26),
    ("Helsinki", 60.17, 24.94),
    ("Istanbul", 41.01, 28.98),
    ("Jakarta", -6.21, 106.85),
    ("Lagos", 6.52, 3.38),
    ("Lima", -12.05, -77.04),
    ("Lisbon", 38.72, -9.14),
    ("London", 51.51, -0.13),
    ("Madrid", 40.42, -3.70),
    ("Mexico City", 19.43, -99.13),
    ("Montreal", 45.50, -73.57),
    ("Mumbai", 19.08, 72.88),
    ("Nairobi", -1.29, 36.82),
    ("Oslo", 59.91, 10.75),
    ("Paris", 48.86, 2.35),
    ("Prague", 50.08, 14.44),
    ("Rome", 41.90, 12.50),
    ("Santiago", -33.45, -70.67),
    ("Seoul", 37.57, 126.98),
    ("Singapore", 1.35, 103.82),
    ("Stockholm", 59.33, 18.07),
    ("Sydney", -33.87, 151.21),
    ("Tokyo", 35.68, 139.69),
    ("Toronto", 43.65, -79.38),
    ("Vienna", 48.21, 16.37),
    ("Warsaw", 52.23, 21.01),
    ("Zurich", 47.38, 8.54),
)


def _chunks(count: int, dim: int, payload: str, seed: int) -> Iterator[dict]:
    """Columns of CHUNK records at a time: ids, unit vectors (float32), cities and locations."""
    rng = np.random.default_rng(seed)
    names = np.array([c[0] for c in CITIES], dtype=object)
    coords = np.array([(c[1], c[2]) for c in CITIES])
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        columns: dict = {"id": np.arange(start, start + n, dtype=np.uint64)}
        if dim:
            vectors = rng.standard_normal((n, dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            columns["vector"] = vectors
        if payload == "city-location":
            which = rng.integers(0, len(CITIES), n)
            jitter = np.round(coords[which] + rng.uniform(-0.05, 0.05, (n, 2)), 5)
            columns["city"] = names[which]
            columns["lat"], columns["lon"] = jitter[:, 0], jitter[:, 1]
        yield columns


def _write_jsonl(path: Path, chunks: Iterator[dict]) -> None:
    with path.open("wb") as out:
        for columns in chunks:
            lines = []
            for i, point_id in enumerate(columns["id"].tolist()):
                record: dict = {"id": point_id}
                if "vector" in columns:
                    record["vector"] = columns["vector"][i]
                if "city" in columns:
                    record["city"] = columns["city"][i]
                    record["location"] = {"lat": float(columns["lat"][i]), "lon": float(columns["lon"][i])}
                lines.append(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY))
            out.write(b"\n".join(lines) + b"\n")


def _write_parquet(path: Path, chunks: Iterator[dict], dim: int) -> None:
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional dependency
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise ConfigError("Parquet output needs pyarrow: pip install 'qdrant-ops[parquet]'") from None
    writer = None
    try:
        for columns in chunks:
            arrays = {"id": pa.array(columns["id"])}
            if "vector" in columns:
                flat = pa.array(columns["vector"].reshape(-1))
                arrays["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim)
            if "city" in columns:
                arrays["city"] = pa.array(columns["city"].tolist(), pa.string())
                arrays["location"] = pa.StructArray.from_arrays(
                    [pa.array(columns["lat"]), pa.array(columns["lon"])], names=["lat", "lon"]
                )
            table = pa.table(arrays)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def output_format(path: str, fmt: str | None) -> str:
    """The format to write: `fmt`, or the one the file's name says. A name that says another format
    than the one written is refused: ingest reads by the name (x.csv holding Parquet was read as CSV
    with the field `PAR1...`)."""
    try:
        named = detect_format(path, None)
    except ConfigError:
        named = None
    if fmt is None and named is None:
        raise ConfigError(
            f"cannot tell the format from the name {path}: end it in .parquet or .jsonl, or pass --format"
        )
    written = fmt or named
    if written not in FORMATS:
        raise ConfigError(
            f"{path} names {written}, which generate does not write: end it in .parquet or .jsonl"
        )
    if named is not None and named != written:
        raise ConfigError(
            f"{path} names {named}, but this writes {written}: ingest would read it as {named}; "
            f"name it .{written} (generate writes {' or '.join(FORMATS)})"
        )
    return written


def generate(
    path: str, *, count: int, dim: int, fmt: str | None = None, payload: str = "city-location", seed: int = 42
) -> dict:
    """Write the dataset to `path` (atomically: a partial file never has the final name); `fmt`
    defaults to the one the name says (`output_format`)."""
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    if dim < 0 or (dim == 0 and payload == "none"):
        raise ConfigError(f"dim must be 0 (payload only, needs a payload) or more, got {dim}")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    fmt = output_format(path, fmt)
    if payload not in PAYLOADS:
        raise ConfigError(f"payload {payload!r} is not one of {', '.join(PAYLOADS)}")
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigError(f"directory {target.parent} does not exist: create it or choose another output")
    partial = target.with_name(f".{target.name}.partial")
    chunks = _chunks(count, dim, payload, seed)
    try:
        if fmt == "jsonl":
            _write_jsonl(partial, chunks)
        else:
            _write_parquet(partial, chunks, dim)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return {"path": str(target), "records": count, "dim": dim, "format": fmt, "bytes": target.stat().st_size}
