"""`ExpiringLru`: a bounded, least-recently-used map whose entries also expire, the mechanism under the
api's per-process status caches (`status.TerminalCache`, `queued_cache.QueuedCache`); each cache keeps
its own rule for what it admits."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringLru(Generic[V]):
    """At most ``max_entries`` values; the least recently used goes first, an expired one on its next read."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        until, value = entry
        if time.monotonic() >= until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: V, lifetime_s: float) -> bool:
        """Keep ``value`` for ``lifetime_s`` seconds; False (nothing kept) when there is no room at all."""
        if self.max_entries <= 0 or lifetime_s <= 0:
            return False
        self._entries[key] = (time.monotonic() + lifetime_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)
