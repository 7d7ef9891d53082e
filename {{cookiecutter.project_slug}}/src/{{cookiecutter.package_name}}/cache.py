"""The cache facade, which degrades and never fails a read.

Every value lives in a bounded in-process TTL cache; with a shared cache behind it (``RemoteCache``,
provided by an optional part of the service), reads go there first and fall back to the local copy
when it is unavailable, and a miss in both sends the caller to the database (``get_or_load``). Writes
go to both; a failed remote write is counted and logged, never raised.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from .metrics import Metrics
from .settings import CacheSettings

log = logging.getLogger(__name__)


class CacheUnavailable(Exception):
    """The shared cache could not answer; the facade falls back to the in-process cache."""


class RemoteCache:
    """A cache shared by every worker, which an optional part provides (``Assembly.provide(RemoteCache, ...)``);
    each method raises ``CacheUnavailable`` when it cannot answer."""

    name = "remote"

    async def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError


class LocalCache:
    """A bounded in-process TTL cache: least recently used entries go first when it is full."""

    def __init__(self, max_items: int, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_items = max_items
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self.clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        ttl = self.ttl_seconds if ttl_seconds is None else min(ttl_seconds, self.ttl_seconds)
        self._items[key] = (self.clock() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Cache:
    def __init__(self, remote: RemoteCache | None, cfg: CacheSettings, metrics: Metrics, local: LocalCache) -> None:
        self.remote = remote
        self.ttl_seconds = cfg.ttl_seconds
        self.local = local
        self._hits = metrics.batched_counter(metrics.cache_requests, "hit")
        self._misses = metrics.batched_counter(metrics.cache_requests, "miss")
        self._fallbacks = metrics.batched_counter(metrics.cache_requests, "fallback")
        self._write_failures = metrics.cache_write_failures

    @property
    def backend(self) -> str:
        return "in-process" if self.remote is None else self.remote.name

    async def get(self, key: str) -> bytes | None:
        value, _shared = await self._lookup(key)
        return value

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[bytes | None]]) -> bytes | None:
        """The cached value, or else ``load()``'s (None: there is none), cached for the next reader.

        When the shared cache failed to answer, the loaded value is kept in process only: a read pays for an
        unavailable shared cache once, not a second time to fill it.
        """
        value, shared = await self._lookup(key)
        if value is None:
            value = await load()
            if value is not None:
                if shared:
                    await self.set(key, value)
                else:
                    self.local.set(key, value, self.ttl_seconds)
        return value

    async def _lookup(self, key: str) -> tuple[bytes | None, bool]:
        """The value, and whether the shared cache (if any) answered."""
        shared = True
        if self.remote is None:
            value = self.local.get(key)
        else:
            try:
                value = await self.remote.get(key)
            except CacheUnavailable as exc:
                shared = False
                self._fallbacks.inc()
                log.debug("cache read fell back to the local cache", extra={"error": str(exc)})
                value = self.local.get(key)
        if value is None:
            self._misses.inc()
        else:
            self._hits.inc()
        return value, shared

    async def set(self, key: str, value: bytes) -> None:
        self.local.set(key, value, self.ttl_seconds)
        if self.remote is None:
            return
        try:
            await self.remote.set(key, value, self.ttl_seconds)
        except CacheUnavailable as exc:
            self._write_failures.inc()
            log.warning("cache write failed", extra={"key": key, "error": str(exc)})

    async def delete(self, key: str) -> None:
        self.local.delete(key)
        if self.remote is None:
            return
        try:
            await self.remote.delete(key)
        except CacheUnavailable as exc:
            self._write_failures.inc()
            log.warning("cache delete failed", extra={"key": key, "error": str(exc)})
