"""The HTTP connection: aiohttp's, with bodiless requests answered inline.

aiohttp's ``RequestHandler`` parks one task per connection on a future, wakes it for each
parsed request, runs each request in a task of its own, and serialises every response
through several coroutine layers (``prepare``, ``_start``, ``_prepare_headers``,
``write_headers``, ``write_eof``). On this project's 2-core bench VM that machinery costs
~80 µs of server CPU per request: aiohttp answering a fixed 4 KiB body takes ~150 µs a
request, its C parser plus one ``transport.write`` ~70 µs. On a small GET it is a third of
the request.

:class:`InlineRequestHandler` keeps everything of aiohttp's (its C parser and limits, its
request objects, its error handling, its keep-alive timer and shutdown) and changes these
things:

* Sockets are read into one buffer per server (an asyncio buffered protocol), each read
  copied out at once: a plain protocol's ``recv(256 KiB)`` maps and unmaps a fresh buffer
  for every read. Upload bodies buffer 512 KiB before reading pauses (aiohttp's 64 KiB
  paused and resumed the socket after every read), and are never decompressed.

* A request without a body that arrives while the connection is idle is answered from
  ``data_received``: the same ``_handle_request`` coroutine aiohttp would run in a task is
  driven directly. When it completes without waiting (the usual case for a GET or HEAD:
  the SQLite store reads inline) its response is written in the same callback. When it
  waits (a commit, a PostgreSQL read, a sendfile) it continues as a task, and bytes that
  arrive meanwhile are held until its response is out, so responses keep request order.
  Requests with bodies, and anything unusual (parse errors, upgrades), stay in aiohttp's
  queue for its own task. Before that, ``answer_now`` (``cargohold/http/plainread.py``)
  may answer the request outright, as bytes, without a request object at all.
* A plain :class:`aiohttp.web.Response` with a bytes body is written with aiohttp's own
  header serialiser in one ``transport.write`` (:meth:`InlineRequestHandler.finish_response`),
  adding the same ``Content-Length``, ``Content-Type``, ``Date`` and ``Server`` headers
  ``prepare`` would. Other responses (files, streams, closing connections, HTTP/1.0) go
  through ``prepare``/``write_eof`` as before.

Both rely on ``RequestHandler`` attributes that are not aiohttp's public API.
:data:`INLINE_CAPABLE` checks them once; without them :class:`S3Server` serves with the
stock handler (slower, never wrong), and the test suite fails on it so an aiohttp upgrade
that moves them is noticed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from aiohttp import hdrs, web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11, RawRequestMessage
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("cargohold.http")

try:  # aiohttp's serialiser (C when built): it refuses CR/LF in names and values.
    from aiohttp.http_writer import _serialize_headers
except ImportError:  # pragma: no cover - an aiohttp without it serves the stock way
    _serialize_headers = None  # type: ignore[assignment]

# Bytes held while an inline response is pending, before reading pauses.
_HOLD_LIMIT = 256 * 1024
# What one read from a socket may return: asyncio's own read size.
_RECEIVE_SIZE = 256 * 1024
# A request body's buffer: reading pauses past twice this. aiohttp's 64 KiB paused and
# resumed the socket (two epoll_ctl calls) after every 256 KiB read of an upload.
_BODY_BUFFER = 512 * 1024

_REQUIRED_ATTRIBUTES = (
    "_handle_request", "finish_response", "_process_keepalive", "_messages", "_waiter",
    "_handler_waiter", "_payload_parser", "_upgraded", "_request_factory",
    "_request_handler", "_task_handler", "_parser", "_keepalive", "_keepalive_handle",
    "_keepalive_timeout", "_next_keepalive_close_time", "_manager", "_close",
    "_force_close", "_buffer_paused",
)
INLINE_CAPABLE: bool = _serialize_headers is not None and all(
    hasattr(RequestHandler, name) for name in _REQUIRED_ATTRIBUTES)


class S3Server(web.Server):
    """``aiohttp.web.Server`` whose connections use :class:`InlineRequestHandler`.

    ``answer_inline`` picks the bodiless requests worth answering inline: quick ones that
    rarely wait (a point read). A request that waits anyway is still answered correctly,
    but costs a task and a hand-over, so a listing, which always waits for a read thread,
    is better left to aiohttp (measured: a 1000-key page took ~20% more CPU inline). None
    keeps every request in aiohttp's tasks (responses are still written in one call): for
    a handler that may need a current task, as asyncio timeouts do (the PostgreSQL store).
    """

    def __init__(self, *args: Any,
                 answer_inline: Callable[[RawRequestMessage], bool] | None = None,
                 answer_now: Callable[[RawRequestMessage], bytes | None] | None = None,
                 **kwargs: Any) -> None:
        # S3 stores bodies as sent: Content-Encoding (gzip for precompressed web assets) is
        # the object's metadata, never an instruction to decompress the upload.
        kwargs.setdefault("auto_decompress", False)
        kwargs.setdefault("read_bufsize", _BODY_BUFFER)
        super().__init__(*args, **kwargs)
        self.answer_inline = answer_inline
        # Of the requests answer_inline picks: the complete response, serialised, to those
        # that need nothing of aiohttp's request machinery (None: ask the handler).
        self.answer_now = answer_now
        self.inline_requests = 0  # requests answered inline (for tests and debugging)
        # Every connection of this server reads into this one buffer: a read is copied
        # out in the callback that filled it, before the loop can fill it again.
        self.receive_buffer = memoryview(bytearray(_RECEIVE_SIZE))

    def __call__(self) -> RequestHandler:
        if not INLINE_CAPABLE:
            return super().__call__()
        return InlineRequestHandler(self, loop=self._loop, **self._kwargs)


class InlineRequestHandler(RequestHandler, asyncio.BufferedProtocol):
    """An aiohttp connection that answers bodiless requests without a task each.

    It is a buffered protocol so that asyncio reads into the server's one receive buffer:
    a plain protocol's ``recv(256 KiB)`` allocates (and, at that size, maps and unmaps) a
    fresh 256 KiB buffer for every read, three system calls for a 600-byte GET.
    """

    def __init__(self, manager: S3Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server = manager
        self._inline_task: asyncio.Task[None] | None = None
        self._held = bytearray()  # bytes received while _inline_task runs
        self._held_paused = False
        self._parsing_only = False  # set while _drain re-parses buffered bytes

    # ------------------------------------------------------------------ receiving

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._server.receive_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._server.receive_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self._inline_task is not None:
            # A response is pending: later requests wait, in order, as raw bytes.
            self._held += data
            transport = self.transport
            if len(self._held) > _HOLD_LIMIT and not self._held_paused and transport:
                transport.pause_reading()
                self._held_paused = True
            return
        waiter = self._waiter
        if (waiter is None or waiter.done() or (self._messages and not self._parsing_only)
                or self._server.answer_inline is None):
            # aiohttp's task is busy with a request (or about to be): its queue, its turn.
            super().data_received(data)
            return
        # The connection is idle: parse without waking aiohttp's task, then answer what
        # can be answered here. Whatever is left wakes it below.
        self._waiter = None
        try:
            super().data_received(data)
        finally:
            self._waiter = waiter
        if not self._parsing_only:
            self._drain()

    def _drain(self) -> None:
        """Answer queued bodiless requests from the head of the queue; hand the rest to
        aiohttp's task."""
        messages = self._messages
        resume_size = getattr(self, "_msg_queue_resume_size", 0)
        wanted = self._server.answer_inline
        answer_now = self._server.answer_now
        assert wanted is not None
        while True:
            while (messages and self._inline_task is None and not self._force_close
                   and not self._close and self.transport is not None):
                message, payload = messages[0]
                if (payload is not EMPTY_PAYLOAD or not isinstance(message, RawRequestMessage)
                        or message.upgrade):
                    break
                response = (answer_now(message)
                            if answer_now is not None and not self.writing_paused else None)
                if response is None and not wanted(message):
                    break
                messages.popleft()
                consumed = getattr(self._parser, "message_consumed", None)
                if consumed is not None:
                    consumed()
                if response is not None:
                    self._send_now(response)
                else:
                    self._answer_inline(message)
            if (self._buffer_paused and self._inline_task is None and not self._force_close
                    and len(messages) <= resume_size):
                # The queue had filled and reading paused; parse what aiohttp buffered
                # (without answering inside that call) and go round again.
                before = len(messages)
                self._parsing_only = True
                try:
                    self._resume_reading_if_drained()
                finally:
                    self._parsing_only = False
                if len(messages) > before:
                    continue
            break
        waiter = self._waiter
        if messages and self._inline_task is None and waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ answering

    def _send_now(self, response: bytes) -> None:
        """Send a response ``answer_now`` made; the connection stays open for the next."""
        assert self._manager is not None and self.transport is not None
        self._manager.requests_count += 1
        self.transport.write(response)
        self._keepalive = True
        self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
        if self._keepalive_handle is None:
            self._keepalive_handle = self._loop.call_at(self._next_keepalive_close_time,
                                                        self._process_keepalive)

    def _answer_inline(self, message: RawRequestMessage) -> None:
        assert self._request_factory is not None and self._manager is not None
        self._manager.requests_count += 1
        self._server.inline_requests += 1
        writer = StreamWriter(self, self._loop)
        request = self._request_factory(message, EMPTY_PAYLOAD, self, writer,
                                        self._task_handler)  # type: ignore[arg-type]
        coroutine = self._answer(request)
        try:
            pending = coroutine.send(None)
        except StopIteration:
            return
        except BaseException:
            # _answer handles everything; this is a bug's last line of defence.
            log.exception("inline request failed")
            self.force_close()
            return
        # It waits on something: the rest runs as a task, and the connection holds later
        # bytes until it is done.
        task = self._loop.create_task(_resume(coroutine, pending))
        self._inline_task = task
        task.add_done_callback(self._inline_done)

    async def _answer(self, request: web.BaseRequest) -> None:
        """What aiohttp's ``start`` does for one request, minus the task and the queue."""
        assert self._request_handler is not None
        try:
            response, reset = await self._handle_request(request, None,
                                                         self._request_handler)
        except ConnectionError:  # the client went away: nothing more to send
            self.force_close()
            return
        except asyncio.CancelledError:  # the server is stopping: close, stay cancelled
            self.force_close()
            raise
        except Exception:
            log.exception("unhandled error answering %s %s", request.method,
                          request.raw_path)
            self.force_close()
            return
        finally:
            request._task = None  # type: ignore[assignment]  # no reference cycle
        self._keepalive = bool(response.keep_alive)
        if reset or not self._keepalive or self._close or self._force_close:
            self.force_close()
            return
        self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
        if self._keepalive_handle is None:
            self._keepalive_handle = self._loop.call_at(self._next_keepalive_close_time,
                                                        self._process_keepalive)

    def _inline_done(self, task: asyncio.Task[None]) -> None:
        self._inline_task = None
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, ConnectionError):
                log.error("inline request task failed", exc_info=exc)
        if self._held_paused:
            self._held_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        if self._force_close or self.transport is None:
            self._held.clear()
            return
        self._drain()
        if self._held and self._inline_task is None:
            held = bytes(self._held)
            self._held.clear()
            self.data_received(held)

    def _process_keepalive(self) -> None:
        if self._inline_task is not None:
            # aiohttp's task looks idle while an inline response is being sent: do not
            # take it for an idle connection.
            self._keepalive_handle = self._loop.call_at(
                self._loop.time() + self._keepalive_timeout, self._process_keepalive)
            return
        super()._process_keepalive()

    # ------------------------------------------------------------------ responding

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        """Write a plain bytes response in one call; anything else the stock way."""
        if not self._upgraded and type(resp) is web.Response:
            written = _write_plain(request, resp, self.transport)
            if written is not None:
                request._finish()
                if written and self.writing_paused:
                    # The client reads slower than we answer: wait, as write_eof would.
                    await self._drain_helper()
                return resp, not written
        return await super().finish_response(request, resp, start_time)


def _write_plain(request: web.BaseRequest, resp: web.Response,
                 transport: asyncio.BaseTransport | None) -> bool | None:
    """Serialise and send ``resp`` as ``prepare`` + ``write_eof`` would, in one write.

    None when the response needs aiohttp's own path (chunking, compression, cookies, a
    closing or HTTP/1.0 connection, a status whose body must be empty); False when the
    connection is gone; True when sent.
    """
    body = resp._body
    if (resp._keep_alive is not None or resp._cookies or resp._compression
            or resp._chunked or resp.prepared
            or not (body is None or isinstance(body, bytes))
            or request.version != HttpVersion11 or not request.keep_alive):
        return None
    status = resp.status
    method = request.method
    if status < 200 or status in (204, 304):
        return None
    headers = resp.headers
    if method == hdrs.METH_HEAD:
        body = None  # the explicit Content-Length stays; no default Content-Type
    else:
        length = headers.get(hdrs.CONTENT_LENGTH)
        if length is None:
            length = str(len(body)) if body else "0"
            headers[hdrs.CONTENT_LENGTH] = length
        elif length != str(len(body or b"")):
            return None
        if length != "0":
            headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
    if hdrs.DATE not in headers:
        headers[hdrs.DATE] = rfc822_formatted_time()  # what prepare uses
    headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
    resp._keep_alive = True  # what prepare records; _answer reads it
    if transport is None or transport.is_closing():
        return False
    assert _serialize_headers is not None
    head = _serialize_headers(f"HTTP/1.1 {status} {resp.reason}", headers)
    transport.write(head + body if body else head)  # type: ignore[attr-defined]
    resp._eof_sent = True  # a later write_eof() is a no-op
    return True


async def _resume(coroutine: Coroutine[Any, Any, None], pending: Any) -> None:
    """Carry on ``coroutine`` from where ``send(None)`` left it (it yielded ``pending``,
    the future it waits on), inside a task: what Python 3.12's eager tasks do."""
    await _Resumed(coroutine, pending)


class _Resumed:
    def __init__(self, coroutine: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coroutine = coroutine
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self._coroutine
        value = self._pending
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # a cancellation or an error thrown in
                try:
                    value = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coroutine.send(sent)
                except StopIteration as stop:
                    return stop.value
