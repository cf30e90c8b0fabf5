"""The MinIO Python client (``minio``), unchanged, against cargohold.

It signs every payload itself (the SHA-256 of each body, parts included, in
``x-amz-content-sha256``), asks GetBucketLocation for a bucket it did not make unless it
was given a region, streams uploads of unknown length as 5 MiB parts, sends Content-MD5
on DeleteObjects, CompleteMultipartUpload and PutObjectTagging, and presigns URLs that
plain urllib uses. What it stores is cross-checked with boto3.

Not covered: ``list_objects(include_user_meta=True)`` sends MinIO's own ``metadata=true``
listing extension, which S3 (and so cargohold) ignores; the keys list without metadata.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from minio.commonconfig import REPLACE, ComposeSource, CopySource, Tags
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess
from tests.test_clients import (
    file_sha256,
    multipart_parts,
    object_sha256,
    parts_of,
    write_random_file,
)

MIB = 1024 * 1024
MINIO_MIN_PART = 5 * MIB  # minio's part size for any object under ~48 GiB


def make_minio(server: ServerProcess, region: str | None = REGION,
               **overrides: str) -> Minio:
    settings = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, **overrides}
    return Minio(f"127.0.0.1:{server.port}", secure=False, region=region, **settings)


@pytest.fixture(scope="module")
def mc(server: ServerProcess) -> Minio:
    return make_minio(server)


@pytest.fixture(autouse=True)
def _remove_big_files(tmp_path: Path) -> Iterator[None]:
    yield
    for path in tmp_path.glob("*.bin"):
        path.unlink(missing_ok=True)


class ReadOnlyStream:
    """A stream with only ``read``: no seek, no tell, no length (a pipe, a socket)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)


def read_object(mc: Minio, bucket: str, key: str, **kwargs: Any) -> bytes:
    response = mc.get_object(bucket, key, **kwargs)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def s3_error(exc: pytest.ExceptionInfo[S3Error]) -> str:
    return str(exc.value.code)


def url_error(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, str]:
    """The status and S3 error code of a request expected to fail."""
    request = urllib.request.Request(url, data=data, method=method)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    body = caught.value.read().decode()
    code = re.search(r"<Code>([^<]+)</Code>", body)
    return caught.value.code, code.group(1) if code else ""


def listed(mc: Minio, bucket: str, **kwargs: Any) -> list[tuple[str, bool]]:
    return [(o.object_name, o.is_dir) for o in mc.list_objects(bucket, **kwargs)]


def test_minio_makes_finds_and_removes_a_bucket(mc: Minio, s3: Any) -> None:
    name = f"minio-{uuid.uuid4().hex[:16]}"
    assert not mc.bucket_exists(name)
    mc.make_bucket(name)  # with CreateBucketConfiguration: LocationConstraint nyc3
    try:
        assert mc.bucket_exists(name)
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == REGION
        assert name in {b.name for b in mc.list_buckets()}
        with pytest.raises(S3Error) as caught:
            mc.make_bucket(name)
        assert s3_error(caught) == "BucketAlreadyOwnedByYou"
        mc.put_object(name, "k", io.BytesIO(b"x"), 1)
        with pytest.raises(S3Error) as caught:
            mc.remove_bucket(name)
        assert s3_error(caught) == "BucketNotEmpty"
        mc.remove_object(name, "k")
    finally:
        mc.remove_bucket(name)
    assert not mc.bucket_exists(name)
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_minio_without_a_region_learns_it_from_get_bucket_location(
        server: ServerProcess, bucket: str) -> None:
    client = make_minio(server, region=None)
    client.put_object(bucket, "k", io.BytesIO(b"located"), 7)
    assert read_object(client, bucket, "k") == b"located"
    # Its presigned URLs are signed for the region the server reported.
    url = client.presigned_get_object(bucket, "k")
    credential = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Credential"]
    assert credential[0].split("/")[2] == REGION
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"located"


def test_minio_put_object_with_a_known_length_keeps_type_metadata_and_md5_etag(
        mc: Minio, s3: Any, bucket: str) -> None:
    body = b"hello, cargohold\n"
    result = mc.put_object(bucket, "dir/hello.txt", io.BytesIO(body), len(body),
                           content_type="text/plain", metadata={"color": "blue"})
    assert result.etag == hashlib.md5(body).hexdigest()
    stat = mc.stat_object(bucket, "dir/hello.txt")
    assert (stat.size, stat.etag, stat.content_type) == (
        len(body), result.etag, "text/plain")
    assert stat.metadata["x-amz-meta-color"] == "blue"
    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["Metadata"] == {"color": "blue"}
    assert head["ETag"] == f'"{result.etag}"'
    assert stat.last_modified == head["LastModified"]
    assert read_object(mc, bucket, "dir/hello.txt") == body


def test_minio_streams_an_upload_of_unknown_length_in_5_mib_parts(
        mc: Minio, s3: Any, bucket: str) -> None:
    data = b"".join(i.to_bytes(4, "big") * (MIB // 4) for i in range(12)) + b"tail"
    result = mc.put_object(bucket, "stream.bin", ReadOnlyStream(data), length=-1,
                           part_size=5 * MIB)
    assert multipart_parts(s3, bucket, "stream.bin") == parts_of(len(data), 5 * MIB)
    assert s3.head_object(Bucket=bucket, Key="stream.bin")["ETag"] == f'"{result.etag}"'
    assert object_sha256(s3, bucket, "stream.bin") == hashlib.sha256(data).hexdigest()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_minio_fput_object_and_fget_object_round_trip_a_file_of_several_parts(
        mc: Minio, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 17 * MIB + 4321
    source = tmp_path / "up.bin"
    digest = write_random_file(source, size)
    mc.fput_object(bucket, "file.bin", str(source))
    assert multipart_parts(s3, bucket, "file.bin") == parts_of(size, MINIO_MIN_PART)
    assert object_sha256(s3, bucket, "file.bin") == digest
    back = tmp_path / "back.bin"
    stat = mc.fget_object(bucket, "file.bin", str(back))
    assert stat.size == size
    assert file_sha256(back) == digest


def test_minio_get_object_with_offset_and_length_reads_byte_ranges(
        mc: Minio, bucket: str, tmp_path: Path) -> None:
    size = 11 * MIB + 99
    source = tmp_path / "ranges.bin"
    write_random_file(source, size)
    mc.fput_object(bucket, "ranges.bin", str(source))  # parts of 5 MiB
    data = source.read_bytes()
    for offset, length in ((0, 1), (5 * MIB - 7, 14), (MIB, 6 * MIB), (size - 1, 1)):
        assert read_object(mc, bucket, "ranges.bin", offset=offset, length=length) == (
            data[offset:offset + length])
    assert read_object(mc, bucket, "ranges.bin", offset=10 * MIB) == data[10 * MIB:]
    assert read_object(mc, bucket, "ranges.bin", length=100) == data[:100]


def test_minio_lists_recursively_by_prefix_by_delimiter_and_after_a_key(
        mc: Minio, bucket: str) -> None:
    for key in ("a/1", "a/2", "a/b/3", "c", "d/4"):
        mc.put_object(bucket, key, io.BytesIO(key.encode()), len(key))
    # Not recursive: delimiter "/", common prefixes come back as directories (minio
    # yields a page's keys before its prefixes).
    assert sorted(listed(mc, bucket)) == [("a/", True), ("c", False), ("d/", True)]
    assert sorted(listed(mc, bucket, prefix="a/")) == [
        ("a/1", False), ("a/2", False), ("a/b/", True)]
    assert listed(mc, bucket, recursive=True) == [
        ("a/1", False), ("a/2", False), ("a/b/3", False), ("c", False), ("d/4", False)]
    assert listed(mc, bucket, prefix="a/", recursive=True) == [
        ("a/1", False), ("a/2", False), ("a/b/3", False)]
    assert listed(mc, bucket, recursive=True, start_after="a/b/3") == [
        ("c", False), ("d/4", False)]
    assert listed(mc, bucket, recursive=True, use_api_v1=True) == listed(
        mc, bucket, recursive=True)
    sizes = {o.object_name: o.size for o in mc.list_objects(bucket, recursive=True)}
    assert sizes == {"a/1": 3, "a/2": 3, "a/b/3": 5, "c": 1, "d/4": 3}
    versions = list(mc.list_objects(bucket, recursive=True, include_version=True))
    assert [(v.object_name, v.version_id) for v in versions] == [
        (k, "null") for k in ("a/1", "a/2", "a/b/3", "c", "d/4")]


def test_minio_lists_more_than_a_page_with_continuation_tokens_and_markers(
        mc: Minio, s3: Any, bucket: str) -> None:
    names = [f"many/{i:05d}" for i in range(1010)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), names))
    assert [o.object_name for o in mc.list_objects(bucket, recursive=True)] == names
    assert [o.object_name for o in mc.list_objects(bucket, recursive=True,
                                                   use_api_v1=True)] == names


def test_minio_remove_objects_deletes_several_keys_in_one_request(
        mc: Minio, s3: Any, bucket: str) -> None:
    for key in ("r/1", "r/2", "r/3", "keep"):
        mc.put_object(bucket, key, io.BytesIO(b"x"), 1)
    doomed = [DeleteObject(k) for k in ("r/1", "r/2", "r/3", "r/never-existed")]
    # DeleteObjects with Content-MD5; the answer is a lazy iterator of the failures.
    assert list(mc.remove_objects(bucket, doomed)) == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]
    mc.remove_object(bucket, "keep")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_minio_copy_object_copies_on_the_server_keeping_or_replacing_metadata(
        mc: Minio, s3: Any, bucket: str, other_bucket: str) -> None:
    body = b"copy me" * 1000
    source = mc.put_object(bucket, "src", io.BytesIO(body), len(body),
                           content_type="text/plain", metadata={"origin": "src"})
    kept = mc.copy_object(other_bucket, "same", CopySource(bucket, "src"))
    assert kept.etag == source.etag
    head = s3.head_object(Bucket=other_bucket, Key="same")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"origin": "src"})
    mc.copy_object(bucket, "replaced", CopySource(bucket, "src"),
                   metadata={"origin": "copy"}, metadata_directive=REPLACE)
    head = s3.head_object(Bucket=bucket, Key="replaced")
    assert head["Metadata"] == {"origin": "copy"}
    for target, key in ((other_bucket, "same"), (bucket, "replaced")):
        assert read_object(mc, target, key) == body


def test_minio_compose_object_joins_sources_with_upload_part_copy(
        mc: Minio, s3: Any, bucket: str) -> None:
    first = bytes(range(256)) * (6 * MIB // 256)
    mc.put_object(bucket, "first", io.BytesIO(first), len(first))
    mc.put_object(bucket, "second", io.BytesIO(b"and the rest"), 12)
    mc.compose_object(bucket, "joined", [ComposeSource(bucket, "first"),
                                         ComposeSource(bucket, "second")])
    assert multipart_parts(s3, bucket, "joined") == 2
    assert read_object(mc, bucket, "joined") == first + b"and the rest"


def test_minio_presigned_get_and_put_urls_work_with_plain_urllib(
        mc: Minio, s3: Any, bucket: str) -> None:
    put_url = mc.presigned_put_object(bucket, "via/url.txt",
                                      expires=datetime.timedelta(minutes=5))
    request = urllib.request.Request(put_url, data=b"uploaded by urllib", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    stored = s3.get_object(Bucket=bucket, Key="via/url.txt")
    assert stored["Body"].read() == b"uploaded by urllib"
    get_url = mc.presigned_get_object(bucket, "via/url.txt",
                                      response_headers={"response-content-type": "text/x-q"})
    with urllib.request.urlopen(get_url, timeout=10) as response:
        assert response.read() == b"uploaded by urllib"
        assert response.headers["Content-Type"] == "text/x-q"


def test_minio_presigned_urls_that_expired_or_were_tampered_with_are_refused(
        mc: Minio, bucket: str) -> None:
    mc.put_object(bucket, "secret", io.BytesIO(b"s"), 1)
    # Signed two minutes ago for one minute: expired, though well within the clock skew.
    signed_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=2)
    expired = mc.presigned_get_object(bucket, "secret", expires=datetime.timedelta(minutes=1),
                                      request_date=signed_at)
    assert url_error(expired) == (403, "AccessDenied")
    good = mc.presigned_get_object(bucket, "secret")
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(good).query)["X-Amz-Signature"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert url_error(good.replace(signature, flipped)) == (403, "SignatureDoesNotMatch")
    assert url_error(good.replace("/secret?", "/secreT?")) == (403, "SignatureDoesNotMatch")
    # A presigned GET does not sign a PUT to the same key.
    assert url_error(good, method="PUT", data=b"x") == (403, "SignatureDoesNotMatch")


def test_minio_sets_gets_and_deletes_object_tags(mc: Minio, s3: Any, bucket: str) -> None:
    tags = Tags.new_object_tags()
    tags["team"] = "storage"
    tags["tier"] = "hot"
    mc.put_object(bucket, "tagged", io.BytesIO(b"t"), 1, tags=tags)  # x-amz-tagging
    assert mc.get_object_tags(bucket, "tagged") == {"team": "storage", "tier": "hot"}
    assert mc.stat_object(bucket, "tagged").metadata["x-amz-tagging-count"] == "2"
    replacement = Tags.new_object_tags()
    replacement["state"] = "reviewed"
    mc.set_object_tags(bucket, "tagged", replacement)  # PutObjectTagging with Content-MD5
    assert s3.get_object_tagging(Bucket=bucket, Key="tagged")["TagSet"] == [
        {"Key": "state", "Value": "reviewed"}]
    mc.delete_object_tags(bucket, "tagged")
    assert s3.get_object_tagging(Bucket=bucket, Key="tagged")["TagSet"] == []
    assert mc.get_object_tags(bucket, "tagged") is None


def test_minio_raises_s3_errors_with_the_codes_s3_uses(
        server: ServerProcess, mc: Minio, bucket: str) -> None:
    with pytest.raises(S3Error) as caught:
        mc.stat_object(bucket, "missing")  # HEAD: no body, minio names the 404
    assert s3_error(caught) == "NoSuchKey"
    with pytest.raises(S3Error) as caught:
        mc.get_object(bucket, "missing")
    assert s3_error(caught) == "NoSuchKey"
    with pytest.raises(S3Error) as caught:
        mc.get_object(f"{bucket}-missing", "k")
    assert s3_error(caught) == "NoSuchBucket"
    with pytest.raises(S3Error) as caught:
        mc.get_object_tags(bucket, "missing")
    assert s3_error(caught) == "NoSuchKey"
    mc.put_object(bucket, "k", io.BytesIO(b"k"), 1)
    with pytest.raises(S3Error) as caught:
        make_minio(server, secret_key="not-the-secret").get_object(bucket, "k")
    assert s3_error(caught) == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as caught:
        make_minio(server, access_key="CHNOSUCHKEY000000000").get_object(bucket, "k")
    assert s3_error(caught) == "InvalidAccessKeyId"
