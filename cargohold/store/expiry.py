"""Expiry of abandoned multipart uploads.

An upload that is never completed or aborted holds its part blobs forever. S3 leaves that
to a bucket lifecycle rule (AbortIncompleteMultipartUpload); cargohold aborts every upload
initiated more than ``--multipart-expiry-seconds`` ago (30 days by default). Aborting goes
through :meth:`MetadataStore.abort_upload`, the same transaction as a client's abort: the
part blobs are queued for deletion and the blob collector (:mod:`cargohold.store.gc`)
removes the files. A completion racing the expiry has one outcome: whichever commits first
wins, and the other finds no upload.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cargohold.periodic import run_periodically
from cargohold.store.base import MetadataStore

log = logging.getLogger("cargohold.expiry")

BATCH = 500  # aborts queued together: they share the writer's group commits


class UploadExpirer:
    """Aborts uploads older than ``expiry_seconds``; run :meth:`run_forever` in worker 0."""

    def __init__(self, store: MetadataStore, expiry_seconds: float,
                 interval_seconds: float) -> None:
        self.store = store
        self.expiry_seconds = expiry_seconds
        self.interval_seconds = interval_seconds

    async def run_once(self, now: float | None = None) -> int:
        """One pass: abort every upload initiated before ``now - expiry_seconds``; return
        how many were aborted (0 when expiry is off, ``expiry_seconds <= 0``)."""
        if self.expiry_seconds <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - self.expiry_seconds
        aborted = 0
        while True:
            old = await self.store.uploads_initiated_before(cutoff, BATCH)
            if not old:
                break
            # False: completed or aborted by a client since the query; nothing to do.
            done = await asyncio.gather(*(self.store.abort_upload(u.upload_id) for u in old))
            aborted += sum(done)
            if len(old) < BATCH:
                break
        if aborted:
            log.info("expired %d incomplete multipart uploads", aborted)
        return aborted

    async def run_forever(self) -> None:
        """Run :meth:`run_once` every ``interval_seconds`` until cancelled.

        A failing pass is logged and retried next interval; cancellation propagates.
        """
        await run_periodically(self.run_once, self.interval_seconds, log,
                               "multipart upload expiry pass")
