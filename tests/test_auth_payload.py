"""Streaming body decoding and verification: plain, signed, aws-chunked, trailers.

Signed chunk framing follows AWS's "Transferring Payload in Multiple Chunks" document and
is checked against its published example; unsigned-trailer bodies come from botocore's own
``AwsChunkedWrapper`` (what boto3 and aws-cli send by default since 2025).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import zlib

import pytest
from aiohttp import ClientPayloadError
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from multidict import CIMultiDict, CIMultiDictProxy

from cargohold import errors
from cargohold.auth import AuthResult, PayloadMode, PayloadReader, SignedRequest, authenticate
from cargohold.auth.model import ANONYMOUS, Principal
from cargohold.auth.payload import BLOCK
from cargohold.auth.sigv4 import signing_key
from cargohold.store.base import AccessKey

# The AWS documentation example (sigv4-streaming): PUT /examplebucket/chunkObject.txt.
AWS_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_DATE = "20130524T000000Z"
AWS_TIME = 1369353600.0  # 2013-05-24T00:00:00Z
AWS_SCOPE = "20130524/us-east-1/s3/aws4_request"
AWS_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
AWS_CHUNKS = [b"a" * 65536, b"a" * 1024, b""]
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
KEY = signing_key(AWS_SECRET, AWS_DATE[:8], "us-east-1")
PRINCIPAL = Principal(account_id="acct", access_key=AWS_ACCESS_KEY)


class BytesStream:
    """An input stream over bytes that hands out at most ``piece`` bytes per read.

    ``error`` is raised once the bytes run out, like aiohttp does when the peer goes away.
    """

    def __init__(self, data: bytes, piece: int = 1 << 20,
                 error: BaseException | None = None) -> None:
        self._data = io.BytesIO(data)
        self.piece = piece
        self.error = error
        self.reads = 0

    @property
    def position(self) -> int:
        return self._data.tell()

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        size = self.piece if n < 0 else min(n, self.piece)
        data = self._data.read(size)
        if not data and self.error is not None:
            raise self.error
        return data


def frozen(headers: dict[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(headers))


def streaming_auth(mode: PayloadMode = PayloadMode.STREAMING_SIGNED) -> AuthResult:
    return AuthResult(principal=PRINCIPAL, signature_version="SigV4", auth_type="AuthHeader",
                      payload_mode=mode, seed_signature=AWS_SEED, signing_key=KEY,
                      amz_date=AWS_DATE, scope=AWS_SCOPE)


def chunk_signature(previous: str, data: bytes) -> str:
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", AWS_DATE, AWS_SCOPE, previous,
                                EMPTY_SHA256, hashlib.sha256(data).hexdigest()])
    return hmac.new(KEY, string_to_sign.encode(), hashlib.sha256).hexdigest()


def trailer_signature(previous: str, trailers: dict[str, str]) -> str:
    canonical = "".join(f"{name}:{value}\n" for name, value in sorted(trailers.items()))
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", AWS_DATE, AWS_SCOPE, previous,
                                hashlib.sha256(canonical.encode()).hexdigest()])
    return hmac.new(KEY, string_to_sign.encode(), hashlib.sha256).hexdigest()


def signed_body(chunks: list[bytes], trailers: dict[str, str] | None = None,
                signatures: list[str] | None = None) -> bytes:
    """Frame ``chunks`` (the last one empty) with chained signatures, then trailers."""
    out = bytearray()
    previous = AWS_SEED
    for index, data in enumerate(chunks):
        signature = signatures[index] if signatures else chunk_signature(previous, data)
        previous = signature
        out += b"%x;chunk-signature=%s\r\n" % (len(data), signature.encode())
        if data or trailers is None:
            out += data + b"\r\n"
    if trailers is not None:
        for name, value in trailers.items():
            out += f"{name}:{value}\r\n".encode()
        out += f"x-amz-trailer-signature:{trailer_signature(previous, trailers)}\r\n".encode()
        out += b"\r\n"
    return bytes(out)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


async def _drain(reader: PayloadReader) -> tuple[bytes, list[int]]:
    pieces = [piece async for piece in reader.chunks()]
    return b"".join(pieces), [len(p) for p in pieces]


def read_all(reader: PayloadReader) -> bytes:
    return asyncio.run(_drain(reader))[0]


def reader_for(body: bytes, mode: PayloadMode = PayloadMode.STREAMING_SIGNED,
               decoded: int | None = None, piece: int = 1 << 20,
               auth: AuthResult | None = None) -> PayloadReader:
    headers = {"Content-Encoding": "aws-chunked", "Content-Length": str(len(body))}
    if decoded is not None:
        headers["x-amz-decoded-content-length"] = str(decoded)
    return PayloadReader(BytesStream(body, piece), auth or streaming_auth(mode),
                         frozen(headers))


AWS_BODY = signed_body(AWS_CHUNKS, signatures=AWS_CHUNK_SIGNATURES)


# --- the AWS documented example --------------------------------------------------------------

def test_the_aws_chunked_upload_example_body_frames_to_the_documented_length() -> None:
    assert len(AWS_BODY) == 66824


def test_our_chunk_signatures_reproduce_the_aws_documented_ones() -> None:
    previous = AWS_SEED
    for data, expected in zip(AWS_CHUNKS, AWS_CHUNK_SIGNATURES, strict=True):
        previous = chunk_signature(previous, data)
        assert previous == expected


def test_the_aws_chunked_upload_example_authenticates_and_decodes_end_to_end() -> None:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/{AWS_SCOPE},SignedHeaders="
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        f"x-amz-decoded-content-length;x-amz-storage-class,Signature={AWS_SEED}")
    headers = frozen({
        "Host": "s3.amazonaws.com", "x-amz-date": AWS_DATE,
        "x-amz-storage-class": "REDUCED_REDUNDANCY", "Authorization": authorization,
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "66560",
        "Content-Length": "66824"})
    key = AccessKey(AWS_ACCESS_KEY, AWS_SECRET, "acct", 0.0)

    async def lookup(access_key: str) -> AccessKey | None:
        return key if access_key == AWS_ACCESS_KEY else None

    async def scenario() -> tuple[AuthResult, bytes, PayloadReader]:
        request = SignedRequest("PUT", "/examplebucket/chunkObject.txt", "", headers)
        auth = await authenticate(request, lookup, now=AWS_TIME)
        reader = PayloadReader(BytesStream(AWS_BODY), auth, headers)
        return auth, (await _drain(reader))[0], reader

    auth, data, reader = asyncio.run(scenario())
    assert auth.payload_mode is PayloadMode.STREAMING_SIGNED
    assert auth.seed_signature == AWS_SEED
    assert data == b"a" * 66560
    assert reader.decoded_length == 66560
    assert reader.trailers == {}


@pytest.mark.parametrize("piece", [1, 7, 86, 4096, 65536 + 90])
def test_chunk_framing_split_across_arbitrary_reads_decodes_the_same(piece: int) -> None:
    assert read_all(reader_for(AWS_BODY, decoded=66560, piece=piece)) == b"a" * 66560


# --- signed chunks: unhappy paths -------------------------------------------------------------

def test_a_corrupted_chunk_is_refused_when_that_chunk_ends() -> None:
    body = bytearray(AWS_BODY)
    body[66000] = ord("b")  # inside the second chunk's data
    reader = reader_for(bytes(body))
    received: list[bytes] = []

    async def consume() -> None:
        async for piece in reader.chunks():
            received.append(piece)

    with pytest.raises(errors.SignatureDoesNotMatch):
        asyncio.run(consume())
    # The first chunk (verified) streamed out before the bad one was detected.
    assert sum(map(len, received)) >= 65536


def test_a_forged_chunk_signature_is_refused() -> None:
    forged = [AWS_CHUNK_SIGNATURES[0], "0" * 64, AWS_CHUNK_SIGNATURES[2]]
    with pytest.raises(errors.SignatureDoesNotMatch):
        read_all(reader_for(signed_body(AWS_CHUNKS, signatures=forged)))


def test_reordered_chunks_break_the_signature_chain() -> None:
    first, second = b"x" * 100, b"y" * 50
    body = signed_body([first, second, b""])
    # Re-sign the swapped order with the original signatures: the chain no longer matches.
    good = [chunk_signature(AWS_SEED, first)]
    good.append(chunk_signature(good[0], second))
    good.append(chunk_signature(good[1], b""))
    swapped = signed_body([second, first, b""], signatures=[good[1], good[0], good[2]])
    assert read_all(reader_for(body)) == first + second
    with pytest.raises(errors.SignatureDoesNotMatch):
        read_all(reader_for(swapped))


def test_a_dropped_final_chunk_is_an_incomplete_body() -> None:
    body = signed_body([b"x" * 100, b""])
    cut = body[:body.index(b"0;chunk-signature")]
    with pytest.raises(errors.IncompleteBody):
        read_all(reader_for(cut))


def test_a_signed_stream_chunk_without_a_signature_is_refused() -> None:
    with pytest.raises(errors.SignatureDoesNotMatch):
        read_all(reader_for(b"5\r\nhello\r\n0\r\n\r\n"))


def test_a_seed_signature_from_another_request_does_not_verify_the_chunks() -> None:
    auth = streaming_auth()
    auth.seed_signature = "1" * 64
    with pytest.raises(errors.SignatureDoesNotMatch):
        read_all(reader_for(AWS_BODY, auth=auth))


@pytest.mark.parametrize("cut", [10, 88, 88 + 30000, 66824 - 90, 66824 - 1])
def test_a_truncated_chunked_body_is_an_incomplete_body(cut: int) -> None:
    with pytest.raises(errors.IncompleteBody):
        read_all(reader_for(AWS_BODY[:cut]))


def test_a_decoded_length_larger_than_the_chunks_is_an_incomplete_body() -> None:
    with pytest.raises(errors.IncompleteBody):
        read_all(reader_for(AWS_BODY, decoded=66561))


def test_chunks_longer_than_the_decoded_length_are_refused_before_reading_them() -> None:
    stream = BytesStream(AWS_BODY, piece=4096)
    headers = frozen({"x-amz-decoded-content-length": "100"})
    with pytest.raises(errors.IncompleteBody):
        read_all(PayloadReader(stream, streaming_auth(), headers))
    assert stream.position < 66824


def test_a_non_numeric_decoded_length_is_an_invalid_argument() -> None:
    headers = frozen({"x-amz-decoded-content-length": "lots"})
    with pytest.raises(errors.InvalidArgument):
        read_all(PayloadReader(BytesStream(AWS_BODY), streaming_auth(), headers))


@pytest.mark.parametrize("body", [
    b"zz;chunk-signature=" + b"0" * 64 + b"\r\nhello\r\n",  # size is not hex
    b";chunk-signature=" + b"0" * 64 + b"\r\n",  # no size
    b"12345678901234567;chunk-signature=x\r\n",  # size beyond 64 bits
    b"1" * 5000 + b"\r\n",  # header line past the 4 KiB bound
])
def test_garbage_chunk_framing_is_an_invalid_request(body: bytes) -> None:
    with pytest.raises(errors.InvalidRequest):
        read_all(reader_for(body, mode=PayloadMode.STREAMING_UNSIGNED_TRAILER))


def test_chunk_data_longer_than_its_declared_size_is_an_invalid_request() -> None:
    body = b"3\r\nhello\r\n0\r\n\r\n"
    with pytest.raises(errors.InvalidRequest):
        read_all(reader_for(body, mode=PayloadMode.STREAMING_UNSIGNED_TRAILER))


def test_data_after_the_final_chunk_is_an_invalid_request() -> None:
    with pytest.raises(errors.InvalidRequest):
        read_all(reader_for(AWS_BODY + b"extra"))


def test_the_final_crlf_may_be_omitted() -> None:
    assert read_all(reader_for(AWS_BODY[:-2], decoded=66560)) == b"a" * 66560


def test_an_empty_object_is_one_final_chunk() -> None:
    body = signed_body([b""])
    reader = reader_for(body, decoded=0)
    assert read_all(reader) == b""
    assert reader.decoded_length == 0


# --- memory bounds ----------------------------------------------------------------------------

def test_a_huge_signed_chunk_streams_in_bounded_pieces() -> None:
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB in one chunk
    body = signed_body([data, b""])
    stream = BytesStream(body, piece=1 << 22)
    reader = PayloadReader(stream, streaming_auth(), frozen({}))

    async def first_then_rest() -> tuple[int, int, bytes]:
        iterator = reader.chunks().__aiter__()
        first = await iterator.__anext__()
        position_after_first = stream.position
        rest = [first] + [piece async for piece in iterator]
        return position_after_first, max(map(len, rest)), b"".join(rest)

    position, largest, decoded = asyncio.run(first_then_rest())
    assert decoded == data
    assert largest <= BLOCK
    assert position < len(data) // 2  # the first bytes left long before the chunk ended


def test_a_huge_plain_body_streams_in_bounded_pieces() -> None:
    data = b"z" * (5 * 1024 * 1024)
    reader = PayloadReader(BytesStream(data, piece=1 << 23),
                           AuthResult(principal=ANONYMOUS),
                           frozen({"Content-Length": str(len(data))}))
    decoded, sizes = asyncio.run(_drain(reader))
    assert decoded == data
    assert max(sizes) <= BLOCK


# --- trailers -------------------------------------------------------------------------------

def test_botocore_unsigned_trailer_body_decodes_with_its_checksum_trailer() -> None:
    data = b"The quick brown fox jumps over the lazy dog" * 1000
    wrapper = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum,
                                checksum_name="x-amz-checksum-crc32", chunk_size=8192)
    body = wrapper.read()
    reader = reader_for(body, PayloadMode.STREAMING_UNSIGNED_TRAILER, decoded=len(data),
                        piece=1000)
    assert read_all(reader) == data
    assert reader.trailers == {"x-amz-checksum-crc32": crc32_b64(data)}


def test_an_unsigned_trailer_body_may_omit_the_final_crlf() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:" + crc32_b64(b"hello").encode() + b"\r\n"
    reader = reader_for(body, PayloadMode.STREAMING_UNSIGNED_TRAILER, decoded=5)
    assert read_all(reader) == b"hello"
    assert reader.trailers == {"x-amz-checksum-crc32": crc32_b64(b"hello")}


def test_an_unsigned_trailer_body_without_trailers_has_none() -> None:
    reader = reader_for(b"5\r\nhello\r\n0\r\n\r\n", PayloadMode.STREAMING_UNSIGNED_TRAILER)
    assert read_all(reader) == b"hello"
    assert reader.trailers == {}


def test_trailer_names_are_lower_cased_and_values_trimmed() -> None:
    body = b"0\r\nX-Amz-Checksum-CRC32C :  sOO8/Q==  \r\n\r\n"
    reader = reader_for(body, PayloadMode.STREAMING_UNSIGNED_TRAILER)
    read_all(reader)
    assert reader.trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


def test_trailers_beyond_16_kib_are_an_invalid_request() -> None:
    lines = b"".join(b"x-amz-meta-%d:%s\r\n" % (i, b"v" * 100) for i in range(200))
    body = b"0\r\n" + lines + b"\r\n"
    with pytest.raises(errors.InvalidRequest):
        read_all(reader_for(body, PayloadMode.STREAMING_UNSIGNED_TRAILER))


def test_a_trailer_line_without_a_colon_is_an_invalid_request() -> None:
    with pytest.raises(errors.InvalidRequest):
        read_all(reader_for(b"0\r\nnot a header\r\n\r\n",
                            PayloadMode.STREAMING_UNSIGNED_TRAILER))


def test_a_signed_trailer_body_verifies_chunks_and_trailer() -> None:
    data = b"payload bytes" * 500
    trailers = {"x-amz-checksum-crc32": crc32_b64(data)}
    body = signed_body([data[:4000], data[4000:], b""], trailers=trailers)
    reader = reader_for(body, PayloadMode.STREAMING_SIGNED_TRAILER, decoded=len(data), piece=333)
    assert read_all(reader) == data
    assert reader.trailers == trailers


def test_a_tampered_signed_trailer_is_refused() -> None:
    data = b"payload"
    body = signed_body([data, b""], trailers={"x-amz-checksum-crc32": crc32_b64(data)})
    forged = body.replace(crc32_b64(data).encode(), b"AAAAAA==")
    with pytest.raises(errors.SignatureDoesNotMatch):
        read_all(reader_for(forged, PayloadMode.STREAMING_SIGNED_TRAILER))


def test_a_signed_trailer_without_its_signature_is_refused() -> None:
    data = b"payload"
    body = signed_body([data, b""], trailers={"x-amz-checksum-crc32": crc32_b64(data)})
    start = body.index(b"x-amz-trailer-signature")
    stripped = body[:start] + b"\r\n"
    with pytest.raises(errors.SignatureDoesNotMatch):
        read_all(reader_for(stripped, PayloadMode.STREAMING_SIGNED_TRAILER))


def test_a_trailer_smuggled_after_the_trailer_signature_is_an_invalid_request() -> None:
    data = b"payload"
    body = signed_body([data, b""], trailers={"x-amz-checksum-crc32": crc32_b64(data)})
    smuggled = body[:-2] + b"x-amz-checksum-sha256:AAAA\r\n\r\n"
    with pytest.raises(errors.InvalidRequest):
        read_all(reader_for(smuggled, PayloadMode.STREAMING_SIGNED_TRAILER))


# --- plain bodies ---------------------------------------------------------------------------

def plain_reader(body: bytes, *, content_length: int | None = None,
                 sha256: str | None = None, error: BaseException | None = None,
                 piece: int = 1 << 20) -> PayloadReader:
    mode = PayloadMode.SIGNED if sha256 is not None else PayloadMode.UNSIGNED
    auth = AuthResult(principal=PRINCIPAL, payload_mode=mode, payload_sha256=sha256)
    headers = {} if content_length is None else {"Content-Length": str(content_length)}
    return PayloadReader(BytesStream(body, piece, error), auth, frozen(headers))


def test_a_signed_plain_body_matching_its_hash_streams_through() -> None:
    body = b"0123456789" * 1000
    reader = plain_reader(body, content_length=len(body),
                          sha256=hashlib.sha256(body).hexdigest(), piece=999)
    assert read_all(reader) == body
    assert reader.decoded_length == len(body)


def test_a_signed_plain_body_that_differs_from_its_hash_is_a_sha256_mismatch() -> None:
    reader = plain_reader(b"tampered", content_length=8,
                          sha256=hashlib.sha256(b"original").hexdigest())
    with pytest.raises(errors.XAmzContentSHA256Mismatch):
        read_all(reader)


def test_a_detached_payload_hash_is_left_to_the_caller_and_checked_on_request() -> None:
    body = b"abc" * 5000
    reader = plain_reader(b"X" + body[1:], content_length=len(body),
                          sha256=hashlib.sha256(body).hexdigest())
    sha = reader.detach_sha256()
    assert sha is not None
    received = read_all(reader)  # no mismatch raised while streaming: the caller hashes
    sha.update(received)
    with pytest.raises(errors.XAmzContentSHA256Mismatch):
        reader.check_sha256()
    good = plain_reader(body, content_length=len(body), sha256=hashlib.sha256(body).hexdigest())
    sha = good.detach_sha256()
    sha.update(read_all(good))
    good.check_sha256()


def test_unsigned_payloads_have_no_hash_to_detach() -> None:
    assert plain_reader(b"x", content_length=1).detach_sha256() is None


def test_a_plain_body_shorter_than_its_content_length_is_an_incomplete_body() -> None:
    with pytest.raises(errors.IncompleteBody):
        read_all(plain_reader(b"short", content_length=10))


@pytest.mark.parametrize("error", [
    ConnectionResetError("peer went away"),
    ClientPayloadError("Response payload is not completed"),
    asyncio.IncompleteReadError(b"", 10),
])
def test_a_connection_lost_mid_body_is_an_incomplete_body(error: BaseException) -> None:
    with pytest.raises(errors.IncompleteBody):
        read_all(plain_reader(b"part", content_length=10, error=error))


def test_a_plain_body_without_content_length_is_read_to_its_end() -> None:
    reader = plain_reader(b"abc" * 100_000)
    assert read_all(reader) == b"abc" * 100_000


def test_a_plain_unsigned_body_is_not_hash_checked() -> None:
    assert read_all(plain_reader(b"anything", content_length=8)) == b"anything"


def test_the_body_can_be_iterated_directly_but_only_once() -> None:
    reader = plain_reader(b"once", content_length=4)

    async def iterate() -> bytes:
        return b"".join([piece async for piece in reader])

    assert asyncio.run(iterate()) == b"once"
    with pytest.raises(RuntimeError):
        reader.chunks()
