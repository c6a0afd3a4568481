"""Protocol-buffer bytes of Qdrant's gRPC `UpsertPoints`, written directly.

Building the generated protobuf objects per point costs more than sending them (docs/qdrant-behaviour.md
§5: the ingest speed is decided by parsing and encoding). A dense vector is already its wire form:
packed little-endian float32, which numpy gives with `tobytes()`. So the encoder concatenates
tags, lengths and those bytes. Field numbers come from qdrant's points.proto / qdrant_common.proto
/ json_with_int.proto (stable: protobuf field numbers are never reused), and
tests/unit/test_ingest_wire.py decodes every shape with qdrant-client's generated classes.
"""

from __future__ import annotations

import datetime
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# (field number << 3) | wire type, pre-encoded as varints.
_UPSERT_COLLECTION = b"\x0a"  # UpsertPoints.collection_name = 1
_UPSERT_WAIT = b"\x10"  # UpsertPoints.wait = 2 (varint)
_UPSERT_POINT = b"\x1a"  # UpsertPoints.points = 3
_UPSERT_ORDERING = b"\x22"  # UpsertPoints.ordering = 4 (WriteOrdering{type = 1})
_POINT_ID = b"\x0a"  # PointStruct.id = 1
_POINT_PAYLOAD = b"\x1a"  # PointStruct.payload = 3 (map entry)
_POINT_VECTORS = b"\x22"  # PointStruct.vectors = 4
_ID_NUM = b"\x08"  # PointId.num = 1 (varint)
_ID_UUID = b"\x12"  # PointId.uuid = 2
_VECTORS_SINGLE = b"\x0a"  # Vectors.vector = 1
_VECTORS_NAMED = b"\x12"  # Vectors.vectors = 2 (NamedVectors{map vectors = 1})
_VECTOR_DENSE = b"\xaa\x06"  # Vector.dense = 101
_FIELD1 = b"\x0a"  # DenseVector.data, map entry key, NamedVectors.vectors, ListValue.values
_FIELD2 = b"\x12"  # map entry value
_EMPTY_NAMED_VECTORS = _POINT_VECTORS + b"\x02" + _VECTORS_NAMED + b"\x00"
ORDERINGS = {"weak": 0, "medium": 1, "strong": 2}


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [_encode_varint(i) for i in range(1 << 14)]  # every length below 16 KiB: one lookup


def varint(value: int) -> bytes:
    return _SMALL_VARINTS[value] if value < 16384 else _encode_varint(value)


def _field(tag: bytes, body: bytes) -> bytes:
    return tag + varint(len(body)) + body


def _value(value: Any) -> bytes:
    """qdrant.Value (json_with_int.proto), the payload's JSON with integers kept as integers."""
    if value is None:
        return b"\x08\x00"
    if value is True or value is False:
        return b"\x28" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"integer {value} does not fit in a 64-bit payload integer")
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"payload number {value} is not finite (JSON has no NaN or infinity)")
        return b"\x11" + struct.pack("<d", value)
    if isinstance(value, str):
        return _field(b"\x22", value.encode())
    if isinstance(value, Mapping):
        return _field(b"\x32", _payload_map(value, _FIELD1))
    if isinstance(value, (list, tuple)):
        return _field(b"\x3a", b"".join(_field(_FIELD1, _value(item)) for item in value))
    if isinstance(value, np.generic):
        return _value(value.item())
    if isinstance(value, (datetime.datetime, datetime.date)):
        return _value(value.isoformat())  # Qdrant's datetime payloads are RFC 3339 strings
    raise ValueError(f"payload value of type {type(value).__name__} is not JSON")


def _payload_map(payload: Mapping[str, Any], tag: bytes) -> bytes:
    parts = []
    for key, item in payload.items():
        if not isinstance(key, str):
            raise ValueError(f"payload key {key!r} is not a string")
        parts.append(_field(tag, _field(_FIELD1, key.encode()) + _field(_FIELD2, _value(item))))
    return b"".join(parts)


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The PointStruct.payload map entries (empty bytes for an empty payload)."""
    return _payload_map(payload, _POINT_PAYLOAD)


def _dense(vector: np.ndarray) -> bytes:
    data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    return _field(_VECTOR_DENSE, _field(_FIELD1, data))


def encode_vectors(vectors: np.ndarray | Mapping[str, np.ndarray] | None) -> bytes:
    """PointStruct.vectors: one unnamed dense vector, named dense vectors, or none (payload-only)."""
    if vectors is None:
        return _EMPTY_NAMED_VECTORS
    if isinstance(vectors, np.ndarray):
        return _field(_POINT_VECTORS, _field(_VECTORS_SINGLE, _dense(vectors)))
    entries = b"".join(
        _field(_FIELD1, _field(_FIELD1, name.encode()) + _field(_FIELD2, _dense(vector)))
        for name, vector in vectors.items()
    )
    return _field(_POINT_VECTORS, _field(_VECTORS_NAMED, entries))


def encode_id(point_id: int | str) -> bytes:
    if isinstance(point_id, int):
        return _field(_POINT_ID, _ID_NUM + varint(point_id))
    return _field(_POINT_ID, _field(_ID_UUID, point_id.encode()))


def encode_point(point_id: int | str, vectors_field: bytes, payload_field: bytes) -> bytes:
    return _field(_UPSERT_POINT, encode_id(point_id) + payload_field + vectors_field)


def encode_upsert(
    collection: str, points: Sequence[bytes], *, wait: bool = False, ordering: str = "weak"
) -> bytes:
    """A serialized qdrant.UpsertPoints from points already encoded with `encode_point`."""
    head = _field(_UPSERT_COLLECTION, collection.encode()) + _UPSERT_WAIT + (b"\x01" if wait else b"\x00")
    if ordering != "weak":
        head += _field(_UPSERT_ORDERING, b"\x08" + varint(ORDERINGS[ordering]))
    return head + b"".join(points)
