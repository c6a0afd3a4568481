"""Input for the bulk ingester: JSONL, CSV and Parquet files, local or s3://, read as a stream.

A source yields raw rows (dicts) with their record number; `Mapping` turns a row into a point
(deterministic id, float32 vectors checked against the collection, payload) or raises
`RecordError` naming the file and record. Nothing here holds more than one read buffer or one
Parquet record batch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import uuid
from collections.abc import Iterator
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from qdrant_ops.cluster.points import parse_point_id
from qdrant_ops.errors import ConfigError, QdrantOpsError

FORMATS = ("jsonl", "csv", "parquet")
# UUIDv5 namespace for ids derived from a key field; fixed so every run derives the same ids.
DEFAULT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "qdrant-ops/ingest")
READ_BUFFER = 8 * 1024 * 1024


class RecordError(QdrantOpsError):
    """One input record cannot become a point; carries where it is for messages and dead letters."""

    def __init__(self, source: str, number: int, problem: str, raw: Any = None) -> None:
        self.source, self.number, self.problem, self.raw = source, number, problem, raw
        super().__init__(f"{source}: record {number}: {problem}")


# -- opening local files and s3:// objects ---------------------------------------------------------
class S3RangeReader(io.RawIOBase):
    """A seekable read-only file over an S3 object with ranged GETs: Parquet's footer and .npy
    headers need seeks, and nothing is downloaded whole."""

    def __init__(self, client, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size or not len(buffer):
            return 0
        end = min(self._size, self._pos + len(buffer)) - 1
        body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}")
        data = body["Body"].read()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    @property
    def size(self) -> int:
        return self._size


def split_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ConfigError(f"{url} is not an s3://BUCKET/KEY location")
    return bucket, key


def open_binary(location: str, s3_client_factory=None) -> tuple[BinaryIO, int]:
    """(buffered binary file, size in bytes) for a local path or an s3:// URL."""
    if location.startswith("s3://"):
        if s3_client_factory is None:
            raise ConfigError(f"{location}: s3:// sources need S3 settings")
        bucket, key = split_s3_url(location)
        try:
            raw = S3RangeReader(s3_client_factory(), bucket, key)
        except Exception as exc:  # botocore raises many types; the message says what to check
            raise ConfigError(
                f"cannot read {location}: {exc} (check the bucket, key, credentials and endpoint)"
            ) from None
        return io.BufferedReader(raw, buffer_size=READ_BUFFER), raw.size
    try:
        handle = open(location, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - closed by the caller
        return handle, os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise ConfigError(f"cannot read {location}: {exc.strerror}") from None


def detect_format(location: str, given: str | None) -> str:
    if given:
        if given not in FORMATS:
            raise ConfigError(f"format {given!r} is not one of {', '.join(FORMATS)}")
        return given
    suffixes = Path(location).suffixes
    for suffix in reversed(suffixes):
        name = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
        if suffix in name:
            return name[suffix]
    raise ConfigError(f"cannot tell the format of {location} from its name: pass --format jsonl|csv|parquet")


# -- rows --------------------------------------------------------------------------------------------
@dataclass
class Source:
    """Raw rows of one input with 1-based record numbers, and how far the reading has got."""

    location: str
    format: str
    handle: BinaryIO
    size: int
    columns: tuple[str, ...] | None = None  # known up front for CSV and Parquet
    total_records: int | None = None  # Parquet knows its row count
    _parquet: Any = None

    def close(self) -> None:
        self.handle.close()

    def progress(self, records_read: int) -> float | None:
        """Fraction done, for the ETA."""
        if self.total_records:
            return records_read / self.total_records
        if self.size and self.format != "parquet":
            with contextlib.suppress(OSError, ValueError):
                return self.handle.tell() / self.size
        return None

    def rows(self) -> Iterator[tuple[int, Any]]:
        if self.format == "jsonl":
            yield from self._jsonl_rows()
        elif self.format == "csv":
            yield from self._csv_rows()
        else:
            yield from self._parquet_rows()

    def _jsonl_rows(self) -> Iterator[tuple[int, Any]]:
        for number, line in enumerate(self.handle, start=1):
            if line.strip():
                yield number, line

    def _csv_rows(self) -> Iterator[tuple[int, Any]]:
        text = io.TextIOWrapper(self.handle, encoding="utf-8", newline="")
        reader = csv.reader(text)
        next(reader, None)  # the header, read in open_source
        for number, row in enumerate(reader, start=1):
            if not row:
                continue
            if len(row) != len(self.columns):
                raise RecordError(
                    self.location, number, f"has {len(row)} fields, the header has {len(self.columns)}", row
                )
            yield number, dict(zip(self.columns, row, strict=True))

    def _parquet_rows(self) -> Iterator[tuple[int, Any]]:
        number = 0
        for batch in self._parquet.iter_batches(batch_size=4096):
            names = batch.schema.names
            for values in zip(*(_arrow_column(batch.column(name)) for name in names), strict=True):
                number += 1
                yield number, dict(zip(names, values, strict=True))


def _arrow_column(column) -> Any:
    """A list-like per column; fixed-size float lists (vectors) become one 2-D numpy array."""
    import pyarrow as pa  # noqa: PLC0415 - only Parquet needs it

    kind = column.type
    if pa.types.is_fixed_size_list(kind) and pa.types.is_floating(kind.value_type) and column.null_count == 0:
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), kind.list_size)
    return column.to_pylist()


def open_source(location: str, fmt: str | None = None, s3_client_factory=None) -> Source:
    fmt = detect_format(location, fmt)
    handle, size = open_binary(location, s3_client_factory)
    source = Source(location, fmt, handle, size)
    try:
        if fmt == "csv":
            header = handle.readline().decode("utf-8").rstrip("\r\n")
            columns = next(csv.reader([header]), [])
            if not columns:
                raise ConfigError(
                    f"{location}: the CSV file has no header line (first line names the columns)"
                )
            handle.seek(0)
            source.columns = tuple(columns)
        elif fmt == "parquet":
            try:
                import pyarrow.parquet as pq  # noqa: PLC0415 - optional dependency
            except ImportError:
                raise ConfigError("Parquet input needs pyarrow: pip install 'qdrant-ops[parquet]'") from None
            try:
                source._parquet = pq.ParquetFile(handle)
            except Exception as exc:  # pyarrow.ArrowInvalid and friends
                raise ConfigError(f"{location} is not a readable Parquet file: {exc}") from None
            source.columns = tuple(source._parquet.schema_arrow.names)
            source.total_records = source._parquet.metadata.num_rows
    except BaseException:
        handle.close()
        raise
    return source


class NpyRows:
    """Rows of a 2-D float .npy file read in order, so side-file vectors stream like the records."""

    def __init__(self, location: str, s3_client_factory=None) -> None:
        self.location = location
        self._handle, _ = open_binary(location, s3_client_factory)
        try:
            version = np.lib.format.read_magic(self._handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(self._handle)
        except ValueError as exc:
            self._handle.close()
            raise ConfigError(f"{location} is not a .npy file: {exc}") from None
        if len(shape) != 2 or fortran or dtype.kind != "f":
            self._handle.close()
            raise ConfigError(
                f"{location}: expected a C-ordered 2-D float array (rows x dim), got shape {shape} {dtype}"
            )
        self.rows, self.dim, self.dtype = shape[0], shape[1], dtype
        self.taken = 0

    def take(self) -> np.ndarray | None:
        if self.taken >= self.rows:
            return None
        data = self._handle.read(self.dim * self.dtype.itemsize)
        self.taken += 1
        return np.frombuffer(data, dtype=self.dtype).astype(np.float32)

    def close(self) -> None:
        self._handle.close()


# -- rows to points ------------------------------------------------------------------------------------
def _lookup(row: MappingABC, name: str) -> Any:
    if name in row:
        return row[name]
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, MappingABC) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def _vector(value: Any, dim: int) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.shape == (dim,):
        if not np.isfinite(value).all():
            raise ValueError("contains NaN or infinity")
        return value  # a row of a Parquet vector column: already what the wire needs
    if isinstance(value, str):  # CSV cells: a JSON array or numbers separated by spaces/commas
        text = value.strip()
        value = (
            orjson.loads(text) if text.startswith("[") else text.replace(",", " ").replace(";", " ").split()
        )
    try:
        vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError("has a non-numeric value") from None
    if vector.ndim != 1:
        raise ValueError(f"is not a flat list of numbers (shape {vector.shape})")
    if len(vector) != dim:
        raise ValueError(f"has {len(vector)} values, the collection expects {dim}")
    if not np.isfinite(vector).all():
        raise ValueError("contains NaN or infinity")
    return vector


@dataclass(frozen=True)
class Mapping:
    """Where each part of a point comes from in a row.

    `vectors` maps a collection vector name ("" for the unnamed one) to a field (dotted paths
    reach into objects); `vector_files` to a .npy side file instead. `payload` None means: the
    row's "payload" object if it has one, else every field that is not the id or a vector.
    """

    id_field: str | None = "id"
    id_from: str | None = None  # derive a UUIDv5 from this field instead
    id_namespace: uuid.UUID = DEFAULT_ID_NAMESPACE
    vectors: dict[str, str] = field(default_factory=dict)
    vector_files: dict[str, str] = field(default_factory=dict)
    payload: tuple[str, ...] | None = None

    def fields_used(self) -> list[str]:
        used = [self.id_from or self.id_field, *self.vectors.values(), *(self.payload or ())]
        return [name for name in used if name]

    def check_columns(self, source: Source) -> None:
        """Columns are known up front for CSV and Parquet: refuse a mapping that names others."""
        if source.columns is None:
            return
        for name in self.fields_used():
            if name.split(".")[0] not in source.columns and name not in source.columns:
                raise ConfigError(
                    f"{source.location} has no field {name!r} named in the mapping; "
                    f"its fields are: {', '.join(source.columns)}"
                )

    def point_id(self, row: MappingABC) -> int | str:
        if self.id_from:
            return str(uuid.uuid5(self.id_namespace, str(_lookup(row, self.id_from))))
        return parse_point_id(_lookup(row, self.id_field))

    def payload_of(self, row: MappingABC) -> dict:
        if self.payload is not None:
            return {name.rsplit(".", 1)[-1]: _lookup(row, name) for name in self.payload}
        nested = row.get("payload")
        if isinstance(nested, dict):
            return nested
        skip = {self.id_field, *(v.split(".")[0] for v in self.vectors.values())}
        return {k: v for k, v in row.items() if k not in skip}


@dataclass
class Point:
    number: int
    id: int | str
    vectors: dict[str, np.ndarray]
    payload: dict


class Decoder:
    """Rows to points for one collection, raising RecordError with file and record number."""

    def __init__(self, mapping: Mapping, dims: dict[str, int], location: str) -> None:
        self.mapping, self.dims, self.location = mapping, dims, location

    def decode(self, number: int, raw: Any, side: dict[str, np.ndarray | None] | None = None) -> Point:
        """One row as a point. `side` holds this record's rows of the .npy side files (None when
        a file has run out), read in record order by the caller."""
        where = self.location
        if isinstance(raw, bytes):
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise RecordError(where, number, f"is not valid JSON ({exc})", raw) from None
            if not isinstance(row, dict):
                raise RecordError(where, number, "is not a JSON object", raw)
        else:
            row = raw
        try:
            point_id = self.mapping.point_id(row)
        except KeyError as exc:
            field_name = exc.args[0]
            raise RecordError(
                where, number, f"has no id field {field_name!r}; fields: {', '.join(row)}", raw
            ) from None
        except ConfigError as exc:
            raise RecordError(where, number, str(exc), raw) from None
        vectors = {}
        for name, dim in self.dims.items():
            label = f"vector {name!r}" if name else "the vector"
            if name in self.mapping.vector_files:
                vector, path = (side or {}).get(name), self.mapping.vector_files[name]
                if vector is None:
                    raise RecordError(where, number, f"{path} has no row left for it", raw)
                if len(vector) != dim:
                    raise RecordError(
                        where, number, f"{label} from {path} has {len(vector)} values, not {dim}", raw
                    )
                vectors[name] = vector
                continue
            field_name = self.mapping.vectors[name]
            try:
                value = _lookup(row, field_name)
            except KeyError:
                raise RecordError(
                    where, number, f"has no {label} (field {field_name!r}); fields: {', '.join(row)}", raw
                ) from None
            try:
                vectors[name] = _vector(value, dim)
            except ValueError as exc:
                raise RecordError(where, number, f"{label} (field {field_name!r}) {exc}", raw) from None
        try:
            payload = self.mapping.payload_of(row)
        except KeyError as exc:
            raise RecordError(where, number, f"has no payload field {exc.args[0]!r}", raw) from None
        return Point(number, point_id, vectors, payload)
