"""Server-side copy: CopyObject and UploadPartCopy through boto3 and raw HTTP."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.auth import HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from tests import rawhttp
from tests.conftest import ServerProcess, admin, make_client
from tests.test_buckets import error_code, status

MIB = 1024 * 1024


def blob_inodes(data_dir: Path) -> tuple[int, int]:
    """(blob files, distinct inodes among them)."""
    files = [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]
    return len(files), len({p.stat().st_ino for p in files})


def test_copy_within_a_bucket_keeps_body_metadata_and_etag(s3: Any, bucket: str) -> None:
    body = os.urandom(300 * 1024)
    put = s3.put_object(Bucket=bucket, Key="src", Body=body, ContentType="text/x-src",
                        ContentDisposition="inline", Metadata={"colour": "blue"})
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == put["ETag"]
    assert isinstance(result["CopyObjectResult"]["LastModified"], datetime)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/x-src"
    assert got["ContentDisposition"] == "inline"
    assert got["Metadata"] == {"colour": "blue"}
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == body


def test_copy_across_buckets_of_a_small_inline_object(s3: Any, bucket: str,
                                                     other_bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="tiny", Body=b"tiny body")
    s3.copy_object(Bucket=other_bucket, Key="tiny-copy",
                   CopySource={"Bucket": bucket, "Key": "tiny"})
    assert s3.get_object(Bucket=other_bucket, Key="tiny-copy")["Body"].read() == b"tiny body"


def test_copy_of_an_empty_object_is_empty(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    s3.copy_object(Bucket=bucket, Key="empty2", CopySource={"Bucket": bucket, "Key": "empty"})
    got = s3.get_object(Bucket=bucket, Key="empty2")
    assert got["ContentLength"] == 0 and got["Body"].read() == b""


def test_replace_directive_takes_content_headers_and_metadata_from_the_request(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"data" * 100, ContentType="text/plain",
                  CacheControl="no-cache", Metadata={"old": "1"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", ContentType="application/json",
                   ContentLanguage="de", Metadata={"new": "2"})
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "application/json"
    assert head["ContentLanguage"] == "de"
    assert "CacheControl" not in head
    assert head["Metadata"] == {"new": "2"}


def test_copy_directive_ignores_request_metadata(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Metadata={"keep": "me"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   Metadata={"ignored": "yes"}, ContentType="text/ignored")
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"keep": "me"}
    assert head["ContentType"] == "binary/octet-stream"


def test_copying_an_object_onto_itself_needs_the_replace_directive(s3: Any,
                                                                  bucket: str) -> None:
    body = os.urandom(100 * 1024)
    s3.put_object(Bucket=bucket, Key="self", Body=body, Metadata={"v": "1"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    assert error_code(exc) == "InvalidRequest" and status(exc) == 400
    assert s3.head_object(Bucket=bucket, Key="self")["Metadata"] == {"v": "1"}
    s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"},
                   MetadataDirective="REPLACE", Metadata={"v": "2"})
    got = s3.get_object(Bucket=bucket, Key="self")
    assert got["Metadata"] == {"v": "2"}
    assert got["Body"].read() == body


@pytest.mark.parametrize("key", ["with space/and+plus", "ünïcödé/ключ", "q?uestion#hash%25",
                                 "a//double/slash", "&amp;=chars"])
def test_source_keys_with_special_characters_are_url_decoded(s3: Any, bucket: str,
                                                            key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.copy_object(Bucket=bucket, Key=key + "-copy", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=key + "-copy")["Body"].read() == key.encode()


def test_copy_source_conditions_pass_or_fail_with_precondition_failed(s3: Any,
                                                                      bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"conditional")["ETag"]
    source = {"Bucket": bucket, "Key": "src"}
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)
    passing: list[dict[str, Any]] = [
        {"CopySourceIfMatch": etag}, {"CopySourceIfNoneMatch": '"other"'},
        {"CopySourceIfModifiedSince": past}, {"CopySourceIfUnmodifiedSince": future},
        # A matching If-Match outweighs a failing If-Unmodified-Since.
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},
    ]
    for conditions in passing:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, **conditions)
    failing: list[dict[str, Any]] = [
        {"CopySourceIfMatch": '"other"'}, {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": future}, {"CopySourceIfUnmodifiedSince": past},
        {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": past},
    ]
    s3.delete_object(Bucket=bucket, Key="dst")
    for conditions in failing:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, **conditions)
        assert error_code(exc) == "PreconditionFailed" and status(exc) == 412, conditions
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="dst")
    assert status(exc) == 404


def test_missing_sources_answer_no_such_key_or_no_such_bucket(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})
    assert error_code(exc) == "NoSuchKey" and status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst",
                       CopySource={"Bucket": f"gone-{uuid.uuid4().hex[:8]}", "Key": "k"})
    assert error_code(exc) == "NoSuchBucket" and status(exc) == 404


@contextlib.contextmanager
def copy_source_sent_as(s3: Any, value: str) -> Iterator[None]:
    """Within the block, CopyObject sends ``x-amz-copy-source`` exactly as ``value`` (signed),
    whatever boto3 would have encoded."""
    def set_source(request: Any, **kwargs: Any) -> None:
        del request.headers["x-amz-copy-source"]  # setting would add a second value
        request.headers["x-amz-copy-source"] = value

    s3.meta.events.register_first("before-sign.s3.CopyObject", set_source)
    try:
        yield
    finally:
        s3.meta.events.unregister("before-sign.s3.CopyObject", set_source)


@pytest.mark.parametrize(("sent", "expected"), [
    ("a+b+c.txt", "a b c.txt"),  # Go's url.QueryEscape (s5cmd) writes a space as "+"
    ("a%20b%20c.txt", "a b c.txt"),  # botocore and the other SDKs write %20
    ("one%2Bplus", "one+plus"),  # a plus in the key comes as %2B
])
def test_a_plus_in_a_copy_source_is_a_space_as_in_a_form_value(
        s3: Any, bucket: str, sent: str, expected: str) -> None:
    s3.put_object(Bucket=bucket, Key=expected, Body=b"source")
    s3.put_object(Bucket=bucket, Key="one plus", Body=b"not this one")
    with copy_source_sent_as(s3, f"{bucket}/{sent}"):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource="placeholder/key")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source"


def test_an_unencoded_plus_in_a_copy_source_names_a_space_so_a_plus_key_is_not_found(
        s3: Any, bucket: str) -> None:
    """As on S3 (the aws cli once sent keys unencoded and got NoSuchKey for "foo++bar")."""
    s3.put_object(Bucket=bucket, Key="foo++bar", Body=b"plus")
    with copy_source_sent_as(s3, f"{bucket}/foo++bar"), pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource="placeholder/key")
    assert error_code(exc) == "NoSuchKey" and status(exc) == 404
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="dst")
    assert status(missing) == 404


@pytest.mark.parametrize("header", ["just-a-bucket", "/bucket-only/", "%ff%fe/key"])
def test_malformed_copy_sources_are_invalid_arguments(s3: Any, bucket: str,
                                                      header: str) -> None:
    with copy_source_sent_as(s3, header), pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource="placeholder/key")
    assert error_code(exc) == "InvalidArgument" and status(exc) == 400


def test_unknown_directives_are_invalid_arguments(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    for name in ("x-amz-metadata-directive", "x-amz-tagging-directive"):
        def set_directive(request: Any, name: str = name, **kwargs: Any) -> None:
            request.headers[name] = "MERGE"

        s3.meta.events.register_first("before-sign.s3.CopyObject", set_directive)
        try:
            with pytest.raises(ClientError) as exc:
                s3.copy_object(Bucket=bucket, Key="dst",
                               CopySource={"Bucket": bucket, "Key": "src"})
        finally:
            s3.meta.events.unregister("before-sign.s3.CopyObject", set_directive)
        assert error_code(exc) == "InvalidArgument", name


def test_copy_source_version_null_is_the_object_and_others_are_invalid(s3: Any,
                                                                       bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"versioned?")
    s3.copy_object(Bucket=bucket, Key="dst",
                   CopySource={"Bucket": bucket, "Key": "src", "VersionId": "null"})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"versioned?"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst2",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": "v123"})
    assert error_code(exc) == "InvalidArgument"


def test_copy_from_another_accounts_bucket_is_denied(server: ServerProcess, s3: Any,
                                                     bucket: str) -> None:
    created = admin(server, "account", "create", f"gil-{uuid.uuid4().hex[:6]}")
    gil = make_client(server.endpoint, created["access_key"], created["secret_key"])
    own = f"gil-{uuid.uuid4().hex[:8]}"
    gil.create_bucket(Bucket=own)
    s3.put_object(Bucket=bucket, Key="secret", Body=b"root only")
    with pytest.raises(ClientError) as exc:
        gil.copy_object(Bucket=own, Key="stolen", CopySource={"Bucket": bucket, "Key": "secret"})
    assert error_code(exc) == "AccessDenied" and status(exc) == 403
    upload_id = gil.create_multipart_upload(Bucket=own, Key="mp")["UploadId"]
    with pytest.raises(ClientError) as exc:
        gil.upload_part_copy(Bucket=own, Key="mp", UploadId=upload_id, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "secret"})
    assert error_code(exc) == "AccessDenied"
    gil.abort_multipart_upload(Bucket=own, Key="mp", UploadId=upload_id)
    gil.delete_bucket(Bucket=own)


def test_copy_with_a_new_checksum_algorithm_computes_it(s3: Any, bucket: str) -> None:
    body = os.urandom(200 * 1024)
    s3.put_object(Bucket=bucket, Key="src", Body=body)
    result = s3.copy_object(Bucket=bucket, Key="dst", ChecksumAlgorithm="SHA256",
                            CopySource={"Bucket": bucket, "Key": "src"})
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert result["CopyObjectResult"]["ChecksumSHA256"] == expected
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == expected


def test_copy_of_a_multipart_object_keeps_its_parts(s3: Any, bucket: str,
                                                    other_bucket: str) -> None:
    bodies = [os.urandom(5 * MIB), os.urandom(MIB)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id,
                                                      PartNumber=n, Body=b)["ETag"]}
             for n, b in enumerate(bodies, start=1)]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    result = s3.copy_object(Bucket=other_bucket, Key="mp",
                            CopySource={"Bucket": bucket, "Key": "mp"})
    assert result["CopyObjectResult"]["ETag"] == done["ETag"]
    assert s3.get_object(Bucket=other_bucket, Key="mp")["Body"].read() == b"".join(bodies)
    second = s3.get_object(Bucket=other_bucket, Key="mp", PartNumber=2)
    assert second["PartsCount"] == 2 and second["Body"].read() == bodies[1]


def test_copy_links_blobs_instead_of_copying_and_survives_the_source(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir=data_dir, extra_args=["--gc-interval-seconds", "0.2"]).start()
    try:
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="copy-src")
        client.create_bucket(Bucket="copy-dst")
        body = os.urandom(8 * MIB)
        client.put_object(Bucket="copy-src", Key="x", Body=body)
        client.copy_object(Bucket="copy-dst", Key="y",
                           CopySource={"Bucket": "copy-src", "Key": "x"})
        assert blob_inodes(data_dir) == (2, 1)  # two names, one copy of the bytes
        client.delete_object(Bucket="copy-src", Key="x")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and blob_inodes(data_dir) != (1, 1):
            time.sleep(0.1)
        assert blob_inodes(data_dir) == (1, 1)
        assert client.get_object(Bucket="copy-dst", Key="y")["Body"].read() == body
    finally:
        proc.stop()


# --- UploadPartCopy ---

def test_object_assembled_from_ranges_of_two_objects_reads_back_exactly(s3: Any,
                                                                         bucket: str) -> None:
    first, second = os.urandom(7 * MIB), os.urandom(3 * MIB)
    s3.put_object(Bucket=bucket, Key="first", Body=first)
    s3.put_object(Bucket=bucket, Key="second", Body=second)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="joined")["UploadId"]
    pieces = [("first", 1 * MIB, 6 * MIB - 1), ("second", 0, 3 * MIB - 1)]
    parts = []
    for number, (source, start, end) in enumerate(pieces, start=1):
        result = s3.upload_part_copy(Bucket=bucket, Key="joined", UploadId=upload_id,
                                     PartNumber=number,
                                     CopySource={"Bucket": bucket, "Key": source},
                                     CopySourceRange=f"bytes={start}-{end}")
        parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
    expected = first[MIB:6 * MIB] + second
    assert parts[0]["ETag"] == f'"{hashlib.md5(first[MIB:6 * MIB]).hexdigest()}"'
    s3.complete_multipart_upload(Bucket=bucket, Key="joined", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="joined")["Body"].read() == expected


def test_part_copy_without_a_range_copies_the_whole_source(s3: Any, bucket: str) -> None:
    whole = os.urandom(5 * MIB)
    small = b"small inline source"
    s3.put_object(Bucket=bucket, Key="whole", Body=whole)
    s3.put_object(Bucket=bucket, Key="small", Body=small)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp",
                                           ChecksumAlgorithm="CRC32")["UploadId"]
    parts = []
    for number, source in enumerate(("whole", "small"), start=1):
        result = s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=upload_id,
                                     PartNumber=number,
                                     CopySource={"Bucket": bucket, "Key": source})
        copied = result["CopyPartResult"]
        assert copied["ChecksumCRC32"]
        parts.append({"PartNumber": number, "ETag": copied["ETag"],
                      "ChecksumCRC32": copied["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [p["Size"] for p in listed] == [len(whole), len(small)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == whole + small


@pytest.mark.parametrize("copy_range", ["bytes=0-", "bytes=5-2", "0-10", "bytes=-10",
                                        "bytes=0-1000"])
def test_bad_copy_source_ranges_are_invalid_arguments(s3: Any, bucket: str,
                                                      copy_range: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x" * 1000)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"},
                            CopySourceRange=copy_range)
    assert error_code(exc) == "InvalidArgument" and status(exc) == 400
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


def test_part_copy_checks_source_conditions_and_the_upload(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"y" * 100)["ETag"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"},
                            CopySourceIfNoneMatch=etag)
    assert error_code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId="no-such-upload", PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"})
    assert error_code(exc) == "NoSuchUpload"
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=10001,
                            CopySource={"Bucket": bucket, "Key": "src"})
    assert error_code(exc) == "InvalidArgument"
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


def test_sources_over_five_gib_are_refused_for_copy_object_and_unranged_part_copy(
        s3: Any, bucket: str) -> None:
    # A 5 GiB+ object without 5 GiB of disk: whole-blob part copies are hard links.
    piece = os.urandom(5 * MIB)
    s3.put_object(Bucket=bucket, Key="piece", Body=piece)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="huge")["UploadId"]
    etag = f'"{hashlib.md5(piece).hexdigest()}"'
    count = 1025  # 1025 x 5 MiB > 5 GiB
    for number in range(1, count + 1):
        s3.upload_part_copy(Bucket=bucket, Key="huge", UploadId=upload_id, PartNumber=number,
                            CopySource={"Bucket": bucket, "Key": "piece"})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="huge", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag}
                                   for n in range(1, count + 1)]})
    assert s3.head_object(Bucket=bucket, Key="huge")["ContentLength"] == count * 5 * MIB
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="huge-copy",
                       CopySource={"Bucket": bucket, "Key": "huge"})
    assert error_code(exc) == "InvalidRequest" and status(exc) == 400
    target = s3.create_multipart_upload(Bucket=bucket, Key="t")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="t", UploadId=target, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "huge"})
    assert error_code(exc) == "InvalidRequest"
    # A range of it is fine: the last piece of the last part and the first of the next.
    start = 1024 * 5 * MIB - 10
    result = s3.upload_part_copy(Bucket=bucket, Key="t", UploadId=target, PartNumber=1,
                                 CopySource={"Bucket": bucket, "Key": "huge"},
                                 CopySourceRange=f"bytes={start}-{start + 19}")
    assert result["CopyPartResult"]["ETag"] == \
        f'"{hashlib.md5(piece[-10:] + piece[:10]).hexdigest()}"'
    s3.abort_multipart_upload(Bucket=bucket, Key="t", UploadId=target)


def test_tagging_directive_copies_or_replaces_the_tags(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"tagged", Tagging="team=blue&tier=1")
    source = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=source)
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=source,
                   TaggingDirective="REPLACE", Tagging="team=red")
    s3.copy_object(Bucket=bucket, Key="cleared", CopySource=source, TaggingDirective="REPLACE")

    def tags(key: str) -> dict[str, str]:
        got = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        return {t["Key"]: t["Value"] for t in got}

    assert tags("copied") == {"team": "blue", "tier": "1"}
    assert tags("replaced") == {"team": "red"}
    assert tags("cleared") == {}


def test_copies_racing_overwrites_of_their_source_get_one_whole_version(
        tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data",
                         extra_args=["--gc-interval-seconds", "0.05"]).start()
    try:
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="race")
        versions = [bytes([n]) * (256 * 1024) for n in range(4)]
        client.put_object(Bucket="race", Key="src", Body=versions[0])
        stop = threading.Event()

        def overwrite() -> None:
            writer = make_client(proc.endpoint)
            n = 0
            while not stop.is_set():
                n += 1
                writer.put_object(Bucket="race", Key="src", Body=versions[n % 4])

        thread = threading.Thread(target=overwrite)
        thread.start()
        try:
            for i in range(40):
                client.copy_object(Bucket="race", Key=f"copy-{i}",
                                   CopySource={"Bucket": "race", "Key": "src"})
        finally:
            stop.set()
            thread.join()
        time.sleep(0.3)  # let the collector free what the overwrites replaced
        for i in range(40):
            assert client.get_object(Bucket="race", Key=f"copy-{i}")["Body"].read() in versions
    finally:
        proc.stop()


# ------------------------------------------------------------------ presigned copies


def test_a_presigned_copy_url_carrying_its_copy_source_in_the_query_copies(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    # The AWS SDK for JavaScript presigns CopyObject with every x-amz-* header moved into
    # the query; a PUT of that URL with no body is a copy, never an empty PutObject.
    s3.put_object(Bucket=bucket, Key="src", Body=b"source body", ContentType="text/x-src")
    s3.put_object(Bucket=bucket, Key="dst", Body=b"older destination")
    query = urlencode({"x-amz-copy-source": f"{bucket}/src",
                       "x-amz-metadata-directive": "REPLACE", "x-amz-meta-colour": "red"})
    url = rawhttp.presign_v4("PUT", f"{server.endpoint}/{bucket}/dst?{query}")
    resp = rawhttp.send("PUT", url, {}, b"")
    assert resp.status == 200, resp.body
    assert b"<CopyObjectResult" in resp.body
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"source body"
    assert got["Metadata"] == {"colour": "red"}

    # A presigned UploadPartCopy the same way.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    query = urlencode({"partNumber": "1", "uploadId": upload,
                       "x-amz-copy-source": f"{bucket}/src",
                       "x-amz-copy-source-range": "bytes=0-5"})
    url = rawhttp.presign_v4("PUT", f"{server.endpoint}/{bucket}/assembled?{query}")
    resp = rawhttp.send("PUT", url, {}, b"")
    assert resp.status == 200, resp.body
    etag = re.search(rb"<ETag>([^<]*)</ETag>", resp.body)
    assert etag is not None
    s3.complete_multipart_upload(
        Bucket=bucket, Key="assembled", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag.group(1).decode()
                                    .replace("&quot;", '"')}]})
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == b"source"


def test_a_presigned_v2_copy_url_copies_and_a_copy_source_added_to_a_url_is_refused(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"source body")
    s3.put_object(Bucket=bucket, Key="dst", Body=b"destination")
    # botocore's SigV2 presigner moves x-amz-* headers into the query and signs them.
    request = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/copied",
                         headers={"x-amz-copy-source": f"{bucket}/src"})
    HmacV1QueryAuth(rawhttp.credentials(), expires=300).add_auth(request)
    resp = rawhttp.send("PUT", str(request.url), {}, b"")
    assert resp.status == 200, resp.body
    assert s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == b"source body"

    # A copy source appended to URLs presigned for a plain PUT is not signed: refused, and
    # the destination keeps its bytes.
    plain_v4 = rawhttp.presign_v4("PUT", f"{server.endpoint}/{bucket}/dst")
    plain_v2 = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/dst")
    HmacV1QueryAuth(rawhttp.credentials(), expires=300).add_auth(plain_v2)
    for url in (plain_v4, str(plain_v2.url)):
        forged = f"{url}&{urlencode({'x-amz-copy-source': f'{bucket}/src'})}"
        resp = rawhttp.send("PUT", forged, {}, b"")
        assert (resp.status, xml_code(resp.body)) == (403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"destination"


def xml_code(body: bytes) -> str:
    found = re.search(rb"<Code>([^<]*)</Code>", body)
    return found.group(1).decode() if found else ""
