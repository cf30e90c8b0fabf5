"""Raw HTTP for edge cases: requests signed by botocore's own signers, sent with http.client.

Chunked (aws-chunked) bodies are framed and signed here following the AWS SigV4 streaming
specification, seeded with the signature botocore computes for the headers.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from unittest import mock
from urllib.parse import urlsplit

from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def send(method: str, url: str, headers: dict[str, str] | None = None,
         body: bytes = b"") -> Response:
    """Send exactly these headers and body (no client-side rewriting)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        sent = {k.lower() for k in (headers or {})}
        if "host" not in sent:
            conn.putheader("Host", parts.netloc)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if (body or method in ("PUT", "POST")) and "content-length" not in sent:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def open_request(port: int, method: str, target: str, headers: dict[str, str],
                 extra: list[str]) -> socket.socket:
    """A connection with a request head sent and no body yet (for Expect and truncation)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", *extra]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def credentials(access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Credentials:
    return Credentials(access_key, secret_key)


def sign_v4(method: str, url: str, headers: dict[str, str] | None = None,
            body: bytes = b"", payload_hash: str | None = None,
            creds: Credentials | None = None, when: datetime | None = None) -> dict[str, str]:
    """Headers for a SigV4 header-signed request (botocore's signer)."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    content_sha256 = payload_hash or hashlib.sha256(body).hexdigest()

    class _Signer(S3SigV4Auth):
        # botocore picks x-amz-content-sha256 itself; edge cases need to choose it.
        def payload(self, request: AWSRequest) -> str:
            return content_sha256

    signer = _Signer(creds or credentials(), "s3", REGION)
    if when is None:
        signer.add_auth(request)
    else:
        # botocore reads the clock itself; pin it to sign for another moment (skew tests).
        pinned = when.astimezone(UTC).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", lambda: pinned):
            signer.add_auth(request)
    return dict(request.headers.items())


def presign_v4(method: str, url: str, expires: int = 300) -> str:
    """A SigV4 presigned URL for ``url`` (query parameters in it are signed too)."""
    request = AWSRequest(method=method, url=url)
    S3SigV4QueryAuth(credentials(), "s3", REGION, expires=expires).add_auth(request)
    return str(request.url)


def sign_v2(method: str, url: str, headers: dict[str, str] | None = None,
            creds: Credentials | None = None, auth_path: str | None = None) -> dict[str, str]:
    """SigV2 headers; ``auth_path`` is the /bucket/key resource for virtual-host URLs."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    if auth_path is not None:
        request.auth_path = auth_path
    HmacV1Auth(creds or credentials()).add_auth(request)
    return dict(request.headers.items())


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, REGION)
    key = _hmac(key, "s3")
    return _hmac(key, "aws4_request")


def chunked_upload(url: str, payload: bytes, chunk_size: int = 65536,
                   trailer: tuple[str, str] | None = None, signed: bool = True,
                   tamper_chunk: int | None = None, extra_headers: dict[str, str] | None = None,
                   decoded_length: int | None = None,
                   content_encoding: bool = True) -> tuple[dict[str, str], bytes]:
    """Headers and an aws-chunked body, signed chunk by chunk when ``signed``."""
    if signed:
        mode = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" if trailer
                else "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    else:
        mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = {"x-amz-decoded-content-length": str(
                   len(payload) if decoded_length is None else decoded_length),
               **(extra_headers or {})}
    if content_encoding:
        headers["Content-Encoding"] = "aws-chunked"
    if trailer:
        headers["x-amz-trailer"] = trailer[0]
    now = datetime.now(UTC)
    signed_headers = sign_v4("PUT", url, headers, payload_hash=mode, when=now)
    seed = signed_headers["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = signed_headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    key = signing_key(SECRET_KEY, amz_date[:8])
    previous = seed
    framed = bytearray()
    pieces = [payload[i:i + chunk_size] for i in range(0, len(payload), chunk_size)] + [b""]
    for index, piece in enumerate(pieces):
        if signed:
            to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous,
                                 EMPTY_SHA256, hashlib.sha256(piece).hexdigest()])
            signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            if tamper_chunk == index:
                signature = "0" * 64
            previous = signature
            framed += f"{len(piece):x};chunk-signature={signature}\r\n".encode()
        else:
            framed += f"{len(piece):x}\r\n".encode()
        if piece:
            framed += piece + b"\r\n"
    if trailer:
        trailer_line = f"{trailer[0]}:{trailer[1]}"
        framed += trailer_line.encode() + b"\r\n"
        if signed:
            to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                                 hashlib.sha256((trailer_line + "\n").encode()).hexdigest()])
            signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            framed += f"x-amz-trailer-signature:{signature}\r\n".encode()
        framed += b"\r\n"
    else:
        framed += b"\r\n"
    signed_headers["Content-Length"] = str(len(framed))
    return signed_headers, bytes(framed)
