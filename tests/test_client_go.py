"""The AWS SDK for Go v2 (config, credentials, service/s3 and its presign client,
feature/s3/manager), unchanged, against the real server.

``tests/go/s3client.go`` runs one scenario with a stock ``s3.Client`` (every default but
the endpoint, path-style addressing, region and static credentials) and prints what the SDK
saw as one JSON object, including every request it sent (recorded by a wrapper around the
SDK's own http client that only looks). Each test asserts on that and cross-checks with
boto3 what the server stored. The SDK is Debian bookworm's (golang-github-aws-aws-sdk-go-v2-dev
1.17.1: service/s3 1.29.1, feature/s3/manager 1.11.37, built with golang-go 1.19 by
``tests/go/build``, offline); without ``tests/go/bin/s3client`` the module is skipped (failed
under CARGOHOLD_REQUIRE_CLIENTS=1).

Over plain http this SDK signs every payload: ``x-amz-content-sha256`` is the SHA-256 of the
body (never UNSIGNED-PAYLOAD, no aws-chunked, no default CRC32 checksums: those came to the
SDK in 2025), and DeleteObjects carries Content-MD5.

Not covered (quirks of this 2022 SDK, not of the server):
- ``PresignPutObject`` drops ``ContentType`` (neither signed nor put in the URL; fixed in
  later SDKs), so the plain client sends Content-Type unsigned, which S3 accepts.
- ``x-amz-meta-*`` of a presigned PUT stay signed headers (later SDKs hoist them into the
  query): the plain client must send them, and one that leaves one out is refused.
- No flexible checksums (CRC32, CRC32C, SHA-1, SHA-256 headers and trailers) unless asked
  for per call; the JS SDK tests cover the default-checksum behaviour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ACCESS_KEY, REGION, ServerProcess, missing_client
from tests.test_clients import (
    file_sha256,
    multipart_parts,
    object_sha256,
    scenario_runner,
    write_random_file,
)

MIB = 1024 * 1024
GO_DIR = Path(__file__).parent / "go"
BINARY = GO_DIR / "bin" / "s3client"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
EMPTY_MD5_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
SIGNATURE_MISMATCH = "SignatureDoesNotMatch"

RunGo = Callable[..., dict[str, Any]]


def missing_requirement() -> str | None:
    """Why the Go client cannot run here, or None."""
    build = "run tests/go/build (apt-get install golang-go golang-github-aws-aws-sdk-go-v2-dev)"
    if not BINARY.exists():
        return f"{BINARY.relative_to(GO_DIR.parent.parent)} is not built: {build}"
    built = BINARY.stat().st_mtime
    stale = [p.name for p in [*GO_DIR.glob("*.go"), GO_DIR / "build"]
             if p.stat().st_mtime > built]
    if stale:
        return f"tests/go/bin/s3client is older than {', '.join(stale)}: {build}"
    return None


# Skip (or fail) at collection, before any server starts for these tests.
if (_reason := missing_requirement()) is not None:
    missing_client(_reason, module=True)


@pytest.fixture
def run_go(server: ServerProcess, bucket: str, tmp_path: Path) -> Iterator[RunGo]:
    """Run one scenario of s3client against ``server`` and ``bucket``; return its JSON."""
    yield scenario_runner([str(BINARY)], server, bucket, tmp_path)
    for path in tmp_path.glob("*.bin"):
        path.unlink(missing_ok=True)


def sent(out: dict[str, Any], op: str) -> list[dict[str, Any]]:
    """The requests the SDK sent for operation ``op`` (e.g. "PutObject"), in order."""
    return [r for r in out["requests"] if r["op"] == op]


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(path: Path, part_size: int) -> tuple[list[str], list[str], str]:
    """Per-part SHA-256s and ETags of ``path`` cut in ``part_size`` parts, and S3's
    multipart ETag (the MD5 of the concatenated part MD5s, ``-N``)."""
    sha256s: list[str] = []
    md5s: list[bytes] = []
    with open(path, "rb") as fh:
        while chunk := fh.read(part_size):
            sha256s.append(hashlib.sha256(chunk).hexdigest())
            md5s.append(hashlib.md5(chunk).digest())
    etags = [f'"{m.hex()}"' for m in md5s]
    whole = hashlib.md5(b"".join(md5s)).hexdigest()
    return sha256s, etags, f'"{whole}-{len(md5s)}"'


def assert_api_error(err: dict[str, Any], code: str, status: int) -> None:
    """An error the SDK surfaced as a smithy APIError with ``code`` and HTTP ``status``,
    carrying the server's request id."""
    assert (err["code"], err["httpStatusCode"]) == (code, status), err
    assert err["requestId"], err


def test_go_sdk_put_get_head_list_delete_round_trip_keeps_metadata_and_content_type(
        run_go: RunGo, s3: Any, bucket: str) -> None:
    out = run_go("roundtrip")

    puts = sent(out, "PutObject")
    assert len(puts) == 3 + len(out["listKeys"])
    assert all(r["status"] == 200 and r["query"] == {"x-id": "PutObject"} for r in puts)
    assert puts[0]["meta"] == {"x-amz-meta-origin": "go-sdk", "x-amz-meta-purpose": "round-trip"}
    assert puts[1]["meta"] == {"x-amz-meta-mixed-case-key": "Value With Spaces"}
    assert {"x-amz-meta-origin", "x-amz-meta-purpose", "content-type"} <= set(
        puts[0]["signedHeaders"])
    assert out["putText"]["etag"] == md5_etag(out["text"].encode())
    assert out["putEmpty"]["etag"] == EMPTY_MD5_ETAG

    got = out["getText"]
    assert got["text"] == out["text"] and got["sha256"] == out["textSha256"]
    assert got["contentType"] == "text/plain; charset=utf-8"
    assert got["metadata"] == {"origin": "go-sdk", "purpose": "round-trip"}
    assert got["etag"] == out["putText"]["etag"] and got["lastModified"]
    got = out["getBinary"]
    assert (got["sha256"], got["length"]) == (out["binarySha256"], out["binaryLength"])
    assert got["contentLength"] == out["binaryLength"]
    assert got["contentType"] == "application/x-cargohold-test"
    assert got["metadata"] == {"mixed-case-key": "Value With Spaces"}
    assert (out["getEmpty"]["length"], out["getEmpty"]["etag"]) == (0, EMPTY_MD5_ETAG)
    head = out["head"]
    assert head == {"etag": out["putBinary"]["etag"], "contentLength": out["binaryLength"],
                    "contentType": "application/x-cargohold-test",
                    "metadata": {"mixed-case-key": "Value With Spaces"}, "lastModified": True}

    # The paginator: 3 keys a page, UTF-8 byte order, the continuation token passed back.
    expected = sorted(out["listKeys"], key=lambda k: k.encode())
    pages = out["pages"]
    assert [p["keys"] for p in pages] == [expected[0:3], expected[3:6], expected[6:]]
    assert [p["keyCount"] for p in pages] == [3, 3, 2]
    assert [p["isTruncated"] for p in pages] == [True, True, False]
    assert [p["hasNextToken"] for p in pages] == [True, True, False]
    lists = [r for r in sent(out, "ListObjectsV2") if r["query"].get("prefix") == "list/"]
    assert len(lists) == 3 and "continuation-token" not in lists[0]["query"]
    assert all(r["query"]["max-keys"] == "3" and "continuation-token" in r["query"]
               for r in lists[1:])
    sizes = {k: s for p in pages for k, s in zip(p["keys"], p["sizes"], strict=True)}
    assert sizes == {k: len(f"body of {k}".encode()) for k in out["listKeys"]}
    assert out["delimited"] == {"prefixes": ["docs/", "list/"], "keyCount": 2, "contents": 0}

    # DeleteObjects (with the SDK's Content-MD5); a key that never existed counts as deleted.
    (delete,) = sent(out, "DeleteObjects")
    assert delete["query"] == {"delete": "", "x-id": "DeleteObjects"}
    assert delete["status"] == 200 and "content-md5" in delete["signedHeaders"]
    assert sorted(out["deleted"]) == sorted(out["deleteKeys"]) and out["deleteErrors"] == []
    assert [r["status"] for r in sent(out, "DeleteObject")] == [204]
    remaining = ["docs/data.bin", "docs/empty", "list/tilde~star*", "list/zz", "list/ünïcödé"]
    assert out["remaining"] == remaining

    # What the server stored, as boto3 sees it.
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == remaining
    stored = s3.head_object(Bucket=bucket, Key="docs/data.bin")
    assert stored["Metadata"] == {"mixed-case-key": "Value With Spaces"}
    assert stored["ContentType"] == "application/x-cargohold-test"
    assert stored["ETag"] == out["putBinary"]["etag"]
    assert object_sha256(s3, bucket, "docs/data.bin") == out["binarySha256"]
    for key in ["docs/hello.txt", *out["deleteKeys"]]:
        with pytest.raises(ClientError) as err:
            s3.head_object(Bucket=bucket, Key=key)
        assert err.value.response["Error"]["Code"] == "404"


def test_go_sdk_signs_the_sha256_of_every_payload_and_a_body_changed_after_signing_is_refused(
        run_go: RunGo, s3: Any, bucket: str) -> None:
    out = run_go("signing")

    # Over http every request signs x-amz-content-sha256: the body's SHA-256 on the PUT, the
    # empty string's on the GET.
    (put,) = sent(out, "PutObject")
    assert put["headers"]["x-amz-content-sha256"] == out["bodySha256"]
    assert put["contentLength"] == out["bodyLength"] and put["status"] == 200
    (get,) = sent(out, "GetObject")
    assert get["headers"]["x-amz-content-sha256"] == EMPTY_SHA256
    for request in out["requests"]:
        assert "x-amz-content-sha256" in request["signedHeaders"]
        # No aws-chunked streaming and no flexible checksum: this SDK's defaults over http.
        assert not {"content-encoding", "x-amz-trailer", "x-amz-sdk-checksum-algorithm"} & set(
            request["headers"])
        assert not any(h.startswith("x-amz-checksum-") for h in request["headers"])
    assert out["get"]["sha256"] == out["bodySha256"]
    assert out["put"]["etag"] == out["get"]["etag"]

    # The same PUT with its first byte flipped after signing: refused once, not retried.
    (tampered,) = out["tamperedRequests"]
    assert tampered["tampered"] and tampered["status"] == 400
    assert tampered["headers"]["x-amz-content-sha256"] == out["bodySha256"]
    assert_api_error(out["tampered"], "XAmzContentSHA256Mismatch", 400)

    assert object_sha256(s3, bucket, "signed.bin") == out["bodySha256"]
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="tampered.bin")
    assert err.value.response["Error"]["Code"] == "404"


def test_go_sdk_upload_manager_sends_30_mib_in_5_mib_parts_and_download_manager_reads_it_back(
        run_go: RunGo, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 30 * MIB + 12345
    big = tmp_path / "big.bin"
    big_sha = write_random_file(big, size)
    small = tmp_path / "small.bin"
    small_sha = write_random_file(small, MIB + 4321)
    downloaded = tmp_path / "downloaded.bin"
    out = run_go("transfer", file=str(big), small_file=str(small), out=str(downloaded))

    # manager.Uploader: CreateMultipartUpload, 7 UploadParts, each signing its part's SHA-256.
    part_sha256s, part_etags, etag = multipart_etag(big, 5 * MIB)
    (create,) = sent(out, "CreateMultipartUpload")
    assert create["query"] == {"uploads": "", "x-id": "CreateMultipartUpload"}
    assert create["headers"]["content-type"] == "application/x-go-upload"
    assert create["meta"] == {"x-amz-meta-tool": "manager.Uploader"}
    parts = sorted(sent(out, "UploadPart"), key=lambda r: int(r["query"]["partNumber"]))
    assert [int(r["query"]["partNumber"]) for r in parts] == list(range(1, 8))
    assert all(r["query"]["uploadId"] == out["upload"]["uploadId"] for r in parts)
    assert [r["headers"]["x-amz-content-sha256"] for r in parts] == part_sha256s
    assert [r["contentLength"] for r in parts] == [5 * MIB] * 6 + [12345]
    assert all(r["status"] == 200 for r in parts)
    assert [p["etag"] for p in out["upload"]["parts"]] == part_etags
    (complete,) = sent(out, "CompleteMultipartUpload")
    assert complete["status"] == 200
    assert out["upload"]["location"].endswith(f"/{bucket}/big/object.bin")

    # Under one part size the Uploader sends a single PutObject.
    assert out["smallUpload"] == {"uploadId": "", "parts": 0}
    (small_put,) = sent(out, "PutObject")
    assert small_put["headers"]["x-amz-content-sha256"] == small_sha

    # manager.Downloader: 5 MiB ranges, all 206, into a file byte exact.
    gets = sent(out, "GetObject")
    starts = list(range(0, size, 5 * MIB))
    assert sorted(r["headers"]["range"] for r in gets) == sorted(
        f"bytes={s}-{s + 5 * MIB - 1}" for s in starts)
    assert sorted(r["contentRange"] for r in gets) == sorted(
        f"bytes={s}-{min(s + 5 * MIB, size) - 1}/{size}".replace("=", " ") for s in starts)
    assert all(r["status"] == 206 for r in gets)
    assert out["downloaded"] == size
    assert file_sha256(downloaded) == big_sha

    assert multipart_parts(s3, bucket, "big/object.bin") == 7
    head = s3.head_object(Bucket=bucket, Key="big/object.bin")
    assert (head["ContentLength"], head["ETag"]) == (size, etag)
    assert head["ContentType"] == "application/x-go-upload"
    assert head["Metadata"] == {"tool": "manager.Uploader"}
    assert object_sha256(s3, bucket, "big/object.bin") == big_sha
    assert object_sha256(s3, bucket, "small/object.bin") == small_sha
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_go_sdk_copy_object_copies_or_replaces_metadata_and_a_missing_source_is_no_such_key(
        run_go: RunGo, s3: Any, bucket: str) -> None:
    out = run_go("copy")

    copies = sent(out, "CopyObject")
    assert [r["headers"]["x-amz-copy-source"] for r in copies] == [
        f"{bucket}/source.txt", f"{bucket}/source.txt", f"{bucket}/no-such-source.txt"]
    assert "x-amz-metadata-directive" not in copies[0]["headers"]
    assert copies[1]["headers"]["x-amz-metadata-directive"] == "REPLACE"
    assert copies[1]["path"] == f"/{bucket}/replaced/%C3%BCn%C3%AFc%C3%B6d%C3%A9%20copy.txt"
    assert [r["status"] for r in copies] == [200, 200, 404]
    assert out["copy"] == {"etag": out["put"]["etag"], "lastModified": True}
    assert out["replace"]["etag"] == out["put"]["etag"]

    copied = out["copied"]
    assert copied["text"] == "the source object\n"
    assert (copied["contentType"], copied["metadata"]) == ("text/plain", {"generation": "one"})
    replaced = out["replaced"]
    assert replaced["text"] == "the source object\n"
    assert replaced["contentType"] == "text/x-copied"
    assert replaced["metadata"] == {"generation": "two", "copied": "yes"}
    assert_api_error(out["missingSource"], "NoSuchKey", 404)

    target = s3.head_object(Bucket=bucket, Key="replaced/ünïcödé copy.txt")
    assert target["Metadata"] == {"generation": "two", "copied": "yes"}
    assert target["ContentType"] == "text/x-copied" and target["ETag"] == out["put"]["etag"]
    source = s3.head_object(Bucket=bucket, Key="source.txt")
    assert (source["Metadata"], source["ContentType"]) == ({"generation": "one"}, "text/plain")
    assert s3.get_object(Bucket=bucket, Key="copy of source.txt")["Body"].read() == (
        b"the source object\n")
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == [
        "copy of source.txt", "replaced/ünïcödé copy.txt", "source.txt"]


def test_go_sdk_conditional_get_surfaces_304_not_modified_and_412_precondition_failed_as_errors(
        run_go: RunGo, s3: Any, bucket: str) -> None:
    out = run_go("conditional")
    etag = out["etag"]
    assert etag == s3.head_object(Bucket=bucket, Key="conditional.txt")["ETag"]

    # If-None-Match with the current ETag: 304, which the SDK surfaces as an APIError whose
    # code it derives from the status ("NotModified"), for GetObject and HeadObject alike.
    gets = sent(out, "GetObject")
    assert gets[0]["headers"]["if-none-match"] == etag and gets[0]["status"] == 304
    assert "if-none-match" in gets[0]["signedHeaders"]
    assert_api_error(out["notModified"], "NotModified", 304)
    (head,) = sent(out, "HeadObject")
    assert head["headers"]["if-none-match"] == etag and head["status"] == 304
    assert_api_error(out["headNotModified"], "NotModified", 304)

    assert gets[1]["headers"]["if-match"] == '"0123456789abcdef0123456789abcdef"'
    assert_api_error(out["preconditionFailed"], "PreconditionFailed", 412)
    assert gets[1]["status"] == 412

    for matched in (out["matched"], out["otherEtag"]):
        assert matched["text"] == "conditional body\n" and matched["etag"] == etag
    assert [r["status"] for r in gets[2:]] == [200, 200]
    # Each refused request was sent once: a 304 or 412 is not retried.
    assert len(gets) == 4


def test_go_sdk_ranged_get_object_returns_206_with_the_exact_bytes_and_416_past_the_end(
        run_go: RunGo, s3: Any, bucket: str) -> None:
    out = run_go("range")
    data = s3.get_object(Bucket=bucket, Key="ranged.bin")["Body"].read()
    assert len(data) == 70000 and hashlib.sha256(data).hexdigest() == out["sha256"]

    expected = {
        "bytes=1000-1999": (1000, 1999),
        "bytes=-500": (69500, 69999),
        "bytes=69990-": (69990, 69999),
        "bytes=69000-80000": (69000, 69999),  # an end past the object is cut to its size
    }
    for spec, (first, last) in expected.items():
        got = out["ranges"][spec]
        assert got["contentRange"] == f"bytes {first}-{last}/70000", spec
        assert got["contentLength"] == got["length"] == last - first + 1, spec
        assert got["sha256"] == hashlib.sha256(data[first:last + 1]).hexdigest(), spec
        assert got["acceptRanges"] == "bytes" and got["etag"] == md5_etag(data), spec
    gets = sent(out, "GetObject")
    assert [r["headers"]["range"] for r in gets] == [*expected, "bytes=70000-"]
    assert [r["status"] for r in gets] == [206, 206, 206, 206, 416]
    assert_api_error(out["unsatisfiable"], "InvalidRange", 416)


def test_go_sdk_presigned_get_and_put_urls_work_with_plain_net_http_and_tampering_is_refused(
        run_go: RunGo, s3: Any, bucket: str, server: ServerProcess) -> None:
    out = run_go("presign")
    assert out["requests"] == []  # presigning sends nothing

    for url in (out["putUrl"], out["getUrl"], out["metaUrl"]):
        assert url.startswith(f"{server.endpoint}/{bucket}/presigned")
        assert "X-Amz-Expires=300&" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
        assert f"X-Amz-Credential={ACCESS_KEY}%2F" in url and f"%2F{REGION}%2Fs3%2F" in url
    assert "x-id=PutObject" in out["putUrl"] and "x-id=GetObject" in out["getUrl"]
    assert (out["putMethod"], out["getMethod"]) == ("PUT", "GET")
    assert out["putSignedHeaders"] == ["host"]

    assert out["put"]["status"] == 200, out["put"]["text"]
    stored = s3.get_object(Bucket=bucket, Key="presigned.bin")
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == out["bodySha256"]
    assert stored["ETag"] == out["put"]["etag"]
    assert out["get"]["status"] == 200 and out["get"]["etag"] == out["put"]["etag"]
    assert (out["get"]["sha256"], out["get"]["length"]) == (out["bodySha256"],
                                                            out["bodyLength"])

    # Metadata stays a signed header of the presigned PUT, sent by the plain client.
    assert "X-Amz-SignedHeaders=host%3Bx-amz-meta-color&" in out["metaUrl"]
    assert out["metaSignedHeaders"] == ["host", "x-amz-meta-color"]
    assert out["metaPut"]["status"] == 200, out["metaPut"]["text"]
    meta = s3.head_object(Bucket=bucket, Key="presigned-meta.txt")
    assert meta["Metadata"] == {"color": "blue"}
    assert meta["ContentType"] == "text/x-presigned"
    assert meta["ETag"] == md5_etag(b"presigned with metadata\n") == out["metaPut"]["etag"]

    # A signed header left out, a flipped signature on a GET and on a PUT: all refused.
    for refused in (out["unsentHeader"], out["badGet"], out["badPut"]):
        assert refused["status"] == 403
        assert f"<Code>{SIGNATURE_MISMATCH}</Code>" in refused["text"]
    for key in ("unsent-header.txt", "tampered.txt"):
        with pytest.raises(ClientError) as err:
            s3.head_object(Bucket=bucket, Key=key)
        assert err.value.response["Error"]["Code"] == "404"


def test_go_sdk_errors_are_api_errors_signature_mismatch_bad_key_no_such_key_no_such_bucket(
        run_go: RunGo, s3: Any, bucket: str) -> None:
    out = run_go("errors")

    # A wrong secret: SignatureDoesNotMatch, on a signed payload (PUT) and on a GET.
    assert_api_error(out["badSecretPut"], SIGNATURE_MISMATCH, 403)
    assert_api_error(out["badSecretList"], SIGNATURE_MISMATCH, 403)
    assert_api_error(out["badAccessKey"], "InvalidAccessKeyId", 403)
    # Modeled errors come back as their Go types; HeadObject's bodiless 404 as "NotFound".
    assert_api_error(out["missingKey"], "NoSuchKey", 404)
    assert out["missingKey"]["type"] == "*types.NoSuchKey" and out["missingKey"]["isNoSuchKey"]
    assert_api_error(out["missingHead"], "NotFound", 404)
    assert_api_error(out["missingBucketGet"], "NoSuchBucket", 404)
    assert_api_error(out["missingBucketList"], "NoSuchBucket", 404)
    assert out["missingBucketList"]["type"] == "*types.NoSuchBucket"
    assert out["missingBucketList"]["isNoSuchBucket"]

    # Every one was sent once: none of these is retryable.
    statuses = [(r["op"], r["status"]) for r in out["requests"]]
    assert statuses == [("PutObject", 403), ("ListObjectsV2", 403), ("ListObjectsV2", 403),
                        ("GetObject", 404), ("HeadObject", 404), ("GetObject", 404),
                        ("ListObjectsV2", 404)]
    assert out["requests"][0]["headers"]["x-amz-content-sha256"] == hashlib.sha256(
        b"refused").hexdigest()

    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
