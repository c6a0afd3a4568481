"""Snapshot upload: qdrant_ops.s3.upload_stream against plain boto3 upload_file (defaults).

Both upload the same snapshot-sized file to the same S3 endpoint (a moto server started here on
127.0.0.1) in the same run; each upload runs in its own child process so its peak RSS is its own.
Prints MB/s for both, the ratio (target >= 1.0) and the peak RSS of ours (target <= 256 MiB).

    .venv/bin/python bench/backup.py [--size-mib 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qdrant_ops.s3 import MIB, S3Settings, make_client, upload_stream
from tests.support.s3 import TEST_CREDENTIALS, MotoServer

BUCKET = "bench-backups"


def child(variant: str, endpoint: str, path: str) -> None:
    """Runs in a child process: one upload, then prints seconds."""
    tuning = {k: int(v) for k, v in (kv.split("=") for kv in os.environ.get("BENCH_S3", "").split(",") if kv)}
    settings = S3Settings(
        **tuning,
        bucket=BUCKET,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key=TEST_CREDENTIALS["aws_access_key_id"],
        secret_key=TEST_CREDENTIALS["aws_secret_access_key"],
    )
    client = make_client(settings)
    started = time.monotonic()
    if variant == "qdrant_ops":
        with open(path, "rb") as stream:
            upload_stream(client, settings, f"{variant}.snapshot", stream)
    else:
        client.upload_file(path, BUCKET, f"{variant}.snapshot")
    print(time.monotonic() - started)


def measure(variant: str, endpoint: str, path: Path) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one upload in a fresh process."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", variant, "--endpoint", endpoint, "--file", str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{variant} upload failed (exit {process.returncode})")
    return float(output.strip()), usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--file")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.endpoint, args.file)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.bin"
        with path.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(MIB))
        server = MotoServer().start()
        try:
            server.client().create_bucket(Bucket=BUCKET)
            results: dict[str, list[tuple[float, int]]] = {"qdrant_ops": [], "boto3_upload_file": []}
            for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both
                for variant, runs in results.items():
                    runs.append(measure(variant, server.endpoint_url, path))
                    server.client().delete_object(Bucket=BUCKET, Key=f"{variant}.snapshot")
        finally:
            server.stop()

    size_mb = args.size_mib * MIB / 1e6
    best = {variant: min(runs) for variant, runs in results.items()}
    for variant, (seconds, rss) in best.items():
        print(
            f"{variant:18s} {size_mb / seconds:8.1f} MB/s  best of {args.rounds}"
            f"  peak RSS {rss / MIB:7.1f} MiB"
        )
    ratio = best["boto3_upload_file"][0] / best["qdrant_ops"][0]
    peak = max(rss for _, rss in results["qdrant_ops"]) / MIB
    print(f"throughput ratio qdrant_ops / boto3 upload_file = {ratio:.2f}  (target >= 1.0)")
    print(f"qdrant_ops peak RSS = {peak:.1f} MiB  (target <= 256 MiB)")


if __name__ == "__main__":
    main()
