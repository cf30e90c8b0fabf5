"""One HTTP connection carrying many requests: pipelining, order, keep-alive, closing.

Bodiless requests on an idle connection are answered inline (cargohold/http/protocol.py),
everything else by aiohttp's own task; these tests mix the two on one connection and
check that every reply is the right one, in request order, and that the connection
closes exactly when HTTP says it does.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import socket
from typing import Any, BinaryIO

import pytest
from aiohttp import web

from cargohold.http.protocol import INLINE_CAPABLE, S3Server
from tests.rawhttp import sign_v4


class _SharedFile:
    """Lets http.client parse several responses from one buffered socket file (it would
    close the file after each)."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def _request_bytes(method: str, url: str, port: int, body: bytes = b"",
                   extra: dict[str, str] | None = None, version: str = "HTTP/1.1") -> bytes:
    headers = sign_v4(method, url, headers=extra, body=body)
    target = url.split(f":{port}", 1)[1]
    lines = [f"{method} {target} {version}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if "Host" not in headers:
        lines.append(f"Host: 127.0.0.1:{port}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _read_responses(sock: socket.socket, methods: list[str]) -> list[tuple[int, dict[str, str],
                                                                         bytes]]:
    fp = sock.makefile("rb")
    replies = []
    for method in methods:
        resp = http.client.HTTPResponse(_SharedFile(fp), method=method)  # type: ignore[arg-type]
        resp.begin()
        replies.append((resp.status, {k.lower(): v for k, v in resp.getheaders()},
                        resp.read()))
    return replies


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pipelined_reads_are_answered_in_order_with_their_own_bodies(server: Any, s3: Any,
                                                                      bucket: str) -> None:
    bodies = {f"k{i}": os.urandom(100 + i) for i in range(3)}
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    base = f"{server.endpoint}/{bucket}"
    batch = (_request_bytes("GET", f"{base}/k0", server.port)
             + _request_bytes("HEAD", f"{base}/k1", server.port)
             + _request_bytes("GET", f"{base}/missing", server.port)
             + _request_bytes("GET", f"{base}/k2", server.port))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(batch)
        replies = _read_responses(sock, ["GET", "HEAD", "GET", "GET"])
        assert [r[0] for r in replies] == [200, 200, 404, 200]
        assert replies[0][2] == bodies["k0"]
        assert replies[1][2] == b""
        assert replies[1][1]["content-length"] == str(len(bodies["k1"]))
        assert replies[1][1]["etag"] == f'"{hashlib.md5(bodies["k1"]).hexdigest()}"'
        assert b"<Code>NoSuchKey</Code>" in replies[2][2]
        assert replies[3][2] == bodies["k2"]
        # Each reply carries its own request id.
        assert len({r[1]["x-amz-request-id"] for r in replies}) == 4
        # The connection stays open for more.
        sock.sendall(_request_bytes("GET", f"{base}/k1", server.port))
        assert _read_responses(sock, ["GET"])[0][2] == bodies["k1"]


def test_an_upload_pipelined_between_reads_takes_effect_between_them(server: Any, s3: Any,
                                                                     bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    url = f"{server.endpoint}/{bucket}/k"
    batch = (_request_bytes("GET", url, server.port)
             + _request_bytes("PUT", url, server.port, body=b"new bytes")
             + _request_bytes("GET", url, server.port))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(batch)
        replies = _read_responses(sock, ["GET", "PUT", "GET"])
    assert [r[0] for r in replies] == [200, 200, 200]
    assert replies[0][2] == b"old"
    assert replies[2][2] == b"new bytes"
    assert replies[2][1]["etag"] == replies[1][1]["etag"]


def test_a_large_object_sent_from_its_file_keeps_later_replies_behind_it(
        server: Any, s3: Any, bucket: str) -> None:
    big = os.urandom(3 * 1024 * 1024 + 7)  # a blob file, sent with sendfile
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    s3.put_object(Bucket=bucket, Key="small", Body=b"tiny")
    base = f"{server.endpoint}/{bucket}"
    batch = (_request_bytes("GET", f"{base}/big", server.port)
             + _request_bytes("GET", f"{base}/small", server.port)
             + _request_bytes("GET", f"{base}/big", server.port, extra={"Range": "bytes=5-9"}))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(batch)
        replies = _read_responses(sock, ["GET", "GET", "GET"])
    assert [r[0] for r in replies] == [200, 200, 206]
    assert replies[0][2] == big
    assert replies[1][2] == b"tiny"
    assert replies[2][2] == big[5:10]


@pytest.mark.parametrize("version,extra", [("HTTP/1.0", {}),
                                           ("HTTP/1.1", {"Connection": "close"})])
def test_a_request_that_asks_to_close_gets_its_reply_then_the_connection_closes(
        server: Any, s3: Any, bucket: str, version: str, extra: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"payload")
    url = f"{server.endpoint}/{bucket}/k"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_request_bytes("GET", url, server.port, extra=extra, version=version))
        fp = sock.makefile("rb")
        resp = http.client.HTTPResponse(_SharedFile(fp), method="GET")  # type: ignore[arg-type]
        resp.begin()
        assert resp.status == 200
        assert resp.read() == b"payload"
        assert fp.read() == b""  # the server closed after the reply


def test_an_idle_keep_alive_connection_serves_requests_spaced_apart(server: Any, s3: Any,
                                                                   bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    url = f"{server.endpoint}/{bucket}/k"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for expected in (b"v1", b"v2"):
            sock.sendall(_request_bytes("GET", url, server.port))
            assert _read_responses(sock, ["GET"])[0][2] == expected
            s3.put_object(Bucket=bucket, Key="k", Body=b"v2")


# --------------------------------------------------------- the connection class itself


async def _serve(handler: Any) -> tuple[S3Server, web.ServerRunner, int]:
    server = S3Server(handler, answer_inline=lambda message: True, access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return server, runner, port


async def _exchange(port: int, payload: bytes, replies: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    received = b""
    while received.count(b"HTTP/1.1 ") < replies or not received.endswith(b"!"):
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        if not chunk:
            break
        received += chunk
    writer.close()
    return received


def test_the_installed_aiohttp_supports_answering_inline() -> None:
    # If an aiohttp upgrade moved the internals protocol.py relies on, the server still
    # works (the stock handler) but loses its fast path: this says so.
    assert INLINE_CAPABLE


def test_bodiless_requests_are_answered_inline_with_the_headers_aiohttp_would_send() -> None:
    async def scenario() -> None:
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            if request.path == "/slow":  # waits on the loop: the rest runs as a task
                await asyncio.sleep(0.05)
            return web.Response(body=f"{request.path}!".encode())

        server, runner, port = await _serve(handler)
        try:
            pipelined = b"".join(
                f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                for path in ("/a", "/slow", "/b"))
            received = await _exchange(port, pipelined, 3)
        finally:
            await runner.cleanup()
        replies = received.split(b"HTTP/1.1 ")[1:]
        assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in replies] == [b"/a!", b"/slow!", b"/b!"]
        head = replies[0].split(b"\r\n\r\n")[0].decode().split("\r\n")
        assert head[0] == "200 OK"
        names = {line.split(":")[0].lower() for line in head[1:]}
        assert {"content-length", "content-type", "date", "server"} <= names
        assert server.inline_requests == 3

    asyncio.run(scenario())


def test_requests_arriving_while_an_inline_reply_waits_are_answered_after_it_in_order() -> None:
    # The first request waits on the loop; the next ones arrive only then, as more bytes
    # than the hold limit and far more than aiohttp queues at once: held, then answered.
    count = 9000

    async def scenario() -> None:
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            if request.path == "/slow":
                await asyncio.sleep(0.2)
            return web.Response(body=f"{request.path}!".encode())

        server, runner, port = await _serve(handler)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)  # the slow reply is now pending
            burst = b"".join(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                             for i in range(count))
            assert len(burst) > 256 * 1024
            writer.write(burst)
            received = b""
            while received.count(b"HTTP/1.1 200") < count + 1:
                chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
                assert chunk, "connection closed early"
                received += chunk
            writer.close()
        finally:
            await runner.cleanup()
        bodies = [r.rsplit(b"\r\n\r\n", 1)[1] for r in received.split(b"HTTP/1.1 ")[1:]]
        assert bodies == [b"/slow!"] + [f"/{i}!".encode() for i in range(count)]
        assert server.inline_requests == count + 1

    asyncio.run(scenario())


def test_a_cancelled_inline_reply_closes_its_connection_and_stays_cancelled() -> None:
    async def scenario() -> None:
        waiting = asyncio.Event()

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            waiting.set()
            await asyncio.sleep(30)
            return web.Response(body=b"never")

        server, runner, port = await _serve(handler)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(waiting.wait(), 5)
            inline = [t for t in asyncio.all_tasks()
                      if t.get_coro().__qualname__ == "_resume"]  # type: ignore[union-attr]
            assert len(inline) == 1
            inline[0].cancel()
            await asyncio.wait([inline[0]], timeout=5)
            assert inline[0].cancelled()  # not swallowed: asyncio's contract holds
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no reply
            writer.close()
        finally:
            await runner.cleanup()
        assert server.inline_requests == 1

    asyncio.run(scenario())
