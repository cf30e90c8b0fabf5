"""The AWS SDK for JavaScript v3 (@aws-sdk/client-s3, lib-storage, s3-request-presigner),
unchanged, against the real server.

``tests/js/s3client.mjs`` runs one scenario with a stock ``S3Client`` (every default but
endpoint, path-style addressing, region and credentials: so CRC32 request checksums on
PutObject, UploadPart and DeleteObjects, ``x-amz-checksum-mode: ENABLED`` on every GetObject
with the response checksum validated) and prints what the SDK saw, including every request it
sent, as one JSON object. Each test asserts on that and cross-checks with boto3 what the
server stored. Needs ``node`` and ``npm ci`` in tests/js; skipped without them.

Presigned URLs: the SDK signs the CRC32 of an empty body into every presigned PUT (ignored,
as by S3) and hoists every other ``x-amz-*`` header into the query (``x-amz-meta-*``,
``x-amz-tagging``, ``x-amz-acl``), which the server applies as S3 does.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess, missing_client
from tests.test_clients import (
    file_sha256,
    multipart_parts,
    object_sha256,
    scenario_runner,
    write_random_file,
)

MIB = 1024 * 1024
JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "s3client.mjs"
PACKAGES = ("@aws-sdk/client-s3", "@aws-sdk/lib-storage", "@aws-sdk/s3-request-presigner")
EMPTY_MD5_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def composite_crc32(path: Path, part_size: int) -> tuple[list[str], str]:
    """The per-part CRC32s of ``path`` cut in ``part_size`` parts, and S3's composite
    checksum of them (the CRC32 of the concatenated part checksums, ``-N``)."""
    parts: list[bytes] = []
    with open(path, "rb") as fh:
        while chunk := fh.read(part_size):
            parts.append(zlib.crc32(chunk).to_bytes(4, "big"))
    composite = crc32_b64(b"".join(parts))
    return [base64.b64encode(p).decode() for p in parts], f"{composite}-{len(parts)}"


def missing_requirement() -> str | None:
    """Why the SDK cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed: the AWS SDK for JavaScript tests need Node.js"
    version = subprocess.run(["node", "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < 20:
        return f"node {version or '?'} is too old: the AWS SDK for JavaScript needs Node.js 20"
    missing = [p for p in PACKAGES if not (JS_DIR / "node_modules" / p / "package.json").exists()]
    if missing:
        return f"{', '.join(missing)} not installed: run `npm ci` in {JS_DIR}"
    return None


# Skip at collection, before any server starts for these tests.
if (_reason := missing_requirement()) is not None:
    missing_client(_reason, module=True)


@pytest.fixture
def run_js(server: ServerProcess, bucket: str, tmp_path: Path) -> Iterator[Any]:
    """Run one scenario of s3client.mjs against ``server`` and ``bucket``; return its JSON."""
    # NODE_NO_WARNINGS: not the SDK's notice about Node 20's end of support on stderr.
    yield scenario_runner(["node", str(SCRIPT)], server, bucket, tmp_path, cwd=JS_DIR,
                          extra_env={"NODE_NO_WARNINGS": "1"})
    for path in tmp_path.glob("*.bin"):
        path.unlink(missing_ok=True)


def sent(out: dict[str, Any], command: str) -> list[dict[str, Any]]:
    """The requests the SDK sent for ``command`` (e.g. "PutObject"), in order."""
    return [r for r in out["requests"] if r["command"] == f"{command}Command"]


def test_js_sdk_put_get_head_list_delete_round_trip_with_default_checksums(
        run_js: Any, s3: Any, bucket: str) -> None:
    out = run_js("roundtrip")

    # Every PutObject carries the SDK's default CRC32 and the x-id query parameter.
    puts = sent(out, "PutObject")
    assert len(puts) == 3 + len(out["listKeys"])
    for req in puts:
        assert req["status"] == 200
        assert req["query"] == {"x-id": "PutObject"}
        assert req["headers"]["x-amz-sdk-checksum-algorithm"] == "CRC32"
        assert "x-amz-checksum-crc32" in req["headers"]
    text = out["text"].encode()
    assert puts[0]["headers"]["x-amz-checksum-crc32"] == crc32_b64(text)
    assert out["putText"]["checksumCRC32"] == crc32_b64(text)
    assert out["putBinary"]["checksumCRC32"] == out["binaryCrc32"]
    assert out["putEmpty"] == {"etag": EMPTY_MD5_ETAG, "checksumCRC32": crc32_b64(b"")}

    # GetObject: exact bytes, metadata, content type, and the stored CRC32 (which the SDK
    # validated against the body: it asks for it on every GET by default).
    for req in sent(out, "GetObject"):
        assert req["headers"]["x-amz-checksum-mode"] == "ENABLED"
    got = out["getText"]
    assert got["text"] == out["text"] and got["sha256"] == out["textSha256"]
    assert got["contentType"] == "text/plain; charset=utf-8"
    assert got["metadata"] == {"origin": "js-sdk", "purpose": "round-trip"}
    assert got["etag"] == out["putText"]["etag"] and got["checksumCRC32"] == crc32_b64(text)
    got = out["getBinary"]
    assert (got["sha256"], got["length"]) == (out["binarySha256"], out["binaryLength"])
    assert got["contentType"] == "application/x-cargohold-test"
    assert got["metadata"] == {"mixed-case-key": "Value With Spaces"}
    assert out["getEmpty"]["length"] == 0 and out["getEmpty"]["etag"] == EMPTY_MD5_ETAG
    assert out["checksummed"]["checksumCRC32"] == out["binaryCrc32"]
    assert out["checksummed"]["checksumType"] == "FULL_OBJECT"
    # A ranged GET comes back without the whole object's checksum, so the SDK accepts it.
    ranged = out["ranged"]
    assert ranged["status"] == 206 and ranged["contentRange"] == "bytes 1000-1999/70000"
    assert ranged["sha256"] == ranged["expectedSha256"]
    assert ranged.get("checksumCRC32") is None

    head = out["head"]
    assert head["etag"] == out["putBinary"]["etag"]
    assert head["contentLength"] == out["binaryLength"]
    assert head["contentType"] == "application/x-cargohold-test"
    assert head["metadata"] == {"mixed-case-key": "Value With Spaces"}

    # ListObjectsV2, 3 keys a page, in UTF-8 byte order, the token passed back unchanged.
    expected = sorted(out["listKeys"], key=lambda k: k.encode())
    pages = out["pages"]
    assert [p["keys"] for p in pages] == [expected[0:3], expected[3:6], expected[6:]]
    assert [p["keyCount"] for p in pages] == [3, 3, 2]
    assert [p["isTruncated"] for p in pages] == [True, True, False]
    assert [p["hasNextToken"] for p in pages] == [True, True, False]
    lists = sent(out, "ListObjectsV2")
    assert "continuation-token" not in lists[0]["query"]
    assert all("continuation-token" in r["query"] for r in lists[1:3])
    sizes = {k: s for p in pages for k, s in zip(p["keys"], p["sizes"], strict=True)}
    assert sizes == {k: len(f"body of {k}".encode()) for k in out["listKeys"]}

    # DeleteObjects (with the SDK's own CRC32 of its XML body) and DeleteObject.
    (delete,) = sent(out, "DeleteObjects")
    assert delete["query"] == {"delete": ""}
    assert delete["headers"]["x-amz-sdk-checksum-algorithm"] == "CRC32"
    assert "x-amz-checksum-crc32" in delete["headers"]
    assert sorted(out["deleted"]) == sorted(out["deleteKeys"]) and out["deleteErrors"] == []
    assert out["deleteOneStatus"] == 204
    remaining = ["docs/data.bin", "docs/empty", "list/plain", "list/tilde~star*", "list/zz"]
    assert out["remaining"] == remaining

    # What the server stored, as boto3 sees it.
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == remaining
    stored = s3.get_object(Bucket=bucket, Key="docs/data.bin", ChecksumMode="ENABLED")
    body = stored["Body"].read()
    assert crc32_b64(body) == out["binaryCrc32"] == stored["ChecksumCRC32"]
    assert stored["Metadata"] == {"mixed-case-key": "Value With Spaces"}
    assert stored["ContentType"] == "application/x-cargohold-test"
    assert stored["ETag"] == out["putBinary"]["etag"]
    for key in ["docs/hello.txt", *out["deleteKeys"]]:
        with pytest.raises(ClientError) as err:
            s3.head_object(Bucket=bucket, Key=key)
        assert err.value.response["Error"]["Code"] == "404"


def test_js_sdk_lib_storage_upload_of_a_12_mib_stream_goes_multipart_with_crc32_parts(
        run_js: Any, s3: Any, bucket: str, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big_sha = write_random_file(big, 12 * MIB + 12345)
    small = tmp_path / "small.bin"
    small_sha = write_random_file(small, MIB + 4321)
    out = run_js("upload", file=str(big), small_file=str(small))

    # CreateMultipartUpload names CRC32, each UploadPart carries its part's CRC32.
    (create,) = sent(out, "CreateMultipartUpload")
    assert create["query"] == {"uploads": ""}
    assert create["headers"]["x-amz-checksum-algorithm"] == "CRC32"
    part_crcs, composite = composite_crc32(big, 5 * MIB)
    parts = sorted(sent(out, "UploadPart"), key=lambda r: int(r["query"]["partNumber"]))
    assert [r["query"]["partNumber"] for r in parts] == ["1", "2", "3"]
    assert [r["headers"]["x-amz-checksum-crc32"] for r in parts] == part_crcs
    assert [int(r["headers"]["content-length"]) for r in parts] == [5 * MIB, 5 * MIB,
                                                                     2 * MIB + 12345]
    assert all(r["status"] == 200 for r in parts)
    (complete,) = sent(out, "CompleteMultipartUpload")
    assert complete["status"] == 200
    assert out["etag"].endswith('-3"')
    assert (out["checksumCRC32"], out["checksumType"]) == (composite, "COMPOSITE")
    assert out["lastLoaded"] == out["size"] == 12 * MIB + 12345
    # Read back through the SDK, byte exact.
    assert out["download"]["sha256"] == big_sha
    assert out["download"]["checksumCRC32"] == composite

    key = out["key"]
    assert multipart_parts(s3, bucket, key) == 3
    assert object_sha256(s3, bucket, key) == big_sha == file_sha256(big)
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == 12 * MIB + 12345 and head["ETag"] == out["etag"]
    assert head["ChecksumCRC32"] == composite
    assert head["ContentType"] == "application/octet-stream"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # PutObject of a file stream: aws-chunked, unsigned payload, CRC32 in a trailer.
    (streamed,) = [r for r in sent(out, "PutObject") if r["path"].endswith("/streamed.bin")]
    headers = streamed["headers"]
    assert headers["content-encoding"] == "aws-chunked"
    assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert headers["x-amz-decoded-content-length"] == str(MIB + 4321)
    small_crc = crc32_b64(small.read_bytes())
    assert out["streamed"]["checksumCRC32"] == small_crc
    assert object_sha256(s3, bucket, out["streamed"]["key"]) == small_sha
    stored = s3.head_object(Bucket=bucket, Key=out["streamed"]["key"], ChecksumMode="ENABLED")
    assert stored["ContentLength"] == MIB + 4321 and stored["ChecksumCRC32"] == small_crc
    assert "Content-Encoding" not in stored["ResponseMetadata"]["HTTPHeaders"]


def test_js_sdk_presigned_urls_work_with_fetch_and_a_tampered_signature_is_refused(
        run_js: Any, s3: Any, bucket: str) -> None:
    out = run_js("presign")

    # With default settings the SDK signs the CRC32 of an empty body into the PUT URL; like
    # S3, the server takes the upload of a real body anyway and does not store that value.
    query = out["putQuery"]
    assert query["x-amz-checksum-crc32"] == "AAAAAA=="
    assert query["x-amz-sdk-checksum-algorithm"] == "CRC32"
    assert query["x-id"] == "PutObject" and query["X-Amz-SignedHeaders"] == "host"
    assert out["put"]["status"] == 200, out["put"]["text"]
    stored = s3.get_object(Bucket=bucket, Key="presigned.txt", ChecksumMode="ENABLED")
    body = stored["Body"].read()
    assert len(body) == out["bodyLength"] > 0
    assert stored["ETag"] == out["put"]["etag"]
    assert stored.get("ChecksumCRC32") in (None, crc32_b64(body))

    assert out["getQuery"]["x-id"] == "GetObject"
    assert out["get"]["status"] == 200
    assert out["get"]["sha256"] == out["bodySha256"]
    assert out["get"]["etag"] == out["put"]["etag"]

    # Metadata and Tagging of a presigned PUT travel as x-amz-* query parameters (the SDK
    # hoists every x-amz-* header into the URL); the object gets them, as on S3.
    meta_query = out["metaQuery"]
    assert meta_query["x-amz-meta-color"] == "blue"
    assert meta_query["x-amz-tagging"] == "team=storage&stage=test"
    assert out["metaPut"]["status"] == 200, out["metaPut"]["text"]
    assert out["metaHead"] == {"metadata": {"color": "blue", "two-words": "a b"}, "tagCount": 2}
    assert s3.head_object(Bucket=bucket, Key="presigned-meta.txt")["Metadata"] == {
        "color": "blue", "two-words": "a b"}
    tags = s3.get_object_tagging(Bucket=bucket, Key="presigned-meta.txt")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("stage", "test"), ("team", "storage")]

    # A presigned CopyObject carries its copy source in the query too: fetching it copies.
    assert out["copyQuery"]["x-amz-copy-source"] == f"{bucket}/presigned.txt"
    assert out["copyPut"]["status"] == 200, out["copyPut"]["text"]
    assert "<CopyObjectResult" in out["copyPut"]["text"]
    copied = s3.get_object(Bucket=bucket, Key="presigned-copy.txt")
    assert copied["Body"].read() == body
    assert copied["Metadata"] == {"copied": "by-url"}

    for refused in (out["badGet"], out["badPut"]):
        assert refused["status"] == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in refused["text"]
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="tampered.txt")
    assert err.value.response["Error"]["Code"] == "404"


def test_js_sdk_copy_object_with_replace_conditional_get_and_missing_key_errors(
        run_js: Any, s3: Any, bucket: str) -> None:
    out = run_js("copy")

    (copy,) = sent(out, "CopyObject")
    assert copy["headers"]["x-amz-copy-source"] == f"{bucket}/source.txt"
    assert copy["headers"]["x-amz-metadata-directive"] == "REPLACE"
    assert out["copy"]["status"] == 200 and out["copy"]["etag"] == out["put"]["etag"]
    copied = out["copied"]
    assert copied["text"] == "the source object\n"
    assert copied["contentType"] == "text/x-copied"
    assert copied["metadata"] == {"generation": "two", "copied": "yes"}
    assert copied["checksumCRC32"] == crc32_b64(b"the source object\n")

    # If-None-Match with the current ETag: a 304, which the SDK surfaces as an error.
    assert out["notModified"]["httpStatusCode"] == 304
    assert sent(out, "GetObject")[1]["headers"]["if-none-match"] == out["copy"]["etag"]
    assert out["failedPrecondition"]["name"] == "PreconditionFailed"
    assert out["failedPrecondition"]["httpStatusCode"] == 412
    assert out["matched"]["status"] == 200 and out["matched"]["text"] == "the source object\n"
    assert out["missing"]["name"] == "NoSuchKey"
    assert out["missing"]["httpStatusCode"] == 404
    assert out["missing"]["requestId"]
    assert (out["missingHead"]["name"], out["missingHead"]["httpStatusCode"]) == ("NotFound",
                                                                                 404)
    assert out["missingBucket"]["name"] == "NoSuchBucket"
    assert out["missingBucket"]["httpStatusCode"] == 404

    source = s3.head_object(Bucket=bucket, Key="source.txt")
    assert source["Metadata"] == {"generation": "one"}
    assert source["ContentType"] == "text/plain"
    target = s3.head_object(Bucket=bucket, Key="copy of source.txt")
    assert target["Metadata"] == {"generation": "two", "copied": "yes"}
    assert target["ContentType"] == "text/x-copied"
    assert target["ETag"] == out["copy"]["etag"]


def test_js_sdk_presigned_put_with_a_canned_acl_applies_it_and_bucket_policy_sees_it(
        run_js: Any, s3: Any, bucket: str) -> None:
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/guarded/*",
            "Condition": {"StringEquals": {"s3:x-amz-acl": "public-read"}},
        }],
    }))
    out = run_js("presign_acl")

    # The ACL arrives only as ?x-amz-acl=...: the policy's condition key sees it ...
    assert out["guarded/public"] == {"acl": "public-read", "status": 403,
                                     "code": "AccessDenied", "anonymousGet": 403}
    assert out["guarded/private"] == {"acl": "private", "status": 200, "code": None,
                                      "anonymousGet": 403}
    # ... and the object gets it.
    assert out["open/public"] == {"acl": "public-read", "status": 200, "code": None,
                                  "anonymousGet": 200}
    grants = s3.get_object_acl(Bucket=bucket, Key="open/public")["Grants"]
    assert any(g["Grantee"].get("URI") == "http://acs.amazonaws.com/groups/global/AllUsers"
               and g["Permission"] == "READ" for g in grants)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "guarded/private", "open/public"]
