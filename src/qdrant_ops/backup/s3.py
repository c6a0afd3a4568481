"""S3 for backups: a client built the way EC2 expects, and a streaming multipart upload that
hashes as it reads, keeps memory bounded, and never leaves a complete-looking object whose bytes
are not what the snapshot's checksum says.

Every object is written once: each write carries `If-None-Match: *` (S3 conditional writes), so it
fails rather than replace an object, and the nodes' IAM policy refuses writes without it
(terraform/iam.tf; docs/backup-trust.md).

On EC2 the instance profile provides credentials: leave the keys unset. An endpoint and keys are
for other S3 services (the tests' moto server, MinIO).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

import boto3
import botocore.config
import botocore.exceptions

from qdrant_ops.errors import QdrantOpsError

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s]*)?\Z")
REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+){1,4}\Z")


class S3Error(QdrantOpsError):
    """An S3 operation failed; the message says which and what to check."""


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str = "qdrant-backups"
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    part_size: int = 8 * MIB  # bench/backup.py: 8 MiB x 8 matched boto3 at a third of the memory
    concurrency: int = 8
    max_attempts: int = 8  # per request, botocore's standard retry mode

    def __post_init__(self) -> None:
        if not self.bucket:
            raise S3Error("no S3 bucket given: set the backup bucket name")
        for name in ("bucket", "prefix", "endpoint_url", "region", "access_key", "secret_key"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise S3Error(f"s3.{name} must be a string, got {type(getattr(self, name)).__name__}")
        if type(self.part_size) is int and self.part_size < MIN_PART_SIZE:
            raise S3Error(f"part size {self.part_size} is below S3's minimum of 5 MiB: raise it")
        if type(self.concurrency) is int and self.concurrency < 1:
            raise S3Error(f"concurrency must be at least 1, got {self.concurrency}")
        for name, low, high in (
            ("part_size", MIN_PART_SIZE, 5 * 1024 * MIB),
            ("concurrency", 1, 256),
            ("max_attempts", 1, 100),
        ):
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise S3Error(f"s3.{name} must be an integer from {low} to {high}, got {value!r}")
        if self.endpoint_url is not None and not ENDPOINT.match(self.endpoint_url):
            raise S3Error(
                f"s3.endpoint_url {self.endpoint_url!r} is not an http(s) URL such as https://s3.example.com"
            )
        if self.region is not None and not REGION.match(self.region):
            raise S3Error(f"s3.region {self.region!r} is not a region name such as eu-west-1")
        if bool(self.access_key) != bool(self.secret_key):
            raise S3Error("give both the S3 access key and secret key, or neither (instance profile)")


def make_client(settings: S3Settings):
    config = botocore.config.Config(
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        # SigV4 everywhere: botocore would presign with SigV2 otherwise, which newer regions refuse.
        signature_version="s3v4",
        max_pool_connections=settings.concurrency + 2,
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        config=config,
    )


def describe_error(exc: Exception, action: str, bucket: str, key: str = "") -> S3Error:
    """Turn a botocore failure into a message that says what to check."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        hints = {
            "NoSuchBucket": "the bucket does not exist: create it (terraform apply) or fix the bucket name",
            "AccessDenied": "access denied: check the instance profile or keys allow this prefix and KMS key",
            "InvalidAccessKeyId": "the access key is not known to this S3 endpoint",
            "SignatureDoesNotMatch": "the secret key does not match the access key",
            "PreconditionFailed": "the object exists already: backup objects are written once",
            "ConditionalRequestConflict": "another upload of the same key finished first",
        }
        return S3Error(f"{action} {where} failed: {hints.get(code, code or str(exc))}")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError):
        return S3Error(
            f"{action} {where} failed: S3 endpoint unreachable ({exc}); check the network / endpoint"
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return S3Error(f"{action} {where} failed: no credentials (attach the instance profile or set keys)")
    return S3Error(f"{action} {where} failed: {type(exc).__name__}: {exc}")


@dataclass
class UploadResult:
    key: str
    size: int
    sha256: str
    parts: int
    seconds: float


def _read_full(reader: Readable, size: int) -> bytes:
    """Read exactly `size` bytes unless the stream ends (HTTP streams return short reads)."""
    chunks, remaining = [], size
    while remaining > 0:
        chunk = reader.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def upload_stream(
    client,
    settings: S3Settings,
    key: str,
    reader: Readable,
    *,
    expected_sha256: str | None = None,
    metadata: dict[str, str] | None = None,
    size_hint: int | None = None,
    on_bytes: Callable[[int], None] = lambda _nbytes: None,
) -> UploadResult:
    """Stream `reader` to s3://bucket/key. At most `concurrency` parts are in flight, so memory
    stays near (concurrency + 1) * part_size whatever the size. The sha256 is computed while
    reading; with `expected_sha256` a mismatch aborts the upload before it completes, so no
    object with wrong bytes ever appears. The stored size is checked against what was sent.
    `size_hint` (e.g. the size Qdrant lists) raises the part size when 10,000 parts would not do.
    `on_bytes` hears of each part S3 acknowledged (progress inside a large object)."""
    started = time.monotonic()
    part_size = part_size_for(settings.part_size, size_hint)
    bucket = settings.bucket
    metadata = dict(metadata or {})
    if expected_sha256:
        metadata["sha256"] = expected_sha256.strip().lower()
    digest = hashlib.sha256()
    first = _read_full(reader, part_size)
    digest.update(first)
    size = len(first)
    try:
        if len(first) < part_size:  # fits in one request
            _check_digest(digest, expected_sha256, key)
            client.put_object(Bucket=bucket, Key=key, Body=first, Metadata=metadata, IfNoneMatch="*")
            on_bytes(len(first))
            parts = 1
        else:
            size, parts = _multipart(
                client,
                settings,
                part_size,
                key,
                reader,
                first=first,
                digest=digest,
                metadata=metadata,
                expected_sha256=expected_sha256,
                on_bytes=on_bytes,
            )
        head = client.head_object(Bucket=bucket, Key=key)
    except QdrantOpsError:  # ours, already clear (S3Error, or the source stream failing)
        raise
    except Exception as exc:
        raise describe_error(exc, "upload to", bucket, key) from exc
    if head["ContentLength"] != size:  # nodes may not delete: the attempt's folder is abandoned
        raise S3Error(
            f"s3://{bucket}/{key} holds {head['ContentLength']} bytes, {size} were sent: this attempt is "
            "abandoned (a set never uses it; prune removes it with its set); run the backup again"
        )
    return UploadResult(key, size, digest.hexdigest(), parts, time.monotonic() - started)


def part_size_for(configured: int, size_hint: int | None) -> int:
    """The configured part size, raised to whole MiB when the object would need over 10,000 parts."""
    if not size_hint:
        return configured
    needed = -(-size_hint // MAX_PARTS)
    return max(configured, -(-needed // MIB) * MIB)


def _check_digest(digest, expected: str | None, key: str) -> None:
    if expected and digest.hexdigest() != expected.strip().lower():
        raise S3Error(
            f"sha256 of the bytes read for {key} is {digest.hexdigest()}, Qdrant reported "
            f"{expected.strip().lower()}: the snapshot changed or was cut short; nothing was stored"
        )


def _multipart(
    client, settings, part_size, key, reader, *, first, digest, metadata, expected_sha256, on_bytes
):
    bucket = settings.bucket
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata)["UploadId"]
    in_flight: dict[Future, tuple[int, int]] = {}  # part number and its size
    done: list[dict] = []
    size = 0

    def collect(return_when: str) -> None:
        finished, _ = wait(in_flight, return_when=return_when)
        for future in finished:
            number, part_bytes = in_flight.pop(future)
            done.append({"PartNumber": number, "ETag": future.result()["ETag"]})
            on_bytes(part_bytes)

    try:
        with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="s3-part") as pool:
            number, chunk = 1, first
            while chunk:
                if number > MAX_PARTS:
                    raise S3Error(f"{key} needs more than {MAX_PARTS} parts: raise the part size")
                if len(in_flight) >= settings.concurrency:
                    # Bounds memory to `concurrency` parts; any finished part frees a slot, so one
                    # slow part does not hold up the others.
                    collect(FIRST_COMPLETED)
                future = pool.submit(
                    client.upload_part,
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
                in_flight[future] = (number, len(chunk))
                size += len(chunk)
                number += 1
                chunk = _read_full(reader, part_size)
                digest.update(chunk)
            collect(ALL_COMPLETED)
        done.sort(key=lambda part: part["PartNumber"])
        _check_digest(digest, expected_sha256, key)
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}, IfNoneMatch="*"
        )
    except BaseException:
        # Abort so no partial object and no billed orphan parts stay behind.
        with contextlib.suppress(Exception):  # the original failure is the one to report
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return size, len(done)


def put_json(s3_client, bucket: str, key: str, value: dict) -> None:
    """Write a record once (fails with the reason when the key exists)."""
    try:
        s3_client.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(value, indent=1, sort_keys=True).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
    except Exception as exc:
        raise describe_error(exc, "write", bucket, key) from exc


def get_json(s3_client, bucket: str, key: str) -> dict | None:
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise describe_error(exc, "read", bucket, key) from exc
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested past Python's stack
        value = None
    if not isinstance(value, dict):
        raise S3Error(f"s3://{bucket}/{key} is not a JSON object: the object is damaged")
    return value


def list_objects(s3_client, bucket: str, prefix: str) -> list[dict]:
    try:
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item for page in pages for item in page.get("Contents", [])]
    except Exception as exc:
        raise describe_error(exc, "list", bucket, prefix) from exc
