"""Redis client and the cache facade, which degrades and never fails a read.

Reads go to Redis through its guard (breaker, bulkhead); when Redis errors or its breaker is open,
the bounded in-process TTL cache answers instead, and a miss there sends the caller to the database.
Writes go to both; a failed Redis write is counted and logged, never raised. With no ``REDIS_URL``
the in-process cache is the only cache.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from .metrics import Metrics
from .resilience import BreakerOpen, BulkheadFull, Dependency
from .settings import CacheSettings, RedisSettings

log = logging.getLogger(__name__)

_DEGRADED = (RedisError, BreakerOpen, BulkheadFull, OSError, TimeoutError)


def create_client(cfg: RedisSettings) -> Redis | None:
    """A client with an explicit pool, timeouts and one quick reconnect; None when no Redis is configured."""
    if not cfg.enabled:
        return None
    options: dict[str, Any] = {
        "socket_timeout": cfg.socket_timeout_seconds,
        "socket_connect_timeout": cfg.connect_timeout_seconds,
        "health_check_interval": cfg.health_check_interval_seconds,
        # One reconnect replaces a connection that died with a Redis restart; more is the breaker's job.
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.05), retries=1),
    }
    if cfg.sentinels:
        sentinel = Sentinel(cfg.sentinel_nodes, sentinel_kwargs={"socket_timeout": cfg.socket_timeout_seconds})  # type: ignore[no-untyped-call]
        master: Redis = sentinel.master_for(cfg.sentinel_master or "", max_connections=cfg.max_connections, **options)
        return master
    assert cfg.url is not None  # noqa: S101 - enabled implies one of the two
    pool = BlockingConnectionPool.from_url(
        cfg.url.get_secret_value(), max_connections=cfg.max_connections, timeout=cfg.pool_timeout_seconds, **options
    )
    return Redis.from_pool(pool)


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

    def __len__(self) -> int:
        return len(self._items)


class Cache:
    def __init__(
        self, redis: Redis | None, guard: Dependency | None, cfg: CacheSettings, metrics: Metrics, local: LocalCache
    ) -> None:
        self.redis = redis
        self.guard = guard
        self.ttl_seconds = cfg.ttl_seconds
        self.local = local
        self._hits = metrics.cache_requests.labels("hit")
        self._misses = metrics.cache_requests.labels("miss")
        self._fallbacks = metrics.cache_requests.labels("fallback")
        self._write_failures = metrics.cache_write_failures

    async def get(self, key: str) -> bytes | None:
        if self.redis is None or self.guard is None:
            value = self.local.get(key)
        else:
            try:
                value = await self.guard.call(self._redis_get, key)
            except _DEGRADED as exc:
                self._fallbacks.inc()
                log.debug("cache read fell back to the local cache", extra={"error": type(exc).__name__})
                value = self.local.get(key)
        if value is None:
            self._misses.inc()
        else:
            self._hits.inc()
        return value

    async def _redis_get(self, key: str) -> bytes | None:
        assert self.redis is not None  # noqa: S101 - only called with Redis configured
        return cast(bytes | None, await self.redis.get(key))  # a client without decode_responses returns bytes

    async def set(self, key: str, value: bytes) -> None:
        self.local.set(key, value, self.ttl_seconds)
        if self.redis is None or self.guard is None:
            return
        try:
            await self.guard.call(self.redis.set, key, value, self.ttl_seconds)
        except _DEGRADED as exc:
            self._write_failures.inc()
            log.warning("cache write failed", extra={"key": key, "error": type(exc).__name__})

    async def delete(self, key: str) -> None:
        self.local.delete(key)
        if self.redis is None or self.guard is None:
            return
        try:
            await self.guard.call(self.redis.delete, key)
        except _DEGRADED as exc:
            self._write_failures.inc()
            log.warning("cache delete failed", extra={"key": key, "error": type(exc).__name__})
