"""Lean S3 load-generation client: a SigV4 signer and a keep-alive HTTP/1.1 connection.

Why not ``aiohttp.ClientSession``?  On a 2-core machine the client shares the CPU with
the server under test, so every microsecond the client spends per request is taken from
the server.  ``aiohttp.ClientSession`` costs roughly 100-150 µs of client CPU per small
request; the raw ``asyncio.BufferedProtocol`` connection below costs a fraction of that
(``bench.py --phases client`` measures both against nginx), and it can stream large bodies
with ``sendfile(2)`` and drain large responses into one reused buffer, so it does not
become the bottleneck for 256 MiB transfers either.

The client speaks just enough HTTP/1.1 for the benchmark: one request in flight per
connection (no pipelining), ``Content-Length`` or ``chunked`` response bodies, HEAD, and
reconnect-on-close.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class SigV4Signer:
    """AWS Signature Version 4 header signer for path-style S3 requests.

    The derived signing key is cached per UTC date and the ``x-amz-date`` string per
    second, so signing a request costs two SHA-256 computations and one HMAC.
    """

    def __init__(
        self, access_key: str, secret_key: str, region: str = "us-east-1", service: str = "s3"
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.service = service
        self._key_date = ""
        self._key = b""
        self._amz_second = -1
        self._amz_date = ""

    def _signing_key(self, date: str) -> bytes:
        if date != self._key_date:
            k = hmac.new(("AWS4" + self.secret_key).encode(), date.encode(), "sha256").digest()
            for part in (self.region, self.service, "aws4_request"):
                k = hmac.new(k, part.encode(), "sha256").digest()
            self._key, self._key_date = k, date
        return self._key

    def _now(self) -> str:
        second = int(time.time())
        if second != self._amz_second:
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._amz_second = second
        return self._amz_date

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: Mapping[str, str] | None = None,
        payload_hash: str = UNSIGNED_PAYLOAD,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Return the headers (Host, x-amz-*, Authorization) that authenticate a request.

        ``path`` must already be URI-encoded (see :func:`encode_path`); ``query`` values
        are raw and are encoded here exactly as they must appear on the wire.  ``headers``
        (e.g. ``x-amz-copy-source``, which S3 requires to be signed) are signed too and
        included in the result.
        """
        amz_date = self._now()
        date = amz_date[:8]
        canonical_query = canonical_query_string(query)
        if headers:
            signed = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
            signed.update((k.lower(), v.strip()) for k, v in headers.items())
            names = sorted(signed)
            signed_headers = ";".join(names)
            canonical = (
                f"{method}\n{path}\n{canonical_query}\n"
                + "".join(f"{n}:{signed[n]}\n" for n in names)
                + f"\n{signed_headers}\n{payload_hash}"
            )
        else:
            signed_headers = "host;x-amz-content-sha256;x-amz-date"
            canonical = (
                f"{method}\n{path}\n{canonical_query}\n"
                f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n\n"
                f"{signed_headers}\n{payload_hash}"
            )
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self._signing_key(date), to_sign.encode(), "sha256").hexdigest()
        return {
            "Host": host,
            "x-amz-content-sha256": payload_hash,
            "x-amz-date": amz_date,
            **(headers or {}),
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={signature}"
            ),
        }


def encode_path(path: str) -> str:
    """URI-encode an S3 path the way SigV4 canonicalises it (``/`` kept)."""
    return quote(path, safe="/-_.~")


def canonical_query_string(query: Mapping[str, str] | None) -> str:
    """Sorted, fully encoded ``k=v&k=v`` string (also usable as the request's query)."""
    if not query:
        return ""
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )


@dataclass
class FileBody:
    """A request body sent with ``sendfile(2)``: ``count`` bytes of ``path`` from ``offset``,
    repeated ``repeat`` times (so a 2 GiB body can come from a 256 MiB file)."""

    path: str
    count: int
    offset: int = 0
    repeat: int = 1

    @property
    def length(self) -> int:
        return self.count * self.repeat


@dataclass
class Response:
    """A parsed response; ``body`` is empty when the body was drained (``keep_body=False``)."""

    status: int
    headers: dict[str, str]
    body: bytes
    body_len: int


class HTTPError(Exception):
    """Protocol-level failure (connection closed mid-response, malformed response)."""


@dataclass
class _State:
    waiter: asyncio.Future[Response] | None = None
    head: bytearray = field(default_factory=bytearray)
    in_body: bool = False
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    remaining: int = 0
    chunked: bool = False
    raw_chunked: bytearray = field(default_factory=bytearray)
    keep_body: bool = True
    body: bytearray = field(default_factory=bytearray)
    body_len: int = 0


class _Protocol(asyncio.BufferedProtocol):
    """Response parser that reads straight into one reused 256 KiB buffer."""

    def __init__(self) -> None:
        self._buf = bytearray(1 << 18)
        self._view = memoryview(self._buf)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.st = _State()
        self.expect_no_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.st.waiter
        if w is not None and not w.done():
            w.set_exception(HTTPError(f"connection lost: {exc!r}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self._feed(self._view[:nbytes])
        except Exception as exc:  # pragma: no cover - defensive
            w = self.st.waiter
            if w is not None and not w.done():
                w.set_exception(exc)

    def eof_received(self) -> bool | None:
        return None

    # -- parsing -------------------------------------------------------------------------
    def _feed(self, data: memoryview) -> None:
        st = self.st
        if st.waiter is None:
            raise HTTPError("unexpected data with no request in flight")
        if not st.in_body:
            st.head += data
            end = st.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(st.head[:end]))
            rest = memoryview(bytes(st.head[end + 4 :]))
            st.head.clear()
            st.in_body = True
            if st.remaining == 0 and not st.chunked:
                self._finish()
                return
            data = rest
            if not data:
                return
        if st.chunked:
            st.raw_chunked += data
            self._try_dechunk()
            return
        take = len(data) if len(data) <= st.remaining else st.remaining
        if st.keep_body:
            st.body += data[:take]
        st.body_len += take
        st.remaining -= take
        if st.remaining == 0:
            self._finish()

    def _parse_head(self, head: bytes) -> None:
        st = self.st
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        st.status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        st.headers = headers
        if self.expect_no_body or st.status in (204, 304) or 100 <= st.status < 200:
            st.remaining = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            st.chunked = True
        elif "content-length" in headers:
            st.remaining = int(headers["content-length"])
        else:
            raise HTTPError("response without Content-Length or chunked encoding")

    def _try_dechunk(self) -> None:
        """Consume every complete chunk buffered so far; finish on the last chunk."""
        st = self.st
        raw = st.raw_chunked
        pos = 0
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(bytes(raw[pos:eol]).split(b";")[0], 16)
            if size == 0:
                if raw.find(b"\r\n\r\n", eol) < 0:
                    break
                del raw[:]
                self._finish()
                return
            start = eol + 2
            if len(raw) < start + size + 2:
                break
            if st.keep_body:
                st.body += raw[start : start + size]
            st.body_len += size
            pos = start + size + 2
        del raw[:pos]

    def _finish(self) -> None:
        st = self.st
        resp = Response(st.status, st.headers, bytes(st.body), st.body_len)
        w = st.waiter
        self.st = _State()
        if w is not None and not w.done():
            w.set_result(resp)


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects transparently after a close."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}"
        self._proto: _Protocol | None = None

    async def _ensure(self) -> _Protocol:
        if self._proto is None or self._proto.closed:
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_connection(_Protocol, self.host, self.port)
            self._proto = proto
        return self._proto

    async def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | FileBody | None = None,
        keep_body: bool = True,
    ) -> Response:
        """Send one request and wait for the whole response.

        ``target`` is the encoded path plus optional ``?query``.  ``keep_body=False``
        drains the response body without storing it (only its length is returned).
        """
        proto = await self._ensure()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        proto.st = _State(waiter=waiter, keep_body=keep_body)
        proto.expect_no_body = method == "HEAD"
        length = 0 if body is None else (len(body) if isinstance(body, bytes) else body.length)
        lines = [f"{method} {target} HTTP/1.1"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if body is not None or method in ("PUT", "POST"):
            lines.append(f"Content-Length: {length}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport = proto.transport
        assert transport is not None
        if isinstance(body, FileBody):
            transport.write(head)
            with open(body.path, "rb") as f:
                for _ in range(body.repeat):
                    await loop.sendfile(transport, f, body.offset, body.count)
        elif body:
            transport.write(head + body)
        else:
            transport.write(head)
        resp = await waiter
        if resp.headers.get("connection", "").lower() == "close":
            self.close()
        return resp

    def close(self) -> None:
        """Close the underlying socket (a later request reconnects)."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class ThreadedConnection(Connection):
    """A blocking-socket connection driven from a worker thread, for large transfers.

    With one transfer in flight, a blocking ``recv_into`` of a 256 KiB buffer drains a
    response at ~2x the rate (and ~1/3 of the CPU per GB) of the event-loop transport,
    which wakes up for every few loopback segments.  Bodies are sent with ``sendfile(2)``.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._sock: socket.socket | None = None
        self._buf = bytearray(1 << 18)

    async def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | FileBody | None = None,
        keep_body: bool = True,
    ) -> Response:
        return await asyncio.to_thread(self._request, method, target, headers, body, keep_body)

    def _request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | FileBody | None,
        keep_body: bool,
    ) -> Response:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port))
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = self._sock
        length = 0 if body is None else (len(body) if isinstance(body, bytes) else body.length)
        lines = [f"{method} {target} HTTP/1.1"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if body is not None or method in ("PUT", "POST"):
            lines.append(f"Content-Length: {length}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if isinstance(body, FileBody):
                sock.sendall(head)
                with open(body.path, "rb") as f:
                    for _ in range(body.repeat):
                        sent = 0
                        while sent < body.count:
                            n = os.sendfile(
                                sock.fileno(), f.fileno(), body.offset + sent, body.count - sent
                            )
                            if n == 0:
                                raise HTTPError("sendfile: source file too short")
                            sent += n
            else:
                sock.sendall(head + (body or b""))
            proto = _Protocol()
            proto.expect_no_body = method == "HEAD"
            result: list[Response] = []
            proto.st = _State(waiter=_SyncWaiter(result), keep_body=keep_body)  # type: ignore[arg-type]
            view = memoryview(self._buf)
            while not result:
                n = sock.recv_into(view)
                if n == 0:
                    raise HTTPError("connection closed mid-response")
                proto._feed(view[:n])
        except BaseException:
            self.close()
            raise
        resp = result[0]
        if resp.headers.get("connection", "").lower() == "close":
            self.close()
        return resp

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None


class _SyncWaiter:
    """Minimal stand-in for a Future so :class:`_Protocol` can be used synchronously."""

    def __init__(self, sink: list[Response]) -> None:
        self._sink = sink

    def done(self) -> bool:
        return bool(self._sink)

    def set_result(self, resp: Response) -> None:
        self._sink.append(resp)

    def set_exception(self, exc: BaseException) -> None:
        raise exc


class S3Client:
    """Signed path-style S3 requests over :class:`Connection` objects."""

    def __init__(self, host: str, port: int, access_key: str, secret_key: str) -> None:
        self.host = host
        self.port = port
        self.signer = SigV4Signer(access_key, secret_key)
        self.host_header = f"{host}:{port}"

    def connection(self) -> Connection:
        """A new (lazily connected) keep-alive connection to the server."""
        return Connection(self.host, self.port)

    def signed(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        payload_hash: str = UNSIGNED_PAYLOAD,
        extra: Iterable[tuple[str, str]] = (),
        signed_extra: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Return ``(target, headers)`` for a signed request on ``path`` (unencoded).

        ``extra`` headers are sent unsigned; ``signed_extra`` ones are sent and signed.
        """
        enc = encode_path(path)
        headers = self.signer.sign(method, self.host_header, enc, query, payload_hash, signed_extra)
        headers.update(extra)
        qs = canonical_query_string(query)
        return (f"{enc}?{qs}" if qs else enc), headers

    async def put_bytes(
        self, conn: Connection, path: str, data: bytes, sign_payload: bool = True
    ) -> Response:
        """PUT a small in-memory body (payload SHA-256 signed unless told otherwise)."""
        ph = hashlib.sha256(data).hexdigest() if sign_payload else UNSIGNED_PAYLOAD
        target, headers = self.signed("PUT", path, payload_hash=ph)
        return await conn.request("PUT", target, headers, data)

    async def put_file(
        self, conn: Connection, path: str, body: FileBody, payload_hash: str = UNSIGNED_PAYLOAD
    ) -> Response:
        """PUT a body streamed from a file with ``sendfile(2)``."""
        target, headers = self.signed("PUT", path, payload_hash=payload_hash)
        return await conn.request("PUT", target, headers, body)


def sha256_file(path: str, repeat: int = 1) -> str:
    """Hex SHA-256 of a file's content repeated ``repeat`` times (for signed large PUTs)."""
    h = hashlib.sha256()
    for _ in range(repeat):
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def make_random_file(path: str, size: int) -> None:
    """Write ``size`` random (incompressible) bytes to ``path``."""
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            n = min(left, len(block))
            # vary each MiB so no two blocks are identical (defeats dedup)
            f.write(i.to_bytes(8, "little") + block[8:n] if n > 8 else block[:n])
            left -= n
            i += 1
