"""The moto S3 server speaks the real protocol: a multipart upload round-trips byte for byte."""

import hashlib
import os

import botocore.exceptions
import pytest

MIB = 1024 * 1024


def test_multipart_object_round_trip(s3_client, s3_bucket):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123_457)]
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="set/part.snapshot")
    etags = [
        s3_client.upload_part(
            Bucket=s3_bucket,
            Key="set/part.snapshot",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body,
        )["ETag"]
        for number, body in enumerate(parts, start=1)
    ]
    s3_client.complete_multipart_upload(
        Bucket=s3_bucket,
        Key="set/part.snapshot",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, start=1)]},
    )

    head = s3_client.head_object(Bucket=s3_bucket, Key="set/part.snapshot")
    assert head["ContentLength"] == sum(len(p) for p in parts)
    assert head["ETag"].strip('"').endswith("-3")  # S3's marker of a 3-part object
    body = s3_client.get_object(Bucket=s3_bucket, Key="set/part.snapshot")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_missing_object_is_a_client_error(s3_client, s3_bucket):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3_client.head_object(Bucket=s3_bucket, Key="absent")
    assert caught.value.response["Error"]["Code"] == "404"
