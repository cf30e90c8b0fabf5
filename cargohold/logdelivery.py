"""Access-log records from requests to log files in target buckets.

Two stages, so that neither a request nor the event loop ever waits on log storage:

* **Every worker** appends each record to a :class:`RecordBuffer` in memory (the request's
  whole cost) and writes the buffer to the metadata store's ``access_log_records`` queue in
  batches: one store write per :data:`FLUSH_INTERVAL` or :data:`FLUSH_RECORDS` records, and
  a last one on clean shutdown. What is only in memory when a worker is killed (kill -9,
  power loss) is lost: that is the durability boundary, half a second of records at most
  (S3's own log delivery is best-effort too).
* **Worker 0** runs a :class:`LogDeliverer`: every ``log_delivery_interval_seconds`` it
  writes the queued records of each target bucket into one new object per (target, prefix)
  and, in the same transaction, deletes them from the queue
  (:meth:`MetadataStore.deliver_log_object`). A crash before that commit leaves the records
  queued (and at most an orphan blob for the collector); after it, they are delivered and
  gone. So once a record is in the queue it is delivered exactly once.

Log files are written straight through the store, not through HTTP, so they are never
logged themselves, even when the target bucket keeps an access log of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from cargohold import accesslog, errors
from cargohold.handlers.intake import INLINE_MAX
from cargohold.periodic import run_periodically
from cargohold.store.base import LogRecord, MetadataStore, ObjectRecord
from cargohold.store.blobs import BlobStore

log = logging.getLogger("cargohold.accesslog")

FLUSH_INTERVAL = 0.5  # seconds between writes of a worker's buffer
FLUSH_RECORDS = 500  # a buffer this full is written at once
MAX_BUFFERED = 100_000  # past this (the store failing for a while), new records are dropped
DELIVERY_BATCH = 10_000  # records per log file at most (a few MiB)
CONTENT_TYPE = "text/plain"
# Room a queued record may take in the metadata store, for the free-space reserve (a
# record's row is ~300-500 bytes with its index entry).
RECORD_ROOM = 512


class RecordBuffer:
    """One worker's records on their way to the store's queue.

    :meth:`add` is all a request pays. :meth:`start` runs the flusher; :meth:`close` stops
    it and writes what is left (call it after the server has drained its requests, before
    the store closes). The flusher is stopped, never cancelled: a store write cancelled
    before the writer thread picks it up is skipped, and its records would be lost.
    """

    def __init__(self, store: MetadataStore, interval_seconds: float = FLUSH_INTERVAL,
                 batch_size: int = FLUSH_RECORDS, max_buffered: int = MAX_BUFFERED,
                 check_room: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.store = store
        # InsufficientStorage when the disk is down to its reserve (BlobStore.check_room):
        # records then wait here, up to max_buffered, so that requests (deletes above all)
        # never grow the queue into the room kept for deletes.
        self.check_room = check_room
        self._held = False  # the last flush was refused for room (logged once)
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        self.dropped = 0  # records refused because the buffer was full
        self._records: list[LogRecord] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: LogRecord) -> None:
        """Buffer a record (never blocks; drops it if the store has been failing long)."""
        if len(self._records) >= self.max_buffered:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("access-log buffer full: %d records dropped", self.dropped)
            return
        self._records.append(record)
        # While the disk has no room, the flusher tries again on its interval only: waking
        # it for every request would refuse (and build an error) at the request rate.
        if len(self._records) >= self.batch_size and not self._held:
            self._wake.set()

    async def flush(self) -> int:
        """Write every buffered record to the store in one write; returns how many.

        On an error the records go back to the front of the buffer: a failed store write
        took no effect (its savepoint or its transaction was rolled back, or it was never
        queued), so nothing repeats.
        """
        if not self._records:
            return 0
        if self.check_room is not None:
            await self.check_room(len(self._records) * RECORD_ROOM)
        records, self._records = self._records, []
        try:
            await self.store.append_log_records(records)
        except Exception:
            self._records[:0] = records
            raise
        return len(records)

    def start(self) -> None:
        """Run the flusher on the current loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop the flusher, then write what is still buffered."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await asyncio.sleep(0)  # records of responses that just finished
        try:
            await self.flush()
        except errors.InsufficientStorage as exc:
            log.warning("access-log records lost at shutdown: %d (%s)", len(self._records),
                        exc.message)
        except Exception:
            log.exception("access-log records lost at shutdown: %d", len(self._records))

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except errors.InsufficientStorage as exc:
                if not self._held:
                    log.warning("access-log records held in memory, not queued (%d "
                                "buffered): %s", len(self._records), exc.message)
                    self._held = True
                continue
            except Exception:
                log.warning("access-log records not written yet (%d buffered); retrying",
                            len(self._records), exc_info=True)
                continue
            if self._held:
                log.info("access-log records queued again: the disk has room")
                self._held = False


class LogDeliverer:
    """Writes queued records into their target buckets; run :meth:`run_forever` in one
    worker only (deliveries of the same records from two processes would conflict, and
    the loser's would be refused, see :meth:`MetadataStore.deliver_log_object`)."""

    def __init__(self, store: MetadataStore, blobs: BlobStore, interval_seconds: float,
                 batch_limit: int = DELIVERY_BATCH) -> None:
        self.store = store
        self.blobs = blobs
        self.interval_seconds = interval_seconds
        self.batch_limit = batch_limit

    async def run_forever(self) -> None:
        """Run :meth:`run_once` every ``interval_seconds`` until cancelled."""
        await run_periodically(self.run_once, self.interval_seconds, log,
                               "access-log delivery")

    async def run_once(self) -> int:
        """Deliver everything queued; returns the number of log files written."""
        written = 0
        for target in await self.store.pending_log_targets():
            try:
                while True:
                    batch = await self.store.take_log_batch(target, self.batch_limit)
                    written += await self._deliver(target, batch)
                    if len(batch) < self.batch_limit:
                        break
            except errors.InsufficientStorage as exc:
                # The disk is full (or down to its reserve): every target would be refused
                # alike. The records stay queued until deletes make room.
                log.warning("access logs stay queued, not delivered: %s", exc.message)
                break
            except Exception:
                # One failing target must not starve the others: its records stay queued
                # and are tried again next round.
                log.exception("delivering access logs into %r failed", target)
        return written

    async def _deliver(self, target: str, batch: list[tuple[int, str, str]]) -> int:
        # Sources logging into one target may use different prefixes, and a target
        # re-created by another account must not receive the old owner's records: one file
        # per (prefix, owner of the logged bucket: a record's first field).
        groups: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        for record_id, prefix, line in batch:
            groups[(prefix, line.split(" ", 1)[0])].append((record_id, line))
        written = 0
        for (prefix, owner), records in groups.items():
            data = ("\n".join(line for _, line in records) + "\n").encode("utf-8")
            record = await self._log_object(target, prefix, data)
            ids = [record_id for record_id, _ in records]
            try:
                stored = await self.store.deliver_log_object(record, ids, owner)
            except Exception:
                # Refused or failed as a whole: not committed, so the blob is nobody's.
                await self.blobs.delete(record.blob_ids())
                raise
            if stored:
                written += 1
            else:
                await self.blobs.delete(record.blob_ids())
                log.warning("dropped %d access-log records: target bucket %s is gone or has "
                            "another owner", len(ids), target)
        return written

    async def _log_object(self, bucket: str, prefix: str, data: bytes) -> ObjectRecord:
        """The log file's record: its bytes inline when small, else a blob written now
        (durable before the metadata commit, as for any PUT)."""
        # Log files take the room uploads do (inline ones too, in the metadata database):
        # refused past the free-space reserve, so that deletes keep working.
        await self.blobs.check_room(len(data))
        now = time.time()
        md5 = hashlib.md5(usedforsecurity=False)
        if len(data) <= INLINE_MAX:
            md5.update(data)
            blob_id, inline = "", data
        else:
            async with self.blobs.open_writer([md5]) as writer:
                await writer.write(data)
                blob_id = await writer.commit()
            inline = None
        return ObjectRecord(bucket=bucket, key=accesslog.log_object_key(prefix, now),
                            blob_id=blob_id, size=len(data), etag=md5.hexdigest(),
                            last_modified=now, content_type=CONTENT_TYPE, inline=inline)
