"""The plain read: a signed GET or HEAD of a small object by its bucket's owner, answered
straight from the parsed request line and headers.

Most requests a busy store serves are this one: an SDK fetching an object its own account
wrote. Through the general path it builds an aiohttp request, a :class:`Context`, a
:class:`Reply` and an aiohttp response, each with its own header multidict, and walks the
operation registry, the access rules and the handler's options one by one. Here it is
verified by the same :func:`authenticate`, read through the same store calls and described
by the same header functions as :func:`get_or_head_object`, then serialised into one byte
string: about a third of the server's CPU per request goes.

Only the plain case is taken, and anything else answers ``None`` so the request goes the
general way (which also produces every error, so the errors exist in one place):

* GET or HEAD over HTTP/1.1 keep-alive, no query string, a key in a bucket (not the
  website endpoint), and only headers from :data:`PLAIN_HEADERS`: no ``Range``, no
  conditions, no ``Origin``, no SSE-C key, nothing this path would have to interpret;
* a SigV4 ``Authorization`` header that verifies, from a full-access key of the account
  that owns the bucket;
* a bucket without a policy (an explicit deny binds the owner too), access logging or
  lifecycle rules;
* an unencrypted object whose bytes live in the metadata store (small objects), read
  without waiting: the SQLite store's point reads are inline.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Final, TypeVar, cast

from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import HttpVersion11, RawRequestMessage
from multidict import CIMultiDict

from cargohold import errors
from cargohold.auth import SignedRequest, authenticate
from cargohold.auth.model import PayloadMode
from cargohold.handlers.context import Services, version_headers
from cargohold.handlers.objects import object_headers
from cargohold.http.addressing import Addressing
from cargohold.http.dispatch import new_request_id, stamp

try:  # aiohttp's serialiser (C when built): it refuses CR/LF in names and values.
    from aiohttp.http_writer import _serialize_headers
except ImportError:  # pragma: no cover - an aiohttp without it has no plain-read path
    _serialize_headers = None  # type: ignore[assignment]

T = TypeVar("T")

# Request headers that leave a GET/HEAD's answer as this path computes it (lower case).
# Anything else, known or not, sends the request the general way.
PLAIN_HEADERS: Final = frozenset({
    "host", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-checksum-mode",
    "user-agent", "x-amz-user-agent", "amz-sdk-invocation-id", "amz-sdk-request",
    "accept", "accept-encoding", "connection", "content-length", "content-type",
})
_PLAIN_PAYLOADS: Final = frozenset({PayloadMode.UNSIGNED, PayloadMode.SIGNED})
AVAILABLE: Final = _serialize_headers is not None


class _WouldWait(Exception):
    """A store or key lookup needs to wait: the general path will do it."""


def _now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that completes without waiting (else ``_WouldWait``)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise _WouldWait


class PlainReads:
    """Answers plain reads (see the module docstring) for one dispatcher's services."""

    def __init__(self, services: Services, addressing: Addressing) -> None:
        self.services = services
        self.addressing = addressing
        self.answered = 0  # for tests and debugging

    def answer(self, message: RawRequestMessage) -> bytes | None:
        """The complete response to ``message``, or ``None`` to take the general path."""
        try:
            return self._answer(message)
        except Exception:  # the general path answers it (and logs a fault)
            return None

    def _answer(self, message: RawRequestMessage) -> bytes | None:
        method = message.method
        if (method not in ("GET", "HEAD") or message.version != HttpVersion11
                or message.should_close or "?" in message.path):
            return None
        headers = message.headers
        for name in headers:
            if name.lower() not in PLAIN_HEADERS:
                return None
        authorization = headers.get("Authorization")
        if authorization is None or not authorization.startswith("AWS4-HMAC-SHA256 "):
            return None
        try:
            address = self.addressing.resolve(headers.get("Host", ""), message.path)
        except UnicodeDecodeError:
            return None
        key = address.key
        if key is None or address.bucket is None or address.website:
            return None
        services = self.services
        store = services.store
        try:
            auth = _now(authenticate(
                SignedRequest(method=method, raw_path=message.path, raw_query="",
                              headers=headers, host_bucket=address.host_bucket),
                services.keys.get, max_skew=services.settings.max_skew_seconds))
            bucket = _now(store.get_bucket(address.bucket))
            if (bucket is None or auth.payload_mode not in _PLAIN_PAYLOADS
                    or auth.principal.grants is not None
                    or auth.principal.account_id != bucket.owner_id
                    or bucket.policy is not None or bucket.logging is not None
                    or bucket.lifecycle is not None):
                return None
            record = _now(store.get_object(bucket.name, key))
        except (errors.S3Error, _WouldWait):  # its answer is an error, or it must wait
            return None
        if record is None or record.sse:
            return None
        body = record.inline
        if body is None:
            if record.size or record.parts:
                return None  # sent from its blob, with sendfile
            body = b""
        checksum_mode = headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
        # The headers in the order the general path writes them.
        reply = object_headers(record, checksum_mode=checksum_mode)
        reply.update(version_headers(bucket, record.version_id))
        stamp(reply, new_request_id())
        reply["Content-Length"] = str(len(body))
        reply["Date"] = rfc822_formatted_time()
        assert _serialize_headers is not None
        try:
            # A plain dict serialises as a CIMultiDict does (the C version only iterates).
            head = _serialize_headers("HTTP/1.1 200 OK", cast(CIMultiDict[str], reply))
        except ValueError:  # a stored value aiohttp refuses to send: its error path
            return None
        self.answered += 1
        return head if method == "HEAD" else head + body
