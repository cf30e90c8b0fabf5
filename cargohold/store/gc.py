"""Background blob garbage collection.

Two kinds of garbage, both safe to remove only because of the storage contract:

* **Queued deletions**: blobs replaced or deleted by committed transactions, listed in the
  metadata store's durable deletion queue. Their files are removed, then the ids forgotten
  (a crash in between just repeats the removal: ENOENT is fine). With a freed-blob grace
  period, a blob stays that long in the queue first: on NFS, a file removed by one client
  fails another client's read of it (a stale file handle), so a download that started
  before the delete on another gateway needs the file to outlive it.
* **Orphans**: blob files no committed object points at (a crash between writing a blob and
  committing its metadata) and abandoned temp files. Only files older than the grace period
  are considered, so a PUT between its blob rename and its metadata commit is never touched.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

from cargohold.periodic import run_periodically
from cargohold.store.base import MetadataStore
from cargohold.store.blobs import BlobStore

log = logging.getLogger("cargohold.gc")

QUEUE_BATCH = 1000
SWEEP_BATCH = 500


class BlobCollector:
    """Deletes queued and orphaned blobs; run :meth:`run_forever` as a server task."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        orphan_grace_seconds: float,
        interval_seconds: float,
        freed_grace_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.orphan_grace_seconds = orphan_grace_seconds
        self.interval_seconds = interval_seconds
        self.freed_grace_seconds = freed_grace_seconds

    async def run_once(self) -> tuple[int, int]:
        """One collection pass: ``(queued blobs deleted, orphan blobs + temp files swept)``."""
        queued = await self._drain_queue()
        swept = await self._sweep_orphans()
        if queued or swept:
            log.info("blob gc: deleted %d queued blobs, swept %d orphans", queued, swept)
        else:
            log.debug("blob gc: nothing to do")
        return queued, swept

    async def run_forever(self) -> None:
        """Run :meth:`run_once` every ``interval_seconds`` until cancelled.

        A failing pass is logged and retried next interval; cancellation propagates.
        """
        await run_periodically(self.run_once, self.interval_seconds, log, "blob gc pass")

    async def _drain_queue(self) -> int:
        deleted = 0
        queued_before = (time.time() - self.freed_grace_seconds
                         if self.freed_grace_seconds > 0 else None)
        while True:
            ids = await self.store.pending_blob_deletions(QUEUE_BATCH, queued_before)
            if not ids:
                return deleted
            # Every blob name has one owner (copies hard-link under new names), so a queued
            # blob is normally unreferenced; this check is a guard, not a sharing scheme:
            # it is not atomic with the unlink, so blobs must never be shared by design.
            still_used = await self.store.referenced_blobs(ids)
            deleted += await self.blobs.delete(i for i in ids if i not in still_used)
            await self.store.forget_blob_deletions(ids)
            if len(ids) < QUEUE_BATCH:
                return deleted

    async def _sweep_orphans(self) -> int:
        cutoff = time.time() - self.orphan_grace_seconds
        swept = await self.blobs.run(lambda: self.blobs.sweep_tmp(cutoff))
        walk = self.blobs.iter_blob_ids(cutoff)
        while True:
            # Each step of the directory walk runs in a thread; the loop only checks ids.
            batch = await self.blobs.run(lambda: _take(walk, SWEEP_BATCH))
            if not batch:
                return swept
            # A queued blob still in its grace period is not an orphan: its file may be
            # old, but the queue deletes it when the grace runs out.
            used = await self.store.referenced_blobs(batch, include_queued=True)
            orphans = [b for b in batch if b not in used]
            if orphans:
                swept += await self.blobs.delete(orphans)


def _take(it: Iterator[str], n: int) -> list[str]:
    return list(itertools.islice(it, n))
