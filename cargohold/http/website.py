"""The static website endpoint: ``<bucket>.<region>-static.<domain>``.

Every request is anonymous (any signature is ignored) and reads only what anonymous users
may read, through the same access check as the S3 API (ACLs and the bucket policy). Only
GET and HEAD are served; every answer is a page, a redirect or an object, never S3 XML:
errors are HTML pages, and 403/404 serve the bucket's ErrorDocument when it is readable.
The decisions (index documents, routing rules, error pages) are :mod:`cargohold.website`'s;
objects are read by the API's own GetObject/HeadObject handler, so ranges, conditional
requests and the response headers are exactly the API's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from cargohold import access, errors, operations
from cargohold.auth import PayloadReader
from cargohold.auth.model import ANONYMOUS, AuthResult
from cargohold.handlers import objects
from cargohold.handlers.context import Context, Reply, Services
from cargohold.http.addressing import Address
from cargohold.http.conditions import condition_context
from cargohold.store.base import Bucket, ObjectRecord
from cargohold.website import ERROR_DOCUMENT_STATUSES, WebsiteConfig, error_page, folder_location

log = logging.getLogger("cargohold.website")

METHODS = ("GET", "HEAD")
# Stored with the object by PutObject (objects.STORED_HEADERS); the website answers 301 to it.
REDIRECT_HEADER = "x-amz-website-redirect-location"
# Redirect targets S3 accepts in that header: another page of the site, or a URL.
_REDIRECT_PREFIXES = ("/", "http://", "https://")
# The ErrorDocument is sent whole, whatever the failed request asked for.
_READ_CONDITIONS = ("Range", "If-Match", "If-None-Match", "If-Modified-Since",
                    "If-Unmodified-Since")
SSE_C_REFUSED = ("The website endpoint does not serve objects encrypted with a "
                 "customer-provided key.")
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
_LIST = operations.ALL_OPERATIONS["ListObjects"]


@functools.lru_cache(maxsize=256)
def _config(text: str) -> WebsiteConfig:
    return WebsiteConfig.from_json(text)


async def serve(request: web.BaseRequest, request_id: str, address: Address,
                services: Services, bucket: Bucket | None) -> Reply:
    """Answer one request to the website endpoint (never raises an ``S3Error``);
    ``bucket`` is the one ``address`` names, as the dispatcher loaded it."""
    site = _Site(request, request_id, services)
    try:
        return await site.serve(address, bucket)
    except errors.S3Error as exc:
        return site.error(exc)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("internal error serving the website %s %s", request.method,
                      request.path)
        return site.error(errors.InternalError())


class _Site:
    """One website request: the bucket and configuration it found, and how to answer."""

    def __init__(self, request: web.BaseRequest, request_id: str, services: Services) -> None:
        self.request = request
        self.request_id = request_id
        self.services = services
        self.bucket: Bucket | None = None
        self.config = WebsiteConfig()
        self.operation = operations.ALL_OPERATIONS[
            "HeadObject" if request.method == "HEAD" else "GetObject"]

    async def serve(self, address: Address, bucket: Bucket | None) -> Reply:
        method = self.request.method
        if method not in METHODS:
            raise errors.MethodNotAllowed(Method=method, ResourceType="OBJECT")
        name = address.bucket or ""
        if bucket is None:
            raise errors.NoSuchBucket(BucketName=name)
        if bucket.website is None:
            raise errors.NoSuchWebsiteConfiguration(BucketName=name)
        self.bucket = bucket
        self.config = config = _config(bucket.website)
        scheme = "https" if self.request.secure else "http"
        if config.redirect_all is not None:
            path = self.request.raw_path.partition("?")[0]
            return _redirect(301, config.redirect_all.location(path, scheme))
        key = address.key or ""
        host = self.request.headers.get("Host", "")
        rule = config.rule_for(key)
        if rule is not None:
            return _redirect(rule.status, rule.location(key, scheme, host))
        try:
            return await self._page(key)
        except errors.S3Error as exc:
            rule = config.rule_for(key, exc.status)
            if rule is not None:
                return _redirect(rule.status, rule.location(key, scheme, host))
            if exc.status in ERROR_DOCUMENT_STATUSES and config.error_key is not None:
                return await self._error_document(exc, config.error_key)
            raise

    async def _page(self, key: str) -> Reply:
        """The object ``key`` names (its index document for a folder), or why not."""
        bucket = self._bucket()
        object_key = self.config.index_key(key)
        store = self.services.store
        record = await store.get_object(bucket.name, object_key)
        if record is None:
            if object_key == key and key:
                folder_key = self.config.folder_index_key(key)
                folder = await store.get_object(bucket.name, folder_key)
                if folder is not None:
                    # A folder asked for without its slash: S3 sends the browser to the
                    # folder, if its index may be read (else the redirect would tell
                    # strangers which private folders exist).
                    await self._authorize(self.operation, folder_key, folder)
                    return _redirect(302, folder_location(key))
            # As on the API: whoever may not list the bucket learns nothing about which
            # keys exist, and gets 403 instead of 404.
            await self._authorize(_LIST, None, None)
            raise errors.NoSuchKey(Key=object_key)
        return await self._object(object_key, record, self.request.headers)

    async def _object(self, key: str, record: ObjectRecord,
                      headers: CIMultiDictProxy[str]) -> Reply:
        """A readable object: its redirect, or its bytes read as the API reads them."""
        await self._authorize(self.operation, key, record)
        location = record.headers.get(REDIRECT_HEADER)
        if location is not None and location.startswith(_REDIRECT_PREFIXES):
            return _redirect(301, location)
        if record.sse:
            # Its key would have to travel with every page view: not a public page.
            raise errors.InvalidRequest(SSE_C_REFUSED)
        auth = AuthResult(principal=ANONYMOUS)
        ctx = Context(
            request_id=self.request_id, method=self.request.method, operation=self.operation,
            bucket_name=self._bucket().name, key=key, query=_NO_QUERY, headers=headers,
            auth=auth, services=self.services,
            body=PayloadReader(self.request.content, auth, headers), content_length=None,
            bucket=self._bucket(), conditions=self._conditions,
            remote=self.request.remote or "", secure=self.request.secure,
            target=_loaded(record),
        )
        return await objects.get_or_head_object(ctx)

    async def _error_document(self, exc: errors.S3Error, error_key: str) -> Reply:
        """The bucket's ErrorDocument with the status of ``exc``, or S3's page saying why
        it could not be sent either."""
        record = await self.services.store.get_object(self._bucket().name, error_key)
        if record is None:
            return self.error(exc, ("NoSuchKey", errors.NoSuchKey.default_message, error_key))
        plain = CIMultiDict(self.request.headers)
        for name in _READ_CONDITIONS:
            plain.popall(name, None)
        try:
            reply = await self._object(error_key, record, CIMultiDictProxy(plain))
        except errors.S3Error as failure:
            return self.error(exc, (failure.code, failure.message, error_key))
        if reply.status == 200:
            reply.status = exc.status
            reply.headers.update(_error_headers(exc))
        return reply

    async def _authorize(self, operation: operations.Operation, key: str | None,
                         record: ObjectRecord | None) -> None:
        await access.authorize(ANONYMOUS, operation, self._bucket(), key,
                               context=self._conditions, target=_loaded(record))

    def _conditions(self) -> Mapping[str, Sequence[str]]:
        return condition_context(self.request, ANONYMOUS)

    def _bucket(self) -> Bucket:
        assert self.bucket is not None  # set before any object is looked up
        return self.bucket

    def error(self, exc: errors.S3Error,
              error_document: tuple[str, str, str] | None = None) -> Reply:
        """S3's HTML error page for ``exc`` (headers only for HEAD)."""
        status = exc.status
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        if status == 500:
            reason = "Service Error"  # S3's words
        page = error_page(status, reason, exc.code, exc.message, exc.fields, self.request_id,
                          error_document)
        headers = {"Content-Type": "text/html; charset=utf-8", **_error_headers(exc)}
        if status == 405:
            headers["Allow"] = ", ".join(METHODS)
        body = b"" if self.request.method == "HEAD" else page
        return Reply(status=status, headers=headers, body=body, content_length=len(page))


def _error_headers(exc: errors.S3Error) -> dict[str, str]:
    # S3 names the error in headers too, so a HEAD (no body) still says what went wrong.
    return {"x-amz-error-code": exc.code, "x-amz-error-message": exc.message}


def _redirect(status: int, location: str) -> Reply:
    return Reply(status=status, headers={"Location": location}, content_length=0)


def _loaded(record: ObjectRecord | None) -> access.ObjectLoader:
    """A loader that answers with a record already read (one read per page view)."""
    async def load() -> ObjectRecord | None:
        return record

    return load
