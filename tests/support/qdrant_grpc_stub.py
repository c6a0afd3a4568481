"""A STUB of Qdrant's gRPC `qdrant.Points/Upsert` for unit tests, writing into a REST stub's state.

It is not Qdrant. It decodes requests with qdrant-client's generated classes (so a malformed
request fails here as it would on a server), checks vector sizes as Qdrant does (INVALID_ARGUMENT
"Wrong input: Vector dimension error"), and can fail the next requests with chosen status codes
(and a retry-after trailer) to exercise the ingester's retries. A point whose payload has the key
`stub_refuse` is refused with INVALID_ARGUMENT, like a check only the server can make.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
from qdrant_client import grpc as pb
from qdrant_client.conversions.conversion import GrpcToRest

from tests.support.qdrant_stub import StubState


def _vectors(point) -> dict | list:
    which = point.vectors.WhichOneof("vectors_options")
    if which == "vector":
        return list(point.vectors.vector.dense.data)
    if which == "vectors":
        return {name: list(v.dense.data) for name, v in point.vectors.vectors.vectors.items()}
    raise ValueError("Wrong input: vectors are required")


class _Points(pb.PointsServicer):
    def __init__(self, state: StubState) -> None:
        self.state = state
        self.fail_next: list[tuple[grpc.StatusCode, str | None]] = []  # (code, retry-after)
        self.upserts: list[tuple[int, bool]] = []  # (points, wait) of every accepted request
        self.lock = threading.Lock()
        self.api_key: str | None = None

    def Upsert(self, request, context):
        with self.lock:
            if self.api_key and dict(context.invocation_metadata()).get("api-key") != self.api_key:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "Invalid api-key")
            if self.fail_next:
                code, retry_after = self.fail_next.pop(0)
                if retry_after:
                    context.set_trailing_metadata((("retry-after", retry_after),))
                context.abort(code, "stub: injected failure")
            name = request.collection_name
            if name not in self.state.collections:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Not found: Collection `{name}` doesn't exist!")
            config = self.state.collections[name]["params"]["vectors"]
            stored = []
            for point in request.points:
                try:
                    vectors = _vectors(point)
                except ValueError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                sizes = (
                    {"": config["size"]} if "size" in config else {n: v["size"] for n, v in config.items()}
                )
                given = {"": vectors} if isinstance(vectors, list) else vectors
                for vname, vector in given.items():
                    if vname not in sizes:
                        context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"Wrong input: Not existing vector name error: {vname}",
                        )
                    if len(vector) != sizes[vname]:
                        context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "Wrong input: Vector dimension error: "
                            f"expected dim: {sizes[vname]}, got {len(vector)}",
                        )
                if "stub_refuse" in point.payload:  # a stand-in for checks only the server makes
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Wrong input: stub refuses this payload")
                pid = point.id.num if point.id.HasField("num") else point.id.uuid
                stored.append(
                    {"id": pid, "payload": GrpcToRest.convert_payload(point.payload), "vector": vectors}
                )
            for record in stored:
                self.state.points[name][record["id"]] = record
            self.upserts.append((len(stored), request.wait))
        return pb.PointsOperationResponse(
            result=pb.UpdateResult(operation_id=1, status=pb.UpdateStatus.Acknowledged)
        )


class GrpcStub:
    """Serves Points/Upsert on 127.0.0.1 for a StubState; `port` is the gRPC port to give the ingester."""

    def __init__(self, state: StubState, api_key: str | None = None) -> None:
        self.points = _Points(state)
        self.points.api_key = api_key
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb.add_PointsServicer_to_server(self.points, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> GrpcStub:
        self._server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stop(grace=None)
