"""Moving SSE-C bytes without blocking the event loop: sealing writes, decrypting reads.

:class:`SealingWriter` takes plaintext, as a :class:`~cargohold.store.blobs.BlobWriter`
does, and stores it sealed: about every MiB it hashes the plaintext (MD5 for Content-MD5,
flexible checksums, a signed payload's SHA-256) and encrypts it in a worker thread, then
hands the ciphertext to a blob writer, which writes and hashes it (the ETag) in its own
thread job. One batch is in flight while the next fills, so memory stays at a few MiB.

:func:`plaintext_batches` reads object bytes (sealed or not) as plaintext, about a MiB at a
time, decrypting only the chunks a range touches; :func:`stream_plaintext` runs it one
batch per worker-thread job, for responses and copies.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cargohold.checksums import Hasher
from cargohold.sse.chunks import HEADER_SIZE, TAG_SIZE, BlobCipher, ObjectCipher
from cargohold.store.blobs import BlobStore

# Plaintext per worker-thread job: 16 chunks of 64 KiB.
BATCH_SIZE: Final = 1024 * 1024


@dataclass(frozen=True)
class Piece:
    """Plaintext bytes [offset, offset+length) of one blob holding ``blob_size`` bytes."""

    path: str
    offset: int
    length: int
    blob_size: int
    part_number: int  # 0 for a single-blob object; bound into a sealed blob's chunks


class SealingWriter:
    """Writes plaintext to a new blob sealed with ``cipher``; the blob writer's interface.

    ``plain_hashers`` see the plaintext, ``stored_hashers`` the bytes stored. Exactly
    ``cipher.size`` bytes must be written before :meth:`commit` (the size is bound into
    every chunk).
    """

    def __init__(self, blobs: BlobStore, cipher: BlobCipher, plain_hashers: Sequence[Hasher],
                 stored_hashers: Sequence[Hasher] = ()) -> None:
        self._blobs = blobs
        self._cipher = cipher
        self._plain_hashers = tuple(plain_hashers)
        self._writer = blobs.open_writer(stored_hashers)
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._next_chunk = 0
        self._pending: asyncio.Future[bytes] | None = None
        self.size = 0  # plaintext bytes accepted

    async def __aenter__(self) -> SealingWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.abort()

    async def write(self, data: bytes) -> None:
        """Accept plaintext; about every MiB a batch is sealed in a thread."""
        if not data:
            return
        if self.size + len(data) > self._cipher.size:
            raise ValueError("more bytes than the sealed blob was sized for")
        self._buffer.append(bytes(data))
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= BATCH_SIZE:
            await self._seal_buffer(final=False)

    async def commit(self) -> str:
        """Seal the rest, then make the blob durable; its id ("" for no bytes)."""
        if self.size != self._cipher.size:
            raise ValueError("the sealed blob got fewer bytes than it was sized for")
        try:
            await self._seal_buffer(final=True)
            await self._hand_over()
        except BaseException:
            await self.abort()
            raise
        return await self._writer.commit()

    async def abort(self) -> None:
        """Discard the blob (safe after commit: the blob writer ignores it then)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.add_done_callback(_consume_exception)
        self._buffer = []
        await self._writer.abort()

    async def _seal_buffer(self, final: bool) -> None:
        data = b"".join(self._buffer)
        chunk_size = self._cipher.chunk_size
        take = len(data) if final else len(data) - len(data) % chunk_size
        batch, rest = data[:take], data[take:]
        self._buffer, self._buffered = ([rest] if rest else []), len(rest)
        # One batch in flight: the hashers and the chunk indexes must follow the byte order,
        # and waiting here is the backpressure that bounds memory.
        await self._hand_over()
        if not batch:
            return
        first = self._next_chunk
        self._next_chunk += -(-len(batch) // chunk_size)
        self._pending = asyncio.ensure_future(
            self._blobs.run(lambda: self._seal(first, batch)))

    def _seal(self, first: int, batch: bytes) -> bytes:
        # Worker thread.
        for hasher in self._plain_hashers:
            hasher.update(batch)
        sealed = self._cipher.seal_run(first, batch)
        return self._cipher.header + sealed if first == 0 else sealed

    async def _hand_over(self) -> None:
        if self._pending is not None:
            # shield: a cancelled request must not leave a seal job running unawaited.
            sealed = await asyncio.shield(self._pending)
            self._pending = None
            await self._writer.write(sealed)


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def plaintext_batches(pieces: Sequence[Piece], cipher: ObjectCipher | None) -> Iterator[bytes]:
    """The plaintext of ``pieces`` in batches of about a MiB; blocking.

    With ``cipher`` the blobs are sealed and only the chunks the pieces touch are read and
    opened (``CorruptBlob`` if one does not authenticate); without, they are read as they
    are. ``FileNotFoundError`` if a blob is gone, ``OSError`` (EIO) if one is short.
    """
    for piece in pieces:
        if piece.length <= 0:
            continue
        if cipher is None:
            offset, end = piece.offset, piece.offset + piece.length
            while offset < end:
                data = _pread(piece.path, offset, min(BATCH_SIZE, end - offset))
                offset += len(data)
                yield data
            continue
        yield from _open_piece(piece, cipher)


def _open_piece(piece: Piece, cipher: ObjectCipher) -> Iterator[bytes]:
    chunk_size = cipher.chunk_size
    per_batch = max(1, BATCH_SIZE // chunk_size)
    first = piece.offset // chunk_size
    last = (piece.offset + piece.length - 1) // chunk_size
    blob = cipher.existing_blob(_pread(piece.path, 0, HEADER_SIZE), piece.part_number,
                                piece.blob_size)
    index = first
    while index <= last:
        stop = min(last + 1, index + per_batch)
        start_at = blob.chunk_offset(index)
        # The last chunk may be short: the file ends after its tag.
        end_at = (blob.chunk_offset(stop) if stop < blob.chunks
                  else HEADER_SIZE + blob.size + TAG_SIZE * blob.chunks)
        plain = blob.open_run(index, _pread(piece.path, start_at, end_at - start_at))
        base = index * chunk_size
        lo = max(0, piece.offset - base)
        hi = min(len(plain), piece.offset + piece.length - base)
        yield plain[lo:hi] if (lo, hi) != (0, len(plain)) else plain
        index = stop


def _pread(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        pieces = []
        while length > 0:
            data = os.pread(fd, length, offset)
            if not data:
                raise OSError(errno.EIO, f"blob file shorter than expected: {path}")
            pieces.append(data)
            offset += len(data)
            length -= len(data)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
    finally:
        os.close(fd)


async def stream_plaintext(blobs: BlobStore, pieces: Sequence[Piece],
                           cipher: ObjectCipher | None) -> AsyncGenerator[bytes, None]:
    """:func:`plaintext_batches`, each batch read (and decrypted) in a worker thread.

    The next batch is prepared while the caller sends this one (two batches in memory at
    most): decryption and the socket then overlap instead of taking turns.
    """
    batches = plaintext_batches(pieces, cipher)

    def advance() -> bytes | None:
        # One generator, advanced by one thread job at a time (never concurrently).
        return next(batches, None)

    pending = asyncio.ensure_future(blobs.run(advance))
    try:
        while True:
            batch = await pending
            if batch is None:
                return
            pending = asyncio.ensure_future(blobs.run(advance))
            yield batch
    finally:
        # Abandoned (the client went away): let the job in flight finish on its own.
        pending.add_done_callback(_consume_exception)
