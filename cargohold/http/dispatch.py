"""One function per request: addressing -> auth -> operation -> access -> handler -> reply.

This is the only module that sees aiohttp requests; it owns the cross-cutting concerns:
request ids, error XML, ``Expect: 100-continue`` after authentication, and rendering a
handler's :class:`Reply` (bytes, or file segments sent with ``sendfile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import random
import time
from collections.abc import Mapping, MutableMapping, Sequence
from typing import cast

from aiohttp import web
from aiohttp.http import HttpVersion11, RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy

from cargohold import access, accesslog, cors, errors, operations, xmlutil
from cargohold.auth import PayloadReader, SignedRequest, authenticate
from cargohold.auth.model import AuthResult
from cargohold.handlers import HANDLERS
from cargohold.handlers.context import Context, Reply, Services, object_loader
from cargohold.http.addressing import Address, Addressing
from cargohold.http.conditions import condition_context
from cargohold.http.sendfile import StreamedResponse, file_response
from cargohold.http.website import serve as serve_website
from cargohold.logdelivery import RecordBuffer
from cargohold.numbers import decimal
from cargohold.store.base import Bucket, LogRecord

log = logging.getLogger("cargohold.http")

SERVER_NAME = "cargohold"
# Request storage keys: "100 Continue" was sent; the Bucket the request path loaded (or
# None); the bucket the request names.
_CONTINUED = web.RequestKey("continued", bool)
_BUCKET = web.RequestKey("bucket", object)  # Bucket | None
_BUCKET_NAME = web.RequestKey("bucket_name", object)  # str | None
# For the access log: the verified AuthResult, the S3 error code answered, and when the
# request body's last byte arrived (a list that gets one time.perf_counter()).
_AUTH = web.RequestKey("auth", AuthResult)
_ERROR_CODE = web.RequestKey("error_code", str)
_BODY_END = web.RequestKey("body_end", list)
_UNLOADED = object()  # request[_BUCKET] when the request never loaded its bucket


@functools.lru_cache(maxsize=256)
def _cors_config(text: str) -> cors.CorsConfig:
    return cors.CorsConfig.from_json(text)


class Dispatcher:
    """The aiohttp request handler for the S3 API."""

    def __init__(self, services: Services, access_log: RecordBuffer | None = None) -> None:
        self.services = services
        settings = services.settings
        self.addressing = Addressing(settings.region, settings.domain)
        # This worker's access-log records, written to the store by server.py's flusher.
        self.access_log = access_log if access_log is not None else RecordBuffer(services.store)

    def is_point_read(self, message: RawRequestMessage) -> bool:
        """Whether the request reads one object (GET or HEAD of a key): quick, and with
        the SQLite store it never waits, so the connection may answer it inline."""
        if message.method not in ("GET", "HEAD"):
            return False
        try:
            address = self.addressing.resolve(message.headers.get("Host", ""),
                                              message.path.partition("?")[0])
        except UnicodeDecodeError:
            return False
        return address.key is not None and not address.website

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request; record it when its bucket keeps an access log."""
        started = time.perf_counter()
        if request.body_exists:
            # A list, not the request, in the callback: no reference cycle through it.
            body_end: list[float] = []
            request[_BODY_END] = body_end
            request.content.on_eof(lambda: body_end.append(time.perf_counter()))
        response = await self._respond(request)
        if _may_be_logged(request):
            await self._log_access(request, response, started)
        return response

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = new_request_id()
        resource = "/"
        try:
            raw_path, _, raw_query = request.raw_path.partition("?")
            resource = raw_path
            try:
                address = self.addressing.resolve(request.headers.get("Host", ""), raw_path)
            except UnicodeDecodeError as exc:
                raise errors.InvalidURI() from exc
            # Known before authentication, so a refused request still gets its bucket's
            # CORS headers and access-log record.
            request[_BUCKET_NAME] = address.bucket
            if address.website:
                # The static website endpoint: anonymous pages, never the S3 API.
                reply = await serve_website(request, request_id, address, self.services,
                                            await self._bucket_of(request))
                response = await self._render(request, request_id, reply)
            elif request.method == "OPTIONS":
                response = await self._preflight(request, request_id, address)
            else:
                reply = await self._handle(request, request_id, address, raw_path, raw_query)
                response = await self._render(request, request_id, reply)
        except errors.S3Error as exc:
            response = self._error_response(request, request_id, exc, resource)
        except ConnectionResetError:
            raise
        except Exception:
            log.exception("internal error handling %s %s", request.method, resource)
            response = self._error_response(request, request_id, errors.InternalError(),
                                            resource)
        if request.method != "OPTIONS" and "Origin" in request.headers:
            await self._add_cors_headers(request, response)
        if request.body_exists and not request.content.is_eof():
            # Answered before its body was read (refused, or a method that takes none): the
            # connection cannot carry another request (its next bytes may be leftover
            # body), so say it closes.
            response.force_close()
            if (request.headers.get("Expect", "").lower() == "100-continue"
                    and not request.get(_CONTINUED)):
                # The client waits for "100 Continue" and will never send the body: end it
                # here, or aiohttp would linger for it before closing.
                request.content.feed_eof()
        return response

    async def _bucket_of(self, request: web.BaseRequest) -> Bucket | None:
        """The request's bucket, read from the store at most once per request."""
        if _BUCKET not in request:
            name = request.get(_BUCKET_NAME)
            request[_BUCKET] = await self.services.store.get_bucket(name) if name else None
        return cast(Bucket | None, request[_BUCKET])

    async def _add_cors_headers(self, request: web.BaseRequest,
                                response: web.StreamResponse) -> None:
        """A matching CORS rule's headers on an actual (non-OPTIONS) response, errors too."""
        try:
            bucket = await self._bucket_of(request)
        except errors.S3Error:
            return
        if bucket is None or bucket.cors is None:
            return
        headers = request.headers
        method = headers.get("Access-Control-Request-Method", request.method)
        found = _cors_config(bucket.cors).actual(
            headers["Origin"], method, headers.getall("Access-Control-Request-Headers", []))
        if found:
            response.headers.update(found)

    async def _preflight(self, request: web.BaseRequest, request_id: str,
                         address: Address) -> web.StreamResponse:
        """OPTIONS: CORS preflight, answered from the bucket's rules without credentials."""
        headers = request.headers
        resource_type = "OBJECT" if address.key is not None else "BUCKET"
        try:
            origin = headers.get("Origin")
            if origin is None:
                raise cors.origin_needed()
            method = headers.get("Access-Control-Request-Method")
            bucket = await self._bucket_of(request)
            if bucket is None:
                raise cors.forbidden(cors.BUCKET_NOT_FOUND, method or "OPTIONS", "BUCKET")
            if bucket.cors is None:
                raise cors.forbidden(cors.NOT_ENABLED, method or "OPTIONS", "BUCKET")
            found = None
            if method is not None:
                found = _cors_config(bucket.cors).preflight(
                    origin, method, headers.getall("Access-Control-Request-Headers", []))
            if found is None:
                raise cors.forbidden(cors.NOT_ALLOWED, method or "OPTIONS", resource_type)
        except errors.S3Error as exc:
            return self._error_response(request, request_id, exc, request.path)
        reply_headers: CIMultiDict[str] = CIMultiDict(found)
        stamp(reply_headers, request_id)
        return web.Response(status=200, headers=reply_headers)

    async def _handle(self, request: web.BaseRequest, request_id: str, address: Address,
                      raw_path: str, raw_query: str) -> Reply:
        services = self.services
        method = request.method
        query = request.query
        headers = request.headers
        operation = operations.resolve(method, address.bucket, address.key, query, headers)
        auth = await authenticate(
            SignedRequest(method=method, raw_path=raw_path, raw_query=raw_query,
                          headers=headers, host_bucket=address.host_bucket),
            services.keys.get,
            max_skew=services.settings.max_skew_seconds,
        )
        request[_AUTH] = auth
        if auth.auth_type == "QueryString":
            headers = hoisted_headers(headers, query)
        handler = HANDLERS.get(operation.name)
        if handler is None:
            raise errors.NotImplementedError_(
                f"{operation.name if operation is not operations.UNKNOWN else 'This operation'}"
                " is not implemented by this server.")
        bucket = None
        if address.bucket is not None and operation.name != "CreateBucket":
            bucket = await self._bucket_of(request)
            if bucket is None and not auth.principal.is_anonymous:
                raise errors.NoSuchBucket(BucketName=address.bucket)
        principal = auth.principal

        def conditions() -> Mapping[str, Sequence[str]]:
            return condition_context(request, principal, headers)

        target = self._object_loader(bucket, address.key, query.get("versionId"))
        if not operation.authenticates_itself:
            await access.authorize(principal, operation, bucket, address.key,
                                   context=conditions, target=target,
                                   versioned="versionId" in query)
        content_length = _payload_length(request, auth.payload_mode.is_chunked)
        if operation.max_body is not None and content_length is not None:
            limit = min(operation.max_body, services.settings.max_object_size)
            if content_length > limit:
                raise errors.EntityTooLarge(ProposedSize=str(content_length),
                                            MaxSizeAllowed=str(limit))
        if (request.version == HttpVersion11
                and headers.get("Expect", "").lower() == "100-continue"):
            # Only now, after authentication, the access check and the size check, invite
            # the body: a refused upload is refused before it is sent.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request[_CONTINUED] = True
        ctx = Context(
            request_id=request_id, method=method, operation=operation,
            bucket_name=address.bucket, key=address.key, query=query, headers=headers,
            auth=auth, services=services,
            body=PayloadReader(request.content, auth, headers),
            content_length=content_length, bucket=bucket, conditions=conditions,
            remote=request.remote or "", secure=request.secure, target=target,
        )
        try:
            return await handler(ctx)
        except errors.NoSuchKey:
            if bucket is not None and principal.account_id != bucket.owner_id:
                # S3 tells a missing key from a forbidden one only to those who may list
                # the bucket; anyone else learns nothing about which keys exist.
                await access.authorize(principal, operations.ALL_OPERATIONS["ListObjects"],
                                       bucket, context=conditions)
            raise

    def _object_loader(self, bucket: Bucket | None, key: str | None,
                       version_id: str | None) -> access.ObjectLoader | None:
        if bucket is None or key is None:
            return None
        return object_loader(self.services.store, bucket.name, key, version_id)

    async def _render(self, request: web.BaseRequest, request_id: str,
                      reply: Reply) -> web.StreamResponse:
        headers = CIMultiDict(reply.headers)
        stamp(headers, request_id)
        if reply.segments is not None:
            return file_response(reply.segments, status=reply.status, headers=headers)
        if reply.stream is not None:
            return StreamedResponse(reply.stream, reply.content_length or 0,
                                    status=reply.status, headers=headers)
        if request.method == "HEAD":
            # The length a GET would send; aiohttp keeps an explicit header on HEAD.
            length = reply.content_length if reply.content_length is not None else 0
            headers["Content-Length"] = str(length)
            return web.Response(status=reply.status, headers=headers)
        if reply.status in (204, 304):
            return web.Response(status=reply.status, headers=headers)
        return web.Response(status=reply.status, headers=headers, body=reply.body)

    def _error_response(self, request: web.BaseRequest, request_id: str,
                        exc: errors.S3Error, resource: str) -> web.StreamResponse:
        request[_ERROR_CODE] = exc.code
        headers: CIMultiDict[str] = CIMultiDict(exc.headers)
        stamp(headers, request_id)
        if request.method == "HEAD":
            response = web.Response(status=exc.status, headers=headers)
        else:
            headers["Content-Type"] = "application/xml"
            body = xmlutil.error_document(exc.code, exc.message, resource, request_id,
                                          exc.fields)
            response = web.Response(status=exc.status, headers=headers, body=body)
        return response

    # ------------------------------------------------------------------ access log

    async def _log_access(self, request: web.BaseRequest, response: web.StreamResponse,
                          started: float) -> None:
        """Record the request in its bucket's access log (and a copy in its source's).

        Requests refused before their bucket was loaded (bad signatures, OPTIONS, website
        pages) look it up here, one inline read. The record is completed and buffered when
        the response has been sent (the request's task is done): nothing waits on I/O.
        """
        try:
            bucket = await self._bucket_of(request)
            source = (operations.copy_source(request.query, request.headers)
                      if request.method == "PUT" else None)
            if (bucket is None or bucket.logging is None) and source is None:
                return
            pending = await self._log_entries(request, response, started, bucket, source)
        except Exception:
            log.exception("access-log record of %s %s failed", request.method,
                          request.raw_path)
            return
        if not pending:
            return
        finish = functools.partial(self._finish_log, pending, started)
        task = asyncio.current_task()
        if task is None:
            finish(None)
        else:
            # aiohttp runs each request, handler and response writing, in its own task.
            task.add_done_callback(finish)

    async def _log_entries(
        self, request: web.BaseRequest, response: web.StreamResponse, started: float,
        bucket: Bucket | None, copy_source: str | None,
    ) -> list[tuple[str, str, accesslog.Entry]]:
        """(target bucket, prefix, entry) of each record the request makes, total time
        still unknown."""
        now = time.perf_counter()
        method = request.method
        headers = request.headers
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            address: Address | None = self.addressing.resolve(headers.get("Host", ""), raw_path)
        except UnicodeDecodeError:
            address = None
        operation = operations.UNKNOWN
        if address is None:
            name = accesslog.operation_name("", method, False)
        elif address.website:
            name = f"WEBSITE.{method}.OBJECT"
        else:
            operation = operations.resolve(method, address.bucket, address.key, request.query,
                                           headers)
            name = accesslog.operation_name(operation.name, method, address.key is not None)
        auth = cast(AuthResult | None, request.get(_AUTH))
        if auth is not None:
            requester = auth.principal.account_id or ""
            signature, auth_type = auth.signature_version or "", auth.auth_type or ""
        else:
            requester = ""
            signature, auth_type = accesslog.signature_of(headers.get("Authorization"),
                                                          raw_query)
        cipher = tls = ""
        ssl_object = (request.transport.get_extra_info("ssl_object")
                      if request.transport is not None else None)
        if ssl_object is not None:
            cipher, tls = ssl_object.cipher()[0], ssl_object.version() or ""
        status = response.status
        sends_body = method != "HEAD" and status not in (204, 304)
        try:
            declared = _payload_length(request, auth is not None and auth.payload_mode.is_chunked)
        except errors.S3Error:
            declared = None
        entry = accesslog.Entry(
            bucket_owner=bucket.owner_id if bucket is not None else "",
            bucket=bucket.name if bucket is not None else "",
            time=time.time() - (now - started), remote_ip=request.remote or "",
            requester=requester, request_id=response.headers.get("x-amz-request-id", ""),
            operation=name, key=address.key if address is not None else None,
            method=method, target=request.raw_path,
            protocol=f"HTTP/{request.version.major}.{request.version.minor}",
            # Website pages carry their error code in a header (they are HTML, not raised).
            status=status, error_code=cast(str, request.get(_ERROR_CODE, ""))
            or response.headers.get("x-amz-error-code", ""),
            bytes_sent=(response.content_length or 0) if sends_body else 0,
            object_size=accesslog.object_size(name, status,
                                              response.headers.get("Content-Range"),
                                              response.content_length, declared),
            total_ms=None,
            # From the request's last byte (or its start) to now, when the response is
            # handed to aiohttp to write.
            turnaround_ms=round((now - max([started, *request.get(_BODY_END, ())])) * 1000),
            referrer=headers.get("Referer", ""), user_agent=headers.get("User-Agent", ""),
            version_id=request.query.get("versionId", ""),
            host_id=response.headers.get("x-amz-id-2", ""), signature_version=signature,
            cipher_suite=cipher, auth_type=auth_type, host_header=headers.get("Host", ""),
            tls_version=tls,
        )
        pending: list[tuple[str, str, accesslog.Entry]] = []
        if bucket is not None and bucket.logging is not None:
            config = accesslog.stored_config(bucket.logging)
            pending.append((config.target_bucket, config.target_prefix, entry))
        copy_name = accesslog.COPY_SOURCE_OPERATIONS.get(operation.name)
        parsed: operations.CopySource | None = None
        if copy_source and copy_name:
            # Read as the handler read it; one it refused names no source to log into.
            with contextlib.suppress(errors.S3Error):
                parsed = operations.parse_copy_source(copy_source)
        if parsed is not None and copy_name is not None:
            source = await self.services.store.get_bucket(parsed.bucket)
            if source is not None and source.logging is not None:
                config = accesslog.stored_config(source.logging)
                pending.append((config.target_bucket, config.target_prefix, dataclasses.replace(
                    entry, bucket_owner=source.owner_id, bucket=source.name,
                    operation=copy_name, key=parsed.key, version_id=parsed.version_id or "",
                    bytes_sent=0, object_size=None)))
        return pending

    def _finish_log(self, pending: list[tuple[str, str, accesslog.Entry]], started: float,
                    _task: object) -> None:
        """The response is sent: fill in the total time, buffer the records."""
        now = time.time()
        total_ms = round((time.perf_counter() - started) * 1000)
        for target, prefix, entry in pending:
            entry.total_ms = total_ms
            self.access_log.add(LogRecord(target_bucket=target, target_prefix=prefix,
                                          line=accesslog.format_line(entry), created=now))


_REQUEST_ID_PREFIX = f"{random.getrandbits(32):08X}"  # per process (workers are spawned)
_request_numbers = itertools.count()


def new_request_id() -> str:
    """A request id: unique (a per-process random prefix and a counter), not secret."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFF:08X}"


def _may_be_logged(request: web.BaseRequest) -> bool:
    """False when the request certainly makes no access-log record: it loaded its bucket,
    which keeps no log, and copies nothing (the cost an unlogged bucket pays)."""
    bucket = request.get(_BUCKET, _UNLOADED)
    if bucket is _UNLOADED or (bucket is not None and bucket.logging is not None):
        return True
    return (request.method == "PUT"
            and operations.copy_source(request.query, request.headers) is not None)


# x-amz-* query parameters of a presigned URL that are not request headers in disguise: the
# signature's own, the body's framing, checksums (S3 neither checks nor stores a checksum
# signed into a URL: the AWS SDK for JavaScript signs the CRC32 of an empty body into every
# presigned PUT; x-amz-checksum-mode, a request for the stored one, is hoisted) and SSE, of
# the object or of a copy's source (keys travel as headers only, never in a URL).
_NOT_HOISTED = ("x-amz-algorithm", "x-amz-credential", "x-amz-signature", "x-amz-date",
                "x-amz-expires", "x-amz-signedheaders", "x-amz-security-token",
                "x-amz-content-sha256", "x-amz-decoded-content-length", "x-amz-trailer",
                "x-amz-checksum-", "x-amz-sdk-checksum-algorithm",
                "x-amz-server-side-encryption", "x-amz-copy-source-server-side-encryption")


def hoisted_headers(headers: CIMultiDictProxy[str],
                    query: Mapping[str, str]) -> CIMultiDictProxy[str]:
    """A presigned request's headers plus the ``x-amz-*`` headers its signer moved into the
    query string, as S3 takes them (the AWS SDK for JavaScript hoists every ``x-amz-*``
    header, so ``Metadata`` and ``Tagging`` of a presigned PutObject arrive as
    ``?x-amz-meta-color=blue&x-amz-tagging=...``); a header actually sent wins.

    Only lower-case names, as signers write them: query parameters are case-sensitive,
    and :func:`operations.copy_source`, which picked the operation, reads that spelling.
    """
    extra: dict[str, str] = {}
    for name, value in query.items():
        if (name.startswith("x-amz-") and name == name.lower()
                and (name == "x-amz-checksum-mode" or not name.startswith(_NOT_HOISTED))
                and name not in extra and name not in headers):
            extra[name] = value
    if not extra:
        return headers
    merged = CIMultiDict(headers)
    merged.extend(extra)
    return CIMultiDictProxy(merged)


def stamp(headers: MutableMapping[str, str], request_id: str) -> None:
    """The headers every response carries: its request id (twice, as S3) and the server."""
    headers["x-amz-request-id"] = request_id
    headers["x-amz-id-2"] = request_id
    headers["Server"] = SERVER_NAME


def _payload_length(request: web.BaseRequest, chunked: bool) -> int | None:
    """The object bytes the client declares (decoded length for aws-chunked bodies)."""
    if chunked:
        decoded = request.headers.get("x-amz-decoded-content-length")
        if decoded is None:
            return None
        length = decimal(decoded)
        if length is None:
            raise errors.InvalidArgument("Invalid x-amz-decoded-content-length",
                                         ArgumentName="x-amz-decoded-content-length")
        return length
    return request.content_length
