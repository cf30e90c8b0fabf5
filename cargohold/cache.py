"""A tiny time-bounded cache for hot, rarely-changing lookups (access keys, buckets).

Every request needs its access key and its bucket; both change rarely, and two indexed
SQLite reads cost more than the rest of a small GET's handler. Entries live ``ttl``
seconds, so a key deleted or a bucket removed through another process (the admin CLI,
another worker or gateway) stops being served within that time. Only hits are cached: a
bucket or key created elsewhere is visible at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, load: Callable[[str], Awaitable[V | None]], ttl: float,
                 max_entries: int = 10_000) -> None:
        self._load = load
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, V]] = {}

    async def get(self, name: str) -> V | None:
        """The cached value, or a fresh load (cached when found)."""
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        value = await self._load(name)
        if value is None:
            self._entries.pop(name, None)
            return None
        if len(self._entries) >= self._max:
            self._entries.clear()  # rare; simpler than LRU bookkeeping on the hot path
        self._entries[name] = (now + self._ttl, value)
        return value

    def evict(self, name: str) -> None:
        self._entries.pop(name, None)
