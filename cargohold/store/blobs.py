"""Immutable blob files: the bytes of objects.

Layout under ``root``::

    blobs/ab/cd/<id>   committed blobs; <id> is 32 random lower-case hex chars
    tmp/<id>           blobs being written (same file system, so the final rename is atomic)

Object keys never become paths: only ids minted here do, and :meth:`BlobStore.path`
refuses anything that is not 32 lower-case hex characters.

A :class:`BlobWriter` buffers what the handler gives it and, about every MiB, feeds the
buffer to the hashers in a worker thread while another thread writes it, so the event loop
never hashes and never touches the disk, and a flush takes as long as the slower of the
two rather than both (measured on a 256 MiB PUT: ~305 -> ~340 MB/s). Full buffers queue
for one worker-thread job that takes the next as soon as it has written one (up to
MAX_QUEUED behind the disk, then receiving waits): the thread does not idle until the
loop gets round to handing the next one over (~390 -> ~414 MB/s, medians of 8 runs
here). Memory stays bounded at about three buffers.

Zero-byte blobs: :meth:`BlobWriter.commit` returns ``""`` and creates no file
(``ObjectRecord.blob_id == ""`` means an empty object; serve an empty body, no path).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import re
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from cargohold import errors
from cargohold.checksums import Hasher

log = logging.getLogger("cargohold.blobs")

_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
FLUSH_SIZE: Final = 1024 * 1024
# Buffers handed to the worker-thread side and not yet written: the bound on a writer's
# memory (with the one filling) and how far receiving may run ahead of hashing.
MAX_QUEUED: Final = 2
# Buffers one worker-thread job flushes before it gives its thread back (and the loop
# schedules the next job): a fast upload must not hold an executor thread to itself.
DRAIN_BATCH: Final = 4
# A blob that grows past CACHE_KEEP bytes is not kept in the page cache: as it is written,
# the pages more than CACHE_LAG behind the end are written back and dropped, and the rest
# after the fsync. A large upload is rarely read back at once, and new page-cache pages
# are dear (on a VM each fresh page can cost a host fault: writing 256 MiB that stays
# cached took 4 s of kernel CPU per GB here, dropping it 0.8). Smaller blobs stay cached.
CACHE_KEEP: Final = 8 * 1024 * 1024
CACHE_LAG: Final = 4 * 1024 * 1024
_FADVISE: Final = hasattr(os, "posix_fadvise")

_T = TypeVar("_T")
# The file system (or the user's quota on it) is full.
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_FREE_SPACE_TTL: Final = 1.0  # seconds check_room trusts what statvfs said

# Writes of a flush run here while its thread hashes the same bytes.
_WRITE_POOL: Final = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cargohold-blob-write")


def new_blob_id() -> str:
    """A fresh random blob id (128 bits, lower-case hex)."""
    return secrets.token_hex(16)


def is_blob_id(value: object) -> bool:
    """Whether ``value`` is a well-formed blob id."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def _free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the file system of ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Blob files under ``root`` (``root/blobs`` and ``root/tmp`` are created here).

    ``executor`` runs file work and hashing; ``None`` uses the event loop's default executor.
    """

    def __init__(self, root: str | Path, executor: Executor | None = None, *,
                 min_free_bytes: int = 0) -> None:
        self.root = Path(root)
        self.blobs_dir = str(self.root / "blobs")
        self.tmp_dir = str(self.root / "tmp")
        self.executor = executor
        # Space new data may not take (see check_room).
        self.min_free_bytes = min_free_bytes
        self._free_bytes = 0  # the file system's free bytes when last asked, less claims
        self._free_asked = -math.inf  # monotonic time of that
        os.makedirs(self.blobs_dir, exist_ok=True)
        os.makedirs(self.tmp_dir, exist_ok=True)

    def path(self, blob_id: str) -> str:
        """The file of a committed blob; ``ValueError`` unless ``blob_id`` is well-formed."""
        if not is_blob_id(blob_id):
            raise ValueError(f"invalid blob id: {blob_id!r}")
        return f"{self.blobs_dir}/{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"

    def tmp_path(self, blob_id: str) -> str:
        """The temp file a writer uses for ``blob_id`` before commit."""
        if not is_blob_id(blob_id):
            raise ValueError(f"invalid blob id: {blob_id!r}")
        return f"{self.tmp_dir}/{blob_id}"

    def open_writer(self, hashers: Sequence[Hasher] = ()) -> BlobWriter:
        """Start a new blob; every byte written is fed to each of ``hashers`` in order."""
        return BlobWriter(self, hashers)

    async def run(self, fn: Callable[[], _T]) -> _T:
        """Run blocking file work on the store's executor; a full file system is
        ``InsufficientStorage`` (with the ``OSError`` as its cause)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise errors.InsufficientStorage() from exc
            raise

    async def check_room(self, incoming: int) -> None:
        """``InsufficientStorage`` unless ``incoming`` more bytes leave ``min_free_bytes``
        free on the blobs' file system.

        The reserve keeps deletes working on a full disk: SQLite needs room in its WAL to
        delete a row (without it, a disk filled to the last byte refused most deletes).
        The free space is asked at most once a second, in a thread (``statvfs`` on a
        network file system is a round trip); bytes let in are claimed against it until
        then, so concurrent uploads cannot all take the same room.
        """
        if self.min_free_bytes <= 0:
            return
        now = time.monotonic()
        if now - self._free_asked >= _FREE_SPACE_TTL:
            self._free_bytes = await self.run(lambda: _free_bytes(self.blobs_dir))
            self._free_asked = now
        if self._free_bytes - incoming < self.min_free_bytes:
            raise errors.InsufficientStorage(
                f"The server keeps {self.min_free_bytes} bytes of its disk free and has "
                f"{max(self._free_bytes, 0)} free: {incoming} more do not fit. Delete "
                f"objects or free disk space, then try again.")
        self._free_bytes -= incoming

    async def delete(self, blob_ids: Iterable[str]) -> int:
        """Remove committed blobs (in a thread); missing files are fine. Returns files removed.

        Malformed ids are logged and skipped rather than raised, so one corrupt queue entry
        cannot wedge the collector.
        """
        ids = list(blob_ids)
        if not ids:
            return 0
        return await self.run(lambda: self.delete_sync(ids))

    def delete_sync(self, blob_ids: Iterable[str]) -> int:
        """Blocking :meth:`delete`."""
        removed = 0
        for blob_id in blob_ids:
            if not is_blob_id(blob_id):
                log.warning("not deleting malformed blob id %r", blob_id)
                continue
            try:
                os.unlink(self.path(blob_id))
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def place(self, blob_id: str) -> None:
        """Move the finished temp file of ``blob_id`` into place, durably; blocking.

        The rename is only durable once the directory entry is: the metadata commit that
        follows must never point at a blob a crash could take back.
        """
        final = self.path(blob_id)
        level2 = os.path.dirname(final)
        if not os.path.isdir(level2):
            level1 = os.path.dirname(level2)
            if not os.path.isdir(level1):
                os.makedirs(level1, exist_ok=True)
                _fsync_dir(self.blobs_dir)
            os.makedirs(level2, exist_ok=True)
            _fsync_dir(level1)
        os.rename(self.tmp_path(blob_id), final)
        _fsync_dir(level2)

    async def clone(self, blob_id: str) -> str:
        """A new blob holding the same bytes as ``blob_id``, without copying them if the
        file system allows a hard link; returns the new id.

        Blobs are immutable, so two names for one inode are as good as two copies, and each
        name is owned and freed by exactly one object. ``FileNotFoundError`` when the source
        blob is gone (its object was replaced and collected meanwhile).
        """
        return await self.run(lambda: self.clone_sync(blob_id))

    def clone_sync(self, blob_id: str) -> str:
        """Blocking :meth:`clone`."""
        new_id = new_blob_id()
        source, tmp = self.path(blob_id), self.tmp_path(new_id)
        try:
            try:
                os.link(source, tmp)
            except FileNotFoundError:
                raise
            except OSError:
                # No hard links here (some network or FUSE file systems): copy in the kernel.
                shutil.copyfile(source, tmp)
                with open(tmp, "rb+") as copied:
                    os.fsync(copied.fileno())
            # A link shares the source's inode and so its old mtime; the orphan sweeper
            # judges age by mtime, so the new name must look new before it is visible.
            os.utime(tmp)
            self.place(new_id)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return new_id

    def hash_files(self, segments: Iterable[tuple[str, int, int]],
                   hashers: Sequence[Hasher]) -> int:
        """Feed the bytes of ``(path, offset, length)`` segments to ``hashers``; blocking.

        Returns the bytes read; ``OSError`` if a file is shorter than its segment.
        """
        total = 0
        for chunk in read_segments(segments):
            for hasher in hashers:
                hasher.update(chunk)
            total += len(chunk)
        return total

    def iter_blob_ids(self, older_than: float) -> Iterator[str]:
        """Ids of committed blobs whose mtime is before the unix time ``older_than``.

        Blocking directory walk (run it in a thread). Files that are not blob ids are
        ignored; files that vanish during the walk are skipped.
        """
        for level1 in _scan_dirs(self.blobs_dir):
            for level2 in _scan_dirs(level1):
                try:
                    entries = list(os.scandir(level2))
                except FileNotFoundError:
                    continue
                for entry in entries:
                    if not is_blob_id(entry.name):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if st.st_mtime < older_than:
                        yield entry.name

    def sweep_tmp(self, older_than: float) -> int:
        """Remove temp files (abandoned writes) with mtime before ``older_than``; blocking."""
        removed = 0
        try:
            entries = list(os.scandir(self.tmp_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and (
                    entry.stat(follow_symlinks=False).st_mtime < older_than
                ):
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


COPY_READ_SIZE: Final = 4 * 1024 * 1024


def read_segments(segments: Iterable[tuple[str, int, int]]) -> Iterator[bytes]:
    """The bytes of ``(path, offset, length)`` file segments in chunks; blocking.

    ``OSError`` (EIO) if a file ends before its segment does: blobs are immutable, so that
    is corruption, never a race.
    """
    for path, offset, length in segments:
        fd = os.open(path, os.O_RDONLY)
        try:
            end = offset + length
            while offset < end:
                chunk = os.pread(fd, min(COPY_READ_SIZE, end - offset), offset)
                if not chunk:
                    raise OSError(errno.EIO, f"blob file shorter than expected: {path}")
                offset += len(chunk)
                yield chunk
        finally:
            os.close(fd)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Write every byte of ``chunks`` (``writev`` may write less than asked)."""
    views = [memoryview(c) for c in chunks]
    while views:
        written = os.writev(fd, views[:1024])  # IOV_MAX
        if written == 0:
            raise OSError(errno.EIO, "write made no progress")
        while written and views:
            head = views[0]
            if written >= len(head):
                written -= len(head)
                views.pop(0)
            else:
                views[0] = head[written:]
                written = 0


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    # Mark a discarded flush's error as retrieved (no "exception never retrieved" noise).
    if not fut.cancelled():
        fut.exception()


def _scan_dirs(path: str) -> list[str]:
    try:
        return sorted(
            e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)
        )
    except FileNotFoundError:
        return []


class BlobWriter:
    """Streams one new blob to a temp file; :meth:`commit` makes it durable and final.

    Use as ``async with store.open_writer(hashers) as w: ...; blob_id = await w.commit()``;
    leaving the block with an exception (or without committing) aborts.
    """

    def __init__(self, store: BlobStore, hashers: Sequence[Hasher]) -> None:
        self.store = store
        self.hashers = tuple(hashers)
        self.blob_id = new_blob_id()
        self.size = 0  # bytes accepted so far
        self._chunks: list[bytes] = []
        self._buffered = 0
        # Loop side and thread side, under _queue_lock: the buffers handed over and not yet
        # written (the head is the one being written), whether a job is draining them, and
        # whether one failed (later buffers are refused; its future holds the error).
        self._queue: deque[list[bytes]] = deque()
        self._queue_lock = threading.Lock()
        self._draining = False
        self._failed = False
        self._wanted = False  # the loop waits for news from the thread side
        self._pending: asyncio.Future[None] | None = None  # the latest drain job
        self._waiter: asyncio.Future[None] | None = None  # the loop, waiting for the queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None  # the temp file, opened at the first flush
        self._written = 0  # thread side: bytes in the temp file
        # Thread side: the ranges [_drop_from, _drop_to) of the temp file already asked to
        # leave the page cache; a later call repeats the last one's range, dirty then.
        self._drop_from = 0
        self._drop_to = 0
        self._done = False  # committed or aborted (loop side)
        self._aborted_soon = False  # abort started: no more drain jobs (read by threads)
        self._touched = False  # some file work was scheduled (loop side)
        # Thread side: serializes flush / commit / discard, so an abort that races an
        # in-flight flush waits for it, and a flush that starts after an abort does nothing.
        self._lock = threading.Lock()
        self._aborted = False

    async def __aenter__(self) -> BlobWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            await self.abort()

    async def write(self, data: bytes) -> None:
        """Accept ``data``; every ~1 MiB the buffer is written and hashed in a thread."""
        if self._done:
            raise RuntimeError("blob writer already committed or aborted")
        if not data:
            return
        self._chunks.append(bytes(data))
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= FLUSH_SIZE:
            chunks, self._chunks, self._buffered = self._chunks, [], 0
            await self._hand_over(chunks)

    async def write_files(self, segments: Sequence[tuple[str, int, int]]) -> None:
        """Append the bytes of ``(path, offset, length)`` file segments (server-side copy).

        Reading, writing and hashing all happen in one worker-thread job.
        """
        if self._done:
            raise RuntimeError("blob writer already committed or aborted")
        await self._wait_pending()
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        self._touched = True
        self.size += sum(length for _, _, length in segments)
        await self.store.run(lambda: self._fill(chunks, segments))

    async def commit(self) -> str:
        """Flush, fsync, rename into place (fsyncing directories); return the blob id.

        Returns ``""`` for a zero-byte blob, which has no file.
        """
        if self._done:
            raise RuntimeError("blob writer already committed or aborted")
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        try:
            await self._wait_pending()
            self._touched = True
            await self.store.run(lambda: self._commit(chunks))
        except BaseException:
            await self.abort()
            raise
        self._done = True
        return self.blob_id if self.size else ""

    async def abort(self) -> None:
        """Discard the blob: close and remove the temp file. Safe to call twice."""
        if self._done:
            return
        self._done = True
        self._aborted_soon = True
        self._chunks = []
        pending, self._pending = self._pending, None
        if pending is not None:
            # Not awaited: _discard takes the lock, so it runs after an in-flight flush.
            pending.add_done_callback(_consume_exception)
        if self._touched:
            await self.store.run(self._discard)

    async def _hand_over(self, chunks: list[bytes]) -> None:
        """Queue a full buffer for the thread side, waiting while MAX_QUEUED are queued.

        One job drains the queue in order (hashers must see the bytes in order), taking the
        next buffer as soon as it has written one rather than when the loop gets round to
        handing it over; waiting here is the backpressure that bounds memory.
        """
        self._touched = True
        while True:
            with self._queue_lock:
                failed = self._failed
                if not failed and len(self._queue) < MAX_QUEUED:
                    self._queue.append(chunks)
                    start, self._draining = not self._draining, True
                    break
                self._wanted = True
            if failed:
                await self._raise_failure()
            await self._wait_for_queue()
        if start:
            self._start_drain()

    def _start_drain(self) -> None:
        if self._aborted_soon:
            return
        self._loop = asyncio.get_running_loop()
        self._pending = asyncio.ensure_future(self.store.run(self._drain))
        self._pending.add_done_callback(self._wake)

    async def _wait_for_queue(self) -> None:
        """Until the thread side has written a buffer (or stopped)."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            # shield: cancelling the caller must not detach us from a flush still running.
            await asyncio.shield(waiter)
        finally:
            self._waiter = None

    def _wake(self, _: object = None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _raise_failure(self) -> None:
        assert self._pending is not None
        await asyncio.shield(self._pending)  # raises the failed flush's error
        raise RuntimeError("blob writer flush failed")  # unreachable: it raised

    async def _wait_pending(self) -> None:
        """Until every buffer handed over is written; the first flush error if any."""
        while True:
            with self._queue_lock:
                draining, failed = self._draining, self._failed
                self._wanted = draining
            if failed:
                await self._raise_failure()
            if not draining:
                return
            await self._wait_for_queue()

    # --- worker-thread side ---

    def _drain(self) -> None:
        """Write and hash queued buffers in order: up to DRAIN_BATCH, then hand the
        thread back and have the loop schedule the rest."""
        try:
            with self._lock:
                for _ in range(DRAIN_BATCH):
                    with self._queue_lock:
                        if not self._queue or self._aborted_soon:
                            self._queue.clear()
                            self._draining = False
                            return
                        chunks = self._queue[0]
                    self._flush_locked(chunks)
                    with self._queue_lock:
                        self._queue.popleft()
                        wanted, self._wanted = self._wanted, False
                    if wanted:
                        self._notify()
                with self._queue_lock:
                    if not self._queue:
                        self._draining = False
                        return
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._start_drain)
        except BaseException:
            with self._queue_lock:
                self._failed = True
                self._queue.clear()
                self._draining = False
            raise

    def _notify(self) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._wake)

    def _flush_locked(self, chunks: list[bytes]) -> None:
        if self._aborted:
            return
        chunks = [c for c in chunks if c]
        if not chunks:
            return
        if self._fd is None:
            self._fd = os.open(self.store.tmp_path(self.blob_id),
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                               0o644)
        # The chunks go to the kernel as they came (no joined copy of the buffer), and are
        # hashed one by one: hashlib and awscrt release the GIL on large updates, so the
        # write runs on another thread meanwhile (each takes about as long as the other).
        writing = _WRITE_POOL.submit(_write_all, self._fd, chunks) if self.hashers else None
        if writing is None:
            _write_all(self._fd, chunks)
        try:
            for hasher in self.hashers:
                for chunk in chunks:
                    hasher.update(chunk)
        finally:
            if writing is not None:
                writing.result()  # the fd is not touched again (or closed) before this
        self._written += sum(len(c) for c in chunks)
        if self._written > CACHE_KEEP and self._written - self._drop_to >= 2 * CACHE_LAG:
            self._drop_cached(self._written - CACHE_LAG)

    def _drop_cached(self, end: int) -> None:
        """Let the page cache forget the temp file's bytes before ``end`` (0: all).

        DONTNEED starts writeback of dirty pages and drops the clean ones, so each call
        covers the previous call's range again (dirty then, written back by now) and the
        new bytes up to ``end``; after the fsync one call drops everything.
        """
        assert self._fd is not None
        if not _FADVISE:
            return
        start = 0 if end == 0 else self._drop_from
        with contextlib.suppress(OSError):  # only a hint: a file system may refuse it
            os.posix_fadvise(self._fd, start, end - start if end else 0,
                             os.POSIX_FADV_DONTNEED)
        self._drop_from, self._drop_to = self._drop_to, end

    def _fill(self, chunks: list[bytes], segments: Sequence[tuple[str, int, int]]) -> None:
        with self._lock:
            self._flush_locked(chunks)
            for chunk in read_segments(segments):
                self._flush_locked([chunk])

    def _commit(self, chunks: list[bytes]) -> None:
        with self._lock:
            self._commit_locked(chunks)

    def _commit_locked(self, chunks: list[bytes]) -> None:
        self._flush_locked(chunks)
        if self._fd is None:  # zero bytes: no file, blob_id ""
            return
        try:
            os.fsync(self._fd)
            if self._written > CACHE_KEEP:
                self._drop_cached(0)
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)
        self.store.place(self.blob_id)

    def _discard(self) -> None:
        with self._lock:
            self._aborted = True
            self._discard_locked()

    def _discard_locked(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.store.tmp_path(self.blob_id))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
