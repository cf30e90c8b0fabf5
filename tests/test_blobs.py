"""BlobStore (immutable blob files) and BlobCollector (blob garbage collection)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cargohold import errors
from cargohold.checksums import new_hasher
from cargohold.store import blobs as blob_module
from cargohold.store.base import Account, Bucket, ObjectRecord, PartRef
from cargohold.store.blobs import CACHE_KEEP, FLUSH_SIZE, BlobStore
from cargohold.store.gc import BlobCollector
from cargohold.store.sqlite import SqliteStore

OWNER = "a" * 64


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    yield
    # A closed store must leave no writer or read threads behind.
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("cargohold-sqlite")]
    assert leftovers == []


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "data")


def tmp_files(blobs: BlobStore) -> list[str]:
    return os.listdir(blobs.tmp_dir)


async def write_blob(blobs: BlobStore, data: bytes) -> str:
    async with blobs.open_writer() as writer:
        await writer.write(data)
        return await writer.commit()


def age(path: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "meta.db")
    await store.open()
    try:
        await store.create_account(Account(OWNER, "owner", "Owner", "o@example.com", 1.0))
        await store.create_bucket(Bucket("bkt", OWNER, "nyc3", 1.0), 100)
        yield store
    finally:
        await store.close()


def record(key: str, blob_id: str) -> ObjectRecord:
    return ObjectRecord("bkt", key, blob_id, 1, "e" * 32, time.time())


def multipart_record(key: str, parts: list[str]) -> ObjectRecord:
    """A completed multipart object of 8-byte parts stored in ``parts`` (blob ids)."""
    return ObjectRecord("bkt", key, "", 8 * len(parts), "f" * 32 + f"-{len(parts)}",
                        time.time(), parts=tuple(PartRef(n, b, 8, f"{n:032x}")
                                                 for n, b in enumerate(parts, start=1)))


# ----------------------------------------------------------------------- BlobStore


def test_commit_puts_the_bytes_at_the_blob_path(blobs: BlobStore) -> None:
    data = os.urandom(3 * FLUSH_SIZE + 12345)

    async def main() -> tuple[str, int]:
        writer = blobs.open_writer()
        for start in range(0, len(data), 65536):
            await writer.write(data[start : start + 65536])
        return await writer.commit(), writer.size

    blob_id, size = asyncio.run(main())
    path = blobs.path(blob_id)
    assert path == f"{blobs.root}/blobs/{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"
    assert Path(path).read_bytes() == data
    assert size == len(data)
    assert tmp_files(blobs) == []


def test_hashers_see_every_byte_in_order(blobs: BlobStore) -> None:
    data = os.urandom(2 * FLUSH_SIZE + 777)
    md5 = hashlib.md5(usedforsecurity=False)
    sha = new_hasher("SHA256")

    async def main() -> None:
        async with blobs.open_writer([md5, sha]) as writer:
            # Uneven chunk sizes so flush boundaries fall mid-chunk.
            pos, step = 0, 1
            while pos < len(data):
                await writer.write(data[pos : pos + step])
                pos += step
                step = step * 3 % 200_003 + 1
            await writer.commit()

    asyncio.run(main())
    assert md5.hexdigest() == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert sha.digest() == hashlib.sha256(data).digest()


def resident_pages(path: str) -> tuple[int, int]:
    """(pages of the file in the page cache, pages of the file), from mincore(2)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    pages = -(-size // mmap.PAGESIZE)
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value)
        try:
            vector = ctypes.create_string_buffer(pages)
            assert libc.mincore(address, size, vector) == 0
            return sum(b & 1 for b in vector.raw), pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def file_system_type(path: Path) -> str:
    """The type of the file system ``path`` is on, from /proc/self/mounts."""
    best, kind = "", ""
    resolved = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            if (resolved == point or resolved.startswith(point.rstrip("/") + "/")) and (
                    len(point) >= len(best)):
                best, kind = point, fields[2]
    return kind


@pytest.mark.skipif(not hasattr(os, "posix_fadvise") or not os.path.exists("/proc/self"),
                    reason="Linux page-cache hints")
def test_a_large_blob_leaves_the_page_cache_and_a_small_one_stays(blobs: BlobStore) -> None:
    if file_system_type(blobs.root.parent) in ("tmpfs", "ramfs"):
        pytest.skip("a memory file system keeps its pages whatever it is told")
    large = os.urandom(3 * CACHE_KEEP + 12345)
    small = os.urandom(CACHE_KEEP // 2)
    md5 = hashlib.md5(usedforsecurity=False)

    async def main() -> tuple[str, str]:
        async with blobs.open_writer([md5]) as writer:
            for pos in range(0, len(large), 300_001):
                await writer.write(large[pos : pos + 300_001])
            large_id = await writer.commit()
        return large_id, await write_blob(blobs, small)

    large_id, small_id = asyncio.run(main())
    # Dropping pages loses nothing: the bytes and their digest are those written.
    assert Path(blobs.path(large_id)).read_bytes() == large
    assert md5.hexdigest() == hashlib.md5(large, usedforsecurity=False).hexdigest()
    cached, pages = resident_pages(blobs.path(small_id))
    assert cached == pages

    # The large one was read back above, so its pages are cached again: look at a new one.
    async def again() -> str:
        async with blobs.open_writer() as writer:
            for pos in range(0, len(large), 1 << 20):
                await writer.write(large[pos : pos + (1 << 20)])
            return await writer.commit()

    cached, pages = resident_pages(blobs.path(asyncio.run(again())))
    assert cached < pages // 10


def test_abort_leaves_no_file_behind(blobs: BlobStore) -> None:
    async def main() -> None:
        writer = blobs.open_writer()
        await writer.write(os.urandom(2 * FLUSH_SIZE))
        await writer.abort()
        await writer.abort()  # idempotent

    asyncio.run(main())
    assert tmp_files(blobs) == []
    assert list(blobs.iter_blob_ids(time.time() + 60)) == []


def test_an_exception_inside_the_writer_block_aborts(blobs: BlobStore) -> None:
    async def main() -> None:
        async with blobs.open_writer() as writer:
            await writer.write(os.urandom(FLUSH_SIZE + 1))
            raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        asyncio.run(main())
    assert tmp_files(blobs) == []


@pytest.mark.parametrize("full", [errno.ENOSPC, errno.EDQUOT])
def test_a_write_to_a_full_disk_fails_with_insufficient_storage_and_leaves_no_file(
        blobs: BlobStore, monkeypatch: Any, full: int) -> None:
    # The write runs on another thread while this one hashes: its error must still
    # surface, and the temp file go, as when both ran on one thread.
    def full_disk(fd: int, chunks: list[bytes]) -> None:
        raise OSError(full, os.strerror(full))

    monkeypatch.setattr(blob_module, "_write_all", full_disk)

    async def main() -> None:
        async with blobs.open_writer([hashlib.md5(usedforsecurity=False)]) as writer:
            await writer.write(os.urandom(FLUSH_SIZE + 1))
            await writer.commit()

    with pytest.raises(errors.InsufficientStorage) as exc:
        asyncio.run(main())
    assert isinstance(exc.value.__cause__, OSError) and exc.value.__cause__.errno == full
    assert tmp_files(blobs) == []
    assert list(blobs.iter_blob_ids(time.time() + 60)) == []


def test_room_let_in_is_claimed_until_the_free_space_is_asked_again(tmp_path: Path) -> None:
    # Concurrent uploads must not all take the same free space: what check_room lets in
    # counts against the free space it last saw (asked at most once a second).
    stats = os.statvfs(tmp_path)
    free, mib = stats.f_bavail * stats.f_frsize, 1024 * 1024
    store = BlobStore(tmp_path / "data", min_free_bytes=max(free - 1000 * mib, 1))

    async def main() -> None:
        await store.check_room(600 * mib)
        with pytest.raises(errors.InsufficientStorage):
            await store.check_room(600 * mib)
        await store.check_room(0)  # nothing more asked for: still above the reserve

    asyncio.run(main())


def test_no_reserve_never_asks_the_file_system(tmp_path: Path, monkeypatch: Any) -> None:
    store = BlobStore(tmp_path / "data", min_free_bytes=0)
    monkeypatch.setattr(blob_module, "_free_bytes", lambda path: pytest.fail("asked"))
    asyncio.run(store.check_room(1 << 60))


def test_other_write_errors_stay_os_errors(blobs: BlobStore, monkeypatch: Any) -> None:
    def broken_disk(fd: int, chunks: list[bytes]) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(blob_module, "_write_all", broken_disk)

    async def main() -> None:
        async with blobs.open_writer() as writer:
            await writer.write(os.urandom(FLUSH_SIZE + 1))
            await writer.commit()

    with pytest.raises(OSError) as exc:
        asyncio.run(main())
    assert exc.value.errno == errno.EIO
    assert tmp_files(blobs) == []


def gated_writes(monkeypatch: Any) -> tuple[threading.Event, list[int]]:
    """Make blob file writes wait for the returned gate; the list counts bytes written."""
    gate, written = threading.Event(), [0]
    real_write_all = blob_module._write_all

    def write_all(fd: int, chunks: list[bytes]) -> None:
        gate.wait(10)
        real_write_all(fd, chunks)
        written[0] += sum(len(c) for c in chunks)

    monkeypatch.setattr(blob_module, "_write_all", write_all)
    return gate, written


def test_receiving_runs_at_most_two_buffers_ahead_of_the_disk(
        blobs: BlobStore, monkeypatch: Any) -> None:
    gate, written = gated_writes(monkeypatch)
    data = os.urandom(8 * FLUSH_SIZE)
    md5 = hashlib.md5(usedforsecurity=False)

    async def main() -> tuple[int, int, str]:
        async with blobs.open_writer([md5]) as writer:
            async def upload() -> None:
                for pos in range(0, len(data), FLUSH_SIZE):
                    await writer.write(data[pos : pos + FLUSH_SIZE])

            task = asyncio.create_task(upload())
            await asyncio.sleep(0.3)  # the disk is stuck: the upload must stop and wait
            accepted, stuck = writer.size, written[0]
            assert not task.done()
            gate.set()
            await task
            return accepted, stuck, await writer.commit()

    accepted, stuck, blob_id = asyncio.run(main())
    # One buffer being written, one queued behind it, one filling: memory stays bounded.
    assert stuck == 0 and accepted == (blob_module.MAX_QUEUED + 1) * FLUSH_SIZE
    assert Path(blobs.path(blob_id)).read_bytes() == data
    assert md5.hexdigest() == hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_a_long_upload_does_not_keep_a_worker_thread_to_itself(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=1)
    blobs = BlobStore(tmp_path / "data", executor)
    data = os.urandom(24 * FLUSH_SIZE)

    async def main() -> tuple[int, int]:
        seen: list[int] = []
        async with blobs.open_writer([hashlib.md5(usedforsecurity=False)]) as writer:
            async def other_work() -> None:
                await asyncio.sleep(0.01)
                await blobs.run(lambda: None)
                seen.append(writer.size)

            other = asyncio.create_task(other_work())
            for pos in range(0, len(data), FLUSH_SIZE // 4):
                await writer.write(data[pos : pos + FLUSH_SIZE // 4])
            await writer.commit()
            await other
        return seen[0], writer.size

    try:
        size_then, size = asyncio.run(main())
    finally:
        executor.shutdown()
    # The one thread went to the other job between batches, long before the upload ended.
    assert size_then <= size // 2


def test_a_failed_write_stops_the_upload_at_its_next_buffer(
        blobs: BlobStore, monkeypatch: Any) -> None:
    def full_disk(fd: int, chunks: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(blob_module, "_write_all", full_disk)
    accepted: list[int] = []

    async def main() -> None:
        async with blobs.open_writer([hashlib.md5(usedforsecurity=False)]) as writer:
            for _ in range(64):
                await writer.write(os.urandom(FLUSH_SIZE))
                accepted.append(writer.size)
            await writer.commit()

    with pytest.raises(errors.InsufficientStorage):
        asyncio.run(main())
    # The error reached a write() long before the 64 MiB were all taken in.
    assert len(accepted) < 8
    assert tmp_files(blobs) == []


def test_an_abort_while_the_disk_is_stuck_writes_nothing_more_and_leaves_no_file(
        blobs: BlobStore, monkeypatch: Any) -> None:
    gate, written = gated_writes(monkeypatch)

    async def main() -> None:
        writer = blobs.open_writer([hashlib.md5(usedforsecurity=False)])
        for _ in range(blob_module.MAX_QUEUED):
            await writer.write(os.urandom(FLUSH_SIZE))
        await asyncio.sleep(0.05)
        aborting = asyncio.create_task(writer.abort())
        await asyncio.sleep(0.05)
        gate.set()
        await aborting

    asyncio.run(main())
    assert written[0] <= FLUSH_SIZE  # the buffer in hand at most, not the one queued
    assert tmp_files(blobs) == []


def test_a_zero_byte_blob_commits_to_the_empty_id_without_a_file(blobs: BlobStore) -> None:
    assert asyncio.run(write_blob(blobs, b"")) == ""
    assert tmp_files(blobs) == []
    assert list(blobs.iter_blob_ids(time.time() + 60)) == []


@pytest.mark.parametrize(
    "bad",
    ["", "../../etc/passwd", "A" * 32, "0" * 31, "0" * 33, "g" * 32, "0" * 30 + "/x",
     "0" * 31 + "\n"],
)
def test_malformed_blob_ids_are_rejected(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError):
        blobs.path(bad)


def test_delete_removes_files_and_ignores_missing_ones(blobs: BlobStore) -> None:
    blob_id = asyncio.run(write_blob(blobs, b"bytes"))
    removed = asyncio.run(blobs.delete([blob_id, "f" * 32, "not-an-id"]))
    assert removed == 1
    assert not os.path.exists(blobs.path(blob_id))


def test_iter_blob_ids_yields_only_blobs_older_than_the_cutoff(blobs: BlobStore) -> None:
    old = asyncio.run(write_blob(blobs, b"old"))
    young = asyncio.run(write_blob(blobs, b"young"))
    age(blobs.path(old), 7200)
    assert list(blobs.iter_blob_ids(time.time() - 3600)) == [old]
    assert sorted(blobs.iter_blob_ids(time.time() + 1)) == sorted([old, young])


def test_sweep_tmp_removes_only_old_temp_files(blobs: BlobStore) -> None:
    stale = Path(blobs.tmp_dir) / ("1" * 32)
    fresh = Path(blobs.tmp_dir) / ("2" * 32)
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    age(str(stale), 7200)
    assert blobs.sweep_tmp(time.time() - 3600) == 1
    assert tmp_files(blobs) == ["2" * 32]


# ------------------------------------------------------------------- BlobCollector


async def replace_blob(store: SqliteStore, blobs: BlobStore,
                       first_age: float = 0) -> tuple[str, str]:
    """Key "k" written with a blob ``first`` (aged ``first_age`` seconds), then replaced by
    ``second``: ``first`` is queued for deletion."""
    first = await write_blob(blobs, b"first")
    second = await write_blob(blobs, b"second")
    await store.put_object(record("k", first))
    if first_age:
        age(blobs.path(first), first_age)
    await store.put_object(record("k", second))
    return first, second


def test_collector_deletes_queued_blobs_and_forgets_them(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "data")

    async def main() -> None:
        async with sqlite_store(tmp_path) as store:
            first, second = await replace_blob(store, blobs)
            collector = BlobCollector(store, blobs, orphan_grace_seconds=3600,
                                      interval_seconds=60)
            assert await collector.run_once() == (1, 0)
            assert not os.path.exists(blobs.path(first))
            assert os.path.exists(blobs.path(second))
            assert await store.pending_blob_deletions() == []

    asyncio.run(main())


def test_collector_keeps_a_queued_blob_that_is_referenced_again(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "data")

    async def main() -> None:
        async with sqlite_store(tmp_path) as store:
            shared = await write_blob(blobs, b"shared")
            await store.put_object(record("a", shared))
            await store.put_object(record("b", shared))
            await store.delete_object("bkt", "a")  # queues `shared`, still used by "b"
            collector = BlobCollector(store, blobs, 3600, 60)
            assert await collector.run_once() == (0, 0)
            assert os.path.exists(blobs.path(shared))
            assert await store.pending_blob_deletions() == []

    asyncio.run(main())


def test_a_freed_blob_outlives_its_object_by_the_grace_period_even_when_old(
        tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "data")

    async def main() -> None:
        async with sqlite_store(tmp_path) as store:
            # `first` old enough for the orphan sweep
            first, second = await replace_blob(store, blobs, first_age=7200)
            collector = BlobCollector(store, blobs, orphan_grace_seconds=3600,
                                      interval_seconds=60, freed_grace_seconds=0.5)
            assert await collector.run_once() == (0, 0)  # in its grace: not an orphan
            assert os.path.exists(blobs.path(first))
            assert await store.pending_blob_deletions() == [first]
            await asyncio.sleep(0.6)
            assert await collector.run_once() == (1, 0)
            assert not os.path.exists(blobs.path(first))
            assert os.path.exists(blobs.path(second))
            assert await store.pending_blob_deletions() == []

    asyncio.run(main())


def test_orphan_sweep_removes_old_unreferenced_blobs_only(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "data")

    async def main() -> None:
        async with sqlite_store(tmp_path) as store:
            orphan = await write_blob(blobs, b"orphan")
            referenced = await write_blob(blobs, b"referenced")
            young = await write_blob(blobs, b"young orphan")
            await store.put_object(record("k", referenced))
            age(blobs.path(orphan), 7200)
            age(blobs.path(referenced), 7200)
            stale_tmp = Path(blobs.tmp_dir) / ("3" * 32)
            stale_tmp.write_bytes(b"abandoned upload")
            age(str(stale_tmp), 7200)
            collector = BlobCollector(store, blobs, orphan_grace_seconds=3600,
                                      interval_seconds=60)
            assert await collector.run_once() == (0, 2)  # the orphan and the temp file
            assert not os.path.exists(blobs.path(orphan))
            assert os.path.exists(blobs.path(referenced))
            assert os.path.exists(blobs.path(young))
            assert not stale_tmp.exists()

    asyncio.run(main())


def test_the_sweeper_keeps_the_blobs_and_parts_of_noncurrent_versions(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "data")

    async def main() -> None:
        async with sqlite_store(tmp_path) as store:
            await store.set_bucket_versioning("bkt", "Enabled")
            old = await write_blob(blobs, b"old version")
            parts = [await write_blob(blobs, b"part one"), await write_blob(blobs, b"part two")]
            current = await write_blob(blobs, b"current")
            v1 = await store.put_object(record("k", old))
            v2 = await store.put_object(multipart_record("k", parts))
            await store.put_object(record("k", current))
            await store.delete_object("bkt", "k")  # all three hidden behind a marker
            every = [old, *parts, current]
            for blob_id in every:
                age(blobs.path(blob_id), 7200)  # old enough to be taken for orphans
            collector = BlobCollector(store, blobs, orphan_grace_seconds=3600,
                                      interval_seconds=60)
            assert await collector.run_once() == (0, 0)
            assert all(os.path.exists(blobs.path(b)) for b in every)
            # Deleting a version by id frees its blobs, and only its.
            await store.delete_object("bkt", "k", v1)
            await store.delete_object("bkt", "k", v2)
            assert await collector.run_once() == (3, 0)
            assert [os.path.exists(blobs.path(b)) for b in every] == [False, False, False, True]

    asyncio.run(main())


def test_the_sweeper_never_takes_a_version_being_promoted_for_an_orphan(
        tmp_path: Path) -> None:
    # Deleting a delete marker moves the version under it (blob and parts) back to the
    # current objects while the sweeper asks whether its old blobs are referenced.
    blobs = BlobStore(tmp_path / "data")

    async def main() -> None:
        async with sqlite_store(tmp_path) as store:
            await store.set_bucket_versioning("bkt", "Enabled")
            single = await write_blob(blobs, b"single")
            parts = [await write_blob(blobs, b"part one"), await write_blob(blobs, b"part two")]
            await store.put_object(record("k", single))
            await store.put_object(multipart_record("big", parts))
            every = [single, *parts]
            for blob_id in every:
                age(blobs.path(blob_id), 7200)
            collector = BlobCollector(store, blobs, orphan_grace_seconds=3600,
                                      interval_seconds=60)
            done = False

            async def churn() -> None:
                nonlocal done
                try:
                    for _ in range(300):
                        for key in ("k", "big"):
                            marker = (await store.delete_object("bkt", key)).version_id
                            await store.delete_object("bkt", key, marker)
                finally:
                    done = True

            async def sweep() -> int:
                passes = 0
                while not done:
                    passes += 1
                    assert await collector.run_once() == (0, 0)
                return passes

            _, passes = await asyncio.gather(churn(), sweep())
            assert passes > 20
            assert all(os.path.exists(blobs.path(b)) for b in every)

    asyncio.run(main())


def test_run_forever_repeats_until_cancelled(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "data")

    async def main() -> None:
        async with sqlite_store(tmp_path) as store:
            collector = BlobCollector(store, blobs, 3600, interval_seconds=0.01)
            task = asyncio.create_task(collector.run_forever())
            first = await write_blob(blobs, b"first")
            await store.put_object(record("k", first))
            await store.delete_object("bkt", "k")
            for _ in range(200):
                if not os.path.exists(blobs.path(first)):
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not os.path.exists(blobs.path(first))

    asyncio.run(main())


def test_blobs_of_a_refused_commit_are_freed_but_a_cancelled_commit_keeps_them(
        blobs: BlobStore) -> None:
    from types import SimpleNamespace

    from cargohold import errors
    from cargohold.handlers.intake import freed_if_refused

    ctx: Any = SimpleNamespace(services=SimpleNamespace(blobs=blobs))

    async def scenario() -> None:
        refused = await write_blob(blobs, b"refused")
        with pytest.raises(errors.NoSuchUpload):
            async with freed_if_refused(ctx, [refused, ""]):
                raise errors.NoSuchUpload()
        assert not os.path.exists(blobs.path(refused))
        # A cancelled awaiter does not mean an uncommitted write: the store's writer may
        # still commit it, so the blob must stay (the sweeper judges it later).
        cancelled = await write_blob(blobs, b"cancelled")
        with pytest.raises(asyncio.CancelledError):
            async with freed_if_refused(ctx, [cancelled]):
                raise asyncio.CancelledError()
        assert os.path.exists(blobs.path(cancelled))

    asyncio.run(scenario())


def test_a_clone_of_an_old_blob_looks_new_to_the_orphan_sweeper(blobs: BlobStore) -> None:
    source = asyncio.run(write_blob(blobs, b"old bytes"))
    age(blobs.path(source), 7200)
    clone = asyncio.run(blobs.clone(source))
    # A hard link shares the inode and would keep the source's old mtime: the sweeper
    # (grace one hour) must not take the uncommitted clone for an old orphan.
    assert clone not in set(blobs.iter_blob_ids(time.time() - 3600))
    with open(blobs.path(clone), "rb") as copied:
        assert copied.read() == b"old bytes"


def test_a_failing_periodic_pass_is_logged_and_retried() -> None:
    import logging

    from cargohold.periodic import run_periodically

    calls: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first pass fails")

    async def scenario() -> None:
        task = asyncio.create_task(
            run_periodically(step, 0.01, logging.getLogger("test"), "test pass"))
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert len(calls) >= 3
