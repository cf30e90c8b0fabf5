"""Background passes that repeat on an interval (blob GC, upload expiry, log delivery)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def run_periodically(step: Callable[[], Awaitable[object]], interval_seconds: float,
                           log: logging.Logger, what: str) -> None:
    """Await ``step()`` every ``interval_seconds`` until cancelled.

    A failing pass is logged (as ``what`` failed) and retried next interval, so one bad pass
    never stops the work; cancellation propagates.
    """
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(interval_seconds)
