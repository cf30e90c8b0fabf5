"""SSE-C (server-side encryption with customer-provided keys) through boto3 and raw HTTP.

The default server allows SSE-C over plain HTTP from loopback clients, which the tests are.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from cargohold.sse.chunks import CorruptBlob, ObjectCipher
from tests import rawhttp
from tests.conftest import ServerProcess, make_client
from tests.test_buckets import error_code, status

KIB = 1024
MIB = 1024 * KIB
CHUNK = 64 * KIB  # the server's SSE-C chunk size


def new_key() -> bytes:
    return os.urandom(32)


def sse(key: bytes) -> dict[str, Any]:
    """boto3's SSE-C parameters (it base64-encodes the key and computes the MD5)."""
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def copy_source_sse(key: bytes) -> dict[str, Any]:
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def key_md5(key: bytes) -> str:
    return base64.b64encode(hashlib.md5(key).digest()).decode()


def headers_for(key: bytes, prefix: str = "x-amz-server-side-encryption-customer-",
                md5: bool = True) -> dict[str, str]:
    """The raw SSE-C request headers for ``key``."""
    headers = {prefix + "algorithm": "AES256",
               prefix + "key": base64.b64encode(key).decode()}
    if md5:
        headers[prefix + "key-MD5"] = key_md5(key)
    return headers


def message(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"].get("Message", ""))


def marked(marker: bytes, size: int) -> bytes:
    """``size`` bytes that are ``marker`` over and over (easy to find if stored as is)."""
    return (marker * (size // len(marker) + 1))[:size]


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    return [path for path in root.rglob("*")
            if path.is_file() and needle in path.read_bytes()]


def test_an_sse_c_object_reads_back_with_its_key_and_the_key_md5_is_echoed(
        s3: Any, bucket: str) -> None:
    key = new_key()
    for name, body in (("small", b"a small secret"), ("large", os.urandom(300 * KIB))):
        put = s3.put_object(Bucket=bucket, Key=name, Body=body, **sse(key))
        assert put["SSECustomerAlgorithm"] == "AES256"
        assert put["SSECustomerKeyMD5"] == key_md5(key)
        # S3: the ETag of an SSE-C object is not the MD5 of its data.
        assert put["ETag"].strip('"') != hashlib.md5(body).hexdigest()
        got = s3.get_object(Bucket=bucket, Key=name, **sse(key))
        assert got["Body"].read() == body
        assert got["ETag"] == put["ETag"]
        assert got["ContentLength"] == len(body)
        assert got["SSECustomerAlgorithm"] == "AES256"
        assert got["SSECustomerKeyMD5"] == key_md5(key)
        head = s3.head_object(Bucket=bucket, Key=name, **sse(key))
        assert head["ContentLength"] == len(body)
        assert head["SSECustomerKeyMD5"] == key_md5(key)


def test_an_empty_sse_c_object_reads_back_empty(s3: Any, bucket: str) -> None:
    key = new_key()
    s3.put_object(Bucket=bucket, Key="empty", Body=b"", **sse(key))
    assert s3.get_object(Bucket=bucket, Key="empty", **sse(key))["Body"].read() == b""
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="empty", **sse(new_key()))
    assert status(exc) == 403


def test_reading_an_sse_c_object_without_its_key_is_invalid_request(
        s3: Any, bucket: str) -> None:
    key = new_key()
    s3.put_object(Bucket=bucket, Key="secret", Body=os.urandom(100 * KIB), **sse(key))
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="secret")
    assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
    assert message(exc) == ("The object was stored using a form of Server Side Encryption. "
                            "The correct parameters must be provided to retrieve the object.")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="secret")
    assert status(exc) == 400


def test_a_wrong_key_is_access_denied_on_get_and_head(s3: Any, bucket: str) -> None:
    key = new_key()
    s3.put_object(Bucket=bucket, Key="secret", Body=b"for the right key only", **sse(key))
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="secret", **sse(new_key()))
    assert (status(exc), error_code(exc)) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="secret", **sse(new_key()))
    assert status(exc) == 403
    # Not even a conditional GET tells anything without the key.
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="secret", IfNoneMatch="*", **sse(new_key()))
    assert status(exc) == 403


def test_a_key_for_a_plaintext_object_is_invalid_request(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain", Body=b"not encrypted")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="plain", **sse(new_key()))
    assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
    assert message(exc) == "The encryption parameters are not applicable to this object."


def test_malformed_keys_are_refused_with_s3s_errors_and_store_nothing(
        s3: Any, bucket: str) -> None:
    short = os.urandom(16)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", **sse(short))
    assert (status(exc), error_code(exc)) == (400, "InvalidArgument")
    assert message(exc) == "The secret key was invalid for the specified algorithm."
    key = new_key()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=base64.b64encode(key).decode(),
                      SSECustomerKeyMD5=key_md5(new_key()))
    assert (status(exc), error_code(exc)) == (400, "InvalidArgument")
    assert message(exc) == ("The calculated MD5 hash of the key did not match the hash that "
                            "was provided.")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", SSECustomerAlgorithm="AES128",
                      SSECustomerKey=key)
    assert (status(exc), error_code(exc)) == (400, "InvalidEncryptionAlgorithmError")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_code(exc) == "NoSuchKey"


@pytest.mark.parametrize(("headers", "expected"), [
    ({"algorithm": None}, "must provide a valid encryption algorithm."),
    ({"key": None}, "must provide an appropriate secret key."),
    ({"key-MD5": None}, "must provide the client calculated MD5 of the secret key."),
])
def test_a_write_missing_one_of_the_three_headers_is_invalid_argument(
        server: ServerProcess, s3: Any, bucket: str, headers: dict[str, None],
        expected: str) -> None:
    prefix = "x-amz-server-side-encryption-customer-"
    sent = headers_for(new_key())
    for name in headers:
        del sent[prefix + name]
    url = f"{server.endpoint}/{bucket}/partial"
    response = rawhttp.send("PUT", url, rawhttp.sign_v4("PUT", url, sent, b"body"), b"body")
    assert response.status == 400
    assert b"<Code>InvalidArgument</Code>" in response.body
    assert expected.encode() in response.body


def test_a_read_may_leave_out_the_key_md5(server: ServerProcess, s3: Any, bucket: str) -> None:
    key = new_key()
    s3.put_object(Bucket=bucket, Key="k", Body=b"readable without the MD5", **sse(key))
    url = f"{server.endpoint}/{bucket}/k"
    sent = headers_for(key, md5=False)
    response = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url, sent))
    assert response.status == 200
    assert response.body == b"readable without the MD5"
    assert response.headers["x-amz-server-side-encryption-customer-key-md5"] == key_md5(key)


def test_sse_c_with_another_server_side_encryption_is_invalid_argument(
        server: ServerProcess, bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}/both"
    sent = {**headers_for(new_key()), "x-amz-server-side-encryption": "AES256"}
    response = rawhttp.send("PUT", url, rawhttp.sign_v4("PUT", url, sent, b"x"), b"x")
    assert response.status == 400
    assert b"incompatible with the encryption method specified" in response.body


def test_content_md5_and_checksums_are_verified_against_the_plaintext(
        s3: Any, bucket: str) -> None:
    key = new_key()
    body = os.urandom(200 * KIB)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ContentMD5=md5,
                        ChecksumCRC32=crc, **sse(key))
    assert put["ChecksumCRC32"] == crc
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED", **sse(key))
    assert got["ChecksumCRC32"] == crc
    assert got["Body"].read() == body
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=body, ContentMD5=wrong, **sse(key))
    assert error_code(exc) == "BadDigest"


def test_ranges_across_chunk_boundaries_read_back_exact(s3: Any, bucket: str) -> None:
    key = new_key()
    size = 2 * MIB + 5 * CHUNK + 12345  # crosses the server's 1 MiB read batches too
    body = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="ranged", Body=body, **sse(key))
    ranges = {
        "bytes=0-0": (0, 0),
        "bytes=65535-65536": (CHUNK - 1, CHUNK),
        "bytes=65536-131071": (CHUNK, 2 * CHUNK - 1),
        "bytes=1048570-1048600": (MIB - 6, MIB + 24),
        "bytes=100-2000000": (100, 2000000),
        "bytes=70000-": (70000, size - 1),
        f"bytes={size - 1}-": (size - 1, size - 1),
        "bytes=-1": (size - 1, size - 1),
        "bytes=-70000": (size - 70000, size - 1),
        f"bytes=-{size + 10}": (0, size - 1),
        f"bytes=5-{size + 100}": (5, size - 1),
    }
    for spec, (first, last) in ranges.items():
        got = s3.get_object(Bucket=bucket, Key="ranged", Range=spec, **sse(key))
        assert got["ContentRange"] == f"bytes {first}-{last}/{size}", spec
        assert got["Body"].read() == body[first:last + 1], spec
    assert s3.get_object(Bucket=bucket, Key="ranged", **sse(key))["Body"].read() == body


def test_the_bytes_on_disk_never_hold_the_plaintext(server: ServerProcess, s3: Any,
                                                    bucket: str) -> None:
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}-".encode()
    key = new_key()
    # Small (kept inline when plaintext), large, multipart, and copied in from plaintext.
    s3.put_object(Bucket=bucket, Key="small", Body=marked(marker, 1000), **sse(key))
    s3.put_object(Bucket=bucket, Key="large", Body=marked(marker, 300 * KIB), **sse(key))
    upload = s3.create_multipart_upload(Bucket=bucket, Key="multi", **sse(key))["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload, PartNumber=1,
                          Body=marked(marker, 100 * KIB), **sse(key))
    s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1,
                                                             "ETag": part["ETag"]}]})
    plain_marker = f"PLAIN-SOURCE-{uuid.uuid4().hex}-".encode()
    s3.put_object(Bucket=bucket, Key="plain", Body=marked(plain_marker, 200 * KIB))
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "plain"},
                   **sse(key))
    s3.delete_object(Bucket=bucket, Key="plain")
    for name, size in (("small", 1000), ("large", 300 * KIB), ("multi", 100 * KIB)):
        got = s3.get_object(Bucket=bucket, Key=name, **sse(key))["Body"].read()
        assert got == marked(marker, size)
    assert s3.get_object(Bucket=bucket, Key="copied", **sse(key))["Body"].read() == (
        marked(plain_marker, 200 * KIB))
    assert files_containing(server.data_dir, marker) == []
    # Only the deleted plaintext source's blob (waiting for the collector) holds its bytes.
    assert len(files_containing(server.data_dir, plain_marker)) <= 1
    # The search itself works: a plaintext object is found.
    s3.put_object(Bucket=bucket, Key="control", Body=marked(marker[::-1], 300 * KIB))
    assert files_containing(server.data_dir / "blobs", marker[::-1])


def test_a_multipart_sse_c_upload_and_download_with_the_transfer_manager(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    key = new_key()
    body = os.urandom(12 * MIB + 777)
    source = tmp_path / "upload.bin"
    source.write_bytes(body)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(str(source), bucket, "big", Config=config, ExtraArgs=sse(key))
    head = s3.head_object(Bucket=bucket, Key="big", **sse(key))
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(body)
    target = tmp_path / "download.bin"
    s3.download_file(bucket, "big", str(target), Config=config, ExtraArgs=sse(key))
    assert target.read_bytes() == body
    # partNumber and a range across the first part boundary.
    part = s3.get_object(Bucket=bucket, Key="big", PartNumber=2, **sse(key))
    assert part["Body"].read() == body[5 * MIB:10 * MIB]
    assert part["PartsCount"] == 3
    last = s3.get_object(Bucket=bucket, Key="big", PartNumber=3, **sse(key))
    assert last["Body"].read() == body[10 * MIB:]
    spec = f"bytes={5 * MIB - 100}-{5 * MIB + 100}"
    across = s3.get_object(Bucket=bucket, Key="big", Range=spec, **sse(key))
    assert across["Body"].read() == body[5 * MIB - 100:5 * MIB + 101]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="big", PartNumber=1)
    assert status(exc) == 400


def test_every_part_must_carry_the_uploads_key(s3: Any, bucket: str) -> None:
    key = new_key()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse(key))
    assert upload["SSECustomerKeyMD5"] == key_md5(key)
    upload_id = upload["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
    assert message(exc).startswith("The multipart upload initiate requested encryption.")
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x",
                       **sse(new_key()))
    assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
    assert message(exc) == ("The provided encryption parameters did not match the ones used "
                            "originally.")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                          Body=b"the one part", **sse(key))
    assert part["SSECustomerKeyMD5"] == key_md5(key)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1,
                                                             "ETag": part["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="mp", **sse(key))["Body"].read() == b"the one part"
    plain = s3.create_multipart_upload(Bucket=bucket, Key="plain-mp")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="plain-mp", UploadId=plain, PartNumber=1, Body=b"x",
                       **sse(key))
    assert (status(exc), error_code(exc)) == (400, "InvalidRequest")


def test_copies_between_plaintext_and_sse_c_objects_are_byte_exact(
        s3: Any, bucket: str) -> None:
    first, second = new_key(), new_key()
    body = os.urandom(700 * KIB)
    s3.put_object(Bucket=bucket, Key="plain", Body=body)
    source = {"Bucket": bucket, "Key": "plain"}
    copied = s3.copy_object(Bucket=bucket, Key="encrypted", CopySource=source, **sse(first))
    assert copied["SSECustomerKeyMD5"] == key_md5(first)
    assert s3.get_object(Bucket=bucket, Key="encrypted", **sse(first))["Body"].read() == body
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="encrypted")
    assert status(exc) == 400
    # SSE-C to SSE-C under another key.
    source = {"Bucket": bucket, "Key": "encrypted"}
    s3.copy_object(Bucket=bucket, Key="rekeyed", CopySource=source,
                   **copy_source_sse(first), **sse(second))
    assert s3.get_object(Bucket=bucket, Key="rekeyed", **sse(second))["Body"].read() == body
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="rekeyed", **sse(first))
    assert status(exc) == 403
    # SSE-C to plaintext: the copy's ETag is then the MD5 of the data.
    result = s3.copy_object(Bucket=bucket, Key="decrypted", CopySource=source,
                            **copy_source_sse(first))
    assert result["CopyObjectResult"]["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    assert s3.get_object(Bucket=bucket, Key="decrypted")["Body"].read() == body
    # The source's key is required, and must be right.
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="nope", CopySource=source)
    assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="nope", CopySource=source, **copy_source_sse(second))
    assert status(exc) == 403
    # An object copied onto itself under a new key (key rotation).
    s3.copy_object(Bucket=bucket, Key="encrypted", CopySource=source,
                   **copy_source_sse(first), **sse(second))
    assert s3.get_object(Bucket=bucket, Key="encrypted", **sse(second))["Body"].read() == body


def test_a_multipart_sse_c_object_copies_part_by_part(s3: Any, bucket: str) -> None:
    key, other = new_key(), new_key()
    parts_data = [os.urandom(5 * MIB), os.urandom(123 * KIB)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse(key))["UploadId"]
    parts = []
    for number, data in enumerate(parts_data, 1):
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=number,
                              Body=data, **sse(key))
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                 MultipartUpload={"Parts": parts})
    source = {"Bucket": bucket, "Key": "mp"}
    s3.copy_object(Bucket=bucket, Key="mp-copy", CopySource=source, **copy_source_sse(key),
                   **sse(other))
    got = s3.get_object(Bucket=bucket, Key="mp-copy", PartNumber=2, **sse(other))
    assert got["Body"].read() == parts_data[1]
    assert got["PartsCount"] == 2
    whole = s3.get_object(Bucket=bucket, Key="mp-copy", **sse(other))["Body"].read()
    assert whole == b"".join(parts_data)
    s3.copy_object(Bucket=bucket, Key="mp-plain", CopySource=source, **copy_source_sse(key))
    assert s3.get_object(Bucket=bucket, Key="mp-plain")["Body"].read() == b"".join(parts_data)


def test_upload_part_copy_reads_an_sse_c_source_with_its_key(s3: Any, bucket: str) -> None:
    source_key, upload_key = new_key(), new_key()
    body = os.urandom(6 * MIB + 999)
    s3.put_object(Bucket=bucket, Key="src", Body=body, **sse(source_key))
    source = {"Bucket": bucket, "Key": "src"}
    for target, upload_sse in (("to-sse-c", sse(upload_key)), ("to-plain", {})):
        upload = s3.create_multipart_upload(Bucket=bucket, Key=target,
                                            **upload_sse)["UploadId"]
        first = s3.upload_part_copy(Bucket=bucket, Key=target, UploadId=upload, PartNumber=1,
                                    CopySource=source, CopySourceRange=f"bytes=0-{5 * MIB - 1}",
                                    **copy_source_sse(source_key), **upload_sse)
        second = s3.upload_part_copy(Bucket=bucket, Key=target, UploadId=upload, PartNumber=2,
                                     CopySource=source,
                                     CopySourceRange=f"bytes={5 * MIB}-{len(body) - 1}",
                                     **copy_source_sse(source_key), **upload_sse)
        s3.complete_multipart_upload(
            Bucket=bucket, Key=target, UploadId=upload,
            MultipartUpload={"Parts": [
                {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]}]})
        got = s3.get_object(Bucket=bucket, Key=target, **upload_sse)["Body"].read()
        assert got == body, target
    # Without the source's key the part is refused.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="refused")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="refused", UploadId=upload, PartNumber=1,
                            CopySource=source)
    assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
    # A whole plaintext source copied into an SSE-C upload is sealed, not linked.
    s3.put_object(Bucket=bucket, Key="plain-src", Body=body[:5 * MIB])
    sealed = s3.create_multipart_upload(Bucket=bucket, Key="sealed", **sse(upload_key))
    part = s3.upload_part_copy(Bucket=bucket, Key="sealed", UploadId=sealed["UploadId"],
                               PartNumber=1, CopySource={"Bucket": bucket, "Key": "plain-src"},
                               **sse(upload_key))
    assert part["CopyPartResult"]["ETag"].strip('"') != hashlib.md5(body[:5 * MIB]).hexdigest()
    s3.complete_multipart_upload(
        Bucket=bucket, Key="sealed", UploadId=sealed["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1,
                                    "ETag": part["CopyPartResult"]["ETag"]}]})
    got = s3.get_object(Bucket=bucket, Key="sealed", **sse(upload_key))["Body"].read()
    assert got == body[:5 * MIB]


def test_sse_c_over_plain_http_is_refused_when_the_server_says_never(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data",
                         extra_args=["--sse-c-over-http", "never"]).start()
    try:
        s3 = make_client(proc.endpoint)
        s3.create_bucket(Bucket="secure-only")
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket="secure-only", Key="k", Body=b"x", **sse(new_key()))
        assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
        assert message(exc) == ("Requests specifying Server Side Encryption with Customer "
                                "provided keys must be made over a secure connection.")
        s3.put_object(Bucket="secure-only", Key="plain", Body=b"plaintext is fine")
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket="secure-only", Key="plain", **sse(new_key()))
        assert (status(exc), error_code(exc)) == (400, "InvalidRequest")
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket="secure-only", Key="copy",
                           CopySource={"Bucket": "secure-only", "Key": "plain"},
                           **copy_source_sse(new_key()))
        assert "secure connection" in message(exc)
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket="secure-only", Key="k")
        assert error_code(exc) == "NoSuchKey"
    finally:
        proc.stop()


def test_a_sealed_chunk_opens_only_in_its_own_place() -> None:
    cipher = ObjectCipher(new_key(), os.urandom(16), chunk_size=16)
    body = os.urandom(40)  # chunks of 16, 16 and 8 bytes
    blob = cipher.new_blob(3, len(body))
    sealed = [blob.seal(i, body[i * 16:(i + 1) * 16]) for i in range(3)]
    reopened = cipher.existing_blob(blob.header, 3, len(body))
    assert b"".join(reopened.open(i, s) for i, s in enumerate(sealed)) == body
    tampered = bytes([sealed[1][0] ^ 1]) + sealed[1][1:]
    with pytest.raises(CorruptBlob):
        reopened.open(1, tampered)  # a flipped bit
    with pytest.raises(CorruptBlob):
        reopened.open(0, sealed[1])  # chunks swapped
    with pytest.raises(CorruptBlob):
        cipher.existing_blob(blob.header, 4, len(body)).open(0, sealed[0])  # another part
    with pytest.raises(CorruptBlob):
        cipher.existing_blob(blob.header, 3, 32).open(0, sealed[0])  # the blob cut short
    other_object = ObjectCipher(cipher.customer_key, os.urandom(16), chunk_size=16)
    with pytest.raises(CorruptBlob):
        other_object.existing_blob(blob.header, 3, len(body)).open(0, sealed[0])
    with pytest.raises(CorruptBlob):
        ObjectCipher(new_key(), cipher.object_salt, 16).existing_blob(
            blob.header, 3, len(body)).open(0, sealed[0])  # another key


def test_a_tampered_blob_is_an_error_not_wrong_bytes(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        s3 = make_client(proc.endpoint)
        s3.create_bucket(Bucket="tampered")
        key = new_key()
        body = os.urandom(3 * CHUNK + 100)
        s3.put_object(Bucket="tampered", Key="k", Body=body, **sse(key))
        [blob] = [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
        raw = bytearray(blob.read_bytes())
        raw[20 + 2 * (CHUNK + 16) + 5] ^= 0xFF  # a byte of the third chunk
        blob.write_bytes(bytes(raw))
        # Chunks are independent: the untouched ones still read back.
        got = s3.get_object(Bucket="tampered", Key="k", Range=f"bytes=0-{2 * CHUNK - 1}",
                            **sse(key))
        assert got["Body"].read() == body[:2 * CHUNK]
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket="tampered", Key="k", **sse(key))
        assert status(exc) == 500
    finally:
        proc.stop()
