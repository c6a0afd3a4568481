"""The hand-written UpsertPoints bytes decode, with qdrant-client's generated classes, into exactly
the request the generated classes would build."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdrant_client import grpc as pb
from qdrant_client.conversions.conversion import GrpcToRest, RestToGrpc

from qdrant_ops.ingest import wire


def decode(points: list[bytes], **kwargs) -> pb.UpsertPoints:
    return pb.UpsertPoints.FromString(wire.encode_upsert("cities", points, **kwargs))


def test_single_dense_vector_integer_id_and_payload():
    vector = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    payload = {"city": "Oslo", "location": {"lat": 59.9, "lon": 10.7}, "tags": ["a", 1, None, True]}
    request = decode([wire.encode_point(7, wire.encode_vectors(vector), wire.encode_payload(payload))])
    assert request.collection_name == "cities"
    assert request.HasField("wait") and request.wait is False
    (point,) = request.points
    assert point.id.num == 7
    assert list(point.vectors.vector.dense.data) == [0.5, -1.25, 3.0]
    assert GrpcToRest.convert_payload(point.payload) == payload
    # The generated classes build the same message from the same point.
    expected = pb.PointStruct(
        id=pb.PointId(num=7),
        vectors=pb.Vectors(vector=pb.Vector(dense=pb.DenseVector(data=[0.5, -1.25, 3.0]))),
        payload=RestToGrpc.convert_payload(payload),
    )
    assert point == expected


def test_named_vectors_uuid_id_and_strong_ordering():
    vectors = {"text": np.ones(2, np.float32), "image": np.zeros(3, np.float32)}
    uid = "0b5e6d2c-9a71-4d3b-8f65-2f5c9f3f8e11"
    request = decode(
        [wire.encode_point(uid, wire.encode_vectors(vectors), b"")], ordering="strong", wait=True
    )
    (point,) = request.points
    assert point.id.uuid == uid
    named = point.vectors.vectors.vectors
    assert list(named["text"].dense.data) == [1.0, 1.0]
    assert list(named["image"].dense.data) == [0.0, 0.0, 0.0]
    assert request.wait is True
    assert request.ordering.type == pb.WriteOrderingType.Strong


def test_payload_only_point_sends_an_empty_named_vector_map():
    """Payload-only points carry an empty named map, never an empty dense vector
    (docs/qdrant-behaviour.md §6)."""
    (point,) = decode(
        [wire.encode_point(1, wire.encode_vectors(None), wire.encode_payload({"city": "Rome"}))]
    ).points
    assert point.HasField("vectors")
    assert point.vectors.WhichOneof("vectors_options") == "vectors"
    assert len(point.vectors.vectors.vectors) == 0


def test_integers_stay_integers_and_negative_ones_round_trip():
    payload = {"big": 2**62, "neg": -5, "zero": 0, "float": 1.0}
    (point,) = decode([wire.encode_point(1, wire.encode_vectors(None), wire.encode_payload(payload))]).points
    assert point.payload["big"].integer_value == 2**62
    assert point.payload["neg"].integer_value == -5
    assert point.payload["float"].double_value == 1.0


@pytest.mark.parametrize(
    ("value", "problem"),
    [(math.nan, "not finite"), (2**64, "64-bit"), ({1: "x"}, "not a string"), (object(), "not JSON")],
)
def test_values_json_cannot_hold_are_refused(value, problem):
    with pytest.raises(ValueError, match=problem):
        wire.encode_payload({"field": value})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6), st.integers(min_value=0, max_value=2**64 - 1))
def test_any_json_payload_and_id_round_trip(payload, point_id):
    (point,) = decode(
        [wire.encode_point(point_id, wire.encode_vectors(None), wire.encode_payload(payload))]
    ).points
    assert point.id.num == point_id
    assert GrpcToRest.convert_payload(point.payload) == payload
