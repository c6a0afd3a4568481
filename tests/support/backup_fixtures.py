"""Background S3 (moto server) and three Qdrant REST stub nodes on 127.0.0.1 for the qdrant_backup
molecule scenario, whose containers share the host network. The stubs are NOT Qdrant: they let
the scenario prove the role's units, timers, config and permissions produce a set in S3.

    python -m tests.support.backup_fixtures start STATE.json   # returns once everything answers
    python -m tests.support.backup_fixtures stop STATE.json
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from qdrant_ops.backup import model
from tests.support.qdrant_stub import QdrantStubServer, populate_demo, share_cluster
from tests.support.s3 import MotoServer

API_KEY = "stub-secret-key"
BUCKET = "qdrant-ops-molecule-backups"
MAX_LIFETIME = 3600  # seconds; a forgotten fixture never outlives a CI run


def serve(state_file: Path) -> None:
    with ExitStack() as stack:
        moto = MotoServer().start()
        stack.callback(moto.stop)
        moto.client().create_bucket(Bucket=BUCKET)
        nodes = [stack.enter_context(QdrantStubServer(3, API_KEY, me=i)) for i in range(3)]
        share_cluster(nodes)
        populate_demo(nodes[0].state)
        state = {"pid": os.getpid(), "s3": moto.endpoint_url, "bucket": BUCKET, "api_key": API_KEY,
                 "nodes": [node.url for node in nodes]}  # fmt: skip
        partial = state_file.with_suffix(".tmp")
        partial.write_text(json.dumps(state))
        partial.rename(state_file)  # start() reads it as soon as it exists
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        time.sleep(MAX_LIFETIME)


def start(state_file: Path, timeout: float = 60) -> None:
    stop(state_file)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    log = state_file.with_suffix(".log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.backup_fixtures", "serve", str(state_file)],
        stdout=log,
        stderr=log,
        start_new_session=True,  # outlives the ansible task that started it
    )
    deadline = time.monotonic() + timeout
    while not state_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"backup fixtures did not start; see {log.name}")
        time.sleep(0.2)
    print(state_file.read_text())


def stop(state_file: Path) -> None:
    if state_file.exists():
        pid = json.loads(state_file.read_text())["pid"]
        state_file.unlink()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def corrupt_one_object(s3_client, bucket: str, suffix: str = "/cities/0.snapshot") -> str:
    """Flip one bit of a snapshot object, keeping its size and its recorded sha256 metadata."""
    key = next(
        item["Key"]
        for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"]
        if suffix in item["Key"] and item["Key"].endswith(".snapshot")
    )
    head = s3_client.head_object(Bucket=bucket, Key=key)
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    damaged = body[:-1] + bytes([body[-1] ^ 1])  # same size, same recorded sha256 metadata
    s3_client.put_object(Bucket=bucket, Key=key, Body=damaged, Metadata=head["Metadata"])
    return key


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def daily_sets(days: int, status: str = "complete") -> list[dict]:
    """One set per day at midnight, newest first, as list_sets returns them."""
    sets = []
    for age in range(days):
        moment = (NOW - timedelta(days=age)).replace(hour=0)
        sets.append(
            {"backup_id": moment.strftime(model.ID_FORMAT), "time": model.iso_time(moment), "status": status}
        )
    return sets


if __name__ == "__main__":
    action, path = sys.argv[1], Path(sys.argv[2])
    {"start": start, "stop": stop, "serve": serve}[action](path)
