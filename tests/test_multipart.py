"""Multipart uploads through boto3."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.test_buckets import error_code, status

MIB = 1024 * 1024


def upload_parts(s3: Any, bucket: str, key: str, bodies: list[bytes],
                 **create: Any) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts = []
    for number, body in enumerate(bodies, start=1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if (
            "ChecksumAlgorithm" in create) else {}
        result = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                Body=body, **extra)
        part = {"PartNumber": number, "ETag": result["ETag"]}
        for name in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256",
                     "ChecksumCRC64NVME"):
            if name in result and "ChecksumAlgorithm" in create:
                part[name] = result[name]
        parts.append(part)
    return upload_id, parts


def test_completed_upload_reads_back_with_the_multipart_etag(s3: Any, bucket: str) -> None:
    bodies = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
    upload_id, parts = upload_parts(s3, bucket, "mp", bodies, ContentType="text/csv",
                                    Metadata={"k": "v"})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    expected = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest()
    assert done["ETag"] == f'"{expected}-3"'
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(bodies)
    assert got["ContentType"] == "text/csv"
    assert got["Metadata"] == {"k": "v"}
    ranged = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MIB - 10}-{5 * MIB + 9}")
    assert ranged["Body"].read() == b"".join(bodies)[5 * MIB - 10:5 * MIB + 10]
    second = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert second["PartsCount"] == 3
    assert second["Body"].read() == bodies[1]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_small_parts_other_than_the_last_are_entity_too_small(s3: Any, bucket: str) -> None:
    upload_id, parts = upload_parts(s3, bucket, "small", [b"a" * 100, b"b" * 100])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert error_code(exc) == "EntityTooSmall"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="small")
    # The upload is still there and can be aborted.
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=upload_id)


def test_wrong_etag_is_invalid_part_and_disorder_is_invalid_part_order(s3: Any,
                                                                      bucket: str) -> None:
    upload_id, parts = upload_parts(s3, bucket, "bad", [os.urandom(5 * MIB), b"tail"])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="bad", UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}, parts[1]]})
    assert error_code(exc) == "InvalidPart"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="bad", UploadId=upload_id,
                                     MultipartUpload={"Parts": [parts[1], parts[0]]})
    assert error_code(exc) == "InvalidPartOrder"
    s3.complete_multipart_upload(Bucket=bucket, Key="bad", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    assert s3.head_object(Bucket=bucket, Key="bad")["ContentLength"] == 5 * MIB + 4


def test_aborted_or_unknown_upload_is_no_such_upload(s3: Any, bucket: str) -> None:
    upload_id, _ = upload_parts(s3, bucket, "gone", [b"x"])
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload_id)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="gone", UploadId=upload_id, PartNumber=2, Body=b"y")
    assert error_code(exc) == "NoSuchUpload"
    assert status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="gone", UploadId="nonexistent")
    assert error_code(exc) == "NoSuchUpload"


def test_part_number_out_of_range_is_invalid_argument(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="pn")["UploadId"]
    for number in (0, 10001):
        with pytest.raises(ClientError) as exc:
            s3.upload_part(Bucket=bucket, Key="pn", UploadId=upload_id, PartNumber=number,
                           Body=b"x")
        assert error_code(exc) == "InvalidArgument"


def test_reuploaded_part_replaces_the_first_and_list_parts_pages(s3: Any, bucket: str) -> None:
    upload_id, _ = upload_parts(s3, bucket, "lp", [b"1", b"2", b"3", b"4", b"5"])
    s3.upload_part(Bucket=bucket, Key="lp", UploadId=upload_id, PartNumber=2, Body=b"two!")
    seen = []
    marker = 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="lp", UploadId=upload_id, MaxParts=2,
                             PartNumberMarker=marker)
        seen += [(p["PartNumber"], p["Size"]) for p in page["Parts"]]
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
    assert seen == [(1, 1), (2, 4), (3, 1), (4, 1), (5, 1)]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="l")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("lp", upload_id)]


def test_composite_crc32_checksum_is_reported_for_the_object(s3: Any, bucket: str) -> None:
    bodies = [os.urandom(5 * MIB), os.urandom(100)]
    upload_id, parts = upload_parts(s3, bucket, "crc", bodies, ChecksumAlgorithm="CRC32")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="crc", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    crcs = b"".join(zlib.crc32(b).to_bytes(4, "big") for b in bodies)
    expected = base64.b64encode(zlib.crc32(crcs).to_bytes(4, "big")).decode() + "-2"
    assert done["ChecksumCRC32"] == expected
    head = s3.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == expected


def test_full_object_crc32_is_combined_from_the_parts(s3: Any, bucket: str) -> None:
    bodies = [os.urandom(5 * MIB), os.urandom(777)]
    upload_id, parts = upload_parts(s3, bucket, "full", bodies, ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    whole = base64.b64encode(zlib.crc32(b"".join(bodies)).to_bytes(4, "big")).decode()
    assert done["ChecksumCRC32"] == whole
