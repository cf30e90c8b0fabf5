"""Multipart uploads through boto3 (and raw HTTP for requests boto3 will not send).

Rules and errors as S3 states them, both listings' pagination, races between parts,
completions and aborts, and the blob files left on disk once the GC has run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_plus, unquote_plus

import pytest
from botocore.exceptions import ClientError

from cargohold.config import Settings
from cargohold.server import ROOT_ACCOUNT, open_store
from cargohold.store.base import Account, Bucket, MetadataStore, Upload, UploadedPart
from cargohold.store.expiry import UploadExpirer
from cargohold.store.sqlite import SqliteStore
from tests import rawhttp
from tests.conftest import ServerProcess, make_client
from tests.test_buckets import error_code, status
from tests.test_durability import blob_files

MIB = 1024 * 1024
MAX_PART = 10_000
T = TypeVar("T")


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


def test_a_completion_stating_the_right_whole_object_checksum_completes(
        s3: Any, bucket: str) -> None:
    bodies = [os.urandom(5 * MIB), os.urandom(777)]
    upload_id, parts = upload_parts(s3, bucket, "sw", bodies, ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")
    whole = base64.b64encode(zlib.crc32(b"".join(bodies)).to_bytes(4, "big")).decode()
    done = s3.complete_multipart_upload(Bucket=bucket, Key="sw", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts},
                                        ChecksumCRC32=whole, ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC32"] == whole
    # A composite checksum is accepted with its "-N" suffix and without it.
    crcs = b"".join(zlib.crc32(b).to_bytes(4, "big") for b in bodies)
    composite = base64.b64encode(zlib.crc32(crcs).to_bytes(4, "big")).decode()
    for key, stated in (("sc1", f"{composite}-2"), ("sc2", composite)):
        upload_id, parts = upload_parts(s3, bucket, key, bodies, ChecksumAlgorithm="CRC32")
        done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                            MultipartUpload={"Parts": parts},
                                            ChecksumCRC32=stated)
        assert done["ChecksumCRC32"] == f"{composite}-2"


@pytest.mark.parametrize(("stated", "code"), [
    ({"ChecksumCRC32": "AAAAAA=="}, "BadDigest"),
    ({"ChecksumType": "COMPOSITE"}, "BadDigest"),
    ({"ChecksumSHA256": base64.b64encode(hashlib.sha256(b"x").digest()).decode()},
     "InvalidRequest"),
])
def test_a_completion_stating_a_wrong_whole_object_checksum_is_refused_and_keeps_the_upload(
        s3: Any, bucket: str, stated: dict[str, str], code: str) -> None:
    bodies = [os.urandom(5 * MIB), os.urandom(777)]
    upload_id, parts = upload_parts(s3, bucket, "bad-whole", bodies,
                                    ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    with pytest.raises(ClientError) as caught:
        s3.complete_multipart_upload(Bucket=bucket, Key="bad-whole", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts}, **stated)
    assert error_code(caught) == code
    assert status(caught) == 400
    # Nothing happened: no object, and the upload completes once asked correctly.
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="bad-whole")
    assert status(missing) == 404
    assert len(s3.list_parts(Bucket=bucket, Key="bad-whole", UploadId=upload_id)["Parts"]) == 2
    s3.complete_multipart_upload(Bucket=bucket, Key="bad-whole", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    assert s3.head_object(Bucket=bucket, Key="bad-whole")["ContentLength"] == 5 * MIB + 777


def test_a_completion_stating_a_checksum_the_upload_never_computed_is_invalid(
        s3: Any, bucket: str) -> None:
    bodies = [os.urandom(5 * MIB), b"tail"]
    upload_id, parts = upload_parts(s3, bucket, "no-sum", bodies)
    whole = base64.b64encode(zlib.crc32(b"".join(bodies)).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as caught:
        s3.complete_multipart_upload(Bucket=bucket, Key="no-sum", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts}, ChecksumCRC32=whole)
    assert error_code(caught) == "InvalidRequest"
    assert len(s3.list_parts(Bucket=bucket, Key="no-sum", UploadId=upload_id)["Parts"]) == 2


# ------------------------------------------------------------------ helpers (raw, store)


def raw(server: ServerProcess, method: str, path: str, body: bytes = b"") -> tuple[int, str]:
    """Send a signed request exactly as given; ``(status, error code or "")``."""
    url = f"{server.endpoint}{path}"
    resp = rawhttp.send(method, url, rawhttp.sign_v4(method, url, body=body), body)
    found = re.search(rb"<Code>([^<]*)</Code>", resp.body)
    return resp.status, found.group(1).decode() if found else ""


def on_store(proc: ServerProcess, fn: Callable[[MetadataStore], Awaitable[T]]) -> T:
    """Run ``fn`` on the server's own metadata store (SQLite or PostgreSQL), opened from
    this process (several processes may open it, as the admin CLI does)."""
    async def run() -> T:
        store = open_store(Settings(data_dir=str(proc.data_dir), meta=proc.meta))
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


async def _referenced(store: MetadataStore) -> set[str]:
    """Every blob a committed object or an in-progress upload's part uses."""
    account = await store.get_account_by_name(ROOT_ACCOUNT)
    assert account is not None
    used: set[str] = set()
    for bucket in await store.list_buckets(account.canonical_id):
        after = ""
        while True:
            page = await store.list_objects(bucket.name, start_after=after)
            for entry in page.entries:
                record = await store.get_object(bucket.name, entry.key)
                used.update(record.blob_ids() if record else [])
            if not page.is_truncated:
                break
            after = page.next_marker or ""
        key_marker, id_marker = "", ""
        while True:
            uploads = await store.list_uploads(bucket.name, key_marker=key_marker,
                                               upload_id_marker=id_marker)
            for upload in uploads.uploads:
                number = 0
                while True:
                    parts, more = await store.list_parts(upload.upload_id, number)
                    used.update(p.blob_id for p in parts if p.blob_id)
                    if not more:
                        break
                    number = parts[-1].number
            if not uploads.is_truncated:
                break
            key_marker = uploads.next_key_marker or ""
            id_marker = uploads.next_upload_id_marker or ""
    return used


def assert_blob_files_become_exactly_the_referenced_ones(proc: ServerProcess) -> None:
    """Once the GC has run, the blob files on disk are exactly those the metadata uses: no
    freed blob left behind, none that an object or upload needs missing."""
    data_dir = proc.data_dir
    referenced = on_store(proc, _referenced)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and blob_files(data_dir) != referenced:
        time.sleep(0.2)
    assert blob_files(data_dir) == referenced


@pytest.fixture(scope="module")
def gc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two workers (racing requests really run in separate processes) and a quick GC."""
    proc = ServerProcess(data_dir=tmp_path_factory.mktemp("multipart-gc") / "data",
                         extra_args=["--workers", "2", "--gc-interval-seconds", "0.3"]).start()
    yield proc
    proc.stop()


@pytest.fixture
def gc_bucket(gc_server: ServerProcess) -> str:
    name = f"gc-{uuid.uuid4().hex[:16]}"
    make_client(gc_server.endpoint).create_bucket(Bucket=name)
    return name


def parts_of(s3: Any, bucket: str, key: str, upload_id: str) -> list[dict[str, Any]]:
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    return [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]


# ------------------------------------------------------------------------ S3's rules


@pytest.mark.parametrize("number", ["abc", "-1", "1.5", "", "%C2%B2", "%D9%A3", "0", "10001"])
def test_a_part_number_that_is_not_1_to_10000_is_invalid_argument(
        server: ServerProcess, s3: Any, bucket: str, number: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="pn")["UploadId"]
    assert raw(server, "PUT", f"/{bucket}/pn?partNumber={number}&uploadId={upload_id}",
               b"x") == (400, "InvalidArgument")
    assert s3.list_parts(Bucket=bucket, Key="pn", UploadId=upload_id).get("Parts", []) == []


def test_part_numbers_1_and_10000_are_accepted(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="edges")["UploadId"]
    for number in (1, MAX_PART):
        s3.upload_part(Bucket=bucket, Key="edges", UploadId=upload_id, PartNumber=number,
                       Body=b"x")
    listed = s3.list_parts(Bucket=bucket, Key="edges", UploadId=upload_id)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, MAX_PART]


def test_a_part_over_5_gib_is_entity_too_large_before_its_body_is_sent(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="huge")["UploadId"]
    target = f"/{bucket}/huge?partNumber=1&uploadId={upload_id}"
    url = f"{server.endpoint}{target}"
    headers = rawhttp.sign_v4("PUT", url, payload_hash="UNSIGNED-PAYLOAD")
    with rawhttp.open_request(server.port, "PUT", target, headers,
                              ["Expect: 100-continue", f"Content-Length: {5 * 1024**3 + 1}"]
                              ) as sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"<Code>EntityTooLarge</Code>" in answer


def test_an_object_over_5_tib_is_entity_too_large(server: ServerProcess, s3: Any,
                                                  bucket: str) -> None:
    # 1,025 parts of 5 GiB: recorded straight in the store (their blobs need not exist, the
    # size check comes before anything reads them), completed through S3.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="vast")["UploadId"]
    count = 5 * 1024 + 1

    async def record_parts(store: MetadataStore) -> None:
        await asyncio.gather(*(store.put_part(UploadedPart(
            upload_id=upload_id, number=n, blob_id=secrets.token_hex(16), size=5 * 1024**3,
            etag=f"{n:032x}", last_modified=time.time())) for n in range(1, count + 1)))

    on_store(server, record_parts)
    parts = [{"PartNumber": n, "ETag": f'"{n:032x}"'} for n in range(1, count + 1)]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="vast", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert error_code(exc) == "EntityTooLarge"
    s3.abort_multipart_upload(Bucket=bucket, Key="vast", UploadId=upload_id)


@pytest.mark.parametrize("body", [b"", b"   ", b"not xml", b"<CompleteMultipartUpload/>",
                                  b"<Other><Part><PartNumber>1</PartNumber></Part></Other>",
                                  b"<CompleteMultipartUpload><Part><PartNumber>one"
                                  b"</PartNumber></Part></CompleteMultipartUpload>",
                                  b"<CompleteMultipartUpload><Part><PartNumber>\xc2\xb2"
                                  b"</PartNumber></Part></CompleteMultipartUpload>"])
def test_a_completion_body_that_names_no_valid_part_list_is_malformed_xml(
        server: ServerProcess, s3: Any, bucket: str, body: bytes) -> None:
    upload_id, _ = upload_parts(s3, bucket, "mx", [b"tail"])
    assert raw(server, "POST", f"/{bucket}/mx?uploadId={upload_id}", body) == (
        400, "MalformedXML")
    # The upload is untouched and still completes.
    s3.complete_multipart_upload(Bucket=bucket, Key="mx", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts_of(s3, bucket, "mx",
                                                                    upload_id)})


def test_the_same_part_number_twice_in_a_completion_is_invalid_part_order(
        s3: Any, bucket: str) -> None:
    upload_id, parts = upload_parts(s3, bucket, "twice", [b"only"])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="twice", UploadId=upload_id,
                                     MultipartUpload={"Parts": [parts[0], parts[0]]})
    assert error_code(exc) == "InvalidPartOrder"


def test_a_part_never_uploaded_is_invalid_part(s3: Any, bucket: str) -> None:
    upload_id, parts = upload_parts(s3, bucket, "missing", [b"one"])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="missing", UploadId=upload_id,
            MultipartUpload={"Parts": [*parts, {"PartNumber": 2, "ETag": parts[0]["ETag"]}]})
    assert error_code(exc) == "InvalidPart"


@pytest.mark.parametrize("quote", ['"', "", "&quot;"])
def test_a_part_etag_is_accepted_with_or_without_quotes(server: ServerProcess, s3: Any,
                                                        bucket: str, quote: str) -> None:
    upload_id, parts = upload_parts(s3, bucket, "q", [b"quoted"])
    bare = parts[0]["ETag"].strip('"')
    body = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
            f"<ETag>{quote}{bare}{quote}</ETag></Part></CompleteMultipartUpload>").encode()
    assert raw(server, "POST", f"/{bucket}/q?uploadId={upload_id}", body) == (200, "")
    assert s3.get_object(Bucket=bucket, Key="q")["Body"].read() == b"quoted"


def test_an_upload_named_under_another_key_is_no_such_upload(s3: Any, bucket: str) -> None:
    upload_id, parts = upload_parts(s3, bucket, "mine", [b"data"])
    calls: list[Callable[[], Any]] = [
        lambda: s3.complete_multipart_upload(Bucket=bucket, Key="other", UploadId=upload_id,
                                             MultipartUpload={"Parts": parts}),
        lambda: s3.upload_part(Bucket=bucket, Key="other", UploadId=upload_id, PartNumber=1,
                               Body=b"x"),
        lambda: s3.list_parts(Bucket=bucket, Key="other", UploadId=upload_id),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="other", UploadId=upload_id),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert (error_code(exc), status(exc)) == ("NoSuchUpload", 404)
    # Nothing happened to the real upload.
    s3.complete_multipart_upload(Bucket=bucket, Key="mine", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="other")


def test_a_completed_upload_is_no_such_upload_to_every_later_request(s3: Any,
                                                                      bucket: str) -> None:
    upload_id, parts = upload_parts(s3, bucket, "done", [b"final"])
    s3.complete_multipart_upload(Bucket=bucket, Key="done", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    calls: list[Callable[[], Any]] = [
        lambda: s3.upload_part(Bucket=bucket, Key="done", UploadId=upload_id, PartNumber=2,
                               Body=b"late"),
        lambda: s3.complete_multipart_upload(Bucket=bucket, Key="done", UploadId=upload_id,
                                             MultipartUpload={"Parts": parts}),
        lambda: s3.list_parts(Bucket=bucket, Key="done", UploadId=upload_id),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="done", UploadId=upload_id),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == "NoSuchUpload"
    assert s3.get_object(Bucket=bucket, Key="done")["Body"].read() == b"final"


@pytest.mark.parametrize("query", ["max-parts=-1", "max-parts=abc", "max-parts=2147483648",
                                   "max-parts=%C2%B2", "part-number-marker=-1",
                                   "part-number-marker=x"])
def test_list_parts_limits_that_are_not_non_negative_integers_are_invalid_argument(
        server: ServerProcess, s3: Any, bucket: str, query: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="lim")["UploadId"]
    assert raw(server, "GET", f"/{bucket}/lim?uploadId={upload_id}&{query}") == (
        400, "InvalidArgument")


@pytest.mark.parametrize("query", ["max-uploads=-1", "max-uploads=ten",
                                   "max-uploads=99999999999", "encoding-type=base64"])
def test_list_uploads_limits_that_are_not_non_negative_integers_are_invalid_argument(
        server: ServerProcess, bucket: str, query: str) -> None:
    assert raw(server, "GET", f"/{bucket}?uploads&{query}") == (400, "InvalidArgument")


# ------------------------------------------------------------------------ ListParts


def test_list_parts_walks_every_page_with_exact_markers(s3: Any, bucket: str) -> None:
    numbers = [1, 2, 3, 5, 8, 13, 21]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="walk",
                                           ChecksumAlgorithm="SHA256")["UploadId"]
    for n in numbers:
        s3.upload_part(Bucket=bucket, Key="walk", UploadId=upload_id, PartNumber=n,
                       Body=f"part {n}".encode(), ChecksumAlgorithm="SHA256")
    pages = []
    marker = 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="walk", UploadId=upload_id, MaxParts=3,
                             PartNumberMarker=marker)
        pages.append(page)
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
    assert [[p["PartNumber"] for p in page["Parts"]] for page in pages] == [
        [1, 2, 3], [5, 8, 13], [21]]
    assert [page["PartNumberMarker"] for page in pages] == [0, 3, 13]
    assert [page["NextPartNumberMarker"] for page in pages] == [3, 13, 21]
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    first = pages[0]
    assert first["MaxParts"] == 3
    assert first["StorageClass"] == "STANDARD"
    assert first["ChecksumAlgorithm"] == "SHA256"
    assert first["Initiator"]["ID"] == first["Owner"]["ID"] != ""
    part = first["Parts"][0]
    assert part["Size"] == len(b"part 1")
    assert part["ETag"] == f'"{hashlib.md5(b"part 1").hexdigest()}"'
    assert part["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"part 1").digest()).decode()
    # A page that ends exactly on the last part is not truncated.
    exact = s3.list_parts(Bucket=bucket, Key="walk", UploadId=upload_id, MaxParts=2,
                          PartNumberMarker=8)
    assert ([p["PartNumber"] for p in exact["Parts"]], exact["IsTruncated"]) == ([13, 21], False)
    # boto3's paginator follows the same markers.
    paginated = [p["PartNumber"] for page in s3.get_paginator("list_parts").paginate(
        Bucket=bucket, Key="walk", UploadId=upload_id, PaginationConfig={"PageSize": 2})
        for p in page["Parts"]]
    assert paginated == numbers
    beyond = s3.list_parts(Bucket=bucket, Key="walk", UploadId=upload_id, PartNumberMarker=10001)
    assert (beyond.get("Parts", []), beyond["IsTruncated"]) == ([], False)
    assert beyond["PartNumberMarker"] == 10001
    nothing = s3.list_parts(Bucket=bucket, Key="walk", UploadId=upload_id, MaxParts=0)
    assert (nothing.get("Parts", []), nothing["IsTruncated"]) == ([], False)


# ------------------------------------------------------------------- ListMultipartUploads


def walk_uploads(s3: Any, bucket: str, **params: Any) -> list[tuple[str, str]]:
    """Every page of ListMultipartUploads following NextKeyMarker / NextUploadIdMarker:
    ``(key, upload id)`` for uploads and ``(prefix, "")`` for common prefixes, in order."""
    seen: list[tuple[str, str]] = []
    markers: dict[str, str] = {}
    for _ in range(100):
        page = s3.list_multipart_uploads(Bucket=bucket, **params, **markers)
        items = [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        items += [(p["Prefix"], "") for p in page.get("CommonPrefixes", [])]
        assert len(items) <= params.get("MaxUploads", 1000)
        seen += items
        if not page["IsTruncated"]:
            return seen
        markers = {"KeyMarker": page["NextKeyMarker"],
                   "UploadIdMarker": page.get("NextUploadIdMarker", "")}
    raise AssertionError("listing did not end")


def test_list_uploads_pages_one_at_a_time_through_prefixes_and_delimiters(
        s3: Any, bucket: str) -> None:
    keys = ["docs/a", "docs/a", "docs/a", "docs/b/c", "docs/b/d", "img/x", "img/y", "top"]
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys]
    uploads = list(zip(keys, ids, strict=True))  # created in order: initiation order per key
    assert walk_uploads(s3, bucket, MaxUploads=1) == uploads
    assert walk_uploads(s3, bucket, MaxUploads=2) == uploads
    assert walk_uploads(s3, bucket) == uploads
    assert walk_uploads(s3, bucket, Delimiter="/", MaxUploads=1) == [
        ("docs/", ""), ("img/", ""), ("top", ids[-1])]
    assert walk_uploads(s3, bucket, Prefix="docs/", Delimiter="/", MaxUploads=1) == [
        *uploads[:3], ("docs/b/", "")]
    # Any prefix, not only a whole key or a directory.
    assert walk_uploads(s3, bucket, Prefix="do", MaxUploads=2) == uploads[:5]
    assert walk_uploads(s3, bucket, Prefix="img/", MaxUploads=1) == uploads[5:7]
    assert walk_uploads(s3, bucket, Prefix="nothing") == []
    paginated = [(u["Key"], u["UploadId"]) for page in s3.get_paginator(
        "list_multipart_uploads").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
        for u in page.get("Uploads", [])]
    assert paginated == uploads
    first = s3.list_multipart_uploads(Bucket=bucket, Prefix="img/", MaxUploads=1)
    assert (first["IsTruncated"], first["NextKeyMarker"], first["NextUploadIdMarker"],
            first["MaxUploads"], first["Prefix"]) == (True, "img/x", ids[5], 1, "img/")
    upload = first["Uploads"][0]
    assert upload["Initiator"]["ID"] == upload["Owner"]["ID"] != ""
    assert upload["StorageClass"] == "STANDARD"
    assert abs(upload["Initiated"].timestamp() - time.time()) < 300


def test_key_and_upload_id_markers_resume_after_that_upload(s3: Any, bucket: str) -> None:
    ids = [s3.create_multipart_upload(Bucket=bucket, Key="same")["UploadId"] for _ in range(3)]
    later = s3.create_multipart_upload(Bucket=bucket, Key="zz")["UploadId"]
    earlier = s3.create_multipart_upload(Bucket=bucket, Key="aa")["UploadId"]

    def after(**markers: str) -> list[str]:
        page = s3.list_multipart_uploads(Bucket=bucket, **markers)
        return [u["UploadId"] for u in page.get("Uploads", [])]

    assert after(KeyMarker="same", UploadIdMarker=ids[0]) == [ids[1], ids[2], later]
    assert after(KeyMarker="same", UploadIdMarker=ids[2]) == [later]
    # Without an upload id marker, only keys after the key marker.
    assert after(KeyMarker="same") == [later]
    assert after(KeyMarker="a") == [earlier, *ids, later]
    # An upload id marker without a key marker is ignored.
    assert after(UploadIdMarker=ids[1]) == [earlier, *ids, later]
    page = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="same", UploadIdMarker=ids[0])
    assert (page["KeyMarker"], page["UploadIdMarker"]) == ("same", ids[0])


def test_encoding_type_url_encodes_every_key_in_the_upload_listing(s3: Any,
                                                                   bucket: str) -> None:
    keys = ["dir one/caf\u00e9 \u00fcber", "dir one/plus+sign", "other key & more",
            "\u65e5\u672c/\u8a9e"]
    for key in keys:
        s3.create_multipart_upload(Bucket=bucket, Key=key)
    seen: list[str] = []
    markers: dict[str, str] = {}
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, EncodingType="url", MaxUploads=1,
                                         **markers)
        assert page["EncodingType"] == "url"
        for upload in page.get("Uploads", []):
            assert upload["Key"].isascii() and " " not in upload["Key"]
            seen.append(unquote_plus(upload["Key"]))
        if not page["IsTruncated"]:
            break
        assert page["NextKeyMarker"].isascii() and " " not in page["NextKeyMarker"]
        # Markers go back decoded: they are keys.
        markers = {"KeyMarker": unquote_plus(page["NextKeyMarker"]),
                   "UploadIdMarker": page["NextUploadIdMarker"]}
    assert seen == sorted(keys, key=lambda k: k.encode())
    rolled = s3.list_multipart_uploads(Bucket=bucket, EncodingType="url", Delimiter="/",
                                       Prefix="dir one/", KeyMarker="dir one/caf\u00e9")
    assert rolled["Prefix"] == "dir+one/"
    assert rolled["Delimiter"] == "/"
    assert unquote_plus(rolled["KeyMarker"]) == "dir one/caf\u00e9"
    assert rolled["KeyMarker"].isascii()
    assert [unquote_plus(u["Key"]) for u in rolled["Uploads"]] == keys[:2]
    top = s3.list_multipart_uploads(Bucket=bucket, EncodingType="url", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [
        "dir+one/", quote_plus("\u65e5\u672c/", safe="/")]


# ---------------------------------------------------------------- concurrency and GC


def test_parts_uploaded_in_parallel_all_land_in_the_object(gc_server: ServerProcess,
                                                          gc_bucket: str) -> None:
    s3 = make_client(gc_server.endpoint)
    bodies = {n: os.urandom(5 * MIB) for n in range(1, 7)}
    bodies[7] = os.urandom(1000)
    upload_id = s3.create_multipart_upload(Bucket=gc_bucket, Key="par")["UploadId"]
    # Part 3 is also sent twice more at the same time as the rest: one of them wins.
    jobs = [(n, body) for n, body in bodies.items()] + [(3, bodies[3]), (3, bodies[3])]
    clients = [make_client(gc_server.endpoint) for _ in jobs]
    start = threading.Barrier(len(jobs))
    etags: dict[int, str] = {}
    failures: list[BaseException] = []

    def send(client: Any, number: int, body: bytes) -> None:
        start.wait()
        try:
            etags[number] = client.upload_part(Bucket=gc_bucket, Key="par", UploadId=upload_id,
                                               PartNumber=number, Body=body)["ETag"]
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(c, n, b))
               for c, (n, b) in zip(clients, jobs, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    parts = parts_of(s3, gc_bucket, "par", upload_id)
    assert parts == [{"PartNumber": n, "ETag": etags[n]} for n in sorted(bodies)]
    s3.complete_multipart_upload(Bucket=gc_bucket, Key="par", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    whole = b"".join(bodies[n] for n in sorted(bodies))
    assert s3.get_object(Bucket=gc_bucket, Key="par")["Body"].read() == whole
    # The two losing copies of part 3 are freed; every part the object uses is on disk.
    assert_blob_files_become_exactly_the_referenced_ones(gc_server)


def race(calls: list[Callable[[], Any]]) -> list[str]:
    """Run ``calls`` at the same moment on threads; each outcome: "ok" or the error code."""
    start = threading.Barrier(len(calls))
    outcomes = [""] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            calls[index]()
            outcomes[index] = "ok"
        except ClientError as exc:
            outcomes[index] = str(exc.response["Error"]["Code"])
        except BaseException as exc:  # the outcome names it: the test fails on it
            outcomes[index] = repr(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


ROUNDS = 25


def test_complete_racing_abort_has_exactly_one_outcome_and_leaks_no_blob(
        gc_server: ServerProcess, gc_bucket: str) -> None:
    s3, other = make_client(gc_server.endpoint), make_client(gc_server.endpoint)
    tally = {"completed": 0, "aborted": 0}
    for i in range(ROUNDS):
        key = f"race-{i}"
        # Part 1 is never named: a completion frees it, an abort frees both.
        upload_id, parts = upload_parts(s3, gc_bucket, key, [b"unnamed", f"body {i}".encode()])
        done = {"Parts": parts[1:]}
        complete, abort = race([
            partial(s3.complete_multipart_upload, Bucket=gc_bucket, Key=key,
                    UploadId=upload_id, MultipartUpload=done),
            partial(other.abort_multipart_upload, Bucket=gc_bucket, Key=key,
                    UploadId=upload_id),
        ])
        assert sorted([complete, abort]) == ["NoSuchUpload", "ok"], (complete, abort)
        if complete == "ok":
            tally["completed"] += 1
            assert s3.get_object(Bucket=gc_bucket, Key=key)["Body"].read() == f"body {i}".encode()
        else:
            tally["aborted"] += 1
            with pytest.raises(ClientError) as exc:
                s3.head_object(Bucket=gc_bucket, Key=key)
            assert status(exc) == 404
        with pytest.raises(ClientError) as exc:
            s3.list_parts(Bucket=gc_bucket, Key=key, UploadId=upload_id)
        assert error_code(exc) == "NoSuchUpload"
    assert sum(tally.values()) == ROUNDS
    assert s3.list_multipart_uploads(Bucket=gc_bucket).get("Uploads", []) == []
    assert_blob_files_become_exactly_the_referenced_ones(gc_server)


def test_two_completes_racing_have_exactly_one_winner_and_leak_no_blob(
        gc_server: ServerProcess, gc_bucket: str) -> None:
    s3, other = make_client(gc_server.endpoint), make_client(gc_server.endpoint)
    for i in range(ROUNDS):
        key = f"twice-{i}"
        bodies = [f"first {i}".encode(), f"second {i}".encode()]
        upload_id, parts = upload_parts(s3, gc_bucket, key, bodies)
        # Each completion names a different part, so the object shows which one won.
        outcomes = race([
            partial(client.complete_multipart_upload, Bucket=gc_bucket, Key=key,
                    UploadId=upload_id, MultipartUpload={"Parts": named})
            for client, named in ((s3, parts[:1]), (other, parts[1:]))
        ])
        assert sorted(outcomes) == ["NoSuchUpload", "ok"], outcomes
        winner = outcomes.index("ok")
        assert s3.get_object(Bucket=gc_bucket, Key=key)["Body"].read() == bodies[winner]
    assert s3.list_multipart_uploads(Bucket=gc_bucket).get("Uploads", []) == []
    assert_blob_files_become_exactly_the_referenced_ones(gc_server)


def test_a_part_uploaded_again_replaces_the_first_and_frees_its_blob(
        gc_server: ServerProcess, gc_bucket: str) -> None:
    s3 = make_client(gc_server.endpoint)
    upload_id, _ = upload_parts(s3, gc_bucket, "again", [b"first version"])
    before = blob_files(gc_server.data_dir)
    second = s3.upload_part(Bucket=gc_bucket, Key="again", UploadId=upload_id, PartNumber=1,
                            Body=b"second version")
    listed = s3.list_parts(Bucket=gc_bucket, Key="again", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, second["ETag"], len(b"second version"))]
    assert_blob_files_become_exactly_the_referenced_ones(gc_server)
    assert len(blob_files(gc_server.data_dir)) == len(before)  # one freed, one added
    s3.complete_multipart_upload(Bucket=gc_bucket, Key="again", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts_of(s3, gc_bucket, "again",
                                                                    upload_id)})
    assert s3.get_object(Bucket=gc_bucket, Key="again")["Body"].read() == b"second version"


def test_parts_not_named_in_the_completion_are_freed(gc_server: ServerProcess,
                                                     gc_bucket: str) -> None:
    s3 = make_client(gc_server.endpoint)
    bodies = [os.urandom(5 * MIB), b"skipped", b"also skipped", b"the end"]
    upload_id, parts = upload_parts(s3, gc_bucket, "sparse", bodies)
    assert_blob_files_become_exactly_the_referenced_ones(gc_server)
    before = blob_files(gc_server.data_dir)
    s3.complete_multipart_upload(Bucket=gc_bucket, Key="sparse", UploadId=upload_id,
                                 MultipartUpload={"Parts": [parts[0], parts[3]]})
    assert s3.get_object(Bucket=gc_bucket, Key="sparse")["Body"].read() == (
        bodies[0] + bodies[3])
    assert_blob_files_become_exactly_the_referenced_ones(gc_server)
    assert len(before - blob_files(gc_server.data_dir)) == 2


# ------------------------------------------------------------------------------ expiry


def test_an_abandoned_upload_expires_and_its_part_blobs_are_removed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir=data_dir,
                         extra_args=["--multipart-expiry-seconds", "1",
                                     "--gc-interval-seconds", "0.3"]).start()
    try:
        s3 = make_client(proc.endpoint)
        s3.create_bucket(Bucket="expiry")
        # A plain object's blob is not an upload's: it must survive every expiry pass.
        s3.put_object(Bucket="expiry", Key="kept", Body=b"k" * (200 * 1024))
        kept = blob_files(data_dir)
        upload_id, _ = upload_parts(s3, "expiry", "left", [b"one", b"two"])
        assert len(blob_files(data_dir)) == len(kept) + 2
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
                s3.list_multipart_uploads(Bucket="expiry").get("Uploads")
                or blob_files(data_dir) != kept):
            time.sleep(0.2)
        assert s3.list_multipart_uploads(Bucket="expiry").get("Uploads", []) == []
        assert blob_files(data_dir) == kept
        with pytest.raises(ClientError) as exc:
            s3.upload_part(Bucket="expiry", Key="left", UploadId=upload_id, PartNumber=3,
                           Body=b"too late")
        assert error_code(exc) == "NoSuchUpload"
        assert s3.get_object(Bucket="expiry", Key="kept")["Body"].read() == b"k" * (200 * 1024)
    finally:
        proc.stop()


def test_uploads_younger_than_the_expiry_are_kept(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data",
                         extra_args=["--gc-interval-seconds", "0.3"],
                         env={"CARGOHOLD_MULTIPART_EXPIRY_SECONDS": "3600"}).start()
    try:
        s3 = make_client(proc.endpoint)
        s3.create_bucket(Bucket="young")
        upload_id, _ = upload_parts(s3, "young", "fresh", [b"part"])
        time.sleep(1.5)  # several expiry passes
        uploads = s3.list_multipart_uploads(Bucket="young")["Uploads"]
        assert [u["UploadId"] for u in uploads] == [upload_id]
    finally:
        proc.stop()


def test_an_expiry_pass_aborts_only_uploads_initiated_before_the_cutoff(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "meta.sqlite3")
        await store.open()
        try:
            owner = "a" * 64
            await store.create_account(Account(owner, "o", "O", "", 0.0))
            await store.create_bucket(Bucket("b", owner, "nyc3", 0.0), 10)
            for upload_id, initiated in [("old", 100.0), ("older", 50.0), ("new", 950.0)]:
                await store.create_upload(Upload(upload_id, "b", upload_id, owner, initiated))
                await store.put_part(UploadedPart(upload_id, 1, f"{initiated:032.0f}", 1,
                                                  "e" * 32, initiated))
            assert await UploadExpirer(store, 0, 1).run_once(now=1000.0) == 0  # 0: off
            assert await UploadExpirer(store, 500, 1).run_once(now=1000.0) == 2
            assert [u.upload_id for u in await store.uploads_initiated_before(1e9)] == ["new"]
            assert sorted(await store.pending_blob_deletions()) == [
                f"{50.0:032.0f}", f"{100.0:032.0f}"]
        finally:
            await store.close()

    asyncio.run(scenario())
