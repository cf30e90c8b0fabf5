"""Object reads and writes through boto3 with its default checksum behaviour."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.rawhttp import send, sign_v4
from tests.test_buckets import error_code, status

UNUSUAL_KEYS = [
    "plain.txt",
    "with space and+plus",
    "percent%20literal%",
    "double//slash///x",
    "unicode/日本語/ñandú/😀",
    "folder/",
    "trailing space ",
    "quote'\"<&>",
    "?question#hash",
    "a" * 1024,
]


@pytest.mark.parametrize("key", UNUSUAL_KEYS, ids=range(len(UNUSUAL_KEYS)))
def test_any_utf8_key_round_trips_byte_exact(s3: Any, bucket: str, key: str) -> None:
    body = os.urandom(1000) + key.encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [key]


def test_key_longer_than_1024_bytes_is_refused(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="é" * 513, Body=b"x")
    assert error_code(exc) == "KeyTooLongError"


def test_put_returns_md5_etag_and_get_returns_headers_and_metadata(s3: Any,
                                                                   bucket: str) -> None:
    body = b"hello cargohold"
    put = s3.put_object(
        Bucket=bucket, Key="doc.txt", Body=body, ContentType="text/plain",
        ContentEncoding="identity", ContentDisposition="attachment; filename=doc.txt",
        ContentLanguage="en", CacheControl="max-age=60",
        Expires=datetime(2030, 1, 1, tzinfo=UTC),
        Metadata={"color": "blue", "Owner-Name": "Ann"},
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="doc.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]
    assert got["ContentType"] == "text/plain"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == "attachment; filename=doc.txt"
    assert got["ContentLanguage"] == "en"
    assert got["CacheControl"] == "max-age=60"
    assert got["Metadata"] == {"color": "blue", "owner-name": "Ann"}
    assert got["ContentLength"] == len(body)
    head = s3.head_object(Bucket=bucket, Key="doc.txt")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]
    assert abs(head["LastModified"].timestamp() - time.time()) < 60


def test_a_gzip_encoded_upload_is_stored_and_served_as_sent(s3: Any, bucket: str) -> None:
    # Precompressed web assets: Content-Encoding describes the object, the server must not
    # decompress the upload (nor the download).
    for key, plain in (("small.js.gz", b"console.log(1);" * 10),
                       ("large.bin.gz", os.urandom(600_000) * 2)):
        compressed = gzip.compress(plain)
        put = s3.put_object(Bucket=bucket, Key=key, Body=compressed, ContentEncoding="gzip",
                            ContentType="application/javascript")
        assert put["ETag"] == f'"{hashlib.md5(compressed).hexdigest()}"'
        url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
        response = send("GET", url)
        assert response.headers["content-encoding"] == "gzip"
        assert response.body == compressed
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(compressed)


def test_overwrite_replaces_the_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second, longer")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second, longer"


def test_empty_object_round_trips(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0


def test_user_metadata_over_2_kib_is_refused(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="meta", Body=b"x", Metadata={"big": "v" * 2100})
    assert error_code(exc) == "MetadataTooLarge"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="meta")
    assert status(exc) == 404


def test_missing_key_answers_no_such_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="missing")
    assert error_code(exc) == "NoSuchKey"
    assert status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="missing")
    assert status(exc) == 404


def test_delete_removes_the_object_and_is_idempotent(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    assert s3.delete_object(Bucket=bucket, Key="gone")["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="gone")["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="gone")


def test_version_id_null_is_accepted_on_unversioned_objects(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="v", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="v", VersionId="null")["ContentLength"] == 1
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == b"x"
    s3.delete_object(Bucket=bucket, Key="v", VersionId="null")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="v")


def test_delete_objects_deletes_many_and_reports_each(s3: Any, bucket: str) -> None:
    keys = [f"many/{i}" for i in range(30)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": k} for k in [*keys, "never-existed"]]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted([*keys, "never-existed"])
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_delete_objects_in_quiet_mode_reports_only_errors(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="q", Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q"}],
                                                      "Quiet": True})
    assert "Deleted" not in result
    assert "Errors" not in result


def test_delete_objects_refuses_more_than_1000_keys(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="survivor", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": f"k{i}"} for i in range(1001)] + [{"Key": "survivor"}]})
    assert error_code(exc) == "MalformedXML"
    assert s3.head_object(Bucket=bucket, Key="survivor")["ContentLength"] == 1


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
def test_flexible_checksums_are_verified_stored_and_returned(s3: Any, bucket: str,
                                                             algorithm: str) -> None:
    body = os.urandom(70000)
    put = s3.put_object(Bucket=bucket, Key="sum", Body=body, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"]
    got = s3.get_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]
    head = s3.head_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]


def test_default_boto3_upload_stores_a_crc32_that_matches_the_body(s3: Any,
                                                                  bucket: str) -> None:
    body = os.urandom(5000)
    s3.put_object(Bucket=bucket, Key="default", Body=body)
    head = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    expected = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert head["ChecksumCRC32"] == expected


def test_wrong_checksum_header_is_refused_and_nothing_is_stored(s3: Any, bucket: str) -> None:
    wrong = base64.b64encode((zlib.crc32(b"other") & 0xFFFFFFFF).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"body", ChecksumCRC32=wrong)
    assert error_code(exc) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


def test_wrong_content_md5_is_refused_and_the_old_object_survives(s3: Any,
                                                                  bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="md5", Body=b"original")
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"replacement", ContentMD5=wrong)
    assert error_code(exc) == "BadDigest"
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == b"original"


def test_malformed_content_md5_is_invalid_digest(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"x", ContentMD5="not-base64!")
    assert error_code(exc) == "InvalidDigest"


RANGE_BODY = bytes(range(256)) * 40  # 10240 bytes


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 9),
    ("bytes=100-", 100, 10239),
    ("bytes=-50", 10190, 10239),
    ("bytes=10000-99999", 10000, 10239),
])
def test_range_reads_return_206_with_content_range(s3: Any, bucket: str, header: str,
                                                    start: int, end: int) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end}/{len(RANGE_BODY)}"
    assert got["Body"].read() == RANGE_BODY[start:end + 1]


def test_unsatisfiable_range_is_416_invalid_range(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=20000-")
    assert error_code(exc) == "InvalidRange"
    assert status(exc) == 416


def test_response_overrides_replace_headers_on_get(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="o", ResponseContentType="application/json",
                        ResponseContentDisposition="inline", ResponseCacheControl="no-cache")
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"


def test_a_response_override_with_a_line_break_is_invalid_argument(server: Any, s3: Any,
                                                                   bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    url = (f"{server.endpoint}/{bucket}/k"
           "?response-content-disposition=attachment%0D%0ASet-Cookie%3A%20a%3Db")
    resp = send("GET", url, sign_v4("GET", url))
    assert resp.status == 400
    assert b"<Code>InvalidArgument</Code>" in resp.body
    assert "set-cookie" not in resp.headers
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


def test_conditional_get_follows_s3_precedence(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert status(exc) == 412
    # If-Match true wins over a failing If-Unmodified-Since.
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag,
                         IfUnmodifiedSince=past)["ETag"] == etag
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert status(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status(exc) == 304
    # If-None-Match false (304) wins over a passing If-Modified-Since.
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag, IfModifiedSince=past)
    assert status(exc) == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert status(exc) == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["ETag"] == etag
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert status(exc) == 412


def test_if_none_match_star_refuses_to_overwrite(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert error_code(exc) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_if_match_write_replaces_only_the_expected_version(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")["ETag"]
    s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=etag)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=etag)
    assert error_code(exc) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v2"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=etag)
    assert error_code(exc) == "NoSuchKey"


def test_unsupported_storage_class_is_refused(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="sc", Body=b"x", StorageClass="GLACIER")
    assert error_code(exc) == "InvalidStorageClass"


def test_large_object_streams_both_ways(s3: Any, bucket: str, tmp_path: Any) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(24 * 1024 * 1024))
    with open(source, "rb") as fh:
        s3.put_object(Bucket=bucket, Key="big", Body=fh)
    got = s3.get_object(Bucket=bucket, Key="big")
    digest = hashlib.sha256()
    for chunk in got["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()


def test_numbers_written_with_non_ascii_digits_are_refused_not_a_server_error(
        server: Any, s3: Any, bucket: str) -> None:
    from tests import rawhttp

    s3.put_object(Bucket=bucket, Key="n", Body=b"0123456789")
    url = f"{server.endpoint}/{bucket}/n"
    # "²" passes str.isdigit() but not int(): each must be a client error, never a 500.
    ranged = rawhttp.send("GET", url, {**rawhttp.sign_v4("GET", url), "Range": "bytes=\u00b2-5"})
    assert ranged.status == 200 and ranged.body == b"0123456789"  # invalid Range: ignored
    part_url = f"{url}?partNumber=%C2%B2"
    assert rawhttp.send("GET", part_url, rawhttp.sign_v4("GET", part_url)).status == 400
    list_url = f"{server.endpoint}/?max-buckets=%C2%B2"
    assert rawhttp.send("GET", list_url, rawhttp.sign_v4("GET", list_url)).status == 400
    from cargohold import errors
    from cargohold.handlers.copy import parse_copy_range

    with pytest.raises(errors.InvalidArgument):
        parse_copy_range("bytes=0-\u00b2", 10)


def test_delete_objects_with_a_wrong_body_checksum_is_bad_digest_and_deletes_nothing(
        server: Any, s3: Any, bucket: str) -> None:
    from tests import rawhttp

    s3.put_object(Bucket=bucket, Key="keep", Body=b"v")
    body = b"<Delete><Object><Key>keep</Key></Object></Delete>"
    url = f"{server.endpoint}/{bucket}?delete"
    wrong = base64.b64encode(zlib.crc32(b"something else").to_bytes(4, "big")).decode()
    headers = {"x-amz-checksum-crc32": wrong}
    response = rawhttp.send("POST", url, {**rawhttp.sign_v4("POST", url, headers, body),
                                          **headers}, body)
    assert response.status == 400 and b"BadDigest" in response.body
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"v"
