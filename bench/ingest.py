"""Bulk ingest: `qdrant-ops ingest` against qdrant-client `upload_points`, same data, same server.

    .venv/bin/python bench/ingest.py [--count 200000] [--dim 384] [--format parquet|jsonl]
                                     [--encode-only] [--rounds 2]

Server: a real 3-node Qdrant cluster when QDRANT_BINARY is set (collection with 6 shards);
otherwise a gRPC sink started here that acknowledges every Upsert without decoding it (the
client-side ceiling over a real gRPC connection; the final count check is skipped there, since
the sink stores nothing). qdrant-client runs the usual file path (records -> PointStruct ->
upload_points over gRPC, wait=false) at the best of a small sweep of `parallel` x `batch_size`.
Each load runs as its own process tree; the peak RSS printed is the sum over that tree.

--encode-only builds the requests and drops them, no server: our read+decode+encode pipeline
against qdrant-client's own conversion (PointStruct -> RestToGrpc -> UpsertPoints bytes) of the
same parsed records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qdrant_ops.ingest import dataset, engine, options, wire  # noqa: E402
from qdrant_ops.ingest.sources import Decoder, Mapping, open_source  # noqa: E402

COLLECTION = "bench"
SWEEP = [(parallel, batch) for parallel in (1, 2, 4) for batch in (64, 256, 1024)]


# -- process-tree RSS ------------------------------------------------------------------------------------
def tree_rss(pid: int) -> int:
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    stack.extend(int(c) for c in children.read().split())
        except (OSError, StopIteration):
            continue
    return total


def run_measured(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """(seconds, peak RSS of the process tree, stdout)."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})  # fmt: skip
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.05)
    out, err = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{err[-3000:]}")
    return seconds, peak, out


# -- the sink server ---------------------------------------------------------------------------------------
def serve_sink(grpc_port_file: str) -> None:
    """A REST stub (collection info for the ingester's checks) and a gRPC endpoint that drops upserts."""
    import grpc  # noqa: PLC0415
    from qdrant_client import grpc as pb  # noqa: PLC0415

    from tests.support.qdrant_stub import QdrantStubServer  # noqa: PLC0415

    dim = int(os.environ["BENCH_DIM"])
    ack = pb.PointsOperationResponse(result=pb.UpdateResult(operation_id=1, status=1)).SerializeToString()
    handler = grpc.method_handlers_generic_handler(
        "qdrant.Points", {"Upsert": grpc.unary_unary_rpc_method_handler(lambda request, context: ack)}
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.max_receive_message_length", -1)]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with QdrantStubServer(peers=1) as rest:
        rest.state.create(COLLECTION, {"vectors": {"size": dim, "distance": "Cosine"}})
        Path(grpc_port_file).write_text(json.dumps({"url": rest.url, "grpc_port": port}))
        server.wait_for_termination()


# -- the two clients ---------------------------------------------------------------------------------------
def baseline(url: str, grpc_port: int, source: str, knobs: tuple[int, int], api_key: str | None) -> None:
    """The usual path with qdrant-client: each record -> PointStruct -> upload_points over gRPC."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    from qdrant_client import QdrantClient, models  # noqa: PLC0415

    parts = urlsplit(url)
    client = QdrantClient(host=parts.hostname, port=parts.port, grpc_port=grpc_port, prefer_grpc=True,
                          api_key=api_key, https=False, check_compatibility=False)  # fmt: skip

    def points():
        src = open_source(source)
        for _number, raw in src.rows():
            row = json.loads(raw) if isinstance(raw, bytes) else raw
            vector = row["vector"].tolist() if hasattr(row["vector"], "tolist") else row["vector"]
            payload = {k: v for k, v in row.items() if k not in ("id", "vector")}
            yield models.PointStruct(id=int(row["id"]), vector=vector, payload=payload)

    parallel, batch = knobs
    client.upload_points(COLLECTION, points(), batch_size=batch, parallel=parallel, wait=False)


def encode_only(source: str, count: int) -> dict[str, float]:
    from qdrant_client import grpc as pb  # noqa: PLC0415
    from qdrant_client.conversions.conversion import RestToGrpc  # noqa: PLC0415
    from qdrant_client.http import models  # noqa: PLC0415

    rates = {}
    src = open_source(source)
    decoder = Decoder(engine.default_mapping(Mapping(), {"": 0}), {}, source)
    dim = None
    started = time.perf_counter()
    batch: list[bytes] = []
    for number, raw in src.rows():
        if dim is None:
            row = json.loads(raw) if isinstance(raw, bytes) else raw
            dim = len(row["vector"])
            decoder = Decoder(engine.default_mapping(Mapping(), {"": dim}), {"": dim}, source)
        point = decoder.decode(number, raw)
        batch.append(wire.encode_point(point.id, wire.encode_vectors(point.vectors[""]),
                                              wire.encode_payload(point.payload)))  # fmt: skip
        if len(batch) == options.DEFAULT_BATCH_SIZE:
            wire.encode_upsert(COLLECTION, batch)
            batch = []
    rates["qdrant-ops read+decode+encode"] = count / (time.perf_counter() - started)
    src.close()

    # qdrant-client's conversion of already-parsed records (parsing excluded: its cost only).
    src = open_source(source)
    rows = []
    for _number, raw in src.rows():
        row = json.loads(raw) if isinstance(raw, bytes) else raw
        vector = row["vector"].tolist() if hasattr(row["vector"], "tolist") else row["vector"]
        rows.append((int(row["id"]), vector, {k: v for k, v in row.items() if k not in ("id", "vector")}))
        if len(rows) >= 50_000:
            break
    started = time.perf_counter()
    for start in range(0, len(rows), 64):
        structs = [models.PointStruct(id=i, vector=v, payload=p) for i, v, p in rows[start : start + 64]]
        grpc_points = [RestToGrpc.convert_point_struct(s) for s in structs]
        pb.UpsertPoints(collection_name=COLLECTION, points=grpc_points).SerializeToString()
    rates["qdrant-client PointStruct->gRPC conversion (parsing excluded)"] = len(rows) / (
        time.perf_counter() - started
    )
    return rates


# -- main --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def server(args, tmp: str):
    """(url, grpc port, api key, description, reset) of a real cluster or of the sink."""
    binary = os.environ.get("QDRANT_BINARY")
    if binary:
        from qdrant_ops.client import ClusterClient  # noqa: PLC0415
        from tests.support.qdrant_cluster import LocalQdrantCluster  # noqa: PLC0415

        with LocalQdrantCluster(binary, Path(tmp) / "qdrant", size=3, api_key="bench-key") as cluster:

            def reset() -> None:
                with ClusterClient(cluster.urls, cluster.api_key, timeout=120) as client:
                    if client.collection_info(COLLECTION) is not None:
                        client.request("DELETE", f"/collections/{COLLECTION}")
                    body = {"vectors": {"size": args.dim, "distance": "Cosine"}, "shard_number": 6}
                    client.request("PUT", f"/collections/{COLLECTION}", json=body)

            name = "real 3-node Qdrant cluster (QDRANT_BINARY), 6 shards"
            yield cluster.urls[0], cluster.nodes[0].grpc_port, cluster.api_key, name, reset
        return
    port_file = Path(tmp) / "sink.json"
    env = {**os.environ, "BENCH_DIM": str(args.dim)}
    sink = subprocess.Popen([sys.executable, __file__, "--serve-sink", str(port_file)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or sink.poll() is not None:
                raise SystemExit("the sink server did not start")
            time.sleep(0.1)
        info = json.loads(port_file.read_text())
        name = "gRPC sink (acknowledges without storing; no QDRANT_BINARY)"
        yield info["url"], info["grpc_port"], None, name, lambda: None
    finally:
        sink.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--format", choices=dataset.FORMATS, default="parquet")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best of each is kept")
    parser.add_argument("--encode-only", action="store_true")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-size", type=int, default=options.DEFAULT_BATCH_SIZE)
    parser.add_argument("--sweep", action="store_true", help="also sweep our batch size (64 .. 1024)")
    parser.add_argument(
        "--client-knobs", metavar="PARALLEL,BATCH", help="qdrant-client's knobs instead of sweeping them"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = str(Path(tmp) / f"data.{args.format}")
        dataset.generate(source, count=args.count, dim=args.dim, fmt=args.format)
        print(f"dataset: {args.count} x {args.dim}-d records, {args.format}, {os.path.getsize(source)} bytes")
        if args.encode_only:
            rates = encode_only(source, args.count)
            for name, rate in rates.items():
                print(f"{name:65s} {rate:12,.0f} points/s")
            values = list(rates.values())
            print(f"ratio qdrant-ops / qdrant-client conversion = {values[0] / values[1]:.2f}")
            return
        with server(args, tmp) as (url, grpc_port, api_key, server_name, reset):
            key_file = Path(tmp) / "key"
            key_file.write_text(api_key or "")

            def ours(batch: int) -> tuple[float, int, str]:
                reset()
                return run_measured([
                    sys.executable, "-m", "qdrant_ops.cli", "ingest", source, "-c", COLLECTION, "--url", url,
                    "--grpc-port", str(grpc_port), "--workers", str(args.workers), "--batch-size", str(batch),
                    "--json", *(["--api-key-file", str(key_file)] if api_key else ["--no-verify"]),
                ])  # fmt: skip

            def theirs(parallel: int, batch: int) -> tuple[float, int, str]:
                reset()
                knobs = [url, str(grpc_port), source, str(parallel), str(batch), api_key or ""]
                return run_measured([sys.executable, __file__, "--baseline", *knobs])

            # The sweep picks qdrant-client's best knobs once; the rounds then interleave both.
            sweep = {}
            for knobs in [] if args.client_knobs else SWEEP:
                sweep[knobs] = theirs(*knobs)[0]
                print(f"  qdrant-client parallel={knobs[0]} batch_size={knobs[1]}: "
                      f"{args.count / sweep[knobs]:,.0f} points/s")  # fmt: skip
            best = (
                tuple(map(int, args.client_knobs.split(",")))
                if args.client_knobs
                else min(sweep, key=sweep.get)
            )
            for batch in (64, 256, 512, 1024) if args.sweep else ():
                print(f"  qdrant-ops batch_size={batch}: {args.count / ours(batch)[0]:,.0f} points/s")
            results: dict[str, list] = {"ours": [], "theirs": []}
            for _ in range(args.rounds):
                results["ours"].append(ours(args.batch_size)[:2])
                results["theirs"].append(theirs(*best)[:2])

    mine, base = min(results["ours"]), min(results["theirs"])
    print(f"server: {server_name}")
    print(f"qdrant-ops ingest ({args.workers} senders, batch {args.batch_size}): "
          f"{args.count / mine[0]:,.0f} points/s, peak RSS {mine[1] / 2**20:.0f} MiB")  # fmt: skip
    print(f"qdrant-client upload_points (parallel={best[0]}, batch_size={best[1]}): "
          f"{args.count / base[0]:,.0f} points/s, peak RSS {base[1] / 2**20:.0f} MiB")  # fmt: skip
    print(f"ratio qdrant-ops / qdrant-client = {base[0] / mine[0]:.2f}  (target >= 1.5)")
    print(
        f"peak RSS of the ingest process tree = {mine[1] / 2**20:.0f} MiB  (target <= 1024 MiB at 1M x 384)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-sink":
        serve_sink(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        u, g, s, p, b, k = sys.argv[2:8]
        baseline(u, int(g), s, (int(p), int(b)), k or None)
    else:
        main()
