"""Stream the request body, decoding ``aws-chunked`` framing and verifying what protects it.

Memory stays bounded (about one read block plus one framing line) whatever the body or
chunk size: a signed chunk of many MiB is hashed as it arrives and its data yielded at once;
its signature is checked when the chunk ends. Yielding not-yet-verified bytes is safe
because callers commit only after iteration finishes without an error.

Wire format (SigV4 streaming)::

    hex-size;chunk-signature=<64 hex>\\r\\n <data> \\r\\n      (repeated)
    0;chunk-signature=<64 hex>\\r\\n                        (final, empty chunk)
    \\r\\n                                                 (without trailers)
    name:value\\r\\n ... [x-amz-trailer-signature:<hex>\\r\\n] \\r\\n   (with trailers)

Unsigned-trailer bodies have the same framing without ``;chunk-signature=...``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDictProxy

from cargohold import errors
from cargohold.auth.model import AuthResult, PayloadMode
from cargohold.auth.sigv4 import sign
from cargohold.checksums import Hasher
from cargohold.numbers import decimal

BLOCK = 256 * 1024  # largest piece read (and yielded) at once
MAX_CHUNK_LINE = 4 * 1024  # a chunk header line longer than this is garbage
MAX_TRAILERS = 16 * 1024  # all trailer lines together
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIGNED_MODES = (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)
# What aiohttp (and asyncio) raise when the client goes away mid-body.
_STREAM_ERRORS = (asyncio.IncompleteReadError, ConnectionResetError, ClientPayloadError,
                  HttpProcessingError)


class ByteStream(Protocol):
    """The part of aiohttp's ``StreamReader`` the reader uses."""

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes; ``b""`` only at the end of the stream."""
        ...


def _garbage(message: str) -> errors.S3Error:
    return errors.InvalidRequest(f"Malformed aws-chunked body: {message}")


class PayloadReader:
    """Decodes and verifies one request body while it streams.

    Iterate :meth:`chunks` (or the reader itself) once. Afterwards :attr:`trailers` holds
    the trailing headers (lower-case names, ``x-amz-trailer-signature`` removed), which the
    caller checks against its own checksums.
    """

    def __init__(self, stream: ByteStream, auth: AuthResult,
                 headers: CIMultiDictProxy[str]) -> None:
        self._stream = stream
        self._auth = auth
        self._headers = headers
        self._trailers: dict[str, str] = {}
        self._decoded = 0
        self._started = False
        self._buffer = bytearray()  # framing bytes read ahead (chunked bodies only)
        self._sha256 = hashlib.sha256() if auth.payload_mode is PayloadMode.SIGNED else None
        self._sha256_detached = False

    @property
    def trailers(self) -> dict[str, str]:
        """Trailing headers, complete once iteration has finished."""
        return self._trailers

    @property
    def decoded_length(self) -> int:
        """Payload bytes (framing excluded) yielded so far."""
        return self._decoded

    def detach_sha256(self) -> Hasher | None:
        """Hand the payload's SHA-256 (signed payloads only) to the caller, or ``None``.

        The caller feeds it every payload byte off the event loop (the blob writer hashes
        in its worker thread) and calls :meth:`check_sha256` once it has; the reader then
        neither hashes nor checks. Must be called before iterating.
        """
        if self._started:
            raise RuntimeError("detach the payload hash before reading the body")
        self._sha256_detached = self._sha256 is not None
        return self._sha256

    def check_sha256(self) -> None:
        """``XAmzContentSHA256Mismatch`` unless the detached SHA-256 matches the signed one."""
        expected = self._auth.payload_sha256
        if self._sha256 is None or expected is None:
            return
        computed = self._sha256.hexdigest()
        if not hmac.compare_digest(computed, expected):
            raise errors.XAmzContentSHA256Mismatch(ClientComputedContentSHA256=expected,
                                                   S3ComputedContentSHA256=computed)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    def chunks(self) -> AsyncIterator[bytes]:
        """The decoded payload in pieces of at most :data:`BLOCK` bytes.

        Raises ``IncompleteBody`` (truncated body or wrong decoded length),
        ``InvalidRequest`` (malformed framing), ``SignatureDoesNotMatch`` (bad chunk or
        trailer signature) or ``XAmzContentSHA256Mismatch``.
        """
        if self._started:
            raise RuntimeError("the request body can be read only once")
        self._started = True
        if self._auth.payload_mode.is_chunked:
            return self._chunked()
        return self._plain()

    async def _read(self, n: int) -> bytes:
        try:
            return await self._stream.read(n)
        except _STREAM_ERRORS as exc:
            raise errors.IncompleteBody() from exc

    # --- plain bodies ------------------------------------------------------------------------

    async def _plain(self) -> AsyncIterator[bytes]:
        length_header = self._headers.get("Content-Length")
        # Without a Content-Length (HTTP chunked transfer, or no body), read to the end.
        remaining = decimal(length_header) if length_header else None
        digest = None if self._sha256_detached else self._sha256
        while remaining is None or remaining > 0:
            data = await self._read(BLOCK if remaining is None else min(remaining, BLOCK))
            if not data:
                if remaining is None:
                    break
                raise errors.IncompleteBody()
            if remaining is not None:
                remaining -= len(data)
            if digest is not None:
                digest.update(data)
            self._decoded += len(data)
            yield data
        if digest is not None:
            self.check_sha256()

    # --- aws-chunked bodies ------------------------------------------------------------------

    async def _line(self, limit: int, *, eof_ok: bool = False) -> bytes | None:
        """The next CRLF- (or LF-) terminated line without its terminator.

        At a clean end of stream returns ``None`` if ``eof_ok``, else raises IncompleteBody.
        """
        buf = self._buffer
        scanned = 0
        while True:
            end = buf.find(b"\n", scanned)
            if end >= 0:
                if end > limit:
                    raise _garbage("line too long")
                line = bytes(buf[:end])
                del buf[:end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(buf) > limit:
                raise _garbage("line too long")
            scanned = len(buf)
            data = await self._read(BLOCK)
            if not data:
                if eof_ok and not buf:
                    return None
                raise errors.IncompleteBody()
            buf += data

    async def _expect_end(self) -> None:
        """Nothing may follow the end of the framing."""
        if self._buffer or await self._read(1):
            raise _garbage("unexpected data after the final chunk")

    async def _chunked(self) -> AsyncIterator[bytes]:
        auth = self._auth
        signed = auth.payload_mode in _SIGNED_MODES
        declared_text = self._headers.get("x-amz-decoded-content-length")
        declared: int | None = None
        if declared_text is not None:
            declared = decimal(declared_text)
            if declared is None:
                raise errors.InvalidArgument("Invalid x-amz-decoded-content-length",
                                             ArgumentName="x-amz-decoded-content-length")
        previous = auth.seed_signature
        buf = self._buffer
        while True:
            header = await self._line(MAX_CHUNK_LINE)
            assert header is not None
            size, signature = _parse_chunk_header(header)
            if signed and (signature is None or not _HEX64.fullmatch(signature)):
                raise errors.SignatureDoesNotMatch("The chunk signature is missing or "
                                                   "malformed.")
            if declared is not None and self._decoded + size > declared:
                raise errors.IncompleteBody("The chunks carry more data than "
                                            "x-amz-decoded-content-length declares.")
            digest = hashlib.sha256() if signed else None
            remaining = size
            while remaining:
                if buf:  # bytes already read ahead while looking for the header line
                    take = min(len(buf), remaining)
                    data = bytes(buf[:take])
                    del buf[:take]
                else:
                    data = await self._read(min(remaining, BLOCK))
                    if not data:
                        raise errors.IncompleteBody()
                remaining -= len(data)
                if digest is not None:
                    digest.update(data)
                self._decoded += len(data)
                yield data
            if digest is not None:
                assert signature is not None
                previous = self._check_chunk(previous, digest.hexdigest(), signature)
            if size:
                if await self._line(MAX_CHUNK_LINE) != b"":
                    raise _garbage("chunk data is not followed by CRLF")
                continue
            # The final, empty chunk.
            if auth.payload_mode.has_trailer:
                await self._read_trailers(signed, previous)
            elif await self._line(MAX_CHUNK_LINE, eof_ok=True) not in (b"", None):
                raise _garbage("the final chunk is not followed by CRLF")
            await self._expect_end()
            break
        if declared is not None and self._decoded != declared:
            raise errors.IncompleteBody("The decoded body is shorter than "
                                        "x-amz-decoded-content-length declares.")

    def _check_chunk(self, previous: str, data_sha256: str, signature: str) -> str:
        auth = self._auth
        string_to_sign = (f"AWS4-HMAC-SHA256-PAYLOAD\n{auth.amz_date}\n{auth.scope}\n"
                          f"{previous}\n{EMPTY_SHA256}\n{data_sha256}")
        expected = sign(auth.signing_key, string_to_sign)
        if not hmac.compare_digest(expected, signature):
            raise errors.SignatureDoesNotMatch("The chunk signature does not match.")
        return signature

    async def _read_trailers(self, signed: bool, previous: str) -> None:
        total = 0
        signature: str | None = None
        while True:
            # Lenient: some clients end the body right after the last trailer line.
            line = await self._line(MAX_TRAILERS, eof_ok=True)
            if not line:
                break
            total += len(line) + 2
            if total > MAX_TRAILERS:
                raise _garbage("trailers too large")
            name_bytes, colon, value_bytes = line.partition(b":")
            try:
                name = name_bytes.strip().lower().decode("ascii")
                value = value_bytes.strip().decode("ascii")
            except UnicodeDecodeError as exc:
                raise _garbage("trailer is not ASCII") from exc
            if not colon or not name:
                raise _garbage("trailer line without a name")
            if signature is not None:
                raise _garbage("trailer after x-amz-trailer-signature")
            if name == "x-amz-trailer-signature":
                signature = value
            else:
                self._trailers[name] = value
        if not signed:
            return  # an unsigned trailer's signature line (if any) has nothing to verify
        if signature is None or not _HEX64.fullmatch(signature):
            raise errors.SignatureDoesNotMatch("The trailer signature is missing or "
                                               "malformed.")
        auth = self._auth
        canonical = "".join(f"{n}:{v}\n" for n, v in sorted(self._trailers.items()))
        string_to_sign = (f"AWS4-HMAC-SHA256-TRAILER\n{auth.amz_date}\n{auth.scope}\n"
                          f"{previous}\n{hashlib.sha256(canonical.encode()).hexdigest()}")
        expected = sign(auth.signing_key, string_to_sign)
        if not hmac.compare_digest(expected, signature):
            raise errors.SignatureDoesNotMatch("The trailer signature does not match.")


def _parse_chunk_header(line: bytes) -> tuple[int, str | None]:
    """``hex-size[;ext=value...]`` -> (size, chunk-signature or None)."""
    size_text, _, extensions = line.partition(b";")
    size_text = size_text.strip()
    if not _CHUNK_SIZE.fullmatch(size_text):
        raise _garbage("bad chunk size")
    signature: str | None = None
    if extensions:
        for extension in extensions.split(b";"):
            name, _, value = extension.partition(b"=")
            if name.strip() == b"chunk-signature":
                signature = value.strip().decode("ascii", "replace")
    return int(size_text, 16), signature
