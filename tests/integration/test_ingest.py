"""The bulk ingester against the REST + gRPC stubs: sources, ids, routing, retries, checkpoint and
resume, deferred indexing, and every kind of bad input with its message.

The ingester runs as the `qdrant-ops ingest` command in a child process, as users run it: its
sender processes are forked from a process that has no gRPC server threads.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qdrant_ops.ingest import dataset
from qdrant_ops.ingest.sources import DEFAULT_ID_NAMESPACE
from tests.support.qdrant_grpc_stub import GrpcStub
from tests.support.s3 import TEST_CREDENTIALS

API_KEY = "stub-secret-key"


@pytest.fixture
def stub(qdrant_stub):
    state = qdrant_stub.state
    state.create("cities", {"vectors": {"size": 4, "distance": "Cosine"}})
    state.create(
        "named",
        {"vectors": {"text": {"size": 3, "distance": "Dot"}, "image": {"size": 2, "distance": "Dot"}}},
    )
    state.create("places", {})
    with GrpcStub(state, api_key=API_KEY) as grpc_stub:
        grpc_stub.url = qdrant_stub.url
        grpc_stub.state = state
        yield grpc_stub


def run_cli(stub, *args, timeout=60, wait=True, **popen):
    key_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"stub-key-{os.getpid()}")
    with open(key_file, "w") as handle:
        handle.write(API_KEY)
    command = [
        sys.executable,
        "-m",
        "qdrant_ops.cli",
        "ingest",
        "--url",
        stub.url,
        "--api-key-file",
        key_file,
        "--grpc-port",
        str(stub.port),
        "--workers",
        "2",
        "--timeout",
        "5",
        *map(str, args),
    ]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **popen)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def city(i, dim=4):
    return {
        "id": i,
        "vector": [i / 10, 1.0, 0.5, 0.25][:dim],
        "city": f"c{i}",
        "location": {"lat": i, "lon": 1.5},
    }


def report_of(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_jsonl_load_writes_every_point_with_vectors_and_payload(stub, tmp_path):
    source = write_jsonl(tmp_path / "cities.jsonl", [city(i) for i in range(1000)])
    report = report_of(run_cli(stub, source, "-c", "cities", "--batch-size", "64", "--json"))
    assert (report["read"], report["written"], report["failed"]) == (1000, 1000, 0)
    assert report["verified"] == {"ok": True, "count": 1000, "expected": 1000, "missing_sample": []}
    points = stub.state.points["cities"]
    assert points[7] == {
        "id": 7,
        "payload": {"city": "c7", "location": {"lat": 7, "lon": 1.5}},
        "vector": pytest.approx([0.7, 1.0, 0.5, 0.25]),
    }
    # wait=false per batch, and batches no larger than asked for.
    assert all(not wait and n <= 64 for n, wait in stub.points.upserts)


def test_same_input_twice_leaves_the_same_points(stub, tmp_path):
    """Ids are derived, never random: a second run overwrites, it does not add."""
    records = [{"city": f"c{i}", "vector": [1, 2, 3, 4]} for i in range(300)]
    source = write_jsonl(tmp_path / "cities.jsonl", records)
    first = report_of(run_cli(stub, source, "-c", "cities", "--id-from", "city", "--json"))
    ids = set(stub.state.points["cities"])
    second = report_of(run_cli(stub, source, "-c", "cities", "--id-from", "city", "--json"))
    assert set(stub.state.points["cities"]) == ids and len(ids) == 300
    assert str(uuid.uuid5(DEFAULT_ID_NAMESPACE, "c5")) in ids
    assert first["verified"]["expected"] == 300 and second["verified"]["count"] == 300


def test_records_with_the_same_id_keep_their_order(stub, tmp_path):
    """Later versions of a record win: one id always goes through one sender, in order."""
    records = [{"id": i % 50, "vector": [1, 1, 1, 1], "version": i // 50} for i in range(2000)]
    source = write_jsonl(tmp_path / "versions.jsonl", records)
    report_of(run_cli(stub, source, "-c", "cities", "--batch-size", "16", "--workers", "3", "--json"))
    assert {p["payload"]["version"] for p in stub.state.points["cities"].values()} == {39}


def test_payload_only_records_like_the_original_city_location_ones(stub, tmp_path):
    source = write_jsonl(
        tmp_path / "places.jsonl",
        [{"id": i, "city": "Oslo", "location": {"lat": 59.9, "lon": 10.7}} for i in range(100)],
    )
    report = report_of(run_cli(stub, source, "-c", "places", "--json"))
    assert report["written"] == 100
    assert stub.state.points["places"][3] == {
        "id": 3,
        "payload": {"city": "Oslo", "location": {"lat": 59.9, "lon": 10.7}},
        "vector": {},
    }


def test_csv_with_selected_payload_fields(stub, tmp_path):
    source = tmp_path / "cities.csv"
    source.write_text('id,vector,city,secret\n1,"[1, 2, 3, 4]",Oslo,x\n2,0.5 0.5 0.5 0.5,Rome,y\n')
    report = report_of(run_cli(stub, source, "-c", "cities", "--payload-field", "city", "--json"))
    assert report["written"] == 2
    assert stub.state.points["cities"][2] == {"id": 2, "payload": {"city": "Rome"}, "vector": [0.5] * 4}


def test_parquet_named_vectors_with_a_side_npy_file(stub, tmp_path):
    n = 500
    text = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    table = pa.table(
        {
            "uid": [str(uuid.UUID(int=i + 1)) for i in range(n)],
            "text": pa.FixedSizeListArray.from_arrays(pa.array(text.reshape(-1)), 3),
            "city": [f"c{i}" for i in range(n)],
        }
    )
    pq.write_table(table, tmp_path / "named.parquet", row_group_size=128)
    np.save(tmp_path / "image.npy", np.ones((n, 2), dtype=np.float64))
    report = report_of(
        run_cli(
            stub,
            tmp_path / "named.parquet",
            "-c",
            "named",
            "--id-field",
            "uid",
            "--vector",
            "text=text",
            "--vector-file",
            f"image={tmp_path / 'image.npy'}",
            "--json",
        )
    )
    assert report["written"] == n
    point = stub.state.points["named"][str(uuid.UUID(int=10))]
    assert point == {
        "id": str(uuid.UUID(int=10)),
        "payload": {"city": "c9"},
        "vector": {"text": [27.0, 28.0, 29.0], "image": [1.0, 1.0]},
    }


def test_dataset_generator_output_loads_and_is_deterministic(stub, tmp_path):
    for fmt in ("jsonl", "parquet"):
        paths = [tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"]
        for path in paths:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "qdrant_ops.cli",
                    "dataset",
                    "generate",
                    "--count",
                    "2500",
                    "--dim",
                    "4",
                    "--format",
                    fmt,
                    "-o",
                    str(path),
                ],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr
        assert paths[0].read_bytes() == paths[1].read_bytes()
        report = report_of(run_cli(stub, paths[0], "-c", "cities", "--json"))
        assert report["written"] == 2500
        point = stub.state.points["cities"][2499]
        assert set(point["payload"]) == {"city", "location"} and len(point["vector"]) == 4


def test_s3_sources_stream_with_ranged_reads(stub, tmp_path, s3_server, s3_client, s3_bucket):
    """JSONL and Parquet (whose footer needs seeks) from s3://, and the .npy side file too."""
    write_jsonl(tmp_path / "c.jsonl", [city(i) for i in range(700)])
    s3_client.upload_file(str(tmp_path / "c.jsonl"), s3_bucket, "in/c.jsonl")
    dataset_path = tmp_path / "d.parquet"
    dataset.generate(str(dataset_path), count=3000, dim=4, fmt="parquet")
    s3_client.upload_file(str(dataset_path), s3_bucket, "in/d.parquet")
    np.save(tmp_path / "v.npy", np.full((50, 4), 0.5, dtype=np.float32))
    s3_client.upload_file(str(tmp_path / "v.npy"), s3_bucket, "in/v.npy")
    write_jsonl(tmp_path / "ids.jsonl", [{"id": 5000 + i} for i in range(50)])
    s3_client.upload_file(str(tmp_path / "ids.jsonl"), s3_bucket, "in/ids.jsonl")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"]}  # fmt: skip
    s3 = ["--s3-endpoint-url", s3_server.endpoint_url, "--s3-region", "us-east-1", "--json"]
    for key, extra in [("in/c.jsonl", []), ("in/d.parquet", []),
                       ("in/ids.jsonl", ["--vector-file", f"s3://{s3_bucket}/in/v.npy"])]:  # fmt: skip
        report = report_of(run_cli(stub, f"s3://{s3_bucket}/{key}", "-c", "cities", *extra, *s3, env=env))
        assert report["failed"] == 0
    assert len(stub.state.points["cities"]) == 3000 + 50  # the JSONL ids 0..699 are among the dataset's
    assert stub.state.points["cities"][5049]["vector"] == [0.5] * 4
    missing = run_cli(stub, f"s3://{s3_bucket}/in/nope.jsonl", "-c", "cities", *s3, env=env)
    assert missing.returncode == 2 and f"cannot read s3://{s3_bucket}/in/nope.jsonl" in missing.stderr


def test_transient_errors_are_retried_and_retry_after_is_honoured(stub, tmp_path):
    stub.points.fail_next = [
        (grpc.StatusCode.UNAVAILABLE, None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "1"),
    ]
    source = write_jsonl(tmp_path / "cities.jsonl", [city(i) for i in range(100)])
    started = time.monotonic()
    report = report_of(run_cli(stub, source, "-c", "cities", "--workers", "1", "--json"))
    assert report["retries"] == 3 and report["written"] == 100
    assert time.monotonic() - started > 1.0  # the retry-after second was waited


def test_retries_are_bounded(stub, tmp_path):
    stub.points.fail_next = [(grpc.StatusCode.UNAVAILABLE, None)] * 10
    source = write_jsonl(tmp_path / "cities.jsonl", [city(i) for i in range(10)])
    result = run_cli(stub, source, "-c", "cities", "--workers", "1", "--retries", "2")
    assert result.returncode == 2
    assert "UNAVAILABLE" in result.stderr and "records 1..10" in result.stderr


BAD_LINES = {
    "malformed JSON": ('{"id": 5, "vector": [1, 2', "record 6: is not valid JSON"),
    "missing vector": ('{"id": 5, "city": "x"}', "record 6: has no the vector (field 'vector')"),
    "wrong size": (
        '{"id": 5, "vector": [1, 2, 3]}',
        "record 6: the vector (field 'vector') has 3 values, the collection expects 4",
    ),
    "non-numeric": (
        '{"id": 5, "vector": [1, "a", 3, 4]}',
        "record 6: the vector (field 'vector') has a non-numeric value",
    ),
    "bad id": ('{"id": -5, "vector": [1, 2, 3, 4]}', "record 6: point id -5 is not an unsigned 64-bit"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_record_stops_the_run_naming_file_and_record_and_nothing_after_it_is_written(
    stub, tmp_path, case
):
    line, message = BAD_LINES[case]
    good = [json.dumps(city(i)) for i in range(5)] + [json.dumps(city(i)) for i in range(100, 200)]
    source = tmp_path / "cities.jsonl"
    source.write_text("\n".join([*good[:5], line, *good[5:]]) + "\n")
    checkpoint = tmp_path / "ck.json"
    result = run_cli(stub, source, "-c", "cities", "--batch-size", "2", "--checkpoint", checkpoint)
    assert result.returncode == 2
    assert f"{source}: {message}" in result.stderr
    assert f"--resume --checkpoint {checkpoint}" in result.stderr
    assert set(stub.state.points["cities"]) == {0, 1, 2, 3, 4}
    assert json.loads(checkpoint.read_text())["completed"] == [[1, 5]]


def test_a_dead_letter_file_takes_bad_records_and_the_run_goes_on(stub, tmp_path):
    lines = [json.dumps(city(i)) for i in range(20)]
    lines[3] = '{"id": 3, "vector": [1, 2]}'
    lines[9] = "not json"
    source = tmp_path / "cities.jsonl"
    source.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead.jsonl"
    report = report_of(run_cli(stub, source, "-c", "cities", "--dead-letter", dead, "--json"))
    assert (report["written"], report["failed"]) == (18, 2)
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(d["record"], d["raw"]) for d in letters] == [(4, lines[3]), (10, "not json")]
    assert "has 2 values" in letters[0]["error"] and letters[0]["source"] == str(source)
    assert len(stub.state.points["cities"]) == 18


def test_a_record_qdrant_refuses_is_found_by_splitting_its_batch(stub, tmp_path):
    """Checks only the server makes still name the record (or send it to the dead-letter file)."""
    records = [city(i) for i in range(8)]
    records[5]["stub_refuse"] = True
    source = write_jsonl(tmp_path / "cities.jsonl", records)
    result = run_cli(stub, source, "-c", "cities", "--workers", "1", "--batch-size", "8")
    assert result.returncode == 2
    assert f"{source}: record 6: Qdrant refused it: INVALID_ARGUMENT: Wrong input" in result.stderr
    dead = tmp_path / "dead.jsonl"
    report = report_of(
        run_cli(stub, source, "-c", "cities", "--batch-size", "8", "--dead-letter", dead, "--json")
    )
    assert (report["written"], report["failed"]) == (7, 1)
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert (letter["record"], letter["id"]) == (6, 5)
    assert 5 not in stub.state.points["cities"] and len(stub.state.points["cities"]) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl", "-c", "cities"], "cannot read missing.jsonl: No such file or directory"),
        (["SOURCE", "-c", "nope"], "collection 'nope' does not exist: create it first"),
        (
            ["SOURCE_CSV", "-c", "cities", "--payload-field", "town"],
            "has no field 'town' named in the mapping; its fields are: id, vector, city",
        ),
        (["SOURCE", "-c", "cities", "--vector", "img=vector"], "collection 'cities' has no vector 'img'"),
        (["SOURCE", "-c", "cities", "--resume"], "resume needs the checkpoint file"),
        (["SOURCE", "-c", "cities", "--batch-size", "0"], "batch size must be between 1 and 10000"),
        (["data.txt", "-c", "cities"], "cannot tell the format of data.txt"),
        (["DIR", "-c", "cities", "--format", "jsonl"], "Is a directory"),
        (["BAD_PARQUET", "-c", "cities"], "is not a readable Parquet file"),
        (["SOURCE", "-c", "cities", "--vector-file", "nope.npy"], "cannot read nope.npy"),
    ],
)
def test_bad_invocations_are_refused_before_anything_is_written(stub, tmp_path, args, message):
    source = write_jsonl(tmp_path / "cities.jsonl", [city(1)])
    csv_source = tmp_path / "cities.csv"
    csv_source.write_text('id,vector,city\n1,"[1,2,3,4]",Oslo\n')
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    named = {
        "SOURCE": source,
        "SOURCE_CSV": csv_source,
        "DIR": tmp_path,
        "BAD_PARQUET": tmp_path / "bad.parquet",
    }
    args = [str(named.get(a, a)) for a in args]
    result = run_cli(stub, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert stub.state.points["cities"] == {}


def slow_down(stub):
    """Make every upsert take 20 ms, so a load is still running when the test interrupts it."""
    original = stub.points.Upsert

    def slow(request, context):
        time.sleep(0.02)
        return original(request, context)

    stub.points.Upsert = slow
    return original


def test_sigterm_stops_after_the_batches_in_flight_and_resume_completes_the_load(stub, tmp_path):
    total = 20_000
    source = write_jsonl(tmp_path / "cities.jsonl", [city(i) for i in range(total)])
    checkpoint = tmp_path / "ck.json"
    original = slow_down(stub)
    process = run_cli(
        stub, source, "-c", "cities", "--batch-size", "50", "--checkpoint", checkpoint, "--json", wait=False
    )
    deadline = time.monotonic() + 30
    while len(stub.state.points["cities"]) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopped by SIGTERM after the batches in flight" in stderr
    partial = json.loads(stdout)
    completed = json.loads(checkpoint.read_text())["completed"]
    done = sum(end - start + 1 for start, end in completed)
    assert 0 < done < total and partial["interrupted"]
    # Everything the checkpoint calls complete is in the collection.
    assert all(
        i - 1 in stub.state.points["cities"] for start, end in completed for i in range(start, end + 1)
    )
    stub.points.Upsert = original
    report = report_of(
        run_cli(stub, source, "-c", "cities", "--checkpoint", checkpoint, "--resume", "--json")
    )
    assert report["skipped"] == done and report["read"] == total - done
    assert report["completed_ranges"] == [[1, total]]
    assert len(stub.state.points["cities"]) == total


def test_a_killed_load_leaves_no_process_behind_and_resumes(stub, tmp_path):
    """kill -9 of the command: its senders and decoders notice and exit; the checkpoint (written
    atomically) is valid and the resumed load ends with every point."""
    total = 20_000
    source = write_jsonl(tmp_path / "cities.jsonl", [city(i) for i in range(total)])
    checkpoint = tmp_path / "ck.json"
    original = slow_down(stub)
    process = run_cli(
        stub, source, "-c", "cities", "--batch-size", "50", "--checkpoint", checkpoint, wait=False
    )
    deadline = time.monotonic() + 30
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    senders = [
        int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    ]
    assert len(senders) == 4  # 2 senders, 2 decoders
    process.kill()
    process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in senders) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in senders if Path(f"/proc/{pid}").exists()], "helpers outlived their parent"
    stub.points.Upsert = original
    json.loads(checkpoint.read_text())  # whole, never half-written
    report = report_of(
        run_cli(stub, source, "-c", "cities", "--checkpoint", checkpoint, "--resume", "--json")
    )
    assert report["skipped"] + report["read"] == total
    assert len(stub.state.points["cities"]) == total


def test_deferred_indexing_is_restored_after_the_load_and_after_a_failure(stub, tmp_path):
    source = write_jsonl(tmp_path / "cities.jsonl", [city(i) for i in range(50)])
    report_of(run_cli(stub, source, "-c", "cities", "--defer-indexing", "--json"))
    patches = [body for method, path, _q, body, *_ in stub.state.requests if method == "PATCH"]
    assert patches == [
        {"optimizers_config": {"indexing_threshold": 0}},
        {"optimizers_config": {"indexing_threshold": 10000}},
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(city(1)) + "\nnot json\n")
    assert run_cli(stub, bad, "-c", "cities", "--defer-indexing").returncode == 2
    assert stub.state.collections["cities"]["optimizer_config"]["indexing_threshold"] == 10000


def test_the_api_key_never_appears_in_output(stub, tmp_path):
    source = write_jsonl(tmp_path / "cities.jsonl", [city(i) for i in range(10)])
    result = run_cli(stub, source, "-c", "cities", "--json")
    assert result.returncode == 0
    assert API_KEY not in result.stdout + result.stderr


def test_without_a_terminal_progress_lines_show_the_run_is_alive(stub, tmp_path):
    """A timer's journal or a CI log is not a terminal: lines every --progress-every seconds, with
    points, rate, percent and ETA, then the report (issue 34, item 5)."""
    source = write_jsonl(tmp_path / "many.jsonl", [city(i) for i in range(60_000)])
    result = run_cli(stub, source, "-c", "cities", "--progress-every", "0.2", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 2, result.stderr  # more than the final figure: the run reported while it ran
    assert all(re.search(r"progress: +[\d,]+ points +[\d,]+/s", line) for line in lines), lines
    assert any("ETA" in line for line in lines), lines
    assert "\r" not in result.stderr  # no terminal control characters in a log
    assert "cities: read 60000, written 60000" in result.stdout


def test_with_json_progress_comes_as_events_on_stderr_and_the_report_alone_on_stdout(stub, tmp_path):
    source = write_jsonl(tmp_path / "many.jsonl", [city(i) for i in range(60_000)])
    result = run_cli(stub, source, "-c", "cities", "--progress-every", "0.2", "--json", timeout=300)
    report = report_of(result)
    assert report["written"] == 60_000
    events = [json.loads(line) for line in result.stderr.splitlines()]  # every stderr line an event
    progress = [event for event in events if event["event"] == "progress"]
    assert len(progress) >= 2, result.stderr
    assert all(event["operation"] == "ingest" and 0 <= event["written"] <= 60_000 for event in progress)
    assert [event["written"] for event in progress] == sorted(event["written"] for event in progress)
    assert events[-1] == {"event": "summary", "result": report, "time": events[-1]["time"]}
