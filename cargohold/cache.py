"""A tiny time-bounded cache for hot, rarely-changing lookups (access keys).

Every signed request needs its access key, which changes rarely. Entries live ``ttl``
seconds, so a key deleted through another process (the admin CLI, another worker or
gateway) stops being served within that time; a stale entry can only ever act for the
account it always belonged to. Only hits are cached: a key created elsewhere works at
once. (Buckets are not cached: their owner decides access, and a name can change owner.)
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
