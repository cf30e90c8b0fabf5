"""Background work that runs once per cluster: whoever holds the lease runs it.

Blob GC, the expiry of abandoned uploads, access-log delivery and the lifecycle worker must
each run in exactly one process, even when several gateways share one metadata store and
one volume. Worker 0 of every gateway runs a :class:`LeaseHolder`: it asks the store for the
``background`` lease every third of ``lease_seconds``; while it holds it, it runs the tasks,
and the moment it cannot renew (another holder took over, or the store is unreachable) it
stops them; a renewal that gets no answer within a quarter of ``lease_seconds`` (a
database behind a dead network path, a connection pool with none free) counts as a
failure, so the work stops before the lease can run out and pass to another gateway. A
holder that dies stops renewing, so its lease runs out and another gateway's worker 0 takes
over within ``lease_seconds`` plus one renewal interval.

Every one of those tasks is safe to repeat (their actions are guarded inside the store's
transactions), so the short overlap a paused process could cause in theory does no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from cargohold.store.base import MetadataStore

log = logging.getLogger("cargohold.background")

LEASE_NAME = "background"
# A renewal is given this fraction of the lease to answer. The next one starts a third of
# the lease after the last good one answered (at most a quarter after it started), so one
# that times out ends at most 1/4 + 1/3 + 1/4 of the lease after the last good one started:
# the work stops with a margin before the lease can pass to another gateway.
RENEWAL_TIMEOUT = 0.25


def holder_id() -> str:
    """Who is asking, readable in the leases table: host, process and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseHolder:
    """Runs ``make_tasks()`` while this process holds the cluster's background lease."""

    def __init__(self, store: MetadataStore,
                 make_tasks: Callable[[], list[Coroutine[Any, Any, None]]],
                 lease_seconds: float, holder: str | None = None) -> None:
        self.store = store
        self.make_tasks = make_tasks
        self.lease_seconds = lease_seconds
        self.holder = holder or holder_id()
        self.tasks: list[asyncio.Task[None]] = []

    async def run_forever(self) -> None:
        """Take, renew and (on cancellation) release the lease, starting and stopping the
        tasks as it is won and lost."""
        try:
            while True:
                try:
                    # A renewal that does not answer in time counts as lost: the lease is
                    # good until lease_seconds after the last good renewal started, and
                    # then another gateway may take it (see RENEWAL_TIMEOUT).
                    held = await asyncio.wait_for(
                        self.store.acquire_lease(LEASE_NAME, self.holder,
                                                 self.lease_seconds),
                        timeout=self.lease_seconds * RENEWAL_TIMEOUT)
                except asyncio.CancelledError:
                    raise
                except TimeoutError:
                    log.warning("background lease: no answer to a renewal within %.1f s",
                                self.lease_seconds * RENEWAL_TIMEOUT)
                    held = False
                except Exception:
                    log.exception("background lease: renewal failed")
                    held = False
                if held and not self.tasks:
                    log.info("background lease taken by %s: running background work",
                             self.holder)
                    self.tasks = [asyncio.create_task(c) for c in self.make_tasks()]
                elif not held and self.tasks:
                    log.warning("background lease lost by %s: stopping background work",
                                self.holder)
                    await self._stop_tasks()
                await asyncio.sleep(self.lease_seconds / 3)
        finally:
            had = bool(self.tasks)
            await self._stop_tasks()
            if had:
                # A clean stop hands over at once instead of after the lease runs out.
                with contextlib.suppress(Exception):
                    await self.store.release_lease(LEASE_NAME, self.holder)

    async def _stop_tasks(self) -> None:
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
