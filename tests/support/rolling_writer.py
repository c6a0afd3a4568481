"""Continuous writer for rolling-restart tests, and the check that nothing acknowledged was lost.

`write` upserts small batches (wait=true) into a replication-factor-2 collection, fails over
between nodes through the cluster client, and records every id Qdrant acknowledged. It stops at
the stop file, the time limit or the point limit, whichever comes first. `verify` checks that the
collection holds exactly the acknowledged ids.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from qdrant_ops.client import ClusterClient, QdrantOpsError, segment
from qdrant_ops.cluster.collections import ensure_collection

BATCH = 50


def write(client: ClusterClient, args: argparse.Namespace) -> int:
    ensure_collection(
        client, {"name": args.collection, "shard_number": 3, "replication_factor": 2, "vectors": {}}
    )
    acked: list[int] = []
    failures = 0
    deadline = time.monotonic() + args.max_seconds
    next_id = 1
    while time.monotonic() < deadline and next_id <= args.max_points and not Path(args.stop_file).exists():
        ids = list(range(next_id, min(next_id + BATCH, args.max_points + 1)))
        batch = [{"id": i, "vector": {}, "payload": {"n": i}} for i in ids]
        try:
            client.request(
                "PUT",
                f"/collections/{segment(args.collection)}/points",
                params={"wait": "true"},
                json={"points": batch},
            )
        except QdrantOpsError as exc:
            failures += 1  # not acknowledged: retried with the same ids, so no gap is left
            print(f"write failed (will retry): {exc}", file=sys.stderr)
            time.sleep(0.5)
            continue
        acked += ids
        next_id = ids[-1] + 1
        time.sleep(getattr(args, "pause", 0.0))  # a steady load rather than the most the cluster takes
        Path(args.acked).write_text(
            json.dumps({"acked": len(acked), "max_id": next_id - 1, "failures": failures})
        )
    print(f"acknowledged {len(acked)} points, {failures} failed attempts (retried)")
    return 0


def verify(client: ClusterClient, args: argparse.Namespace) -> int:
    record = json.loads(Path(args.acked).read_text())
    expected = set(range(1, record["max_id"] + 1))
    count = client.count_points(args.collection)
    present: set[int] = set()
    offset = None
    while True:
        page = client.request(
            "POST",
            f"/collections/{segment(args.collection)}/points/scroll",
            json={"limit": 1000, "offset": offset, "with_payload": False, "with_vector": False},
        )
        present.update(point["id"] for point in page["points"])
        offset = page.get("next_page_offset")
        if offset is None:
            break
    missing = sorted(expected - present)
    print(f"acknowledged {len(expected)}, exact count {count}, missing {len(missing)}")
    if missing or count < len(expected):
        print(f"LOST WRITES: first missing ids {missing[:20]}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True)
    parser.add_argument("--api-key-file", required=True)
    parser.add_argument("--ca-file", help="the cluster CA, for https URLs")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--acked", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("mode", choices=["write", "verify"])
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--max-points", type=int, default=500_000)
    args = parser.parse_args()
    key = Path(args.api_key_file).read_text().strip()
    with ClusterClient(
        args.urls.split(","), key, retries=10, backoff=0.5, timeout=30, ca_file=args.ca_file
    ) as client:
        return write(client, args) if args.mode == "write" else verify(client, args)


if __name__ == "__main__":
    sys.exit(main())
