"""Zero-copy responses: one or more file segments sent with ``loop.sendfile``.

aiohttp's ``FileResponse`` does sendfile for one file but also applies its own range and
conditional logic; S3's rules differ and objects may span several blobs (multipart), so
this response sends a list of pre-computed segments, keeping the same fast path
(``loop.sendfile`` on the raw transport) and the same fallback (threaded reads) as
``FileResponse``.

Bytes that must be transformed on the way out (decrypted SSE-C objects) cannot be sent
from the file: :class:`StreamedResponse` sends them from an async iterator as it produces
them, with a known length.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from cargohold import errors
from cargohold.handlers.context import FileSegment

_FALLBACK_CHUNK = 256 * 1024
# Bodies up to this size are read with pread and sent with the headers in one write.
# loop.sendfile reads the same page-cache pages on the same thread (a cold read blocks
# either way), but its machinery (futures, pausing the protocol, waiting for the write
# buffer to drain) costs ~250 µs of CPU on a 4 KiB GET here; one pread costs a few µs.
SMALL_BODY = 64 * 1024


def file_response(segments: list[FileSegment], *, status: int,
                  headers: Any) -> web.StreamResponse:
    """A response whose body is ``segments``: inline bytes when small, else sendfile."""
    if sum(s.length for s in segments) <= SMALL_BODY:
        return web.Response(status=status, headers=headers, body=_read_small(segments))
    return SegmentsResponse.open(segments, status=status, headers=headers)


def _read_small(segments: list[FileSegment]) -> bytes:
    pieces = []
    for segment in segments:
        try:
            fd = os.open(segment.path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise errors.InternalError("The object's data is missing.") from exc
        try:
            data = os.pread(fd, segment.length, segment.offset)
        finally:
            os.close(fd)
        if len(data) != segment.length:
            raise errors.InternalError("The object's data is shorter than its record.")
        pieces.append(data)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class SegmentsResponse(web.StreamResponse):
    """Sends file segments; build it with :meth:`open` so missing files fail early."""

    def __init__(self, segments: list[FileSegment], files: list[Any], *, status: int,
                 headers: Any) -> None:
        super().__init__(status=status, headers=headers)
        self._segments = segments
        self._files = files
        self.content_length = sum(s.length for s in segments)

    @classmethod
    def open(cls, segments: list[FileSegment], *, status: int,
             headers: Any) -> SegmentsResponse:
        """Open every file before the status line goes out, so a vanished blob is an S3
        error rather than a truncated 200."""
        files: list[Any] = []
        try:
            for segment in segments:
                # Opening a local file is a cached metadata lookup: inline it costs
                # microseconds, a thread hop tens of them on every small GET.
                files.append(open(segment.path, "rb", buffering=0))  # noqa: SIM115
        except FileNotFoundError as exc:
            for fh in files:
                fh.close()
            raise errors.InternalError("The object's data is missing.") from exc
        return cls(segments, files, status=status, headers=headers)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            writer = await super().prepare(request)
            assert writer is not None
            loop = asyncio.get_running_loop()
            for fh, segment in zip(self._files, self._segments, strict=True):
                transport = request.transport
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("Connection lost")
                try:
                    await loop.sendfile(transport, fh, segment.offset, segment.length)
                except NotImplementedError:
                    await _copy_fallback(writer, fh, segment)
            await super().write_eof()
            return writer
        finally:
            for fh in self._files:
                fh.close()


async def _copy_fallback(writer: AbstractStreamWriter, fh: Any, segment: FileSegment) -> None:
    """Threaded reads for transports without sendfile (TLS)."""
    remaining = segment.length
    offset = segment.offset
    while remaining > 0:
        size = min(_FALLBACK_CHUNK, remaining)
        chunk = await asyncio.to_thread(os.pread, fh.fileno(), size, offset)
        if not chunk:
            raise ConnectionResetError("object data ended early")
        await writer.write(chunk)
        offset += len(chunk)
        remaining -= len(chunk)
    await writer.drain()


class StreamedResponse(web.StreamResponse):
    """Sends ``length`` bytes from an async iterator, each piece written (and drained) as it
    comes, so memory stays at one piece.

    The body is written inside :meth:`prepare`, as :class:`SegmentsResponse` does: an error
    from the iterator then ends the connection (the status line is already out) rather
    than becoming a second response.
    """

    def __init__(self, stream: AsyncIterator[bytes], length: int, *, status: int,
                 headers: Any) -> None:
        super().__init__(status=status, headers=headers)
        self._stream = stream
        self.content_length = length

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            writer = await super().prepare(request)
            async for piece in self._stream:
                await super().write(piece)
            await super().write_eof()
            return writer
        finally:
            if isinstance(self._stream, AsyncGenerator):
                await self._stream.aclose()
