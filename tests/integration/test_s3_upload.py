"""Streaming multipart upload against the real S3 protocol (moto server on 127.0.0.1)."""

import hashlib
import io
import os
import threading

import pytest

from qdrant_ops.backup.s3 import (
    MAX_PARTS,
    MIB,
    S3Error,
    S3Settings,
    make_client,
    part_size_for,
    upload_stream,
)
from tests.support.s3 import TEST_CREDENTIALS


def settings(server, bucket, **overrides) -> S3Settings:
    return S3Settings(
        bucket=bucket,
        endpoint_url=server.endpoint_url,
        region="us-east-1",
        access_key=TEST_CREDENTIALS["aws_access_key_id"],
        secret_key=TEST_CREDENTIALS["aws_secret_access_key"],
        **{"part_size": 5 * MIB, "concurrency": 2, **overrides},
    )


class TrickleReader(io.RawIOBase):
    """Returns at most 64 KiB per read, like an HTTP response stream."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size=-1):
        return self._data.read(min(size if size > 0 else 65536, 65536))


def test_multipart_upload_hashes_while_streaming(s3_server, s3_bucket, s3_client):
    data = os.urandom(23 * MIB + 17)
    expected = hashlib.sha256(data).hexdigest()
    config = settings(s3_server, s3_bucket)
    acknowledged: list[int] = []
    result = upload_stream(
        make_client(config), config, "c/1.snapshot", TrickleReader(data), expected_sha256=expected,
        on_bytes=acknowledged.append,
    )  # fmt: skip
    assert (result.size, result.sha256, result.parts) == (len(data), expected, 5)
    assert sorted(acknowledged) == sorted([5 * MIB] * 4 + [3 * MIB + 17])  # each part as S3 took it
    head = s3_client.head_object(Bucket=s3_bucket, Key="c/1.snapshot")
    assert head["Metadata"]["sha256"] == expected
    assert s3_client.get_object(Bucket=s3_bucket, Key="c/1.snapshot")["Body"].read() == data


def test_small_object_is_a_single_put(s3_server, s3_bucket, s3_client):
    config = settings(s3_server, s3_bucket)
    acknowledged: list[int] = []
    client = make_client(config)
    result = upload_stream(client, config, "small", io.BytesIO(b"abc"), on_bytes=acknowledged.append)
    assert (result.size, result.parts, acknowledged) == (3, 1, [3])
    assert s3_client.get_object(Bucket=s3_bucket, Key="small")["Body"].read() == b"abc"


def test_checksum_mismatch_aborts_and_stores_nothing(s3_server, s3_bucket, s3_client):
    data = os.urandom(11 * MIB)
    config = settings(s3_server, s3_bucket)
    with pytest.raises(S3Error, match="nothing was stored"):
        upload_stream(
            make_client(config), config, "bad.snapshot", io.BytesIO(data), expected_sha256="ab" * 32
        )
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_bucket)
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=s3_bucket)


def test_parts_in_flight_never_exceed_concurrency(s3_server, s3_bucket):
    config = settings(s3_server, s3_bucket, concurrency=2)
    client = make_client(config)
    active, peak, lock = 0, 0, threading.Lock()
    original = client.upload_part

    def counting_upload_part(**kwargs):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return original(**kwargs)
        finally:
            with lock:
                active -= 1

    client.upload_part = counting_upload_part
    upload_stream(client, config, "bounded", io.BytesIO(os.urandom(30 * MIB)))
    assert 1 <= peak <= 2


def test_missing_bucket_says_so(s3_server):
    config = settings(s3_server, "no-such-bucket-here")
    with pytest.raises(S3Error, match="bucket does not exist"):
        upload_stream(make_client(config), config, "k", io.BytesIO(b"x"))


def test_unreachable_endpoint_says_so():
    config = S3Settings(
        bucket="b", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="s", max_attempts=1
    )
    with pytest.raises(S3Error, match="unreachable"):
        upload_stream(make_client(config), config, "k", io.BytesIO(b"x"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bucket": ""}, "no S3 bucket"),
        ({"part_size": MIB}, "below S3's minimum"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"secret_key": None}, "both the S3 access key and secret key"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    values = {"bucket": "b", "access_key": "a", "secret_key": "s", **overrides}
    with pytest.raises(S3Error, match=message):
        S3Settings(**values)


def test_part_size_grows_so_a_large_snapshot_fits_in_10000_parts():
    assert part_size_for(8 * MIB, None) == 8 * MIB
    assert part_size_for(8 * MIB, 50 * 1024**3) == 8 * MIB
    grown = part_size_for(8 * MIB, 200 * 1024**3)
    assert grown % MIB == 0 and grown * MAX_PARTS >= 200 * 1024**3
